//! `tolk translate`: one article from a file or standard input to standard output or a file.

use std::io::{BufWriter, IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Args;

use tolk::corpus::translate_corpus;
use tolk::formats::{InputFormat, Markup};
use tolk::fsutil::AtomicFile;
use tolk::output::{OutputFormat, RenderOptions, StreamWriter};
use tolk::stream::{BlockSource, LineSource};

use super::args::{FormatArg, PipelineArgs, SegmentArg};
use super::progress::DocumentBar;
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

/// Runs `tolk translate`.
pub fn run(args: TranslateArgs, global: Global) -> anyhow::Result<ExitCode> {
    match args.pipeline.input_format(args.file.as_deref()) {
        InputFormat::Jsonl => return corpus(args, global),
        f @ (InputFormat::Html | InputFormat::Markdown) => return markup(args, global, f),
        InputFormat::Text => {}
    }
    // Input first: a bad file should not wait for the model to load.
    let stream_options = args.pipeline.stream_options();
    // `--segment lines` on a pipe: a co-process, every line translated and written before the
    // next one is waited for.
    let reads_stdin = args.file.as_deref().is_none_or(|f| f == Path::new("-"));
    let lines = args.pipeline.segment == SegmentArg::Lines
        && reads_stdin
        && (args.unbuffered || !stdin_is_file());
    let decode = args.pipeline.decode_options();
    let (mut input, name, streamed): (Box<dyn BlockSource>, String, bool) = if lines {
        let source = LineSource::new(
            std::io::stdin(),
            "<stdin>",
            &decode,
            stream_options.block_bytes,
        );
        (Box::new(source), "<stdin>".to_string(), true)
    } else {
        let input = open_input(args.file.as_deref(), &decode, &stream_options)?;
        let name = input.name().to_string();
        let streamed = input.is_streamed();
        (Box::new(input), name, streamed)
    };
    let known = input.decode_stats();
    if let Some(stats) = &known {
        decode_notes(stats, &name, global);
    }
    let pipeline = args.pipeline.build(global)?;
    let format: OutputFormat = args.format.unwrap_or(FormatArg::Text).into();
    let options = RenderOptions::default().with_bilingual(args.bilingual);
    // The library's measure of the document: its text, when known before the first block.
    // No bar for a co-process: its lines come as they are typed or sent.
    let mut bar = DocumentBar::new(global.quiet || lines, known.map(|s| s.text_bytes));
    let report = match args.output.as_deref() {
        Some(path) if path.as_os_str() != "-" => {
            // Spool files next to the output: where there is room for the output itself.
            let spool = stream_options
                .spool_dir
                .clone()
                .or_else(|| path.parent().map(Path::to_path_buf))
                .filter(|p| !p.as_os_str().is_empty());
            let file = AtomicFile::create(path)?;
            let mut writer = StreamWriter::new(file, path, format, &options, spool.as_deref())?
                .with_lines_ended(lines);
            let report = pipeline.translate_document_with_progress(
                &pipeline.document_run(),
                &mut *input,
                &mut writer,
                &mut bar,
            )?;
            writer.into_inner().commit()?;
            report
        }
        _ => {
            let stdout = std::io::stdout();
            let same_screen = stdout.is_terminal();
            let stdout = BufWriter::with_capacity(1 << 16, bar.guard(stdout.lock(), same_screen));
            let mut writer = StreamWriter::new(
                stdout,
                "<stdout>",
                format,
                &options,
                stream_options.spool_dir.as_deref(),
            )?
            .with_lines_ended(lines);
            let report = pipeline.translate_document_with_progress(
                &pipeline.document_run(),
                &mut *input,
                &mut writer,
                &mut bar,
            )?;
            writer.into_inner().flush()?;
            report
        }
    };
    bar.finish();
    if known.is_none() {
        if let Some(stats) = &report.decode {
            decode_notes(stats, &name, global);
        }
    }
    if let Some(n) = report.summary.as_ref().and_then(|s| s.limited_to) {
        if !global.silent {
            let how = if streamed {
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

/// `tolk translate` of an HTML or Markdown document: read whole, translated in place (or
/// rendered as --format says).
fn markup(args: TranslateArgs, global: Global, format: InputFormat) -> anyhow::Result<ExitCode> {
    let decode = args.pipeline.decode_options();
    let (markup, decoded) = match args.file.as_deref() {
        Some(p) if p != Path::new("-") => Markup::read_file(format, p, &decode)?,
        _ => Markup::read(format, std::io::stdin().lock(), "<stdin>", &decode)?,
    };
    let name = args
        .file
        .as_deref()
        .filter(|p| *p != Path::new("-"))
        .map_or_else(|| "<stdin>".to_string(), |p| p.display().to_string());
    decode_notes(&decoded, &name, global);
    let out_format: OutputFormat = match args.format {
        Some(f) => f.into(),
        None => format.document_format().unwrap_or_default(),
    };
    let pipeline = args.pipeline.build(global)?;
    let options = RenderOptions::default().with_bilingual(args.bilingual);
    let mut bar = DocumentBar::new(global.quiet, Some(markup.source().len() as u64));
    let result =
        pipeline.translate_markup_for(&pipeline.document_run(), &markup, out_format, &mut bar);
    bar.finish();
    let bytes = result?.rendered(&markup, out_format, &options)?;
    match args.output.as_deref() {
        Some(path) if path.as_os_str() != "-" => {
            let mut file = AtomicFile::create(path)?;
            file.write_all(bytes.as_bytes())
                .map_err(|e| tolk::Error::io(path, e))?;
            file.commit()?;
        }
        _ => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(bytes.as_bytes())?;
            stdout.flush()?;
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `tolk translate` of a JSON-lines corpus: a record per line out, with its id.
fn corpus(args: TranslateArgs, global: Global) -> anyhow::Result<ExitCode> {
    if args.format.is_some_and(|f| f != FormatArg::Jsonl) {
        anyhow::bail!(
            "JSON-lines input is written as JSON lines: drop --format or use --format jsonl"
        );
    }
    let name = match args.file.as_deref() {
        Some(p) if p != Path::new("-") => p.display().to_string(),
        _ => "<stdin>".to_string(),
    };
    let input: Box<dyn std::io::BufRead + Send> = match args.file.as_deref() {
        Some(p) if p != Path::new("-") => Box::new(std::io::BufReader::new(
            std::fs::File::open(p).map_err(|e| tolk::Error::io(p, e))?,
        )),
        _ => Box::new(std::io::BufReader::new(std::io::stdin())),
    };
    let pipeline = args.pipeline.build(global)?;
    let options = args.pipeline.corpus_options();
    match args.output.as_deref() {
        Some(path) if path.as_os_str() != "-" => {
            let mut file = AtomicFile::create(path)?;
            translate_corpus(&pipeline, input, &name, &mut file, &options)?;
            file.commit()?;
        }
        _ => {
            let mut stdout = std::io::stdout().lock();
            translate_corpus(&pipeline, input, &name, &mut stdout, &options)?;
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
