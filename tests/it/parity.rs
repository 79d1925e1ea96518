//! Token-for-token parity with Hugging Face transformers on the committed tiny models: every
//! setting recorded by tools/fixtures/make_fixtures.py, one sentence at a time and in batches.

use candle_core::{DType, Device};
use candle_nn::VarBuilder;
use serde_json::Value;
use tolk::config::{GenerationConfig, ModelConfig};
use tolk::generate::generate;
use tolk::model::Seq2SeqModel;

use crate::common::{apply_kwargs, fixture_dir, ids, reference};

fn load(name: &str) -> (Seq2SeqModel, GenerationConfig) {
    let dir = fixture_dir(name);
    let cfg = ModelConfig::from_file(dir.join("config.json")).unwrap();
    let gen = GenerationConfig::for_model(&cfg, Some(&dir.join("generation_config.json"))).unwrap();
    let vb = unsafe {
        VarBuilder::from_mmaped_safetensors(
            &[dir.join("model.safetensors")],
            DType::F32,
            &Device::Cpu,
        )
        .unwrap()
    };
    (Seq2SeqModel::new(cfg, vb).unwrap(), gen)
}

/// Runs every recorded setting and compares generated ids; returns (matches, total, report).
fn check_generation(name: &str, batch: usize) {
    let (model, gen) = load(name);
    let reference = reference(name);
    let sources: Vec<Vec<u32>> = reference["tokenizer"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| ids(&t["ids"]))
        .collect();
    let mut failures = Vec::new();
    let mut total = 0;
    for setting in reference["settings"].as_array().unwrap() {
        let ref_bs = setting["batch_size"].as_u64().unwrap() as usize;
        if ref_bs != 1 {
            continue;
        }
        let cfg = apply_kwargs(gen.clone(), &setting["kwargs"]);
        let results = setting["results"].as_array().unwrap();
        for start in (0..sources.len()).step_by(batch) {
            let end = (start + batch).min(sources.len());
            let enc = model.encode(&sources[start..end]).unwrap();
            let out = generate(&model, &enc, &cfg).unwrap();
            for (i, hyps) in out.iter().enumerate() {
                let expected: Vec<&Value> = match &results[start + i] {
                    Value::Array(a) => a.iter().collect(),
                    v => vec![v],
                };
                for (h, e) in hyps.iter().zip(&expected) {
                    total += 1;
                    let want = ids(&e["ids"]);
                    if h.ids != want {
                        failures.push(format!(
                            "{} #{}: got {:?}\n   want {:?} (margin {}, f64-stable {})",
                            setting["name"],
                            start + i,
                            h.ids,
                            want,
                            e["margin"],
                            e["stable_f64"]
                        ));
                    }
                    if let Some(score) = e.get("score").and_then(Value::as_f64) {
                        if (h.score as f64 - score).abs() > 1e-3 {
                            failures.push(format!(
                                "{} #{}: score {} want {score}",
                                setting["name"],
                                start + i,
                                h.score
                            ));
                        }
                    }
                }
                assert_eq!(hyps.len(), expected.len());
            }
        }
    }
    eprintln!(
        "{name} batch {batch}: {}/{total} hypotheses identical",
        total - failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn generation_matches_transformers_one_at_a_time() {
    for name in ["marian-tiny", "marian-tiny-relu"] {
        check_generation(name, 1);
    }
}

#[test]
fn generation_matches_transformers_in_batches() {
    for name in ["marian-tiny", "marian-tiny-relu"] {
        check_generation(name, 8);
    }
}
