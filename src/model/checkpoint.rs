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

/// `embed_positions`.
#[derive(Debug, Clone)]
pub(crate) enum Positions {
    /// Marian: a fixed sinusoidal table (computed, or read from the checkpoint when it has one).
    Table(Tensor),
    /// BART: a learned table whose row `p + offset` is position `p`.
    Learned { table: Tensor, offset: usize },
}

impl Positions {
    fn new(cfg: &ModelConfig, vb: &Vb) -> Result<Self> {
        let (n_pos, d) = (cfg.max_position_embeddings, cfg.d_model);
        Ok(match cfg.architecture {
            Architecture::Marian if vb.contains("weight") => {
                Positions::Table(vb.tensor("weight", &[n_pos, d])?)
            }
            Architecture::Marian => Positions::Table(
                Tensor::from_vec(sinusoidal_positions(n_pos, d), (n_pos, d), vb.device())?
                    .to_dtype(vb.dtype())?,
            ),
            Architecture::Bart => Positions::Learned {
                table: vb.tensor("weight", &[n_pos + BART_POSITION_OFFSET, d])?,
                offset: BART_POSITION_OFFSET,
            },
        })
    }

    /// The table and the row of position 0 in it.
    pub(crate) fn table(&self) -> (&Tensor, usize) {
        match self {
            Positions::Table(t) => (t, 0),
            Positions::Learned { table, offset } => (table, *offset),
        }
    }

    /// Positions the table covers.
    pub(crate) fn capacity(&self) -> usize {
        let (table, offset) = self.table();
        table
            .dims()
            .first()
            .copied()
            .unwrap_or(0)
            .saturating_sub(offset)
    }
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
/// layers.
#[derive(Debug, Clone)]
pub(crate) struct Stack<L> {
    pub embed_tokens: Matrix,
    pub embed_positions: Positions,
    pub layernorm_embedding: Option<LayerNorm>,
    pub layers: Vec<L>,
}

/// The whole checkpoint: the encoder and decoder (under `model.`), the output projection and
/// `final_logits_bias`.
#[derive(Debug, Clone)]
pub(crate) struct Checkpoint {
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
                Architecture::Marian => Ok(None),
                Architecture::Bart => Ok(Some(LayerNorm::new(&vb.pp("layernorm_embedding"), d)?)),
            }
        };
        let encoder = Stack {
            embed_positions: Positions::new(cfg, &enc.pp("embed_positions"))?,
            layernorm_embedding: embed_norm(&enc)?,
            layers: (0..cfg.encoder_layers)
                .map(|i| EncoderLayer::new(cfg, &enc.pp("layers").pp(&i.to_string())))
                .collect::<Result<Vec<_>>>()?,
            embed_tokens: encoder_embed,
        };
        let decoder = Stack {
            embed_positions: Positions::new(cfg, &dec.pp("embed_positions"))?,
            layernorm_embedding: embed_norm(&dec)?,
            layers: (0..cfg.decoder_layers)
                .map(|i| DecoderLayer::new(cfg, &dec.pp("layers").pp(&i.to_string())))
                .collect::<Result<Vec<_>>>()?,
            embed_tokens: decoder_embed,
        };
        Ok(Checkpoint {
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
