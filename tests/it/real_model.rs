//! The real default model, Helsinki-NLP/opus-mt-nl-en, where the Hugging Face Hub is reachable
//! (these machines cannot reach it, so the test is ignored here):
//! `cargo test --release --test it real_model -- --ignored --nocapture`.
//!
//! It goes through the same path as `tolk translate`: the catalogue entry
//! (models/opus-mt-nl-en.toml, revision `main`, which has `pytorch_model.bin` and no
//! `model.safetensors`), the Hub download into the Hugging Face cache, the .bin reader, the
//! tokenizer built from `source.spm`/`target.spm`/`vocab.json`, and the search with the model's
//! own generation settings. The reference outputs of transformers cannot be recorded here, so the
//! translations are checked for the words any competent translation keeps.

use tolk::model::Quantization;
use tolk::source::{ModelSpec, Resolver, WeightFormat};
use tolk::translate::{LoadOptions, Translator};

/// Own Dutch sentences and words their English translation must contain (lower case).
const CASES: &[(&str, &[&str])] = &[
    ("De kat zit op de mat.", &["cat", "mat"]),
    (
        "Het kabinet presenteerde dinsdag een nieuw plan voor de woningmarkt.",
        &["tuesday", "plan", "hous"],
    ),
    (
        "In Amsterdam wonen ongeveer 900.000 mensen.",
        &["amsterdam", "900", "people"],
    ),
    ("Ik hou van kaas en brood.", &["cheese", "bread"]),
    (
        "De trein naar Utrecht vertrekt om 14.30 uur van spoor 5.",
        &["train", "utrecht", "5"],
    ),
];

#[test]
#[ignore = "downloads Helsinki-NLP/opus-mt-nl-en (300 MB) from the Hugging Face Hub"]
fn real_opus_mt_nl_en() {
    let resolver = Resolver::from_env().unwrap();
    let spec = ModelSpec::parse("opus-mt-nl-en").unwrap();
    let files = resolver.resolve(&spec, &mut ()).unwrap();
    assert_eq!(
        files.provenance.repo.as_deref(),
        Some("Helsinki-NLP/opus-mt-nl-en")
    );
    // `main` has only the PyTorch file (its safetensors are on refs/pr/1).
    assert_eq!(files.weight_format, WeightFormat::PyTorch);
    eprintln!("commit {:?}", files.provenance.commit);

    let t = Translator::from_files(files.clone(), &LoadOptions::default()).unwrap();
    let c = t.model().config();
    assert_eq!(
        (c.d_model, c.encoder_layers, c.vocab_size, c.pad_token_id),
        (512, 6, 67028, 67027)
    );
    let g = t.generation();
    assert_eq!((g.num_beams, g.max_length), (6, Some(512)));
    assert_eq!(g.bad_words_ids, vec![vec![67027]]);
    assert!(g.renormalize_logits);

    let ids = t.tokenizer().encode(CASES[0].0).unwrap();
    assert_eq!(ids.last(), Some(&0), "encodings end with </s>");
    assert!(ids.iter().all(|&i| i < 67027));

    let sources: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    let out = t.translate(&sources).unwrap();
    for ((src, words), tr) in CASES.iter().zip(&out) {
        eprintln!("{src}\n  -> {}", tr.text);
        let low = tr.text.to_lowercase();
        for w in *words {
            assert!(low.contains(w), "{src:?} -> {:?} lacks {w:?}", tr.text);
        }
        assert!(!tr.ids.contains(&67027), "pad is never produced");
        assert_eq!(tr.ids.last(), Some(&0), "ends with </s>");
    }
    // Each sentence alone gives what the batch gave.
    for (src, tr) in sources.iter().zip(&out) {
        assert_eq!(t.translate(&[src]).unwrap()[0].ids, tr.ids, "{src}");
    }

    // int8: the same translations for (nearly) all of these easy sentences.
    let q = Translator::from_files(
        files,
        &LoadOptions::default().with_quantize(Some(Quantization::Int8)),
    )
    .unwrap();
    let qout = q.translate(&sources).unwrap();
    let same = qout
        .iter()
        .zip(&out)
        .filter(|(a, b)| a.ids == b.ids)
        .count();
    eprintln!("int8: {same}/{} identical to float32", out.len());
    assert!(same + 1 >= out.len());
}
