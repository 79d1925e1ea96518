//! Input formats: what a document's bytes are besides text. Plain text goes straight to the
//! pipeline; a JSON-lines corpus is one document per record ([`crate::corpus`]); HTML and
//! Markdown are [`Markup`]: their text is translated in place, the rest kept as written.

mod html;
mod markdown;
pub(crate) mod markup;

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
}

impl InputFormat {
    /// The format of a file, by its extension: `.jsonl` and `.ndjson` are JSON lines, `.html`,
    /// `.htm` and `.xhtml` HTML, `.md`, `.markdown` and `.mdown` Markdown, anything else text.
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
        }
    }

    /// The output format that writes a document of this format as itself, translated in place
    /// (HTML as HTML, Markdown as Markdown); `None` for text and JSON lines.
    pub fn document_format(self) -> Option<crate::output::OutputFormat> {
        match self {
            InputFormat::Html => Some(crate::output::OutputFormat::Html),
            InputFormat::Markdown => Some(crate::output::OutputFormat::Markdown),
            _ => None,
        }
    }

    /// Whether documents of this format are [`Markup`].
    pub fn is_markup(self) -> bool {
        matches!(self, InputFormat::Html | InputFormat::Markdown)
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
            _ => Err(Error::option(
                "input format",
                format!("unknown input format `{s}`: expected text, markdown, html or jsonl"),
            )),
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
            other => {
                return Err(Error::option(
                    "input format",
                    format!("{} is not a markup format", other.name()),
                ))
            }
        };
        Ok(Markup {
            format,
            source,
            units,
            metadata,
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
        let (text, stats) = crate::input::decode_with_stats(&bytes, name, decode)?;
        Ok((Markup::parse(format, text, name)?, stats))
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
    /// sentences; a unit without any keeps its text).
    pub(crate) fn render(&self, sentences: &[Vec<UnitSentence>]) -> String {
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
            let rendered = {
                let mut copy = |range: Range<usize>, out: &mut String| {
                    self.splice(range, &done, Some(i), out);
                };
                match sentences.get(i).filter(|s| !s.is_empty()) {
                    Some(s) => render_unit(unit, s, &mut copy),
                    None => {
                        let mut out = String::new();
                        self.splice(unit.range.clone(), &done, Some(i), &mut out);
                        out
                    }
                }
            };
            done[i] = Some(rendered);
        }
        let mut out = String::with_capacity(self.source.len() + self.source.len() / 4);
        self.splice(0..self.source.len(), &done, None, &mut out);
        out
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
        for (i, u) in self.units.iter().enumerate() {
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
