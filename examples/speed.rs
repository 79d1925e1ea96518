//! Development benchmark: tokens per second on a model directory, with a forced output length
//! (greedy and beam 4, one sentence at a time and all in one batch), like ../shared/bench.
//!
//! usage: cargo run --release --example speed -- MODEL_DIR SENTENCES_FILE [NEW_TOKENS] [REPEAT]
//! [BEAMSxBATCH|-] [int8|int8-fast]

use std::time::Instant;

use tolk::model::Quantization;
use tolk::translate::{BatchOptions, LoadOptions, Translator};

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let dir = &args[1];
    let text = std::fs::read_to_string(&args[2])?;
    let new: usize = args.get(3).map(|s| s.parse()).transpose()?.unwrap_or(40);
    let repeat: usize = args.get(4).map(|s| s.parse()).transpose()?.unwrap_or(3);
    // The quantisation words this takes (after the numbers), and the engine each names.
    let modes = [
        ("int8", Quantization::Int8, "tolk-int8"),
        ("int8-fast", Quantization::Int8Fast, "tolk-int8-fast"),
    ];
    let mode = args
        .iter()
        .skip(3)
        .find_map(|a| modes.iter().find(|(word, ..)| word == a));
    let only = args
        .get(5)
        .filter(|s| *s != "-" && !modes.iter().any(|(word, ..)| word == s))
        .cloned();
    let engine = mode.map_or("tolk", |&(_, _, engine)| engine);
    let opts = LoadOptions::default().with_quantize(mode.map(|&(_, q, _)| q));
    let sents: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let t0 = Instant::now();
    let t = Translator::from_dir(dir, &opts)?;
    eprintln!("load {:.3}s", t0.elapsed().as_secs_f64());
    for beams in [1, 4] {
        for bs in [1, sents.len()] {
            if let Some(o) = &only {
                if *o != format!("{beams}x{bs}") {
                    continue;
                }
            }
            let cfg = t
                .generation()
                .clone()
                .with_num_beams(beams)
                .with_min_new_tokens(new)
                .with_max_new_tokens(new);
            let tr = Translator::from_dir(dir, &opts)?.with_batching(
                BatchOptions::default()
                    .with_max_batch_size(bs)
                    .with_max_batch_tokens(1 << 20),
            );
            let s = Instant::now();
            let _ = tr.translate_with(&sents[..bs.min(sents.len())], &cfg)?;
            eprintln!("{beams}x{bs}: first call {:.4}s", s.elapsed().as_secs_f64());
            let mut best = f64::MAX;
            for _ in 0..repeat {
                let s = Instant::now();
                let out = tr.translate_with(&sents, &cfg)?;
                best = best.min(s.elapsed().as_secs_f64());
                assert!(out.iter().all(|o| o.ids.len() == new));
            }
            println!(
                "{{\"engine\":\"{engine}\",\"beams\":{beams},\"batch\":{bs},\"min_s\":{best:.4},\"tokens_per_s\":{:.1}}}",
                (sents.len() * new) as f64 / best
            );
        }
    }
    Ok(())
}
