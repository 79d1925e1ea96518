//! Embedding tolk in a program: load the model once, translate articles, use the parts.
//!
//! ```text
//! cargo run --release --example embed -- examples/artikel.nl.txt
//! cargo run --release --example embed -- --model tests/fixtures/marian-tiny examples/artikel.nl.txt
//! ```
//!
//! It prints the English article, a bilingual summary and where the time went, then translates
//! two loose sentences with the translator alone, sharing the pipeline's loaded model.

use std::path::PathBuf;

use tolk::input::{read_file, DecodeOptions};
use tolk::pipeline::{GenerationOverrides, Pipeline, SummarizerChoice};
use tolk::source::ModelSpec;
use tolk::summarize::{ExtractiveOptions, SummaryLength};

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let mut model = ModelSpec::default();
    let mut file = None;
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--model" => {
                let spec = args
                    .next()
                    .ok_or_else(|| anyhow::anyhow!("--model needs a value"))?;
                model = ModelSpec::parse(&spec)?;
            }
            _ => file = Some(PathBuf::from(arg)),
        }
    }
    let file = file.ok_or_else(|| anyhow::anyhow!("usage: embed [--model SPEC] FILE"))?;

    // Load once: resolving (and, the first time, downloading) the model is the slow part.
    let pipeline = Pipeline::builder()
        .model(model)
        // Random-weight test models never stop on their own; real models end long before this.
        .overrides(GenerationOverrides::default().with_max_new_tokens(256))
        .summarizer(SummarizerChoice::Extractive(
            ExtractiveOptions::default().with_length(SummaryLength::Sentences(2)),
        ))
        .build()?;
    let m = pipeline.model();
    eprintln!(
        "model {} ({}) loaded in {:.2} s",
        m.name,
        m.commit.as_deref().unwrap_or("local directory"),
        pipeline.load_time().as_secs_f64()
    );

    // Files: UTF-8 or UTF-16 with a byte-order mark; anything else is a clear error.
    let text = read_file(&file, &DecodeOptions::default())?.text;
    let output = pipeline.run(&text)?;
    println!("{}\n", output.translation);
    if let Some(summary) = &output.summary {
        println!("Summary:");
        for item in &summary.sentences {
            println!("- {}", item.text);
            if let Some(dutch) = &item.source {
                println!("  ({dutch})");
            }
        }
    }
    let t = &output.timings;
    eprintln!(
        "{} segments, {} source tokens: segment {:.3} s, translate {:.3} s, summarise {:.3} s",
        output.sentences.len(),
        output.source_tokens(),
        t.segment.as_secs_f64(),
        t.translate.as_secs_f64(),
        t.summarize.as_secs_f64()
    );

    // The parts stay usable: the same loaded model translates loose sentences.
    let translator = pipeline.shared_translator();
    for t in translator.translate(&["Goedemorgen.", "Het regent in Utrecht."])? {
        println!("{} (score {:.2})", t.text, t.score);
    }
    Ok(())
}
