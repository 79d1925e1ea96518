//! Sentence segmentation for translation (Dutch rules by default, language-independent ones
//! for other languages, see [`Segmenter::language`]), and reassembly of the translated article.
//!
//! MarianMT (opus-mt) models are trained on single sentences: given a whole paragraph they drop
//! sentences, given fragments they invent text. This module cuts an article into the units the
//! model should see and puts the translations back into the article's layout:
//!
//! 1. **Metadata.** Leading `key value` fields (`date 2020-10`, `bron: ANP`) at the very start of
//!    the document become [`SegmentKind::Metadata`] segments, which are not translated.
//! 2. **Layout.** Blank lines separate paragraphs. A line without final punctuation is a headline
//!    ([`SegmentKind::Headline`]); a line opening with `-`, `*`, `•`, `1.`, `1)` or `a)` is a list
//!    item ([`SegmentKind::ListItem`]); other lines of a paragraph are joined into running text.
//! 3. **Sentences.** Running text is cut after `.`, `?`, `!` and ellipses (with any closing quotes
//!    and brackets) unless the rules for Dutch abbreviations (`bijv.`, `o.a.`, `dhr.`, `enz.`,
//!    months, ...; `Kon.`, `Univ.`, `St.` and the other first words of names), titles and
//!    initials (`J.P. Balkenende`, `prof.dr. J.A.M. de Vries`, `Z.K.H.`, `Hr.Ms.`), numbers
//!    (`4,5`, `14.30`, `1.000`), URLs and domain names, and lowercase sentence starts
//!    (`'s avonds`, `iPhone`) say otherwise. A sentence may open with an ellipsis
//!    (`Het was stil. ... Hij ging weg.`).
//! 4. **Long sentences.** A segment longer than [`Segmenter::max_chars`] characters is cut at clause
//!    boundaries by [`split_long`] (a long line or paragraph in lines or paragraphs mode first
//!    between its sentences); the pieces after the first have [`Segment::continues`] set.
//!    [`Document::split_long`] does the same with any length measure, e.g. model tokens.
//! 5. **Reassembly.** [`Document::reassemble`] takes one translation per translatable segment and
//!    rebuilds paragraphs, headline and list lines, and the metadata.
//!
//! Segments carry byte spans into the input. Spans are in order, never overlap, lie on character
//! boundaries, and only white space, control characters, a byte-order mark and list markers lie
//! outside them: nothing is lost or reordered. Any input is accepted, in time linear in its length
//! (tens of MB/s in release builds, also for 50 MB without punctuation or white space).
//!
//! ```
//! use tolk::segment::{Segmenter, SegmentKind};
//!
//! let doc = Segmenter::new().segment("date 2020-10 Het kabinet valt. Rutte biedt ontslag aan.");
//! let texts: Vec<&str> = doc.translatable().map(|s| s.text.as_str()).collect();
//! assert_eq!(texts, ["Het kabinet valt.", "Rutte biedt ontslag aan."]);
//! assert!(matches!(&doc.segments[0].kind, SegmentKind::Metadata { key, value } if key == "date" && value == "2020-10"));
//!
//! let english = ["The cabinet falls.", "Rutte resigns."];
//! assert_eq!(doc.reassemble(&english).unwrap(), "date 2020-10\nThe cabinet falls. Rutte resigns.");
//! ```

mod abbrev;
pub(crate) mod chars;
pub(crate) mod english;
mod language;
mod layout;
mod long;
mod metadata;
mod sentence;

#[cfg(test)]
mod golden;
#[cfg(test)]
mod tests;

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;
use std::str::FromStr;

use serde::Serialize;

use crate::error::{Error, Result};

pub use language::Language;
pub use long::split_long;

/// Default for [`Segmenter::max_chars`].
pub const DEFAULT_MAX_CHARS: usize = 400;

/// What one segment is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SegmentKind {
    /// A sentence of running text (or, in lines and paragraphs modes, a line or paragraph).
    Sentence,
    /// A line without final punctuation: a headline or subheading.
    Headline,
    /// A list item; its text excludes the marker, which reassembly puts back.
    ListItem {
        /// The marker as written: `-`, `•`, `1.`, `a)`, ...
        marker: String,
    },
    /// A leading metadata field; never translated, reassembled as written.
    Metadata {
        /// The key as written, without a colon (`date`).
        key: String,
        /// The value (`2020-10`).
        value: String,
    },
}

impl SegmentKind {
    /// Whether segments of this kind are sent to the translator (all but metadata).
    pub fn is_translatable(&self) -> bool {
        !matches!(self, SegmentKind::Metadata { .. })
    }
}

/// Appends one segment to a reassembled article (the rules of [`Document::reassemble`]): the
/// separator from the segment written before (`prev`: its paragraph and whether it was metadata),
/// a list item's marker unless the item continues, then `body`. Writes nothing, and returns false,
/// when there is neither body nor marker.
pub(crate) fn append_segment(
    out: &mut String,
    prev: Option<(usize, bool)>,
    paragraph: usize,
    kind: &SegmentKind,
    continues: bool,
    starts_line: bool,
    body: &str,
) -> bool {
    let marker = match kind {
        SegmentKind::ListItem { marker } if !continues => Some(marker.as_str()),
        _ => None,
    };
    if body.is_empty() && marker.is_none() {
        return false;
    }
    if let Some((prev_paragraph, prev_metadata)) = prev {
        out.push_str(if paragraph != prev_paragraph {
            "\n\n"
        } else if continues {
            " "
        } else if starts_line || prev_metadata {
            "\n"
        } else {
            " "
        });
    }
    if let Some(marker) = marker {
        out.push_str(marker);
        if !body.is_empty() {
            out.push(' ');
        }
    }
    out.push_str(body);
    true
}

/// `text` with every run of white space (line breaks, tabs, zero-width spaces included) replaced
/// by one space and none at either end: what a translation model is given for a segment.
pub fn flatten(text: &str) -> Cow<'_, str> {
    let mut prev_space = false;
    let needs_work = text.chars().any(|c| {
        let space = chars::is_space(c);
        let bad = space && (c != ' ' || prev_space);
        prev_space = space;
        bad
    }) || text.starts_with(' ')
        || text.ends_with(' ');
    if !needs_work {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len());
    for (n, word) in text
        .split(chars::is_space)
        .filter(|w| !w.is_empty())
        .enumerate()
    {
        if n > 0 {
            out.push(' ');
        }
        out.push_str(word);
    }
    Cow::Owned(out)
}

/// One unit of the document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Segment {
    /// The text, exactly `input[span]`. A sentence wrapped over several lines keeps its line
    /// breaks; [`Segment::flat_text`] gives it on one line.
    pub text: String,
    /// Byte range in the input.
    pub span: Range<usize>,
    /// Index of the paragraph (block between blank lines), from 0.
    pub paragraph: usize,
    /// What the segment is.
    pub kind: SegmentKind,
    /// Whether this is a piece of an over-long sentence that continues the previous segment;
    /// reassembly joins their translations with a space.
    pub continues: bool,
    /// Whether a line break lies between the previous segment and this one in the input (true for
    /// the first segment); reassembly starts a new line there.
    pub starts_line: bool,
}

impl Segment {
    /// The text with every run of white space (line breaks included) replaced by one space: the
    /// form to give a translation model ([`flatten`]).
    pub fn flat_text(&self) -> Cow<'_, str> {
        flatten(&self.text)
    }
}

/// How text is cut into segments.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SegmentMode {
    /// Sentences (the default).
    #[default]
    Sentences,
    /// Every non-empty line is one segment, with no sentence splitting.
    Lines,
    /// Every paragraph is one segment; headlines and list items stay separate.
    Paragraphs,
}

impl FromStr for SegmentMode {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "sentences" | "sentence" => Ok(SegmentMode::Sentences),
            "lines" | "line" => Ok(SegmentMode::Lines),
            "paragraphs" | "paragraph" => Ok(SegmentMode::Paragraphs),
            _ => Err(Error::option(
                "segment",
                format!("unknown segmentation mode `{s}`: expected sentences, lines or paragraphs"),
            )),
        }
    }
}

impl fmt::Display for SegmentMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SegmentMode::Sentences => "sentences",
            SegmentMode::Lines => "lines",
            SegmentMode::Paragraphs => "paragraphs",
        })
    }
}

/// Segmentation options; [`Segmenter::segment`] does the work.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Segmenter {
    /// How text is cut. Default: [`SegmentMode::Sentences`].
    pub mode: SegmentMode,
    /// Segments longer than this many characters are cut at clause boundaries; 0 turns cutting
    /// off. Default: [`DEFAULT_MAX_CHARS`] (400).
    pub max_chars: usize,
    /// Whether leading `key value` fields become metadata segments. Default: true.
    pub metadata: bool,
    /// The language of the text, which decides the sentence rules: Dutch gets the Dutch rules
    /// (abbreviations, titles, initials, numbers), English its abbreviations, any other
    /// language the language-independent ones (Unicode sentence marks, full-width `。！？`
    /// without a space after them, quotes, ellipses); the line structure is the same for all.
    /// Default: `None`, which is Dutch, and in a [`crate::pipeline::Pipeline`] the model's
    /// source language ([`crate::source::ModelFiles::source_language`]).
    pub language: Option<Language>,
}

impl Default for Segmenter {
    fn default() -> Self {
        Segmenter {
            mode: SegmentMode::Sentences,
            max_chars: DEFAULT_MAX_CHARS,
            metadata: true,
            language: None,
        }
    }
}

impl Segmenter {
    /// A segmenter with the default options.
    pub fn new() -> Self {
        Self::default()
    }

    /// Sets [`Segmenter::mode`].
    #[must_use]
    pub fn with_mode(mut self, mode: SegmentMode) -> Self {
        self.mode = mode;
        self
    }

    /// Sets [`Segmenter::max_chars`] (0: no limit).
    #[must_use]
    pub fn with_max_chars(mut self, max_chars: usize) -> Self {
        self.max_chars = max_chars;
        self
    }

    /// Sets [`Segmenter::metadata`].
    #[must_use]
    pub fn with_metadata(mut self, metadata: bool) -> Self {
        self.metadata = metadata;
        self
    }

    /// Sets [`Segmenter::language`].
    #[must_use]
    pub fn with_language(mut self, language: Language) -> Self {
        self.language = Some(language);
        self
    }

    /// The language whose rules are used: [`Segmenter::language`], or Dutch.
    pub fn effective_language(&self) -> Language {
        self.language.clone().unwrap_or_default()
    }

    pub(crate) fn rules(&self) -> language::Rules {
        self.language
            .as_ref()
            .map_or(language::Rules::Dutch, Language::rules)
    }

    /// Segments `text`. Never fails: every input, however odd, gives a document.
    pub fn segment(&self, text: &str) -> Document {
        Document {
            segments: layout::segment(text, self),
        }
    }
}

/// A segmented text.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Document {
    /// All segments in input order, metadata included.
    pub segments: Vec<Segment>,
}

impl Document {
    /// The segments to translate, in order (all but metadata).
    pub fn translatable(&self) -> impl Iterator<Item = &Segment> {
        self.segments.iter().filter(|s| s.kind.is_translatable())
    }

    /// Cuts every translatable segment whose `measure` exceeds `limit` at clause boundaries (see
    /// [`split_long`]), e.g. to keep sentences within a model's 512 positions:
    /// `doc.split_long(510, |s| tokenizer_len(s))`.
    pub fn split_long(&mut self, limit: usize, measure: impl Fn(&str) -> usize) {
        let mut out = Vec::with_capacity(self.segments.len());
        for segment in self.segments.drain(..) {
            if !segment.kind.is_translatable() || measure(&segment.text) <= limit {
                out.push(segment);
                continue;
            }
            let pieces = split_long(&segment.text, limit, &measure);
            let mut prev_end = None;
            for (n, piece) in pieces.into_iter().enumerate() {
                let starts_line = match prev_end {
                    None => segment.starts_line,
                    Some(end) => chars::has_line_break(&segment.text, end..piece.start),
                };
                prev_end = Some(piece.end);
                out.push(Segment {
                    text: segment.text[piece.clone()].to_string(),
                    span: segment.span.start + piece.start..segment.span.start + piece.end,
                    paragraph: segment.paragraph,
                    kind: segment.kind.clone(),
                    continues: n > 0 || segment.continues,
                    starts_line,
                });
            }
        }
        self.segments = out;
    }

    /// Rebuilds the article from one translation per [`Document::translatable`] segment, in order.
    ///
    /// Paragraphs are separated by a blank line; segments that started a line in the input
    /// (headlines, list items, one-sentence lines) start one in the output, list items with their
    /// marker; metadata fields come out unchanged, each on its own line; pieces of a cut sentence
    /// and sentences of one paragraph line are joined with one space. The result has no final
    /// line break.
    ///
    /// Fails with [`Error::Input`] when the number of translations differs from the number of
    /// translatable segments.
    pub fn reassemble<S: AsRef<str>>(&self, translations: &[S]) -> Result<String> {
        let expected = self.translatable().count();
        if translations.len() != expected {
            return Err(Error::Input {
                source_name: "<translations>".to_string(),
                message: format!(
                    "got {} translations for {expected} translatable segments",
                    translations.len()
                ),
                remedy: None,
            });
        }
        let mut translations = translations.iter().map(|t| t.as_ref().trim());
        let mut out = String::new();
        let mut prev: Option<(usize, bool)> = None;
        for segment in &self.segments {
            let body = if segment.kind.is_translatable() {
                translations.next().unwrap_or_default()
            } else {
                segment.text.as_str()
            };
            if append_segment(
                &mut out,
                prev,
                segment.paragraph,
                &segment.kind,
                segment.continues,
                segment.starts_line,
                body,
            ) {
                prev = Some((segment.paragraph, !segment.kind.is_translatable()));
            }
        }
        Ok(out)
    }
}
