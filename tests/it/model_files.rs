//! Broken model directories: every problem is reported before any translation starts, with an
//! error that names the file and what is wrong with it (issue: bad models explain themselves).

use std::path::{Path, PathBuf};

use tolk::translate::{LoadOptions, Translator};

use crate::common::fixture_dir;

/// A copy of a fixture model in a temporary directory, to break.
fn copy_of(name: &str) -> (tempfile::TempDir, PathBuf) {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join(name);
    std::fs::create_dir(&dir).unwrap();
    for e in std::fs::read_dir(fixture_dir(name)).unwrap() {
        let p = e.unwrap().path();
        if p.file_name().unwrap() != "reference.json" {
            std::fs::copy(&p, dir.join(p.file_name().unwrap())).unwrap();
        }
    }
    (tmp, dir)
}

fn load_error(dir: &Path) -> String {
    match Translator::from_dir(dir, &LoadOptions::default()) {
        Ok(_) => panic!("{} loaded although it is broken", dir.display()),
        Err(e) => {
            // The whole chain, as the command line prints it.
            let mut s = e.to_string();
            let mut src = std::error::Error::source(&e);
            while let Some(c) = src {
                s.push_str(&format!(" / {c}"));
                src = c.source();
            }
            s
        }
    }
}

fn edit_json(path: &Path, f: impl FnOnce(&mut serde_json::Value)) {
    let mut v: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    f(&mut v);
    std::fs::write(path, serde_json::to_string(&v).unwrap()).unwrap();
}

#[test]
fn a_missing_file_is_named() {
    for file in ["config.json", "source.spm", "target.spm", "vocab.json"] {
        let (_tmp, dir) = copy_of("marian-tiny");
        std::fs::remove_file(dir.join(file)).unwrap();
        let e = load_error(&dir);
        assert!(e.contains(file), "{file}: {e}");
    }
    let (_tmp, dir) = copy_of("marian-tiny");
    std::fs::remove_file(dir.join("model.safetensors")).unwrap();
    std::fs::remove_file(dir.join("pytorch_model.bin")).unwrap();
    let e = load_error(&dir);
    assert!(
        e.contains("model.safetensors") && e.contains("pytorch_model.bin"),
        "{e}"
    );
}

#[test]
fn truncated_or_corrupt_weights_are_named_with_a_fix() {
    for (file, other) in [
        ("model.safetensors", None),
        ("pytorch_model.bin", Some("model.safetensors")),
    ] {
        for cut in [0.3, 0.9, 0.999] {
            let (_tmp, dir) = copy_of("marian-tiny");
            if let Some(o) = other {
                std::fs::remove_file(dir.join(o)).unwrap();
            }
            let bytes = std::fs::read(dir.join(file)).unwrap();
            std::fs::write(
                dir.join(file),
                &bytes[..(bytes.len() as f64 * cut) as usize],
            )
            .unwrap();
            let e = load_error(&dir);
            assert!(e.contains(file), "{file} cut at {cut}: {e}");
        }
        let (_tmp, dir) = copy_of("marian-tiny");
        if let Some(o) = other {
            std::fs::remove_file(dir.join(o)).unwrap();
        }
        std::fs::write(dir.join(file), b"this is not a weight file at all").unwrap();
        let e = load_error(&dir);
        assert!(e.contains(file), "{file} garbage: {e}");
    }
}

#[test]
fn a_config_that_does_not_match_the_weights_is_refused() {
    // Wrong width: every matrix has the wrong shape.
    let (_tmp, dir) = copy_of("marian-tiny");
    edit_json(&dir.join("config.json"), |v| v["d_model"] = 128.into());
    let e = load_error(&dir);
    assert!(
        e.contains("model.safetensors") && e.contains("shape"),
        "{e}"
    );
    // More layers than the file has.
    let (_tmp, dir) = copy_of("marian-tiny");
    edit_json(&dir.join("config.json"), |v| v["decoder_layers"] = 5.into());
    let e = load_error(&dir);
    assert!(
        e.contains("missing") && e.contains("decoder.layers.2"),
        "{e}"
    );
    // A vocabulary size that does not match the embeddings (and vocab.json).
    let (_tmp, dir) = copy_of("marian-tiny");
    edit_json(&dir.join("config.json"), |v| v["vocab_size"] = 100.into());
    let e = load_error(&dir);
    assert!(e.contains("config.json") && e.contains("vocab_size"), "{e}");
    let (_tmp, dir) = copy_of("marian-tiny");
    edit_json(&dir.join("config.json"), |v| {
        v["vocab_size"] = 100.into();
        v["decoder_vocab_size"] = 100.into();
        v["pad_token_id"] = 99.into();
        v["decoder_start_token_id"] = 99.into();
    });
    let e = load_error(&dir);
    assert!(e.contains("vocab.json") && e.contains("100"), "{e}");
}

#[test]
fn a_vocabulary_that_disagrees_with_the_sentencepiece_model_is_refused() {
    let (_tmp, dir) = copy_of("marian-tiny");
    let n = edit_vocab(&dir);
    let e = load_error(&dir);
    assert!(e.contains("vocab.json"), "{n} entries: {e}");
}

fn edit_vocab(dir: &Path) -> usize {
    // Keep the special tokens, replace every piece by a name the spm does not have.
    let path = dir.join("vocab.json");
    let v: serde_json::Map<String, serde_json::Value> =
        serde_json::from_str(&std::fs::read_to_string(&path).unwrap()).unwrap();
    let out: serde_json::Map<String, serde_json::Value> = v
        .iter()
        .map(|(k, id)| {
            let key = if k.starts_with('<') {
                k.clone()
            } else {
                format!("zz{}", id)
            };
            (key, id.clone())
        })
        .collect();
    std::fs::write(&path, serde_json::to_string(&out).unwrap()).unwrap();
    out.len()
}

#[test]
fn an_unknown_architecture_is_named() {
    let (_tmp, dir) = copy_of("marian-tiny");
    edit_json(&dir.join("config.json"), |v| v["model_type"] = "t5".into());
    let e = load_error(&dir);
    assert!(
        e.contains("config.json") && e.contains("model_type") && e.contains("t5"),
        "{e}"
    );
}

#[test]
fn a_hostile_pickle_is_refused_and_never_run() {
    for evil in ["evil_exec_legacy.bin", "evil_eval_zip.bin"] {
        let (_tmp, dir) = copy_of("marian-tiny");
        std::fs::remove_file(dir.join("model.safetensors")).unwrap();
        let src = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests/data/weights")
            .join(evil);
        std::fs::copy(src, dir.join("pytorch_model.bin")).unwrap();
        let e = load_error(&dir);
        assert!(
            e.contains("pytorch_model.bin") && e.contains("builtins"),
            "{evil}: {e}"
        );
    }
    assert!(!Path::new("/tmp/tolk-weights-pwned").exists());
}
