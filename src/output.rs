//! Output formats — plain text, Markdown, JSON and JSON lines — rendered from a pipeline
//! [`Output`], and atomic file writing (temporary file in the same directory, then rename), so
//! that a reader never sees half an output.
//!
//! | format     | extension | content |
//! |------------|-----------|---------|
//! | `text`     | `.txt`    | the English article in its layout; then, after a blank line, `Summary: ...` |
//! | `markdown` | `.md`     | headline as `#`, the article, `## Summary` as a list; with `bilingual`, a Dutch/English table |
//! | `json`     | `.json`   | the whole [`Output`]: source, translation, summary, every sentence with span, paragraph, kind, translation, score and token counts, the model, timings |
//! | `jsonl`    | `.jsonl`  | one [`SentenceOutput`] object per line |
//!
//! [`render`] renders a whole [`Output`]; [`StreamWriter`] writes the same bytes block by block
//! for a document that is translated in blocks ([`crate::stream`]), keeping no more than a block
//! in memory: text and JSON lines go out as each block is done; the parts of JSON and Markdown
//! that come after something only known at the end (the summary) wait in temporary spool files.
//! [`AtomicFile`] is the all-or-nothing file both write to.

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::pipeline::{ModelDescription, Output, OutputSummary, SentenceOutput, Timings};
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

/// Writes a document that is translated block by block ([`crate::stream`]) in any
/// [`OutputFormat`], producing the same bytes [`render`] produces for the whole [`Output`] (the
/// timings aside), without holding more than one block:
///
/// - **text**: each block's translation as soon as it is done, paragraph breaks continuing
///   across blocks; the summary at the end.
/// - **jsonl**: each block's sentence lines as soon as they are done.
/// - **json**: the source text as it comes; the translation and the sentence objects go to
///   temporary spool files, copied out after the summary at the end.
/// - **markdown**: the article as it comes; the summary at the end, then (with `bilingual`) the
///   side-by-side table, spooled meanwhile.
///
/// Spool files are created in the spool directory (the system's temporary directory unless
/// given), are removed from the directory at once where the system allows it (Unix) and otherwise
/// when the writer is dropped, and take about the size of the output.
///
/// Call [`StreamWriter::block`] for each block in order, then [`StreamWriter::finish`] once.
pub struct StreamWriter<W: Write> {
    out: W,
    name: PathBuf,
    format: OutputFormat,
    options: RenderOptions,
    written: u64,
    assembler: Assembler,
    json: Option<JsonSpools>,
    markdown: MarkdownState,
    table: Option<Spool>,
}

impl<W: Write> fmt::Debug for StreamWriter<W> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("StreamWriter")
            .field("name", &self.name)
            .field("format", &self.format)
            .field("written", &self.written)
            .finish_non_exhaustive()
    }
}

/// The spooled parts of a JSON document.
struct JsonSpools {
    started: bool,
    translation: Spool,
    sentences: Spool,
    count: usize,
}

/// Where a Markdown document stands: parts written (joined by blank lines), article blocks
/// started, and the block still open at the end of what was written.
#[derive(Default)]
struct MarkdownState {
    parts: usize,
    blocks: usize,
    open: Option<OpenBlock>,
    rows: usize,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum OpenBlock {
    /// A heading; whether its text is non-empty so far.
    Heading(bool),
    /// A paragraph of this paragraph number; whether its text is non-empty so far.
    Paragraph(usize, bool),
    /// A list of this paragraph number.
    List(usize),
}

impl<W: Write> StreamWriter<W> {
    /// A writer to `out` in `format`; `name` (the output path or `<stdout>`) appears in errors;
    /// spool files go to `spool_dir` (default: the system's temporary directory).
    pub fn new(
        out: W,
        name: impl Into<PathBuf>,
        format: OutputFormat,
        options: &RenderOptions,
        spool_dir: Option<&Path>,
    ) -> Result<Self> {
        let dir = spool_dir.map_or_else(std::env::temp_dir, Path::to_path_buf);
        let json = match format {
            OutputFormat::Json => Some(JsonSpools {
                started: false,
                translation: Spool::new(&dir)?,
                sentences: Spool::new(&dir)?,
                count: 0,
            }),
            _ => None,
        };
        let table = match format {
            OutputFormat::Markdown if options.bilingual => Some(Spool::new(&dir)?),
            _ => None,
        };
        Ok(StreamWriter {
            out,
            name: name.into(),
            format,
            options: *options,
            written: 0,
            assembler: Assembler::default(),
            json,
            markdown: MarkdownState::default(),
            table,
        })
    }

    /// Bytes written to the output so far.
    pub fn written(&self) -> u64 {
        self.written
    }

    /// The output, once finished.
    pub fn into_inner(self) -> W {
        self.out
    }

    fn write(&mut self, bytes: &str) -> Result<()> {
        self.out
            .write_all(bytes.as_bytes())
            .map_err(|e| Error::io(&self.name, e))?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Writes the next block: its source text (exactly the bytes of the decoded input it
    /// covers) and its segments; flushes the output, so that a reader sees each block when it
    /// is done.
    pub fn block(&mut self, source: &str, sentences: &[SentenceOutput]) -> Result<()> {
        self.write_block(source, sentences)?;
        self.out.flush().map_err(|e| Error::io(&self.name, e))
    }

    fn write_block(&mut self, source: &str, sentences: &[SentenceOutput]) -> Result<()> {
        match self.format {
            OutputFormat::Text => {
                let mut piece = String::new();
                for s in sentences {
                    self.assembler.push(s, &mut piece);
                }
                self.write(&piece)
            }
            OutputFormat::Jsonl => {
                let mut piece = String::new();
                for s in sentences {
                    piece.push_str(&serde_json::to_string(s).map_err(json_error)?);
                    piece.push('\n');
                }
                self.write(&piece)
            }
            OutputFormat::Json => self.json_block(source, sentences),
            OutputFormat::Markdown => self.markdown_block(sentences),
        }
    }

    /// Ends the document: the summary, the spooled parts, the final line break; flushes the
    /// output.
    pub fn finish(
        &mut self,
        summary: Option<&OutputSummary>,
        model: &ModelDescription,
        timings: &Timings,
    ) -> Result<()> {
        let summary =
            summary.filter(|s| !s.sentences.is_empty() || self.format == OutputFormat::Json);
        match self.format {
            OutputFormat::Text => {
                if let Some(summary) = summary {
                    self.write(&format!("\n\nSummary: {}", summary.text()))?;
                }
                if self.written > 0 {
                    self.write("\n")?;
                }
            }
            OutputFormat::Jsonl => {}
            OutputFormat::Json => self.json_finish(summary, model, timings)?,
            OutputFormat::Markdown => self.markdown_finish(summary)?,
        }
        self.out.flush().map_err(|e| Error::io(&self.name, e))
    }

    fn json_block(&mut self, source: &str, sentences: &[SentenceOutput]) -> Result<()> {
        self.json_start()?;
        self.write(&json_string_body(source)?)?;
        let mut piece = String::new();
        for s in sentences {
            self.assembler.push(s, &mut piece);
        }
        let mut elements = String::new();
        let Some(json) = self.json.as_mut() else {
            return Ok(());
        };
        json.translation
            .write(json_string_body(&piece)?.as_bytes())?;
        for s in sentences {
            elements.push_str(if json.count == 0 { "\n    " } else { ",\n    " });
            elements.push_str(&indented(s, 4)?);
            json.count += 1;
        }
        json.sentences.write(elements.as_bytes())
    }

    fn json_start(&mut self) -> Result<()> {
        if self.json.as_ref().is_none_or(|j| j.started) {
            return Ok(());
        }
        if let Some(j) = self.json.as_mut() {
            j.started = true;
        }
        self.write(&format!(
            "{{\n  \"format_version\": {},\n  \"source\": \"",
            crate::pipeline::FORMAT_VERSION
        ))
    }

    fn json_finish(
        &mut self,
        summary: Option<&OutputSummary>,
        model: &ModelDescription,
        timings: &Timings,
    ) -> Result<()> {
        self.json_start()?;
        self.write("\",\n  \"translation\": \"")?;
        let Some(mut json) = self.json.take() else {
            return Ok(());
        };
        self.written += json.translation.copy_to(&mut self.out, &self.name)?;
        self.write(&format!(
            "\",\n  \"summary\": {},\n  \"sentences\": ",
            indented(&summary, 2)?
        ))?;
        if json.count == 0 {
            self.write("[]")?;
        } else {
            self.write("[")?;
            self.written += json.sentences.copy_to(&mut self.out, &self.name)?;
            self.write("\n  ]")?;
        }
        self.write(&format!(
            ",\n  \"model\": {},\n  \"timings\": {}\n}}\n",
            indented(model, 2)?,
            indented(timings, 2)?
        ))
    }

    /// Starts a new Markdown part (parts are separated by a blank line).
    fn part(&mut self, text: &str) -> Result<()> {
        if self.markdown.parts > 0 {
            self.write("\n\n")?;
        }
        self.markdown.parts += 1;
        self.write(text)
    }

    fn markdown_block(&mut self, sentences: &[SentenceOutput]) -> Result<()> {
        // Metadata fields only open a document, so they all come in its first block, before
        // any article text: the first part, as `render` writes it.
        let meta: Vec<String> = sentences
            .iter()
            .filter_map(|s| match &s.kind {
                SegmentKind::Metadata { key, value } => {
                    Some(format!("**{}:** {}", escape(key), escape(value)))
                }
                _ => None,
            })
            .collect();
        if !meta.is_empty() {
            self.part(&meta.join("  \n"))?;
        }
        for s in sentences {
            if self.options.bilingual {
                if let Some(t) = &s.translation {
                    self.markdown.rows += 1;
                    let row = format!(
                        "\n| {} | {} | {} |",
                        self.markdown.rows,
                        cell(&s.source),
                        cell(t)
                    );
                    if let Some(table) = self.table.as_mut() {
                        table.write(row.as_bytes())?;
                    }
                }
            }
            let text = match (&s.kind, &s.translation) {
                (SegmentKind::Metadata { .. }, _) => continue,
                (_, Some(t)) => escape(t.trim()),
                (_, None) => continue,
            };
            if s.continues {
                match self.markdown.open {
                    Some(OpenBlock::Heading(filled)) => {
                        self.push_spaced(filled, &text)?;
                        self.markdown.open = Some(OpenBlock::Heading(filled || !text.is_empty()));
                        continue;
                    }
                    Some(OpenBlock::Paragraph(p, filled)) => {
                        self.push_spaced(filled, &text)?;
                        self.markdown.open =
                            Some(OpenBlock::Paragraph(p, filled || !text.is_empty()));
                        continue;
                    }
                    // A list item is never empty: it has its marker.
                    Some(OpenBlock::List(_)) => {
                        self.push_spaced(true, &text)?;
                        continue;
                    }
                    None => {}
                }
            }
            match &s.kind {
                SegmentKind::Headline => {
                    let level = if self.markdown.blocks == 0 { 1 } else { 2 };
                    self.part(&format!("{} {text}", "#".repeat(level)))?;
                    self.markdown.blocks += 1;
                    self.markdown.open = Some(OpenBlock::Heading(!text.is_empty()));
                }
                SegmentKind::ListItem { marker } => {
                    let item = format!("{} {text}", list_marker(marker));
                    match self.markdown.open {
                        Some(OpenBlock::List(p)) if p == s.paragraph => {
                            self.write("\n")?;
                            self.write(&item)?;
                        }
                        _ => {
                            self.part(&item)?;
                            self.markdown.blocks += 1;
                            self.markdown.open = Some(OpenBlock::List(s.paragraph));
                        }
                    }
                }
                _ => match self.markdown.open {
                    Some(OpenBlock::Paragraph(p, filled)) if p == s.paragraph => {
                        self.push_spaced(filled, &text)?;
                        self.markdown.open =
                            Some(OpenBlock::Paragraph(p, filled || !text.is_empty()));
                    }
                    _ => {
                        self.part(&text)?;
                        self.markdown.blocks += 1;
                        self.markdown.open =
                            Some(OpenBlock::Paragraph(s.paragraph, !text.is_empty()));
                    }
                },
            }
        }
        Ok(())
    }

    /// Appends `text` to the open block, after a space if both are non-empty.
    fn push_spaced(&mut self, filled: bool, text: &str) -> Result<()> {
        if filled && !text.is_empty() {
            self.write(" ")?;
        }
        self.write(text)
    }

    fn markdown_finish(&mut self, summary: Option<&OutputSummary>) -> Result<()> {
        self.markdown.open = None;
        if let Some(summary) = summary {
            self.part("## Summary")?;
            let items: Vec<String> = summary
                .sentences
                .iter()
                .map(|s| format!("- {}", escape(s.text.trim())))
                .collect();
            self.part(&items.join("\n"))?;
        }
        if let Some(mut table) = self.table.take() {
            if self.markdown.rows > 0 {
                self.part("## Side by side")?;
                self.part("| # | Nederlands | English |\n|--:|---|---|")?;
                self.written += table.copy_to(&mut self.out, &self.name)?;
            }
        }
        if self.written > 0 {
            self.write("\n")?;
        }
        Ok(())
    }
}

/// `value` as pretty-printed JSON, every line after the first indented by `indent` spaces: how
/// `serde_json` prints it nested at that depth.
fn indented<T: Serialize + ?Sized>(value: &T, indent: usize) -> Result<String> {
    let pretty = serde_json::to_string_pretty(value).map_err(json_error)?;
    Ok(pretty.replace('\n', &format!("\n{}", " ".repeat(indent))))
}

/// `text` as the inside of a JSON string (escaped, without the quotes); escaping works character
/// by character, so the pieces of a text give the text's escaping.
fn json_string_body(text: &str) -> Result<String> {
    let quoted = serde_json::to_string(text).map_err(json_error)?;
    Ok(quoted
        .get(1..quoted.len().saturating_sub(1))
        .unwrap_or_default()
        .to_string())
}

/// The translated article put together segment by segment with the rules of
/// [`Document::reassemble`](crate::segment::Document::reassemble): what it writes for a document's
/// segments given in any number of calls is what `reassemble` returns for the whole document.
#[derive(Debug, Default)]
struct Assembler {
    /// The paragraph of the last segment written, and whether it was metadata.
    prev: Option<(usize, bool)>,
}

impl Assembler {
    fn push(&mut self, s: &SentenceOutput, out: &mut String) {
        let metadata = !s.kind.is_translatable();
        let body = if metadata {
            s.source.as_str()
        } else {
            s.translation.as_deref().unwrap_or_default().trim()
        };
        if crate::segment::append_segment(
            out,
            self.prev,
            s.paragraph,
            &s.kind,
            s.continues,
            s.starts_line,
            body,
        ) {
            self.prev = Some((s.paragraph, metadata));
        }
    }
}

/// A temporary file that holds part of an output until it can be written.
struct Spool {
    path: PathBuf,
    file: BufWriter<File>,
    len: u64,
    unlinked: bool,
}

static SPOOL_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Spool {
    fn new(dir: &Path) -> Result<Spool> {
        let path = dir.join(format!(
            ".tolk-spool-{}-{}",
            std::process::id(),
            SPOOL_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let file = std::fs::OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .open(&path)
            .map_err(|e| Error::io(&path, e))?;
        // On Unix an open file outlives its name: nothing is left behind, whatever happens.
        let unlinked = cfg!(unix) && std::fs::remove_file(&path).is_ok();
        Ok(Spool {
            path,
            file: BufWriter::with_capacity(1 << 16, file),
            len: 0,
            unlinked,
        })
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        self.file
            .write_all(bytes)
            .map_err(|e| Error::io(&self.path, e))?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Copies everything written to `out`; returns the number of bytes.
    fn copy_to(&mut self, out: &mut dyn Write, out_name: &Path) -> Result<u64> {
        self.file.flush().map_err(|e| Error::io(&self.path, e))?;
        let file = self.file.get_mut();
        file.rewind().map_err(|e| Error::io(&self.path, e))?;
        let mut reader = std::io::Read::take(&mut *file, self.len);
        let mut buf = vec![0u8; 1 << 16];
        let mut copied = 0;
        loop {
            let n = crate::input::read_some(&mut reader, &mut buf)
                .map_err(|e| Error::io(&self.path, e))?;
            let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
                break;
            };
            out.write_all(chunk).map_err(|e| Error::io(out_name, e))?;
            copied += n as u64;
        }
        Ok(copied)
    }
}

impl Drop for Spool {
    fn drop(&mut self) {
        if !self.unlinked {
            let _ = std::fs::remove_file(&self.path);
        }
    }
}

/// Suffix of the temporary files [`write_atomic`] creates (`.NAME.tolk-tmp-HOST-PID-N`).
pub const TEMP_MARKER: &str = ".tolk-tmp-";

static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);

/// Writes `contents` to `path` atomically: into a hidden temporary file in the same directory
/// (`.NAME.tolk-tmp-HOST-PID-N`, flushed to disk), then renamed over `path`. A reader sees the
/// old file or the new one, never a partial one; if the process dies first, only the temporary
/// file remains (see [`TempFile`] for recognising and removing it).
pub fn write_atomic(path: &Path, contents: &[u8]) -> Result<()> {
    let mut file = AtomicFile::create(path)?;
    file.write_all(contents).map_err(|e| Error::io(path, e))?;
    file.commit()
}

/// A file written all or nothing, like [`write_atomic`] but in pieces: the bytes go to a hidden
/// temporary file next to `path`, which [`AtomicFile::commit`] flushes to disk and renames over
/// `path`. Dropped without a commit (an error on the way), the temporary file is removed and
/// `path` is untouched.
#[derive(Debug)]
pub struct AtomicFile {
    path: PathBuf,
    tmp: PathBuf,
    dir: PathBuf,
    file: Option<BufWriter<File>>,
}

impl AtomicFile {
    /// Creates the temporary file for `path` (whose directory must exist); errors name `path`.
    pub fn create(path: &Path) -> Result<AtomicFile> {
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
        let file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(&tmp)
            .map_err(|e| Error::io(path, e))?;
        Ok(AtomicFile {
            path: path.to_path_buf(),
            tmp,
            dir,
            file: Some(BufWriter::with_capacity(1 << 16, file)),
        })
    }

    /// The file this will become.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Flushes the bytes to disk and renames the temporary file over the target.
    pub fn commit(mut self) -> Result<()> {
        let Some(file) = self.file.take() else {
            return Ok(());
        };
        let done = (|| -> std::io::Result<()> {
            let file = file.into_inner().map_err(|e| e.into_error())?;
            file.sync_all()?;
            drop(file);
            std::fs::rename(&self.tmp, &self.path)
        })();
        if let Err(e) = done {
            let _ = std::fs::remove_file(&self.tmp);
            return Err(Error::io(&self.path, e));
        }
        // Make the rename itself durable; not all systems can sync a directory, so failures here
        // are not errors.
        if let Ok(d) = File::open(&self.dir) {
            let _ = d.sync_all();
        }
        Ok(())
    }
}

impl Write for AtomicFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match &mut self.file {
            Some(f) => f.write(buf),
            None => Err(std::io::Error::other("the file is already committed")),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match &mut self.file {
            Some(f) => f.flush(),
            None => Ok(()),
        }
    }
}

impl Drop for AtomicFile {
    fn drop(&mut self) {
        if self.file.take().is_some() {
            let _ = std::fs::remove_file(&self.tmp);
        }
    }
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

    use crate::pipeline::{SummaryItem, FORMAT_VERSION};
    use crate::segment::Segmenter;

    /// An output as the pipeline would make it from `text`, with made-up translations (some
    /// empty, some with Markdown and JSON specials), segments cut at `max_chars`.
    fn fake_output(text: &str, max_chars: usize, summary: Option<usize>) -> Output {
        let doc = Segmenter::new().with_max_chars(max_chars).segment(text);
        let mut translations = Vec::new();
        let sentences: Vec<SentenceOutput> = doc
            .segments
            .iter()
            .enumerate()
            .map(|(index, seg)| {
                let translation = seg.kind.is_translatable().then(|| {
                    let t = match index % 5 {
                        0 => String::new(),
                        1 => format!(" *{}* | \"q\" \\ ", seg.flat_text().to_uppercase()),
                        _ => seg.flat_text().chars().rev().collect(),
                    };
                    translations.push(t.clone());
                    t
                });
                SentenceOutput {
                    index,
                    source: seg.text.clone(),
                    span: seg.span.clone(),
                    paragraph: seg.paragraph,
                    kind: seg.kind.clone(),
                    continues: seg.continues,
                    starts_line: seg.starts_line,
                    score: translation.as_ref().map(|_| -0.5),
                    source_tokens: index,
                    target_tokens: 2 * index,
                    flag: (index % 7 == 3).then_some("passthrough"),
                    translation,
                }
            })
            .collect();
        let summary = summary.map(|n| OutputSummary {
            summarizer: "extractive".into(),
            sentences: sentences
                .iter()
                .filter(|s| s.translation.is_some())
                .take(n)
                .map(|s| SummaryItem {
                    text: s.translation.clone().unwrap_or_default(),
                    source: Some(s.source.clone()),
                    sentences: vec![s.index],
                    score: 0.5,
                })
                .collect(),
            limited_to: None,
        });
        Output {
            format_version: FORMAT_VERSION,
            source: text.to_string(),
            translation: doc.reassemble(&translations).unwrap(),
            summary,
            sentences,
            model: ModelDescription {
                name: "m".into(),
                repo: None,
                revision: None,
                commit: None,
                dir: PathBuf::from("/m"),
            },
            timings: Timings::default(),
        }
    }

    /// `output` written by a [`StreamWriter`] in blocks that start at these sentence indices.
    fn streamed(
        output: &Output,
        format: OutputFormat,
        options: &RenderOptions,
        starts: &[usize],
    ) -> String {
        let dir = tempfile::tempdir().unwrap();
        let mut w =
            StreamWriter::new(Vec::new(), "<test>", format, options, Some(dir.path())).unwrap();
        let mut bounds: Vec<usize> = starts
            .iter()
            .copied()
            .filter(|&i| i > 0 && i < output.sentences.len())
            .collect();
        bounds.dedup();
        bounds.push(output.sentences.len());
        let mut first = 0;
        let mut source_from = 0;
        for end in bounds {
            let source_to = match output.sentences.get(end) {
                Some(s) => s.span.start,
                None => output.source.len(),
            };
            let sentences = output.sentences.get(first..end).unwrap();
            w.block(&output.source[source_from..source_to], sentences)
                .unwrap();
            first = end;
            source_from = source_to;
        }
        w.finish(output.summary.as_ref(), &output.model, &output.timings)
            .unwrap();
        // Spool files leave nothing behind.
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 0);
        String::from_utf8(w.into_inner()).unwrap()
    }

    #[test]
    fn streamed_outputs_are_byte_for_byte_the_rendered_ones() {
        let texts = [
            "bron: ANP\nNieuwe brug over de Maas\n\nDe brug is dinsdag geopend door de burgemeester van Venlo, die een lint doorknipte. Duizenden fietsers reden er de eerste dag overheen.\n\n- Lengte: 300 meter en nog wat meer dan dat\n- Bouwtijd: drie jaar\n1. een\n2. twee\n\nSlot zonder punt\n\nLaatste zin.",
            "Alleen een zin.",
            "",
            "Kop\n\n\n\nTekst met *sterren* en | pijpen, en een \"citaat\".\nVolgende regel.\n- item\n\n# geen kop",
        ];
        for text in texts {
            for max_chars in [0, 30] {
                for summary in [None, Some(0), Some(2)] {
                    let output = fake_output(text, max_chars, summary);
                    let n = output.sentences.len();
                    let mut splits: Vec<Vec<usize>> = vec![vec![], (0..n).collect()];
                    splits.extend((1..n).map(|i| vec![i]));
                    splits.push((0..n).step_by(3).collect());
                    for format in OutputFormat::ALL {
                        for bilingual in [false, true] {
                            let options = RenderOptions::default().with_bilingual(bilingual);
                            let want = render(&output, format, &options).unwrap();
                            for starts in &splits {
                                let got = streamed(&output, format, &options, starts);
                                assert_eq!(
                                    got, want,
                                    "{format} {text:?} {max_chars} {summary:?} {starts:?}"
                                );
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn atomic_files_are_all_or_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.txt");
        std::fs::write(&path, b"old").unwrap();
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"new, ").unwrap();
        f.write_all(b"in pieces").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        drop(f);
        assert_eq!(std::fs::read(&path).unwrap(), b"old");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(b"new").unwrap();
        f.commit().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"new");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
