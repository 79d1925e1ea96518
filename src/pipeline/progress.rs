//! Progress of one document through [`super::Pipeline::translate_document_with_progress`]: a
//! small trait the caller implements (the CLI draws a bar with it), called after every batch of
//! sentences the model finishes and after every block.
//!
//! Batches are the unit because a block can be large: an article read whole is one block of up
//! to 1 MiB, thousands of sentences, so block-by-block reports would jump from 0 to 100 %. A
//! large file read in blocks reports within each block the same way, and its total size is known
//! from the first pass over it; only a large stream (standard input) has no total.

use crate::translate::TranslateProgress;

/// Where a document stands; see [`DocumentProgress`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct DocumentPosition {
    /// Bytes of the document's text done: the blocks finished, plus the share of the current
    /// block whose sentences are translated (measured in source tokens, since batches are
    /// longest first). Never decreases.
    pub bytes_done: u64,
    /// The size of the document's text in bytes, when the source knows it before the first
    /// block ([`crate::stream::BlockSource::decode_stats`]: a document read whole, or a file read
    /// in blocks); `None` for a large stream.
    pub total_bytes: Option<u64>,
    /// Blocks finished.
    pub blocks: usize,
    /// Segments translated so far (metadata is not translated and not counted).
    pub sentences: usize,
    /// Source tokens of those segments.
    pub source_tokens: usize,
}

impl DocumentPosition {
    /// `bytes_done / total_bytes` in `0.0..=1.0`, when the total is known.
    pub fn fraction(&self) -> Option<f64> {
        self.total_bytes.map(|total| {
            if total == 0 {
                1.0
            } else {
                (self.bytes_done as f64 / total as f64).min(1.0)
            }
        })
    }
}

/// Receives a document's progress. `()` ignores it.
pub trait DocumentProgress {
    /// Called after every batch of sentences the model finished and after every block (before
    /// the block's output is written), with counts that only grow.
    fn update(&mut self, at: &DocumentPosition);
}

impl DocumentProgress for () {
    fn update(&mut self, _at: &DocumentPosition) {}
}

/// Turns the translator's batch reports and the finished blocks into [`DocumentPosition`]s.
pub(crate) struct Tracker<'a> {
    sink: &'a mut dyn DocumentProgress,
    at: DocumentPosition,
    /// The position after the last finished block.
    before: DocumentPosition,
}

impl<'a> Tracker<'a> {
    pub(crate) fn new(sink: &'a mut dyn DocumentProgress, total_bytes: Option<u64>) -> Self {
        let at = DocumentPosition {
            total_bytes,
            ..DocumentPosition::default()
        };
        Tracker {
            sink,
            at,
            before: at,
        }
    }

    /// A batch of the block of `len` bytes at byte `offset` is done.
    pub(crate) fn batch(&mut self, offset: usize, len: usize, done: &TranslateProgress) {
        let share = if done.tokens == 0 {
            len as u64
        } else {
            (len as u128 * done.tokens_done.min(done.tokens) as u128 / done.tokens as u128) as u64
        };
        self.at.bytes_done = self.at.bytes_done.max(offset as u64 + share);
        self.at.sentences = self.before.sentences + done.texts_done;
        self.at.source_tokens = self.before.source_tokens + done.tokens_done;
        self.sink.update(&self.at);
    }

    /// The block that ends at byte `end` is done; `sentences` and `source_tokens` are the
    /// document's totals so far.
    pub(crate) fn block(&mut self, end: usize, sentences: usize, source_tokens: usize) {
        self.at.bytes_done = self.at.bytes_done.max(end as u64);
        self.at.blocks += 1;
        self.at.sentences = sentences;
        self.at.source_tokens = source_tokens;
        self.before = self.at;
        self.sink.update(&self.at);
    }
}
