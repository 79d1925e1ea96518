//! The abstractive summariser on the committed tiny BART (tests/fixtures/bart-tiny, made by
//! tools/fixtures/make_bart.py with transformers 5.24): tokenizer ids and decodes, generated ids
//! and texts for every recorded setting (one input at a time and in padded batches, through the
//! summariser's batching), chunking and the hierarchical summary of long articles, loading errors.

use std::path::{Path, PathBuf};

use serde_json::Value;
use tolk::config::EarlyStopping;
use tolk::summarize::{
    AbstractiveOptions, AbstractiveReport, AbstractiveSummarizer, Document, Summarizer,
};
use tolk::tokenizer::BpeTokenizer;
use tolk::translate::{BatchOptions, LoadOptions};
use tolk::Error;

use crate::common::{apply_kwargs, fixture_dir, ids, reference};

const NAME: &str = "bart-tiny";

fn summarizer() -> AbstractiveSummarizer {
    AbstractiveSummarizer::from_dir(fixture_dir(NAME), &LoadOptions::default()).unwrap()
}

/// A copy of the fixture without the named files.
fn copy_without(skip: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for entry in std::fs::read_dir(fixture_dir(NAME)).unwrap() {
        let p = entry.unwrap().path();
        let name = p.file_name().unwrap().to_str().unwrap().to_string();
        if !skip.contains(&name.as_str()) && name != "reference.json" {
            std::fs::copy(&p, dir.path().join(&name)).unwrap();
        }
    }
    dir
}

fn check_tokenizer(tok: &BpeTokenizer, what: &str) {
    let reference = reference(NAME);
    let records = reference["tokenizer"].as_array().unwrap();
    let mut failures = Vec::new();
    for r in records {
        let text = r["text"].as_str().unwrap();
        let want = ids(&r["ids"]);
        let got = tok.encode(text).unwrap();
        if got != want {
            failures.push(format!("{text:?}: ids {got:?}\n   want {want:?}"));
            continue;
        }
        let decoded = tok.decode(&got).unwrap();
        if decoded != r["decoded"].as_str().unwrap() {
            failures.push(format!(
                "{text:?}: decoded {decoded:?} want {}",
                r["decoded"]
            ));
        }
        let special = tok.decode_with_special_tokens(&got).unwrap();
        if special != r["decoded_special"].as_str().unwrap() {
            failures.push(format!(
                "{text:?}: decoded with special tokens {special:?} want {}",
                r["decoded_special"]
            ));
        }
    }
    eprintln!(
        "{NAME} tokenizer from {what}: {}/{} texts identical (ids, decode, decode with special tokens)",
        records.len() - failures.len(),
        records.len()
    );
    assert!(records.len() >= 100);
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn tokenizer_matches_transformers_from_tokenizer_json() {
    let s = summarizer();
    assert!(s.tokenizer().path().ends_with("tokenizer.json"));
    check_tokenizer(s.tokenizer(), "tokenizer.json");
}

#[test]
fn tokenizer_matches_transformers_from_vocab_and_merges() {
    let dir = copy_without(&["tokenizer.json"]);
    let s = AbstractiveSummarizer::from_dir(dir.path(), &LoadOptions::default()).unwrap();
    assert!(s.tokenizer().path().ends_with("vocab.json"));
    check_tokenizer(s.tokenizer(), "vocab.json + merges.txt");
}

#[test]
fn generation_settings_follow_the_model_config() {
    let s = summarizer();
    let reference = reference(NAME);
    let g = s.generation();
    let want = &reference["generation_config"];
    let summ = &reference["summarization"];
    assert_eq!(g.num_beams as u64, summ["num_beams"].as_u64().unwrap());
    assert_eq!(g.max_length.map(|n| n as u64), summ["max_length"].as_u64());
    assert_eq!(g.min_length as u64, summ["min_length"].as_u64().unwrap());
    assert_eq!(
        g.length_penalty as f64,
        summ["length_penalty"].as_f64().unwrap()
    );
    assert_eq!(
        g.no_repeat_ngram_size as u64,
        summ["no_repeat_ngram_size"].as_u64().unwrap()
    );
    assert_eq!(g.early_stopping, EarlyStopping::Eager);
    // transformers derives these from the old-style config.json: `force_bos_token_to_be_generated`
    // forces `bos_token_id`; without `forced_eos_token_id` in the file, nothing is forced at the end.
    let id = |v: &Value| v.as_u64().map(|n| n as u32);
    assert_eq!(g.forced_bos_token_id, id(&want["forced_bos_token_id"]));
    assert_eq!(g.forced_bos_token_id, Some(0));
    assert_eq!(g.forced_eos_token_id, id(&want["forced_eos_token_id"]));
    assert_eq!(
        Some(g.decoder_start_token_id),
        id(&want["decoder_start_token_id"])
    );
    assert_eq!(Some(g.eos_token_id), id(&want["eos_token_id"]));
    assert_eq!(Some(g.pad_token_id), id(&want["pad_token_id"]));
    assert_eq!(s.prefix(), reference["prefix"].as_str().unwrap());
    assert_eq!(s.name(), NAME);
    assert_eq!(s.max_input_tokens(), 64);
}

/// Compares every recorded setting of the given batch size; panics with the mismatches.
fn check_generation(s: &AbstractiveSummarizer, batch_size: u64, only: Option<&str>) {
    let reference = reference(NAME);
    let inputs: Vec<&str> = reference["inputs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s.as_str().unwrap())
        .collect();
    let mut failures = Vec::new();
    let mut total = 0;
    let mut settings = Vec::new();
    for setting in reference["settings"].as_array().unwrap() {
        let name = setting["name"].as_str().unwrap();
        if setting["batch_size"] != batch_size || only.is_some_and(|o| o != name) {
            continue;
        }
        settings.push(name);
        let cfg = apply_kwargs(s.generation().clone(), &setting["kwargs"]);
        let out = s.generate(&inputs, &cfg).unwrap();
        for (i, (got, want)) in out
            .iter()
            .zip(setting["results"].as_array().unwrap())
            .enumerate()
        {
            total += 1;
            let want_ids = ids(&want["ids"]);
            if got.ids != want_ids {
                failures.push(format!(
                    "{name} #{i}: got {:?}\n   want {want_ids:?} (margin {}, f64-stable {})",
                    got.ids, want["margin"], want["stable_f64"]
                ));
            } else if got.text != want["text"].as_str().unwrap() {
                failures.push(format!(
                    "{name} #{i}: text {:?} want {}",
                    got.text, want["text"]
                ));
            }
            if let Some(score) = want.get("score").and_then(Value::as_f64) {
                if (got.score as f64 - score).abs() > 1e-3 {
                    failures.push(format!("{name} #{i}: score {} want {score}", got.score));
                }
            }
        }
    }
    eprintln!(
        "{NAME} batch size {batch_size} ({}): {}/{total} generations identical to transformers",
        settings.join(", "),
        total - failures.len()
    );
    assert!(total >= 40, "too few records compared");
    assert!(
        failures.is_empty(),
        "{} mismatches:\n{}",
        failures.len(),
        failures.join("\n")
    );
}

#[test]
fn generation_matches_transformers_one_input_at_a_time() {
    let s = summarizer().with_options(
        AbstractiveOptions::default().with_batching(BatchOptions::default().with_max_batch_size(1)),
    );
    check_generation(&s, 1, None);
}

#[test]
fn generation_matches_transformers_in_padded_batches_of_8() {
    let s = summarizer().with_options(
        AbstractiveOptions::default().with_batching(BatchOptions::default().with_max_batch_size(8)),
    );
    check_generation(&s, 8, None);
}

#[test]
fn pytorch_bin_weights_give_the_same_summaries() {
    let dir = copy_without(&["model.safetensors"]);
    let s = AbstractiveSummarizer::from_dir(dir.path(), &LoadOptions::default()).unwrap();
    check_generation(&s, 8, Some("summarization"));
    check_generation(&s, 8, Some("greedy"));
}

/// The committed English evaluation articles: (name, sentences).
fn articles() -> Vec<(String, Vec<String>)> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/data/summarize/articles");
    let mut paths: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| {
            let text = std::fs::read_to_string(p).unwrap();
            let sentences = text
                .lines()
                .take_while(|l| !l.starts_with("== reference"))
                .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
                .map(str::to_string)
                .collect();
            (
                p.file_name().unwrap().to_string_lossy().into_owned(),
                sentences,
            )
        })
        .collect()
}

/// Everything a hierarchical summary must satisfy, whatever the model writes.
fn check_report(s: &AbstractiveSummarizer, sentences: &[&str], report: &AbstractiveReport) {
    let limit = s.max_input_tokens();
    let words = |t: &str| t.split_whitespace().collect::<Vec<_>>().join(" ");
    assert!(!report.levels.is_empty());
    for (l, level) in report.levels.iter().enumerate() {
        // The chunks cover every unit once, in order.
        assert_eq!(level.chunks.first().map(|c| c.units.start), Some(0));
        assert_eq!(
            level.chunks.last().map(|c| c.units.end),
            Some(level.units.len())
        );
        assert!(level
            .chunks
            .windows(2)
            .all(|w| w[0].units.end == w[1].units.start));
        for c in &level.chunks {
            assert!(!c.units.is_empty());
            let text: Vec<&str> = level.units[c.units.clone()]
                .iter()
                .map(|u| u.text.as_str())
                .collect();
            let input = format!("{}{}", s.prefix(), text.join(" "));
            let encoded = s.tokenizer().encode(&input).unwrap();
            assert_eq!(c.summary.input_tokens, encoded.len(), "level {l}");
            assert!(
                encoded.len() <= limit,
                "level {l}: {} tokens",
                encoded.len()
            );
            // With the prefix " ", the planner's count is exact.
            let planned: usize = level.units[c.units.clone()].iter().map(|u| u.tokens).sum();
            assert_eq!(planned + 2, encoded.len(), "level {l}");
        }
        // The units are their sources, in order, nothing dropped (a word cut between characters
        // comes back with spaces, hence the comparison without whitespace).
        let squeeze = |t: &str| t.split_whitespace().collect::<String>();
        let sources: Vec<String> = if l == 0 {
            sentences
                .iter()
                .map(|t| t.trim())
                .filter(|t| !t.is_empty())
                .map(squeeze)
                .collect()
        } else {
            report.levels[l - 1]
                .chunks
                .iter()
                .map(|c| c.summary.text.trim())
                .filter(|t| !t.is_empty())
                .map(squeeze)
                .collect()
        };
        let mut rebuilt: Vec<String> = Vec::new();
        let mut last = usize::MAX;
        for u in &level.units {
            if u.source == last {
                let prev = rebuilt.last_mut().unwrap();
                prev.push(' ');
                prev.push_str(&u.text);
            } else {
                rebuilt.push(u.text.clone());
                last = u.source;
            }
        }
        let rebuilt: Vec<String> = rebuilt.iter().map(|t| squeeze(t)).collect();
        assert_eq!(rebuilt, sources, "level {l}");
    }
    let top = report.levels.last().unwrap();
    let want: Vec<&str> = top
        .chunks
        .iter()
        .map(|c| c.summary.text.trim())
        .filter(|t| !t.is_empty())
        .collect();
    if report.converged {
        assert_eq!(top.chunks.len(), 1);
    }
    let got: Vec<&str> = report
        .summary
        .sentences
        .iter()
        .map(|s| s.text.as_str())
        .collect();
    assert_eq!(words(&got.join(" ")), words(&want.join(" ")));
    assert!(report.summary.sentences.iter().all(|s| s.index.is_none()));
    assert_eq!(report.summary.input_sentences, sentences.len());
}

#[test]
fn long_articles_are_chunked_and_summarised_hierarchically() {
    let s = summarizer();
    let mut levels = Vec::new();
    for (name, sentences) in articles() {
        let sentences: Vec<&str> = sentences.iter().map(String::as_str).collect();
        let report = s.summarize_report(&Document::new(&sentences)).unwrap();
        check_report(&s, &sentences, &report);
        assert!(
            report.levels[0].chunks.len() >= 4,
            "{name}: an article needs several chunks"
        );
        assert!(report.levels.len() >= 2, "{name}: no hierarchical step");
        // As few chunks as greedy packing needs.
        for level in &report.levels {
            let mut greedy = 0;
            let mut room = 0;
            for u in &level.units {
                if u.tokens > room {
                    greedy += 1;
                    room = s.max_input_tokens() - 2;
                }
                room -= u.tokens;
            }
            assert_eq!(level.chunks.len(), greedy, "{name}");
        }
        // The first level's chunk summaries are what `generate` gives for those inputs.
        let level = &report.levels[0];
        let texts: Vec<String> = level
            .chunks
            .iter()
            .map(|c| {
                let t: Vec<&str> = level.units[c.units.clone()]
                    .iter()
                    .map(|u| u.text.as_str())
                    .collect();
                t.join(" ")
            })
            .collect();
        let texts: Vec<&str> = texts.iter().map(String::as_str).collect();
        let direct = s.generate(&texts, s.generation()).unwrap();
        for (c, d) in level.chunks.iter().zip(&direct) {
            assert_eq!(c.summary.ids, d.ids, "{name}");
        }
        levels.push(format!(
            "{name}: {} levels, chunks {:?}{}",
            report.levels.len(),
            report
                .levels
                .iter()
                .map(|l| l.chunks.len())
                .collect::<Vec<_>>(),
            if report.converged {
                ""
            } else {
                " (did not converge)"
            }
        ));
    }
    eprintln!("{}", levels.join("\n"));
}

#[test]
fn smaller_inputs_mean_more_levels_and_long_sentences_are_split() {
    let (_, article) = articles().into_iter().next().unwrap();
    let mut sentences: Vec<String> = article;
    // One sentence of ~150 words (several inputs long), and a 300-character "word".
    let long: Vec<&str> = sentences
        .iter()
        .take(6)
        .map(|s| s.trim_end_matches('.'))
        .collect();
    sentences.insert(2, long.join(", and ") + ".");
    sentences.insert(5, "x".repeat(150) + &"é".repeat(150));
    sentences.insert(7, "   ".into());
    let sentences: Vec<&str> = sentences.iter().map(String::as_str).collect();
    for limit in [64, 40, 24] {
        let s =
            summarizer().with_options(AbstractiveOptions::default().with_max_input_tokens(limit));
        assert_eq!(s.max_input_tokens(), limit);
        let report = s.summarize_report(&Document::new(&sentences)).unwrap();
        check_report(&s, &sentences, &report);
        // With 24 tokens per input, summaries of up to 19 tokens cannot condense: the summary is
        // then the last level's summaries, concatenated.
        assert_eq!(report.converged, limit != 24, "limit {limit}");
        let split = report.levels[0]
            .units
            .iter()
            .filter(|u| u.source == 2)
            .count();
        assert!(split >= 2, "limit {limit}: the long sentence was not split");
        let word: String = report.levels[0]
            .units
            .iter()
            .filter(|u| u.source == 5)
            .map(|u| u.text.as_str())
            .collect();
        assert_eq!(word, "x".repeat(150) + &"é".repeat(150));
        eprintln!(
            "limit {limit}: chunks per level {:?}",
            report
                .levels
                .iter()
                .map(|l| l.chunks.len())
                .collect::<Vec<_>>()
        );
    }
}

#[test]
fn short_and_empty_inputs() {
    let s = summarizer();
    let empty = s.summarize(&[]).unwrap();
    assert!(empty.sentences.is_empty());
    let blank = s.summarize_report(&Document::new(&["  ", ""])).unwrap();
    assert!(blank.levels.is_empty() && blank.summary.sentences.is_empty());
    assert_eq!(blank.summary.input_sentences, 2);
    // One input that fits: one level, one chunk, the same tokens as `generate`.
    let reference = reference(NAME);
    let text = reference["inputs"][0].as_str().unwrap();
    let report = s.summarize_report(&Document::new(&[text])).unwrap();
    assert_eq!(report.levels.len(), 1);
    assert_eq!(report.levels[0].chunks.len(), 1);
    let want = &reference["settings"][0];
    assert_eq!(want["name"], "summarization");
    assert_eq!(
        report.levels[0].chunks[0].summary.ids,
        ids(&want["results"][0]["ids"])
    );
    let out = s.generate(&["", " \n"], s.generation()).unwrap();
    assert!(out.iter().all(|g| g.ids.is_empty() && g.input_tokens == 0));
}

#[test]
fn refuses_what_it_cannot_encode() {
    let s = summarizer();
    // `<mask>` has no embedding in this model (vocab_size excludes it, as in distilbart-cnn).
    let e = s.summarize(&["A <mask> here."]).unwrap_err();
    assert!(
        matches!(e, Error::Input { .. }) && e.to_string().contains("<mask>"),
        "{e}"
    );
    let long = "word ".repeat(200);
    let e = s.generate(&[long.as_str()], s.generation()).unwrap_err();
    assert!(e.to_string().contains("tokens"), "{e}");
}

fn load_err(dir: &Path) -> String {
    AbstractiveSummarizer::from_dir(dir, &LoadOptions::default())
        .unwrap_err()
        .to_string()
}

#[test]
fn loading_errors_name_the_file() {
    let dir = copy_without(&["tokenizer.json", "vocab.json"]);
    let e = load_err(dir.path());
    assert!(
        e.contains("tokenizer.json") && e.contains("vocab.json"),
        "{e}"
    );

    let dir = copy_without(&[]);
    std::fs::write(
        dir.path().join("tokenizer.json"),
        "{\"model\": {\"type\": \"BPE\"",
    )
    .unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("tokenizer.json") && e.contains("replace"), "{e}");

    let dir = copy_without(&["tokenizer.json"]);
    std::fs::write(dir.path().join("merges.txt"), "#version: 0.2\nĠ t h\n").unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("merges.txt") && e.contains("line 2"), "{e}");
    std::fs::write(dir.path().join("merges.txt"), "Ġ zzzz\n").unwrap();
    let e = load_err(dir.path());
    assert!(e.contains("merges.txt"), "{e}");

    // A tokenizer from another model: `</s>` elsewhere.
    let dir = copy_without(&["tokenizer.json"]);
    let vocab = std::fs::read_to_string(dir.path().join("vocab.json")).unwrap();
    let vocab = vocab
        .replace("\"</s>\": 2,", "\"</s>\": 9,")
        .replace("\"&\": 9,", "\"&\": 2,");
    assert!(vocab.contains("\"</s>\": 9,"));
    std::fs::write(dir.path().join("vocab.json"), vocab).unwrap();
    let e = load_err(dir.path());
    assert!(
        e.contains("vocab.json") && e.contains("eos_token_id"),
        "{e}"
    );

    // A Marian model is not a summariser.
    let e = load_err(&fixture_dir("marian-tiny"));
    assert!(e.contains("model_type") && e.contains("Marian"), "{e}");
}

#[test]
fn summarizer_is_send_and_sync() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<AbstractiveSummarizer>();
    assert_send_sync::<BpeTokenizer>();
    let s: Box<dyn Summarizer> = Box::new(summarizer());
    assert_eq!(s.name(), NAME);
}

/// The real default model, where the Hugging Face Hub is reachable:
/// `cargo test --release --test it abstractive::real_distilbart -- --ignored --nocapture`.
/// Pinned to the catalogue's revision (models/distilbart-cnn-12-6.toml).
#[test]
#[ignore = "downloads sshleifer/distilbart-cnn-12-6 (1.2 GB) from the Hugging Face Hub"]
fn real_distilbart() {
    use tolk::source::{ModelSpec, Resolver};
    use tolk::summarize::rouge::{RougeScorer, RougeType};

    let resolver = Resolver::from_env().unwrap();
    let spec = ModelSpec::parse("distilbart-cnn-12-6").unwrap();
    let files = resolver.resolve(&spec, &mut ()).unwrap();
    assert_eq!(
        files.provenance.commit.as_deref(),
        Some("a4f8f3ea906ed274767e9906dbaede7531d660ff")
    );
    let s = AbstractiveSummarizer::from_files(files, &LoadOptions::default()).unwrap();
    // GPT-2 / RoBERTa ids (transformers' RobertaTokenizer documentation).
    assert_eq!(
        s.tokenizer().encode("Hello world").unwrap(),
        vec![0, 31414, 232, 2]
    );
    assert_eq!(
        s.tokenizer().encode(" Hello world").unwrap(),
        vec![0, 20920, 232, 2]
    );
    let g = s.generation();
    assert_eq!(
        (g.num_beams, g.max_length, g.min_length),
        (4, Some(142), 56)
    );
    assert_eq!(g.forced_bos_token_id, Some(0));
    let scorer = RougeScorer::new([RougeType::N(1)])
        .unwrap()
        .with_stemmer(true);
    for (name, sentences) in articles().into_iter().take(3) {
        let sentences: Vec<&str> = sentences.iter().map(String::as_str).collect();
        let report = s.summarize_report(&Document::new(&sentences)).unwrap();
        check_report(&s, &sentences, &report);
        let summary = report.summary.text();
        let r1 = scorer
            .score(&sentences.join(" "), &summary)
            .get(RougeType::N(1))
            .unwrap();
        eprintln!(
            "{name}: {summary}\n  rouge1 precision against the article {:.3}",
            r1.precision
        );
        assert!(
            r1.precision > 0.5,
            "{name}: the summary is not about the article"
        );
    }
}
