//! `tolk translate`: one article from a file or standard input to standard output or a file.

use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use tolk::fsutil::AtomicFile;
use tolk::output::{OutputFormat, RenderOptions, StreamWriter};
use tolk::stream::BlockSource;

use super::args::{FormatArg, PipelineArgs};
use super::{decode_notes, open_input, Global};

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
an interface for evaluation scripts that stays stable.

Inputs over --stream-threshold (1 MiB) are streamed: read, translated and written block by block
in bounded memory (text and jsonl appear as they are done; json and markdown are completed at the
end), with the same output as for a small input, except that the summary is made from the first
2000 sentences.")]
pub struct TranslateArgs {
    /// The article (UTF-8, UTF-16 with a byte-order mark, or as --encoding says); `-` or nothing
    /// reads standard input.
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
    let stream_options = args.pipeline.stream_options();
    let decode = args.pipeline.decode_options();
    let mut input = open_input(args.file.as_deref(), &decode, &stream_options)?;
    let name = input.name().to_string();
    let known = input.decode_stats();
    if let Some(stats) = &known {
        decode_notes(stats, &name, global);
    }
    let pipeline = args.pipeline.build(global)?;
    let format: OutputFormat = args.format.into();
    let options = RenderOptions::default().with_bilingual(args.bilingual);
    let report = match args.output.as_deref() {
        Some(path) if path.as_os_str() != "-" => {
            // Spool files next to the output: where there is room for the output itself.
            let spool = stream_options
                .spool_dir
                .clone()
                .or_else(|| path.parent().map(Path::to_path_buf))
                .filter(|p| !p.as_os_str().is_empty());
            let file = AtomicFile::create(path)?;
            let mut writer = StreamWriter::new(file, path, format, &options, spool.as_deref())?;
            let report = pipeline.translate_document(&mut input, &mut writer)?;
            writer.into_inner().commit()?;
            report
        }
        _ => {
            let stdout = BufWriter::with_capacity(1 << 16, std::io::stdout().lock());
            let mut writer = StreamWriter::new(
                stdout,
                "<stdout>",
                format,
                &options,
                stream_options.spool_dir.as_deref(),
            )?;
            let report = pipeline.translate_document(&mut input, &mut writer)?;
            writer.into_inner().flush()?;
            report
        }
    };
    if known.is_none() {
        if let Some(stats) = &report.decode {
            decode_notes(stats, &name, global);
        }
    }
    if let Some(n) = report.summary.as_ref().and_then(|s| s.limited_to) {
        if !global.silent {
            let how = if input.is_streamed() {
                format!("streamed in {} blocks; ", report.blocks)
            } else {
                String::new()
            };
            let _ = writeln!(
                std::io::stderr(),
                "note: {name}: {how}the summary was made from its first {n} sentences"
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
