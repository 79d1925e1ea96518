//! Progress on standard error: a bar per downloaded file and a bar for batch runs, drawn only on
//! a terminal and never with `--quiet`; log lines are written around the bar on screen
//! ([`LogWriter`]).

use std::io::Write;
use std::path::Path;
use std::sync::{Mutex, PoisonError};
use std::time::Instant;

use indicatif::{ProgressBar, ProgressStyle, WeakProgressBar};

use tolk::batch::{BatchProgress, FileReport, FileStatus};
use tolk::source::DownloadProgress;

/// The bar on screen, if any: log lines lift it out of the way while they are written.
static ON_SCREEN: Mutex<Option<WeakProgressBar>> = Mutex::new(None);

/// Makes `bar` the one that log lines suspend.
fn on_screen(bar: &ProgressBar) {
    *ON_SCREEN.lock().unwrap_or_else(PoisonError::into_inner) = Some(bar.downgrade());
}

/// Standard error for log lines: a line is written with the bar on screen (if any) cleared and
/// redrawn after it, so that logs and bars never overwrite each other.
#[derive(Debug, Clone, Copy, Default)]
pub struct LogWriter;

impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for LogWriter {
    type Writer = LogWriter;

    fn make_writer(&'a self) -> LogWriter {
        LogWriter
    }
}

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        let bar = ON_SCREEN
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .as_ref()
            .and_then(WeakProgressBar::upgrade);
        let write = || std::io::stderr().lock().write_all(buf);
        match bar {
            Some(bar) => bar.suspend(write)?,
            None => write()?,
        }
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        std::io::stderr().flush()
    }
}

fn style(template: &str) -> ProgressStyle {
    ProgressStyle::with_template(template)
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> ")
}

/// One bar per file being downloaded.
pub struct DownloadBars {
    hidden: bool,
    bar: Option<ProgressBar>,
}

impl DownloadBars {
    /// Bars that draw unless `hidden`.
    pub fn new(hidden: bool) -> Self {
        DownloadBars { hidden, bar: None }
    }
}

impl DownloadProgress for DownloadBars {
    fn start(&mut self, file: &str, size: u64) {
        if self.hidden {
            return;
        }
        let bar = ProgressBar::new(size).with_style(style(
            "{msg:>24} [{bar:30}] {bytes}/{total_bytes} {bytes_per_sec} {eta}",
        ));
        bar.set_message(file.to_string());
        on_screen(&bar);
        self.bar = Some(bar);
    }

    fn advance(&mut self, bytes: u64) {
        if let Some(bar) = &self.bar {
            bar.inc(bytes);
        }
    }

    fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish();
        }
    }
}

/// The batch bar: files done of all, sentences and tokens per second, ETA; failures are printed
/// above it as they happen.
pub struct BatchBar {
    bar: ProgressBar,
    started: Instant,
    sentences: usize,
    tokens: usize,
}

impl BatchBar {
    /// A bar that draws unless `hidden`.
    pub fn new(hidden: bool) -> Self {
        let bar = if hidden {
            ProgressBar::hidden()
        } else {
            let bar = ProgressBar::new(0).with_style(style(
                "[{elapsed_precise}] [{bar:30}] {pos}/{len} files, {msg} (ETA {eta})",
            ));
            on_screen(&bar);
            bar
        };
        BatchBar {
            bar,
            started: Instant::now(),
            sentences: 0,
            tokens: 0,
        }
    }

    /// Removes the bar.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

impl BatchProgress for BatchBar {
    fn planned(&mut self, total: usize) {
        self.bar.set_length(total as u64);
        self.started = Instant::now();
        self.bar.set_message("starting");
    }

    fn file_started(&mut self, _input: &Path) {}

    fn file_finished(&mut self, file: &FileReport) {
        if file.status == FileStatus::Failed {
            self.bar.println(super::failure_line(file));
        }
        self.sentences += file.sentences;
        self.tokens += file.source_tokens + file.target_tokens;
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        self.bar.set_message(format!(
            "{:.1} sentences/s, {:.0} tokens/s",
            self.sentences as f64 / secs,
            self.tokens as f64 / secs
        ));
        self.bar.inc(1);
    }
}
