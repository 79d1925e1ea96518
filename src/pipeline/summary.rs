//! What the summariser reads, collected segment by segment as the blocks of a document are
//! translated, within [`SummaryLimits`]: the same for a document read whole or in blocks.

use crate::error::Result;
use crate::record::{OutputSummary, SentenceOutput, SummaryItem};
use crate::segment::{flatten, SegmentKind};
use crate::summarize::{self, Summarizer};

/// Default for [`SummaryLimits::sentences`].
pub const DEFAULT_SUMMARY_SENTENCES: usize = 2000;

/// Default for [`SummaryLimits::bytes`]: 2 MiB.
pub const DEFAULT_SUMMARY_BYTES: usize = 2 << 20;

/// How much of a document the summariser reads: its leading sentences, within both limits. The
/// extractive summariser compares every pair of sentences, so its cost grows with the square of
/// their number, and news puts what matters first. A sentence that would pass the byte limit is
/// left out whole; when sentences were left out, [`OutputSummary::limited_to`] says how many were
/// read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SummaryLimits {
    /// Most leading sentences read (a sentence cut in pieces counts once). Default:
    /// [`DEFAULT_SUMMARY_SENTENCES`] (2000).
    pub sentences: usize,
    /// Most bytes of their English and Dutch text. Default: [`DEFAULT_SUMMARY_BYTES`] (2 MiB).
    pub bytes: usize,
}

impl Default for SummaryLimits {
    fn default() -> Self {
        SummaryLimits {
            sentences: DEFAULT_SUMMARY_SENTENCES,
            bytes: DEFAULT_SUMMARY_BYTES,
        }
    }
}

impl SummaryLimits {
    /// Sets [`SummaryLimits::sentences`].
    #[must_use]
    pub fn with_sentences(mut self, n: usize) -> Self {
        self.sentences = n;
        self
    }

    /// Sets [`SummaryLimits::bytes`].
    #[must_use]
    pub fn with_bytes(mut self, bytes: usize) -> Self {
        self.bytes = bytes;
        self
    }
}

/// One summarisable unit: a sentence (or list item), with the pieces of a cut sentence joined.
#[derive(Debug)]
struct Unit {
    members: Vec<usize>,
    english: String,
    dutch: String,
    paragraph: usize,
    headline: bool,
}

/// What the summariser reads, collected sentence by sentence: the units (sentences with their
/// cut pieces joined), optionally only the leading ones of a long input.
#[derive(Debug)]
pub(crate) struct SummaryInput {
    units: Vec<Unit>,
    max_units: usize,
    max_bytes: usize,
    bytes: usize,
    /// Whether the last unit may still grow (its pieces keep coming).
    open: bool,
    /// Whether units were left out: no more are taken.
    closed: bool,
}

impl SummaryInput {
    /// Takes the leading units, at most `max_units` of them and at most `max_bytes` of English
    /// and Dutch text; a unit that would go past the byte limit is left out whole, and no unit
    /// after a left-out one is taken.
    pub(crate) fn limited(limits: SummaryLimits) -> Self {
        SummaryInput {
            units: Vec::new(),
            max_units: limits.sentences,
            max_bytes: limits.bytes,
            bytes: 0,
            open: false,
            closed: false,
        }
    }

    /// Adds the next segment of the document.
    pub(crate) fn push(&mut self, s: &SentenceOutput) {
        let Some(english) = &s.translation else {
            return;
        };
        if self.closed {
            return;
        }
        let dutch = flatten(&s.source);
        match self.units.last_mut() {
            Some(unit) if s.continues && self.open => {
                unit.members.push(s.index);
                let before = unit.english.len() + unit.dutch.len();
                push_joined(&mut unit.english, english);
                push_joined(&mut unit.dutch, &dutch);
                self.bytes += unit.english.len() + unit.dutch.len() - before;
                if self.bytes > self.max_bytes {
                    self.units.pop();
                    self.close();
                }
            }
            _ => {
                let unit = Unit {
                    members: vec![s.index],
                    english: english.trim().to_string(),
                    dutch: dutch.into_owned(),
                    paragraph: s.paragraph,
                    headline: s.kind == SegmentKind::Headline,
                };
                let bytes = unit.english.len() + unit.dutch.len();
                if self.units.len() >= self.max_units
                    || self.bytes.saturating_add(bytes) > self.max_bytes
                {
                    self.close();
                    return;
                }
                self.bytes += bytes;
                self.units.push(unit);
                self.open = true;
            }
        }
    }

    fn close(&mut self) {
        self.closed = true;
        self.open = false;
    }

    /// Runs the summariser on what was collected.
    pub(crate) fn summarise(mut self, summarizer: &dyn Summarizer) -> Result<OutputSummary> {
        let limited_to = self.closed.then_some(self.units.len());
        // Headlines are not sentences of the story; use them only when there is nothing else.
        if self.units.iter().any(|u| !u.headline) {
            self.units.retain(|u| !u.headline);
        }
        let units = self.units;
        let english: Vec<&str> = units.iter().map(|u| u.english.as_str()).collect();
        let paragraphs: Vec<usize> = units.iter().map(|u| u.paragraph).collect();
        let summary = if units.is_empty() {
            summarize::Summary::default()
        } else {
            summarizer.summarize_document(
                &summarize::Document::new(&english).with_paragraphs(&paragraphs),
            )?
        };
        let items = summary
            .sentences
            .into_iter()
            .map(|s| {
                let unit = s.index.and_then(|i| units.get(i));
                SummaryItem {
                    text: s.text,
                    source: unit.map(|u| u.dutch.clone()),
                    sentences: unit.map(|u| u.members.clone()).unwrap_or_default(),
                    score: s.score,
                }
            })
            .collect();
        Ok(OutputSummary {
            summarizer: summarizer.name().to_string(),
            sentences: items,
            limited_to,
        })
    }
}

fn push_joined(out: &mut String, piece: &str) {
    let piece = piece.trim();
    if !out.is_empty() && !piece.is_empty() {
        out.push(' ');
    }
    out.push_str(piece);
}
