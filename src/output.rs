//! Output formats — plain text, Markdown, JSON and JSON lines — written by one writer,
//! [`StreamWriter`], whatever the size of the document.
//!
//! | format     | extension | content |
//! |------------|-----------|---------|
//! | `text`     | `.txt`    | the English article in its layout; then, after a blank line, `Summary: ...` |
//! | `markdown` | `.md`     | headline as `#`, the article, `## Summary` as a list; with `bilingual`, a Dutch/English table |
//! | `json`     | `.json`   | the whole [`Output`]: source, translation, summary, every sentence with span, paragraph, kind, translation, score and token counts, the model, timings |
//! | `jsonl`    | `.jsonl`  | one [`SentenceOutput`] object per line |
//!
//! A document is written block by block as the pipeline translates it (one block for an article
//! read whole, many for a large input: see [`crate::stream`]), keeping no more than a block at a
//! time: text and JSON lines go out as each block is done; the parts of JSON and Markdown that come
//! after something only known at the end (the summary) wait in a spool, in memory up to a few
//! megabytes and then in a temporary file. [`render`] is the same writer over a whole [`Output`],
//! into a string. Files are written all or nothing with [`crate::fsutil::AtomicFile`].

use std::fmt;
use std::fs::File;
use std::io::{BufWriter, Seek, Write};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::Serialize;

use crate::error::{Error, Result};
use crate::record::{Assembler, ModelDescription, Output, OutputSummary, SentenceOutput, Timings};
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
    /// The translated HTML page (for HTML input only: the page with its text translated in
    /// place, see [`crate::formats::Markup`]).
    Html,
    /// A document in its own format, translated in place: a DOCX as a DOCX, subtitles as
    /// subtitles (for an input of that format only; see [`crate::formats::Markup`]).
    Own(crate::formats::InputFormat),
}

impl OutputFormat {
    /// Every format, in documentation order.
    pub const ALL: [OutputFormat; 5] = [
        OutputFormat::Text,
        OutputFormat::Markdown,
        OutputFormat::Json,
        OutputFormat::Jsonl,
        OutputFormat::Html,
    ];

    /// The file extension (without the dot) of an output in this format.
    pub fn extension(self) -> &'static str {
        match self {
            OutputFormat::Text => "txt",
            OutputFormat::Markdown => "md",
            OutputFormat::Json => "json",
            OutputFormat::Jsonl => "jsonl",
            OutputFormat::Html => "html",
            OutputFormat::Own(f) => f.extension(),
        }
    }

    /// The media type of an output in this format (a document in its own format: that
    /// format's).
    pub fn media_type(self) -> &'static str {
        match self {
            OutputFormat::Json => "application/json",
            OutputFormat::Jsonl => "application/x-ndjson",
            OutputFormat::Markdown => "text/markdown; charset=utf-8",
            OutputFormat::Text => "text/plain; charset=utf-8",
            OutputFormat::Html => "text/html; charset=utf-8",
            OutputFormat::Own(f) => f.media_type(),
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            OutputFormat::Text => "text",
            OutputFormat::Markdown => "markdown",
            OutputFormat::Json => "json",
            OutputFormat::Jsonl => "jsonl",
            OutputFormat::Html => "html",
            OutputFormat::Own(f) => f.name(),
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
            "html" | "htm" => Ok(OutputFormat::Html),
            _ => Err(Error::option(
                "format",
                format!("unknown format `{s}`: expected text, markdown, json, jsonl or html"),
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

/// Renders a whole [`Output`]: exactly what a [`StreamWriter`] writes for its segments given as
/// one block (the text ends with a line break unless it is empty: the text format of an empty
/// input).
pub fn render(output: &Output, format: OutputFormat, options: &RenderOptions) -> Result<String> {
    let mut writer = StreamWriter::new(Vec::new(), "<output>", format, options, None)?;
    writer.block(&output.source, &output.sentences)?;
    writer.finish(output.summary.as_ref(), &output.model, &output.timings)?;
    String::from_utf8(writer.into_inner())
        .map_err(|e| Error::Internal(format!("an output is not UTF-8: {e}")))
}

fn json_error(e: serde_json::Error) -> Error {
    Error::Internal(format!("cannot write JSON: {e}"))
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
    escape(&flat(text))
}

/// Writes a document, given block by block ([`crate::stream`]), in any [`OutputFormat`]; the
/// bytes do not depend on where the blocks were cut. Holds no more than one block:
///
/// - **text**: each block's translation as soon as it is done, paragraph breaks continuing
///   across blocks; the summary at the end.
/// - **jsonl**: each block's sentence lines as soon as they are done.
/// - **json**: the source text as it comes; the translation and the sentence objects go to
///   temporary spool files, copied out after the summary at the end.
/// - **markdown**: the article as it comes; the summary at the end, then (with `bilingual`) the
///   side-by-side table, spooled meanwhile.
/// - **html**: the same as a page of its own (the article, then the summary and the table, in
///   sections); an HTML input is written as itself instead ([`crate::document`]).
///
/// Spooled parts stay in memory up to 4 MiB each; past that they move to a file in the spool
/// directory (the system's temporary directory unless given), which is removed from the
/// directory at once where the system allows it (Unix) and otherwise when the writer is dropped,
/// and takes about the size of the output.
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
    /// Text: end every block's last line at once (for a line-by-line co-process).
    end_lines: bool,
    /// Text: the last line written is ended.
    line_ended: bool,
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
    /// HTML: the page's start is written.
    started: bool,
    /// HTML: the open list is numbered (`<ol>`).
    ordered: bool,
    /// HTML: metadata fields held until the page starts.
    metadata: Vec<String>,
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
                translation: Spool::new(dir.clone()),
                sentences: Spool::new(dir.clone()),
                count: 0,
            }),
            _ => None,
        };
        let table = match format {
            OutputFormat::Markdown | OutputFormat::Html if options.bilingual => {
                Some(Spool::new(dir))
            }
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
            end_lines: false,
            line_ended: false,
        })
    }

    /// Ends every block's last line as soon as the block is written (text format), instead of
    /// when the next segment shows what separates them: for a co-process that reads one line of
    /// output per line of input. Default: off.
    #[must_use]
    pub fn with_lines_ended(mut self, on: bool) -> Self {
        self.end_lines = on;
        self
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
            OutputFormat::Text | OutputFormat::Own(_) => {
                let mut piece = String::new();
                for s in sentences {
                    self.assembler.push(s, &mut piece);
                }
                if !self.end_lines {
                    return self.write(&piece);
                }
                // Every block's last line is ended at once; the next block's separator then
                // starts with that line break.
                let piece = match piece.strip_prefix('\n') {
                    Some(rest) if self.line_ended => rest,
                    _ => piece.as_str(),
                };
                if piece.is_empty() {
                    return Ok(());
                }
                self.write(piece)?;
                self.line_ended = true;
                self.write("\n")
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
            OutputFormat::Markdown | OutputFormat::Html => self.markdown_block(sentences),
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
            OutputFormat::Text | OutputFormat::Own(_) => {
                let ended = self.line_ended;
                if let Some(summary) = summary {
                    let gap = if ended { "\n" } else { "\n\n" };
                    self.write(&format!("{gap}Summary: {}", summary.text()))?;
                }
                if self.written > 0 && (!ended || summary.is_some()) {
                    self.write("\n")?;
                }
            }
            OutputFormat::Jsonl => {}
            OutputFormat::Json => self.json_finish(summary, model, timings)?,
            OutputFormat::Markdown | OutputFormat::Html => self.markdown_finish(summary)?,
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
            crate::record::FORMAT_VERSION
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

    /// Starts a new Markdown part (parts are separated by a blank line), or an HTML block (on a
    /// line of its own).
    fn part(&mut self, text: &str) -> Result<()> {
        if self.markdown.parts > 0 {
            self.write(if self.format == OutputFormat::Html {
                "\n"
            } else {
                "\n\n"
            })?;
        }
        self.markdown.parts += 1;
        self.write(text)
    }

    /// HTML: closes the block left open (its end tag).
    fn close_open_block(&mut self) -> Result<()> {
        let open = self.markdown.open.take();
        if self.format != OutputFormat::Html {
            return Ok(());
        }
        let level = if self.markdown.blocks <= 1 { 1 } else { 2 };
        match open {
            Some(OpenBlock::Heading(_)) => self.write(&format!("</h{level}>")),
            Some(OpenBlock::Paragraph(..)) => self.write("</p>"),
            Some(OpenBlock::List(_)) => {
                let end = if self.markdown.ordered {
                    "</ol>"
                } else {
                    "</ul>"
                };
                self.write(&format!("</li>\n{end}"))
            }
            None => Ok(()),
        }
    }

    /// HTML: the page's start, once, titled by the article's first segment if it is a headline
    /// (metadata aside), then the metadata held until then.
    fn html_start(&mut self, first: Option<&SentenceOutput>) -> Result<()> {
        if self.format != OutputFormat::Html || self.markdown.started {
            return Ok(());
        }
        self.markdown.started = true;
        let title = first
            .filter(|s| s.kind == SegmentKind::Headline)
            .and_then(|s| s.translation.as_deref())
            .unwrap_or("Translation");
        self.write(&format!(
            "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>{}</title>\n</head>\n<body>\n<article>\n",
            html_escape(title.trim())
        ))?;
        let meta = std::mem::take(&mut self.markdown.metadata);
        if !meta.is_empty() {
            self.part(&format!("<dl>\n{}\n</dl>", meta.join("\n")))?;
        }
        Ok(())
    }

    /// The article's blocks in Markdown or HTML: headings, paragraphs and lists continuing
    /// across blocks, metadata first.
    fn markdown_block(&mut self, sentences: &[SentenceOutput]) -> Result<()> {
        let html = self.format == OutputFormat::Html;
        let esc = |t: &str| if html { html_escape(t) } else { escape(t) };
        // Metadata fields only open a document, so they all come in its first block, before
        // any article text: the first part, as `render` writes it.
        let meta: Vec<String> = sentences
            .iter()
            .filter_map(|s| match &s.kind {
                SegmentKind::Metadata { key, value } if html => Some(format!(
                    "<dt>{}</dt><dd>{}</dd>",
                    html_escape(key),
                    html_escape(value)
                )),
                SegmentKind::Metadata { key, value } => {
                    Some(format!("**{}:** {}", escape(key), escape(value)))
                }
                _ => None,
            })
            .collect();
        if html && !self.markdown.started {
            // The page starts with the article's first segment, which gives its title.
            self.markdown.metadata.extend(meta);
            let first = sentences
                .iter()
                .find(|s| !matches!(s.kind, SegmentKind::Metadata { .. }));
            if first.is_none() {
                return Ok(());
            }
            self.html_start(first)?;
        } else if !meta.is_empty() {
            self.part(&meta.join("  \n"))?;
        }
        for s in sentences {
            if self.options.bilingual {
                if let Some(t) = &s.translation {
                    self.markdown.rows += 1;
                    let row = if html {
                        format!(
                            "\n<tr><td>{}</td><td>{}</td><td>{}</td></tr>",
                            self.markdown.rows,
                            html_escape(&flat(&s.source)),
                            html_escape(&flat(t))
                        )
                    } else {
                        format!(
                            "\n| {} | {} | {} |",
                            self.markdown.rows,
                            cell(&s.source),
                            cell(t)
                        )
                    };
                    if let Some(table) = self.table.as_mut() {
                        table.write(row.as_bytes())?;
                    }
                }
            }
            let text = match (&s.kind, &s.translation) {
                (SegmentKind::Metadata { .. }, _) => continue,
                (_, Some(t)) => esc(t.trim()),
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
                    self.close_open_block()?;
                    let level = if self.markdown.blocks == 0 { 1 } else { 2 };
                    if html {
                        self.part(&format!("<h{level}>{text}"))?;
                    } else {
                        self.part(&format!("{} {text}", "#".repeat(level)))?;
                    }
                    self.markdown.blocks += 1;
                    self.markdown.open = Some(OpenBlock::Heading(!text.is_empty()));
                }
                SegmentKind::ListItem { marker } => match self.markdown.open {
                    Some(OpenBlock::List(p)) if p == s.paragraph => {
                        if html {
                            self.write(&format!("</li>\n<li>{text}"))?;
                        } else {
                            self.write("\n")?;
                            self.write(&format!("{} {text}", list_marker(marker)))?;
                        }
                    }
                    _ => {
                        self.close_open_block()?;
                        if html {
                            let ordered = list_marker(marker) == *marker;
                            self.markdown.ordered = ordered;
                            let list = if ordered { "ol" } else { "ul" };
                            self.part(&format!("<{list}>\n<li>{text}"))?;
                        } else {
                            self.part(&format!("{} {text}", list_marker(marker)))?;
                        }
                        self.markdown.blocks += 1;
                        self.markdown.open = Some(OpenBlock::List(s.paragraph));
                    }
                },
                _ => match self.markdown.open {
                    Some(OpenBlock::Paragraph(p, filled)) if p == s.paragraph => {
                        self.push_spaced(filled, &text)?;
                        self.markdown.open =
                            Some(OpenBlock::Paragraph(p, filled || !text.is_empty()));
                    }
                    _ => {
                        self.close_open_block()?;
                        if html {
                            self.part(&format!("<p>{text}"))?;
                        } else {
                            self.part(&text)?;
                        }
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
        let html = self.format == OutputFormat::Html;
        self.html_start(None)?;
        self.close_open_block()?;
        if html {
            self.part("</article>")?;
        }
        if let Some(summary) = summary {
            if html {
                let items: Vec<String> = summary
                    .sentences
                    .iter()
                    .map(|s| format!("<li>{}</li>", html_escape(s.text.trim())))
                    .collect();
                self.part(&format!(
                    "<section class=\"summary\">\n<h2>Summary</h2>\n<ul>\n{}\n</ul>\n</section>",
                    items.join("\n")
                ))?;
            } else {
                self.part("## Summary")?;
                let items: Vec<String> = summary
                    .sentences
                    .iter()
                    .map(|s| format!("- {}", escape(s.text.trim())))
                    .collect();
                self.part(&items.join("\n"))?;
            }
        }
        if let Some(mut table) = self.table.take() {
            if self.markdown.rows > 0 {
                if html {
                    self.part("<section class=\"side-by-side\">\n<h2>Side by side</h2>\n<table>\n<tr><th>#</th><th>Nederlands</th><th>English</th></tr>")?;
                    self.written += table.copy_to(&mut self.out, &self.name)?;
                    self.write("\n</table>\n</section>")?;
                } else {
                    self.part("## Side by side")?;
                    self.part("| # | Nederlands | English |\n|--:|---|---|")?;
                    self.written += table.copy_to(&mut self.out, &self.name)?;
                }
            }
        }
        if html {
            self.part("</body>\n</html>")?;
        }
        if self.written > 0 {
            self.write("\n")?;
        }
        Ok(())
    }
}

/// `text` with `&`, `<` and `>` written as character references.
fn html_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 8);
    crate::formats::markup::escape_into(
        text,
        crate::formats::markup::Escape::HtmlText,
        false,
        &mut out,
    );
    out
}

/// `text` on one line, white space collapsed.
fn flat(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
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

/// Most bytes a [`Spool`] keeps in memory before it moves to a temporary file: a whole article's
/// parts never touch the disk, a large streamed document's take about its output's size on disk.
const SPOOL_IN_MEMORY: usize = 4 << 20;

/// Part of an output that must wait until something known only at the end (the summary) is
/// written: in memory up to [`SPOOL_IN_MEMORY`], then in a temporary file in `dir`.
struct Spool {
    dir: PathBuf,
    data: SpoolData,
    len: u64,
    /// Bytes kept in memory at most ([`SPOOL_IN_MEMORY`]; tests lower it).
    limit: usize,
}

enum SpoolData {
    Memory(Vec<u8>),
    File {
        path: PathBuf,
        file: BufWriter<File>,
        /// Whether the file's name is already gone (Unix: an open file outlives its name).
        unlinked: bool,
    },
}

static SPOOL_COUNTER: AtomicU64 = AtomicU64::new(0);

impl Spool {
    fn new(dir: PathBuf) -> Spool {
        Spool {
            dir,
            data: SpoolData::Memory(Vec::new()),
            len: 0,
            limit: SPOOL_IN_MEMORY,
        }
    }

    fn write(&mut self, bytes: &[u8]) -> Result<()> {
        if let SpoolData::Memory(buf) = &mut self.data {
            if buf.len() + bytes.len() <= self.limit {
                buf.extend_from_slice(bytes);
                self.len += bytes.len() as u64;
                return Ok(());
            }
            let held = std::mem::take(buf);
            self.spill()?;
            self.append(&held)?;
        }
        self.append(bytes)?;
        self.len += bytes.len() as u64;
        Ok(())
    }

    /// Moves the spool to a new temporary file (empty; the caller writes what memory held).
    fn spill(&mut self) -> Result<()> {
        let path = self.dir.join(format!(
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
        self.data = SpoolData::File {
            path,
            file: BufWriter::with_capacity(1 << 16, file),
            unlinked,
        };
        Ok(())
    }

    fn append(&mut self, bytes: &[u8]) -> Result<()> {
        match &mut self.data {
            SpoolData::Memory(buf) => buf.extend_from_slice(bytes),
            SpoolData::File { path, file, .. } => {
                file.write_all(bytes).map_err(|e| Error::io(&*path, e))?
            }
        }
        Ok(())
    }

    /// Copies everything written to `out`; returns the number of bytes.
    fn copy_to(&mut self, out: &mut dyn Write, out_name: &Path) -> Result<u64> {
        let (path, file) = match &mut self.data {
            SpoolData::Memory(buf) => {
                out.write_all(buf).map_err(|e| Error::io(out_name, e))?;
                return Ok(buf.len() as u64);
            }
            SpoolData::File { path, file, .. } => (&*path, file),
        };
        file.flush().map_err(|e| Error::io(path, e))?;
        let file = file.get_mut();
        file.rewind().map_err(|e| Error::io(path, e))?;
        let mut reader = std::io::Read::take(&mut *file, self.len);
        let mut buf = vec![0u8; 1 << 16];
        let mut copied = 0;
        loop {
            let n =
                crate::input::read_some(&mut reader, &mut buf).map_err(|e| Error::io(path, e))?;
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
        if let SpoolData::File {
            path,
            unlinked: false,
            ..
        } = &self.data
        {
            let _ = std::fs::remove_file(path);
        }
    }
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
        assert_eq!(exts, ["txt", "md", "json", "jsonl", "html"]);
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

    use crate::record::{SummaryItem, FORMAT_VERSION};
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
                    alignment: None,
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
        spill: bool,
    ) -> String {
        let dir = tempfile::tempdir().unwrap();
        let mut w =
            StreamWriter::new(Vec::new(), "<test>", format, options, Some(dir.path())).unwrap();
        if spill {
            // Every spooled byte goes through a temporary file.
            for spool in w
                .json
                .iter_mut()
                .flat_map(|j| [&mut j.translation, &mut j.sentences])
                .chain(w.table.as_mut())
            {
                spool.limit = 0;
            }
        }
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
    fn where_blocks_are_cut_and_where_parts_are_spooled_never_changes_the_output() {
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
                            if format == OutputFormat::Json {
                                // The JSON writer's hand-made layout is serde's pretty printing
                                // of the whole record.
                                let serde = serde_json::to_string_pretty(&output).unwrap() + "\n";
                                assert_eq!(want, serde, "{text:?} {max_chars} {summary:?}");
                            }
                            for starts in &splits {
                                for spill in [false, true] {
                                    let got = streamed(&output, format, &options, starts, spill);
                                    assert_eq!(
                                        got, want,
                                        "{format} {text:?} {max_chars} {summary:?} {starts:?} {spill}"
                                    );
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    #[test]
    fn markdown_and_text_layouts() {
        let text = "bron: ANP\nNieuwe brug\n\nDe brug is open. Fietsers rijden erover.\n\n- Lengte: 300 meter\n- Bouwtijd: drie jaar\n\nSlot.";
        let mut output = fake_output(text, 0, Some(1));
        for s in &mut output.sentences {
            if let Some(t) = s.translation.as_mut() {
                *t = format!("EN {}", s.source.trim());
            }
        }
        output.translation = crate::record::assemble(&output.sentences);
        if let Some(summary) = output.summary.as_mut() {
            summary.sentences[0].text = "EN De brug is open.".into();
        }
        let options = RenderOptions::default().with_bilingual(true);
        let markdown = render(&output, OutputFormat::Markdown, &options).unwrap();
        assert_eq!(
            markdown,
            "**bron:** ANP\n\n# EN Nieuwe brug\n\nEN De brug is open. EN Fietsers rijden erover.\n\n\
             - EN Lengte: 300 meter\n- EN Bouwtijd: drie jaar\n\nEN Slot.\n\n## Summary\n\n\
             - EN De brug is open.\n\n## Side by side\n\n| # | Nederlands | English |\n|--:|---|---|\n\
             | 1 | Nieuwe brug | EN Nieuwe brug |\n| 2 | De brug is open. | EN De brug is open. |\n\
             | 3 | Fietsers rijden erover. | EN Fietsers rijden erover. |\n\
             | 4 | Lengte: 300 meter | EN Lengte: 300 meter |\n| 5 | Bouwtijd: drie jaar | EN Bouwtijd: drie jaar |\n\
             | 6 | Slot. | EN Slot. |\n"
        );
        let plain = render(&output, OutputFormat::Text, &options).unwrap();
        assert_eq!(
            plain,
            "bron: ANP\nEN Nieuwe brug\n\nEN De brug is open. EN Fietsers rijden erover.\n\n\
             - EN Lengte: 300 meter\n- EN Bouwtijd: drie jaar\n\nEN Slot.\n\nSummary: EN De brug is open.\n"
        );
    }
}
