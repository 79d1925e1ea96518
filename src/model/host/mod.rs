//! The host backend: the encoder-decoder on the CPU in plain buffers, for float32 (the exact
//! default) and int8 weights. It exists because a decoding step on candle's tensor operations
//! spends more time allocating and dispatching tensors than computing: a step here runs with no
//! allocation once its buffers have grown.
//!
//! - Every matrix product writes straight into a workspace: f32 through
//!   [`crate::kernels::f32::PackedF32`] (the float weights, packed once as the backend is built),
//!   int8 through [`crate::kernels::int8::QMatrix`]. With int8 weights q, k and v are one product,
//!   and the output projection is `QMatrix::matmul_top` (full precision near each row's best
//!   logit only, [`LOGIT_MARGIN`]).
//! - The encoder runs on the sources packed one after another, without padding rows: each
//!   position attends over its own source only.
//! - The decoder keeps each row's self-attention keys and values in its own growing buffers
//!   (keys feature-major, see `kv.rs`); beams are reordered by moving those buffers (copying only
//!   when a beam is chosen twice); a finished source just drops its buffers; cross-attention
//!   keys and values are computed once per batch, for the real (unpadded) positions only. With
//!   int8 weights the caches are kept in f16 (half the bytes read per step).

mod kv;

use half::f16;
use rayon::prelude::*;

use std::collections::HashMap;
use std::sync::Arc;

use super::checkpoint::{
    Attention, Checkpoint, DecoderLayer, EncoderLayer, LayerNorm, Linear, Positions, Stack,
    LAYER_NORM_EPS,
};
use super::layers::{self, Pass, Sub};
use super::store::Matrix;
use super::{AlignOut, Backend, Decoding, EncoderOutput, Hidden};
use crate::config::{Activation, ModelConfig};
use crate::error::{Error, Result};
use crate::kernels::f32::PackedF32;
use crate::kernels::int8::QMatrix;
use crate::kernels::simd::multiversion;
use kv::{attend_row, attention_probs, KeysT, KvElem};

/// The model on host buffers.
#[derive(Debug)]
pub(crate) struct HostBackend {
    encoder: HostStack<HostEncoderLayer>,
    decoder: HostStack<HostDecoderLayer>,
    lm_head: Weights,
    final_bias: Vec<f32>,
    activation: Activation,
    embed_scale: f32,
    d: usize,
    /// Layer norm before each sub-layer (M2M100) instead of after it.
    pre_norm: bool,
    /// int8 weights: attention caches in f16.
    int8: bool,
}

/// Token embeddings, the position table and BART's embedding norm, on the host.
#[derive(Debug)]
struct HostStack<L> {
    embed: Weights,
    positions: Vec<f32>,
    /// The row of position 0 in `positions`.
    position_offset: usize,
    /// A token that gets the table's row of this id instead of its position (M2M100's padding).
    position_pad: Option<u32>,
    embed_norm: Option<Norm>,
    heads: usize,
    layers: Vec<L>,
    /// The norm after the last layer (pre-norm stacks).
    final_norm: Option<Norm>,
}

#[derive(Debug, Clone)]
struct Norm {
    w: Vec<f32>,
    b: Vec<f32>,
}

#[derive(Debug, Clone)]
struct Lin {
    w: Weights,
    b: Vec<f32>,
}

#[derive(Debug)]
struct HostEncoderLayer {
    attn: SelfAttn,
    ffn: Ffn,
}

#[derive(Debug)]
struct HostDecoderLayer {
    attn: SelfAttn,
    /// `encoder_attn`: its query and output projections (keys and values are made at the start).
    cross_q: Lin,
    cross_k: Lin,
    cross_v: Lin,
    cross_o: Lin,
    cross_norm: Norm,
    ffn: Ffn,
}

/// A layer's feed-forward block with the norm after it.
#[derive(Debug)]
struct Ffn {
    fc1: Lin,
    fc2: Lin,
    norm: Norm,
}

/// A layer's self-attention weights (decoder and encoder alike): q, k and v (also as one product
/// with int8 weights), the output projection, and the norm after the block.
#[derive(Debug)]
struct SelfAttn {
    q: Lin,
    k: Lin,
    v: Lin,
    qkv: Option<Lin>,
    o: Lin,
    norm: Norm,
}

/// Reusable buffers of a forward pass.
#[derive(Debug, Default)]
struct Workspace {
    x: Vec<f32>,
    /// The normalised input of a pre-norm sub-layer.
    n: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    a: Vec<f32>,
    h: Vec<f32>,
    f: Vec<f32>,
}

fn host(t: &candle_core::Tensor) -> Result<Vec<f32>> {
    Ok(t.to_dtype(candle_core::DType::F32)?
        .flatten_all()?
        .to_vec1::<f32>()?)
}

fn norm(n: &LayerNorm) -> Result<Norm> {
    Ok(Norm {
        w: host(&n.weight)?,
        b: host(&n.bias)?,
    })
}

/// A weight matrix on the host.
#[derive(Debug, Clone)]
enum Weights {
    /// Float weights, packed for [`PackedF32::matmul`].
    F32(Arc<PackedF32>),
    Int8(Arc<QMatrix>),
}

/// Turns the checkpoint's matrices into [`Weights`]: float weights usually arrive packed
/// ([`Matrix::Packed`], packed as they were read); a float tensor (an int8 cache's unquantised
/// matrix) is packed once here (tied matrices share one packed copy), taken by value so that its
/// float copy is freed as soon as it is packed.
#[derive(Default)]
struct Packer {
    packed: HashMap<candle_core::TensorId, Arc<PackedF32>>,
}

impl Packer {
    fn weights(&mut self, m: Matrix) -> Result<Weights> {
        Ok(match m {
            Matrix::Int8(q) => Weights::Int8(q),
            Matrix::Packed(p) => Weights::F32(p),
            Matrix::Float(t) => {
                if let Some(p) = self.packed.get(&t.id()) {
                    return Ok(Weights::F32(p.clone()));
                }
                let p = Arc::new(PackedF32::from_tensor(&t)?);
                self.packed.insert(t.id(), p.clone());
                Weights::F32(p)
            }
        })
    }

    fn lin(&mut self, l: Linear) -> Result<Lin> {
        Ok(Lin {
            b: host(&l.bias)?,
            w: self.weights(l.weight)?,
        })
    }
}

/// int8 matrices on the same input as one (see [`QMatrix::concat`]); `None` with float weights.
fn fuse(parts: &[&Lin]) -> Option<Lin> {
    let qs = parts
        .iter()
        .map(|l| match &l.w {
            Weights::Int8(q) => Some(&**q),
            Weights::F32(_) => None,
        })
        .collect::<Option<Vec<&QMatrix>>>()?;
    Some(Lin {
        w: Weights::Int8(Arc::new(QMatrix::concat(&qs)?)),
        b: parts.iter().flat_map(|l| l.b.iter().copied()).collect(),
    })
}

impl SelfAttn {
    fn new(a: Attention, norm_after: &LayerNorm, pk: &mut Packer) -> Result<Self> {
        let (q, k, v) = (pk.lin(a.q_proj)?, pk.lin(a.k_proj)?, pk.lin(a.v_proj)?);
        Ok(SelfAttn {
            qkv: fuse(&[&q, &k, &v]),
            q,
            k,
            v,
            o: pk.lin(a.out_proj)?,
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
    ) -> Result<()> {
        let Some(f) = self.qkv.as_ref().filter(|f| f.b.len() == 3 * d) else {
            linear(x, rows, &self.q, q)?;
            linear(x, rows, &self.k, k)?;
            return linear(x, rows, &self.v, v);
        };
        linear(x, rows, f, tmp)?;
        for (i, out) in [q, k, v].into_iter().enumerate() {
            out.clear();
            for row in tmp.chunks_exact(3 * d) {
                out.extend_from_slice(&row[i * d..(i + 1) * d]);
            }
        }
        Ok(())
    }
}

impl Ffn {
    fn new(fc1: Linear, fc2: Linear, norm_after: &LayerNorm, pk: &mut Packer) -> Result<Self> {
        Ok(Ffn {
            fc1: pk.lin(fc1)?,
            fc2: pk.lin(fc2)?,
            norm: norm(norm_after)?,
        })
    }

    /// `fc2(act(fc1(input)))` of `rows` rows into `h`; `f` is a workspace.
    fn forward(
        &self,
        input: &[f32],
        rows: usize,
        activation: Activation,
        f: &mut Vec<f32>,
        h: &mut Vec<f32>,
    ) -> Result<()> {
        linear(input, rows, &self.fc1, f)?;
        activate(f, activation);
        linear(f, rows, &self.fc2, h)
    }
}

impl<L> HostStack<L> {
    fn new(
        embed: Weights,
        positions: &Positions,
        embed_norm: Option<&LayerNorm>,
        heads: usize,
        layers: Vec<L>,
        final_norm: Option<&LayerNorm>,
    ) -> Result<Self> {
        let (table, position_offset) = positions.table();
        Ok(HostStack {
            embed,
            positions: host(table)?,
            position_offset,
            position_pad: positions.pad,
            embed_norm: embed_norm.map(norm).transpose()?,
            heads,
            layers,
            final_norm: final_norm.map(norm).transpose()?,
        })
    }

    /// The norm after the last layer, over the rows of `x` (pre-norm stacks).
    fn finish(&self, x: &mut [f32], d: usize) {
        if let Some(n) = &self.final_norm {
            x.chunks_exact_mut(d).for_each(|row| norm_row(row, n));
        }
    }

    /// Row `token`'s embedding, scaled, plus position `pos`, then the embedding norm (BART),
    /// into `row`.
    fn embed_row(&self, token: u32, pos: usize, scale: f32, row: &mut [f32]) -> Result<()> {
        let d = row.len();
        let at = match self.position_pad {
            Some(pad) if pad == token => pad as usize * d,
            _ => (pos + self.position_offset) * d,
        };
        let position = self.positions.get(at..at + d).ok_or_else(|| {
            Error::Internal(format!("position {pos} is outside the position table"))
        })?;
        match &self.embed {
            Weights::Int8(q) => q.dequantize_row(token as usize, row)?,
            Weights::F32(p) => p
                .row(token as usize, row)
                .map_err(|_| Error::Internal(format!("token {token} is outside the embeddings")))?,
        }
        for (v, &p) in row.iter_mut().zip(position) {
            *v = if scale == 1.0 { *v + p } else { *v * scale + p };
        }
        if let Some(n) = &self.embed_norm {
            norm_row(row, n);
        }
        Ok(())
    }

    fn capacity(&self, d: usize) -> usize {
        (self.positions.len() / d.max(1)).saturating_sub(self.position_offset)
    }
}

impl HostBackend {
    /// The host backend over a checkpoint whose weights are CPU f32 tensors or int8 matrices
    /// (consumed: each float matrix is freed once packed).
    pub(crate) fn new(cfg: &ModelConfig, ckpt: Checkpoint) -> Result<Self> {
        let Checkpoint {
            pre_norm,
            encoder,
            decoder,
            lm_head,
            final_logits_bias,
            embed_scale,
        } = ckpt;
        let int8 = matches!(lm_head, Matrix::Int8(_));
        let mut pk = Packer::default();
        // The embeddings first: usually one matrix, the largest, shared by all three.
        let lm_head = pk.weights(lm_head)?;
        let Stack {
            embed_tokens,
            embed_positions,
            layernorm_embedding,
            layers,
            layer_norm,
        } = encoder;
        let embed = pk.weights(embed_tokens)?;
        let Stack {
            embed_tokens: dec_embed_tokens,
            embed_positions: dec_positions,
            layernorm_embedding: dec_layernorm,
            layers: dec_layers,
            layer_norm: dec_final_norm,
        } = decoder;
        let dec_embed = pk.weights(dec_embed_tokens)?;
        let mut enc_layers = Vec::with_capacity(layers.len());
        for l in layers {
            let EncoderLayer {
                self_attn,
                self_attn_layer_norm,
                fc1,
                fc2,
                final_layer_norm,
            } = l;
            enc_layers.push(HostEncoderLayer {
                attn: SelfAttn::new(self_attn, &self_attn_layer_norm, &mut pk)?,
                ffn: Ffn::new(fc1, fc2, &final_layer_norm, &mut pk)?,
            });
        }
        let encoder = HostStack::new(
            embed,
            &embed_positions,
            layernorm_embedding.as_ref(),
            cfg.encoder_attention_heads,
            enc_layers,
            layer_norm.as_ref(),
        )?;
        let mut layers = Vec::with_capacity(dec_layers.len());
        for l in dec_layers {
            let DecoderLayer {
                self_attn,
                self_attn_layer_norm,
                encoder_attn: c,
                encoder_attn_layer_norm,
                fc1,
                fc2,
                final_layer_norm,
            } = l;
            layers.push(HostDecoderLayer {
                attn: SelfAttn::new(self_attn, &self_attn_layer_norm, &mut pk)?,
                cross_q: pk.lin(c.q_proj)?,
                cross_k: pk.lin(c.k_proj)?,
                cross_v: pk.lin(c.v_proj)?,
                cross_o: pk.lin(c.out_proj)?,
                cross_norm: norm(&encoder_attn_layer_norm)?,
                ffn: Ffn::new(fc1, fc2, &final_layer_norm, &mut pk)?,
            });
        }
        let decoder = HostStack::new(
            dec_embed,
            &dec_positions,
            dec_layernorm.as_ref(),
            cfg.decoder_attention_heads,
            layers,
            dec_final_norm.as_ref(),
        )?;
        Ok(HostBackend {
            encoder,
            decoder,
            int8,
            lm_head,
            final_bias: host(&final_logits_bias)?,
            activation: cfg.activation,
            embed_scale: embed_scale as f32,
            d: cfg.d_model,
            pre_norm,
        })
    }

    fn start_with<E: KvElem>(
        &self,
        packed: &[f32],
        lens: &[usize],
        beams: usize,
    ) -> Result<HostState<'_, E>> {
        let layers = self.decoder.layers.len();
        let mut kv = Kv::<E>::new(layers, lens.len() * beams);
        self.add_cross(&mut kv, packed, lens)?;
        Ok(HostState {
            backend: self,
            kv,
            lens: lens.to_vec(),
            beams,
            positions: vec![0; lens.len()],
            ws: Workspace::default(),
        })
    }

    /// Adds every layer's cross-attention keys and values of `packed` sources to `kv`.
    fn add_cross<E: KvElem>(&self, kv: &mut Kv<E>, packed: &[f32], lens: &[usize]) -> Result<()> {
        let d = self.d;
        let rows: usize = lens.iter().sum();
        let mut buf = Vec::new();
        for (l, layer) in self.decoder.layers.iter().enumerate() {
            linear(packed, rows, &layer.cross_k, &mut buf)?;
            kv.add_cross_keys(l, &buf, d, lens);
            linear(packed, rows, &layer.cross_v, &mut buf)?;
            kv.add_cross_values(l, &buf, d, lens);
        }
        Ok(())
    }
}

/// The host's packed hidden states of an encoder output.
fn packed(encoded: &EncoderOutput) -> Result<&[f32]> {
    match &encoded.hidden {
        Hidden::Host(packed) => Ok(packed),
        _ => Err(Error::Internal(
            "an encoder output of the candle backend given to the host backend".into(),
        )),
    }
}

impl Backend for HostBackend {
    fn encode(&self, sources: &[Vec<u32>]) -> Result<EncoderOutput> {
        let enc = &self.encoder;
        let d = self.d;
        let lens: Vec<usize> = sources.iter().map(Vec::len).collect();
        let starts: Vec<usize> = lens
            .iter()
            .scan(0, |acc, &l| {
                let s = *acc;
                *acc += l;
                Some(s)
            })
            .collect();
        let rows: usize = lens.iter().sum();
        let mut ws = Workspace::default();
        ws.x.resize(rows * d, 0.0);
        let mut r = 0;
        for s in sources {
            for (p, &token) in s.iter().enumerate() {
                enc.embed_row(token, p, self.embed_scale, &mut ws.x[r * d..(r + 1) * d])?;
                r += 1;
            }
        }
        let owner: Vec<usize> = lens
            .iter()
            .enumerate()
            .flat_map(|(s, &l)| std::iter::repeat_n(s, l))
            .collect();
        let mut pass = EncoderPass {
            m: self,
            ws: &mut ws,
            lens: &lens,
            starts: &starts,
            owner: &owner,
            normed: false,
        };
        layers::run(
            &mut pass,
            enc.layers.len(),
            layers::ENCODER_LAYER,
            self.pre_norm,
        )?;
        Ok(EncoderOutput {
            lengths: lens,
            hidden: Hidden::Host(ws.x),
        })
    }

    fn start<'a>(
        &'a self,
        encoded: &EncoderOutput,
        beams: usize,
    ) -> Result<Box<dyn Decoding + 'a>> {
        let packed = packed(encoded)?;
        Ok(if self.int8 {
            Box::new(self.start_with::<f16>(packed, &encoded.lengths, beams)?)
        } else {
            Box::new(self.start_with::<f32>(packed, &encoded.lengths, beams)?)
        })
    }

    fn max_source_positions(&self) -> usize {
        self.encoder.capacity(self.d)
    }

    fn max_target_positions(&self) -> usize {
        self.decoder.capacity(self.d)
    }

    fn name(&self) -> &'static str {
        "host"
    }

    fn rows_independent(&self) -> bool {
        // Every kernel sums each output in input order, and int8 scales are per row.
        true
    }

    fn joins(&self) -> bool {
        // Caches are per row and positions per source.
        true
    }
}

/// One generation's state on the host backend, with attention caches in `E` (f32 for float
/// weights: the exact path; f16 for int8 weights).
struct HostState<'a, E> {
    backend: &'a HostBackend,
    kv: Kv<E>,
    lens: Vec<usize>,
    beams: usize,
    /// Decoder positions consumed by each source's rows.
    positions: Vec<usize>,
    ws: Workspace,
}

impl<E: KvElem> Decoding for HostState<'_, E> {
    fn step(
        &mut self,
        tokens: &[u32],
        out: &mut Vec<f32>,
        mut align: Option<AlignOut<'_>>,
    ) -> Result<()> {
        let m = self.backend;
        let dec = &m.decoder;
        let d = m.d;
        let rows = tokens.len();
        let ws = &mut self.ws;
        ws.x.resize(rows * d, 0.0);
        let beams = self.beams.max(1);
        for (r, (row, &tok)) in ws.x.chunks_exact_mut(d).zip(tokens).enumerate() {
            let position = self.positions.get(r / beams).copied().unwrap_or(0);
            dec.embed_row(tok, position, m.embed_scale, row)?;
        }
        let t = self.positions.iter().max().copied().unwrap_or(0) + 1;
        let mut pass = StepPass {
            m,
            kv: &mut self.kv,
            ws,
            lens: &self.lens,
            beams: self.beams,
            t,
            align: align.as_mut(),
            normed: false,
        };
        layers::run(
            &mut pass,
            dec.layers.len(),
            layers::DECODER_LAYER,
            m.pre_norm,
        )?;
        for p in &mut self.positions {
            *p += 1;
        }
        logits(&ws.x, rows, &m.lm_head, &m.final_bias, out)
    }

    fn reorder(&mut self, parents: &[u32], beams: usize) -> Result<()> {
        self.kv.reorder_rows(parents);
        self.beams = beams;
        Ok(())
    }

    fn keep(&mut self, sources: &[usize]) -> Result<()> {
        let beams = self.beams;
        let rows: Vec<usize> = sources
            .iter()
            .flat_map(|&s| (0..beams).map(move |b| s * beams + b))
            .collect();
        self.kv.keep(sources, &rows);
        self.lens = sources.iter().map(|&s| self.lens[s]).collect();
        self.positions = sources.iter().map(|&s| self.positions[s]).collect();
        Ok(())
    }

    fn join(&mut self, encoded: &EncoderOutput) -> Result<()> {
        let lens = encoded.lengths();
        self.backend
            .add_cross(&mut self.kv, packed(encoded)?, lens)?;
        self.kv.add_rows(lens.len() * self.beams);
        self.lens.extend_from_slice(lens);
        self.positions.extend(std::iter::repeat_n(0, lens.len()));
        Ok(())
    }
}

/// The attention caches of one generation.
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
            cross_k: vec![Vec::new(); layers],
            cross_v: vec![Vec::new(); layers],
            self_k: vec![vec![KeysT::default(); rows]; layers],
            self_v: vec![vec![Vec::new(); rows]; layers],
            tmp: Vec::new(),
        }
    }

    /// Appends `rows` rows with empty self-attention caches (rows of sources that join).
    fn add_rows(&mut self, rows: usize) {
        for layer in &mut self.self_k {
            layer.extend(std::iter::repeat_n(KeysT::default(), rows));
        }
        for layer in &mut self.self_v {
            layer.extend(std::iter::repeat_n(Vec::new(), rows));
        }
    }

    /// Layer `l`'s cross-attention keys of more sources: `buf` holds their rows packed one after
    /// another (`lens[s]` rows of `d` each).
    fn add_cross_keys(&mut self, l: usize, buf: &[f32], d: usize, lens: &[usize]) {
        let mut at = 0;
        self.cross_k[l].extend(lens.iter().map(|&n| {
            let k = KeysT::from_rows(&buf[at * d..(at + n) * d], d);
            at += n;
            k
        }));
    }

    /// Layer `l`'s cross-attention values, packed like [`Kv::add_cross_keys`]'s keys.
    fn add_cross_values(&mut self, l: usize, buf: &[f32], d: usize, lens: &[usize]) {
        let mut at = 0;
        self.cross_v[l].extend(lens.iter().map(|&n| {
            let mut v = Vec::with_capacity(n * d);
            E::store(&buf[at * d..(at + n) * d], &mut v);
            at += n;
            v
        }));
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

    /// Every row's cross-attention probabilities at layer `l`, averaged over the heads, into
    /// `probs` (rows of `width`).
    #[allow(clippy::too_many_arguments)]
    fn cross_probs(
        &self,
        l: usize,
        q: &[f32],
        d: usize,
        heads: usize,
        beams: usize,
        probs: &mut [f32],
        width: usize,
    ) {
        for (r, row) in probs.chunks_mut(width.max(1)).enumerate() {
            if let (Some(keys), Some(qr)) = (
                self.cross_k[l].get(r / beams.max(1)),
                q.get(r * d..(r + 1) * d),
            ) {
                attention_probs(qr, keys, heads, row);
            }
        }
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

/// `out` (m x n) = `x` (m x k) times `l`'s weight (n x k) transposed, plus its bias.
fn linear(x: &[f32], m: usize, l: &Lin, out: &mut Vec<f32>) -> Result<()> {
    linear_with_bias(x, m, &l.w, &l.b, out)
}

/// `out` (m x n) = `x` (m x k) times `w` (n x k) transposed, plus `bias` (n).
fn linear_with_bias(
    x: &[f32],
    m: usize,
    w: &Weights,
    bias: &[f32],
    out: &mut Vec<f32>,
) -> Result<()> {
    match w {
        Weights::Int8(q) => {
            out.resize(m * q.rows(), 0.0);
            q.matmul(x, m, Some(bias), out)
        }
        Weights::F32(p) => p.matmul(x, m, bias, out),
    }
}

/// How far below a row's best logit the int8 output projection's logits are still the full
/// 16-bit products (3 nats: a twentieth of the best's probability, beyond any token a beam keeps
/// in practice); the rest are within their bound of it ([`QMatrix::matmul_top`]).
const LOGIT_MARGIN: f32 = 3.0;

/// The output projection: `out` (m x vocabulary) = `x` (m x d) times `w` transposed plus `bias`;
/// with int8 weights only the logits near each row's best as the full product
/// ([`LOGIT_MARGIN`]).
fn logits(x: &[f32], m: usize, w: &Weights, bias: &[f32], out: &mut Vec<f32>) -> Result<()> {
    match w {
        Weights::Int8(q) => {
            out.resize(m * q.rows(), 0.0);
            q.matmul_top(x, m, bias, out, LOGIT_MARGIN)
        }
        Weights::F32(_) => linear_with_bias(x, m, w, bias, out),
    }
}

/// `buf` = LayerNorm(`x`) by `n`, row by row (a pre-norm sub-layer's input).
fn normalized_into(x: &[f32], n: &Norm, d: usize, buf: &mut Vec<f32>) {
    buf.clear();
    buf.extend_from_slice(x);
    buf.chunks_exact_mut(d).for_each(|row| norm_row(row, n));
}

/// A sub-layer's residual, row by row: `x = x + h`, then with `normalize` (post-norm)
/// `x = LayerNorm(x)`.
fn residual(x: &mut [f32], h: &[f32], n: &Norm, d: usize, normalize: bool) {
    for (xr, hr) in x.chunks_exact_mut(d).zip(h.chunks_exact(d)) {
        for (a, &b) in xr.iter_mut().zip(hr) {
            *a += b;
        }
        if normalize {
            norm_row(xr, n);
        }
    }
}

impl HostEncoderLayer {
    fn norm(&self, sub: Sub) -> Result<&Norm> {
        match sub {
            Sub::SelfAttention => Ok(&self.attn.norm),
            Sub::FeedForward => Ok(&self.ffn.norm),
            Sub::CrossAttention => Err(Error::Internal(
                "an encoder layer has no cross-attention".into(),
            )),
        }
    }
}

impl HostDecoderLayer {
    fn norm(&self, sub: Sub) -> &Norm {
        match sub {
            Sub::SelfAttention => &self.attn.norm,
            Sub::CrossAttention => &self.cross_norm,
            Sub::FeedForward => &self.ffn.norm,
        }
    }
}

/// An encoder pass on the host: the sources packed one after another in `ws.x`; a sub-layer's
/// input is `ws.x` or its norm in `ws.n`, its output goes to `ws.h`.
struct EncoderPass<'p> {
    m: &'p HostBackend,
    ws: &'p mut Workspace,
    lens: &'p [usize],
    starts: &'p [usize],
    /// The source of each row.
    owner: &'p [usize],
    normed: bool,
}

impl Pass for EncoderPass<'_> {
    fn input(&mut self, layer: usize, sub: Sub, normalize: bool) -> Result<()> {
        self.normed = normalize;
        if normalize {
            let n = self.m.encoder.layers[layer].norm(sub)?;
            normalized_into(&self.ws.x, n, self.m.d, &mut self.ws.n);
        }
        Ok(())
    }

    fn sublayer(&mut self, layer: usize, sub: Sub) -> Result<()> {
        let m = self.m;
        let d = m.d;
        let l = &m.encoder.layers[layer];
        let Workspace {
            x,
            n,
            q,
            k,
            v,
            a,
            h,
            f,
        } = &mut *self.ws;
        let input: &[f32] = if self.normed { n } else { x };
        let rows = input.len() / d.max(1);
        match sub {
            Sub::SelfAttention => {
                l.attn.project(input, rows, d, f, q, k, v)?;
                let (starts, lens, owner) = (self.starts, self.lens, self.owner);
                let keys: Vec<KeysT> = starts
                    .iter()
                    .zip(lens)
                    .map(|(&s0, &len)| KeysT::from_rows(&k[s0 * d..(s0 + len) * d], d))
                    .collect();
                a.resize(rows * d, 0.0);
                let (q, v) = (&*q, &*v);
                let heads = m.encoder.heads;
                let run = |scores: &mut Vec<f32>, (r, out): (usize, &mut [f32])| {
                    let s = owner[r];
                    let values = &v[starts[s] * d..(starts[s] + lens[s]) * d];
                    attend_row(&q[r * d..(r + 1) * d], &keys[s], values, heads, out, scores);
                };
                each_row(a, d, true, run);
                linear(a, rows, &l.attn.o, h)
            }
            Sub::FeedForward => l.ffn.forward(input, rows, m.activation, f, h),
            Sub::CrossAttention => Err(Error::Internal(
                "an encoder layer has no cross-attention".into(),
            )),
        }
    }

    fn residual(&mut self, layer: usize, sub: Sub, normalize: bool) -> Result<()> {
        let n = self.m.encoder.layers[layer].norm(sub)?;
        residual(&mut self.ws.x, &self.ws.h, n, self.m.d, normalize);
        Ok(())
    }

    fn final_norm(&mut self) -> Result<()> {
        self.m.encoder.finish(&mut self.ws.x, self.m.d);
        Ok(())
    }
}

/// A decoder step on the host: one row per beam in `ws.x`, the caches in `kv`.
struct StepPass<'p, 'a, E> {
    m: &'p HostBackend,
    kv: &'p mut Kv<E>,
    ws: &'p mut Workspace,
    lens: &'p [usize],
    beams: usize,
    /// Decoder positions of the longest row after this step.
    t: usize,
    align: Option<&'p mut AlignOut<'a>>,
    normed: bool,
}

impl<E: KvElem> Pass for StepPass<'_, '_, E> {
    fn input(&mut self, layer: usize, sub: Sub, normalize: bool) -> Result<()> {
        self.normed = normalize;
        if normalize {
            let n = self.m.decoder.layers[layer].norm(sub);
            normalized_into(&self.ws.x, n, self.m.d, &mut self.ws.n);
        }
        Ok(())
    }

    fn sublayer(&mut self, layer: usize, sub: Sub) -> Result<()> {
        let m = self.m;
        let d = m.d;
        let heads = m.decoder.heads;
        let l = &m.decoder.layers[layer];
        let Workspace {
            x,
            n,
            q,
            k,
            v,
            a,
            h,
            f,
        } = &mut *self.ws;
        let input: &[f32] = if self.normed { n } else { x };
        let rows = input.len() / d.max(1);
        match sub {
            Sub::SelfAttention => {
                l.attn.project(input, rows, d, f, q, k, v)?;
                self.kv.push_self(layer, k, v, d);
                a.resize(rows * d, 0.0);
                self.kv.attend_self(layer, q, a, d, heads, self.t);
                linear(a, rows, &l.attn.o, h)
            }
            Sub::CrossAttention => {
                // Over each row's source (padding is simply not visited).
                linear(input, rows, &l.cross_q, q)?;
                if let Some(al) = self.align.as_mut().filter(|al| al.layer == layer) {
                    self.kv
                        .cross_probs(layer, q, d, heads, self.beams, al.probs, al.width);
                }
                a.resize(rows * d, 0.0);
                self.kv
                    .attend_cross(layer, q, a, d, heads, self.lens, self.beams);
                linear(a, rows, &l.cross_o, h)
            }
            Sub::FeedForward => l.ffn.forward(input, rows, m.activation, f, h),
        }
    }

    fn residual(&mut self, layer: usize, sub: Sub, normalize: bool) -> Result<()> {
        let n = self.m.decoder.layers[layer].norm(sub);
        residual(&mut self.ws.x, &self.ws.h, n, self.m.d, normalize);
        Ok(())
    }

    fn final_norm(&mut self) -> Result<()> {
        self.m.decoder.finish(&mut self.ws.x, self.m.d);
        Ok(())
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
    let inv = 1.0 / (var + LAYER_NORM_EPS as f32).sqrt();
    for ((v, &w), &b) in x.iter_mut().zip(&n.w).zip(&n.b) {
        *v = (*v - mean) * inv * w + b;
    }
}
}

multiversion! {
/// x / (1 + exp(-x)), with a vectorised exp.
fn swish(x: &mut [f32]) -> () {
    for v in x.iter_mut() {
        *v /= 1.0 + crate::kernels::exp::exp_any(-*v);
    }
}
}

fn activate(x: &mut [f32], a: Activation) {
    match a {
        Activation::Swish => swish(x),
        Activation::Relu => x.iter_mut().for_each(|v| *v = v.max(0.0)),
        Activation::Gelu | Activation::GeluTanh => {
            // Rare on this path (Marian uses swish); candle's definitions, for exactness.
            let t = candle_core::Tensor::from_slice(x, x.len(), &candle_core::Device::Cpu);
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
    *layer = keep
        .iter()
        .map(|&i| old.get_mut(i).map(std::mem::take).unwrap_or_default())
        .collect();
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
}
