//! Fuzz target for config parsing: arbitrary bytes, parsed as JSON, through
//! `ModelConfig::from_value`, and through `GenerationConfig::merge_json` and `validate`. Nothing
//! may panic; a config that is accepted must be consistent (heads divide `d_model`, special
//! token ids inside the vocabulary, sizes positive), and a generation config that validates must
//! be usable by the search (at least one beam, room for a token, ids in range).

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
// The capped allocator (tolk_fuzz::CappedAlloc) is linked only when the crate is used.
use tolk_fuzz as _;
use serde_json::Value;
use tolk::config::{GenerationConfig, ModelConfig};

fuzz_target!(|data: &[u8]| {
    let Ok(value) = serde_json::from_slice::<Value>(data) else {
        return;
    };
    let path = Path::new("fuzzed/config.json");
    if let Ok(cfg) = ModelConfig::from_value(path, &value) {
        check_model(&cfg);
        let generation = &cfg.legacy_generation;
        if generation
            .validate(cfg.decoder_vocab_size, cfg.max_position_embeddings)
            .is_ok()
        {
            check_generation(
                generation,
                cfg.decoder_vocab_size,
                cfg.max_position_embeddings,
            );
        }
        if let Some(summ) = &cfg.summarization {
            if summ
                .validate(cfg.decoder_vocab_size, cfg.max_position_embeddings)
                .is_ok()
            {
                check_generation(summ, cfg.decoder_vocab_size, cfg.max_position_embeddings);
            }
        }
        // The same object read as a generation_config.json for this model.
        if let Some(obj) = value.as_object() {
            if let Ok(g) = GenerationConfig::from_model_config(&cfg).merge_json(path, obj) {
                if g.validate(cfg.decoder_vocab_size, cfg.max_position_embeddings)
                    .is_ok()
                {
                    check_generation(&g, cfg.decoder_vocab_size, cfg.max_position_embeddings);
                }
            }
        }
    }
    if let Some(obj) = value.as_object() {
        if let Ok(g) = GenerationConfig::default().merge_json(path, obj) {
            for (vocab, positions) in [(1, 1), (8, 16), (58101, 512), (usize::MAX, usize::MAX)] {
                if g.validate(vocab, positions).is_ok() {
                    check_generation(&g, vocab, positions);
                }
                let _ = g.max_decoder_length(positions);
            }
            let _ = g.min_decoder_length();
        }
    }
});

fn check_model(cfg: &ModelConfig) {
    for (name, n) in [
        ("vocab_size", cfg.vocab_size),
        ("decoder_vocab_size", cfg.decoder_vocab_size),
        ("d_model", cfg.d_model),
        ("encoder_layers", cfg.encoder_layers),
        ("decoder_layers", cfg.decoder_layers),
        ("encoder_attention_heads", cfg.encoder_attention_heads),
        ("decoder_attention_heads", cfg.decoder_attention_heads),
        ("encoder_ffn_dim", cfg.encoder_ffn_dim),
        ("decoder_ffn_dim", cfg.decoder_ffn_dim),
        ("max_position_embeddings", cfg.max_position_embeddings),
    ] {
        assert!(n > 0, "{name} is 0 in an accepted config");
    }
    assert_eq!(cfg.d_model % cfg.encoder_attention_heads, 0);
    assert_eq!(cfg.d_model % cfg.decoder_attention_heads, 0);
    assert_eq!(cfg.head_dim() * cfg.encoder_attention_heads, cfg.d_model);
    if cfg.share_encoder_decoder_embeddings {
        assert_eq!(cfg.vocab_size, cfg.decoder_vocab_size);
    }
    let vocab = cfg.vocab_size.max(cfg.decoder_vocab_size);
    assert!(
        (cfg.pad_token_id as usize) < vocab,
        "pad id outside the vocabulary"
    );
    assert!(
        (cfg.eos_token_id as usize) < cfg.decoder_vocab_size,
        "eos id outside"
    );
    assert!(
        (cfg.decoder_start_token_id as usize) < cfg.decoder_vocab_size,
        "start id outside"
    );
    assert!(!cfg.normalize_before, "pre-norm configs are refused");
}

fn check_generation(g: &GenerationConfig, vocab: usize, positions: usize) {
    assert!(g.num_beams >= 1);
    assert!((1..=g.num_beams).contains(&g.num_return_sequences));
    assert!(g.repetition_penalty.is_finite() && g.repetition_penalty > 0.0);
    assert!(g.length_penalty.is_finite());
    assert!(
        g.max_decoder_length(positions) >= 2,
        "no room for a generated token"
    );
    let ids = [
        Some(g.eos_token_id),
        Some(g.pad_token_id),
        Some(g.decoder_start_token_id),
        g.forced_eos_token_id,
        g.forced_bos_token_id,
    ];
    for id in ids.into_iter().flatten() {
        assert!(
            (id as usize) < vocab,
            "id {id} outside a vocabulary of {vocab}"
        );
    }
    for seq in &g.bad_words_ids {
        assert!(!seq.is_empty());
        assert!(seq.iter().all(|&t| (t as usize) < vocab));
    }
}
