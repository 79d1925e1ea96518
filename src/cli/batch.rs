//! `tolk batch`: a directory of articles into a mirrored directory of outputs.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;

use tolk::batch::{BatchConfig, BatchRunner, FileStatus, Glob, Shard};
use tolk::output::{OutputFormat, RenderOptions};

use super::args::{FormatArg, PipelineArgs};
use super::progress::BatchBar;
use super::Global;

/// Options of `tolk batch`.
#[derive(Debug, Args)]
#[command(after_help = "\
Outputs mirror the input tree, with the extension replaced by the format's (.txt, .md, .json,
.jsonl, .html), and are written atomically. HTML (.html, .htm) and Markdown (.md, .markdown)
inputs are written as themselves, their text translated in place, unless --format is given. A re-run skips inputs whose output is up to date, so an
interrupted run is resumed by running it again. OUT_DIR/tolk-report.json lists what was done,
skipped and failed.

Exit status: 0 if every file is done or skipped, 1 if some failed, 2 if nothing could run, 3 if
the run was aborted because the output directory became unwritable (run it again to resume).

Examples:
  tolk batch artikelen/ -o english/
  tolk batch archief/ -o uit/ --glob '*.txt' --glob '*.nl' --format json
  tolk batch site/ -o en/ --glob '*.{txt,md,html}'
  tolk batch corpus/ -o uit/ --shard \"$JOB_COMPLETION_INDEX/8\"")]
pub struct BatchArgs {
    /// Directory searched recursively for articles.
    #[arg(value_name = "IN_DIR")]
    pub input_dir: PathBuf,

    /// Directory for the outputs (created if needed).
    #[arg(long, short, value_name = "OUT_DIR")]
    pub output: PathBuf,

    /// Articles are the files matching this pattern (`*`, `?`, `**`, `[a-z]`; without `/` it is
    /// matched against the file name); repeat for several.
    #[arg(long, value_name = "PATTERN", default_value = "*.txt")]
    pub glob: Vec<String>,

    /// Output format [default: text; HTML and Markdown inputs: their own format, translated in
    /// place].
    #[arg(long, short, value_enum)]
    pub format: Option<FormatArg>,

    /// Markdown: add a side-by-side Dutch/English table.
    #[arg(long)]
    pub bilingual: bool,

    /// Redo articles whose output is already up to date.
    #[arg(long)]
    pub overwrite: bool,

    /// Process slice K of N (K from 0 to N-1), chosen by a hash of each file's relative path: N
    /// machines with K = 0..N-1 share a corpus without overlap.
    #[arg(long, value_name = "K/N")]
    pub shard: Option<String>,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// Runs `tolk batch`.
pub fn run(args: BatchArgs, global: Global) -> anyhow::Result<ExitCode> {
    let shard = args.shard.as_deref().map(str::parse::<Shard>).transpose()?;
    let globs = args
        .glob
        .iter()
        .map(|g| Glob::new(g).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?;
    // Cheap checks before the model loads.
    let meta = std::fs::metadata(&args.input_dir).with_context(|| {
        format!(
            "cannot read the input directory {}",
            args.input_dir.display()
        )
    })?;
    anyhow::ensure!(
        meta.is_dir(),
        "{} is not a directory",
        args.input_dir.display()
    );
    let config = BatchConfig::new(&args.input_dir, &args.output)
        .with_globs(globs)
        .with_format(args.format.map_or(OutputFormat::Text, Into::into))
        .with_keep_markup(args.format.is_none())
        .with_render(RenderOptions::default().with_bilingual(args.bilingual))
        .with_overwrite(args.overwrite)
        .with_shard(shard)
        .with_decode(args.pipeline.decode_options())
        .with_stream(args.pipeline.stream_options())
        .with_input(
            args.pipeline.input_format.format(),
            args.pipeline.corpus_options(),
        );
    let report_path = args.output.join(config.report_name());

    let pipeline = args.pipeline.build(global)?;
    let mut bar = BatchBar::new(global.quiet);
    let report = BatchRunner::new(&pipeline, config).run(&mut bar);
    bar.finish();
    let report = report?;

    let mut stderr = std::io::stderr().lock();
    if global.quiet {
        // Without the bar nothing has shown the failures yet.
        for f in report
            .files
            .iter()
            .filter(|f| f.status == FileStatus::Failed)
        {
            let _ = writeln!(stderr, "{}", super::failure_line(f));
        }
    }
    if !global.silent {
        let _ = writeln!(
            stderr,
            "{} done, {} skipped, {} failed in {:.1} s ({} sentences, {} tokens); report: {}",
            report.done,
            report.skipped,
            report.failed,
            report.elapsed.as_secs_f64(),
            report.sentences,
            report.source_tokens + report.target_tokens,
            report_path.display()
        );
    }
    if let Some(why) = &report.aborted {
        let _ = writeln!(stderr, "error: {why}");
        // Distinct from 1: the inputs not reached are fine, so a retry (after freeing space) is
        // worth it; job schedulers retry on 3 and accept 1.
        return Ok(ExitCode::from(3));
    }
    Ok(if report.failed > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    })
}
