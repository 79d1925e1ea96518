//! The decoder step on the CPU without candle's per-operation tensors: the search's hot loop.
//!
//! Same arithmetic as the candle decoder in `mod.rs` (which stays the reference, and the path for
//! GPUs and half precision), but on reusable host buffers: each row keeps its own self-attention
//! keys and values and grows them in place, beams are reordered by moving those buffers (copying
//! only when a beam is chosen twice), a finished source just drops its buffers, padding is skipped
//! in cross-attention instead of masked, and every matrix product writes straight into a
//! workspace (f32 through the `gemm` crate, int8 through [`crate::kernels::QMatrix`]).
//!
//! With int8 weights the encoder runs here too, on the sources packed without padding, q, k and v
//! are one product, and the attention caches are kept in f16 (see `kv.rs`).

use candle_core::{DType, Tensor};
use candle_nn::LayerNorm;
use rayon::prelude::*;

use super::{
    Activation, Attention, DecoderLayer, EncoderLayer, EncoderOutput, FeedForward, Matrix,
    Positions, Proj, Seq2SeqModel,
};
use crate::error::{Error, Result};
use crate::kernels::simd::multiversion;
use crate::kernels::{Int8Kernel, QMatrix};
use half::f16;

use super::kv::{attend_row, KeysT, KvElem};

/// Host copies of what a decoder step needs besides the big matrices.
#[derive(Debug, Clone)]
pub(crate) struct FastDecoder {
    layers: Vec<FastLayer>,
    positions: Vec<f32>,
    position_offset: usize,
    embed_norm: Option<Norm>,
    final_bias: Vec<f32>,
    d: usize,
    heads: usize,
}

#[derive(Debug, Clone)]
struct Norm {
    w: Vec<f32>,
    b: Vec<f32>,
    eps: f32,
}

#[derive(Debug, Clone)]
struct Lin {
    w: Matrix,
    b: Vec<f32>,
}

#[derive(Debug, Clone)]
struct FastLayer {
    attn: SelfAttn,
    cq: Lin,
    ck: Lin,
    cv: Lin,
    co: Lin,
    norm2: Norm,
    ffn: FastFfn,
}

/// A layer's feed-forward block with the norm after it.
#[derive(Debug, Clone)]
struct FastFfn {
    fc1: Lin,
    fc2: Lin,
    activation: Activation,
    norm: Norm,
}

impl FastFfn {
    fn new(ffn: &FeedForward, norm_after: &LayerNorm) -> Result<Self> {
        Ok(FastFfn {
            fc1: lin(&ffn.fc1)?,
            fc2: lin(&ffn.fc2)?,
            activation: ffn.activation,
            norm: norm(norm_after)?,
        })
    }

    /// x = LayerNorm(x + fc2(act(fc1(x)))) over `rows` rows of `d`; `f` and `h` are workspaces.
    fn forward(
        &self,
        x: &mut [f32],
        rows: usize,
        d: usize,
        f: &mut Vec<f32>,
        h: &mut Vec<f32>,
        kernel: Int8Kernel,
    ) -> Result<()> {
        linear(x, rows, &self.fc1.w, &self.fc1.b, f, kernel)?;
        activate(f, self.activation);
        linear(f, rows, &self.fc2.w, &self.fc2.b, h, kernel)?;
        add_norm(x, h, &self.norm, d);
        Ok(())
    }
}

/// A position table on the host, and the row of position 0 in it.
fn host_positions(p: &Positions) -> Result<(Vec<f32>, usize)> {
    Ok(match p {
        Positions::Table(t) => (host(t)?, 0),
        Positions::Learned { table, offset } => (host(table)?, *offset),
    })
}

/// An embedding row (already looked up) scaled, plus its position, then the embedding norm when
/// the model has one (BART).
fn embed_row(row: &mut [f32], position: &[f32], scale: f32, norm: Option<&Norm>) {
    for (v, &p) in row.iter_mut().zip(position) {
        *v = if scale == 1.0 { *v + p } else { *v * scale + p };
    }
    if let Some(n) = norm {
        norm_row(row, n);
    }
}

fn host(t: &Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?)
}

fn norm(n: &LayerNorm) -> Result<Norm> {
    Ok(Norm {
        w: host(n.weight())?,
        b: match n.bias() {
            Some(b) => host(b)?,
            None => vec![0.0; n.weight().dims1()?],
        },
        eps: n.eps() as f32,
    })
}

fn lin(p: &Proj) -> Result<Lin> {
    Ok(Lin {
        w: p.weight.clone(),
        b: host(&p.bias)?,
    })
}

/// int8 matrices on the same input as one (see [`QMatrix::concat`]); `None` with float weights.
fn fuse(parts: &[&Lin]) -> Option<Lin> {
    let qs = parts
        .iter()
        .map(|l| match &l.w {
            Matrix::Int8(q) => Some(&**q),
            Matrix::Float(_) => None,
        })
        .collect::<Option<Vec<&QMatrix>>>()?;
    Some(Lin {
        w: Matrix::Int8(std::sync::Arc::new(QMatrix::concat(&qs)?)),
        b: parts.iter().flat_map(|l| l.b.iter().copied()).collect(),
    })
}

/// A layer's self-attention weights (decoder and encoder alike): q, k and v (also as one product
/// with int8 weights), the output projection, and the norm after the block.
#[derive(Debug, Clone)]
struct SelfAttn {
    q: Lin,
    k: Lin,
    v: Lin,
    qkv: Option<Lin>,
    o: Lin,
    norm: Norm,
}

impl SelfAttn {
    fn new(a: &Attention, norm_after: &LayerNorm) -> Result<Self> {
        let (q, k, v) = (lin(&a.q)?, lin(&a.k)?, lin(&a.v)?);
        Ok(SelfAttn {
            qkv: fuse(&[&q, &k, &v]),
            q,
            k,
            v,
            o: lin(&a.out)?,
            norm: norm(norm_after)?,
        })
    }

    /// The projections of `rows` rows of `x` into `q`, `k` and `v`: one product when they are
    /// fused (`tmp` is a workspace).
    #[allow(clippy::too_many_arguments)]
    fn project(
        &self,
        x: &[f32],
        rows: usize,
        d: usize,
        tmp: &mut Vec<f32>,
        q: &mut Vec<f32>,
        k: &mut Vec<f32>,
        v: &mut Vec<f32>,
        kernel: Int8Kernel,
    ) -> Result<()> {
        let Some(f) = self.qkv.as_ref().filter(|f| f.b.len() == 3 * d) else {
            linear(x, rows, &self.q.w, &self.q.b, q, kernel)?;
            linear(x, rows, &self.k.w, &self.k.b, k, kernel)?;
            return linear(x, rows, &self.v.w, &self.v.b, v, kernel);
        };
        linear(x, rows, &f.w, &f.b, tmp, kernel)?;
        for (i, out) in [q, k, v].into_iter().enumerate() {
            out.clear();
            for row in tmp.chunks_exact(3 * d) {
                out.extend_from_slice(&row[i * d..(i + 1) * d]);
            }
        }
        Ok(())
    }

    /// x = LayerNorm(x + o(a)) over `rows` rows of `d`; `h` is a workspace.
    fn finish(
        &self,
        x: &mut [f32],
        a: &[f32],
        rows: usize,
        d: usize,
        h: &mut Vec<f32>,
        kernel: Int8Kernel,
    ) -> Result<()> {
        linear(a, rows, &self.o.w, &self.o.b, h, kernel)?;
        add_norm(x, h, &self.norm, d);
        Ok(())
    }
}

impl FastDecoder {
    pub(crate) fn new(model: &Seq2SeqModel) -> Result<Self> {
        let layers = model
            .decoder_layers
            .iter()
            .map(|l: &DecoderLayer| {
                let a: &Attention = &l.self_attn;
                let c: &Attention = &l.cross_attn;
                Ok(FastLayer {
                    attn: SelfAttn::new(a, &l.self_attn_layer_norm)?,
                    cq: lin(&c.q)?,
                    ck: lin(&c.k)?,
                    cv: lin(&c.v)?,
                    co: lin(&c.out)?,
                    norm2: norm(&l.cross_attn_layer_norm)?,
                    ffn: FastFfn::new(&l.ffn, &l.final_layer_norm)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (positions, position_offset) = host_positions(&model.decoder_positions)?;
        Ok(FastDecoder {
            layers,
            positions,
            position_offset,
            embed_norm: model.decoder_embed_norm.as_ref().map(norm).transpose()?,
            final_bias: host(&model.final_logits_bias)?,
            d: model.config.d_model,
            heads: model.config.decoder_attention_heads,
        })
    }
}

/// Host copies of what the encoder needs besides the big matrices (used with int8 weights, where
/// candle's per-operation tensors cost more than the arithmetic).
#[derive(Debug, Clone)]
pub(crate) struct FastEncoder {
    layers: Vec<FastEncoderLayer>,
    positions: Vec<f32>,
    position_offset: usize,
    embed_norm: Option<Norm>,
    d: usize,
    heads: usize,
}

#[derive(Debug, Clone)]
struct FastEncoderLayer {
    attn: SelfAttn,
    ffn: FastFfn,
}

impl FastEncoder {
    pub(crate) fn new(model: &Seq2SeqModel) -> Result<Self> {
        let layers = model
            .encoder_layers
            .iter()
            .map(|l: &EncoderLayer| {
                let a: &Attention = &l.self_attn;
                Ok(FastEncoderLayer {
                    attn: SelfAttn::new(a, &l.self_attn_layer_norm)?,
                    ffn: FastFfn::new(&l.ffn, &l.final_layer_norm)?,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let (positions, position_offset) = host_positions(&model.encoder_positions)?;
        Ok(FastEncoder {
            layers,
            positions,
            position_offset,
            embed_norm: model.encoder_embed_norm.as_ref().map(norm).transpose()?,
            d: model.config.d_model,
            heads: model.config.encoder_attention_heads,
        })
    }
}

/// Per-generation state of the fast decoder.
#[derive(Debug)]
pub(crate) struct FastState {
    kv: KvCache,
    lens: Vec<usize>,
    pub(crate) beams: usize,
    pub(crate) sources: usize,
    pub(crate) position: usize,
    ws: Workspace,
}

/// The attention caches, in f32 (float weights: the exact path) or f16 (int8 weights).
#[derive(Debug)]
enum KvCache {
    F32(Kv<f32>),
    F16(Kv<f16>),
}

/// Runs `$body` with `$kv` bound to the cache, whatever its element type.
macro_rules! with_kv {
    ($cache:expr, $kv:ident => $body:expr) => {
        match $cache {
            KvCache::F32($kv) => $body,
            KvCache::F16($kv) => $body,
        }
    };
}

#[derive(Debug)]
struct Kv<E> {
    /// [layer][source]: (len x d) keys and values of the source.
    cross_k: Vec<Vec<KeysT<E>>>,
    cross_v: Vec<Vec<Vec<E>>>,
    /// [layer][row]: (t x d) self-attention keys and values so far.
    self_k: Vec<Vec<KeysT<E>>>,
    self_v: Vec<Vec<Vec<E>>>,
    /// Converted keys of one step.
    tmp: Vec<E>,
}

impl<E: KvElem> Kv<E> {
    fn new(layers: usize, rows: usize) -> Self {
        Kv {
            cross_k: Vec::with_capacity(layers),
            cross_v: Vec::with_capacity(layers),
            self_k: vec![vec![KeysT::default(); rows]; layers],
            self_v: vec![vec![Vec::new(); rows]; layers],
            tmp: Vec::new(),
        }
    }

    /// One layer's cross-attention keys or values: `buf` holds `sources` blocks of `s_max` rows
    /// of `d`, of which the first `lens[s]` are real.
    fn add_cross_keys(&mut self, buf: &[f32], s_max: usize, d: usize, lens: &[usize]) {
        self.cross_k.push(
            lens.iter()
                .enumerate()
                .map(|(s, &l)| KeysT::from_rows(&buf[s * s_max * d..(s * s_max + l) * d], d))
                .collect(),
        );
    }

    fn add_cross_values(&mut self, buf: &[f32], s_max: usize, d: usize, lens: &[usize]) {
        self.cross_v.push(
            lens.iter()
                .enumerate()
                .map(|(s, &l)| {
                    let mut v = Vec::with_capacity(l * d);
                    E::store(&buf[s * s_max * d..(s * s_max + l) * d], &mut v);
                    v
                })
                .collect(),
        );
    }

    /// Appends every row's new key and value (rows x d each) to layer `l`.
    fn push_self(&mut self, l: usize, k: &[f32], v: &[f32], d: usize) {
        self.tmp.clear();
        E::store(k, &mut self.tmp);
        for (r, (keys, values)) in self.self_k[l]
            .iter_mut()
            .zip(self.self_v[l].iter_mut())
            .enumerate()
        {
            keys.push(&self.tmp[r * d..(r + 1) * d]);
            E::store(&v[r * d..(r + 1) * d], values);
        }
    }

    /// Self-attention of every row (queries `q`, rows x d) into `a`.
    fn attend_self(&self, l: usize, q: &[f32], a: &mut [f32], d: usize, heads: usize, t: usize) {
        let (keys, values) = (&self.self_k[l], &self.self_v[l]);
        let run = |scores: &mut Vec<f32>, (r, out): (usize, &mut [f32])| {
            attend_row(
                &q[r * d..(r + 1) * d],
                &keys[r],
                &values[r],
                heads,
                out,
                scores,
            );
        };
        let rows = a.len() / d.max(1);
        each_row(a, d, rows * t * d >= 1 << 16, run);
    }

    /// Cross-attention of every row over its source (padding is simply not visited).
    #[allow(clippy::too_many_arguments)]
    fn attend_cross(
        &self,
        l: usize,
        q: &[f32],
        a: &mut [f32],
        d: usize,
        heads: usize,
        lens: &[usize],
        beams: usize,
    ) {
        let (keys, values) = (&self.cross_k[l], &self.cross_v[l]);
        let run = |scores: &mut Vec<f32>, (r, out): (usize, &mut [f32])| {
            let s = r / beams;
            attend_row(
                &q[r * d..(r + 1) * d],
                &keys[s],
                &values[s],
                heads,
                out,
                scores,
            );
        };
        let rows = a.len() / d.max(1);
        let work: usize = rows * d * lens.iter().max().copied().unwrap_or(0);
        each_row(a, d, work >= 1 << 16, run);
    }

    fn reorder_rows(&mut self, parents: &[u32]) {
        for layer in self.self_k.iter_mut() {
            reorder(layer, parents);
        }
        for layer in self.self_v.iter_mut() {
            reorder(layer, parents);
        }
    }

    fn keep(&mut self, sources: &[usize], rows: &[usize]) {
        for layer in self.cross_k.iter_mut() {
            select(layer, sources);
        }
        for layer in self.cross_v.iter_mut() {
            select(layer, sources);
        }
        for layer in self.self_k.iter_mut() {
            select(layer, rows);
        }
        for layer in self.self_v.iter_mut() {
            select(layer, rows);
        }
    }
}

#[derive(Debug, Default)]
struct Workspace {
    x: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    a: Vec<f32>,
    h: Vec<f32>,
    f: Vec<f32>,
}

/// `out` (m x n) = `x` (m x k) times `w` (n x k) transposed, plus `bias`.
fn linear(
    x: &[f32],
    m: usize,
    w: &Matrix,
    bias: &[f32],
    out: &mut Vec<f32>,
    kernel: Int8Kernel,
) -> Result<()> {
    match w {
        Matrix::Int8(q) => {
            out.resize(m * q.rows(), 0.0);
            q.matmul(x, m, Some(bias), out, kernel);
        }
        Matrix::Float(t) => {
            let (n, k) = t.dims2()?;
            out.clear();
            for _ in 0..m {
                out.extend_from_slice(bias);
            }
            let (storage, layout) = t.storage_and_layout();
            let candle_core::Storage::Cpu(cpu) = &*storage else {
                return Err(Error::option("device", "the fast decoder runs on the CPU"));
            };
            if !layout.is_contiguous() {
                return Err(Error::option("weights", "expected contiguous weights"));
            }
            let ws = &cpu.as_slice::<f32>()?[layout.start_offset()..];
            if m <= crate::kernels::f32::MAX_ROWS {
                crate::kernels::f32::small_matmul(x, m, &ws[..n * k], n, k, bias, out);
                return Ok(());
            }
            let threads = rayon::current_num_threads();
            let par = if threads > 1 && m * n * k >= (1 << 20) {
                gemm::Parallelism::Rayon(threads)
            } else {
                gemm::Parallelism::None
            };
            // SAFETY: x is m x k, ws holds n x k, out is m x n.
            unsafe {
                gemm::gemm(
                    m,
                    n,
                    k,
                    out.as_mut_ptr(),
                    1,
                    n as isize,
                    true,
                    x.as_ptr(),
                    1,
                    k as isize,
                    ws.as_ptr(),
                    k as isize,
                    1,
                    1.0f32,
                    1.0f32,
                    false,
                    false,
                    false,
                    par,
                );
            }
        }
    }
    Ok(())
}

/// x = LayerNorm(x + h), row by row.
fn add_norm(x: &mut [f32], h: &[f32], n: &Norm, d: usize) {
    for (xr, hr) in x.chunks_exact_mut(d).zip(h.chunks_exact(d)) {
        for (a, &b) in xr.iter_mut().zip(hr) {
            *a += b;
        }
        norm_row(xr, n);
    }
}

multiversion! {
/// Layer norm of one row; the sums kept in 16 lanes, so that they vectorise.
fn norm_row(x: &mut [f32], n: &Norm) -> () {
    const L: usize = 16;
    let d = x.len() as f32;
    let chunks = x.chunks_exact(L);
    let rest = chunks.remainder();
    let mut lanes = [0f32; L];
    for c in chunks.clone() {
        for l in 0..L {
            lanes[l] += c[l];
        }
    }
    let mean = (lanes.iter().sum::<f32>() + rest.iter().sum::<f32>()) / d;
    let mut lanes = [0f32; L];
    for c in chunks {
        for l in 0..L {
            lanes[l] += (c[l] - mean) * (c[l] - mean);
        }
    }
    let var = (lanes.iter().sum::<f32>() + rest.iter().map(|&v| (v - mean) * (v - mean)).sum::<f32>()) / d;
    let inv = 1.0 / (var + n.eps).sqrt();
    for ((v, &w), &b) in x.iter_mut().zip(&n.w).zip(&n.b) {
        *v = (*v - mean) * inv * w + b;
    }
}
}

impl Seq2SeqModel {
    pub(crate) fn fast_start(
        &self,
        hidden: &Tensor,
        lens: &[usize],
        beams: usize,
    ) -> Result<FastState> {
        let fast = self.fast_decoder()?;
        let (sources, s_max, d) = hidden.dims3()?;
        let h = host(hidden)?;
        let rows = sources * beams;
        let layers = fast.layers.len();
        // With int8 weights the caches are kept in f16 (see `kv`).
        let mut kv = if self.quantization().is_some() {
            KvCache::F16(Kv::new(layers, rows))
        } else {
            KvCache::F32(Kv::new(layers, rows))
        };
        let mut buf = Vec::new();
        for layer in &fast.layers {
            linear(
                &h,
                sources * s_max,
                &layer.ck.w,
                &layer.ck.b,
                &mut buf,
                self.kernel,
            )?;
            with_kv!(&mut kv, c => c.add_cross_keys(&buf, s_max, d, lens));
            linear(
                &h,
                sources * s_max,
                &layer.cv.w,
                &layer.cv.b,
                &mut buf,
                self.kernel,
            )?;
            with_kv!(&mut kv, c => c.add_cross_values(&buf, s_max, d, lens));
        }
        Ok(FastState {
            kv,
            lens: lens.to_vec(),
            beams,
            sources,
            position: 0,
            ws: Workspace::default(),
        })
    }

    /// The encoder on host buffers: the sources packed one after another (no padding rows), each
    /// position attending over its own source only. Returns the same [`EncoderOutput`] as
    /// [`Seq2SeqModel::encode`] (hidden states padded with zeros; `bias` is the padding bias
    /// `encode` built, sources x longest).
    pub(crate) fn fast_encode(
        &self,
        sources: &[Vec<u32>],
        bias: Vec<f32>,
    ) -> Result<EncoderOutput> {
        let enc = self.fast_encoder()?;
        let d = enc.d;
        let lens: Vec<usize> = sources.iter().map(Vec::len).collect();
        let max_len = lens.iter().copied().max().unwrap_or(0);
        let starts: Vec<usize> = lens
            .iter()
            .scan(0, |acc, &l| {
                let s = *acc;
                *acc += l;
                Some(s)
            })
            .collect();
        let rows: usize = lens.iter().sum();
        if (max_len + enc.position_offset) * d > enc.positions.len() {
            return Err(Error::option(
                "sources",
                "a source is longer than the model's positions",
            ));
        }
        // Embeddings, scaled, plus positions (and BART's embedding norm).
        let mut x = vec![0f32; rows * d];
        let scale = self.embed_scale as f32;
        let ids: Vec<u32> = sources.iter().flatten().copied().collect();
        match &self.encoder_embed {
            Matrix::Int8(q) => {
                for (row, &id) in x.chunks_exact_mut(d).zip(&ids) {
                    q.dequantize_row(id as usize, row);
                }
            }
            Matrix::Float(t) => {
                let idx = Tensor::from_slice(&ids, ids.len(), t.device())?;
                x.copy_from_slice(&host(&t.index_select(&idx, 0)?)?);
            }
        }
        let mut r = 0;
        for &len in &lens {
            for p in 0..len {
                let pos = &enc.positions
                    [(p + enc.position_offset) * d..(p + enc.position_offset + 1) * d];
                embed_row(
                    &mut x[r * d..(r + 1) * d],
                    pos,
                    scale,
                    enc.embed_norm.as_ref(),
                );
                r += 1;
            }
        }
        let (mut q, mut k, mut v, mut a, mut h, mut f) = (
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
            Vec::new(),
        );
        let owner: Vec<usize> = lens
            .iter()
            .enumerate()
            .flat_map(|(s, &l)| std::iter::repeat_n(s, l))
            .collect();
        for layer in &enc.layers {
            layer
                .attn
                .project(&x, rows, d, &mut f, &mut q, &mut k, &mut v, self.kernel)?;
            let keys: Vec<KeysT> = starts
                .iter()
                .zip(&lens)
                .map(|(&s0, &l)| KeysT::from_rows(&k[s0 * d..(s0 + l) * d], d))
                .collect();
            a.resize(rows * d, 0.0);
            let run = |scores: &mut Vec<f32>, (r, out): (usize, &mut [f32])| {
                let s = owner[r];
                let values = &v[starts[s] * d..(starts[s] + lens[s]) * d];
                attend_row(
                    &q[r * d..(r + 1) * d],
                    &keys[s],
                    values,
                    enc.heads,
                    out,
                    scores,
                );
            };
            each_row(&mut a, d, true, run);
            layer
                .attn
                .finish(&mut x, &a, rows, d, &mut h, self.kernel)?;
            layer
                .ffn
                .forward(&mut x, rows, d, &mut f, &mut h, self.kernel)?;
        }
        // Back to the padded layout of `encode`.
        let mut hidden = vec![0f32; sources.len() * max_len * d];
        for ((&s0, &l), dst) in starts
            .iter()
            .zip(&lens)
            .zip(hidden.chunks_exact_mut(max_len * d))
        {
            dst[..l * d].copy_from_slice(&x[s0 * d..(s0 + l) * d]);
        }
        let n = sources.len();
        Ok(EncoderOutput {
            hidden: Tensor::from_vec(hidden, (n, max_len, d), &self.device)?,
            bias: Tensor::from_vec(bias, (n, 1, 1, max_len), &self.device)?,
            lengths: lens,
        })
    }

    /// Builds the host-side decoder (and, with int8 weights, encoder) now instead of at the first
    /// translation, so that loading, not the first translation, pays for it.
    pub(crate) fn prepare_fast(&self) -> Result<()> {
        if self.device.is_cpu() && self.dtype == DType::F32 {
            self.fast_decoder()?;
            if self.fast_encoder_applies() {
                self.fast_encoder()?;
            }
        }
        Ok(())
    }

    fn fast_encoder(&self) -> Result<&FastEncoder> {
        if let Some(f) = self.fast_enc.get() {
            return Ok(f);
        }
        let f = FastEncoder::new(self)?;
        Ok(self.fast_enc.get_or_init(|| f))
    }

    fn fast_decoder(&self) -> Result<&FastDecoder> {
        if let Some(f) = self.fast.get() {
            return Ok(f);
        }
        let f = FastDecoder::new(self)?;
        Ok(self.fast.get_or_init(|| f))
    }

    /// One step: `tokens` has one id per row; logits into `out` (rows x vocab).
    pub(crate) fn fast_step(
        &self,
        tokens: &[u32],
        st: &mut FastState,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let fast = self.fast_decoder()?;
        let d = fast.d;
        let rows = tokens.len();
        let pos = st.position + fast.position_offset;
        if (pos + 1) * d > fast.positions.len() {
            return Err(Error::option(
                "max_length",
                "decoding past the model's target positions",
            ));
        }
        let ws = &mut st.ws;
        // Embeddings, scaled, plus the position.
        ws.x.resize(rows * d, 0.0);
        let posv = &fast.positions[pos * d..(pos + 1) * d];
        let scale = self.embed_scale as f32;
        for (row, &tok) in ws.x.chunks_exact_mut(d).zip(tokens) {
            match &self.decoder_embed {
                Matrix::Int8(q) => q.dequantize_row(tok as usize, row),
                Matrix::Float(t) => row.copy_from_slice(&host(&t.narrow(0, tok as usize, 1)?)?),
            }
            embed_row(row, posv, scale, fast.embed_norm.as_ref());
        }
        let t = st.position + 1;
        let heads = fast.heads;
        for (l, layer) in fast.layers.iter().enumerate() {
            // Self-attention.
            layer.attn.project(
                &ws.x,
                rows,
                d,
                &mut ws.f,
                &mut ws.q,
                &mut ws.k,
                &mut ws.v,
                self.kernel,
            )?;
            with_kv!(&mut st.kv, c => c.push_self(l, &ws.k, &ws.v, d));
            ws.a.resize(rows * d, 0.0);
            with_kv!(&st.kv, c => c.attend_self(l, &ws.q, &mut ws.a, d, heads, t));
            layer
                .attn
                .finish(&mut ws.x, &ws.a, rows, d, &mut ws.h, self.kernel)?;
            // Cross-attention over each row's source (padding is simply not visited).
            linear(
                &ws.x,
                rows,
                &layer.cq.w,
                &layer.cq.b,
                &mut ws.q,
                self.kernel,
            )?;
            with_kv!(&st.kv, c => c.attend_cross(l, &ws.q, &mut ws.a, d, heads, &st.lens, st.beams));
            linear(
                &ws.a,
                rows,
                &layer.co.w,
                &layer.co.b,
                &mut ws.h,
                self.kernel,
            )?;
            add_norm(&mut ws.x, &ws.h, &layer.norm2, d);
            layer
                .ffn
                .forward(&mut ws.x, rows, d, &mut ws.f, &mut ws.h, self.kernel)?;
        }
        st.position += 1;
        linear(
            &ws.x,
            rows,
            &self.lm_head,
            &fast.final_bias,
            out,
            self.kernel,
        )
    }
}

multiversion! {
/// x / (1 + exp(-x)), with a vectorised exp.
fn swish(x: &mut [f32]) -> () {
    for v in x.iter_mut() {
        *v /= 1.0 + crate::generate::rows::exp_any(-*v);
    }
}
}

fn activate(x: &mut [f32], a: Activation) {
    match a {
        Activation::Swish => swish(x),
        Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Gelu | Activation::GeluTanh => {
            // Rare on this path (Marian uses swish); use candle's definitions for exactness.
            let t = Tensor::from_slice(x, x.len(), &candle_core::Device::Cpu);
            let y = t.and_then(|t| match a {
                Activation::Gelu => t.gelu_erf(),
                _ => t.gelu(),
            });
            if let Ok(v) = y.and_then(|y| y.to_vec1::<f32>()) {
                x.copy_from_slice(&v);
            }
        }
    }
}

impl FastState {
    pub(crate) fn rows(&self) -> usize {
        self.sources * self.beams
    }

    /// New row `i` continues old row `parents[i]`.
    pub(crate) fn reorder_rows(&mut self, parents: &[u32]) {
        with_kv!(&mut self.kv, c => c.reorder_rows(parents));
    }

    pub(crate) fn keep_sources(&mut self, keep: &[usize]) {
        let beams = self.beams;
        let rows: Vec<usize> = keep
            .iter()
            .flat_map(|&s| (0..beams).map(move |b| s * beams + b))
            .collect();
        with_kv!(&mut self.kv, c => c.keep(keep, &rows));
        self.lens = keep.iter().map(|&s| self.lens[s]).collect();
        self.sources = keep.len();
    }
}

/// Runs `run` on every row (of `d`) of `a`, with the row's index: in parallel when `parallel`
/// (below some size a hand-off to another thread costs more than it saves). Each thread keeps its
/// own scores buffer.
fn each_row(
    a: &mut [f32],
    d: usize,
    parallel: bool,
    run: impl Fn(&mut Vec<f32>, (usize, &mut [f32])) + Send + Sync,
) {
    if parallel {
        a.par_chunks_mut(d).enumerate().for_each_init(Vec::new, run);
    } else {
        let mut scores = Vec::new();
        a.chunks_mut(d)
            .enumerate()
            .for_each(|x| run(&mut scores, x));
    }
}

/// New entry `i` is old entry `parents[i]`; entries chosen more than once are copied (the last use
/// takes the original) into the buffers of entries nobody chose, the others just move: no
/// allocation once the buffers have grown.
fn reorder<T: Clone + Default>(layer: &mut Vec<T>, parents: &[u32]) {
    let mut old: Vec<Option<T>> = layer.drain(..).map(Some).collect();
    let mut remaining = vec![0usize; old.len()];
    for &p in parents {
        if let Some(r) = remaining.get_mut(p as usize) {
            *r += 1;
        }
    }
    let mut spare: Vec<T> = old
        .iter_mut()
        .zip(&remaining)
        .filter(|(_, &r)| r == 0)
        .filter_map(|(o, _)| o.take())
        .collect();
    for &p in parents {
        let p = p as usize;
        let v = match remaining.get_mut(p) {
            Some(r) if *r == 1 => {
                *r = 0;
                old[p].take().unwrap_or_default()
            }
            Some(r) => {
                *r -= 1;
                let mut v = spare.pop().unwrap_or_default();
                if let Some(src) = old[p].as_ref() {
                    v.clone_from(src);
                }
                v
            }
            None => T::default(),
        };
        layer.push(v);
    }
}

/// Keeps the entries at `keep`, in that order.
fn select<T: Default>(layer: &mut Vec<T>, keep: &[usize]) {
    let mut old: Vec<T> = std::mem::take(layer);
    *layer = keep.iter().map(|&i| std::mem::take(&mut old[i])).collect();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reorder_copies_repeated_parents_and_drops_the_rest() {
        let mut layer: Vec<Vec<u32>> = vec![vec![0; 3], vec![1; 5], vec![2], vec![3, 3]];
        reorder(&mut layer, &[1, 1, 3, 1]);
        assert_eq!(layer, vec![vec![1; 5], vec![1; 5], vec![3, 3], vec![1; 5]]);
        reorder(&mut layer, &[2, 0, 1, 3]);
        assert_eq!(layer, vec![vec![3, 3], vec![1; 5], vec![1; 5], vec![1; 5]]);
    }

    /// With int8 weights the host-buffer encoder replaces candle's: same hidden states (up to
    /// float rounding; the same int8 products), padding included, for Marian and BART.
    #[test]
    fn fast_encoder_equals_the_candle_encoder() {
        use crate::config::ModelConfig;
        use crate::weights::Weights;
        for name in ["marian-tiny", "marian-tiny-relu", "bart-tiny"] {
            let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("tests/fixtures")
                .join(name);
            let config = ModelConfig::from_file(dir.join("config.json")).unwrap();
            let weights = ["model.safetensors", "pytorch_model.bin"]
                .iter()
                .map(|f| dir.join(f))
                .find(|p| p.is_file())
                .unwrap();
            let model =
                Seq2SeqModel::load_quantized(config, || Weights::open(&weights), None).unwrap();
            assert!(model.fast_encoder_applies(), "{name}");
            let sources = vec![
                vec![5u32, 9, 11, 3, 0],
                vec![7, 0],
                vec![12, 13, 14, 15, 16, 17, 0],
            ];
            let fast = model.encode_with(&sources, false).unwrap();
            let reference = model.encode_with(&sources, true).unwrap();
            assert_eq!(fast.lengths, reference.lengths);
            let a = host(&fast.hidden).unwrap();
            let b = host(&reference.hidden).unwrap();
            assert_eq!(fast.hidden.dims(), reference.hidden.dims(), "{name}");
            // Padding rows hold nothing used (candle computes them on pad tokens, here zero).
            let (n, t, d) = fast.hidden.dims3().unwrap();
            let mut worst = 0f32;
            for s in 0..n {
                for p in 0..fast.lengths[s] {
                    let r = (s * t + p) * d;
                    for i in r..r + d {
                        worst = worst.max((a[i] - b[i]).abs());
                    }
                }
            }
            eprintln!("{name}: largest difference {worst:e}");
            assert!(worst < 1e-3, "{name}: largest difference {worst}");
            assert_eq!(
                host(&fast.bias).unwrap(),
                host(&reference.bias).unwrap(),
                "{name}"
            );
        }
    }
}
