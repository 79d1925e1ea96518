//! The encoder-decoder transformer behind MarianMT and BART, on candle.
//!
//! Paper: Vaswani et al., "Attention Is All You Need" (2017); Marian: Junczys-Dowmunt et al. (2018);
//! BART: Lewis et al. (2019). Reference implementation matched here: Hugging Face transformers'
//! `modeling_marian.py` and `modeling_bart.py` (post-norm layers, sinusoidal or learned positions,
//! `final_logits_bias`).
//!
//! The model holds no decoding state: [`Seq2SeqModel::encode`] returns an [`EncoderOutput`],
//! [`Seq2SeqModel::start_decoding`] turns it into a [`DecoderState`] (cross-attention keys and values
//! computed once, here), and [`Seq2SeqModel::decode`] advances that state. The search that owns the
//! state reorders beams and drops finished sources. One loaded model can serve many threads.
//!
//! Beams share their source's cross-attention keys and values: rows of the decoder are laid out
//! source-major (`source * beams + beam`), and the cross-attention treats the `beams` rows of a source
//! as extra query positions against that source's keys, so nothing is copied per beam.

mod fast;
mod kv;
mod store;
mod weights_check;

use std::path::Path;

use candle_core::{DType, Device, Module, Tensor};
use candle_nn::{LayerNorm, VarBuilder};

use crate::kernels::Int8Kernel;
pub use store::Matrix;
use store::{CacheStore, Recorder, Store, VbStore};

use crate::config::{Activation, Architecture, ModelConfig};
use crate::error::{Error, Result};
use crate::weights::Weights;

pub use weights_check::expected_tensors;

/// BART's learned position tables start at this offset (a fairseq legacy).
const BART_POSITION_OFFSET: usize = 2;

/// A linear layer `y = x W^T + b` whose weight is full precision or int8.
#[derive(Debug, Clone)]
struct Proj {
    weight: Matrix,
    bias: Tensor,
    /// The bias on the host, for the int8 kernel.
    bias_host: Option<Vec<f32>>,
    kernel: Int8Kernel,
}

impl Proj {
    fn new(store: &dyn Store, name: &str, inputs: usize, outputs: usize) -> Result<Self> {
        let weight = store.matrix(&format!("{name}.weight"), outputs, inputs)?;
        let bias = store.tensor(&format!("{name}.bias"), &[outputs])?;
        let bias_host = match weight {
            Matrix::Int8(_) => Some(bias.to_dtype(DType::F32)?.to_vec1::<f32>()?),
            Matrix::Float(_) => None,
        };
        Ok(Proj {
            weight,
            bias,
            bias_host,
            kernel: Int8Kernel::detect(),
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        matmul_t(
            x,
            &self.weight,
            Some(&self.bias),
            self.bias_host.as_deref(),
            self.kernel,
        )
    }
}

/// `x` (..., k) times `w` (n x k) transposed, plus `bias`: (..., n).
fn matmul_t(
    x: &Tensor,
    w: &Matrix,
    bias: Option<&Tensor>,
    bias_host: Option<&[f32]>,
    kernel: Int8Kernel,
) -> candle_core::Result<Tensor> {
    let dims = x.dims().to_vec();
    let k = dims.last().copied().unwrap_or(0);
    let m: usize = dims[..dims.len().saturating_sub(1)].iter().product();
    let mut out_dims = dims.clone();
    match w {
        Matrix::Float(w) => {
            let n = w.dims()[0];
            if let Some(last) = out_dims.last_mut() {
                *last = n;
            }
            let y = x.reshape((m, k))?.matmul(&w.t()?)?;
            let y = match bias {
                Some(b) => y.broadcast_add(b)?,
                None => y,
            };
            y.reshape(out_dims)
        }
        Matrix::Int8(q) => {
            let n = q.rows();
            if let Some(last) = out_dims.last_mut() {
                *last = n;
            }
            let xs = x.flatten_all()?.to_vec1::<f32>()?;
            let mut out = vec![0f32; m * n];
            q.matmul(&xs, m, bias_host, &mut out, kernel);
            Tensor::from_vec(out, out_dims, x.device())
        }
    }
}

#[derive(Debug, Clone)]
struct Attention {
    q: Proj,
    k: Proj,
    v: Proj,
    out: Proj,
    heads: usize,
    head_dim: usize,
    scaling: f64,
}

impl Attention {
    fn new(d_model: usize, heads: usize, store: &dyn Store, name: &str) -> Result<Self> {
        let lin = |p: &str| Proj::new(store, &format!("{name}.{p}"), d_model, d_model);
        let head_dim = d_model / heads;
        Ok(Attention {
            q: lin("q_proj")?,
            k: lin("k_proj")?,
            v: lin("v_proj")?,
            out: lin("out_proj")?,
            heads,
            head_dim,
            scaling: (head_dim as f64).powf(-0.5),
        })
    }

    /// (batch, len, d_model) -> (batch, heads, len, head_dim)
    fn split_heads(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t, _) = x.dims3()?;
        x.reshape((b, t, self.heads, self.head_dim))?
            .transpose(1, 2)?
            .contiguous()
    }

    /// Keys and values of `x`, split into heads.
    fn key_values(&self, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
        Ok((
            self.split_heads(&self.k.forward(x)?)?,
            self.split_heads(&self.v.forward(x)?)?,
        ))
    }

    /// Scaled dot-product attention of `q` (batch, heads, tq, hd) over `k`/`v`
    /// (batch, heads, tk, hd), with an additive `bias` broadcast over the scores.
    fn attend(
        &self,
        q: &Tensor,
        k: &Tensor,
        v: &Tensor,
        bias: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        let q = (q * self.scaling)?;
        let mut scores = q.matmul(&k.t()?)?;
        if let Some(bias) = bias {
            scores = scores.broadcast_add(bias)?;
        }
        let probs = candle_nn::ops::softmax_last_dim(&scores)?;
        probs.matmul(v)
    }

    /// (batch, heads, t, hd) -> (batch, t, d_model) through the output projection.
    fn merge(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let (b, _, t, _) = x.dims4()?;
        let x = x
            .transpose(1, 2)?
            .reshape((b, t, self.heads * self.head_dim))?;
        self.out.forward(&x)
    }
}

#[derive(Debug, Clone)]
struct FeedForward {
    fc1: Proj,
    fc2: Proj,
    activation: Activation,
}

impl FeedForward {
    fn new(
        d_model: usize,
        ffn: usize,
        activation: Activation,
        store: &dyn Store,
        name: &str,
    ) -> Result<Self> {
        Ok(FeedForward {
            fc1: Proj::new(store, &format!("{name}.fc1"), d_model, ffn)?,
            fc2: Proj::new(store, &format!("{name}.fc2"), ffn, d_model)?,
            activation,
        })
    }

    fn forward(&self, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = self.fc1.forward(x)?;
        let h = match self.activation {
            Activation::Swish => h.silu()?,
            Activation::Relu => h.relu()?,
            Activation::Gelu => h.gelu_erf()?,
            Activation::GeluTanh => h.gelu()?,
        };
        self.fc2.forward(&h)
    }
}

fn layer_norm(d_model: usize, store: &dyn Store, name: &str) -> Result<LayerNorm> {
    Ok(LayerNorm::new(
        store.tensor(&format!("{name}.weight"), &[d_model])?,
        store.tensor(&format!("{name}.bias"), &[d_model])?,
        1e-5,
    ))
}

#[derive(Debug, Clone)]
struct EncoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    ffn: FeedForward,
    final_layer_norm: LayerNorm,
}

impl EncoderLayer {
    fn new(cfg: &ModelConfig, store: &dyn Store, name: &str) -> Result<Self> {
        let d = cfg.d_model;
        let h = cfg.encoder_attention_heads;
        Ok(EncoderLayer {
            self_attn: Attention::new(d, h, store, &format!("{name}.self_attn"))?,
            self_attn_layer_norm: layer_norm(d, store, &format!("{name}.self_attn_layer_norm"))?,
            ffn: FeedForward::new(d, cfg.encoder_ffn_dim, cfg.activation, store, name)?,
            final_layer_norm: layer_norm(d, store, &format!("{name}.final_layer_norm"))?,
        })
    }

    fn forward(&self, x: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
        let a = &self.self_attn;
        let q = a.split_heads(&a.q.forward(x)?)?;
        let (k, v) = a.key_values(x)?;
        let h = a.merge(&a.attend(&q, &k, &v, Some(bias))?)?;
        let x = self.self_attn_layer_norm.forward(&(x + h)?)?;
        let h = self.ffn.forward(&x)?;
        self.final_layer_norm.forward(&(x + h)?)
    }
}

#[derive(Debug, Clone)]
struct DecoderLayer {
    self_attn: Attention,
    self_attn_layer_norm: LayerNorm,
    cross_attn: Attention,
    cross_attn_layer_norm: LayerNorm,
    ffn: FeedForward,
    final_layer_norm: LayerNorm,
}

impl DecoderLayer {
    fn new(cfg: &ModelConfig, store: &dyn Store, name: &str) -> Result<Self> {
        let (d, h) = (cfg.d_model, cfg.decoder_attention_heads);
        Ok(DecoderLayer {
            self_attn: Attention::new(d, h, store, &format!("{name}.self_attn"))?,
            self_attn_layer_norm: layer_norm(d, store, &format!("{name}.self_attn_layer_norm"))?,
            cross_attn: Attention::new(d, h, store, &format!("{name}.encoder_attn"))?,
            cross_attn_layer_norm: layer_norm(
                d,
                store,
                &format!("{name}.encoder_attn_layer_norm"),
            )?,
            ffn: FeedForward::new(d, cfg.decoder_ffn_dim, cfg.activation, store, name)?,
            final_layer_norm: layer_norm(d, store, &format!("{name}.final_layer_norm"))?,
        })
    }

    /// One decoder layer over `x` (rows, t, d), extending this layer's self-attention cache.
    fn forward(
        &self,
        x: &Tensor,
        cache: &mut LayerCache,
        cross: &CrossKv,
        cross_bias: &Tensor,
        beams: usize,
        causal: Option<&Tensor>,
    ) -> candle_core::Result<Tensor> {
        // Self-attention over everything generated so far.
        let a = &self.self_attn;
        let q = a.split_heads(&a.q.forward(x)?)?;
        let (k_new, v_new) = a.key_values(x)?;
        let (k, v) = match (&cache.k, &cache.v) {
            (Some(k), Some(v)) => (Tensor::cat(&[k, &k_new], 2)?, Tensor::cat(&[v, &v_new], 2)?),
            _ => (k_new, v_new),
        };
        let h = a.merge(&a.attend(&q, &k, &v, causal)?)?;
        cache.k = Some(k);
        cache.v = Some(v);
        let x = self.self_attn_layer_norm.forward(&(x + h)?)?;

        // Cross-attention: the `beams` rows of a source are extra query positions.
        let c = &self.cross_attn;
        let (rows, t, d) = x.dims3()?;
        let sources = rows / beams;
        let q = c.q.forward(&x)?.reshape((sources, beams * t, d))?;
        let q = c.split_heads(&q)?;
        let h = c.attend(&q, &cross.k, &cross.v, Some(cross_bias))?;
        let h = c.merge(&h)?.reshape((rows, t, d))?;
        let x = self.cross_attn_layer_norm.forward(&(x + h)?)?;

        let h = self.ffn.forward(&x)?;
        self.final_layer_norm.forward(&(x + h)?)
    }
}

#[derive(Debug, Clone, Default)]
struct LayerCache {
    k: Option<Tensor>,
    v: Option<Tensor>,
}

#[derive(Debug, Clone)]
struct CrossKv {
    k: Tensor,
    v: Tensor,
}

#[derive(Debug, Clone)]
enum Positions {
    /// Marian: a fixed table, precomputed (or read from the checkpoint when it has one).
    Table(Tensor),
    /// BART: a learned table whose row `p + offset` is position `p`.
    Learned { table: Tensor, offset: usize },
}

impl Positions {
    fn lookup(&self, start: usize, len: usize) -> candle_core::Result<Tensor> {
        match self {
            Positions::Table(t) => t.narrow(0, start, len),
            Positions::Learned { table, offset } => table.narrow(0, start + offset, len),
        }
    }

    fn capacity(&self) -> usize {
        match self {
            Positions::Table(t) => t.dims()[0],
            Positions::Learned { table, offset } => table.dims()[0].saturating_sub(*offset),
        }
    }
}

/// Marian's sinusoidal table: sines in the first half of each vector, cosines in the second, computed
/// in f64 and rounded to f32 as transformers' `MarianSinusoidalPositionalEmbedding.create_weight` does.
pub fn sinusoidal_positions(n_pos: usize, dim: usize) -> Vec<f32> {
    let half = dim.div_ceil(2);
    let mut out = vec![0f32; n_pos * dim];
    for pos in 0..n_pos {
        let row = &mut out[pos * dim..(pos + 1) * dim];
        for j in 0..dim {
            let angle = pos as f64 / 10000f64.powf((2 * (j / 2)) as f64 / dim as f64);
            if j % 2 == 0 {
                row[j / 2] = angle.sin() as f32;
            } else {
                row[half + j / 2] = angle.cos() as f32;
            }
        }
    }
    out
}

/// What the encoder produced for a batch of sources.
#[derive(Debug, Clone)]
pub struct EncoderOutput {
    /// Hidden states, (sources, source_len, d_model).
    pub hidden: Tensor,
    /// Additive attention bias hiding padding, (sources, 1, 1, source_len).
    pub bias: Tensor,
    /// Unpadded length of each source.
    pub lengths: Vec<usize>,
}

/// The decoder's state during generation: cross-attention keys/values per layer (computed once per
/// source), self-attention caches per row, and the number of positions consumed.
///
/// Rows are source-major: row `s * beams + b` is beam `b` of source `s`.
#[derive(Debug)]
pub struct DecoderState {
    inner: StateInner,
}

#[derive(Debug)]
enum StateInner {
    Candle(CandleState),
    Fast(Box<fast::FastState>),
}

impl DecoderState {
    /// Number of decoder rows (sources x beams).
    pub fn rows(&self) -> usize {
        match &self.inner {
            StateInner::Candle(s) => s.rows(),
            StateInner::Fast(s) => s.rows(),
        }
    }

    /// Number of sources still in the state.
    pub fn sources(&self) -> usize {
        match &self.inner {
            StateInner::Candle(s) => s.sources,
            StateInner::Fast(s) => s.sources,
        }
    }

    /// Rows per source.
    pub fn beams(&self) -> usize {
        match &self.inner {
            StateInner::Candle(s) => s.beams,
            StateInner::Fast(s) => s.beams,
        }
    }

    /// Decoder positions consumed so far.
    pub fn position(&self) -> usize {
        match &self.inner {
            StateInner::Candle(s) => s.position,
            StateInner::Fast(s) => s.position,
        }
    }

    /// Reorders rows: new row `i` continues old row `rows[i]`. Every row must stay with its source
    /// (beam search picks among the beams of the same source), so only self-attention caches move.
    pub fn reorder_rows(&mut self, rows: &[u32]) -> Result<()> {
        if rows.len() != self.rows() || rows.iter().any(|&r| r as usize >= self.rows()) {
            return Err(Error::option(
                "rows",
                format!(
                    "{} row indices for a state of {} rows",
                    rows.len(),
                    self.rows()
                ),
            ));
        }
        if rows.iter().enumerate().all(|(i, &r)| r as usize == i) {
            return Ok(());
        }
        match &mut self.inner {
            StateInner::Candle(s) => s.reorder_rows(rows),
            StateInner::Fast(s) => {
                s.reorder_rows(rows);
                Ok(())
            }
        }
    }

    /// Keeps only the given sources (in this order) with all their rows: finished sources leave the
    /// batch so that later steps cost less.
    pub fn keep_sources(&mut self, sources: &[usize]) -> Result<()> {
        let n = self.sources();
        if sources.len() == n && sources.iter().enumerate().all(|(i, &s)| s == i) {
            return Ok(());
        }
        if sources.iter().any(|&s| s >= n) {
            return Err(Error::option("sources", "source index out of range"));
        }
        match &mut self.inner {
            StateInner::Candle(s) => s.keep_sources(sources),
            StateInner::Fast(s) => {
                s.keep_sources(sources);
                Ok(())
            }
        }
    }
}

/// The candle decoder's state.
#[derive(Debug, Clone)]
struct CandleState {
    cross: Vec<CrossKv>,
    cross_bias: Tensor,
    caches: Vec<LayerCache>,
    beams: usize,
    sources: usize,
    position: usize,
}

impl CandleState {
    fn rows(&self) -> usize {
        self.sources * self.beams
    }

    /// Reorders rows: new row `i` continues old row `rows[i]`. Every row must stay with its source
    /// (beam search picks among the beams of the same source), so only self-attention caches move.
    pub fn reorder_rows(&mut self, rows: &[u32]) -> Result<()> {
        if rows.len() != self.rows() {
            return Err(Error::option(
                "rows",
                format!(
                    "{} row indices for a state of {} rows",
                    rows.len(),
                    self.rows()
                ),
            ));
        }
        if rows.iter().enumerate().all(|(i, &r)| r as usize == i) {
            return Ok(());
        }
        let device = self.cross_bias.device();
        let idx = Tensor::from_slice(rows, rows.len(), device)?;
        for cache in &mut self.caches {
            if let (Some(k), Some(v)) = (&cache.k, &cache.v) {
                cache.k = Some(k.index_select(&idx, 0)?);
                cache.v = Some(v.index_select(&idx, 0)?);
            }
        }
        Ok(())
    }

    /// Keeps only the given sources (in this order) with all their rows: finished sources leave the
    /// batch so that later steps cost less.
    pub fn keep_sources(&mut self, sources: &[usize]) -> Result<()> {
        if sources.len() == self.sources && sources.iter().enumerate().all(|(i, &s)| s == i) {
            return Ok(());
        }
        if sources.iter().any(|&s| s >= self.sources) {
            return Err(Error::option("sources", "source index out of range"));
        }
        let device = self.cross_bias.device().clone();
        let src_idx: Vec<u32> = sources.iter().map(|&s| s as u32).collect();
        let src_idx = Tensor::from_slice(&src_idx, src_idx.len(), &device)?;
        let beams = self.beams;
        let row_idx: Vec<u32> = sources
            .iter()
            .flat_map(|&s| (0..beams).map(move |b| (s * beams + b) as u32))
            .collect();
        let row_idx = Tensor::from_slice(&row_idx, row_idx.len(), &device)?;
        for c in &mut self.cross {
            c.k = c.k.index_select(&src_idx, 0)?;
            c.v = c.v.index_select(&src_idx, 0)?;
        }
        self.cross_bias = self.cross_bias.index_select(&src_idx, 0)?;
        for cache in &mut self.caches {
            if let (Some(k), Some(v)) = (&cache.k, &cache.v) {
                cache.k = Some(k.index_select(&row_idx, 0)?);
                cache.v = Some(v.index_select(&row_idx, 0)?);
            }
        }
        self.sources = sources.len();
        Ok(())
    }
}

/// A loaded encoder-decoder model (Marian or BART family).
#[derive(Debug, Clone)]
pub struct Seq2SeqModel {
    config: ModelConfig,
    encoder_embed: Matrix,
    decoder_embed: Matrix,
    encoder_positions: Positions,
    decoder_positions: Positions,
    encoder_embed_norm: Option<LayerNorm>,
    decoder_embed_norm: Option<LayerNorm>,
    encoder_layers: Vec<EncoderLayer>,
    decoder_layers: Vec<DecoderLayer>,
    /// Output projection, (target_vocab, d_model).
    lm_head: Matrix,
    /// (1, target_vocab)
    final_logits_bias: Tensor,
    final_logits_bias_host: Option<Vec<f32>>,
    kernel: Int8Kernel,
    fast: std::sync::OnceLock<fast::FastDecoder>,
    fast_enc: std::sync::OnceLock<fast::FastEncoder>,
    from_cache: bool,
    embed_scale: f64,
    device: Device,
    dtype: DType,
}

fn find_prefix(store: &dyn Store) -> &'static str {
    if store.contains("model.encoder.layers.0.fc1.weight") {
        "model."
    } else {
        ""
    }
}

/// Quantisation applied to the weight matrices at load time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Quantization {
    /// int8 weights (per output row) and int8 activations (per row) in every linear layer and the
    /// output projection; embeddings are looked up from the same int8 matrix. CPU only.
    Int8,
}

impl Seq2SeqModel {
    /// Builds the model from weights. Callers should first run
    /// [`expected_tensors`] against the weight file so that a mismatch is reported with the file's
    /// name; this function reports it as a tensor error.
    pub fn new(config: ModelConfig, vb: VarBuilder) -> Result<Self> {
        Self::build(config, &VbStore::new(vb, false))
    }

    fn build(config: ModelConfig, store: &dyn Store) -> Result<Self> {
        let cfg = &config;
        let d = cfg.d_model;
        let p = find_prefix(store);
        let name = |s: &str| format!("{p}{s}");
        let shared_name = name("shared.weight");
        let encoder_embed = if cfg.share_encoder_decoder_embeddings && store.contains(&shared_name)
        {
            store.matrix(&shared_name, cfg.vocab_size, d)?
        } else {
            store.matrix(&name("encoder.embed_tokens.weight"), cfg.vocab_size, d)?
        };
        let decoder_embed = if cfg.share_encoder_decoder_embeddings {
            encoder_embed.clone()
        } else {
            store.matrix(
                &name("decoder.embed_tokens.weight"),
                cfg.decoder_vocab_size,
                d,
            )?
        };
        let lm_head = if cfg.tie_word_embeddings || !store.contains("lm_head.weight") {
            decoder_embed.clone()
        } else {
            store.matrix("lm_head.weight", cfg.decoder_vocab_size, d)?
        };
        let final_logits_bias = if store.contains("final_logits_bias") {
            store.tensor("final_logits_bias", &[1, cfg.decoder_vocab_size])?
        } else {
            Tensor::zeros((1, cfg.decoder_vocab_size), store.dtype(), store.device())?
        };
        let n_pos = cfg.max_position_embeddings;
        let positions = |side: &str| -> Result<Positions> {
            let pos_name = name(&format!("{side}.embed_positions.weight"));
            Ok(match cfg.architecture {
                Architecture::Marian => {
                    if store.contains(&pos_name) {
                        Positions::Table(store.tensor(&pos_name, &[n_pos, d])?)
                    } else {
                        let table = sinusoidal_positions(n_pos, d);
                        Positions::Table(
                            Tensor::from_vec(table, (n_pos, d), store.device())?
                                .to_dtype(store.dtype())?,
                        )
                    }
                }
                Architecture::Bart => Positions::Learned {
                    table: store.tensor(&pos_name, &[n_pos + BART_POSITION_OFFSET, d])?,
                    offset: BART_POSITION_OFFSET,
                },
            })
        };
        let encoder_positions = positions("encoder")?;
        let decoder_positions = positions("decoder")?;
        let (encoder_embed_norm, decoder_embed_norm) = match cfg.architecture {
            Architecture::Marian => (None, None),
            Architecture::Bart => (
                Some(layer_norm(d, store, &name("encoder.layernorm_embedding"))?),
                Some(layer_norm(d, store, &name("decoder.layernorm_embedding"))?),
            ),
        };
        let encoder_layers = (0..cfg.encoder_layers)
            .map(|i| EncoderLayer::new(cfg, store, &name(&format!("encoder.layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let decoder_layers = (0..cfg.decoder_layers)
            .map(|i| DecoderLayer::new(cfg, store, &name(&format!("decoder.layers.{i}"))))
            .collect::<Result<Vec<_>>>()?;
        let final_logits_bias_host = match lm_head {
            Matrix::Int8(_) => Some(
                final_logits_bias
                    .to_dtype(DType::F32)?
                    .flatten_all()?
                    .to_vec1::<f32>()?,
            ),
            Matrix::Float(_) => None,
        };
        Ok(Seq2SeqModel {
            embed_scale: if cfg.scale_embedding {
                (d as f64).sqrt()
            } else {
                1.0
            },
            device: store.device().clone(),
            dtype: store.dtype(),
            config,
            encoder_embed,
            decoder_embed,
            encoder_positions,
            decoder_positions,
            encoder_embed_norm,
            decoder_embed_norm,
            encoder_layers,
            decoder_layers,
            lm_head,
            final_logits_bias,
            final_logits_bias_host,
            kernel: Int8Kernel::detect(),
            fast: std::sync::OnceLock::new(),
            fast_enc: std::sync::OnceLock::new(),
            from_cache: false,
        })
    }

    /// Whether the weights were read from tolk's cache of a quantised model.
    pub fn loaded_from_cache(&self) -> bool {
        self.from_cache
    }

    /// Whether the weights are quantised.
    pub fn quantization(&self) -> Option<Quantization> {
        match self.lm_head {
            Matrix::Int8(_) => Some(Quantization::Int8),
            Matrix::Float(_) => None,
        }
    }

    /// The model's configuration.
    pub fn config(&self) -> &ModelConfig {
        &self.config
    }

    /// The device the weights live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// The dtype of the weights and activations.
    pub fn dtype(&self) -> DType {
        self.dtype
    }

    /// Longest source (in tokens, `</s>` included) the encoder can take.
    pub fn max_source_positions(&self) -> usize {
        self.encoder_positions.capacity()
    }

    /// Longest decoder sequence (start token included) the decoder can take.
    pub fn max_target_positions(&self) -> usize {
        self.decoder_positions.capacity()
    }

    /// Encodes a batch of token id sequences (each ending in `</s>`), padding them to the longest.
    pub fn encode(&self, sources: &[Vec<u32>]) -> Result<EncoderOutput> {
        self.encode_with(sources, false)
    }

    /// [`encode`](Self::encode), on candle's operations when `force_candle` (the reference the
    /// host-buffer encoder is tested against).
    pub(crate) fn encode_with(
        &self,
        sources: &[Vec<u32>],
        force_candle: bool,
    ) -> Result<EncoderOutput> {
        let batch = sources.len();
        let max_len = sources.iter().map(Vec::len).max().unwrap_or(0);
        if batch == 0 || max_len == 0 {
            return Err(Error::option(
                "sources",
                "nothing to encode (empty batch or empty source)",
            ));
        }
        if max_len > self.max_source_positions() {
            return Err(Error::option(
                "sources",
                format!(
                    "a source of {max_len} tokens is longer than the model's {} positions; split it first",
                    self.max_source_positions()
                ),
            ));
        }
        let vocab = self.config.vocab_size;
        let pad = self.config.pad_token_id.min(vocab as u32 - 1);
        let mut bias = Vec::with_capacity(batch * max_len);
        for s in sources {
            if let Some(&bad) = s.iter().find(|&&t| t as usize >= vocab) {
                return Err(Error::option(
                    "sources",
                    format!("token id {bad} is outside the source vocabulary ({vocab})"),
                ));
            }
            bias.extend(std::iter::repeat_n(0f32, s.len()));
            bias.extend(std::iter::repeat_n(f32::NEG_INFINITY, max_len - s.len()));
        }
        if self.fast_encoder_applies() && !force_candle {
            return self.fast_encode(sources, bias);
        }
        let mut ids = Vec::with_capacity(batch * max_len);
        for s in sources {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(pad, max_len - s.len()));
        }
        let ids = Tensor::from_vec(ids, (batch, max_len), &self.device)?;
        let bias =
            Tensor::from_vec(bias, (batch, 1, 1, max_len), &self.device)?.to_dtype(self.dtype)?;
        let mut x = self.embed(&self.encoder_embed, &ids)?;
        x = x.broadcast_add(&self.encoder_positions.lookup(0, max_len)?)?;
        if let Some(norm) = &self.encoder_embed_norm {
            x = norm.forward(&x)?;
        }
        for layer in &self.encoder_layers {
            x = layer.forward(&x, &bias)?;
        }
        Ok(EncoderOutput {
            hidden: x,
            bias,
            lengths: sources.iter().map(Vec::len).collect(),
        })
    }

    /// Whether [`encode`](Self::encode) runs on host buffers: on the CPU with int8 weights. The
    /// float32 encoder stays on candle's operations, whose arithmetic the parity tests pin.
    fn fast_encoder_applies(&self) -> bool {
        self.device.is_cpu() && self.dtype == DType::F32 && self.quantization().is_some()
    }

    fn embed(&self, table: &Matrix, ids: &Tensor) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let d = self.config.d_model;
        let x = match table {
            Matrix::Float(table) => table.index_select(&ids.flatten_all()?, 0)?,
            Matrix::Int8(q) => {
                let ids = ids.flatten_all()?.to_vec1::<u32>()?;
                let mut rows = vec![0f32; ids.len() * d];
                for (row, &id) in rows.chunks_exact_mut(d).zip(&ids) {
                    q.dequantize_row(id as usize, row);
                }
                Tensor::from_vec(rows, (ids.len(), d), &self.device)?
            }
        };
        let x = x.reshape((b, t, d))?;
        if self.embed_scale == 1.0 {
            Ok(x)
        } else {
            x * self.embed_scale
        }
    }

    /// Prepares decoding with `beams` rows per source: computes every layer's cross-attention keys
    /// and values once.
    pub fn start_decoding(&self, encoded: &EncoderOutput, beams: usize) -> Result<DecoderState> {
        if beams == 0 {
            return Err(Error::option("num_beams", "must be at least 1"));
        }
        if self.device.is_cpu() && self.dtype == DType::F32 {
            let state = self.fast_start(&encoded.hidden, &encoded.lengths, beams)?;
            return Ok(DecoderState {
                inner: StateInner::Fast(Box::new(state)),
            });
        }
        self.start_decoding_reference(encoded, beams)
    }

    /// Like [`start_decoding`](Self::start_decoding), but always on candle's tensors (the
    /// reference implementation, and the only one on GPUs and in half precision). The CPU fast
    /// path is checked against it by tests; [`decode_all`](Self::decode_all) needs this state.
    pub fn start_decoding_reference(
        &self,
        encoded: &EncoderOutput,
        beams: usize,
    ) -> Result<DecoderState> {
        if beams == 0 {
            return Err(Error::option("num_beams", "must be at least 1"));
        }
        let cross = self
            .decoder_layers
            .iter()
            .map(|l| {
                let (k, v) = l.cross_attn.key_values(&encoded.hidden)?;
                Ok(CrossKv { k, v })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(DecoderState {
            inner: StateInner::Candle(CandleState {
                cross,
                cross_bias: encoded.bias.clone(),
                caches: vec![LayerCache::default(); self.decoder_layers.len()],
                beams,
                sources: encoded.lengths.len(),
                position: 0,
            }),
        })
    }

    /// Feeds `tokens` (one row per decoder row, `t` new tokens each) and returns the logits of the
    /// last position, (rows, target_vocab), in f32, `final_logits_bias` included.
    pub fn decode(&self, tokens: &[Vec<u32>], state: &mut DecoderState) -> Result<Tensor> {
        if let StateInner::Fast(_) = state.inner {
            let mut out = Vec::new();
            self.decode_into(tokens, state, &mut out)?;
            let rows = tokens.len();
            return Ok(Tensor::from_vec(
                out,
                (rows, self.config.decoder_vocab_size),
                &self.device,
            )?);
        }
        let hidden = self.decode_hidden(tokens, state)?;
        let (rows, t, d) = hidden.dims3()?;
        let last = hidden.narrow(1, t - 1, 1)?.reshape((rows, d))?;
        self.logits(&last)
    }

    /// Like [`decode`](Self::decode), writing the logits into `out` (resized to rows x vocab)
    /// instead of a new tensor: on the CPU the output projection runs straight into this buffer,
    /// which the search reuses at every step (no 20 MB allocation per step for 76 beams).
    pub fn decode_into(
        &self,
        tokens: &[Vec<u32>],
        state: &mut DecoderState,
        out: &mut Vec<f32>,
    ) -> Result<()> {
        if let StateInner::Fast(st) = &mut state.inner {
            if tokens.len() != st.rows() || tokens.iter().any(|t| t.len() != 1) {
                return Err(Error::option("tokens", "one token per decoder row"));
            }
            let ids: Vec<u32> = tokens.iter().map(|t| t[0]).collect();
            let vocab = self.config.decoder_vocab_size;
            if let Some(&bad) = ids.iter().find(|&&x| x as usize >= vocab) {
                return Err(Error::option(
                    "tokens",
                    format!("token id {bad} is outside the target vocabulary ({vocab})"),
                ));
            }
            return self.fast_step(&ids, st, out);
        }
        let hidden = self.decode_hidden(tokens, state)?;
        let (rows, t, d) = hidden.dims3()?;
        let last = hidden.narrow(1, t - 1, 1)?.reshape((rows, d))?;
        let n = self.config.decoder_vocab_size;
        match &self.lm_head {
            Matrix::Int8(q) => {
                let x = last.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
                out.resize(rows * n, 0.0);
                q.matmul(
                    &x,
                    rows,
                    self.final_logits_bias_host.as_deref(),
                    out,
                    self.kernel,
                );
            }
            Matrix::Float(w) if self.device.is_cpu() && self.dtype == DType::F32 => {
                let x = last.flatten_all()?.to_vec1::<f32>()?;
                let bias = self.final_logits_bias.flatten_all()?.to_vec1::<f32>()?;
                out.clear();
                for _ in 0..rows {
                    out.extend_from_slice(&bias);
                }
                let w = w.contiguous()?;
                let (storage, layout) = w.storage_and_layout();
                let candle_core::Storage::Cpu(cpu) = &*storage else {
                    return Err(Error::option("device", "expected CPU weights"));
                };
                let ws = &cpu.as_slice::<f32>()?[layout.start_offset()..];
                let threads = rayon::current_num_threads();
                // SAFETY: the pointers cover rows x d, n x d and rows x n f32 values.
                unsafe {
                    gemm::gemm(
                        rows,
                        n,
                        d,
                        out.as_mut_ptr(),
                        1,
                        n as isize,
                        true,
                        x.as_ptr(),
                        1,
                        d as isize,
                        ws.as_ptr(),
                        d as isize,
                        1,
                        1.0f32,
                        1.0f32,
                        false,
                        false,
                        false,
                        if threads > 1 && rows * n * d > (1 << 20) {
                            gemm::Parallelism::Rayon(threads)
                        } else {
                            gemm::Parallelism::None
                        },
                    );
                }
            }
            Matrix::Float(_) => {
                let logits = self.logits(&last)?;
                *out = logits.flatten_all()?.to_vec1::<f32>()?;
            }
        }
        Ok(())
    }

    /// Like [`decode`](Self::decode) but returns the logits of every new position,
    /// (rows, t, target_vocab). Used to check cached decoding against full recomputation.
    pub fn decode_all(&self, tokens: &[Vec<u32>], state: &mut DecoderState) -> Result<Tensor> {
        let hidden = self.decode_hidden(tokens, state)?;
        let (rows, t, d) = hidden.dims3()?;
        let logits = self.logits(&hidden.reshape((rows * t, d))?)?;
        Ok(logits.reshape((rows, t, ()))?)
    }

    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let logits = matmul_t(
            hidden,
            &self.lm_head,
            Some(&self.final_logits_bias),
            self.final_logits_bias_host.as_deref(),
            self.kernel,
        )?;
        Ok(logits.to_dtype(DType::F32)?)
    }

    fn decode_hidden(&self, tokens: &[Vec<u32>], state: &mut DecoderState) -> Result<Tensor> {
        let StateInner::Candle(state) = &mut state.inner else {
            return Err(Error::option(
                "state",
                "several tokens per step need a state from start_decoding_reference",
            ));
        };
        let rows = state.rows();
        if tokens.len() != rows {
            return Err(Error::option(
                "tokens",
                format!(
                    "{} token rows for a decoder state of {rows} rows",
                    tokens.len()
                ),
            ));
        }
        let t = tokens.first().map(Vec::len).unwrap_or(0);
        if t == 0 || tokens.iter().any(|r| r.len() != t) {
            return Err(Error::option(
                "tokens",
                "every row needs the same, non-zero number of tokens",
            ));
        }
        let start = state.position;
        if start + t > self.max_target_positions() {
            return Err(Error::option(
                "max_length",
                format!(
                    "decoding past the model's {} target positions",
                    self.max_target_positions()
                ),
            ));
        }
        let vocab = self.config.decoder_vocab_size;
        let mut flat = Vec::with_capacity(rows * t);
        for r in tokens {
            if let Some(&bad) = r.iter().find(|&&x| x as usize >= vocab) {
                return Err(Error::option(
                    "tokens",
                    format!("token id {bad} is outside the target vocabulary ({vocab})"),
                ));
            }
            flat.extend_from_slice(r);
        }
        let ids = Tensor::from_vec(flat, (rows, t), &self.device)?;
        let mut x = self.embed(&self.decoder_embed, &ids)?;
        x = x.broadcast_add(&self.decoder_positions.lookup(start, t)?)?;
        if let Some(norm) = &self.decoder_embed_norm {
            x = norm.forward(&x)?;
        }
        let causal = if t > 1 {
            Some(self.causal_bias(start, t)?)
        } else {
            None
        };
        for (layer, (cache, cross)) in self
            .decoder_layers
            .iter()
            .zip(state.caches.iter_mut().zip(state.cross.iter()))
        {
            x = layer.forward(
                &x,
                cache,
                cross,
                &state.cross_bias,
                state.beams,
                causal.as_ref(),
            )?;
        }
        state.position += t;
        Ok(x)
    }

    /// (t, past + t) additive mask: position `i` of the new tokens sees the past and itself.
    fn causal_bias(&self, past: usize, t: usize) -> Result<Tensor> {
        let total = past + t;
        let mut m = vec![0f32; t * total];
        for i in 0..t {
            for j in (past + i + 1)..total {
                m[i * total + j] = f32::NEG_INFINITY;
            }
        }
        Ok(Tensor::from_vec(m, (t, total), &self.device)?.to_dtype(self.dtype)?)
    }
}

impl Seq2SeqModel {
    /// Checks `weights` against `config` (every tensor present with the right shape, reported with
    /// the weight file's name), then builds the model in `dtype` on `device`.
    pub fn load(
        config: ModelConfig,
        weights: Weights,
        dtype: DType,
        device: &Device,
    ) -> Result<Self> {
        check_weights(&config, &weights)?;
        let vb = weights.into_var_builder(dtype, device);
        let model = Seq2SeqModel::new(config, vb)?;
        model.prepare_fast()?;
        Ok(model)
    }
}

/// Every tensor `config` needs is in `weights` with the right shape (errors name the file).
fn check_weights(config: &ModelConfig, weights: &Weights) -> Result<()> {
    {
        let prefix = if weights.contains("model.encoder.layers.0.fc1.weight") {
            "model."
        } else {
            ""
        };
        for t in expected_tensors(config, prefix) {
            match t.names.iter().find(|n| weights.contains(n)) {
                Some(name) => weights.check_shape(name, &t.shape).map_err(|e| match e {
                    Error::ModelFile { path, message, .. } => Error::ModelFile {
                        path,
                        message,
                        hint: "the weights do not match config.json (wrong model, or a config edited by hand)"
                            .into(),
                    },
                    other => other,
                })?,
                None if t.required => {
                    return Err(Error::ModelFile {
                        path: weights.path().to_path_buf(),
                        message: format!(
                            "tensor `{}` is missing (config.json describes a {:?} model with {} encoder and {} decoder layers)",
                            t.names.join("` or `"),
                            config.architecture,
                            config.encoder_layers,
                            config.decoder_layers
                        ),
                        hint: "the file is incomplete or belongs to another model".into(),
                    })
                }
                None => {}
            }
        }
    }
    Ok(())
}

impl Seq2SeqModel {
    /// Like [`load`](Self::load), with int8 weights: read from `cache` when it holds this model
    /// already quantised, else quantised from `weights` and then written to `cache` (a failure to
    /// write the cache is ignored: it only costs time on the next load). CPU and f32 activations.
    pub fn load_quantized(
        config: ModelConfig,
        weights: impl FnOnce() -> Result<Weights>,
        cache: Option<&Path>,
    ) -> Result<Self> {
        if let Some(path) = cache {
            if path.is_file() {
                if let Ok(store) = CacheStore::open(path) {
                    if let Ok(mut model) = Self::build(config.clone(), &store) {
                        model.from_cache = true;
                        model.prepare_fast()?;
                        return Ok(model);
                    }
                }
            }
        }
        let weights = weights()?;
        check_weights(&config, &weights)?;
        let vb = weights.into_var_builder(DType::F32, &Device::Cpu);
        let recorder = Recorder::new(VbStore::new(vb, true));
        let model = Self::build(config, &recorder)?;
        if let Some(path) = cache {
            let meta = [("tolk.format".to_string(), "int8-v1".to_string())]
                .into_iter()
                .collect();
            let _ = recorder.save(path, meta);
        }
        model.prepare_fast()?;
        Ok(model)
    }
}
