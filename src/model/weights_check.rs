//! The tensors a model configuration needs, so that a weight file can be checked against its
//! `config.json` before anything is built, with errors that name the file and the tensor.

use crate::config::{Architecture, ModelConfig};

/// One tensor the model needs: any of `names` (alternatives, in order of preference), of `shape`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExpectedTensor {
    /// Accepted names; the first present one is used.
    pub names: Vec<String>,
    /// Required shape.
    pub shape: Vec<usize>,
    /// Whether loading fails without it (`final_logits_bias`, `lm_head.weight` and Marian's position
    /// tables may be absent).
    pub required: bool,
}

/// Every tensor a model of this configuration reads, with `prefix` (`"model."` for the usual
/// `*ForConditionalGeneration` / `MarianMTModel` checkpoints).
pub fn expected_tensors(cfg: &ModelConfig, prefix: &str) -> Vec<ExpectedTensor> {
    let d = cfg.d_model;
    let mut out = Vec::new();
    let mut need = |names: Vec<String>, shape: Vec<usize>, required: bool| {
        out.push(ExpectedTensor {
            names,
            shape,
            required,
        })
    };
    let p = |s: &str| format!("{prefix}{s}");
    if cfg.share_encoder_decoder_embeddings {
        need(
            vec![p("shared.weight"), p("encoder.embed_tokens.weight")],
            vec![cfg.vocab_size, d],
            true,
        );
    } else {
        need(
            vec![p("encoder.embed_tokens.weight")],
            vec![cfg.vocab_size, d],
            true,
        );
        need(
            vec![p("decoder.embed_tokens.weight")],
            vec![cfg.decoder_vocab_size, d],
            true,
        );
    }
    if !cfg.tie_word_embeddings {
        need(
            vec!["lm_head.weight".into()],
            vec![cfg.decoder_vocab_size, d],
            false,
        );
    }
    need(
        vec!["final_logits_bias".into()],
        vec![1, cfg.decoder_vocab_size],
        false,
    );
    for side in ["encoder", "decoder"] {
        match cfg.architecture {
            Architecture::Marian => need(
                vec![p(&format!("{side}.embed_positions.weight"))],
                vec![cfg.max_position_embeddings, d],
                false,
            ),
            Architecture::Bart => {
                need(
                    vec![p(&format!("{side}.embed_positions.weight"))],
                    vec![cfg.max_position_embeddings + 2, d],
                    true,
                );
                for t in ["weight", "bias"] {
                    need(
                        vec![p(&format!("{side}.layernorm_embedding.{t}"))],
                        vec![d],
                        true,
                    );
                }
            }
            // Computed sinusoids; the norm after the stack.
            Architecture::M2m100 => {
                for t in ["weight", "bias"] {
                    need(vec![p(&format!("{side}.layer_norm.{t}"))], vec![d], true);
                }
            }
        }
    }
    let linear =
        |need: &mut dyn FnMut(Vec<String>, Vec<usize>, bool), name: String, i: usize, o: usize| {
            need(vec![format!("{name}.weight")], vec![o, i], true);
            need(vec![format!("{name}.bias")], vec![o], true);
        };
    let norm = |need: &mut dyn FnMut(Vec<String>, Vec<usize>, bool), name: String| {
        need(vec![format!("{name}.weight")], vec![d], true);
        need(vec![format!("{name}.bias")], vec![d], true);
    };
    for (side, layers, ffn) in [
        ("encoder", cfg.encoder_layers, cfg.encoder_ffn_dim),
        ("decoder", cfg.decoder_layers, cfg.decoder_ffn_dim),
    ] {
        for l in 0..layers {
            let base = p(&format!("{side}.layers.{l}"));
            let mut attns = vec!["self_attn"];
            if side == "decoder" {
                attns.push("encoder_attn");
            }
            for a in attns {
                for proj in ["q_proj", "k_proj", "v_proj", "out_proj"] {
                    linear(&mut need, format!("{base}.{a}.{proj}"), d, d);
                }
                norm(&mut need, format!("{base}.{a}_layer_norm"));
            }
            linear(&mut need, format!("{base}.fc1"), d, ffn);
            linear(&mut need, format!("{base}.fc2"), ffn, d);
            norm(&mut need, format!("{base}.final_layer_norm"));
        }
    }
    out
}
