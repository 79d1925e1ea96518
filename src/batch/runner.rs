//! The batch runner: lists the inputs, takes the lock, translates each file through the
//! pipeline's one document path, and writes the report.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use super::lock::Lock;
use super::{BatchConfig, BatchPlan, BatchProgress, BatchReport, FileReport, FileStatus};
use super::{REPORT_VERSION, TEMP_STALE_AFTER};
use crate::document::{Document, Source};
use crate::error::{Error, Remedy, Result};
use crate::fsutil::{write_atomic, AtomicFile, TempFile};
use crate::pipeline::Pipeline;

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
    #[tracing::instrument(name = "batch", skip_all, fields(input = %self.config.input_dir.display()))]
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
        tracing::info!(
            "{} inputs into {} ({} stale temporary files removed)",
            inputs.len() + unreadable.len(),
            cfg.output_dir.display(),
            stale_temp_files_removed
        );
        progress.planned(inputs.len() + unreadable.len());
        for (dir, reason) in unreadable {
            let file = failed(dir, None, reason, Duration::ZERO);
            progress.file_finished(&file);
            report.add(file);
        }
        let mut claimed: HashMap<PathBuf, PathBuf> = HashMap::new();
        for rel in inputs {
            let _file = tracing::info_span!("file", input = %rel.display()).entered();
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
                    Err(Step::Input(reason, remedy)) => {
                        let mut file = failed(rel.clone(), None, reason, t.elapsed());
                        file.remedy = remedy;
                        file
                    }
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
                remedy: None,
                sentences: 0,
                source_tokens: 0,
                target_tokens: 0,
                elapsed: t.elapsed(),
            });
        }
        // The library's one entry: the input read and checked first (a bad byte anywhere
        // fails the file before anything is written), then translated into the output's
        // temporary file, renamed into place when done.
        let parent = out_path.parent().unwrap_or(&cfg.output_dir);
        let mut options = cfg.document_options(rel);
        options.stream.spool_dir = Some(
            cfg.stream
                .spool_dir
                .clone()
                .unwrap_or_else(|| parent.to_path_buf()),
        );
        let document = Document::open(Source::File(&in_path), &options).map_err(Step::input)?;
        std::fs::create_dir_all(parent)
            .map_err(|e| Step::Output(Error::io(parent, e).to_string()))?;
        let mut output = AtomicFile::create(&out_path).map_err(|e| Step::Output(e.to_string()))?;
        let pipeline = self.pipeline;
        let done = pipeline
            .translate_to(
                &pipeline.document_run(),
                document,
                &mut output,
                &out_path,
                &options,
                &mut (),
            )
            .map_err(|e| match e {
                // Reading the input again, or the model: this file's problem.
                Error::Io { ref path, .. } if path == &in_path => Step::input(e),
                Error::Io { .. } => Step::Output(e.to_string()),
                e => Step::Input(e.to_string(), e.remedy()),
            })?;
        output.commit().map_err(|e| Step::Output(e.to_string()))?;
        let report = &done.report;
        let mut notes = Vec::new();
        if let Some(records) = done.records {
            notes.push(format!("{records} records"));
        } else if report.segments == 0 {
            notes.push("empty input: nothing to translate".to_string());
        }
        notes.extend(report.decode.unwrap_or_default().notes());
        if let Some(n) = report.summary.as_ref().and_then(|s| s.limited_to) {
            notes.push(if done.streamed {
                format!(
                    "streamed in {} blocks; summary from the first {n} sentences",
                    report.blocks
                )
            } else {
                format!("summary from the first {n} sentences")
            });
        }
        Ok(FileReport {
            input: rel.to_path_buf(),
            output: Some(out_rel.to_path_buf()),
            status: FileStatus::Done,
            reason: (!notes.is_empty()).then(|| notes.join("; ")),
            remedy: None,
            sentences: report.sentences,
            source_tokens: report.source_tokens,
            target_tokens: report.target_tokens,
            elapsed: t.elapsed(),
        })
    }
}

/// Why one file could not be finished.
enum Step {
    /// The input is at fault: record it (with the option that would get past it) and go on.
    Input(String, Option<Remedy>),
    /// The output directory is at fault: stop.
    Output(String),
}

impl Step {
    /// An input error, without the file name (the report has it already).
    fn input(e: Error) -> Step {
        let remedy = e.remedy();
        Step::Input(brief(e), remedy)
    }
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
        remedy: None,
        sentences: 0,
        source_tokens: 0,
        target_tokens: 0,
        elapsed,
    }
}

impl BatchReport {
    /// Counts a finished file, and logs it.
    fn add(&mut self, file: FileReport) {
        let reason = file.reason.as_deref().unwrap_or("");
        let note = if reason.is_empty() {
            String::new()
        } else {
            format!(" ({reason})")
        };
        let secs = file.elapsed.as_secs_f64();
        match file.status {
            FileStatus::Done => tracing::info!(
                sentences = file.sentences,
                source_tokens = file.source_tokens,
                target_tokens = file.target_tokens,
                "done: {} in {secs:.2} s{note}",
                file.input.display()
            ),
            FileStatus::Skipped => tracing::info!("skipped: {}: {reason}", file.input.display()),
            FileStatus::Failed => tracing::info!("failed: {}: {reason}", file.input.display()),
        }
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
