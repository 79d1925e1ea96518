//! Progress on standard error: a bar per downloaded file, a bar for batch runs and one for a
//! document that takes a while, drawn only on a terminal and never with `--quiet`; log lines
//! are written around the bar on screen ([`LogWriter`]).

use std::io::Write;
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle, WeakProgressBar};

use tolk::batch::{BatchProgress, FileReport, FileStatus};
use tolk::pipeline::{DocumentPosition, DocumentProgress};
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

/// How long a document runs before its bar appears: quick ones never show one.
const SHOW_AFTER: Duration = Duration::from_millis(1500);

/// The bar of `tolk translate`: text done of the whole (or, for a large stream, a spinner with
/// the text done), sentences per second and ETA. It appears only once the document has taken
/// [`SHOW_AFTER`], and is cleared once the whole text is translated (before its last block is
/// written), by [`DocumentBar::finish`], by dropping it, or by the first write of a
/// [`ClearsBar`] writer.
pub struct DocumentBar {
    shared: Option<Arc<Shared>>,
    started: Instant,
    blocks: usize,
}

struct Shared {
    bar: ProgressBar,
    /// Showing and finishing both hold this lock, so a finished bar is never shown afterwards.
    state: Mutex<Visibility>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Visibility {
    Waiting,
    Shown,
    Done,
}

impl Shared {
    fn finish(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        if *state != Visibility::Done {
            *state = Visibility::Done;
            self.bar.finish_and_clear();
        }
    }
}

impl Drop for Shared {
    fn drop(&mut self) {
        self.finish();
    }
}

impl DocumentBar {
    /// A bar for a document of `total_bytes` of text (`None`: unknown) that draws unless
    /// `hidden`.
    pub fn new(hidden: bool, total_bytes: Option<u64>) -> Self {
        let started = Instant::now();
        if hidden {
            return DocumentBar {
                shared: None,
                started,
                blocks: 0,
            };
        }
        let bar = ProgressBar::with_draw_target(total_bytes, ProgressDrawTarget::hidden());
        bar.set_style(if total_bytes.is_some() {
            style("[{elapsed_precise}] [{wide_bar}] {percent:>3}% {msg} (ETA {eta})")
        } else {
            style("[{elapsed_precise}] {spinner} {bytes} of text, {msg}")
        });
        bar.set_message("starting");
        let shared = Arc::new(Shared {
            bar,
            state: Mutex::new(Visibility::Waiting),
        });
        let weak: Weak<Shared> = Arc::downgrade(&shared);
        // No bar at all is the fallback if the thread cannot start.
        let _ = std::thread::Builder::new()
            .name("progress".into())
            .spawn(move || {
                std::thread::sleep(SHOW_AFTER);
                if let Some(shared) = weak.upgrade() {
                    let mut state = shared.state.lock().unwrap_or_else(PoisonError::into_inner);
                    if *state == Visibility::Waiting {
                        *state = Visibility::Shown;
                        shared.bar.set_draw_target(ProgressDrawTarget::stderr());
                        shared.bar.enable_steady_tick(Duration::from_millis(200));
                        on_screen(&shared.bar);
                    }
                }
            });
        DocumentBar {
            shared: Some(shared),
            started,
            blocks: 0,
        }
    }

    /// `inner`, clearing this bar for good before its first byte when `same_screen` (standard
    /// output is a terminal too, where the bar would mix with the results).
    pub fn guard<W: Write>(&self, inner: W, same_screen: bool) -> ClearsBar<W> {
        ClearsBar {
            inner,
            bar: self.shared.clone().filter(|_| same_screen),
        }
    }

    /// Removes the bar (or makes sure it never appears).
    pub fn finish(&self) {
        if let Some(shared) = &self.shared {
            shared.finish();
        }
    }
}

impl Drop for DocumentBar {
    fn drop(&mut self) {
        self.finish();
    }
}

impl DocumentProgress for DocumentBar {
    fn update(&mut self, at: &DocumentPosition) {
        let Some(shared) = &self.shared else {
            return;
        };
        let block_done = std::mem::replace(&mut self.blocks, at.blocks) < at.blocks;
        if block_done && at.fraction() == Some(1.0) {
            // All translated, before any of the last block is written (to a terminal or to a
            // pipe whose reader may print it): the bar goes now.
            shared.finish();
            return;
        }
        let secs = self.started.elapsed().as_secs_f64().max(1e-3);
        shared.bar.set_position(at.bytes_done);
        shared.bar.set_message(format!(
            "{} sentences ({:.1}/s)",
            at.sentences,
            at.sentences as f64 / secs
        ));
    }
}

/// A writer that clears a [`DocumentBar`] before its first byte (see [`DocumentBar::guard`]).
pub struct ClearsBar<W> {
    inner: W,
    bar: Option<Arc<Shared>>,
}

impl<W: Write> Write for ClearsBar<W> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if !buf.is_empty() {
            if let Some(bar) = self.bar.take() {
                bar.finish();
            }
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.inner.flush()
    }
}
