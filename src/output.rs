//! Output formats — plain text, Markdown, JSON and JSON lines — rendered from a pipeline
//! [`Output`], and atomic file writing (temporary file in the same directory, then rename), so
//! that a reader never sees half an output.
//!
//! | format     | extension | content |
//! |------------|-----------|---------|
//! | `text`     | `.txt`    | the English article in its layout; then, after a blank line, `Summary: ...` |
//! | `markdown` | `.md`     | headline as `#`, the article, `## Summary` as a list; with `bilingual`, a Dutch/English table |
//! | `json`     | `.json`   | the whole [`Output`]: source, translation, summary, every sentence with span, paragraph, kind, translation, score and token counts, the model, timings |
//! | `jsonl`    | `.jsonl`  | one [`SentenceOutput`](crate::pipeline::SentenceOutput) object per line |

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::pipeline::Output;
use crate::segment::SegmentKind;

/// How an [`Output`] is written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// The translated article, then the summary (the default).
    #[default]
    Text,
    /// A Markdown document.
    Markdown,
    /// One pretty-printed JSON object.
    Json,
    /// One JSON object per sentence, one per line.
    Jsonl,
}

impl OutputFormat {
    /// Every format, in documentation order.
    pub const ALL: [OutputFormat; 4] = [
        OutputFormat::Text,
        OutputFormat::Markdown,
        OutputFormat::Json,
        OutputFormat::Jsonl,
    ];

    /// The file extension (without the dot) of an output in this format.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Text => "txt",
            OutputFormat::Markdown => "md",
            OutputFormat::Json => "json",
            OutputFormat::Jsonl => "jsonl",
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Text => "text",
            OutputFormat::Markdown => "markdown",
            OutputFormat::Json => "json",
            OutputFormat::Jsonl => "jsonl",
        }
    }
}

impl FromStr for OutputFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" | "txt" => Ok(OutputFormat::Text),
            "markdown" | "md" => Ok(OutputFormat::Markdown),
            "json" => Ok(OutputFormat::Json),
            "jsonl" | "ndjson" => Ok(OutputFormat::Jsonl),
            _ => Err(Error::option(
                "format",
                format!("unknown format `{s}`: expected text, markdown, json or jsonl"),
            )),
        }
    }
}

impl fmt::Display for OutputFormat {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// Options of [`render`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Markdown: add a side-by-side table of every Dutch segment and its translation. Default:
    /// `false`. (JSON always carries both sides.)
    pub bilingual: bool,
}

impl RenderOptions {
    /// Sets [`RenderOptions::bilingual`].
    #[must_use]
    pub fn with_bilingual(mut self, bilingual: bool) -> Self {
        self.bilingual = bilingual;
        self
    }
}

/// Renders an output; the text ends with a line break unless it is empty (text format of an
/// empty input).
pub fn render(output: &Output, format: OutputFormat, options: &RenderOptions) -> Result<String> {
    Ok(match format {
        OutputFormat::Text => render_text(output),
        OutputFormat::Markdown => render_markdown(output, options),
        OutputFormat::Json => {
            let mut s = serde_json::to_string_pretty(output).map_err(json_error)?;
            s.push('\n');
            s
        }
        OutputFormat::Jsonl => {
            let mut s = String::new();
            for sentence in &output.sentences {
                s.push_str(&serde_json::to_string(sentence).map_err(json_error)?);
                s.push('\n');
            }
            s
        }
    })
}

fn json_error(e: serde_json::Error) -> Error {
    Error::option("format", format!("cannot write JSON: {e}"))
}

fn render_text(output: &Output) -> String {
    let mut s = output.translation.clone();
    if let Some(summary) = output.summary.as_ref().filter(|s| !s.sentences.is_empty()) {
        s.push_str("\n\nSummary: ");
        s.push_str(&summary.text());
    }
    if !s.is_empty() {
        s.push('\n');
    }
    s
}

/// Markdown blocks, built from the segments so that headlines and lists become Markdown ones.
enum Block {
    Heading(usize, String),
    Paragraph(usize, String),
    List(usize, Vec<String>),
}

fn render_markdown(output: &Output, options: &RenderOptions) -> String {
    let mut meta: Vec<String> = Vec::new();
    let mut blocks: Vec<Block> = Vec::new();
    for s in &output.sentences {
        let text = match (&s.kind, &s.translation) {
            (SegmentKind::Metadata { key, value }, _) => {
                meta.push(format!("**{}:** {}", escape(key), escape(value)));
                continue;
            }
            (_, Some(t)) => escape(t.trim()),
            (_, None) => continue,
        };
        if s.continues {
            match blocks.last_mut() {
                Some(Block::Heading(_, last) | Block::Paragraph(_, last)) => {
                    push_spaced(last, &text);
                    continue;
                }
                Some(Block::List(_, items)) => {
                    if let Some(last) = items.last_mut() {
                        push_spaced(last, &text);
                        continue;
                    }
                }
                None => {}
            }
        }
        match &s.kind {
            SegmentKind::Headline => {
                let level = if blocks.is_empty() { 1 } else { 2 };
                blocks.push(Block::Heading(level, text));
            }
            SegmentKind::ListItem { marker } => {
                let item = format!("{} {text}", list_marker(marker));
                match blocks.last_mut() {
                    Some(Block::List(p, items)) if *p == s.paragraph => items.push(item),
                    _ => blocks.push(Block::List(s.paragraph, vec![item])),
                }
            }
            _ => match blocks.last_mut() {
                Some(Block::Paragraph(p, last)) if *p == s.paragraph => push_spaced(last, &text),
                _ => blocks.push(Block::Paragraph(s.paragraph, text)),
            },
        }
    }

    let mut parts: Vec<String> = Vec::new();
    if !meta.is_empty() {
        parts.push(meta.join("  \n"));
    }
    for block in blocks {
        parts.push(match block {
            Block::Heading(level, text) => format!("{} {text}", "#".repeat(level)),
            Block::Paragraph(_, text) => text,
            Block::List(_, items) => items.join("\n"),
        });
    }
    if let Some(summary) = output.summary.as_ref().filter(|s| !s.sentences.is_empty()) {
        parts.push("## Summary".to_string());
        let items: Vec<String> = summary
            .sentences
            .iter()
            .map(|s| format!("- {}", escape(s.text.trim())))
            .collect();
        parts.push(items.join("\n"));
    }
    if options.bilingual && output.translated_sentences() > 0 {
        parts.push("## Side by side".to_string());
        let mut table = String::from("| # | Nederlands | English |\n|--:|---|---|");
        let pairs = output
            .sentences
            .iter()
            .filter_map(|s| s.translation.as_ref().map(|t| (&s.source, t)));
        for (n, (source, translation)) in pairs.enumerate() {
            table.push_str(&format!(
                "\n| {} | {} | {} |",
                n + 1,
                cell(source),
                cell(translation)
            ));
        }
        parts.push(table);
    }
    let mut out = parts.join("\n\n");
    if !out.is_empty() {
        out.push('\n');
    }
    out
}

fn push_spaced(out: &mut String, text: &str) {
    if !out.is_empty() && !text.is_empty() {
        out.push(' ');
    }
    out.push_str(text);
}

/// A Markdown list marker for a list item's own marker: numbers stay numbered, bullets become
/// `-`, letters (`a)`) are kept as text after a `-`.
fn list_marker(marker: &str) -> String {
    let digits = marker.trim_end_matches(['.', ')']);
    if !digits.is_empty()
        && digits.len() < marker.len()
        && digits.chars().all(|c| c.is_ascii_digit())
    {
        marker.to_string()
    } else if marker.chars().any(char::is_alphanumeric) {
        format!("- {}", escape(marker))
    } else {
        "-".to_string()
    }
}

/// Escapes the characters that Markdown would read as markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    for (i, c) in text.chars().enumerate() {
        let leading = i == 0 && matches!(c, '#' | '+' | '-' | '=' | '>');
        if leading
            || matches!(
                c,
                '\\' | '`' | '*' | '_' | '[' | ']' | '<' | '>' | '|' | '~'
            )
        {
            out.push('\\');
        }
        out.push(c);
    }
    // "1999. Text" at the start of a paragraph would become an ordered list.
    if let Some(dot) = out.find(". ") {
        if dot > 0 && out[..dot].chars().all(|c| c.is_ascii_digit()) {
            out.insert(dot, '\\');
        }
    }
    out
}

/// A table cell: one line, pipes escaped.
fn cell(text: &str) -> String {
    escape(&text.split_whitespace().collect::<Vec<_>>().join(" "))
}

/// Suffix of the temporary files [`write_atomic`] creates (`.NAME.tolk-tmp-HOST-PID-N`).
pub const TEMP_MARKER: &str = ".tolk-tmp-";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `contents` to `path` atomically: into a hidden temporary file in the same directory
/// (`.NAME.tolk-tmp-HOST-PID-N`, flushed to disk), then renamed over `path`. A reader sees the
/// old file or the new one, never a partial one; if the process dies first, only the temporary
/// file remains (see [`TempFile`] for recognising and removing it).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let name = path.file_name().ok_or_else(|| {
        Error::io(
            path,
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "not a file name"),
        )
    })?;
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let tmp = dir.join(format!(
        ".{}{TEMP_MARKER}{}-{}-{}",
        name.to_string_lossy(),
        host_tag(),
        std::process::id(),
        TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
    ));
    let written = (|| -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)?;
        file.write_all(contents)?;
        file.sync_all()?;
        drop(file);
        std::fs::rename(&tmp, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&tmp);
        return Err(Error::io(path, e));
    }
    // Make the rename itself durable; not all systems can sync a directory, so failures here
    // are not errors.
    if let Ok(d) = std::fs::File::open(&dir) {
        let _ = d.sync_all();
    }
    Ok(())
}

/// A temporary file left by [`write_atomic`], recognised by its name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TempFile {
    /// The host tag of the writer ([`host_tag`]).
    pub host: String,
    /// The writer's process id.
    pub pid: u32,
}

impl TempFile {
    /// Parses a file name; `None` if it is not one of tolk's temporary files.
    pub fn parse(file_name: &str) -> Option<TempFile> {
        if !file_name.starts_with('.') {
            return None;
        }
        let (_, tail) = file_name.rsplit_once(TEMP_MARKER)?;
        let mut parts = tail.split('-');
        let host = parts.next()?.to_string();
        let pid = parts.next()?.parse().ok()?;
        parts.next()?.parse::<u64>().ok()?;
        parts.next().is_none().then_some(TempFile { host, pid })
    }

    /// Whether this temporary file certainly belongs to no running writer: one written on this
    /// host by a process that no longer runs. (Writers on other hosts are judged by age, see
    /// [`crate::batch`].)
    pub fn is_orphan_here(&self) -> bool {
        self.host == host_tag() && process_alive(self.pid) == Some(false)
    }
}

/// A short tag for this machine (8 hex digits of a hash of its host name), so that files from
/// machines sharing a directory can be told apart.
pub fn host_tag() -> String {
    format!("{:08x}", fnv1a(host_name().as_bytes()) as u32)
}

/// This machine's host name, or `localhost` when it cannot be found.
pub fn host_name() -> String {
    let from_file = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .or_else(|_| std::fs::read_to_string("/etc/hostname"))
        .ok()
        .map(|s| s.trim().to_string())
        .filter(|s| !s.is_empty());
    from_file
        .or_else(|| std::env::var("HOSTNAME").ok().filter(|s| !s.is_empty()))
        .or_else(|| std::env::var("COMPUTERNAME").ok().filter(|s| !s.is_empty()))
        .unwrap_or_else(|| "localhost".to_string())
}

/// Whether process `pid` runs on this machine: `Some(true)` or `Some(false)` when that can be
/// told (Linux: `/proc`, where a zombie counts as dead; other Unix systems: `kill -0`), `None`
/// otherwise.
pub fn process_alive(pid: u32) -> Option<bool> {
    if pid == std::process::id() {
        return Some(true);
    }
    if Path::new("/proc/self").exists() {
        return Some(match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            // The state follows the command name in parentheses, which may itself hold spaces.
            Ok(stat) => stat
                .rsplit_once(')')
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .is_none_or(|state| state != "Z" && state != "X"),
            Err(_) => false,
        });
    }
    if cfg!(unix) {
        return std::process::Command::new("kill")
            .args(["-0", &pid.to_string()])
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .ok()
            .map(|s| s.success());
    }
    None
}

/// 64-bit FNV-1a: a hash that is the same on every machine and every Rust version.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for &b in bytes {
        h ^= u64::from(b);
        h = h.wrapping_mul(0x0000_0100_0000_01b3);
    }
    h
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_parse_and_name_their_extensions() {
        for f in OutputFormat::ALL {
            assert_eq!(f.name().parse::<OutputFormat>().unwrap(), f);
        }
        assert_eq!(
            "MD".parse::<OutputFormat>().unwrap(),
            OutputFormat::Markdown
        );
        assert!("xml".parse::<OutputFormat>().is_err());
        let exts: Vec<&str> = OutputFormat::ALL.iter().map(|f| f.extension()).collect();
        assert_eq!(exts, ["txt", "md", "json", "jsonl"]);
    }

    #[test]
    fn markdown_escaping() {
        assert_eq!(escape("a*b_c [x] <y> |z|"), r"a\*b\_c \[x\] \<y\> \|z\|");
        assert_eq!(escape("# not a heading"), r"\# not a heading");
        assert_eq!(escape("1999. A year"), r"1999\. A year");
        assert_eq!(escape("In 1999. Then"), "In 1999. Then");
        assert_eq!(list_marker("•"), "-");
        assert_eq!(list_marker("2)"), "2)");
        assert_eq!(list_marker("a)"), "- a)");
    }

    #[test]
    fn atomic_writes_leave_no_temporary_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.json");
        write_atomic(&path, b"one").unwrap();
        write_atomic(&path, b"two").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"two");
        let names: Vec<String> = std::fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["out.json"]);
        // A directory that does not exist: an error naming the file, nothing left behind.
        let missing = dir.path().join("no/such/out.json");
        let e = write_atomic(&missing, b"x").unwrap_err().to_string();
        assert!(e.contains("no/such/out.json"), "{e}");
    }

    #[test]
    fn temp_names_round_trip() {
        let name = format!(
            ".a.b.json{TEMP_MARKER}{}-{}-7",
            host_tag(),
            std::process::id()
        );
        let t = TempFile::parse(&name).unwrap();
        assert_eq!(t.pid, std::process::id());
        assert!(!t.is_orphan_here(), "this process is alive");
        assert!(TempFile::parse("a.json").is_none());
        assert!(TempFile::parse(".a.json.tolk-tmp-x-y-z").is_none());
        assert!(TempFile::parse(&format!("visible{TEMP_MARKER}00000000-1-2")).is_none());
    }

    #[test]
    fn fnv_is_stable() {
        assert_eq!(fnv1a(b""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a(b"a"), 0xaf63_dc4c_8601_ec8c);
    }
}
