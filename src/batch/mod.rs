//! Batch processing of a directory of articles: [`BatchRunner`] translates every matching file
//! under an input directory into a mirrored tree under an output directory, with one loaded
//! [`Pipeline`](crate::pipeline::Pipeline), and reports what it did.
//!
//! It is built to be interrupted and run again:
//!
//! - **Atomic outputs.** Each output is written to a hidden temporary file next to it and renamed
//!   into place ([`AtomicFile`](crate::fsutil::AtomicFile)), so a run killed at any moment (Ctrl-C, `SIGKILL`, a full
//!   machine) leaves complete outputs or none, never half of one. A killed run's temporary files
//!   are hidden (`.NAME.tolk-tmp-…`) and are removed by the next run.
//! - **Resumable.** An input whose output exists and is at least as new is skipped, unless
//!   [`BatchConfig::overwrite`] is set. Failed inputs have no output, so the next run retries them.
//! - **Per-file failures.** A file that cannot be read or decoded, or that the model fails on, is
//!   recorded with its reason, and the run goes on. Failures to write the output directory (read
//!   only, full) stop the run instead: every later output would be lost too.
//! - **One run per output directory.** A lock file (`.tolk-batch.lock`, or one per shard), held
//!   with the operating system's file lock, refuses a second concurrent run; the lock ends with
//!   its process, however that ends, so a killed run never blocks the next one.
//! - **Sharding.** [`Shard`] `K/N` selects a stable, disjoint slice of the inputs by a hash of
//!   each relative path, so `N` machines can share a corpus without coordination: every file
//!   belongs to exactly one shard, whatever order a machine lists the directory in.
//! - **Report.** [`BatchReport`] lists done, skipped and failed files with reasons; it is also
//!   written (atomically) to `OUT_DIR/tolk-report.json` (`tolk-report-shard-K-of-N.json` for a
//!   shard).

mod glob;
mod lock;
mod runner;
mod shard;

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Serialize, Serializer};

pub use glob::Glob;
pub use runner::BatchRunner;
pub use shard::Shard;

use crate::corpus::CorpusOptions;
use crate::document::DocumentOptions;
use crate::error::Remedy;
use crate::formats::InputFormat;
use crate::input::DecodeOptions;
use crate::output::{OutputFormat, RenderOptions};
use crate::record::ModelDescription;
use crate::stream::StreamOptions;

/// A temporary output file this old is left over from a run that is gone (writing one takes
/// milliseconds).
pub const TEMP_STALE_AFTER: Duration = Duration::from_secs(600);

/// Version of the report's JSON layout.
pub const REPORT_VERSION: u32 = 1;

/// A relative path as `a/b/c.txt` on every system.
pub(crate) fn path_key(relative: &Path) -> String {
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// What a batch run does; [`BatchRunner`] carries it out.
#[derive(Debug, Clone, PartialEq)]
pub struct BatchConfig {
    /// The directory searched (recursively) for inputs.
    pub input_dir: PathBuf,
    /// Where outputs go, mirroring the input tree. Must differ from the input directory; if it
    /// lies inside it, it is not searched.
    pub output_dir: PathBuf,
    /// Inputs are the files matching any of these. Default: `*.txt`. Hidden files and
    /// directories (names starting with `.`) are never inputs, and symbolic links to
    /// directories are not followed.
    pub globs: Vec<Glob>,
    /// Output format; outputs keep the input's relative path with the extension replaced by the
    /// format's. Default: [`OutputFormat::Text`].
    pub format: OutputFormat,
    /// Rendering options. Default: [`RenderOptions::default`].
    pub render: RenderOptions,
    /// Redo inputs whose output is already there and up to date. Default: `false`.
    pub overwrite: bool,
    /// Process only this slice of the inputs. Default: all of them.
    pub shard: Option<Shard>,
    /// How input bytes are decoded. Default: strict UTF-8 / UTF-16 with a byte-order mark.
    pub decode: DecodeOptions,
    /// Inputs larger than [`StreamOptions::threshold`] are checked whole, then translated and
    /// written block by block in bounded memory ([`crate::stream`]). Default:
    /// [`StreamOptions::default`] (over 1 MiB).
    pub stream: StreamOptions,
    /// What the inputs are; `None`: each file by its extension ([`InputFormat::of_path`]: JSON
    /// lines for `.jsonl`, else text). Default `None`.
    pub input_format: Option<InputFormat>,
    /// How JSON-lines inputs are read. Default: [`CorpusOptions::default`].
    pub corpus: CorpusOptions,
    /// HTML and Markdown inputs are written as themselves, translated in place
    /// ([`crate::formats::Markup`]), whatever [`BatchConfig::format`] says; `false`: in
    /// `format` too. Default: `true`.
    pub keep_markup: bool,
}

impl BatchConfig {
    /// A configuration with the defaults for these two directories.
    pub fn new(input_dir: impl Into<PathBuf>, output_dir: impl Into<PathBuf>) -> Self {
        BatchConfig {
            input_dir: input_dir.into(),
            output_dir: output_dir.into(),
            globs: vec![Glob::new("*.txt").expect("a valid pattern")],
            format: OutputFormat::default(),
            render: RenderOptions::default(),
            overwrite: false,
            shard: None,
            decode: DecodeOptions::default(),
            stream: StreamOptions::default(),
            input_format: None,
            corpus: CorpusOptions::default(),
            keep_markup: true,
        }
    }

    /// Sets [`BatchConfig::keep_markup`].
    #[must_use]
    pub fn with_keep_markup(mut self, keep: bool) -> Self {
        self.keep_markup = keep;
        self
    }

    /// How the input at `relative` is read and written: the library's one options value
    /// ([`crate::document`]), its output format this batch's (HTML, Markdown and JSON-lines
    /// inputs in their own with [`BatchConfig::keep_markup`]; JSON lines always as JSON lines).
    pub fn document_options(&self, relative: &Path) -> DocumentOptions {
        let input = self.input_format_of(relative);
        DocumentOptions {
            input_format: Some(input),
            output_format: Some(match input {
                InputFormat::Jsonl => OutputFormat::Jsonl,
                _ => self.format,
            }),
            own_format_wins: self.keep_markup,
            decode: self.decode,
            stream: self.stream.clone(),
            render: self.render,
            corpus: self.corpus.clone(),
            line_by_line: false,
        }
    }

    /// Sets [`BatchConfig::globs`].
    #[must_use]
    pub fn with_globs(mut self, globs: Vec<Glob>) -> Self {
        self.globs = globs;
        self
    }

    /// Sets [`BatchConfig::format`].
    #[must_use]
    pub fn with_format(mut self, format: OutputFormat) -> Self {
        self.format = format;
        self
    }

    /// Sets [`BatchConfig::render`].
    #[must_use]
    pub fn with_render(mut self, render: RenderOptions) -> Self {
        self.render = render;
        self
    }

    /// Sets [`BatchConfig::overwrite`].
    #[must_use]
    pub fn with_overwrite(mut self, overwrite: bool) -> Self {
        self.overwrite = overwrite;
        self
    }

    /// Sets [`BatchConfig::shard`].
    #[must_use]
    pub fn with_shard(mut self, shard: Option<Shard>) -> Self {
        self.shard = shard;
        self
    }

    /// Sets [`BatchConfig::decode`].
    #[must_use]
    pub fn with_decode(mut self, decode: DecodeOptions) -> Self {
        self.decode = decode;
        self
    }

    /// Sets [`BatchConfig::input_format`] and [`BatchConfig::corpus`].
    #[must_use]
    pub fn with_input(mut self, format: Option<InputFormat>, corpus: CorpusOptions) -> Self {
        self.input_format = format;
        self.corpus = corpus;
        self
    }

    /// The input format of the input at `relative`.
    pub fn input_format_of(&self, relative: &Path) -> InputFormat {
        InputFormat::choose(self.input_format, Some(relative))
    }

    /// Sets [`BatchConfig::stream`].
    #[must_use]
    pub fn with_stream(mut self, stream: StreamOptions) -> Self {
        self.stream = stream;
        self
    }

    /// The report's file name in the output directory.
    pub fn report_name(&self) -> String {
        match self.shard {
            None => "tolk-report.json".to_string(),
            Some(s) => format!("tolk-report-shard-{}-of-{}.json", s.index, s.count),
        }
    }

    /// The lock file's name in the output directory.
    pub fn lock_name(&self) -> String {
        match self.shard {
            None => ".tolk-batch.lock".to_string(),
            Some(s) => format!(".tolk-batch-shard-{}-of-{}.lock", s.index, s.count),
        }
    }

    /// The output path (relative to the output directory) for an input's relative path: its
    /// extension the output format's ([`BatchConfig::document_options`]; a combination that
    /// cannot be made keeps the batch's format, and the file fails with the reason).
    pub fn output_for(&self, relative: &Path) -> PathBuf {
        let format = self
            .document_options(relative)
            .output_for(self.input_format_of(relative))
            .unwrap_or(self.format);
        relative.with_extension(format.extension())
    }
}

/// What a run would process: from [`BatchRunner::plan`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BatchPlan {
    /// Input files relative to the input directory, sorted, in this shard.
    pub inputs: Vec<PathBuf>,
    /// Directories that could not be read (relative), with the reason.
    pub unreadable: Vec<(PathBuf, String)>,
}

/// Receives progress of a batch run; the command line draws a bar from it. Every method does
/// nothing by default, and `()` ignores everything.
pub trait BatchProgress {
    /// The inputs are listed: `total` files will be looked at.
    fn planned(&mut self, total: usize) {
        let _ = total;
    }

    /// Work on `input` (relative to the input directory) begins.
    fn file_started(&mut self, input: &Path) {
        let _ = input;
    }

    /// An input is done, skipped or failed.
    fn file_finished(&mut self, file: &FileReport) {
        let _ = file;
    }
}

impl BatchProgress for () {}

/// What happened to one input.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum FileStatus {
    /// Translated and written.
    Done,
    /// Left alone: its output is up to date.
    Skipped,
    /// Not translated; see the reason.
    Failed,
}

/// One input in the report.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FileReport {
    /// Path relative to the input directory.
    pub input: PathBuf,
    /// Path of its output relative to the output directory (written, or skipped as up to date).
    pub output: Option<PathBuf>,
    /// What happened.
    pub status: FileStatus,
    /// Why it failed or was skipped, or a remark on a done file (empty input, decoding).
    pub reason: Option<String>,
    /// For a failed file: the option that would get past its failure, if one would (`lossy`:
    /// it is not valid UTF-8).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub remedy: Option<Remedy>,
    /// Segments translated.
    pub sentences: usize,
    /// Source tokens fed to the model.
    pub source_tokens: usize,
    /// Tokens generated.
    pub target_tokens: usize,
    /// Time spent on the file.
    #[serde(rename = "seconds", serialize_with = "seconds")]
    pub elapsed: Duration,
}

/// The result of a batch run (also written to the output directory as JSON).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchReport {
    /// [`REPORT_VERSION`].
    pub report_version: u32,
    /// The input directory.
    pub input_dir: PathBuf,
    /// The output directory.
    pub output_dir: PathBuf,
    /// The slice processed, if any.
    pub shard: Option<Shard>,
    /// The output format.
    pub format: OutputFormat,
    /// The model.
    pub model: ModelDescription,
    /// Files done.
    pub done: usize,
    /// Files skipped as up to date.
    pub skipped: usize,
    /// Files that failed.
    pub failed: usize,
    /// Segments translated, over all done files.
    pub sentences: usize,
    /// Source tokens, over all done files.
    pub source_tokens: usize,
    /// Generated tokens, over all done files.
    pub target_tokens: usize,
    /// Temporary files of earlier, interrupted runs that were removed.
    pub stale_temp_files_removed: usize,
    /// Why the run stopped early (the output directory became unwritable), if it did; the
    /// inputs not reached are not listed.
    pub aborted: Option<String>,
    /// Wall-clock time of the run.
    #[serde(rename = "seconds", serialize_with = "seconds")]
    pub elapsed: Duration,
    /// Every input looked at, in processing order.
    pub files: Vec<FileReport>,
}

impl BatchReport {
    /// Whether every input is done or skipped and the run was not aborted.
    pub fn success(&self) -> bool {
        self.failed == 0 && self.aborted.is_none()
    }
}

fn seconds<S: Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}
