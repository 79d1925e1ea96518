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
mod models;
mod progress;
mod text;
mod translate;

use std::io::{IsTerminal, Read, Write};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Parser, Subcommand};

use tolk::input::{self, DecodeOptions, Decoded};
use tolk::stream::{BlockReader, StreamOptions};

/// Dutch news articles into English: translation, segmentation and summaries.
#[derive(Debug, Parser)]
#[command(name = "tolk", version, max_term_width = 100)]
#[command(after_help = "Run `tolk COMMAND --help` for the options of a command.")]
struct Cli {
    /// Worker threads for the model and the tokenizer (default: one per physical core; the
    /// RAYON_NUM_THREADS variable also works).
    #[arg(long, global = true, value_name = "N")]
    threads: Option<usize>,

    /// No progress bars and no notes on standard error (errors are still printed).
    #[arg(long, short, global = true)]
    quiet: bool,

    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Translate and summarise one article (a file, or standard input).
    Translate(translate::TranslateArgs),
    /// Translate every article of a directory into a mirrored output directory.
    Batch(batch::BatchArgs),
    /// Split a Dutch text into sentences, one per line (no model needed).
    Segment(text::SegmentArgs),
    /// Summarise an English text: the summary sentences, one per line (no model needed).
    Summarize(text::SummarizeArgs),
    /// Time translation in one process: a warm-up run, then the best of --repeat runs.
    Bench(bench::BenchArgs),
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
    let global = Global {
        quiet: cli.quiet || !std::io::stderr().is_terminal(),
        silent: cli.quiet,
    };
    let result = set_threads(cli.threads).and_then(|()| match cli.command {
        Command::Translate(args) => translate::run(args, global),
        Command::Batch(args) => batch::run(args, global),
        Command::Segment(args) => text::segment(args),
        Command::Summarize(args) => text::summarize(args, global),
        Command::Bench(args) => bench::run(args, global),
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
}

fn is_broken_pipe(err: &anyhow::Error) -> bool {
    err.chain().any(|cause| {
        cause
            .downcast_ref::<std::io::Error>()
            .is_some_and(|e| e.kind() == std::io::ErrorKind::BrokenPipe)
    })
}

/// Reads a file, or standard input for `-` or no file. With no file and a terminal on standard
/// input, asks for input instead of waiting silently.
pub fn read_input(file: Option<&Path>, lossy: bool) -> anyhow::Result<(Decoded, String)> {
    let options = DecodeOptions::default().with_lossy(lossy);
    match file {
        Some(path) if path != Path::new("-") => {
            let decoded = input::read_file(path, &options)?;
            Ok((decoded, path.display().to_string()))
        }
        _ => {
            let stdin = std::io::stdin();
            if file.is_none() && stdin.is_terminal() {
                anyhow::bail!(
                    "no input: give a FILE, or pipe text in (`-` reads a terminal until end of input)"
                );
            }
            let decoded = input::read_from(stdin.lock(), "<stdin>", &options)?;
            Ok((decoded, "<stdin>".to_string()))
        }
    }
}

/// Notes about decoding, on standard error.
pub fn decoding_notes(decoded: &Decoded, name: &str, global: Global) {
    replacement_note(decoded.replaced, name, global);
}

/// The note for invalid byte sequences replaced with `--lossy`.
pub fn replacement_note(replaced: usize, name: &str, global: Global) {
    if global.silent || replaced == 0 {
        return;
    }
    let _ = writeln!(
        std::io::stderr(),
        "note: {name}: {replaced} invalid byte sequences replaced with U+FFFD"
    );
}

/// An input, read whole or to be streamed.
pub enum Input {
    /// At most the streaming threshold: decoded whole, as `read_input` does.
    Whole(Decoded),
    /// Larger: read block by block.
    Stream {
        /// The blocks, not read yet (beyond what was needed to tell the size).
        blocks: Box<BlockReader<Box<dyn Read>>>,
        /// For a file: what the first pass over it found (it decodes).
        checked: Option<input::DecodeStats>,
    },
}

/// Opens a file, or standard input for `-` or no file, for `translate`: read whole when it has at
/// most `stream.threshold` bytes (exactly as `read_input`), otherwise set up for streaming. A
/// large file is checked whole first (so that a problem anywhere in it is reported before the
/// model loads and before anything is written); for standard input, the first bytes read are
/// checked at once and the rest as it comes.
pub fn open_input(
    file: Option<&Path>,
    lossy: bool,
    stream: &StreamOptions,
) -> anyhow::Result<(Input, String)> {
    let options = DecodeOptions::default().with_lossy(lossy);
    match file {
        Some(path) if path != Path::new("-") => {
            let name = path.display().to_string();
            let meta = std::fs::metadata(path).map_err(|e| tolk::Error::io(path, e))?;
            if meta.is_file() && !stream.streams(meta.len()) {
                return Ok((Input::Whole(input::read_file(path, &options)?), name));
            }
            let file = std::fs::File::open(path).map_err(|e| tolk::Error::io(path, e))?;
            if meta.is_file() {
                let checked = input::check_file(path, &options)?;
                let blocks = BlockReader::new(
                    Box::new(file) as Box<dyn Read>,
                    &name,
                    &options,
                    stream.block_bytes,
                );
                let checked = Some(checked);
                let blocks = Box::new(blocks);
                return Ok((Input::Stream { blocks, checked }, name));
            }
            // A pipe or a device: its size is known only by reading it.
            let input = read_head(Box::new(file), &name, &options, stream)?;
            Ok((input, name))
        }
        _ => {
            let stdin = std::io::stdin();
            if file.is_none() && stdin.is_terminal() {
                anyhow::bail!(
                    "no input: give a FILE, or pipe text in (`-` reads a terminal until end of input)"
                );
            }
            let name = "<stdin>".to_string();
            let input = read_head(Box::new(stdin), &name, &options, stream)?;
            Ok((input, name))
        }
    }
}

/// Reads up to one byte past the threshold: the whole input if it is small, the head of a large
/// one (decoded at once, so that its problems show before the model loads).
fn read_head(
    mut reader: Box<dyn Read>,
    name: &str,
    options: &DecodeOptions,
    stream: &StreamOptions,
) -> anyhow::Result<Input> {
    let mut head = Vec::new();
    reader
        .by_ref()
        .take(stream.threshold.saturating_add(1))
        .read_to_end(&mut head)
        .map_err(|e| tolk::Error::io(name, e))?;
    if !stream.streams(head.len() as u64) {
        return Ok(Input::Whole(input::decode(&head, name, options)?));
    }
    let mut blocks = BlockReader::new(reader, name, options, stream.block_bytes);
    blocks.push(&head)?;
    Ok(Input::Stream {
        blocks: Box::new(blocks),
        checked: None,
    })
}

/// Writes a result to `-o PATH` (atomically) or standard output.
pub fn emit(output: Option<&PathBuf>, text: &str) -> anyhow::Result<()> {
    match output {
        Some(path) if path.as_os_str() != "-" => {
            tolk::output::write_atomic(path, text.as_bytes())?;
        }
        _ => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(text.as_bytes())?;
            stdout.flush()?;
        }
    }
    Ok(())
}
