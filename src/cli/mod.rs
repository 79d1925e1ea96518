//! Command-line parsing, dispatch, exit codes and error printing.
//!
//! Exit status: 0 on success; 1 when a batch run finished with failed files; 2 for every error
//! that stopped a command (bad usage, unreadable input, model not loadable, ...); 3 when a batch
//! run was aborted because its output directory became unwritable (a full disk): running it
//! again resumes it, unlike status 1, whose failed files fail the same way again. A closed
//! standard output (`tolk ... | head`) counts as success. Messages and progress go to standard
//! error; standard output carries only results.

mod args;
mod batch;
mod bench;
mod generate;
mod logging;
mod models;
mod progress;
#[cfg(feature = "serve")]
mod serve;
mod text;
mod translate;

use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use tolk::document::Source;
use tolk::input::{DecodeOptions, DecodeStats};
use tolk::stream::{BlockSource, DocumentInput, StreamOptions};

/// Dutch news articles into English: translation, segmentation and summaries.
#[derive(Debug, Parser)]
#[command(name = "tolk", version, max_term_width = 100)]
#[command(after_help = "Run `tolk COMMAND --help` for the options of a command.")]
struct Cli {
    /// Worker threads for the model and the tokenizer (default: one per physical core; the
    /// RAYON_NUM_THREADS variable also works).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,

    /// No progress bars, notes or logs on standard error (errors are still printed).
    #[arg(long, short, global = true)]
    quiet: bool,

    /// Log what tolk does on standard error: -v loading and timings, -vv also every batch and
    /// the libraries' messages, -vvv everything (RUST_LOG=target=level,... refines it).
    #[arg(long, short, global = true, action = clap::ArgAction::Count, conflicts_with = "quiet")]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Translate and summarise one article (a file, or standard input).
    Translate(translate::TranslateArgs),
    /// Translate every article of a directory into a mirrored output directory.
    Batch(batch::BatchArgs),
    /// Split a text into sentences, one per line (Dutch unless --lang says otherwise; no model
    /// needed).
    Segment(text::SegmentArgs),
    /// Summarise an English text: the summary sentences, one per line (no model needed).
    Summarize(text::SummarizeArgs),
    /// Time translation in one process: a warm-up run, then the best of --repeat runs.
    Bench(bench::BenchArgs),
    /// Serve translations over HTTP: LibreTranslate's API and tolk's own.
    #[cfg(feature = "serve")]
    Serve(serve::ServeArgs),
    /// List, download and inspect models.
    Models {
        #[command(subcommand)]
        command: models::ModelsCommand,
    },
    /// Print a completion script for a shell (bash, zsh, fish, powershell, elvish).
    Completions(generate::CompletionsArgs),
    /// Print the manual page (roff), or write one page per command into a directory.
    Man(generate::ManArgs),
}

/// Options every command sees.
#[derive(Debug, Clone, Copy)]
pub struct Global {
    /// `--quiet`, or standard error is not a terminal: no progress bars.
    pub quiet: bool,
    /// `--quiet` alone: no notes either.
    pub silent: bool,
}

/// Parses the arguments, runs the command and turns its result into an exit status.
pub fn main() -> ExitCode {
    let cli = Cli::parse();
    logging::init(cli.verbose, cli.quiet);
    let global = Global {
        quiet: cli.quiet || !std::io::stderr().is_terminal(),
        silent: cli.quiet,
    };
    let result = set_threads(cli.threads).and_then(|()| match cli.command {
        Command::Translate(args) => translate::run(args, global),
        Command::Batch(args) => batch::run(args, global),
        Command::Segment(args) => text::segment(args, global),
        Command::Summarize(args) => text::summarize(args, global),
        Command::Bench(args) => bench::run(args, global),
        #[cfg(feature = "serve")]
        Command::Serve(args) => serve::run(args, global),
        Command::Models { command } => models::run(command, global),
        Command::Completions(args) => generate::completions(args),
        Command::Man(args) => generate::man(args),
    });
    match result {
        Ok(code) => code,
        Err(err) if is_broken_pipe(&err) => ExitCode::SUCCESS,
        Err(err) => {
            print_error(&err);
            ExitCode::from(2)
        }
    }
}

/// Sets the size of rayon's global pool and candle's CPU pool before either starts.
fn set_threads(threads: Option<usize>) -> anyhow::Result<()> {
    let Some(n) = threads else {
        return Ok(());
    };
    if n == 0 {
        anyhow::bail!("--threads must be at least 1");
    }
    // candle sizes its pools from these variables when it first needs them, which is later;
    // nothing else runs yet, so changing the environment is safe here.
    std::env::set_var("RAYON_NUM_THREADS", n.to_string());
    std::env::set_var("CANDLE_NUM_THREADS", n.to_string());
    rayon::ThreadPoolBuilder::new()
        .num_threads(n)
        .build_global()
        .context("cannot set up the thread pool")
}

/// `error: ...` and one `caused by: ...` per cause that adds something.
fn print_error(err: &anyhow::Error) {
    let mut stderr = std::io::stderr().lock();
    let mut shown = err.to_string();
    let _ = writeln!(stderr, "error: {shown}");
    for cause in err.chain().skip(1) {
        let text = cause.to_string();
        // The library's messages already include their I/O cause; do not repeat it.
        if shown.contains(&text) {
            continue;
        }
        let _ = writeln!(stderr, "caused by: {text}");
        shown = text;
    }
    let remedy = err.chain().find_map(|c| {
        c.downcast_ref::<tolk::Error>()
            .and_then(tolk::Error::remedy)
    });
    if let Some(hint) = remedy.and_then(hint) {
        let _ = writeln!(stderr, "hint: {hint}");
    }
}

/// The command line's switch for an option the library suggests.
pub fn hint(remedy: tolk::error::Remedy) -> Option<&'static str> {
    match remedy {
        tolk::error::Remedy::Lossy => Some("pass --lossy to replace invalid bytes with U+FFFD"),
        tolk::error::Remedy::Encoding => Some(
            "pass --encoding LABEL (such as windows-1252, or auto to detect it), or --lossy to replace invalid bytes with U+FFFD",
        ),
        tolk::error::Remedy::LocalModel => {
            Some("pass --model DIR to use a local copy of the model")
        }
        _ => None,
    }
}

/// The line that reports a failed file of a batch run.
pub fn failure_line(file: &tolk::batch::FileReport) -> String {
    let mut line = format!(
        "failed: {}: {}",
        file.input.display(),
        file.reason.as_deref().unwrap_or("")
    );
    if let Some(h) = file.remedy.and_then(hint) {
        line.push_str(&format!(" ({h})"));
    }
    line
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Where a command's input comes from: the file, or standard input for `-` or no file. With
/// no file and a terminal on standard input, asks for input instead of waiting silently.
pub fn input_source(file: Option<&Path>) -> anyhow::Result<Source<'_>> {
    match file {
        Some(path) if path != Path::new("-") => Ok(Source::File(path)),
        _ => {
            let stdin = std::io::stdin();
            if file.is_none() && stdin.is_terminal() {
                anyhow::bail!(
                    "no input: give a FILE, or pipe text in (`-` reads a terminal until end of input)"
                );
            }
            Ok(Source::Stream(Box::new(stdin), "<stdin>".into()))
        }
    }
}

/// Opens a file or standard input ([`input_source`]) by the library's one input policy
/// ([`DocumentInput`]: read whole up to `stream.threshold`, else in blocks).
pub fn open_input(
    file: Option<&Path>,
    options: &DecodeOptions,
    stream: &StreamOptions,
) -> anyhow::Result<DocumentInput> {
    Ok(match input_source(file)? {
        Source::Stream(reader, name) => DocumentInput::from_reader(reader, &name, options, stream)?,
        Source::File(path) => DocumentInput::open(path, options, stream)?,
        Source::Text(text, name) => DocumentInput::from_text(text, &name),
        Source::Bytes(bytes, name) => {
            let text = tolk::input::decode_with_stats(&bytes, &name, options)?.0;
            DocumentInput::from_text(text, &name)
        }
    })
}

/// The whole text of a file or standard input, for the commands that need all of it at once,
/// with the notes on how it was decoded.
pub fn read_input(
    file: Option<&Path>,
    options: &DecodeOptions,
    global: Global,
) -> anyhow::Result<String> {
    let input = open_input(file, options, &StreamOptions::whole())?;
    if let Some(stats) = input.decode_stats() {
        decode_notes(&stats, input.name(), global);
    }
    Ok(input.into_text().unwrap_or_default())
}

/// The notes on decoding ([`DecodeStats::notes`], the words the batch reports use): the
/// encoding whenever it was not UTF-8 (detected by `--encoding auto`, named by `--encoding
/// LABEL`, or a UTF-16 byte-order mark), invalid byte sequences replaced (`--lossy`).
pub fn decode_notes(stats: &DecodeStats, name: &str, global: Global) {
    if global.silent {
        return;
    }
    let mut stderr = std::io::stderr();
    for note in stats.notes() {
        let _ = writeln!(stderr, "note: {name}: {note}");
    }
}

/// Writes a result to `-o PATH` (atomically) or standard output.
pub fn emit(output: Option<&PathBuf>, text: &str) -> anyhow::Result<()> {
    match output {
        Some(path) if path.as_os_str() != "-" => {
            tolk::fsutil::write_atomic(path, text.as_bytes())?;
        }
        _ => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
        }
    }
    Ok(())
}
