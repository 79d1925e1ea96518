//! The model's parameters, laid out as the checkpoint names them: every struct here mirrors one
//! module of transformers' `MarianMTModel` / `BartForConditionalGeneration` state dict, and its
//! fields carry the checkpoint's names (`self_attn`, `encoder_attn`, `fc1`, ...). They hold
//! weights only; the compute lives in the backends (`candle.rs`, `host/`), which read them.
//!
//! Each struct is built with `new(cfg, vb)` from a [`Vb`], a path into a [`Store`] (candle's
//! `VarBuilder` idiom: `vb.pp("encoder")` is the `encoder.` sub-tree), so that the struct tree
//! is the state-dict tree.

use candle_core::{DType, Device, Tensor};

use super::store::{Matrix, Store};
use crate::config::{Architecture, ModelConfig};
use crate::error::Result;

/// BART's learned position tables start at this offset (a fairseq legacy).
pub(crate) const BART_POSITION_OFFSET: usize = 2;

/// The epsilon of every layer norm of these models (`nn.LayerNorm`'s default).
pub(crate) const LAYER_NORM_EPS: f64 = 1e-5;

/// A path into the checkpoint: the names under one prefix.
#[derive(Clone)]
pub(crate) struct Vb<'a> {
    store: &'a dyn Store,
    prefix: String,
}

impl<'a> Vb<'a> {
    pub(crate) fn root(store: &'a dyn Store) -> Self {
        Vb {
            store,
            prefix: String::new(),
        }
    }

    /// The sub-tree `name.`.
    pub(crate) fn pp(&self, name: &str) -> Vb<'a> {
        Vb {
            store: self.store,
            prefix: format!("{}{name}.", self.prefix),
        }
    }

    fn name(&self, leaf: &str) -> String {
        format!("{}{leaf}", self.prefix)
    }

    pub(crate) fn contains(&self, leaf: &str) -> bool {
        self.store.contains(&self.name(leaf))
    }

    pub(crate) fn tensor(&self, leaf: &str, shape: &[usize]) -> Result<Tensor> {
        self.store.tensor(&self.name(leaf), shape)
    }

    pub(crate) fn matrix(&self, leaf: &str, rows: usize, cols: usize) -> Result<Matrix> {
        self.store.matrix(&self.name(leaf), rows, cols)
    }

    pub(crate) fn device(&self) -> &Device {
        self.store.device()
    }

    pub(crate) fn dtype(&self) -> DType {
        self.store.dtype()
    }
}

/// `nn.Linear`: `y = x W^T + b`, the weight `outputs x inputs`.
#[derive(Debug, Clone)]
pub(crate) struct Linear {
    pub weight: Matrix,
    pub bias: Tensor,
}

impl Linear {
    fn new(vb: &Vb, inputs: usize, outputs: usize) -> Result<Self> {
        Ok(Linear {
            weight: vb.matrix("weight", outputs, inputs)?,
            bias: vb.tensor("bias", &[outputs])?,
        })
    }
}

/// `nn.LayerNorm` over `d_model` features (epsilon [`LAYER_NORM_EPS`]).
#[derive(Debug, Clone)]
pub(crate) struct LayerNorm {
    pub weight: Tensor,
    pub bias: Tensor,
}

impl LayerNorm {
    fn new(vb: &Vb, d: usize) -> Result<Self> {
        Ok(LayerNorm {
            weight: vb.tensor("weight", &[d])?,
            bias: vb.tensor("bias", &[d])?,
        })
    }
}

/// `MarianAttention` / `BartAttention`: the four projections (heads are a view of them).
#[derive(Debug, Clone)]
pub(crate) struct Attention {
    pub q_proj: Linear,
    pub k_proj: Linear,
    pub v_proj: Linear,
    pub out_proj: Linear,
    pub heads: usize,
}

impl Attention {
    fn new(vb: &Vb, d: usize, heads: usize) -> Result<Self> {
        Ok(Attention {
            q_proj: Linear::new(&vb.pp("q_proj"), d, d)?,
            k_proj: Linear::new(&vb.pp("k_proj"), d, d)?,
            v_proj: Linear::new(&vb.pp("v_proj"), d, d)?,
            out_proj: Linear::new(&vb.pp("out_proj"), d, d)?,
            heads,
        })
    }
}

/// `MarianEncoderLayer`: self-attention and feed-forward, each followed by its norm (post-norm).
#[derive(Debug, Clone)]
pub(crate) struct EncoderLayer {
    pub self_attn: Attention,
    pub self_attn_layer_norm: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
    pub final_layer_norm: LayerNorm,
}

impl EncoderLayer {
    fn new(cfg: &ModelConfig, vb: &Vb) -> Result<Self> {
        let d = cfg.d_model;
        Ok(EncoderLayer {
            self_attn: Attention::new(&vb.pp("self_attn"), d, cfg.encoder_attention_heads)?,
            self_attn_layer_norm: LayerNorm::new(&vb.pp("self_attn_layer_norm"), d)?,
            fc1: Linear::new(&vb.pp("fc1"), d, cfg.encoder_ffn_dim)?,
            fc2: Linear::new(&vb.pp("fc2"), cfg.encoder_ffn_dim, d)?,
            final_layer_norm: LayerNorm::new(&vb.pp("final_layer_norm"), d)?,
        })
    }
}

/// `MarianDecoderLayer`: self-attention, cross-attention over the encoder (`encoder_attn`) and
/// feed-forward, each followed by its norm.
#[derive(Debug, Clone)]
pub(crate) struct DecoderLayer {
    pub self_attn: Attention,
    pub self_attn_layer_norm: LayerNorm,
    pub encoder_attn: Attention,
    pub encoder_attn_layer_norm: LayerNorm,
    pub fc1: Linear,
    pub fc2: Linear,
    pub final_layer_norm: LayerNorm,
}

impl DecoderLayer {
    fn new(cfg: &ModelConfig, vb: &Vb) -> Result<Self> {
        let (d, h) = (cfg.d_model, cfg.decoder_attention_heads);
        Ok(DecoderLayer {
            self_attn: Attention::new(&vb.pp("self_attn"), d, h)?,
            self_attn_layer_norm: LayerNorm::new(&vb.pp("self_attn_layer_norm"), d)?,
            encoder_attn: Attention::new(&vb.pp("encoder_attn"), d, h)?,
            encoder_attn_layer_norm: LayerNorm::new(&vb.pp("encoder_attn_layer_norm"), d)?,
            fc1: Linear::new(&vb.pp("fc1"), d, cfg.decoder_ffn_dim)?,
            fc2: Linear::new(&vb.pp("fc2"), cfg.decoder_ffn_dim, d)?,
            final_layer_norm: LayerNorm::new(&vb.pp("final_layer_norm"), d)?,
        })
    }
}

/// `embed_positions`: a table whose row `p + offset` is position `p`.
#[derive(Debug, Clone)]
pub(crate) struct Positions {
    pub table: Tensor,
    pub offset: usize,
    /// M2M100: a token equal to this id (the padding id) gets the table's row `pad` (zeros)
    /// instead of its position, as fairseq's position ids skip padding.
    pub pad: Option<u32>,
}

impl Positions {
    fn new(cfg: &ModelConfig, vb: &Vb) -> Result<Self> {
        let (n_pos, d) = (cfg.max_position_embeddings, cfg.d_model);
        let computed = |rows: usize, values: Vec<f32>| -> Result<Tensor> {
            Ok(Tensor::from_vec(values, (rows, d), vb.device())?.to_dtype(vb.dtype())?)
        };
        Ok(match cfg.architecture {
            // Marian: a fixed sinusoidal table, read from the checkpoint when it has one.
            Architecture::Marian => Positions {
                table: if vb.contains("weight") {
                    vb.tensor("weight", &[n_pos, d])?
                } else {
                    computed(n_pos, sinusoidal_positions(n_pos, d))?
                },
                offset: 0,
                pad: None,
            },
            // BART: a learned table.
            Architecture::Bart => Positions {
                table: vb.tensor("weight", &[n_pos + BART_POSITION_OFFSET, d])?,
                offset: BART_POSITION_OFFSET,
                pad: None,
            },
            // M2M100: fairseq's sinusoids, position `p` at row `pad + 1 + p`.
            Architecture::M2m100 => {
                let pad = cfg.pad_token_id as usize;
                let rows = n_pos + pad + 1;
                Positions {
                    table: computed(rows, fairseq_sinusoidal_positions(rows, d, pad))?,
                    offset: pad + 1,
                    pad: Some(cfg.pad_token_id),
                }
            }
        })
    }

    /// The table and the row of position 0 in it.
    pub(crate) fn table(&self) -> (&Tensor, usize) {
        (&self.table, self.offset)
    }

    /// Positions the table covers.
    pub(crate) fn capacity(&self) -> usize {
        self.table
            .dims()
            .first()
            .copied()
            .unwrap_or(0)
            .saturating_sub(self.offset)
    }
}

/// fairseq's sinusoidal table (M2M100, NLLB): for row `p`, the sines of `p * f_j` in the first
/// half and their cosines in the second, with `f_j = exp(-j ln(10000) / (dim/2 - 1))`; row `pad`
/// all zeros; an odd `dim` ends in a zero column. Computed step by step in f32 as transformers'
/// `M2M100SinusoidalPositionalEmbedding.get_embedding` does (in f64 the angles of late
/// positions would differ by more than a rounding).
pub fn fairseq_sinusoidal_positions(rows: usize, dim: usize, pad: usize) -> Vec<f32> {
    let half = dim / 2;
    let step = -((10000f64).ln() / (half.saturating_sub(1).max(1)) as f64) as f32;
    let freqs: Vec<f32> = (0..half).map(|j| (j as f32 * step).exp()).collect();
    let mut out = vec![0f32; rows * dim];
    for (p, row) in out.chunks_exact_mut(dim.max(1)).enumerate() {
        if p == pad {
            continue;
        }
        for (j, &f) in freqs.iter().enumerate() {
            let angle = p as f32 * f;
            row[j] = angle.sin();
            row[half + j] = angle.cos();
        }
    }
    out
}

/// Marian's sinusoidal table: sines in the first half of each vector, cosines in the second,
/// computed in f64 and rounded to f32 as transformers'
/// `MarianSinusoidalPositionalEmbedding.create_weight` does.
pub fn sinusoidal_positions(n_pos: usize, dim: usize) -> Vec<f32> {
    let half = dim.div_ceil(2);
    let mut out = vec![0f32; n_pos * dim];
    for (pos, row) in out.chunks_exact_mut(dim.max(1)).enumerate() {
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

/// `MarianEncoder` / `MarianDecoder`: token embeddings, positions, BART's embedding norm, the
/// layers, and M2M100's norm after them.
#[derive(Debug, Clone)]
pub(crate) struct Stack<L> {
    pub embed_tokens: Matrix,
    pub embed_positions: Positions,
    pub layernorm_embedding: Option<LayerNorm>,
    pub layers: Vec<L>,
    /// `layer_norm`: the pre-norm stacks' norm of their output.
    pub layer_norm: Option<LayerNorm>,
}

/// The whole checkpoint: the encoder and decoder (under `model.`), the output projection and
/// `final_logits_bias`.
#[derive(Debug, Clone)]
pub(crate) struct Checkpoint {
    /// Layer norm before each sub-layer (M2M100) instead of after.
    pub pre_norm: bool,
    pub encoder: Stack<EncoderLayer>,
    pub decoder: Stack<DecoderLayer>,
    /// `lm_head`, `(target_vocab, d_model)`: the decoder's embeddings when they are tied.
    pub lm_head: Matrix,
    /// `(1, target_vocab)`; zeros when the checkpoint has none.
    pub final_logits_bias: Tensor,
    /// `sqrt(d_model)` with `scale_embedding`, else 1.
    pub embed_scale: f64,
}

impl Checkpoint {
    pub(crate) fn new(cfg: &ModelConfig, root: &Vb) -> Result<Self> {
        let d = cfg.d_model;
        let model = if root.contains("model.encoder.layers.0.fc1.weight") {
            root.pp("model")
        } else {
            root.clone()
        };
        let (enc, dec) = (model.pp("encoder"), model.pp("decoder"));
        let encoder_embed =
            if cfg.share_encoder_decoder_embeddings && model.contains("shared.weight") {
                model.matrix("shared.weight", cfg.vocab_size, d)?
            } else {
                enc.matrix("embed_tokens.weight", cfg.vocab_size, d)?
            };
        let decoder_embed = if cfg.share_encoder_decoder_embeddings {
            encoder_embed.clone()
        } else {
            dec.matrix("embed_tokens.weight", cfg.decoder_vocab_size, d)?
        };
        let lm_head = if cfg.tie_word_embeddings || !root.contains("lm_head.weight") {
            decoder_embed.clone()
        } else {
            root.matrix("lm_head.weight", cfg.decoder_vocab_size, d)?
        };
        let final_logits_bias = if root.contains("final_logits_bias") {
            root.tensor("final_logits_bias", &[1, cfg.decoder_vocab_size])?
        } else {
            Tensor::zeros((1, cfg.decoder_vocab_size), root.dtype(), root.device())?
        };
        let embed_norm = |vb: &Vb| -> Result<Option<LayerNorm>> {
            match cfg.architecture {
                Architecture::Marian | Architecture::M2m100 => Ok(None),
                Architecture::Bart => Ok(Some(LayerNorm::new(&vb.pp("layernorm_embedding"), d)?)),
            }
        };
        let final_norm = |vb: &Vb| -> Result<Option<LayerNorm>> {
            cfg.normalize_before
                .then(|| LayerNorm::new(&vb.pp("layer_norm"), d))
                .transpose()
        };
        let encoder = Stack {
            embed_positions: Positions::new(cfg, &enc.pp("embed_positions"))?,
            layernorm_embedding: embed_norm(&enc)?,
            layers: (0..cfg.encoder_layers)
                .map(|i| EncoderLayer::new(cfg, &enc.pp("layers").pp(&i.to_string())))
                .collect::<Result<Vec<_>>>()?,
            layer_norm: final_norm(&enc)?,
            embed_tokens: encoder_embed,
        };
        let decoder = Stack {
            embed_positions: Positions::new(cfg, &dec.pp("embed_positions"))?,
            layernorm_embedding: embed_norm(&dec)?,
            layers: (0..cfg.decoder_layers)
                .map(|i| DecoderLayer::new(cfg, &dec.pp("layers").pp(&i.to_string())))
                .collect::<Result<Vec<_>>>()?,
            layer_norm: final_norm(&dec)?,
            embed_tokens: decoder_embed,
        };
        Ok(Checkpoint {
            pre_norm: cfg.normalize_before,
            encoder,
            decoder,
            lm_head,
            final_logits_bias,
            embed_scale: if cfg.scale_embedding {
                (d as f64).sqrt()
            } else {
                1.0
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::fairseq_sinusoidal_positions;

    /// Values of transformers 5.25's `M2M100SinusoidalPositionalEmbedding.get_embedding(1030,
    /// 1024, 1)` (as f32 bits): torch's vectorised exp and sin round differently from the
    /// platform's in the last bit, which late positions magnify to ~1e-5.
    #[test]
    fn fairseq_positions_follow_transformers() {
        let (d, n) = (1024, 1030);
        let table = fairseq_sinusoidal_positions(n, d, 1);
        assert!(
            table[d..2 * d].iter().all(|&v| v == 0.0),
            "the padding row is zero"
        );
        for (row, col, bits) in [
            (2, 0, 0x3f68c7b7u32),
            (2, d / 2, 0xbed51133),
            (2, d - 1, 0x3f800000),
            (100, 0, 0xbf01a12e),
            (100, d / 2, 0x3f5cc0ee),
            (100, d - 1, 0x3f7ffcb9),
            (1029, 0, 0xbf7de476),
            (1029, d / 2, 0x3e03206d),
            (1029, d - 1, 0x3f7ea558),
        ] {
            let (got, want) = (table[row * d + col], f32::from_bits(bits));
            assert!(
                (got - want).abs() <= 2e-5,
                "row {row} col {col}: {got} want {want}"
            );
        }
        // Sines first, then cosines: row 0 is sin 0 = 0 then cos 0 = 1.
        assert_eq!(&table[..2], &[0.0, 0.0]);
        assert_eq!(table[d / 2], 1.0);
    }
}
