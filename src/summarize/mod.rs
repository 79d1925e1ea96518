//! Summaries of an (English) article: the [`Summarizer`] trait, the result types, the extractive
//! summariser that tolk uses by default, the abstractive one ([`AbstractiveSummarizer`], BART
//! models), an English sentence splitter and ROUGE scoring.
//!
//! The pipeline translates an article sentence by sentence, so the English sentences are already
//! there when the summariser runs:
//!
//! 1. The caller passes the sentences (and, if it has them, their paragraph numbers) as a
//!    [`Document`]. For raw English text, [`split_english`] finds the sentences first.
//! 2. A [`Summarizer`] picks or writes the summary sentences. [`ExtractiveSummarizer`] ranks the
//!    sentences it was given (graph centrality with a news lead bias, then redundancy removal)
//!    and returns the chosen ones in article order; [`AbstractiveSummarizer`] writes sentences
//!    of its own with a BART model, chunking long articles and summarising hierarchically.
//! 3. [`Summary::aligned`] maps an extractive summary back onto the source sentences that the
//!    English ones were translated from, for a bilingual summary.
//!
//! [`rouge`] scores a summary against reference summaries, the way Google's `rouge-score` does.

mod abstractive;
mod extractive;
mod porter;
pub mod rouge;
mod split;
mod terms;

#[cfg(test)]
mod eval;

pub use abstractive::{
    AbstractiveOptions, AbstractiveReport, AbstractiveSummarizer, GeneratedText, SummaryChunk,
    SummaryLevel, SummaryUnit,
};
pub use extractive::{ExtractiveOptions, ExtractiveSummarizer, Similarity, SummaryLength};
pub use split::{split_english, EnglishSentence};

use crate::error::{Error, Result};
use std::ops::Range;

use crate::segment::{Language, SegmentKind, Segmenter};

/// What a summariser reads: the sentences of one article, in order, and optionally the paragraph
/// each belongs to.
#[derive(Clone, Copy, Debug)]
pub struct Document<'a> {
    sentences: &'a [&'a str],
    paragraphs: Option<&'a [usize]>,
}

impl<'a> Document<'a> {
    /// An article given as its sentences, without paragraph information.
    pub fn new(sentences: &'a [&'a str]) -> Self {
        Document {
            sentences,
            paragraphs: None,
        }
    }

    /// Adds the paragraph number of each sentence (one per sentence, non-decreasing, usually
    /// starting at 0). [`Summarizer::summarize_document`] rejects a list of the wrong length.
    #[must_use]
    pub fn with_paragraphs(mut self, paragraphs: &'a [usize]) -> Self {
        self.paragraphs = Some(paragraphs);
        self
    }

    /// The sentences.
    pub fn sentences(&self) -> &'a [&'a str] {
        self.sentences
    }

    /// The paragraph number of each sentence, if known.
    pub fn paragraphs(&self) -> Option<&'a [usize]> {
        self.paragraphs
    }

    /// Checks that the paragraph list, if any, has one entry per sentence.
    pub fn validate(&self) -> Result<()> {
        match self.paragraphs {
            Some(p) if p.len() != self.sentences.len() => Err(input_error(format!(
                "{} paragraph numbers for {} sentences",
                p.len(),
                self.sentences.len()
            ))),
            _ => Ok(()),
        }
    }
}

/// One sentence of a summary.
#[derive(Clone, Debug, PartialEq)]
pub struct SummarySentence {
    /// Position of the sentence in the input, for a sentence taken from it (extractive
    /// summaries); `None` for a sentence a model wrote (abstractive summaries).
    pub index: Option<usize>,
    /// The sentence.
    pub text: String,
    /// How strongly the summariser chose this sentence, in `[0, 1]`, higher is better. For the
    /// extractive summariser: its ranking score relative to the best sentence of the article
    /// (before redundancy removal). Abstractive summarisers without such a number use 1.
    pub score: f32,
}

/// A summary: its sentences in reading order.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Summary {
    /// The sentences, in the order they are to be read (article order for extractive summaries).
    pub sentences: Vec<SummarySentence>,
    /// How many sentences the summarised input had.
    pub input_sentences: usize,
}

impl Summary {
    /// The summary as one text, sentences separated by a space.
    pub fn text(&self) -> String {
        let parts: Vec<&str> = self.sentences.iter().map(|s| s.text.as_str()).collect();
        parts.join(" ")
    }

    /// The input positions of the chosen sentences, or `None` if any sentence was generated
    /// rather than taken from the input.
    pub fn indices(&self) -> Option<Vec<usize>> {
        self.sentences.iter().map(|s| s.index).collect()
    }

    /// The sentences of `source` at the positions this summary chose from its input: given the
    /// Dutch sentences that the English input was translated from, one for one, this returns the
    /// Dutch side of a bilingual summary.
    ///
    /// Fails with [`Error::Input`] when `source` does not have one sentence per input sentence,
    /// or when the summary has generated sentences that have no source.
    pub fn aligned<'s>(&self, source: &[&'s str]) -> Result<Vec<&'s str>> {
        if source.len() != self.input_sentences {
            return Err(input_error(format!(
                "{} source sentences for a summary of {} sentences; they must be aligned one to one",
                source.len(),
                self.input_sentences
            )));
        }
        let indices = self.indices().ok_or_else(|| {
            input_error("an abstractive summary has no source sentences to align with")
        })?;
        indices
            .into_iter()
            .map(|i| {
                source
                    .get(i)
                    .copied()
                    .ok_or_else(|| input_error(format!("summary sentence {i} is out of range")))
            })
            .collect()
    }
}

/// Something that condenses an article into a summary: extractive (picks sentences) or
/// abstractive (writes them). Implementations are shared between threads, so `&self` must be
/// enough to summarise.
pub trait Summarizer: Send + Sync {
    /// A short name for reports, such as `extractive` or `bart-large-cnn`.
    fn name(&self) -> &str;

    /// Summarises one article given as sentences with optional paragraph numbers.
    fn summarize_document(&self, document: &Document<'_>) -> Result<Summary>;

    /// Summarises one article given as its sentences in order.
    fn summarize(&self, sentences: &[&str]) -> Result<Summary> {
        self.summarize_document(&Document::new(sentences))
    }
}

/// Summarises raw English text, passing the paragraphs on: its layout is read as the
/// translation pipeline reads an article ([`Segmenter`] with English rules), so that headlines
/// (lines without final punctuation, such as the title at the top) and leading metadata
/// fields are left out of the sentences summarised, unless there is nothing else; the running
/// text between them is split into sentences with [`split_english`]. A summary sentence's
/// [`SummarySentence::index`] counts the sentences summarised.
pub fn summarize_english(summarizer: &dyn Summarizer, text: &str) -> Result<Summary> {
    let split = article_sentences(text);
    let sentences: Vec<&str> = split.iter().map(|s| s.0).collect();
    let paragraphs: Vec<usize> = split.iter().map(|s| s.1).collect();
    summarizer.summarize_document(&Document::new(&sentences).with_paragraphs(&paragraphs))
}

/// The sentences of an English article to summarise, with their paragraph numbers: the
/// segmenter finds headlines, list items and metadata as for a translated article, and each
/// stretch of running text between them in one paragraph is split by [`split_english`]. The
/// headlines are the sentences only when the text has nothing else.
fn article_sentences(text: &str) -> Vec<(&str, usize)> {
    let doc = Segmenter::new()
        .with_language(Language::english())
        .with_max_chars(0)
        .segment(text);
    let mut sentences = Vec::new();
    let mut headlines = Vec::new();
    // The running text not yet split: its byte range and paragraph.
    let mut stretch: Option<(Range<usize>, usize)> = None;
    let flush = |stretch: &mut Option<(Range<usize>, usize)>, sentences: &mut Vec<_>| {
        split_stretch(text, stretch.take(), sentences);
    };
    for segment in &doc.segments {
        match &segment.kind {
            SegmentKind::Metadata { .. } => flush(&mut stretch, &mut sentences),
            SegmentKind::Headline => {
                flush(&mut stretch, &mut sentences);
                let span = segment.span.clone();
                headlines.push((text.get(span).unwrap_or_default(), segment.paragraph));
            }
            SegmentKind::ListItem { .. } if !segment.continues => {
                flush(&mut stretch, &mut sentences);
                stretch = Some((segment.span.clone(), segment.paragraph));
            }
            _ => match &mut stretch {
                Some((range, paragraph)) if *paragraph == segment.paragraph => {
                    range.end = segment.span.end;
                }
                _ => {
                    flush(&mut stretch, &mut sentences);
                    stretch = Some((segment.span.clone(), segment.paragraph));
                }
            },
        }
    }
    flush(&mut stretch, &mut sentences);
    if sentences.is_empty() {
        headlines
    } else {
        sentences
    }
}

/// Appends the sentences of running text at `stretch` (a byte range of `text` and its
/// paragraph).
fn split_stretch<'t>(
    text: &'t str,
    stretch: Option<(Range<usize>, usize)>,
    sentences: &mut Vec<(&'t str, usize)>,
) {
    if let Some((range, paragraph)) = stretch {
        let body = text.get(range).unwrap_or_default();
        sentences.extend(split_english(body).into_iter().map(|s| (s.text, paragraph)));
    }
}

fn input_error(message: impl Into<String>) -> Error {
    Error::Input {
        source_name: "<summary input>".to_string(),
        message: message.into(),
        remedy: None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extractive(indices: &[usize], input: usize) -> Summary {
        Summary {
            sentences: indices
                .iter()
                .map(|&i| SummarySentence {
                    index: Some(i),
                    text: format!("English {i}."),
                    score: 1.0,
                })
                .collect(),
            input_sentences: input,
        }
    }

    #[test]
    fn aligned_returns_the_matching_source_sentences() {
        let summary = extractive(&[0, 2], 3);
        let dutch = ["Zin nul.", "Zin een.", "Zin twee."];
        assert_eq!(
            summary.aligned(&dutch).ok(),
            Some(vec!["Zin nul.", "Zin twee."])
        );
        assert_eq!(summary.text(), "English 0. English 2.");
        assert_eq!(summary.indices(), Some(vec![0, 2]));
    }

    #[test]
    fn aligned_refuses_mismatched_or_generated_summaries() {
        let summary = extractive(&[0, 2], 3);
        assert!(matches!(
            summary.aligned(&["a", "b"]),
            Err(Error::Input { .. })
        ));
        let mut generated = summary.clone();
        generated.sentences[1].index = None;
        assert!(generated.indices().is_none());
        assert!(matches!(
            generated.aligned(&["a", "b", "c"]),
            Err(Error::Input { .. })
        ));
    }

    const HEADLINED: &str = "City council approves budget for new school\n\
        The city council approved the budget for a new primary school on Tuesday evening. \
        The school will open in 2027 and offer places to 400 pupils.\n\n\
        Councillors debated the plan for more than three hours. Opponents said the costs were \
        too high.\n\n\
        Construction starts in the spring\n\
        The old building will be demolished first.";

    #[test]
    fn headlines_are_not_summarised() {
        let got = article_sentences(HEADLINED);
        assert_eq!(
            got,
            [
                (
                    "The city council approved the budget for a new primary school on Tuesday evening.",
                    0
                ),
                ("The school will open in 2027 and offer places to 400 pupils.", 0),
                ("Councillors debated the plan for more than three hours.", 1),
                ("Opponents said the costs were too high.", 1),
                ("The old building will be demolished first.", 2),
            ]
        );
        // With a blank line after the headline, and with metadata before it.
        let spaced = HEADLINED.replacen('\n', "\n\n", 1);
        assert_eq!(article_sentences(&spaced).len(), 5);
        let dated = format!("date: 2024-03-14\n{HEADLINED}");
        assert_eq!(article_sentences(&dated), got);
        // The lead is the summary, not the headline (which it resembles).
        let s = ExtractiveSummarizer::new(ExtractiveOptions::default()).unwrap();
        let summary = summarize_english(&s, HEADLINED).unwrap();
        assert_eq!(summary.input_sentences, 5);
        assert!(
            summary.sentences[0]
                .text
                .starts_with("The city council approved"),
            "{summary:?}"
        );
        assert!(summary
            .sentences
            .iter()
            .all(|s| !s.text.contains("approves")));
        // Headlines alone are all there is to summarise.
        assert_eq!(
            article_sentences("Storm hits the coast\n\nTrains stopped"),
            [("Storm hits the coast", 0), ("Trains stopped", 1)]
        );
        // List items are sentences; English abbreviations stay inside theirs.
        assert_eq!(
            article_sentences("Mr. Smith said:\n- Prices rise. Wages do not.\n- Rents too."),
            [
                ("Mr. Smith said:", 0),
                ("Prices rise.", 0),
                ("Wages do not.", 0),
                ("Rents too.", 0)
            ]
        );
    }

    #[test]
    fn document_checks_paragraph_count() {
        let sentences = ["One.", "Two."];
        assert!(Document::new(&sentences).validate().is_ok());
        assert!(Document::new(&sentences)
            .with_paragraphs(&[0, 0])
            .validate()
            .is_ok());
        assert!(Document::new(&sentences)
            .with_paragraphs(&[0])
            .validate()
            .is_err());
    }
}
