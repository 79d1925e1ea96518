//! `tolk translate`: one article from a file or standard input to standard output or a file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;

use tolk::output::{render, RenderOptions};

use super::args::{FormatArg, PipelineArgs};
use super::{decoding_notes, emit, read_input, Global};

/// Options of `tolk translate`.
#[derive(Debug, Args)]
#[command(after_help = "\
Examples:
  tolk translate artikel.txt
  tolk translate --format markdown --bilingual -o artikel.en.md artikel.txt
  cat artikel.txt | tolk translate --format json --no-summary
  tolk translate --model ./opus-mt-nl-en --segment lines --format json --no-summary zinnen.txt

With --segment lines --format json --no-summary, every non-empty line is translated as written and
`sentences` holds one object per line (source, translation, score, source_tokens, target_tokens):
an interface for evaluation scripts that stays stable.")]
pub struct TranslateArgs {
    /// The article (UTF-8 or UTF-16 with a byte-order mark); `-` or nothing reads standard input.
    #[arg(value_name = "FILE|-")]
    pub file: Option<PathBuf>,

    /// Write to this file (atomically: all or nothing) instead of standard output.
    #[arg(long, short, value_name = "PATH")]
    pub output: Option<PathBuf>,

    /// Output format.
    #[arg(long, short, value_enum, default_value = "text")]
    pub format: FormatArg,

    /// Markdown: add a side-by-side Dutch/English table.
    #[arg(long)]
    pub bilingual: bool,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// Runs `tolk translate`.
pub fn run(args: TranslateArgs, global: Global) -> anyhow::Result<ExitCode> {
    // Input first: a bad file should not wait for the model to load.
    let (decoded, name) = read_input(args.file.as_deref(), args.pipeline.lossy)?;
    decoding_notes(&decoded, &name, global);
    let pipeline = args.pipeline.build(global)?;
    let output = pipeline.run(&decoded.text)?;
    let options = RenderOptions::default().with_bilingual(args.bilingual);
    let text = render(&output, args.format.into(), &options)?;
    emit(args.output.as_ref(), &text)?;
    Ok(ExitCode::SUCCESS)
}
