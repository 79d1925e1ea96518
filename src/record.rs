//! The output schema: what a translated document is made of, as [`crate::pipeline::Pipeline`]
//! produces it and as the writers of [`crate::output`] and the JSON formats show it. Every field
//! here is part of the `--format json` and `jsonl` records (see [`FORMAT_VERSION`]).

use std::ops::Range;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

use crate::segment::SegmentKind;
use crate::source::ModelFiles;

/// Version of the JSON produced from [`Output`] (the `format_version` field); raised when a
/// field changes meaning or disappears, not when one is added.
pub const FORMAT_VERSION: u32 = 2;

/// Which model produced an output, and where it came from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ModelDescription {
    /// What was asked for: a catalogue name, `ORG/NAME[@REV]` or a directory.
    pub name: String,
    /// Hub repository id (none for a local directory).
    pub repo: Option<String>,
    /// Revision asked for (a catalogue entry's pinned one unless overridden).
    pub revision: Option<String>,
    /// Commit the revision resolved to.
    pub commit: Option<String>,
    /// The directory the files were loaded from.
    pub dir: PathBuf,
}

impl ModelDescription {
    /// The description of a resolved model.
    pub fn from_files(files: &ModelFiles) -> Self {
        let p = &files.provenance;
        ModelDescription {
            name: p.spec.to_string(),
            repo: p.repo.clone(),
            revision: p.revision.clone(),
            commit: p.commit.clone(),
            dir: files.dir.clone(),
        }
    }
}

/// Everything [`Pipeline::run`](crate::pipeline::Pipeline::run) produced for one article.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Output {
    /// [`FORMAT_VERSION`].
    pub format_version: u32,
    /// The input text, exactly as given (spans point into it).
    pub source: String,
    /// The English article, in the input's layout (no final line break).
    pub translation: String,
    /// The summary; `None` when summaries are off.
    pub summary: Option<OutputSummary>,
    /// Every segment, in input order, metadata included.
    pub sentences: Vec<SentenceOutput>,
    /// The model.
    pub model: ModelDescription,
    /// Time per stage.
    pub timings: Timings,
}

impl Output {
    /// Whether there was nothing to translate.
    pub fn is_empty(&self) -> bool {
        self.sentences.iter().all(|s| s.translation.is_none())
    }

    /// Source tokens fed to the model, over all sentences.
    pub fn source_tokens(&self) -> usize {
        self.sentences.iter().map(|s| s.source_tokens).sum()
    }

    /// Tokens generated, over all sentences.
    pub fn target_tokens(&self) -> usize {
        self.sentences.iter().map(|s| s.target_tokens).sum()
    }

    /// Segments that were translated.
    pub fn translated_sentences(&self) -> usize {
        self.sentences
            .iter()
            .filter(|s| s.translation.is_some())
            .count()
    }
}

/// One segment of the article and its translation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SentenceOutput {
    /// Position in [`Output::sentences`].
    pub index: usize,
    /// The Dutch text, exactly `Output::source[span]` (line breaks of a wrapped sentence kept).
    pub source: String,
    /// Byte range in [`Output::source`].
    pub span: Range<usize>,
    /// Paragraph number, from 0.
    pub paragraph: usize,
    /// Sentence, headline, list item (with its marker) or metadata (with key and value).
    #[serde(flatten)]
    pub kind: SegmentKind,
    /// Whether this is a piece of an over-long sentence that continues the previous segment.
    pub continues: bool,
    /// Whether a line break precedes it in the input.
    pub starts_line: bool,
    /// The English text; `None` for metadata, which is not translated.
    pub translation: Option<String>,
    /// The translation's score (beam search: length-normalised log-probability; greedy: mean
    /// token log-probability); `None` for metadata.
    pub score: Option<f32>,
    /// Tokens fed to the encoder, `</s>` included (0 for metadata).
    pub source_tokens: usize,
    /// Tokens generated, `</s>` included (0 for metadata).
    pub target_tokens: usize,
    /// Set when a guard changed the output: `passthrough` (nothing to translate: copied),
    /// `repetition` or `length` (runaway output, decoded again with repeated n-grams banned).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub flag: Option<&'static str>,
    /// How the translation lines up with the (flattened) source: both cut into units (words,
    /// or pieces in scripts written without spaces), as byte ranges, and for every target
    /// unit the source unit it is aligned with (the decoder's cross-attention; `null` for none).
    /// Present when alignments were asked for
    /// ([`crate::config::GenerationConfig::output_alignments`]: HTML and Markdown documents ask
    /// for them) and the segment was translated whole.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub alignment: Option<crate::align::Alignment>,
}

/// The summary of an article.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct OutputSummary {
    /// The summariser's name (`extractive`, ...).
    pub summarizer: String,
    /// The summary's sentences, in reading order.
    pub sentences: Vec<SummaryItem>,
    /// Set when the summariser read only the leading sentences of a long, streamed input (see
    /// [`crate::stream`]): how many it read (units: a sentence with its cut pieces joined,
    /// headlines included). Absent from the JSON when the whole input was read.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub limited_to: Option<usize>,
}

impl OutputSummary {
    /// The English summary as one text.
    pub fn text(&self) -> String {
        join(self.sentences.iter().map(|s| s.text.as_str()))
    }

    /// The Dutch sentences the summary was taken from, as one text; `None` if any summary
    /// sentence was generated (abstractive) rather than taken from the article.
    pub fn source_text(&self) -> Option<String> {
        let parts: Option<Vec<&str>> = self.sentences.iter().map(|s| s.source.as_deref()).collect();
        parts.map(|p| join(p.into_iter()))
    }
}

fn join<'a>(parts: impl Iterator<Item = &'a str>) -> String {
    parts.collect::<Vec<_>>().join(" ")
}

/// One sentence of a summary.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SummaryItem {
    /// The English sentence.
    pub text: String,
    /// The Dutch sentence it translates (extractive summaries); `None` for a generated one.
    pub source: Option<String>,
    /// Indices into [`Output::sentences`] (several for a sentence that was cut in pieces;
    /// empty for a generated one).
    pub sentences: Vec<usize>,
    /// How strongly the summariser chose it, in `[0, 1]`.
    pub score: f32,
}

/// Wall-clock time of each stage (serialised as seconds).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Timings {
    /// Loading (and, if needed, downloading) the model when the pipeline was built.
    #[serde(rename = "load_seconds", serialize_with = "seconds")]
    pub load: Duration,
    /// Segmentation, including the token-limit cuts.
    #[serde(rename = "segment_seconds", serialize_with = "seconds")]
    pub segment: Duration,
    /// Translation.
    #[serde(rename = "translate_seconds", serialize_with = "seconds")]
    pub translate: Duration,
    /// Summarisation.
    #[serde(rename = "summarize_seconds", serialize_with = "seconds")]
    pub summarize: Duration,
    /// The whole [`Pipeline::run`](crate::pipeline::Pipeline::run) (loading excluded).
    #[serde(rename = "total_seconds", serialize_with = "seconds")]
    pub total: Duration,
}

fn seconds<S: Serializer>(d: &Duration, s: S) -> std::result::Result<S::Ok, S::Error> {
    s.serialize_f64(d.as_secs_f64())
}

/// The translated article put together segment by segment with the rules of
/// [`Document::reassemble`](crate::segment::Document::reassemble): what it writes for a document's
/// segments given in any number of calls is what `reassemble` returns for the whole document.
#[derive(Debug, Default)]
pub(crate) struct Assembler {
    /// The paragraph of the last segment written, and whether it was metadata.
    prev: Option<(usize, bool)>,
}

impl Assembler {
    /// Appends segment `s` (its translation, or a metadata field as written) to `out`.
    pub(crate) fn push(&mut self, s: &SentenceOutput, out: &mut String) {
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

/// The translated article of a document's segments, in the input's layout (no final line break).
pub(crate) fn assemble(sentences: &[SentenceOutput]) -> String {
    let mut assembler = Assembler::default();
    let mut out = String::new();
    for s in sentences {
        assembler.push(s, &mut out);
    }
    out
}
