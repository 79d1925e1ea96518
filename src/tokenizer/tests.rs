//! Parity tests against the Python reference (`tests/data/tokenizer/reference.json`, made by
//! `tests/data/tokenizer/make_reference.py` with transformers 5.24.0, sentencepiece 0.2.3 and
//! sacremoses 0.2.0), against sentencepiece for BPE models (`tests/fixtures/spm-bpe/`, made by
//! `tools/fixtures/make_spm_bpe.py`), property tests, and robustness tests.

use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use proptest::prelude::*;
use serde_json::Value;

use super::*;

fn data_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/data/tokenizer")
}

fn reference() -> &'static Value {
    static REF: OnceLock<Value> = OnceLock::new();
    REF.get_or_init(|| {
        let path = data_dir().join("reference.json");
        let text = std::fs::read_to_string(&path).expect("reference.json is readable");
        serde_json::from_str(&text).expect("reference.json is JSON")
    })
}

fn inputs() -> Vec<&'static str> {
    reference()["inputs"]
        .as_array()
        .expect("inputs")
        .iter()
        .map(|v| v.as_str().expect("input is a string"))
        .collect()
}

fn ids_of(v: &Value) -> Vec<u32> {
    v.as_array()
        .expect("id list")
        .iter()
        .map(|x| x.as_u64().expect("id") as u32)
        .collect()
}

fn strings_of(v: &Value) -> Vec<&str> {
    v.as_array()
        .expect("string list")
        .iter()
        .map(|x| x.as_str().expect("string"))
        .collect()
}

/// Collects mismatches, prints each clearly, and fails at the end with the totals.
struct Tally {
    what: String,
    total: usize,
    failures: Vec<String>,
}

impl Tally {
    fn new(what: impl Into<String>) -> Self {
        Tally {
            what: what.into(),
            total: 0,
            failures: Vec::new(),
        }
    }

    fn check<T: PartialEq + std::fmt::Debug>(&mut self, case: &str, got: T, want: T) {
        self.total += 1;
        if got != want {
            self.failures
                .push(format!("{case}\n      got:  {got:?}\n      want: {want:?}"));
        }
    }

    fn finish(self) -> (usize, usize) {
        let ok = self.total - self.failures.len();
        println!("{}: {ok}/{} identical", self.what, self.total);
        for f in &self.failures {
            println!("  MISMATCH {f}");
        }
        (ok, self.total)
    }
}

fn assert_all(tallies: Vec<Tally>) {
    let mut bad = Vec::new();
    for t in tallies {
        let what = t.what.clone();
        let (ok, total) = t.finish();
        if ok != total {
            bad.push(format!("{what}: {ok}/{total}"));
        }
    }
    assert!(bad.is_empty(), "parity failures: {bad:?}");
}

#[test]
fn sentencepiece_parity_with_python() {
    let r = reference();
    let inputs = inputs();
    let n = r["spm_inputs"].as_u64().expect("spm_inputs") as usize;
    let mut tallies = Vec::new();
    for (name, m) in r["spm"].as_object().expect("spm") {
        let path = data_dir().join(m["file"].as_str().expect("file"));
        let model = SentencePieceModel::from_file(&path).expect("model loads");
        assert_eq!(
            model.len() as u64,
            m["piece_size"].as_u64().expect("size"),
            "{name}"
        );
        let mut enc = Tally::new(format!("spm {name}: encode pieces"));
        for (text, want) in inputs[..n]
            .iter()
            .zip(m["pieces"].as_array().expect("pieces"))
        {
            let got: Vec<String> = model
                .encode(text)
                .into_iter()
                .map(|p| p.text.into_owned())
                .collect();
            enc.check(
                &format!("{text:?}"),
                got,
                strings_of(want).into_iter().map(String::from).collect(),
            );
        }
        let mut dec = Tally::new(format!("spm {name}: decode_pieces"));
        for case in m["decode_pieces"].as_array().expect("decode_pieces") {
            let pieces = strings_of(&case["pieces"]);
            let want = case["text"].as_str().expect("text");
            dec.check(
                &format!("{pieces:?}"),
                model.decode_pieces(&pieces),
                want.to_string(),
            );
        }
        tallies.push(enc);
        tallies.push(dec);
    }
    assert_all(tallies);
}

#[test]
fn marian_parity_with_transformers() {
    let r = reference();
    let inputs = inputs();
    let mut tallies = Vec::new();
    for (name, m) in r["marian"].as_object().expect("marian") {
        let dir = data_dir().join(m["dir"].as_str().expect("dir"));
        let tok = MarianTokenizer::from_dir(&dir).expect("tokenizer loads");
        let mut meta = Tally::new(format!("marian {name}: sizes and special ids"));
        meta.check(
            "vocab_size",
            tok.vocab_size() as u64,
            m["vocab_size"].as_u64().unwrap_or(0),
        );
        meta.check(
            "len",
            tok.len_with_added_tokens() as u64,
            m["len"].as_u64().unwrap_or(0),
        );
        meta.check(
            "eos",
            u64::from(tok.eos_id()),
            m["eos_id"].as_u64().unwrap_or(0),
        );
        meta.check(
            "unk",
            u64::from(tok.unk_id()),
            m["unk_id"].as_u64().unwrap_or(0),
        );
        meta.check(
            "pad",
            u64::from(tok.pad_id()),
            m["pad_id"].as_u64().unwrap_or(0),
        );

        let mut enc = Tally::new(format!("marian {name}: encode"));
        let expected: Vec<Vec<u32>> = m["encode"]
            .as_array()
            .expect("encode")
            .iter()
            .map(ids_of)
            .collect();
        for (text, want) in inputs.iter().zip(&expected) {
            enc.check(
                &format!("{text:?}"),
                tok.encode(text).expect("encode"),
                want.clone(),
            );
        }
        // The batch path gives the same ids.
        let batch = tok.encode_batch(&inputs).expect("batch");
        enc.check("encode_batch == encode", batch, expected.clone());

        let mut dec = Tally::new(format!("marian {name}: decode"));
        for (ids, want) in expected.iter().zip(m["decode"].as_array().expect("decode")) {
            dec.check(
                &format!("{ids:?}"),
                tok.decode(ids).ok(),
                want.as_str().map(String::from),
            );
        }
        for case in m["decode_ids"].as_array().expect("decode_ids") {
            let ids = ids_of(&case["ids"]);
            let want = case.get("text").and_then(Value::as_str).map(String::from);
            dec.check(&format!("{ids:?}"), tok.decode(&ids).ok(), want);
        }
        tallies.extend([meta, enc, dec]);
    }
    assert_all(tallies);
}

#[test]
fn moses_parity_with_sacremoses() {
    let r = reference();
    let inputs = inputs();
    let mut tallies = Vec::new();
    for (lang, outs) in r["moses"].as_object().expect("moses") {
        let norm = MosesPunctNormalizer::new(Some(lang));
        let mut t = Tally::new(format!("moses {lang}"));
        for (text, want) in inputs.iter().zip(strings_of(outs)) {
            t.check(&format!("{text:?}"), norm.normalize(text), want.to_string());
        }
        tallies.push(t);
    }
    assert_all(tallies);
}

#[test]
fn punct_normalization_is_opt_in() {
    let dir = data_dir().join("models/base");
    let plain = MarianTokenizer::from_dir(&dir).expect("loads");
    let moses = plain.clone().with_punct_normalization(true);
    let text = "„Ja” , zei hij (echt) .";
    let normalized = MosesPunctNormalizer::new(Some("nl")).normalize(text);
    assert_ne!(
        plain.encode(text).unwrap(),
        plain.encode(&normalized).unwrap()
    );
    assert_eq!(
        moses.encode(text).unwrap(),
        plain.encode(&normalized).unwrap()
    );
    assert_eq!(moses.encode("").unwrap(), vec![moses.eos_id()]);
}

fn model_dirs() -> Vec<PathBuf> {
    let mut dirs: Vec<PathBuf> = std::fs::read_dir(data_dir().join("models"))
        .expect("models dir")
        .map(|e| e.expect("entry").path())
        .collect();
    dirs.sort();
    dirs
}

fn tokenizers() -> &'static Vec<MarianTokenizer> {
    static TOKS: OnceLock<Vec<MarianTokenizer>> = OnceLock::new();
    TOKS.get_or_init(|| {
        model_dirs()
            .iter()
            .map(|d| MarianTokenizer::from_dir(d).expect("loads"))
            .collect()
    })
}

fn tokenizer(name: &str) -> &'static MarianTokenizer {
    tokenizers()
        .iter()
        .find(|t| t.dir().ends_with(name))
        .expect("model dir exists")
}

/// The characters that the model can spell as single pieces which `vocab.json` also has, taken
/// from the training corpus.
fn spellable(tok: &MarianTokenizer, ascii_only: bool) -> Vec<char> {
    let corpus = std::fs::read_to_string(data_dir().join("corpus.nl.txt")).expect("corpus");
    let spm = tok.source_model();
    let mut chars: Vec<char> = corpus
        .chars()
        .filter(|c| !c.is_whitespace() && (!ascii_only || c.is_ascii()))
        .filter(|c| {
            let s = c.to_string();
            spm.piece_to_id(&s) != spm.unk_id() && tok.token_to_id(&s).is_some()
        })
        .collect();
    chars.sort_unstable();
    chars.dedup();
    chars
}

/// The documented round trip: for text made only of characters that are single pieces of the
/// source model and of `vocab.json` (no added-token strings, no leading `>>xx<<`),
/// `decode(encode(x))` is `x` with every run of spaces reduced to one space and surrounding
/// whitespace removed. With an `nmt_nfkc` model this holds for text that NFKC leaves alone
/// (checked here with ASCII); other text comes back NFKC-normalised, and characters the model
/// does not know are dropped (they encode to `<unk>`, which decoding skips).
fn round_trip_case(tok: &MarianTokenizer, words: &[String]) -> Result<(), TestCaseError> {
    let text = words.join(" ");
    let ids = tok.encode(&text).expect("encode");
    prop_assert_eq!(ids.last().copied(), Some(tok.eos_id()));
    let back = tok.decode(&ids).expect("decode");
    let want = text
        .split(' ')
        .filter(|w| !w.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    prop_assert_eq!(back, want);
    Ok(())
}

fn words_strategy(alphabet: Vec<char>) -> impl Strategy<Value = Vec<String>> {
    let word = proptest::collection::vec(proptest::sample::select(alphabet), 0..12)
        .prop_map(|cs| cs.into_iter().collect::<String>());
    proptest::collection::vec(word, 0..10)
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 200, ..ProptestConfig::default() })]

    #[test]
    fn round_trip_identity_model(words in words_strategy(spellable(tokenizer("identity"), false))) {
        round_trip_case(tokenizer("identity"), &words)?;
    }

    #[test]
    fn round_trip_nfkc_model(words in words_strategy(spellable(tokenizer("base"), true))) {
        round_trip_case(tokenizer("base"), &words)?;
    }

    #[test]
    fn encoding_and_decoding_never_panic(text in any::<String>(), ids in proptest::collection::vec(0u32..2000, 0..20)) {
        for tok in tokenizers() {
            let enc = tok.encode(&text).expect("encode never fails");
            prop_assert_eq!(enc.last().copied(), Some(tok.eos_id()));
            let _ = tok.decode(&enc);
            let _ = tok.decode(&ids);
            let _ = tok.source_model().decode_pieces(&[text.as_str()]);
        }
    }

    #[test]
    fn corrupt_bpe_model_files_are_errors_not_panics(
        cut in 0usize..8_000,
        flips in proptest::collection::vec((0usize..8_000, any::<u8>()), 0..8),
    ) {
        let bytes = std::fs::read(spm_bpe_dir().join("unused.model")).expect("model");
        let mut b = bytes[..cut.min(bytes.len())].to_vec();
        for (pos, val) in flips {
            if !b.is_empty() {
                let i = pos % b.len();
                b[i] = val;
            }
        }
        if let Ok(model) = SentencePieceModel::from_bytes(&b, "fuzzed.model") {
            let _ = model.encode("De trein<sep> km/h, ﬁets 😀 ภาษา eeee...");
        }
    }

    #[test]
    fn corrupt_model_files_are_errors_not_panics(
        cut in 0usize..10_000,
        flips in proptest::collection::vec((0usize..10_000, any::<u8>()), 0..8),
    ) {
        let bytes = std::fs::read(data_dir().join("spm/nl_userdef.model")).expect("model");
        let mut b = bytes[..cut.min(bytes.len())].to_vec();
        for (pos, val) in flips {
            if !b.is_empty() {
                let i = pos % b.len();
                b[i] = val;
            }
        }
        if let Ok(model) = SentencePieceModel::from_bytes(&b, "fuzzed.spm") {
            let _ = model.encode("Hallo wereld, ﬁets 😀 km/h");
            let _ = model.decode_pieces(&["▁Hallo", "<0x41>", "<unk>"]);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    /// Scrambles the precompiled charsmap (the double-array trie and the replacement blob) of
    /// the nmt_nfkc model: lookups must stay in bounds whatever the units say.
    #[test]
    fn scrambled_charsmaps_never_panic(
        flips in proptest::collection::vec((0usize..250_000, any::<u8>()), 1..64),
    ) {
        let mut b = nfkc_model_bytes().clone();
        let n = b.len();
        for (pos, val) in flips {
            // Stay inside the charsmap, which sits between the pieces and the end of the file.
            let i = 12_000 + pos % (n - 12_000);
            b[i] = val;
        }
        if let Ok(model) = SentencePieceModel::from_bytes(&b, "scrambled.spm") {
            for text in ["Hallo wereld", "ﬁ Ａ ① é e\u{301} \u{a0}\u{3000}x", "😀\u{0}\u{fffd}ǅ™"] {
                let _ = model.encode(text);
            }
        }
    }
}

fn nfkc_model_bytes() -> &'static Vec<u8> {
    static BYTES: OnceLock<Vec<u8>> = OnceLock::new();
    BYTES.get_or_init(|| std::fs::read(data_dir().join("spm/nl_nfkc.model")).expect("model"))
}

#[test]
fn arbitrary_strings_from_a_nasty_alphabet_do_not_panic() {
    // Deterministic pseudo-random strings over characters that stress every stage.
    let alphabet: Vec<&str> = vec![
        "a", " ", "  ", "\t", "\n", "\u{a0}", "\u{3000}", "é", "e\u{301}", "ﬁ", "Ａ", "😀", "</s>",
        "<unk>", "<pad>", ">>", "<<", ">>nl<<", "▁", "\u{0}", "\u{fffd}", "\u{200b}", "km/h",
        "<eop>",
    ];
    let mut state = 0x2545_f491_4f6c_dd1du64;
    for tok in tokenizers() {
        for _ in 0..300 {
            let mut s = String::new();
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let len = (state % 24) as usize;
            for _ in 0..len {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                s.push_str(alphabet[(state % alphabet.len() as u64) as usize]);
            }
            let ids = tok.encode(&s).expect("encode");
            let _ = tok.decode(&ids);
        }
    }
}

#[test]
fn long_inputs_are_linear() {
    // Pathological inputs (one 400 kB word, 200 k unknown characters, a long run of spaces)
    // must go through quickly even in a debug build; a quadratic step would take minutes.
    let tok = tokenizer("base");
    let word = "kindercarnavalsoptocht".repeat(20_000);
    let ids = tok.encode(&word).expect("encode");
    assert!(ids.len() > 20_000);
    let unknown = "😀".repeat(200_000);
    let ids = tok.encode(&unknown).expect("encode");
    assert!(
        ids.len() <= 3,
        "unknown characters merge into one piece: {}",
        ids.len()
    );
    let spaces = format!("a{}b", " ".repeat(300_000));
    assert_eq!(tok.encode(&spaces).unwrap(), tok.encode("a b").unwrap());
    let start = format!(">>{}", "x".repeat(300_000));
    assert!(tok.encode(&start).is_ok());
}

#[test]
fn load_errors_name_the_file() {
    let tmp = tempfile::tempdir().expect("tempdir");
    let base = data_dir().join("models/base");
    let copy = |name: &str| {
        std::fs::copy(base.join(name), tmp.path().join(name)).expect("copy");
    };
    let err = |dir: &Path| {
        MarianTokenizer::from_dir(dir)
            .expect_err("must fail")
            .to_string()
    };

    // Missing files.
    let msg = err(tmp.path());
    assert!(msg.contains("source.spm"), "{msg}");
    copy("source.spm");
    copy("target.spm");
    let msg = err(tmp.path());
    assert!(msg.contains("vocab.json"), "{msg}");

    // Empty, non-JSON, wrong-shaped vocabularies.
    let vocab = tmp.path().join("vocab.json");
    for (content, needle) in [
        ("", "empty"),
        ("not json", "JSON"),
        ("[1, 2]", "JSON"),
        ("{\"a\": -1}", "JSON"),
    ] {
        std::fs::write(&vocab, content).unwrap();
        let msg = err(tmp.path());
        assert!(
            msg.contains("vocab.json") && msg.contains(needle),
            "{content:?}: {msg}"
        );
    }
    // Missing special tokens.
    for missing in ["<unk>", "</s>", "<pad>"] {
        let mut v: serde_json::Map<String, Value> =
            serde_json::from_str(&std::fs::read_to_string(base.join("vocab.json")).unwrap())
                .unwrap();
        v.remove(missing);
        std::fs::write(&vocab, serde_json::to_string(&v).unwrap()).unwrap();
        let msg = err(tmp.path());
        assert!(msg.contains("vocab.json") && msg.contains(missing), "{msg}");
    }
    // A vocabulary of another model.
    std::fs::write(&vocab, r#"{"</s>": 0, "<unk>": 1, "foo": 2, "<pad>": 3}"#).unwrap();
    let msg = err(tmp.path());
    assert!(
        msg.contains("vocab.json") && msg.contains("pieces"),
        "{msg}"
    );
    copy("vocab.json");
    assert!(MarianTokenizer::from_dir(tmp.path()).is_ok());

    // A source.spm that is not a SentencePiece model.
    std::fs::write(tmp.path().join("source.spm"), b"{\"hello\": 1}").unwrap();
    let msg = err(tmp.path());
    assert!(msg.contains("source.spm"), "{msg}");
    std::fs::write(tmp.path().join("source.spm"), b"").unwrap();
    let msg = err(tmp.path());
    assert!(msg.contains("source.spm") && msg.contains("empty"), "{msg}");
    copy("source.spm");

    // A broken tokenizer_config.json.
    let cfg = tmp.path().join("tokenizer_config.json");
    std::fs::write(&cfg, "{").unwrap();
    let msg = err(tmp.path());
    assert!(msg.contains("tokenizer_config.json"), "{msg}");
    std::fs::write(&cfg, r#"{"separate_vocabs": "yes"}"#).unwrap();
    let msg = err(tmp.path());
    assert!(msg.contains("separate_vocabs"), "{msg}");
    std::fs::write(&cfg, r#"{"separate_vocabs": true}"#).unwrap();
    let msg = err(tmp.path());
    assert!(msg.contains("target_vocab.json"), "{msg}");
}

#[test]
fn word_and_char_models_are_refused_clearly() {
    // Change the model type of a real model by appending a TrainerSpec with model_type = 3
    // (word) or 4 (char): protobuf merges repeated embedded messages.
    let bytes = std::fs::read(data_dir().join("spm/nl_identity.model")).unwrap();
    for (kind, name) in [(3u8, "Word"), (4, "Char")] {
        let mut b = bytes.clone();
        b.extend_from_slice(&[0x12, 0x02, 0x18, kind]);
        let e = SentencePieceModel::from_bytes(&b, "word.model").unwrap_err();
        let msg = e.to_string();
        assert!(msg.contains("word.model") && msg.contains(name), "{msg}");
    }
    // Model type 2 is BPE: the same pieces, segmented by merges instead of the Viterbi.
    let mut b = bytes.clone();
    b.extend_from_slice(&[0x12, 0x02, 0x18, 0x02]);
    let bpe = SentencePieceModel::from_bytes(&b, "bpe.model").expect("BPE loads");
    assert_eq!(bpe.model_type(), ModelType::Bpe);
    let unigram = SentencePieceModel::from_bytes(&bytes, "unigram.model").unwrap();
    assert_eq!(unigram.model_type(), ModelType::Unigram);
    let text = "Hallo wereld, dit is een test.";
    let joined = |m: &SentencePieceModel| -> String {
        m.encode(text).iter().map(|p| p.text.as_ref()).collect()
    };
    assert_eq!(
        joined(&bpe),
        joined(&unigram),
        "both cover the same normalised text"
    );
}

fn spm_bpe_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/spm-bpe")
}

/// `tests/fixtures/spm-bpe/reference.json`, made by `tools/fixtures/make_spm_bpe.py`.
fn spm_bpe_reference() -> &'static Value {
    static REF: OnceLock<Value> = OnceLock::new();
    REF.get_or_init(|| {
        let path = spm_bpe_dir().join("reference.json");
        let text = std::fs::read_to_string(&path).expect("spm-bpe/reference.json is readable");
        serde_json::from_str(&text).expect("spm-bpe/reference.json is JSON")
    })
}

fn spm_bpe_model(name: &str) -> SentencePieceModel {
    SentencePieceModel::from_file(spm_bpe_dir().join(format!("{name}.model"))).expect("model loads")
}

#[test]
fn sentencepiece_bpe_parity_with_python() {
    let r = spm_bpe_reference();
    let inputs = strings_of(&r["inputs"]);
    assert!(inputs.len() >= 300, "{} inputs", inputs.len());
    let models = r["models"].as_object().expect("models");
    assert_eq!(models.len(), 3, "plain, bytefb, unused");
    let mut tallies = Vec::new();
    for (name, m) in models {
        let model =
            SentencePieceModel::from_file(spm_bpe_dir().join(m["file"].as_str().expect("file")))
                .expect("model loads");
        assert_eq!(model.model_type(), ModelType::Bpe, "{name}");
        assert_eq!(
            model.len() as u64,
            m["piece_size"].as_u64().expect("size"),
            "{name}"
        );
        let (want_pieces, want_ids, want_text) = (
            m["pieces"].as_array().expect("pieces"),
            m["ids"].as_array().expect("ids"),
            m["decode_pieces"].as_array().expect("decode_pieces"),
        );
        assert_eq!(want_pieces.len(), inputs.len(), "{name}");
        assert_eq!(want_ids.len(), inputs.len(), "{name}");
        assert_eq!(want_text.len(), inputs.len(), "{name}");
        let mut pieces = Tally::new(format!("spm-bpe {name}: encode pieces"));
        let mut ids = Tally::new(format!("spm-bpe {name}: encode ids"));
        let mut dec = Tally::new(format!("spm-bpe {name}: decode_pieces"));
        for (i, text) in inputs.iter().enumerate() {
            let case = format!("#{i} {text:?}");
            let enc = model.encode(text);
            let mut streamed = Vec::new();
            model.encode_with(text, |p| streamed.push(p));
            assert_eq!(streamed, enc, "encode_with == encode for {case}");
            let got: Vec<&str> = enc.iter().map(|p| p.text.as_ref()).collect();
            pieces.check(&case, got.clone(), strings_of(&want_pieces[i]));
            ids.check(&case, model.encode_ids(text), ids_of(&want_ids[i]));
            dec.check(
                &case,
                model.decode_pieces(&got),
                want_text[i].as_str().expect("text").to_string(),
            );
        }
        tallies.extend([pieces, ids, dec]);
    }
    assert_all(tallies);
}

#[test]
fn sentencepiece_bpe_long_and_odd_inputs() {
    // Every stretch between points that no piece spans is merged on its own, so a long text
    // goes through in time and memory proportional to it; these must stay fast in debug builds.
    let plain = spm_bpe_model("plain");
    let word = "kindercarnavalsoptocht".repeat(20_000);
    let joined: String = plain
        .encode(&word)
        .iter()
        .map(|p| p.text.as_ref())
        .collect();
    assert_eq!(joined, format!("\u{2581}{word}"));
    let unknown = "ภ".repeat(200_000);
    let enc = plain.encode(&unknown);
    assert_eq!(enc.len(), 2, "▁ and one merged unknown piece");
    assert!(enc[1].is_unknown() && enc[1].id == plain.unk_id());
    let spaces = format!("a{}b", " ".repeat(300_000));
    assert_eq!(plain.encode(&spaces), plain.encode("a b"));

    // Deterministic pseudo-random strings over characters that stress every stage.
    let alphabet: Vec<&str> = vec![
        "a", "e", "ee", " ", "  ", "\t", "\n", "\u{a0}", "\u{3000}", "é", "e\u{301}", "ﬁ", "Ａ",
        "😀", "<sep>", "<se", "km/h", "<unk>", "<s>", "▁", "\u{0}", "\u{fffd}", "\u{200b}", "ภ",
        "中", "ж", "1", "...",
    ];
    let models = ["plain", "bytefb", "unused"].map(spm_bpe_model);
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    for _ in 0..300 {
        let len = (next() % 24) as usize;
        let s: String = (0..len)
            .map(|_| alphabet[(next() % alphabet.len() as u64) as usize])
            .collect();
        for model in &models {
            let enc = model.encode(&s);
            let pieces: Vec<&str> = enc.iter().map(|p| p.text.as_ref()).collect();
            let _ = model.decode_pieces(&pieces);
            // Without byte fallback, the pieces spell the normalised text.
            if model.piece_to_id("<0x41>") == model.unk_id() {
                assert_eq!(pieces.concat(), model.normalize(&s), "{s:?}");
            }
        }
    }
}

#[test]
fn tokenizer_is_send_and_sync() {
    fn check<T: Send + Sync>() {}
    check::<MarianTokenizer>();
    check::<SentencePieceModel>();
    check::<MosesPunctNormalizer>();
}
