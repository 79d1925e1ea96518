//! Input formats: what a document's bytes are besides text. Plain text goes straight to the
//! pipeline; a JSON-lines corpus is one document per record ([`crate::corpus`]); HTML and
//! Markdown are [`Markup`]: their text is translated in place, the rest kept as written.

mod html;
mod markdown;
pub(crate) mod markup;
mod office;
mod package;
mod subtitles;
pub(crate) mod xml;

pub use package::PackageLimits;

use std::ops::Range;

use markup::{render_unit, Role, Unit, UnitSentence};

use std::io::Read;
use std::path::Path;
use std::str::FromStr;

use serde::Serialize;

use crate::error::{Error, Result};

/// What an input is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InputFormat {
    /// Plain text (an article: headline, paragraphs, lists, metadata lines).
    Text,
    /// JSON lines: one record per line with an id and a text ([`crate::corpus`]).
    Jsonl,
    /// An HTML page or fragment ([`Markup`]).
    Html,
    /// A Markdown document ([`Markup`]).
    Markdown,
    /// A Word document (Office Open XML, `.docx`).
    Docx,
    /// A PowerPoint presentation (Office Open XML, `.pptx`).
    Pptx,
    /// An OpenDocument text (`.odt`).
    Odt,
    /// An OpenDocument presentation (`.odp`).
    Odp,
    /// An EPUB book.
    Epub,
    /// SubRip subtitles (`.srt`).
    Srt,
    /// WebVTT subtitles (`.vtt`).
    Vtt,
}

impl InputFormat {
    /// The format of a file, by its extension: `.jsonl` and `.ndjson` are JSON lines, `.html`,
    /// `.htm` and `.xhtml` HTML, `.md`, `.markdown` and `.mdown` Markdown, `.docx`, `.pptx`,
    /// `.odt`, `.odp`, `.epub`, `.srt` and `.vtt` themselves, anything else text.
    pub fn of_path(path: &Path) -> InputFormat {
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("jsonl" | "ndjson") => InputFormat::Jsonl,
            Some("html" | "htm" | "xhtml") => InputFormat::Html,
            Some("md" | "markdown" | "mdown" | "mkd") => InputFormat::Markdown,
            Some("docx" | "docm") => InputFormat::Docx,
            Some("pptx" | "pptm") => InputFormat::Pptx,
            Some("odt") => InputFormat::Odt,
            Some("odp") => InputFormat::Odp,
            Some("epub") => InputFormat::Epub,
            Some("srt") => InputFormat::Srt,
            Some("vtt") => InputFormat::Vtt,
            _ => InputFormat::Text,
        }
    }

    /// The format of an input: `given` (`--input-format`, the API field), else the extension
    /// of `name` ([`InputFormat::of_path`]), else text (standard input, `-`).
    pub fn choose(given: Option<InputFormat>, name: Option<&Path>) -> InputFormat {
        match (given, name) {
            (Some(f), _) => f,
            (None, Some(path)) if path != Path::new("-") => InputFormat::of_path(path),
            (None, _) => InputFormat::Text,
        }
    }

    /// The name used on the command line.
    pub fn name(self) -> &'static str {
        match self {
            InputFormat::Text => "text",
            InputFormat::Jsonl => "jsonl",
            InputFormat::Html => "html",
            InputFormat::Markdown => "markdown",
            InputFormat::Docx => "docx",
            InputFormat::Pptx => "pptx",
            InputFormat::Odt => "odt",
            InputFormat::Odp => "odp",
            InputFormat::Epub => "epub",
            InputFormat::Srt => "srt",
            InputFormat::Vtt => "vtt",
        }
    }

    /// Every format, in documentation order.
    pub const ALL: [InputFormat; 11] = [
        InputFormat::Text,
        InputFormat::Markdown,
        InputFormat::Html,
        InputFormat::Jsonl,
        InputFormat::Docx,
        InputFormat::Pptx,
        InputFormat::Odt,
        InputFormat::Odp,
        InputFormat::Epub,
        InputFormat::Srt,
        InputFormat::Vtt,
    ];

    /// The file extension of a document in this format.
    pub fn extension(self) -> &'static str {
        match self {
            InputFormat::Text => "txt",
            InputFormat::Markdown => "md",
            f => f.name(),
        }
    }

    /// The media type of a document in this format.
    pub fn media_type(self) -> &'static str {
        match self {
            InputFormat::Text => "text/plain; charset=utf-8",
            InputFormat::Jsonl => "application/x-ndjson",
            InputFormat::Html => "text/html; charset=utf-8",
            InputFormat::Markdown => "text/markdown; charset=utf-8",
            InputFormat::Docx => {
                "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
            }
            InputFormat::Pptx => {
                "application/vnd.openxmlformats-officedocument.presentationml.presentation"
            }
            InputFormat::Odt => "application/vnd.oasis.opendocument.text",
            InputFormat::Odp => "application/vnd.oasis.opendocument.presentation",
            InputFormat::Epub => "application/epub+zip",
            InputFormat::Srt => "application/x-subrip; charset=utf-8",
            InputFormat::Vtt => "text/vtt; charset=utf-8",
        }
    }

    /// Whether documents of this format are zip packages (read as bytes, not text).
    pub fn is_package(self) -> bool {
        matches!(
            self,
            InputFormat::Docx
                | InputFormat::Pptx
                | InputFormat::Odt
                | InputFormat::Odp
                | InputFormat::Epub
        )
    }

    /// The output format that writes a document of this format as itself, translated in place
    /// (HTML as HTML, Markdown as Markdown, a DOCX as a DOCX, ...); `None` for text and JSON
    /// lines.
    pub fn document_format(self) -> Option<crate::output::OutputFormat> {
        match self {
            InputFormat::Html => Some(crate::output::OutputFormat::Html),
            InputFormat::Markdown => Some(crate::output::OutputFormat::Markdown),
            InputFormat::Text | InputFormat::Jsonl => None,
            f => Some(crate::output::OutputFormat::Own(f)),
        }
    }

    /// Whether documents of this format are [`Markup`].
    pub fn is_markup(self) -> bool {
        !matches!(self, InputFormat::Text | InputFormat::Jsonl)
    }
}

impl FromStr for InputFormat {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "text" | "txt" => Ok(InputFormat::Text),
            "jsonl" | "ndjson" => Ok(InputFormat::Jsonl),
            "html" | "htm" => Ok(InputFormat::Html),
            "markdown" | "md" => Ok(InputFormat::Markdown),
            other => InputFormat::ALL
                .into_iter()
                .find(|f| f.name() == other)
                .ok_or_else(|| {
                    Error::option(
                        "input format",
                        format!(
                            "unknown input format `{s}`: expected one of {}",
                            InputFormat::ALL.map(|f| f.name()).join(", ")
                        ),
                    )
                }),
        }
    }
}

/// The most bytes of HTML or Markdown read as one document (they are read whole).
pub const MAX_MARKUP_BYTES: usize = 64 << 20;

/// An HTML or Markdown document, read: its source and the units whose text is translated.
///
/// [`crate::pipeline::Pipeline::translate_markup`] translates it: the article (headings,
/// paragraphs, list items, with the page's author and date as metadata) goes through the pipeline
/// as a text would (segmenting, batching, the summary, the JSON record), attribute texts beside
/// it; the translations are then written back in place, inline markup moved to the aligned words.
#[derive(Debug, Clone)]
pub struct Markup {
    format: InputFormat,
    source: String,
    units: Vec<Unit>,
    metadata: Vec<(&'static str, String)>,
    /// Parts of `source` whose units are written back in a way of their own (office XML,
    /// subtitles), and for a package the entry each part was read from; empty for HTML and
    /// Markdown.
    parts: Vec<Part>,
    /// The zip that a package's parts were read from.
    package: Option<package::Package>,
    /// How the runs of run-dialect parts are rewritten.
    runs: office::Runs,
    /// Subtitles read with CRLF line ends, which input decoding made LF: written with CRLF.
    crlf: bool,
}

/// A part of a [`Markup`]'s source.
#[derive(Debug, Clone)]
struct Part {
    /// The zip entry (empty for a text document).
    entry: String,
    range: Range<usize>,
    kind: PartKind,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum PartKind {
    /// XHTML, through the HTML reader.
    Html,
    /// Office or package XML.
    Xml(office::Dialect),
    /// Subtitle cues.
    Cues,
}

impl Markup {
    /// Reads `source` as `format` ([`InputFormat::Html`] or [`InputFormat::Markdown`]).
    /// `name` (a path, `<stdin>`) appears in errors.
    pub fn parse(format: InputFormat, source: impl Into<String>, name: &str) -> Result<Markup> {
        let source = source.into();
        if source.len() > MAX_MARKUP_BYTES {
            return Err(Error::Input {
                source_name: name.to_string(),
                message: format!(
                    "{} bytes of {} is more than the {} MiB that are read whole: split it, or translate it as text (--input-format text)",
                    source.len(),
                    format.name(),
                    MAX_MARKUP_BYTES >> 20
                ),
                remedy: None,
            });
        }
        let (units, metadata) = match format {
            InputFormat::Html => {
                let parts = html::parse(&source, 0, name)?;
                (parts.units, parts.metadata)
            }
            InputFormat::Markdown => (markdown::parse(&source, name)?, Vec::new()),
            InputFormat::Srt | InputFormat::Vtt => {
                let mut runs = office::Runs::default();
                let units = subtitles::parse(&source, format == InputFormat::Vtt, name, &mut runs)?;
                let part = Part {
                    entry: String::new(),
                    range: 0..source.len(),
                    kind: PartKind::Cues,
                };
                return Ok(Markup {
                    format,
                    source,
                    units,
                    metadata: Vec::new(),
                    parts: vec![part],
                    package: None,
                    runs,
                    crlf: false,
                });
            }
            other => {
                return Err(Error::option(
                    "input format",
                    format!("{} is not a text markup format", other.name()),
                ))
            }
        };
        Ok(Markup {
            format,
            source,
            units,
            metadata,
            parts: Vec::new(),
            package: None,
            runs: office::Runs::default(),
            crlf: false,
        })
    }

    /// Opens a zip package ([`InputFormat::is_package`]) from its bytes, reading the parts
    /// that hold its text within `limits`. `name` appears in errors.
    pub fn open_package(
        format: InputFormat,
        bytes: Vec<u8>,
        name: &str,
        limits: PackageLimits,
    ) -> Result<Markup> {
        let package = package::Package::open(bytes, name, limits)?;
        let plan = package::plan(&package, format)?;
        let mut source = String::new();
        let mut units = Vec::new();
        let mut parts = Vec::new();
        let mut runs = office::Runs::default();
        for (entry, kind) in plan {
            let text = package.read_text(&entry)?;
            let part_name = package.part_name(&entry);
            let offset = source.len();
            source.push_str(&text);
            match kind {
                PartKind::Html => {
                    units.extend(html::parse(&text, offset, &part_name)?.units);
                }
                PartKind::Xml(dialect) => {
                    units.extend(office::parse(
                        &text, offset, dialect, &part_name, &mut runs,
                    )?);
                }
                PartKind::Cues => unreachable!("no package holds subtitles"),
            }
            parts.push(Part {
                entry,
                range: offset..source.len(),
                kind,
            });
        }
        units.sort_by_key(|u| u.range.start);
        if source.len() > MAX_MARKUP_BYTES * 4 {
            return Err(Error::Input {
                source_name: name.to_string(),
                message: format!(
                    "its text parts hold {} MiB, more than the {} MiB that are read whole",
                    source.len() >> 20,
                    (MAX_MARKUP_BYTES * 4) >> 20
                ),
                remedy: None,
            });
        }
        Ok(Markup {
            format,
            source,
            units,
            metadata: Vec::new(),
            parts,
            package: Some(package),
            runs,
            crlf: false,
        })
    }

    /// Reads a document from `reader` (decoded as `decode` says: strict UTF-8 by default) and
    /// parses it; at most [`MAX_MARKUP_BYTES`] are read. `name` appears in errors.
    pub fn read(
        format: InputFormat,
        reader: impl std::io::Read,
        name: &str,
        decode: &crate::input::DecodeOptions,
    ) -> Result<(Markup, crate::input::DecodeStats)> {
        let mut bytes = Vec::new();
        std::io::Read::take(reader, MAX_MARKUP_BYTES as u64 + 1)
            .read_to_end(&mut bytes)
            .map_err(|e| Error::io(name, e))?;
        if bytes.len() > MAX_MARKUP_BYTES {
            return Err(Error::Input {
                source_name: name.to_string(),
                message: format!(
                    "it is more than the {} MiB of {} that are read whole: split it, or translate it as text (--input-format text)",
                    MAX_MARKUP_BYTES >> 20,
                    format.name()
                ),
                remedy: None,
            });
        }
        if format.is_package() {
            let stats = crate::input::DecodeStats {
                text_bytes: bytes.len() as u64,
                ..Default::default()
            };
            let markup = Markup::open_package(format, bytes, name, PackageLimits::default())?;
            return Ok((markup, stats));
        }
        let (text, stats) = crate::input::decode_with_stats(&bytes, name, decode)?;
        let mut markup = Markup::parse(format, text, name)?;
        markup.crlf = matches!(format, InputFormat::Srt | InputFormat::Vtt)
            && stats.line_endings_changed > 0
            && bytes.windows(2).any(|w| w == b"\r\n");
        Ok((markup, stats))
    }

    /// [`Markup::read`] of a file.
    pub fn read_file(
        format: InputFormat,
        path: &Path,
        decode: &crate::input::DecodeOptions,
    ) -> Result<(Markup, crate::input::DecodeStats)> {
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        Markup::read(format, file, &path.display().to_string(), decode)
    }

    /// The format it was read as.
    pub fn format(&self) -> InputFormat {
        self.format
    }

    pub(crate) fn unit_count(&self) -> usize {
        self.units.len()
    }

    pub(crate) fn role(&self, unit: usize) -> Role {
        self.units[unit].role
    }

    /// The document as given.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The texts that are translated, in source order (attribute texts included).
    pub fn texts(&self) -> impl Iterator<Item = &str> {
        self.units.iter().map(|u| u.text.as_str())
    }

    /// The article that the pipeline reads: leading metadata fields (author, date), then every
    /// title, heading, paragraph and list item as a paragraph of its own (list items with a `-`
    /// marker); and where each unit's text is in it.
    pub(crate) fn article(&self) -> (String, Vec<(usize, Range<usize>)>) {
        let mut out = String::new();
        for (key, value) in &self.metadata {
            if !value.is_empty() && !value.contains('\n') {
                out.push_str(&format!("{key}: {value}\n"));
            }
        }
        let mut places = Vec::new();
        for (i, u) in self.units.iter().enumerate() {
            if u.role == Role::Extra {
                continue;
            }
            if !out.is_empty() {
                out.push('\n');
                if !out.ends_with("\n\n") {
                    out.push('\n');
                }
            }
            if u.role == Role::Item {
                out.push_str("- ");
            }
            let start = out.len();
            out.push_str(&u.text);
            places.push((i, start..out.len()));
        }
        (out, places)
    }

    /// The attribute texts (alt, title, descriptions), each a paragraph of its own, and where
    /// each is.
    pub(crate) fn extras(&self) -> (String, Vec<(usize, Range<usize>)>) {
        let mut out = String::new();
        let mut places = Vec::new();
        for (i, u) in self.units.iter().enumerate() {
            if u.role != Role::Extra {
                continue;
            }
            if !out.is_empty() {
                out.push_str("\n\n");
            }
            let start = out.len();
            out.push_str(&u.text);
            places.push((i, start..out.len()));
        }
        (out, places)
    }

    /// The document with every unit replaced by its translation (`sentences[i]`: unit `i`'s
    /// sentences; a unit without any keeps its text). For a package, the translated parts laid
    /// end to end: [`Markup::render_file`] writes the package.
    pub(crate) fn render(&self, sentences: &[Vec<UnitSentence>]) -> String {
        let done = self.render_units(sentences);
        let mut out = String::with_capacity(self.source.len() + self.source.len() / 4);
        self.splice(0..self.source.len(), &done, None, &mut out);
        if self.crlf {
            out = out.replace('\n', "\r\n");
        }
        out
    }

    /// Whether it is a zip package (DOCX, PPTX, ODT, ODP, EPUB), written back as a file
    /// ([`crate::pipeline::MarkupOutput::file`]).
    pub fn is_package(&self) -> bool {
        self.package.is_some()
    }

    /// The translated package: its translated parts replaced, every other entry as it was;
    /// and the translated parts laid end to end. With `languages` (source, target), the
    /// language tags of the source language in the translated parts (and in a Word document's
    /// styles and settings) become the target's.
    pub(crate) fn render_file(
        &self,
        sentences: &[Vec<UnitSentence>],
        languages: Option<(&str, &str)>,
    ) -> Result<(Vec<u8>, String)> {
        let done = self.render_units(sentences);
        let mut whole = String::with_capacity(self.source.len() + self.source.len() / 4);
        self.splice(0..self.source.len(), &done, None, &mut whole);
        let Some(package) = &self.package else {
            return Ok((whole.clone().into_bytes(), whole));
        };
        let mut replaced = std::collections::HashMap::new();
        for part in &self.parts {
            let mut out = String::with_capacity(part.range.len() + part.range.len() / 4);
            self.splice(part.range.clone(), &done, None, &mut out);
            if let Some((source, target)) = languages {
                out = office::retag(&out, source, target);
            }
            replaced.insert(part.entry.clone(), out);
        }
        if let (Some((source, target)), InputFormat::Docx) = (languages, self.format) {
            for entry in ["word/styles.xml", "word/settings.xml"] {
                if package.has(entry) {
                    let text = package.read_text(entry)?;
                    replaced.insert(entry.to_string(), office::retag(&text, source, target));
                }
            }
        }
        Ok((package.write(&replaced)?, whole))
    }

    /// The part holding source byte `at`.
    fn part_at(&self, at: usize) -> Option<&Part> {
        self.parts.iter().find(|p| p.range.contains(&at))
    }

    /// Each unit's rendering (`None`: kept as written).
    fn render_units(&self, sentences: &[Vec<UnitSentence>]) -> Vec<Option<String>> {
        // Units inside another unit's markup (an attribute of a link) are written with it.
        let mut done: Vec<Option<String>> = vec![None; self.units.len()];
        let order: Vec<usize> = {
            // Innermost first: a unit is rendered after the units its range contains.
            let mut o: Vec<usize> = (0..self.units.len()).collect();
            o.sort_by_key(|&i| self.units[i].range.len());
            o
        };
        for &i in &order {
            let unit = &self.units[i];
            let kind = self.part_at(unit.range.start).map(|p| p.kind);
            // Office runs and subtitle cues are rewritten from markers around the markup.
            let marked = matches!(kind, Some(PartKind::Xml(d)) if d.is_run())
                || kind == Some(PartKind::Cues);
            let rendered = {
                let mut copy = |range: Range<usize>, out: &mut String| {
                    if !marked {
                        self.splice(range, &done, Some(i), out);
                        return;
                    }
                    out.push(office::MARK);
                    out.push_str(&range.start.to_string());
                    out.push(office::MARK_END);
                    let mut body = String::new();
                    self.splice(range, &done, Some(i), &mut body);
                    // The markers' characters in the document itself (an attribute's value)
                    // are written as references (XML) or replaced (subtitles).
                    if body.contains([office::MARK, office::MARK_END, office::MARK_CLOSE]) {
                        let xml = kind != Some(PartKind::Cues);
                        body = body
                            .chars()
                            .map(|c| match c {
                                office::MARK | office::MARK_END | office::MARK_CLOSE if xml => {
                                    format!("&#x{:X};", c as u32)
                                }
                                office::MARK | office::MARK_END | office::MARK_CLOSE => {
                                    '\u{fffd}'.to_string()
                                }
                                c => c.to_string(),
                            })
                            .collect();
                    }
                    out.push_str(&body);
                    out.push(office::MARK_CLOSE);
                };
                match sentences.get(i).filter(|s| !s.is_empty()) {
                    Some(s) => {
                        let r = render_unit(unit, s, &mut copy);
                        match kind {
                            Some(PartKind::Xml(d)) if d.is_run() => office::write_runs(
                                &r,
                                d,
                                &self.runs,
                                self.runs.base.get(&unit.range.start).copied(),
                            ),
                            Some(PartKind::Cues) => {
                                let r = subtitles::write_cues(&r, unit, &self.source, &self.runs);
                                match r {
                                    Some(r) => r,
                                    None => {
                                        // A cue left empty: placed again by relative position.
                                        let plain: Vec<UnitSentence> = s
                                            .iter()
                                            .map(|x| UnitSentence {
                                                alignment: None,
                                                ..x.clone()
                                            })
                                            .collect();
                                        let r = render_unit(unit, &plain, &mut copy);
                                        subtitles::write_cues(&r, unit, &self.source, &self.runs)
                                            .unwrap_or_else(|| {
                                                subtitles::spread(
                                                    &r,
                                                    unit,
                                                    &self.source,
                                                    &self.runs,
                                                )
                                            })
                                    }
                                }
                            }
                            _ => r,
                        }
                    }
                    None => {
                        let mut out = String::new();
                        self.splice(unit.range.clone(), &done, Some(i), &mut out);
                        out
                    }
                }
            };
            done[i] = Some(rendered);
        }
        done
    }

    /// Writes `range` of the source, with the rendered units inside it (other than `except`,
    /// and not inside another) in place of their text.
    fn splice(
        &self,
        range: Range<usize>,
        done: &[Option<String>],
        except: Option<usize>,
        out: &mut String,
    ) {
        let mut pos = range.start;
        // Units are in source order: only those starting inside the range are looked at.
        let first = self.units.partition_point(|u| u.range.start < range.start);
        for (i, u) in self.units.iter().enumerate().skip(first) {
            if u.range.start >= range.end {
                break;
            }
            if Some(i) == except
                || u.range.start < pos
                || u.range.end > range.end
                || u.range.is_empty()
            {
                continue;
            }
            let Some(text) = &done[i] else { continue };
            out.push_str(&self.source[pos..u.range.start]);
            out.push_str(text);
            pos = u.range.end;
        }
        out.push_str(&self.source[pos..range.end]);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_by_extension() {
        assert_eq!(
            InputFormat::of_path(Path::new("a/b.JSONL")),
            InputFormat::Jsonl
        );
        assert_eq!(
            InputFormat::of_path(Path::new("b.ndjson")),
            InputFormat::Jsonl
        );
        assert_eq!(InputFormat::of_path(Path::new("b.txt")), InputFormat::Text);
        assert_eq!(InputFormat::of_path(Path::new("b")), InputFormat::Text);
        assert_eq!("JSONL".parse::<InputFormat>().unwrap(), InputFormat::Jsonl);
        assert!("xml".parse::<InputFormat>().is_err());
    }
}
