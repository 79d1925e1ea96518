//! The block runner: segments and translates one block of a document, numbering its segments,
//! spans and paragraphs as if the whole document had been segmented at once.

use std::borrow::Cow;
use std::time::{Duration, Instant};

use super::{DocumentRun, Pipeline};
use crate::error::Result;
use crate::record::SentenceOutput;
use crate::segment::{Document, Segment};
use crate::translate::TranslateProgress;

impl Pipeline {
    /// Segments and translates one block of a document ([`crate::stream`]; an article read whole
    /// is one block): `text` starts at byte `offset` of the document, and `cursor` carries
    /// what the blocks before it left (segment numbering, paragraph, line breaks since the last
    /// segment). Indices, spans and paragraph numbers come out as if the whole document had
    /// been segmented at once, which they are when blocks are cut after a blank line: the
    /// segmenter's decisions never look across one. `mid_sentence` says the block was cut from
    /// the previous one inside a line, between two words of one sentence: its first segment
    /// then continues the previous one (`continues`), like the pieces of an over-long sentence.
    /// `batch_done` hears of every batch the translator finishes.
    pub(crate) fn run_block(
        &self,
        text: &str,
        offset: usize,
        mid_sentence: bool,
        cursor: &mut BlockCursor,
        run: &DocumentRun<'_>,
        batch_done: &mut dyn FnMut(&TranslateProgress),
    ) -> Result<BlockRun> {
        let t = Instant::now();
        let mut doc = if text.trim().is_empty() {
            Document::default()
        } else if cursor.blocks == 0 {
            self.segment(text)
        } else {
            // Metadata fields only open a document.
            self.segment_with(&self.segmenter.clone().with_metadata(false), text)
        };
        cursor.blocks += 1;
        let base = match (cursor.last_paragraph, doc.segments.first_mut()) {
            (Some(last), Some(first)) => {
                let breaks = cursor.breaks + line_breaks(text.get(..first.span.start));
                first.starts_line = breaks > 0;
                if mid_sentence && breaks == 0 {
                    first.continues = true;
                }
                // Two line breaks between segments enclose a blank line: a new paragraph.
                last + usize::from(breaks >= 2)
            }
            _ => 0,
        };
        let segment = t.elapsed();

        let t = Instant::now();
        let translations = {
            let flat: Vec<Cow<'_, str>> = doc.translatable().map(Segment::flat_text).collect();
            let inputs: Vec<&str> = flat.iter().map(|s| s.as_ref()).collect();
            if inputs.is_empty() {
                Vec::new()
            } else {
                run.translator.translate_segments_with_progress(
                    &inputs,
                    run.generation,
                    batch_done,
                )?
            }
        };
        let translate = t.elapsed();

        match doc.segments.last() {
            Some(last) => {
                cursor.breaks = line_breaks(text.get(last.span.end..));
                cursor.last_paragraph = Some(last.paragraph + base);
            }
            None => cursor.breaks += line_breaks(Some(text)),
        }
        let first_index = cursor.next_index;
        cursor.next_index += doc.segments.len();
        let mut translated = translations.into_iter();
        let sentences = doc
            .segments
            .into_iter()
            .enumerate()
            .map(|(n, mut segment)| {
                let t = if segment.kind.is_translatable() {
                    translated.next()
                } else {
                    None
                };
                segment.span = segment.span.start + offset..segment.span.end + offset;
                segment.paragraph += base;
                sentence_output(first_index + n, segment, t)
            })
            .collect();
        Ok(BlockRun {
            sentences,
            segment,
            translate,
        })
    }
}

/// Line breaks (as the segmenter counts them) in `text`.
fn line_breaks(text: Option<&str>) -> usize {
    text.unwrap_or_default()
        .chars()
        .filter(|&c| crate::segment::chars::is_line_break(c))
        .count()
}

/// Where a document read block by block stands between two blocks.
#[derive(Debug, Clone, Default)]
pub(crate) struct BlockCursor {
    /// The index of the next segment.
    next_index: usize,
    /// The paragraph of the last segment so far; `None` before the first.
    last_paragraph: Option<usize>,
    /// Line breaks after the last segment so far.
    breaks: usize,
    /// Blocks run so far.
    blocks: usize,
}

/// What [`Pipeline::run_block`] gives for one block.
#[derive(Debug)]
pub(crate) struct BlockRun {
    /// The block's segments with their translations, numbered and placed in the document.
    pub(crate) sentences: Vec<SentenceOutput>,
    /// Time spent segmenting.
    pub(crate) segment: Duration,
    /// Time spent translating.
    pub(crate) translate: Duration,
}

/// The output record of one segment and its translation (`None` for metadata).
fn sentence_output(
    index: usize,
    segment: Segment,
    t: Option<crate::translate::Translation>,
) -> SentenceOutput {
    SentenceOutput {
        index,
        source: segment.text,
        span: segment.span,
        paragraph: segment.paragraph,
        kind: segment.kind,
        continues: segment.continues,
        starts_line: segment.starts_line,
        source_tokens: t.as_ref().map_or(0, |t| t.source_tokens),
        target_tokens: t.as_ref().map_or(0, |t| t.ids.len()),
        flag: t.as_ref().and_then(|t| t.flag.map(|f| f.as_str())),
        score: t.as_ref().map(|t| t.score),
        alignment: t.as_ref().and_then(|t| t.alignment.clone()),
        translation: t.map(|t| t.text),
    }
}
