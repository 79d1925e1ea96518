//! Invariants of the engine on the tiny random models: cached decoding equals full recomputation,
//! a padded batch equals each sentence alone, one beam with eager stopping equals greedy, and the
//! padding token is never produced.

use candle_core::{IndexOp, Tensor};
use tolk::config::EarlyStopping;
use tolk::generate::{beam_search, greedy_search};
use tolk::translate::{BatchOptions, LoadOptions, Translator};

use crate::common::{fixture_dir, reference};
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

fn max_abs_diff(a: &Tensor, b: &Tensor) -> f32 {
    (a - b)
        .unwrap()
        .abs()
        .unwrap()
        .flatten_all()
        .unwrap()
        .max(0)
        .unwrap()
        .to_scalar()
        .unwrap()
}

#[test]
fn cached_decoding_equals_full_recomputation() {
    for name in MODELS {
        let t = translator(name);
        let model = t.model();
        let start = t.generation().decoder_start_token_id;
        for src in sources(&t, name, 12) {
            let enc = model.encode(std::slice::from_ref(&src)).unwrap();
            let cfg = t
                .generation()
                .clone()
                .with_num_beams(1)
                .with_max_new_tokens(30);
            let out = greedy_search(model, &enc, &cfg).unwrap();
            let mut seq = vec![start];
            seq.extend(&out[0][0].ids);
            seq.pop();
            // Step by step, with the cache.
            let mut state = model.start_decoding(&enc, 1).unwrap();
            let mut stepwise = Vec::new();
            for &tok in &seq {
                stepwise.push(model.decode(&[vec![tok]], &mut state).unwrap());
            }
            // All positions at once, causal mask, no cache (candle's reference decoder).
            let mut fresh = model.start_decoding_reference(&enc, 1).unwrap();
            let full = model.decode_all(&[seq.clone()], &mut fresh).unwrap();
            for (i, step) in stepwise.iter().enumerate() {
                let row = full.i((.., i, ..)).unwrap();
                let d = max_abs_diff(step, &row);
                assert!(d < 1e-3, "{name}: position {i} differs by {d}");
                let a: u32 = step.argmax(1).unwrap().i(0).unwrap().to_scalar().unwrap();
                let b: u32 = row.argmax(1).unwrap().i(0).unwrap().to_scalar().unwrap();
                assert_eq!(a, b, "{name}: position {i}");
            }
        }
    }
}

#[test]
fn fast_cpu_decoder_equals_the_candle_decoder() {
    for name in MODELS {
        let t = translator(name);
        let model = t.model();
        let srcs = sources(&t, name, 10);
        let enc = model.encode(&srcs).unwrap();
        let beams = 3;
        let mut fast = model.start_decoding(&enc, beams).unwrap();
        let mut reference = model.start_decoding_reference(&enc, beams).unwrap();
        let mut tokens: Vec<Vec<u32>> =
            vec![vec![t.generation().decoder_start_token_id]; srcs.len() * beams];
        for step in 0..12 {
            let a = model.decode(&tokens, &mut fast).unwrap();
            let b = model.decode(&tokens, &mut reference).unwrap();
            let d = max_abs_diff(&a, &b);
            assert!(d < 1e-3, "{name}: step {step} logits differ by {d}");
            // Next tokens: each row's argmax; then shuffle beams within sources and drop one source.
            let next: Vec<u32> = a.argmax(1).unwrap().to_vec1().unwrap();
            let rows = fast.rows();
            let order: Vec<u32> = (0..rows as u32)
                .map(|r| (r / beams as u32) * beams as u32 + (r + step) % beams as u32)
                .collect();
            fast.reorder_rows(&order).unwrap();
            reference.reorder_rows(&order).unwrap();
            tokens = order.iter().map(|&r| vec![next[r as usize]]).collect();
            if step == 5 {
                let keep: Vec<usize> = (1..srcs.len()).collect();
                fast.keep_sources(&keep).unwrap();
                reference.keep_sources(&keep).unwrap();
                tokens.drain(..beams);
            }
            if tokens.len() != fast.rows() {
                panic!("row bookkeeping");
            }
        }
    }
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
            let rows = batch.hidden.i(i).unwrap().narrow(0, 0, src.len()).unwrap();
            let d = max_abs_diff(&rows, &single.hidden.i(0).unwrap());
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
        let sentences: Vec<&str> = reference["sentences"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap())
            .collect();
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
