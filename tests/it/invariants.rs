//! Invariants of the engine on the tiny random models: a padded batch equals each sentence alone,
//! one beam with eager stopping equals greedy, and the padding token is never produced. (Cached
//! decoding against full recomputation, and the two backends against each other, are unit tests
//! of `src/model`.)

use tolk::config::EarlyStopping;
use tolk::generate::{beam_search, greedy_search};
use tolk::translate::{BatchOptions, LoadOptions, Translator};

use crate::common::{fixture_dir, reference, strings};
use crate::parity::MODELS;

fn translator(name: &str) -> Translator {
    Translator::from_dir(fixture_dir(name), &LoadOptions::default()).unwrap()
}

fn sources(t: &Translator, name: &str, n: usize) -> Vec<Vec<u32>> {
    let reference = reference(name);
    reference["sentences"].as_array().unwrap()[..n]
        .iter()
        .map(|s| t.tokenizer().encode(s.as_str().unwrap()).unwrap())
        .collect()
}

#[test]
fn padded_batch_equals_each_sentence_alone() {
    for name in MODELS {
        let t = translator(name);
        let model = t.model();
        let srcs = sources(&t, name, 16);
        let batch = model.encode(&srcs).unwrap();
        for (i, src) in srcs.iter().enumerate() {
            let single = model.encode(std::slice::from_ref(src)).unwrap();
            let rows = batch.hidden_states(i).unwrap();
            let alone = single.hidden_states(0).unwrap();
            let d = rows
                .iter()
                .zip(&alone)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max);
            assert!(
                d < 1e-4,
                "{name}: encoder states of sentence {i} differ by {d} in a batch"
            );
        }
        for beams in [1, 4] {
            let cfg = t
                .generation()
                .clone()
                .with_num_beams(beams)
                .with_max_new_tokens(30);
            let together = tolk::generate::generate(model, &batch, &cfg).unwrap();
            for (i, src) in srcs.iter().enumerate() {
                let single = model.encode(std::slice::from_ref(src)).unwrap();
                let alone = tolk::generate::generate(model, &single, &cfg).unwrap();
                for (a, b) in together[i].iter().zip(&alone[0]) {
                    assert_eq!(a.ids, b.ids, "{name}: sentence {i}, {beams} beams");
                    assert!(
                        (a.score - b.score).abs() < 1e-4,
                        "{name}: sentence {i} score"
                    );
                }
            }
        }
    }
}

#[test]
fn one_beam_with_eager_stopping_equals_greedy() {
    for name in MODELS {
        let t = translator(name);
        let model = t.model();
        let srcs = sources(&t, name, 40);
        let enc = model.encode(&srcs).unwrap();
        let cfg = t
            .generation()
            .clone()
            .with_num_beams(1)
            .with_max_new_tokens(40);
        let greedy = greedy_search(model, &enc, &cfg).unwrap();
        let beam = beam_search(
            model,
            &enc,
            &cfg.clone().with_early_stopping(EarlyStopping::Eager),
        )
        .unwrap();
        for (i, (g, b)) in greedy.iter().zip(&beam).enumerate() {
            assert_eq!(g[0].ids, b[0].ids, "{name}: sentence {i}");
        }
    }
}

#[test]
fn padding_is_never_generated() {
    for name in MODELS {
        let t = translator(name).with_batching(BatchOptions::default().with_max_batch_size(64));
        let pad = t.generation().pad_token_id;
        let reference = reference(name);
        let sentences: Vec<&str> = strings(&reference["sentences"]);
        for beams in [1, 3] {
            let cfg = t
                .generation()
                .clone()
                .with_num_beams(beams)
                .with_max_new_tokens(40);
            for tr in t.translate_with(&sentences, &cfg).unwrap() {
                assert!(!tr.ids.contains(&pad), "pad in {:?}", tr.ids);
            }
        }
    }
}

#[test]
fn guards_pass_symbols_through_cap_runaway_output_and_flag_it() {
    use tolk::translate::{has_loop, Flag, Guards};
    let t = translator("marian-tiny").with_guards(Guards::on());
    let eos = t.generation().eos_token_id;
    let texts = [
        "2024",
        "→ ← 😀",
        "",
        "Het kabinet heeft dinsdag nieuwe maatregelen aangekondigd.",
        "A",
    ];
    let out = t.translate(&texts).unwrap();
    assert_eq!(out[0].text, "2024");
    assert_eq!(out[0].flag, Some(Flag::Passthrough));
    assert_eq!(out[1].flag, Some(Flag::Passthrough));
    assert_eq!(out[2].text, "");
    for (text, tr) in texts.iter().zip(&out).skip(3) {
        let cap = 2 * tr.source_tokens + 20;
        assert!(
            tr.ids.len() <= cap,
            "{text}: {} tokens for {} source tokens",
            tr.ids.len(),
            tr.source_tokens
        );
        assert!(
            !has_loop(&tr.ids, 4, eos) || tr.flag.is_some(),
            "{text}: unflagged loop"
        );
    }
    // The random model loops: guards must have rewritten at least one of the 237 test sentences.
    let reference = crate::common::reference("marian-tiny");
    let sentences: Vec<&str> = strings(&reference["sentences"]);
    // Greedy, where a decode capped at a length agrees with the uncapped one up to the cap (a
    // beam search may pick another hypothesis when every beam is cut at the cap).
    let greedy = t.generation().clone().with_num_beams(1);
    let plain = translator("marian-tiny")
        .translate_with(&sentences, &greedy)
        .unwrap();
    let guarded = t.translate_with(&sentences, &greedy).unwrap();
    let flagged = guarded
        .iter()
        .filter(|g| matches!(g.flag, Some(Flag::Repetition | Flag::Length)))
        .count();
    let looping = plain.iter().filter(|p| has_loop(&p.ids, 4, eos)).count();
    assert!(
        looping > 0 && flagged >= looping,
        "{flagged} flagged, {looping} loops without guards"
    );
    for g in &guarded {
        if g.flag == Some(Flag::Repetition) {
            assert!(
                !has_loop(&g.ids, 4, eos),
                "the fallback decode still loops: {:?}",
                g.ids
            );
        }
    }
    // Unflagged sentences are exactly the unguarded translation.
    for (p, g) in plain.iter().zip(&guarded) {
        if g.flag.is_none() {
            assert_eq!(p.ids, g.ids);
        }
    }
}

#[test]
fn texts_longer_than_the_model_are_split_not_truncated() {
    let t = translator("marian-tiny");
    let words: Vec<String> = (0..3000).map(|i| format!("woord{}", i % 97)).collect();
    let long = words.join(" ");
    let out = t
        .translate_with(
            &[long.as_str()],
            &t.generation()
                .clone()
                .with_num_beams(1)
                .with_max_new_tokens(8),
        )
        .unwrap();
    assert!(
        out[0].pieces > 1,
        "a {}-word sentence must be split",
        words.len()
    );
    assert!(out[0].source_tokens > t.model().max_source_positions());
}

#[test]
fn one_model_shared_by_threads_gives_the_sequential_results() {
    let t = std::sync::Arc::new(translator("marian-tiny"));
    let reference = crate::common::reference("marian-tiny");
    let sentences: Vec<String> = reference["sentences"].as_array().unwrap()[..48]
        .iter()
        .map(|s| s.as_str().unwrap().to_string())
        .collect();
    let cfg = t
        .generation()
        .clone()
        .with_num_beams(2)
        .with_max_new_tokens(20);
    let refs: Vec<&str> = sentences.iter().map(String::as_str).collect();
    let sequential = t.translate_with(&refs, &cfg).unwrap();
    let handles: Vec<_> = (0..4)
        .map(|k| {
            let t = t.clone();
            let cfg = cfg.clone();
            let mine: Vec<String> = sentences.iter().skip(k).step_by(4).cloned().collect();
            std::thread::spawn(move || {
                let refs: Vec<&str> = mine.iter().map(String::as_str).collect();
                t.translate_with(&refs, &cfg).unwrap()
            })
        })
        .collect();
    for (k, h) in handles.into_iter().enumerate() {
        for (j, tr) in h.join().unwrap().iter().enumerate() {
            assert_eq!(
                tr.ids,
                sequential[k + 4 * j].ids,
                "thread {k}, sentence {}",
                k + 4 * j
            );
        }
    }
}

/// Alignments from the model's attention: the trained copy fixture writes out its input, so
/// each word of its output is aligned to the same word of its input, on both backends, greedy
/// and with beams; asking for alignments changes no token.
#[test]
fn the_copy_model_aligns_every_word_to_itself() {
    use tolk::model::BackendChoice;
    let sentences = [
        "het kabinet is gevallen",
        "de minister van financien zegt dat de economie dit jaar groeit",
        "in amsterdam wonen veel mensen",
    ];
    for backend in [BackendChoice::Auto, BackendChoice::Candle] {
        let t = Translator::from_dir(
            fixture_dir("marian-tiny-trained"),
            &LoadOptions::default().with_backend(backend),
        )
        .unwrap();
        for beams in [1, 4] {
            let plain = t.generation().clone().with_num_beams(beams);
            let mut aligned = plain.clone();
            aligned.output_alignments = true;
            let a = t.translate_with(&sentences, &aligned).unwrap();
            let b = t.translate_with(&sentences, &plain).unwrap();
            let (mut same, mut total) = (0, 0);
            for ((x, y), s) in a.iter().zip(&b).zip(sentences) {
                assert_eq!(
                    x.ids, y.ids,
                    "{backend:?} {beams}: alignments changed the tokens"
                );
                assert!(y.alignment.is_none());
                let words = x.text.split_whitespace().count();
                let al = x
                    .alignment
                    .as_ref()
                    .unwrap_or_else(|| panic!("no alignment: {s}"));
                assert!(al.fits(s, &x.text), "{s} -> {}: {al:?}", x.text);
                assert_eq!(al.links.len(), words, "{s} -> {}", x.text);
                assert_eq!(al.source.len(), s.split_whitespace().count(), "{s}");
                for (i, w) in al.links.iter().enumerate() {
                    total += 1;
                    same += usize::from(*w == Some(i));
                }
            }
            assert!(same * 10 >= total * 9, "{same}/{total}");
        }
    }
}
