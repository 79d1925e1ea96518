//! Tokenizer parity on the committed fixture models: the token ids and decodes that
//! tools/fixtures/make_fixtures.py recorded from transformers' `MarianTokenizer` (the
//! tokenizer's own, broader reference lives in tests/data/tokenizer and runs as unit tests).

use serde_json::Value;
use tolk::tokenizer::MarianTokenizer;

use crate::common::ids;

#[test]
fn fixture_token_ids_match_transformers() {
    let root = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures");
    let mut dirs: Vec<_> = std::fs::read_dir(&root)
        .map(|rd| rd.filter_map(|e| e.ok().map(|e| e.path())).collect())
        .unwrap_or_default();
    dirs.sort();
    let mut failures = Vec::new();
    // Marian models only (source.spm); M2M100/NLLB have their own test (multilingual.rs).
    for dir in dirs
        .iter()
        .filter(|d| d.join("reference.json").is_file() && d.join("source.spm").is_file())
    {
        let text = std::fs::read_to_string(dir.join("reference.json")).unwrap();
        let reference: Value = serde_json::from_str(&text).unwrap();
        let (Some(sentences), Some(records)) = (
            reference["sentences"].as_array(),
            reference["tokenizer"].as_array(),
        ) else {
            continue;
        };
        let tok = MarianTokenizer::from_dir(dir).unwrap();
        let (mut enc_ok, mut dec_ok) = (0, 0);
        for (sentence, record) in sentences.iter().zip(records) {
            let sentence = sentence.as_str().unwrap();
            let want = ids(&record["ids"]);
            let got = tok.encode(sentence).unwrap();
            if got == want {
                enc_ok += 1;
            } else {
                failures.push(format!(
                    "{}: encode {sentence:?}\n  got  {got:?}\n  want {want:?}",
                    dir.display()
                ));
            }
            // Source ids only decode meaningfully when both sides share one vocabulary.
            let Some(want_text) = record["decoded"].as_str() else {
                dec_ok += 1;
                continue;
            };
            let got_text = tok.decode(&want).unwrap();
            if got_text == want_text {
                dec_ok += 1;
            } else {
                failures.push(format!(
                    "{}: decode {want:?}\n  got  {got_text:?}\n  want {want_text:?}",
                    dir.display()
                ));
            }
        }
        eprintln!(
            "{}: {enc_ok}/{n} encode identical, {dec_ok}/{n} decode identical",
            dir.display(),
            n = records.len()
        );
    }
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
