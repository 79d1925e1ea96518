//! `tolk bench`: times translation in one process, the way the peers' benchmark times them (load
//! once, one warm-up run, then the best of `--repeat` runs), with every option of `translate`.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Args;

use tolk::input;

use super::args::PipelineArgs;
use super::Global;

/// Options of `tolk bench`.
#[derive(Debug, Args)]
#[command(after_help = "\
Prints one JSON object: load_s, warmup_s, min_s and median_s (translation time of the timed runs),
runs, sentences, target_tokens and tokens_per_s (target tokens / min_s).

Example (the benchmark's workload: every line a sentence, exactly 40 tokens each):
  tolk bench --model DIR --segment lines --no-summary --num-beams 4 --batch-size 19 \\
      --min-new-tokens 40 --max-new-tokens 40 --quantize int8 --repeat 3 zinnen.txt

tools/bench/bench.py runs it beside CTranslate2 and prints the table of docs/performance.md.")]
pub struct BenchArgs {
    /// The text to translate (UTF-8, or UTF-16 with a byte-order mark), read whole.
    #[arg(value_name = "FILE")]
    pub file: PathBuf,

    /// Timed runs after the warm-up run.
    #[arg(long, default_value_t = 3, value_parser = clap::value_parser!(u32).range(1..))]
    pub repeat: u32,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// Runs `tolk bench`.
pub fn run(args: BenchArgs, global: Global) -> anyhow::Result<ExitCode> {
    let options = args.pipeline.decode_options();
    let text = input::read_file(&args.file, &options)?.text;
    let pipeline = args.pipeline.build(global)?;
    let warm = pipeline.run(&text)?;
    let tokens = warm.target_tokens();
    let mut times: Vec<Duration> = Vec::new();
    for _ in 0..args.repeat {
        let out = pipeline.run(&text)?;
        if out.target_tokens() != tokens {
            anyhow::bail!(
                "a timed run produced {} tokens, the warm-up run {tokens}: the output is not deterministic",
                out.target_tokens()
            );
        }
        times.push(out.timings.translate);
    }
    times.sort();
    let min = times[0].as_secs_f64();
    let median = times[times.len() / 2].as_secs_f64();
    // Microseconds are plenty.
    let us = |s: f64| (s * 1e6).round() / 1e6;
    let report = serde_json::json!({
        "load_s": us(warm.timings.load.as_secs_f64()),
        "warmup_s": us(warm.timings.translate.as_secs_f64()),
        "min_s": us(min),
        "median_s": us(median),
        "runs": times.len(),
        "sentences": warm.sentences.iter().filter(|s| s.translation.is_some()).count(),
        "target_tokens": tokens,
        "tokens_per_s": if min > 0.0 { (tokens as f64 / min * 10.0).round() / 10.0 } else { 0.0 },
    });
    writeln!(std::io::stdout(), "{report}")?;
    Ok(ExitCode::SUCCESS)
}
