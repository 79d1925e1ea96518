//! Invariants of both backends on the tiny fixtures: cached decoding equals decoding everything
//! at once (the candle backend's causal forward pass is the oracle), and the two backends give the
//! same encoder states and the same logits through reordered beams and dropped sources. (Both are
//! also pinned to transformers' own outputs by the parity tests, `tests/it/parity.rs`.)

use std::path::{Path, PathBuf};

use candle_core::{DType, Device};

use super::*;

const MODELS: [&str; 4] = [
    "marian-tiny",
    "marian-tiny-relu",
    "marian-tiny-trained",
    "bart-tiny",
];

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn load(name: &str, backend: BackendChoice) -> Seq2SeqModel {
    load_quantized(name, backend, None)
}

fn load_quantized(
    name: &str,
    backend: BackendChoice,
    quantize: Option<Quantization>,
) -> Seq2SeqModel {
    let dir = fixture(name);
    let config = ModelConfig::from_file(dir.join("config.json")).unwrap();
    let weights = ["model.safetensors", "pytorch_model.bin"]
        .iter()
        .map(|f| dir.join(f))
        .find(|p| p.is_file())
        .unwrap();
    let placement = Placement {
        device: Device::Cpu,
        dtype: DType::F32,
        quantize,
        int8_cache: None,
        backend,
    };
    let model = Seq2SeqModel::load(config, || Weights::open(&weights), &placement).unwrap();
    let want = match backend {
        BackendChoice::Auto => "host",
        BackendChoice::Candle => "candle",
    };
    assert_eq!(model.backend_name(), want);
    model
}

/// A few sources of different lengths (ids inside every fixture's vocabulary, ending in `</s>`).
fn sources(model: &Seq2SeqModel) -> Vec<Vec<u32>> {
    let eos = model.config().eos_token_id;
    let v = model.config().vocab_size as u32;
    [7usize, 2, 12, 5, 9]
        .iter()
        .enumerate()
        .map(|(i, &len)| {
            let mut s: Vec<u32> = (0..len as u32)
                .map(|j| 4 + (j * 37 + i as u32 * 11) % (v - 5))
                .collect();
            s.push(eos);
            s
        })
        .collect()
}

fn max_diff(a: &[f32], b: &[f32]) -> f32 {
    assert_eq!(a.len(), b.len());
    a.iter()
        .zip(b)
        .map(|(x, y)| (x - y).abs())
        .fold(0f32, f32::max)
}

fn argmax(row: &[f32]) -> usize {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |(bi, bv), (i, &v)| {
            if v > bv {
                (i, v)
            } else {
                (bi, bv)
            }
        })
        .0
}

#[test]
fn cached_decoding_equals_decoding_everything_at_once_on_both_backends() {
    for name in MODELS {
        let oracle = load(name, BackendChoice::Candle);
        for backend in [BackendChoice::Auto, BackendChoice::Candle] {
            let model = load(name, backend);
            let vocab = model.config().decoder_vocab_size;
            let start = model.config().decoder_start_token_id;
            for src in sources(&model) {
                let enc = model.encode(std::slice::from_ref(&src)).unwrap();
                let mut state = model.start_decoding(&enc, 1).unwrap();
                let mut seq = vec![start];
                let mut logits = Vec::new();
                let mut stepwise = Vec::new();
                for _ in 0..12 {
                    state.step(&[*seq.last().unwrap()], &mut logits).unwrap();
                    stepwise.push(logits.clone());
                    seq.push(argmax(&logits) as u32);
                }
                seq.pop();
                let oracle_enc = oracle.encode(std::slice::from_ref(&src)).unwrap();
                let full = oracle.backend.full_logits(&oracle_enc, &seq).unwrap();
                let full = full.flatten_all().unwrap().to_vec1::<f32>().unwrap();
                for (i, step) in stepwise.iter().enumerate() {
                    let row = &full[i * vocab..(i + 1) * vocab];
                    let d = max_diff(step, row);
                    assert!(d < 1e-3, "{name} {backend:?}: position {i} differs by {d}");
                    assert_eq!(
                        argmax(step),
                        argmax(row),
                        "{name} {backend:?}: position {i}"
                    );
                }
            }
        }
    }
}

#[test]
fn both_backends_give_the_same_states_and_logits_through_beams_and_dropped_sources() {
    for name in MODELS {
        let host = load(name, BackendChoice::Auto);
        let candle = load(name, BackendChoice::Candle);
        let srcs = sources(&host);
        let (a, b) = (host.encode(&srcs).unwrap(), candle.encode(&srcs).unwrap());
        assert_eq!(a.lengths(), b.lengths());
        for s in 0..srcs.len() {
            let d = max_diff(&a.hidden_states(s).unwrap(), &b.hidden_states(s).unwrap());
            assert!(
                d < 1e-4,
                "{name}: encoder states of source {s} differ by {d}"
            );
        }
        let beams = 3;
        let mut x = host.start_decoding(&a, beams).unwrap();
        let mut y = candle.start_decoding(&b, beams).unwrap();
        let start = host.config().decoder_start_token_id;
        let mut tokens = vec![start; srcs.len() * beams];
        let (mut lx, mut ly) = (Vec::new(), Vec::new());
        let vocab = host.config().decoder_vocab_size;
        for step in 0..12 {
            x.step(&tokens, &mut lx).unwrap();
            y.step(&tokens, &mut ly).unwrap();
            let d = max_diff(&lx, &ly);
            assert!(d < 1e-3, "{name}: step {step} logits differ by {d}");
            // Next tokens: each row's argmax; then shuffle beams within sources and drop one.
            let next: Vec<u32> = lx.chunks(vocab).map(|r| argmax(r) as u32).collect();
            let rows = x.rows() as u32;
            let b = beams as u32;
            let order: Vec<u32> = (0..rows)
                .map(|r| (r / b) * b + (r + step as u32) % b)
                .collect();
            x.reorder_rows(&order).unwrap();
            y.reorder_rows(&order).unwrap();
            tokens = order.iter().map(|&r| next[r as usize]).collect();
            if step == 5 {
                let keep: Vec<usize> = (1..x.sources()).collect();
                x.keep_sources(&keep).unwrap();
                y.keep_sources(&keep).unwrap();
                tokens.drain(..beams);
            }
            assert_eq!(tokens.len(), x.rows());
        }
    }
}

#[test]
fn widening_one_row_per_source_to_beams_equals_starting_with_the_beams() {
    for name in MODELS {
        for backend in [BackendChoice::Auto, BackendChoice::Candle] {
            let model = load(name, backend);
            let enc = model.encode(&sources(&model)).unwrap();
            let n = enc.lengths().len();
            let (beams, vocab) = (3, model.config().decoder_vocab_size);
            let start = model.config().decoder_start_token_id;
            let mut wide = model.start_decoding(&enc, beams).unwrap();
            let mut narrow = model.start_decoding(&enc, 1).unwrap();
            let (mut lw, mut ln) = (Vec::new(), Vec::new());
            wide.step(&vec![start; n * beams], &mut lw).unwrap();
            narrow.step(&vec![start; n], &mut ln).unwrap();
            // Bit for bit where the backend says rows are independent, else within rounding.
            let exact = model.rows_independent();
            assert_eq!(exact, backend == BackendChoice::Auto);
            let same = |a: &[f32], b: &[f32]| {
                if exact {
                    a == b
                } else {
                    a.len() == b.len() && max_diff(a, b) < 1e-4
                }
            };
            for (r, row) in lw.chunks(vocab).enumerate() {
                let one = &ln[r / beams * vocab..][..vocab];
                assert!(same(row, one), "{name} ({backend:?}): step 1 row {r}");
            }
            // Every beam continues its source's one row; different tokens per beam.
            let widen: Vec<u32> = (0..n * beams).map(|r| (r / beams) as u32).collect();
            narrow.reorder_rows(&widen).unwrap();
            assert_eq!((narrow.beams(), narrow.rows()), (beams, n * beams));
            let tokens: Vec<u32> = (0..n * beams).map(|r| 4 + r as u32 % 5).collect();
            wide.step(&tokens, &mut lw).unwrap();
            narrow.step(&tokens, &mut ln).unwrap();
            assert!(
                same(&lw, &ln),
                "{name} ({backend:?}): step 2 after widening"
            );
            // Dropping a source keeps the widened beams together.
            let keep: Vec<usize> = (1..n).collect();
            wide.keep_sources(&keep).unwrap();
            narrow.keep_sources(&keep).unwrap();
            let tokens = &tokens[beams..];
            wide.step(tokens, &mut lw).unwrap();
            narrow.step(tokens, &mut ln).unwrap();
            assert!(
                same(&lw, &ln),
                "{name} ({backend:?}): step 3 after dropping a source"
            );
        }
    }
}

#[test]
fn decoding_arguments_are_checked() {
    let model = load("marian-tiny", BackendChoice::Auto);
    let enc = model.encode(&sources(&model)).unwrap();
    let mut state = model.start_decoding(&enc, 2).unwrap();
    let mut out = Vec::new();
    assert!(state.step(&[0], &mut out).is_err(), "one token per row");
    let bad = model.config().decoder_vocab_size as u32;
    assert!(state.step(&vec![bad; state.rows()], &mut out).is_err());
    assert!(state.reorder_rows(&[1, 0, 2]).is_err(), "a row per row");
    let mut rows: Vec<u32> = (0..state.rows() as u32).collect();
    rows.swap(1, 2);
    assert!(
        state.reorder_rows(&rows).is_err(),
        "rows stay with their source"
    );
    let n = state.sources() as u32;
    assert!(state.reorder_rows(&[0]).is_err(), "rows per source");
    let three: Vec<u32> = (0..n * 3).map(|i| (i / 3) * 2 + (i % 3) % 2).collect();
    state.reorder_rows(&three).unwrap();
    assert_eq!(state.beams(), 3, "three rows per source afterwards");
    let crossing: Vec<u32> = (0..n).map(|i| (i * 3 + 3) % (n * 3)).collect();
    assert!(
        state.reorder_rows(&crossing).is_err(),
        "narrowed rows stay with their source"
    );
    assert!(state.keep_sources(&[99]).is_err());
    assert!(model.encode(&[]).is_err());
    assert!(model.encode(&[vec![]]).is_err());
    assert!(model.start_decoding(&enc, 0).is_err());
}

/// The model's generation settings with `max_length` 16 (so random models end).
fn settings(name: &str, model: &Seq2SeqModel) -> crate::config::GenerationConfig {
    let path = fixture(name).join("generation_config.json");
    crate::config::GenerationConfig::for_model(model.config(), path.is_file().then_some(&*path))
        .unwrap()
        .with_max_length(16)
}

#[test]
fn sources_that_join_a_running_search_get_what_they_get_alone() {
    use crate::generate::{generate_limited, Joining, Search};
    for name in MODELS {
        for quantize in [None, Some(Quantization::Int8)] {
            let model = load_quantized(name, BackendChoice::Auto, quantize);
            assert!(model.joins());
            let srcs = sources(&model);
            let base = settings(name, &model);
            for cfg in [
                base.clone().with_num_beams(1),
                base.clone().with_num_beams(3).with_num_return_sequences(2),
            ] {
                let cfg = crate::config::GenerationConfig {
                    output_alignments: true,
                    ..cfg
                };
                let banned = cfg.clone().with_no_repeat_ngram_size(2);
                // Each source's limit and processors: source 3 with repeated bigrams banned.
                let limits = [16usize, 9, 16, 12, 16];
                let alone: Vec<_> = srcs
                    .iter()
                    .enumerate()
                    .map(|(i, s)| {
                        let enc = model.encode(std::slice::from_ref(s)).unwrap();
                        let c = if i == 3 { &banned } else { &cfg };
                        generate_limited(&model, &enc, c, Some(&[limits[i]]))
                            .unwrap()
                            .remove(0)
                    })
                    .collect();
                // Sources 0 and 1 start; 2 joins after one step, 3 and 4 after three.
                let mut search = Search::new(&model, &cfg, cfg.num_beams > 1).unwrap();
                let fallback = search.add_processor(&banned);
                let join = |search: &mut Search<'_>, at: &[usize]| {
                    let batch: Vec<Vec<u32>> = at.iter().map(|&i| srcs[i].clone()).collect();
                    let enc = model.encode(&batch).unwrap();
                    let joining: Vec<Joining> = at
                        .iter()
                        .map(|&i| Joining {
                            key: i,
                            limit: limits[i],
                            processor: if i == 3 { fallback } else { 0 },
                        })
                        .collect();
                    search.add(&enc, &joining).unwrap();
                };
                join(&mut search, &[0, 1]);
                let mut got = vec![None; srcs.len()];
                let mut steps = 0;
                while !search.is_empty() || steps < 4 {
                    if steps == 1 {
                        join(&mut search, &[2]);
                    }
                    if steps == 3 {
                        join(&mut search, &[4, 3]);
                    }
                    for (key, hyps) in search.step().unwrap() {
                        assert!(got[key].is_none());
                        got[key] = Some(hyps);
                    }
                    steps += 1;
                }
                for (i, (alone, joined)) in alone.iter().zip(&got).enumerate() {
                    let joined = joined.as_ref().unwrap();
                    assert_eq!(
                        alone, joined,
                        "{name} {quantize:?} beams {}: source {i}",
                        cfg.num_beams
                    );
                    // Bit for bit: the scores too.
                    for (a, b) in alone.iter().zip(joined) {
                        assert_eq!(a.score.to_bits(), b.score.to_bits());
                    }
                }
            }
        }
    }
}

#[test]
fn candle_sources_join_only_an_empty_search() {
    use crate::generate::{Joining, Search};
    let name = MODELS[0];
    let model = load(name, BackendChoice::Candle);
    assert!(!model.joins());
    let srcs = sources(&model);
    let cfg = settings(name, &model);
    let mut search = Search::new(&model, &cfg, true).unwrap();
    let one = |i: usize| Joining {
        key: i,
        limit: 16,
        processor: 0,
    };
    let enc = model.encode(&srcs[..1]).unwrap();
    search.add(&enc, &[one(0)]).unwrap();
    search.step().unwrap();
    assert!(!search.can_join());
    let enc = model.encode(&srcs[1..2]).unwrap();
    let e = search.add(&enc, &[one(1)]).unwrap_err();
    assert!(e.to_string().contains("cannot"), "{e}");
}
