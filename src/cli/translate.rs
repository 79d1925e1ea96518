//! `tolk translate`: one article from a file or standard input to standard output or a file.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use tolk::document::Document;
use tolk::fsutil::AtomicFile;
use tolk::output::{OutputFormat, RenderOptions};

use super::args::{FormatArg, PipelineArgs, SegmentArg};
use super::progress::DocumentBar;
use super::{decode_notes, input_source, Global};

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

    /// Output format [default: text; jsonl for JSON-lines input].
    #[arg(long, short, value_enum)]
    pub format: Option<FormatArg>,

    /// Markdown: add a side-by-side Dutch/English table.
    #[arg(long)]
    pub bilingual: bool,

    /// With --segment lines: translate and write each line as it comes, even when standard
    /// input is a file (a pipe or terminal always is).
    #[arg(long)]
    pub unbuffered: bool,

    #[command(flatten)]
    pub pipeline: PipelineArgs,
}

/// Runs `tolk translate`: one document (text, Markdown, HTML or a JSON-lines corpus) through
/// the library's one entry ([`Document::open`], [`tolk::pipeline::Pipeline::translate_to`]).
pub fn run(args: TranslateArgs, global: Global) -> anyhow::Result<ExitCode> {
    let mut options = args.pipeline.document_options();
    options.output_format = args.format.map(Into::into);
    options.render = RenderOptions::default().with_bilingual(args.bilingual);
    // `--segment lines` on a pipe: a co-process, every line translated and written before the
    // next one is waited for.
    let reads_stdin = args.file.as_deref().is_none_or(|f| f == Path::new("-"));
    options.line_by_line = args.pipeline.segment == SegmentArg::Lines
        && reads_stdin
        && (args.unbuffered || !stdin_is_file());
    let to_file = args.output.as_deref().filter(|p| p.as_os_str() != "-");
    if let Some(path) = to_file {
        // Spool files next to the output: where there is room for the output itself.
        options.stream.spool_dir = options
            .stream
            .spool_dir
            .clone()
            .or_else(|| path.parent().map(Path::to_path_buf))
            .filter(|p| !p.as_os_str().is_empty());
    }
    // Input first: a bad file should not wait for the model to load.
    let document = Document::open(input_source(args.file.as_deref())?, &options)?;
    let name = document.name().to_string();
    if document.input_format().is_package()
        && matches!(document.output_format(), OutputFormat::Own(_))
        && to_file.is_none()
        && std::io::stdout().is_terminal()
    {
        anyhow::bail!(
            "{name}: the translated {} is a binary file: give --output FILE, or redirect standard output",
            document.input_format().name()
        );
    }
    let known = document.decode_stats();
    if let Some(stats) = &known {
        decode_notes(stats, &name, global);
    }
    let pipeline = args.pipeline.build(global)?;
    // No bar for a co-process (its lines come as they are typed or sent) or a corpus.
    let quiet_bar = global.quiet
        || options.line_by_line
        || document.input_format() == tolk::formats::InputFormat::Jsonl;
    let mut bar = DocumentBar::new(quiet_bar, document.text_bytes());
    let run = pipeline.document_run();
    let done = match to_file {
        Some(path) => {
            let mut file = AtomicFile::create(path)?;
            let done =
                pipeline.translate_to(&run, document, &mut file, path, &options, &mut bar)?;
            file.commit()?;
            done
        }
        None => {
            let stdout = std::io::stdout();
            let same_screen = stdout.is_terminal();
            let mut stdout =
                BufWriter::with_capacity(1 << 16, bar.guard(stdout.lock(), same_screen));
            let done = pipeline.translate_to(
                &run,
                document,
                &mut stdout,
                Path::new("<stdout>"),
                &options,
                &mut bar,
            )?;
            stdout.flush()?;
            done
        }
    };
    bar.finish();
    if known.is_none() {
        if let Some(stats) = &done.report.decode {
            decode_notes(stats, &name, global);
        }
    }
    if let Some(n) = done.report.summary.as_ref().and_then(|s| s.limited_to) {
        if !global.silent {
            let how = if done.streamed {
                format!("streamed in {} blocks; ", done.report.blocks)
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

/// Whether standard input is a regular file (redirected from one), not a pipe or a terminal.
fn stdin_is_file() -> bool {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd;
        std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map(std::fs::File::from)
            .and_then(|f| f.metadata())
            .is_ok_and(|m| m.is_file())
    }
    #[cfg(not(unix))]
    {
        false
    }
}
