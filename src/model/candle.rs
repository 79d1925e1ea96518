//! The candle backend: the encoder-decoder as candle tensor operations, for GPUs (CUDA, Metal) and
//! half precision (f16, bf16) on any device. Every operation is candle's, so one definition runs
//! on every device candle has.
//!
//! The decoding state is candle tensors too: each layer's self-attention keys and values grow by
//! concatenation, the cross-attention keys and values are computed once per batch, and the
//! `beams` rows of a source are extra query positions against that source's keys (rows are
//! source-major), so nothing is copied per beam.

use candle_core::{DType, Device, Module, Tensor};

use super::checkpoint::{Attention, Checkpoint, LayerNorm, Linear, Stack, LAYER_NORM_EPS};
use super::layers::{self, Pass, Sub};
use super::store::Matrix;
use super::{AlignOut, Backend, Decoding, EncoderOutput, Hidden};
use crate::config::{Activation, ModelConfig};
use crate::error::{Error, Result};

/// The model on candle tensors.
#[derive(Debug)]
pub(crate) struct CandleBackend {
    ckpt: Checkpoint,
    activation: Activation,
    pad: u32,
    device: Device,
    dtype: DType,
}

impl CandleBackend {
    /// A backend over float weights (int8 weights run on the host backend only).
    pub(crate) fn new(
        cfg: &ModelConfig,
        ckpt: Checkpoint,
        device: &Device,
        dtype: DType,
    ) -> Result<Self> {
        let float = |m: &Matrix| matches!(m, Matrix::Float(_));
        if !float(&ckpt.lm_head) || !float(&ckpt.encoder.embed_tokens) {
            return Err(Error::Internal(
                "the candle backend was given int8 or packed weights".into(),
            ));
        }
        Ok(CandleBackend {
            activation: cfg.activation,
            pad: cfg
                .pad_token_id
                .min(cfg.vocab_size.saturating_sub(1) as u32),
            ckpt,
            device: device.clone(),
            dtype,
        })
    }

    /// Embeddings of `ids` (batch, t), scaled, plus positions from `start`, then the embedding
    /// norm (BART).
    fn embed<L>(
        &self,
        stack: &Stack<L>,
        ids: &Tensor,
        start: usize,
    ) -> candle_core::Result<Tensor> {
        let (b, t) = ids.dims2()?;
        let table = float(&stack.embed_tokens)?;
        let d = table.dims()[1];
        let x = table
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((b, t, d))?;
        let x = if self.ckpt.embed_scale == 1.0 {
            x
        } else {
            (x * self.ckpt.embed_scale)?
        };
        let (positions, offset) = stack.embed_positions.table();
        let mut positions = positions.narrow(0, start + offset, t)?.unsqueeze(0)?;
        if let Some(pad) = stack.embed_positions.pad {
            // A padding token gets no position (M2M100).
            let keep = ids.ne(pad)?.to_dtype(positions.dtype())?.unsqueeze(2)?;
            positions = positions.broadcast_mul(&keep)?;
        }
        let x = x.broadcast_add(&positions)?;
        match &stack.layernorm_embedding {
            Some(norm) => layer_norm(norm, &x),
            None => Ok(x),
        }
    }

    /// Runs the decoder over `tokens` (rows x t, the same t for every row) from the state's
    /// position, extending its caches; returns the hidden states (rows, t, d).
    #[cfg(test)]
    fn decode_hidden(&self, tokens: &[Vec<u32>], state: &mut CandleState) -> Result<Tensor> {
        Ok(self.decode_hidden_probs(tokens, state, None)?.0)
    }

    /// [`CandleBackend::decode_hidden`], also returning the cross-attention probabilities of
    /// decoder layer `probs_of` (if given), averaged over the heads: (rows * t, source length).
    fn decode_hidden_probs(
        &self,
        tokens: &[Vec<u32>],
        state: &mut CandleState,
        probs_of: Option<usize>,
    ) -> Result<(Tensor, Option<Tensor>)> {
        let rows = tokens.len();
        let t = tokens.first().map_or(0, Vec::len);
        let flat: Vec<u32> = tokens.iter().flatten().copied().collect();
        let ids = Tensor::from_vec(flat, (rows, t), &self.device)?;
        let x = self.embed(&self.ckpt.decoder, &ids, state.position)?;
        let causal = if t > 1 {
            Some(causal_bias(state.position, t, &self.device, self.dtype)?)
        } else {
            None
        };
        let mut probs = None;
        let mut pass = CandlePass {
            b: self,
            x,
            input: None,
            out: None,
            side: Side::Decoder {
                state: &mut *state,
                causal: causal.as_ref(),
                probs_of,
                probs: &mut probs,
            },
        };
        let layers = self.ckpt.decoder.layers.len();
        layers::run(&mut pass, layers, layers::DECODER_LAYER, self.ckpt.pre_norm)?;
        let x = pass.x;
        state.position += t;
        Ok((x, probs))
    }

    fn feed_forward(&self, fc1: &Linear, fc2: &Linear, x: &Tensor) -> candle_core::Result<Tensor> {
        let h = linear(fc1, x)?;
        let h = match self.activation {
            Activation::Swish => h.silu()?,
            Activation::Relu => h.relu()?,
            Activation::Gelu => h.gelu_erf()?,
            Activation::GeluTanh => h.gelu()?,
        };
        linear(fc2, &h)
    }

    /// Logits of hidden states (n, d), in f32, `final_logits_bias` included.
    fn logits(&self, hidden: &Tensor) -> Result<Tensor> {
        let w = float(&self.ckpt.lm_head)?;
        let logits = hidden
            .matmul(&w.t()?)?
            .broadcast_add(&self.ckpt.final_logits_bias)?;
        Ok(logits.to_dtype(DType::F32)?)
    }

    fn start_state(&self, encoded: &EncoderOutput, beams: usize) -> Result<CandleState> {
        let Hidden::Candle { hidden, bias } = &encoded.hidden else {
            return Err(Error::Internal(
                "an encoder output of the host backend given to the candle backend".into(),
            ));
        };
        let cross = self
            .ckpt
            .decoder
            .layers
            .iter()
            .map(|l| {
                let (k, v) = key_values(&l.encoder_attn, hidden)?;
                Ok(CrossKv { k, v })
            })
            .collect::<candle_core::Result<Vec<_>>>()?;
        Ok(CandleState {
            cross,
            cross_bias: bias.clone(),
            caches: vec![LayerCache::default(); self.ckpt.decoder.layers.len()],
            beams,
            sources: encoded.lengths.len(),
            position: 0,
        })
    }
}

impl Backend for CandleBackend {
    fn encode(&self, sources: &[Vec<u32>]) -> Result<EncoderOutput> {
        let batch = sources.len();
        let max_len = sources.iter().map(Vec::len).max().unwrap_or(0);
        let mut ids = Vec::with_capacity(batch * max_len);
        let mut bias = Vec::with_capacity(batch * max_len);
        for s in sources {
            ids.extend_from_slice(s);
            ids.extend(std::iter::repeat_n(self.pad, max_len - s.len()));
            bias.extend(std::iter::repeat_n(0f32, s.len()));
            bias.extend(std::iter::repeat_n(f32::NEG_INFINITY, max_len - s.len()));
        }
        let ids = Tensor::from_vec(ids, (batch, max_len), &self.device)?;
        let bias =
            Tensor::from_vec(bias, (batch, 1, 1, max_len), &self.device)?.to_dtype(self.dtype)?;
        let mut pass = CandlePass {
            b: self,
            x: self.embed(&self.ckpt.encoder, &ids, 0)?,
            input: None,
            out: None,
            side: Side::Encoder { bias: &bias },
        };
        let layers = self.ckpt.encoder.layers.len();
        layers::run(&mut pass, layers, layers::ENCODER_LAYER, self.ckpt.pre_norm)?;
        let x = pass.x;
        Ok(EncoderOutput {
            lengths: sources.iter().map(Vec::len).collect(),
            hidden: Hidden::Candle { hidden: x, bias },
        })
    }

    fn start<'a>(
        &'a self,
        encoded: &EncoderOutput,
        beams: usize,
    ) -> Result<Box<dyn Decoding + 'a>> {
        Ok(Box::new(CandleDecoding {
            backend: self,
            state: self.start_state(encoded, beams)?,
        }))
    }

    fn max_source_positions(&self) -> usize {
        self.ckpt.encoder.embed_positions.capacity()
    }

    fn max_target_positions(&self) -> usize {
        self.ckpt.decoder.embed_positions.capacity()
    }

    fn name(&self) -> &'static str {
        "candle"
    }

    fn rows_independent(&self) -> bool {
        // The `gemm` crate's blocking depends on the number of rows (last-bit differences).
        false
    }

    #[cfg(test)]
    fn full_logits(&self, encoded: &EncoderOutput, seq: &[u32]) -> Result<Tensor> {
        let mut state = self.start_state(encoded, 1)?;
        let hidden = self.decode_hidden(&[seq.to_vec()], &mut state)?;
        let (_, t, d) = hidden.dims3()?;
        self.logits(&hidden.reshape((t, d))?)
    }
}

/// One pass of a stack on candle tensors (see [`layers::Pass`]): the encoder over a padded
/// batch, or decoder positions of every row.
struct CandlePass<'p> {
    b: &'p CandleBackend,
    /// (rows, t, d)
    x: Tensor,
    input: Option<Tensor>,
    out: Option<Tensor>,
    side: Side<'p>,
}

enum Side<'p> {
    /// The additive bias hiding padding.
    Encoder { bias: &'p Tensor },
    Decoder {
        state: &'p mut CandleState,
        causal: Option<&'p Tensor>,
        /// The layer whose cross-attention probabilities are wanted, and where they go.
        probs_of: Option<usize>,
        probs: &'p mut Option<Tensor>,
    },
}

/// A pass's missing input or output (a call out of order).
fn out_of_order(what: &str) -> Error {
    Error::Internal(format!("the candle pass has no {what}"))
}

impl CandlePass<'_> {
    /// Layer `layer`'s norm of sub-layer `sub`.
    fn norm(&self, layer: usize, sub: Sub) -> Result<&LayerNorm> {
        let ckpt = &self.b.ckpt;
        Ok(match (&self.side, sub) {
            (Side::Encoder { .. }, Sub::SelfAttention) => {
                &ckpt.encoder.layers[layer].self_attn_layer_norm
            }
            (Side::Encoder { .. }, Sub::FeedForward) => {
                &ckpt.encoder.layers[layer].final_layer_norm
            }
            (Side::Encoder { .. }, Sub::CrossAttention) => {
                return Err(Error::Internal(
                    "an encoder layer has no cross-attention".into(),
                ))
            }
            (Side::Decoder { .. }, Sub::SelfAttention) => {
                &ckpt.decoder.layers[layer].self_attn_layer_norm
            }
            (Side::Decoder { .. }, Sub::CrossAttention) => {
                &ckpt.decoder.layers[layer].encoder_attn_layer_norm
            }
            (Side::Decoder { .. }, Sub::FeedForward) => {
                &ckpt.decoder.layers[layer].final_layer_norm
            }
        })
    }
}

impl Pass for CandlePass<'_> {
    fn input(&mut self, layer: usize, sub: Sub, normalize: bool) -> Result<()> {
        self.input = Some(if normalize {
            layer_norm(self.norm(layer, sub)?, &self.x)?
        } else {
            self.x.clone()
        });
        Ok(())
    }

    fn sublayer(&mut self, layer: usize, sub: Sub) -> Result<()> {
        let x = self.input.take().ok_or_else(|| out_of_order("input"))?;
        let b = self.b;
        let ckpt = &b.ckpt;
        let h = match (&mut self.side, sub) {
            (Side::Encoder { bias }, Sub::SelfAttention) => {
                let a = &ckpt.encoder.layers[layer].self_attn;
                let q = split_heads(a, &linear(&a.q_proj, &x)?)?;
                let (k, v) = key_values(a, &x)?;
                merge(a, &attend(&q, &k, &v, Some(bias))?)?
            }
            (Side::Encoder { .. }, Sub::FeedForward) => {
                let l = &ckpt.encoder.layers[layer];
                b.feed_forward(&l.fc1, &l.fc2, &x)?
            }
            (Side::Encoder { .. }, Sub::CrossAttention) => {
                return Err(Error::Internal(
                    "an encoder layer has no cross-attention".into(),
                ))
            }
            // Self-attention over everything generated so far.
            (Side::Decoder { state, causal, .. }, Sub::SelfAttention) => {
                let a = &ckpt.decoder.layers[layer].self_attn;
                let cache = &mut state.caches[layer];
                let q = split_heads(a, &linear(&a.q_proj, &x)?)?;
                let (k_new, v_new) = key_values(a, &x)?;
                let (k, v) = match (&cache.k, &cache.v) {
                    (Some(k), Some(v)) => {
                        (Tensor::cat(&[k, &k_new], 2)?, Tensor::cat(&[v, &v_new], 2)?)
                    }
                    _ => (k_new, v_new),
                };
                let h = merge(a, &attend(&q, &k, &v, *causal)?)?;
                cache.k = Some(k);
                cache.v = Some(v);
                h
            }
            // Cross-attention: the `beams` rows of a source are extra query positions.
            (
                Side::Decoder {
                    state,
                    probs_of,
                    probs,
                    ..
                },
                Sub::CrossAttention,
            ) => {
                let c = &ckpt.decoder.layers[layer].encoder_attn;
                let (rows, t, d) = x.dims3()?;
                let sources = rows / state.beams;
                let q = linear(&c.q_proj, &x)?.reshape((sources, state.beams * t, d))?;
                let q = split_heads(c, &q)?;
                let cross = &state.cross[layer];
                let p = attention(&q, &cross.k, Some(&state.cross_bias))?;
                if *probs_of == Some(layer) {
                    // (sources, heads, beams * t, len) -> (rows * t, len)
                    let len = p.dims4()?.3;
                    **probs = Some(p.mean(1)?.reshape((rows * t, len))?);
                }
                let h = p.matmul(&cross.v)?;
                merge(c, &h)?.reshape((rows, t, d))?
            }
            (Side::Decoder { .. }, Sub::FeedForward) => {
                let l = &ckpt.decoder.layers[layer];
                b.feed_forward(&l.fc1, &l.fc2, &x)?
            }
        };
        self.out = Some(h);
        Ok(())
    }

    fn residual(&mut self, layer: usize, sub: Sub, normalize: bool) -> Result<()> {
        let h = self.out.take().ok_or_else(|| out_of_order("output"))?;
        let x = (&self.x + h)?;
        self.x = if normalize {
            layer_norm(self.norm(layer, sub)?, &x)?
        } else {
            x
        };
        Ok(())
    }

    fn final_norm(&mut self) -> Result<()> {
        let stack = match self.side {
            Side::Encoder { .. } => self.b.ckpt.encoder.layer_norm.as_ref(),
            Side::Decoder { .. } => self.b.ckpt.decoder.layer_norm.as_ref(),
        };
        if let Some(n) = stack {
            self.x = layer_norm(n, &self.x)?;
        }
        Ok(())
    }
}

/// One generation's state on the candle backend.
struct CandleDecoding<'a> {
    backend: &'a CandleBackend,
    state: CandleState,
}

impl Decoding for CandleDecoding<'_> {
    fn step(
        &mut self,
        tokens: &[u32],
        out: &mut Vec<f32>,
        align: Option<AlignOut<'_>>,
    ) -> Result<()> {
        let rows: Vec<Vec<u32>> = tokens.iter().map(|&t| vec![t]).collect();
        let (hidden, probs) = self.backend.decode_hidden_probs(
            &rows,
            &mut self.state,
            align.as_ref().map(|a| a.layer),
        )?;
        let d = hidden.dims3()?.2;
        let logits = self.backend.logits(&hidden.reshape((tokens.len(), d))?)?;
        *out = logits.flatten_all()?.to_vec1::<f32>()?;
        if let (Some(al), Some(probs)) = (align, probs) {
            let len = probs.dims2()?.1;
            let values = probs
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            for (row, src) in al
                .probs
                .chunks_mut(al.width.max(1))
                .zip(values.chunks(len.max(1)))
            {
                let n = row.len().min(src.len());
                row[..n].copy_from_slice(&src[..n]);
            }
        }
        Ok(())
    }

    fn reorder(&mut self, parents: &[u32], beams: usize) -> Result<()> {
        let device = self.state.cross_bias.device().clone();
        let idx = Tensor::from_slice(parents, parents.len(), &device)?;
        for cache in &mut self.state.caches {
            if let (Some(k), Some(v)) = (&cache.k, &cache.v) {
                cache.k = Some(k.index_select(&idx, 0)?);
                cache.v = Some(v.index_select(&idx, 0)?);
            }
        }
        self.state.beams = beams;
        Ok(())
    }

    fn keep(&mut self, sources: &[usize]) -> Result<()> {
        let st = &mut self.state;
        let device = st.cross_bias.device().clone();
        let src_idx: Vec<u32> = sources.iter().map(|&s| s as u32).collect();
        let src_idx = Tensor::from_slice(&src_idx, src_idx.len(), &device)?;
        let beams = st.beams;
        let row_idx: Vec<u32> = sources
            .iter()
            .flat_map(|&s| (0..beams).map(move |b| (s * beams + b) as u32))
            .collect();
        let row_idx = Tensor::from_slice(&row_idx, row_idx.len(), &device)?;
        for c in &mut st.cross {
            c.k = c.k.index_select(&src_idx, 0)?;
            c.v = c.v.index_select(&src_idx, 0)?;
        }
        st.cross_bias = st.cross_bias.index_select(&src_idx, 0)?;
        for cache in &mut st.caches {
            if let (Some(k), Some(v)) = (&cache.k, &cache.v) {
                cache.k = Some(k.index_select(&row_idx, 0)?);
                cache.v = Some(v.index_select(&row_idx, 0)?);
            }
        }
        st.sources = sources.len();
        Ok(())
    }
}

/// The decoder's tensors during generation: cross-attention keys and values per layer
/// (computed once per source), self-attention caches per row, the positions consumed.
#[derive(Debug)]
struct CandleState {
    cross: Vec<CrossKv>,
    cross_bias: Tensor,
    caches: Vec<LayerCache>,
    beams: usize,
    sources: usize,
    position: usize,
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

/// A float weight matrix (the candle backend never holds int8 ones: see
/// [`CandleBackend::new`]).
fn float(m: &Matrix) -> candle_core::Result<&Tensor> {
    match m {
        Matrix::Float(t) => Ok(t),
        Matrix::Int8(_) | Matrix::Packed(_) => Err(candle_core::Error::Msg(
            "int8 or packed weights on the candle backend".into(),
        )),
    }
}

/// `x` (..., k) times the weight transposed, plus the bias: (..., n).
fn linear(l: &Linear, x: &Tensor) -> candle_core::Result<Tensor> {
    let w = float(&l.weight)?;
    let dims = x.dims().to_vec();
    let k = dims.last().copied().unwrap_or(0);
    let m: usize = dims[..dims.len().saturating_sub(1)].iter().product();
    let mut out_dims = dims;
    if let Some(last) = out_dims.last_mut() {
        *last = w.dims()[0];
    }
    x.reshape((m, k))?
        .matmul(&w.t()?)?
        .broadcast_add(&l.bias)?
        .reshape(out_dims)
}

fn layer_norm(n: &LayerNorm, x: &Tensor) -> candle_core::Result<Tensor> {
    candle_nn::LayerNorm::new(n.weight.clone(), n.bias.clone(), LAYER_NORM_EPS).forward(x)
}

/// (batch, len, d_model) -> (batch, heads, len, head_dim)
fn split_heads(a: &Attention, x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, t, d) = x.dims3()?;
    x.reshape((b, t, a.heads, d / a.heads))?
        .transpose(1, 2)?
        .contiguous()
}

/// Keys and values of `x`, split into heads.
fn key_values(a: &Attention, x: &Tensor) -> candle_core::Result<(Tensor, Tensor)> {
    Ok((
        split_heads(a, &linear(&a.k_proj, x)?)?,
        split_heads(a, &linear(&a.v_proj, x)?)?,
    ))
}

/// Scaled dot-product attention of `q` (batch, heads, tq, hd) over `k`/`v` (batch, heads, tk,
/// hd), with an additive `bias` broadcast over the scores.
fn attend(
    q: &Tensor,
    k: &Tensor,
    v: &Tensor,
    bias: Option<&Tensor>,
) -> candle_core::Result<Tensor> {
    attention(q, k, bias)?.matmul(v)
}

/// The attention probabilities of `q` over `k`: softmax of the scaled scores plus `bias`.
fn attention(q: &Tensor, k: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let hd = q.dims4()?.3;
    let q = (q * (hd as f64).powf(-0.5))?;
    let mut scores = q.matmul(&k.t()?)?;
    if let Some(bias) = bias {
        scores = scores.broadcast_add(bias)?;
    }
    candle_nn::ops::softmax_last_dim(&scores)
}

/// (batch, heads, t, hd) -> (batch, t, d_model) through the output projection.
fn merge(a: &Attention, x: &Tensor) -> candle_core::Result<Tensor> {
    let (b, h, t, hd) = x.dims4()?;
    linear(&a.out_proj, &x.transpose(1, 2)?.reshape((b, t, h * hd))?)
}

/// (t, past + t) additive mask: position `i` of the new tokens sees the past and itself.
fn causal_bias(past: usize, t: usize, device: &Device, dtype: DType) -> Result<Tensor> {
    let total = past + t;
    let mut m = vec![0f32; t * total];
    for i in 0..t {
        for j in (past + i + 1)..total {
            m[i * total + j] = f32::NEG_INFINITY;
        }
    }
    Ok(Tensor::from_vec(m, (t, total), device)?.to_dtype(dtype)?)
}
