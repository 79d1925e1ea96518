//! Batch processing of a directory of articles: [`BatchRunner`] translates every matching file
//! under an input directory into a mirrored tree under an output directory, with one loaded
//! [`Pipeline`], and reports what it did.
//!
//! It is built to be interrupted and run again:
//!
//! - **Atomic outputs.** Each output is written to a hidden temporary file next to it and renamed
//!   into place ([`write_atomic`]), so a run killed at any moment (Ctrl-C, `SIGKILL`, a full
//!   machine) leaves complete outputs or none, never half of one. A killed run's temporary files
//!   are hidden (`.NAME.tolk-tmp-…`) and are removed by the next run.
//! - **Resumable.** An input whose output exists and is at least as new is skipped, unless
//!   [`BatchConfig::overwrite`] is set. Failed inputs have no output, so the next run retries them.
//! - **Per-file failures.** A file that cannot be read or decoded, or that the model fails on, is
//!   recorded with its reason, and the run goes on. Failures to write the output directory (read
//!   only, full) stop the run instead: every later output would be lost too.
//! - **One run per output directory.** A lock file (`.tolk-batch.lock`, or one per shard) refuses a
//!   second concurrent run. A lock whose process has died on this machine is taken over at once;
//!   one from another machine once it has not been refreshed for [`LOCK_STALE_AFTER`] (the
//!   holder refreshes it every [`LOCK_HEARTBEAT`]).
//! - **Sharding.** [`Shard`] `K/N` selects a stable, disjoint slice of the inputs by a hash of
//!   each relative path, so `N` machines can share a corpus without coordination: every file
//!   belongs to exactly one shard, whatever order a machine lists the directory in.
//! - **Report.** [`BatchReport`] lists done, skipped and failed files with reasons; it is also
//!   written (atomically) to `OUT_DIR/tolk-report.json` (`tolk-report-shard-K-of-N.json` for a
//!   shard).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use serde::{Serialize, Serializer};

use crate::error::{Error, Result};
use crate::input::{self, DecodeOptions, Encoding};
use crate::output::{
    fnv1a, host_name, host_tag, process_alive, render, write_atomic, AtomicFile, OutputFormat,
    RenderOptions, StreamWriter, TempFile,
};
use crate::pipeline::{ModelDescription, Pipeline};
use crate::stream::{self, BlockReader, StreamOptions};

/// How often a running batch refreshes its lock file.
pub const LOCK_HEARTBEAT: Duration = Duration::from_secs(20);

/// A lock file not refreshed for this long belongs to a run that is gone.
pub const LOCK_STALE_AFTER: Duration = Duration::from_secs(120);

/// A temporary output file this old is left over from a run that is gone (writing one takes
/// milliseconds).
pub const TEMP_STALE_AFTER: Duration = Duration::from_secs(600);

/// Version of the report's JSON layout.
pub const REPORT_VERSION: u32 = 1;

/// One slice of a corpus: the files whose relative-path hash is `index` modulo `count`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Shard {
    /// Which slice, from 0 to `count - 1`.
    pub index: usize,
    /// How many slices.
    pub count: usize,
}

impl Shard {
    /// Slice `index` of `count` (`index` counts from 0).
    pub fn new(index: usize, count: usize) -> Result<Shard> {
        if count == 0 || index >= count {
            return Err(Error::option(
                "shard",
                format!(
                    "{index}/{count}: K/N needs N >= 1 and 0 <= K < N (K counts from 0, as JOB_COMPLETION_INDEX and SLURM_ARRAY_TASK_ID with --array=0-(N-1) do)"
                ),
            ));
        }
        Ok(Shard { index, count })
    }

    /// Whether the file at `relative` (a path relative to the input directory) is in this
    /// slice. Depends only on the path's components, joined with `/`.
    pub fn contains(&self, relative: &Path) -> bool {
        let key = path_key(relative);
        // FNV's low bits are weak for similar names; a final mix spreads them.
        let mut h = fnv1a(key.as_bytes());
        h ^= h >> 33;
        h = h.wrapping_mul(0xff51_afd7_ed55_8ccd);
        h ^= h >> 33;
        (h % self.count as u64) as usize == self.index
    }
}

impl FromStr for Shard {
    type Err = Error;

    /// Parses `K/N`.
    fn from_str(s: &str) -> Result<Shard> {
        let bad = || {
            Error::option(
                "shard",
                format!("`{s}` is not K/N (for example 0/4: the first of four slices)"),
            )
        };
        let (k, n) = s.trim().split_once('/').ok_or_else(bad)?;
        let k = k.trim().parse().map_err(|_| bad())?;
        let n = n.trim().parse().map_err(|_| bad())?;
        Shard::new(k, n)
    }
}

impl fmt::Display for Shard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.index, self.count)
    }
}

impl Serialize for Shard {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A relative path as `a/b/c.txt` on every system.
fn path_key(relative: &Path) -> String {
    relative
        .components()
        .map(|c| c.as_os_str().to_string_lossy())
        .collect::<Vec<_>>()
        .join("/")
}

/// A file-name pattern: `*` (any characters but `/`), `?` (one character but `/`), `**` (any
/// characters, `/` included; `**/` also matches no directory at all), `[abc]`, `[a-z]`, `[!a]`.
/// A pattern without `/` is matched against the file name, one with `/` against the path
/// relative to the input directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Glob {
    text: String,
    tokens: Vec<Token>,
    whole_path: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Token {
    Char(char),
    One,
    Star,
    DeepStar,
    DeepDir,
    Class(Vec<(char, char)>, bool),
}

impl Glob {
    /// Parses a pattern.
    pub fn new(pattern: &str) -> Result<Glob> {
        let chars: Vec<char> = pattern.chars().collect();
        let mut tokens = Vec::new();
        let mut i = 0;
        while let Some(&c) = chars.get(i) {
            i += 1;
            match c {
                '?' => tokens.push(Token::One),
                '*' if chars.get(i) == Some(&'*') => {
                    i += 1;
                    if chars.get(i) == Some(&'/') {
                        i += 1;
                        tokens.push(Token::DeepDir);
                    } else {
                        tokens.push(Token::DeepStar);
                    }
                }
                '*' => tokens.push(Token::Star),
                '[' => {
                    let negated = matches!(chars.get(i), Some('!' | '^'));
                    if negated {
                        i += 1;
                    }
                    let mut ranges = Vec::new();
                    let mut first = true;
                    loop {
                        let Some(&a) = chars.get(i) else {
                            return Err(Error::option(
                                "glob",
                                format!("`{pattern}`: `[` without a closing `]`"),
                            ));
                        };
                        i += 1;
                        if a == ']' && !first {
                            break;
                        }
                        first = false;
                        if chars.get(i) == Some(&'-') && chars.get(i + 1).is_some_and(|&b| b != ']')
                        {
                            let b = chars.get(i + 1).copied().unwrap_or(a);
                            i += 2;
                            ranges.push((a, b));
                        } else {
                            ranges.push((a, a));
                        }
                    }
                    tokens.push(Token::Class(ranges, negated));
                }
                '\\' => {
                    let escaped = chars.get(i).copied().unwrap_or('\\');
                    i += 1;
                    tokens.push(Token::Char(escaped));
                }
                c => tokens.push(Token::Char(c)),
            }
        }
        Ok(Glob {
            text: pattern.to_string(),
            whole_path: pattern.contains('/'),
            tokens,
        })
    }

    /// `*.txt`, the default.
    fn default_pattern() -> Glob {
        Glob {
            text: "*.txt".to_string(),
            tokens: vec![
                Token::Star,
                Token::Char('.'),
                Token::Char('t'),
                Token::Char('x'),
                Token::Char('t'),
            ],
            whole_path: false,
        }
    }

    /// The pattern as written.
    pub fn as_str(&self) -> &str {
        &self.text
    }

    /// Whether the file at `relative` matches.
    pub fn matches(&self, relative: &Path) -> bool {
        let key = path_key(relative);
        let subject = if self.whole_path {
            key.as_str()
        } else {
            key.rsplit('/').next().unwrap_or_default()
        };
        let text: Vec<char> = subject.chars().collect();
        let m = text.len();
        // reach[j]: the first i tokens can match text[..j].
        let mut reach = vec![false; m + 1];
        reach[0] = true;
        for token in &self.tokens {
            let mut next = vec![false; m + 1];
            for j in 0..=m {
                if !reach[j] {
                    continue;
                }
                match token {
                    Token::Star => {
                        next[j] = true;
                        for k in j..m {
                            if text[k] == '/' {
                                break;
                            }
                            next[k + 1] = true;
                        }
                    }
                    Token::DeepStar => next[j..].iter_mut().for_each(|x| *x = true),
                    Token::DeepDir => {
                        next[j] = true;
                        for k in j..m {
                            if text[k] == '/' {
                                next[k + 1] = true;
                            }
                        }
                    }
                    Token::One => {
                        if j < m && text[j] != '/' {
                            next[j + 1] = true;
                        }
                    }
                    Token::Char(c) => {
                        if j < m && text[j] == *c {
                            next[j + 1] = true;
                        }
                    }
                    Token::Class(ranges, negated) => {
                        if j < m && text[j] != '/' {
                            let inside = ranges.iter().any(|&(a, b)| a <= text[j] && text[j] <= b);
                            if inside != *negated {
                                next[j + 1] = true;
                            }
                        }
                    }
                }
            }
            reach = next;
        }
        reach[m]
    }
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
}

impl BatchConfig {
    /// A configuration with the defaults for these two directories.
    pub fn new(input_dir: impl Into<PathBuf>, output_dir: impl Into<PathBuf>) -> Self {
        BatchConfig {
            input_dir: input_dir.into(),
            output_dir: output_dir.into(),
            globs: vec![Glob::default_pattern()],
            format: OutputFormat::default(),
            render: RenderOptions::default(),
            overwrite: false,
            shard: None,
            decode: DecodeOptions::default(),
            stream: StreamOptions::default(),
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

    /// The output path (relative to the output directory) for an input's relative path.
    pub fn output_for(&self, relative: &Path) -> PathBuf {
        relative.with_extension(self.format.extension())
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

/// Runs a [`BatchConfig`] with one [`Pipeline`].
///
/// ```no_run
/// use tolk::batch::{BatchConfig, BatchRunner};
/// use tolk::pipeline::Pipeline;
///
/// let pipeline = Pipeline::builder().build()?;
/// let report = BatchRunner::new(&pipeline, BatchConfig::new("articles", "english")).run(&mut ())?;
/// println!("{} done, {} skipped, {} failed", report.done, report.skipped, report.failed);
/// # Ok::<(), tolk::Error>(())
/// ```
#[derive(Debug)]
pub struct BatchRunner<'p> {
    pipeline: &'p Pipeline,
    config: BatchConfig,
}

impl<'p> BatchRunner<'p> {
    /// A runner for `config` using `pipeline`.
    pub fn new(pipeline: &'p Pipeline, config: BatchConfig) -> Self {
        BatchRunner { pipeline, config }
    }

    /// The configuration.
    pub fn config(&self) -> &BatchConfig {
        &self.config
    }

    /// The inputs this run would look at (relative paths, sorted, this shard only), and the
    /// directories that could not be read.
    pub fn plan(&self) -> Result<BatchPlan> {
        let input = &self.config.input_dir;
        let meta = std::fs::metadata(input).map_err(|e| Error::io(input, e))?;
        if !meta.is_dir() {
            return Err(Error::io(
                input,
                std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a directory"),
            ));
        }
        let skip = std::fs::canonicalize(&self.config.output_dir).ok();
        let mut files = Vec::new();
        let mut unreadable = Vec::new();
        walk(
            input,
            Path::new(""),
            skip.as_deref(),
            &mut files,
            &mut unreadable,
        );
        files.retain(|rel| {
            self.config.globs.iter().any(|g| g.matches(rel))
                && self.config.shard.is_none_or(|s| s.contains(rel))
        });
        Ok(BatchPlan {
            inputs: files,
            unreadable,
        })
    }

    /// Processes every input. `Err` means nothing could run (the input directory is missing,
    /// the output directory cannot be created or locked); per-file problems are in the report.
    pub fn run(&self, progress: &mut dyn BatchProgress) -> Result<BatchReport> {
        let started = Instant::now();
        let cfg = &self.config;
        let input_canon =
            std::fs::canonicalize(&cfg.input_dir).map_err(|e| Error::io(&cfg.input_dir, e))?;
        if std::fs::canonicalize(&cfg.output_dir).is_ok_and(|o| o == input_canon) {
            return Err(Error::option(
                "output",
                format!(
                    "{} is the input directory; outputs need a directory of their own",
                    cfg.output_dir.display()
                ),
            ));
        }
        std::fs::create_dir_all(&cfg.output_dir).map_err(|e| Error::io(&cfg.output_dir, e))?;
        let _lock = Lock::acquire(&cfg.output_dir.join(cfg.lock_name()))?;
        let stale_temp_files_removed = remove_stale_temp_files(&cfg.output_dir);
        let BatchPlan { inputs, unreadable } = self.plan()?;

        let mut report = BatchReport {
            report_version: REPORT_VERSION,
            input_dir: cfg.input_dir.clone(),
            output_dir: cfg.output_dir.clone(),
            shard: cfg.shard,
            format: cfg.format,
            model: self.pipeline.model().clone(),
            done: 0,
            skipped: 0,
            failed: 0,
            sentences: 0,
            source_tokens: 0,
            target_tokens: 0,
            stale_temp_files_removed,
            aborted: None,
            elapsed: Duration::ZERO,
            files: Vec::new(),
        };
        progress.planned(inputs.len() + unreadable.len());
        for (dir, reason) in unreadable {
            let file = failed(dir, None, reason, Duration::ZERO);
            progress.file_finished(&file);
            report.add(file);
        }
        let mut claimed: HashMap<PathBuf, PathBuf> = HashMap::new();
        for rel in inputs {
            progress.file_started(&rel);
            let t = Instant::now();
            let out_rel = cfg.output_for(&rel);
            let file = if let Some(first) = claimed.get(&out_rel) {
                failed(
                    rel.clone(),
                    None,
                    format!(
                        "its output {} is already the output of {}",
                        out_rel.display(),
                        first.display()
                    ),
                    t.elapsed(),
                )
            } else {
                claimed.insert(out_rel.clone(), rel.clone());
                match self.process(&rel, &out_rel) {
                    Ok(file) => file,
                    Err(Step::Input(reason)) => failed(rel.clone(), None, reason, t.elapsed()),
                    Err(Step::Output(reason)) => {
                        let file = failed(rel.clone(), Some(out_rel), reason.clone(), t.elapsed());
                        progress.file_finished(&file);
                        report.add(file);
                        report.aborted = Some(format!(
                            "cannot write to the output directory, stopping: {reason}"
                        ));
                        break;
                    }
                }
            };
            progress.file_finished(&file);
            report.add(file);
        }
        report.elapsed = started.elapsed();
        let json = serde_json::to_vec_pretty(&report).map_err(|e| {
            Error::option("report", format!("cannot write the report as JSON: {e}"))
        })?;
        if let Err(e) = write_atomic(&cfg.output_dir.join(cfg.report_name()), &json) {
            if report.aborted.is_none() {
                report.aborted = Some(format!("cannot write the report: {e}"));
            }
        }
        Ok(report)
    }

    /// Translates one input; `Err(Step::Output)` means the output directory is unusable.
    fn process(&self, rel: &Path, out_rel: &Path) -> std::result::Result<FileReport, Step> {
        let t = Instant::now();
        let cfg = &self.config;
        let in_path = cfg.input_dir.join(rel);
        let out_path = cfg.output_dir.join(out_rel);
        if !cfg.overwrite && up_to_date(&in_path, &out_path) {
            return Ok(FileReport {
                input: rel.to_path_buf(),
                output: Some(out_rel.to_path_buf()),
                status: FileStatus::Skipped,
                reason: Some("its output is up to date (overwrite to redo it)".to_string()),
                sentences: 0,
                source_tokens: 0,
                target_tokens: 0,
                elapsed: t.elapsed(),
            });
        }
        let size = std::fs::metadata(&in_path).map_or(0, |m| m.len());
        if cfg.stream.streams(size) {
            return self.process_streamed(rel, out_rel, t);
        }
        let decoded = input::read_file(&in_path, &cfg.decode).map_err(|e| Step::Input(brief(e)))?;
        let output = self
            .pipeline
            .run(&decoded.text)
            .map_err(|e| Step::Input(e.to_string()))?;
        let rendered =
            render(&output, cfg.format, &cfg.render).map_err(|e| Step::Input(e.to_string()))?;
        if let Some(parent) = out_path.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| Step::Output(Error::io(parent, e).to_string()))?;
        }
        write_atomic(&out_path, rendered.as_bytes()).map_err(|e| Step::Output(e.to_string()))?;
        let mut notes = Vec::new();
        if decoded.is_blank() {
            notes.push("empty input: nothing to translate".to_string());
        }
        match decoded.encoding {
            Encoding::Utf16Le => notes.push("decoded from UTF-16LE".to_string()),
            Encoding::Utf16Be => notes.push("decoded from UTF-16BE".to_string()),
            _ => {}
        }
        if decoded.replaced > 0 {
            notes.push(format!(
                "{} invalid byte sequences replaced",
                decoded.replaced
            ));
        }
        Ok(FileReport {
            input: rel.to_path_buf(),
            output: Some(out_rel.to_path_buf()),
            status: FileStatus::Done,
            reason: (!notes.is_empty()).then(|| notes.join("; ")),
            sentences: output.translated_sentences(),
            source_tokens: output.source_tokens(),
            target_tokens: output.target_tokens(),
            elapsed: t.elapsed(),
        })
    }
}

impl BatchRunner<'_> {
    /// Translates one large input block by block: checked whole first (a bad byte anywhere fails
    /// the file before anything is written), then streamed into its output's temporary file,
    /// which is renamed into place at the end.
    fn process_streamed(
        &self,
        rel: &Path,
        out_rel: &Path,
        started: Instant,
    ) -> std::result::Result<FileReport, Step> {
        let cfg = &self.config;
        let in_path = cfg.input_dir.join(rel);
        let out_path = cfg.output_dir.join(out_rel);
        let stats = input::check_file(&in_path, &cfg.decode).map_err(|e| Step::Input(brief(e)))?;
        let file = std::fs::File::open(&in_path)
            .map_err(|e| Step::Input(brief(Error::io(&in_path, e))))?;
        let parent = out_path.parent().unwrap_or(&cfg.output_dir);
        std::fs::create_dir_all(parent)
            .map_err(|e| Step::Output(Error::io(parent, e).to_string()))?;
        let output = AtomicFile::create(&out_path).map_err(|e| Step::Output(e.to_string()))?;
        let spool = cfg.stream.spool_dir.as_deref().unwrap_or(parent);
        let mut writer = StreamWriter::new(output, &out_path, cfg.format, &cfg.render, Some(spool))
            .map_err(|e| Step::Output(e.to_string()))?;
        let mut blocks = BlockReader::new(
            file,
            &in_path.display().to_string(),
            &cfg.decode,
            cfg.stream.block_bytes,
        );
        let report = stream::translate(self.pipeline, &mut blocks, &mut writer, &cfg.stream)
            .map_err(|e| match e {
                // Reading the input again, or the model: this file's problem.
                Error::Io { ref path, .. } if path == &in_path => Step::Input(brief(e)),
                Error::Io { .. } => Step::Output(e.to_string()),
                e => Step::Input(e.to_string()),
            })?;
        writer
            .into_inner()
            .commit()
            .map_err(|e| Step::Output(e.to_string()))?;
        let mut notes = Vec::new();
        if report.segments == 0 {
            notes.push("empty input: nothing to translate".to_string());
        }
        match stats.encoding {
            Encoding::Utf16Le => notes.push("decoded from UTF-16LE".to_string()),
            Encoding::Utf16Be => notes.push("decoded from UTF-16BE".to_string()),
            _ => {}
        }
        if stats.replaced > 0 {
            notes.push(format!(
                "{} invalid byte sequences replaced",
                stats.replaced
            ));
        }
        if let Some(n) = report.summary.as_ref().and_then(|s| s.limited_to) {
            notes.push(format!(
                "streamed in {} blocks; summary from the first {n} sentences",
                report.blocks
            ));
        }
        Ok(FileReport {
            input: rel.to_path_buf(),
            output: Some(out_rel.to_path_buf()),
            status: FileStatus::Done,
            reason: (!notes.is_empty()).then(|| notes.join("; ")),
            sentences: report.sentences,
            source_tokens: report.source_tokens,
            target_tokens: report.target_tokens,
            elapsed: started.elapsed(),
        })
    }
}

/// Why one file could not be finished.
enum Step {
    /// The input is at fault: record it and go on.
    Input(String),
    /// The output directory is at fault: stop.
    Output(String),
}

/// An input error without the file name (the report has it already).
fn brief(e: Error) -> String {
    match e {
        Error::Input { message, .. } => message,
        Error::Io { source, .. } => source.to_string(),
        other => other.to_string(),
    }
}

fn failed(
    input: PathBuf,
    output: Option<PathBuf>,
    reason: String,
    elapsed: Duration,
) -> FileReport {
    FileReport {
        input,
        output,
        status: FileStatus::Failed,
        reason: Some(reason),
        sentences: 0,
        source_tokens: 0,
        target_tokens: 0,
        elapsed,
    }
}

impl BatchReport {
    fn add(&mut self, file: FileReport) {
        match file.status {
            FileStatus::Done => {
                self.done += 1;
                self.sentences += file.sentences;
                self.source_tokens += file.source_tokens;
                self.target_tokens += file.target_tokens;
            }
            FileStatus::Skipped => self.skipped += 1,
            FileStatus::Failed => self.failed += 1,
        }
        self.files.push(file);
    }
}

/// Whether `output` is a file modified no earlier than `input`.
fn up_to_date(input: &Path, output: &Path) -> bool {
    let modified = |p: &Path| {
        std::fs::metadata(p)
            .ok()
            .filter(|m| m.is_file())
            .and_then(|m| m.modified().ok())
    };
    match (modified(input), modified(output)) {
        (Some(i), Some(o)) => o >= i,
        _ => false,
    }
}

/// Collects the regular files under `root/rel`, sorted, skipping hidden entries, `skip` (the
/// output directory) and links to directories.
fn walk(
    root: &Path,
    rel: &Path,
    skip: Option<&Path>,
    files: &mut Vec<PathBuf>,
    unreadable: &mut Vec<(PathBuf, String)>,
) {
    let dir = root.join(rel);
    if skip.is_some_and(|s| std::fs::canonicalize(&dir).is_ok_and(|d| d == s)) {
        return;
    }
    let entries = match std::fs::read_dir(&dir) {
        Ok(entries) => entries,
        Err(e) => {
            unreadable.push((rel.to_path_buf(), format!("cannot read the directory: {e}")));
            return;
        }
    };
    let mut names: Vec<(std::ffi::OsString, std::fs::FileType)> = entries
        .filter_map(|e| e.ok())
        .filter_map(|e| e.file_type().ok().map(|t| (e.file_name(), t)))
        .filter(|(name, _)| !name.to_string_lossy().starts_with('.'))
        .collect();
    names.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, kind) in names {
        let child = rel.join(&name);
        if kind.is_dir() {
            walk(root, &child, skip, files, unreadable);
        } else if kind.is_file() || (kind.is_symlink() && root.join(&child).is_file()) {
            files.push(child);
        }
    }
}

/// Removes temporary outputs of runs that are gone; returns how many.
fn remove_stale_temp_files(dir: &Path) -> usize {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return 0;
    };
    let mut removed = 0;
    for entry in entries.filter_map(|e| e.ok()) {
        let path = entry.path();
        let Ok(kind) = entry.file_type() else {
            continue;
        };
        if kind.is_dir() {
            removed += remove_stale_temp_files(&path);
            continue;
        }
        let name = entry.file_name();
        let Some(temp) = TempFile::parse(&name.to_string_lossy()) else {
            continue;
        };
        let old = entry
            .metadata()
            .and_then(|m| m.modified())
            .ok()
            .and_then(|m| SystemTime::now().duration_since(m).ok())
            .is_some_and(|age| age > TEMP_STALE_AFTER);
        if (temp.is_orphan_here() || old) && std::fs::remove_file(&path).is_ok() {
            removed += 1;
        }
    }
    removed
}

/// What a lock file holds.
#[derive(Debug, Serialize, serde::Deserialize)]
struct LockInfo {
    pid: u32,
    host: String,
    host_name: String,
    started_unix: u64,
    /// [`run_id`] of the process that wrote it (0 in locks of older versions).
    #[serde(default)]
    run: u64,
}

/// A random number for this process, told apart from an earlier process with the same id and
/// host name: a container restarted in place (a Kubernetes Indexed Job's replacement pod has its
/// predecessor's host name) usually gives tolk the same process id again.
fn run_id() -> u64 {
    use std::hash::BuildHasher;
    static ID: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *ID.get_or_init(|| std::collections::hash_map::RandomState::new().hash_one(std::process::id()))
}

/// A held lock file; dropping it stops the heartbeat and removes the file.
struct Lock {
    path: PathBuf,
    stop: Arc<AtomicBool>,
    heartbeat: Option<JoinHandle<()>>,
}

impl Lock {
    fn acquire(path: &Path) -> Result<Lock> {
        let info = LockInfo {
            pid: std::process::id(),
            host: host_tag(),
            host_name: host_name(),
            started_unix: SystemTime::now()
                .duration_since(SystemTime::UNIX_EPOCH)
                .map_or(0, |d| d.as_secs()),
            run: run_id(),
        };
        let body = serde_json::to_vec(&info).unwrap_or_default();
        for attempt in 0..2 {
            match std::fs::OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
            {
                Ok(mut file) => {
                    use std::io::Write;
                    file.write_all(&body)
                        .and_then(|()| file.sync_all())
                        .map_err(|e| {
                            let _ = std::fs::remove_file(path);
                            Error::io(path, e)
                        })?;
                    return Ok(Lock::hold(path));
                }
                Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists && attempt == 0 => {
                    if let Some(holder) = live_holder(path) {
                        return Err(Error::io(
                            path,
                            std::io::Error::new(
                                std::io::ErrorKind::AlreadyExists,
                                format!(
                                    "another tolk batch run ({holder}) is writing to this output directory; wait for it to finish, or delete this lock file if that run is gone"
                                ),
                            ),
                        ));
                    }
                    // The holder is gone: take the lock over.
                    let _ = std::fs::remove_file(path);
                }
                Err(e) => return Err(Error::io(path, e)),
            }
        }
        Err(Error::io(
            path,
            std::io::Error::new(
                std::io::ErrorKind::AlreadyExists,
                "another run took the lock at the same moment",
            ),
        ))
    }

    fn hold(path: &Path) -> Lock {
        let stop = Arc::new(AtomicBool::new(false));
        let heartbeat = {
            let stop = Arc::clone(&stop);
            let path = path.to_path_buf();
            std::thread::Builder::new()
                .name("tolk-lock-heartbeat".into())
                .spawn(move || {
                    while !stop.load(Ordering::SeqCst) {
                        std::thread::park_timeout(LOCK_HEARTBEAT);
                        if stop.load(Ordering::SeqCst) {
                            break;
                        }
                        if let Ok(f) = std::fs::OpenOptions::new().append(true).open(&path) {
                            let _ = f.set_modified(SystemTime::now());
                        }
                    }
                })
                .ok()
        };
        Lock {
            path: path.to_path_buf(),
            stop,
            heartbeat,
        }
    }
}

impl Drop for Lock {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(h) = self.heartbeat.take() {
            h.thread().unpark();
            let _ = h.join();
        }
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Describes the run holding the lock at `path`, or `None` if that run is gone.
fn live_holder(path: &Path) -> Option<String> {
    let age = std::fs::metadata(path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|m| SystemTime::now().duration_since(m).ok())
        .unwrap_or_default();
    let info: Option<LockInfo> = std::fs::read(path)
        .ok()
        .and_then(|b| serde_json::from_slice(&b).ok());
    match info {
        Some(info) => {
            let alive = if info.host == host_tag() && info.pid == std::process::id() {
                // Our own id: held by this process, or left by an earlier one that had that id.
                Some(info.run == run_id())
            } else if info.host == host_tag() {
                process_alive(info.pid)
            } else {
                None
            };
            let alive = alive.unwrap_or(age < LOCK_STALE_AFTER);
            alive.then(|| format!("process {} on {}", info.pid, info.host_name))
        }
        // Unreadable or half written: a run is starting right now, unless it is old.
        None => (age < LOCK_STALE_AFTER).then(|| "a run that is starting".to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(pattern: &str, path: &str) -> bool {
        Glob::new(pattern).unwrap().matches(Path::new(path))
    }

    #[test]
    fn globs() {
        assert!(m("*.txt", "a.txt"));
        assert!(m("*.txt", "deep/dir/a.txt"), "no slash: the file name");
        assert!(!m("*.txt", "a.txt.bak"));
        assert!(m("*.t?t", "a.tzt"));
        assert!(m("[ab]*.txt", "b1.txt"));
        assert!(!m("[!ab]*.txt", "b1.txt"));
        assert!(m("[a-c].txt", "b.txt"));
        assert!(m("2024/*.txt", "2024/x.txt"));
        assert!(!m("2024/*.txt", "2024/jan/x.txt"));
        assert!(m("2024/**/*.txt", "2024/x.txt"));
        assert!(m("2024/**/*.txt", "2024/jan/x.txt"));
        assert!(m("**.txt", "a/b/c.txt"));
        assert!(m("*", "anything"));
        assert!(m(r"\*.txt", "*.txt"));
        assert!(!m(r"\*.txt", "a.txt"));
        assert!(Glob::new("[abc").is_err());
    }

    #[test]
    fn shards_parse_and_partition() {
        assert_eq!(
            "1/4".parse::<Shard>().unwrap(),
            Shard { index: 1, count: 4 }
        );
        assert!("4/4".parse::<Shard>().is_err());
        assert!("0/0".parse::<Shard>().is_err());
        assert!("x".parse::<Shard>().is_err());
        let shards: Vec<Shard> = (0..3).map(|k| Shard::new(k, 3).unwrap()).collect();
        let mut sizes = [0; 3];
        for i in 0..300 {
            let p = PathBuf::from(format!("dir{}/article-{i}.txt", i % 7));
            let owners: Vec<usize> = shards
                .iter()
                .filter(|s| s.contains(&p))
                .map(|s| s.index)
                .collect();
            assert_eq!(owners.len(), 1, "{p:?}");
            sizes[owners[0]] += 1;
        }
        assert!(sizes.iter().all(|&n| n > 70), "{sizes:?}");
        // Stable: a fixed answer for a fixed path, whatever the machine.
        let fixed: Vec<bool> = (0..4)
            .map(|k| Shard::new(k, 4).unwrap().contains(Path::new("a/b.txt")))
            .collect();
        assert_eq!(fixed.iter().filter(|&&x| x).count(), 1);
    }

    #[test]
    fn lock_refuses_a_second_holder_and_takes_over_a_dead_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(".lock");
        let lock = Lock::acquire(&path).unwrap();
        let e = Lock::acquire(&path).err().unwrap().to_string();
        assert!(e.contains("another tolk batch run (process"), "{e}");
        drop(lock);
        assert!(!path.exists());
        // A lock left by a process that is gone.
        let dead = LockInfo {
            pid: u32::MAX - 1,
            host: host_tag(),
            host_name: host_name(),
            started_unix: 0,
            run: 0,
        };
        std::fs::write(&path, serde_json::to_vec(&dead).unwrap()).unwrap();
        if process_alive(dead.pid) == Some(false) {
            let lock = Lock::acquire(&path).unwrap();
            let info: LockInfo = serde_json::from_slice(&std::fs::read(&path).unwrap()).unwrap();
            assert_eq!(info.pid, std::process::id());
            drop(lock);
        }
        // One left by an earlier process with our id and host name (a restarted container).
        let earlier = LockInfo {
            pid: std::process::id(),
            host: host_tag(),
            host_name: host_name(),
            started_unix: 0,
            run: 0,
        };
        std::fs::write(&path, serde_json::to_vec(&earlier).unwrap()).unwrap();
        let lock = Lock::acquire(&path).unwrap();
        assert!(Lock::acquire(&path).is_err(), "this process holds it now");
        drop(lock);
        // One from another machine: held while fresh.
        let other = LockInfo {
            pid: 1,
            host: "ffffffff".into(),
            host_name: "elsewhere".into(),
            started_unix: 0,
            run: 0,
        };
        std::fs::write(&path, serde_json::to_vec(&other).unwrap()).unwrap();
        let e = Lock::acquire(&path).err().unwrap().to_string();
        assert!(e.contains("process 1 on elsewhere"), "{e}");
        let old = SystemTime::now() - LOCK_STALE_AFTER - Duration::from_secs(5);
        std::fs::File::options()
            .append(true)
            .open(&path)
            .unwrap()
            .set_modified(old)
            .unwrap();
        drop(Lock::acquire(&path).unwrap());
    }
}
