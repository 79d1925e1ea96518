//! How a document's text arrives: read and decoded whole, or block by block in bounded memory.
//!
//! Every document goes through one path ([`crate::pipeline::Pipeline::translate_document`]): a
//! [`BlockSource`] hands out [`TextBlock`]s, the pipeline segments and translates each, and a
//! [`crate::output::StreamWriter`] writes it. An article is one block; an input larger than
//! [`StreamOptions::threshold`] (1 MiB) comes in blocks, so that a 50 MB file takes as much memory
//! as a 1 MB one. [`DocumentInput::open`] is the one policy that decides, for the command line,
//! batch runs and the server alike:
//!
//! 1. **Read and decode.** A file of at most the threshold, or standard input that ends before
//!    it, is read and decoded whole ([`crate::input::decode`]), so that every problem is reported
//!    before the model loads. A larger file is first checked whole with
//!    [`crate::input::check_file`] (a bad byte at its end is reported before anything is
//!    written), then read again by a [`BlockReader`]: [`READ_CHUNK`] bytes at a time, decoded by a
//!    [`StreamDecoder`] with exactly the rules and results of a whole read. Larger standard input
//!    is decoded as it comes: the blocks before a bad byte are translated, then the error stops
//!    the document.
//! 2. **Cut into blocks** of at most [`StreamOptions::block_bytes`] (256 KiB) of decoded text,
//!    never losing or reordering text, at the best boundary the block offers: after a blank line
//!    (a paragraph boundary); failing that, after a line break (preferring a line that ends a
//!    sentence); failing that, inside a line between two sentences, or between two words (the
//!    next block's first segment then continues the previous one, as the pieces of an over-long
//!    sentence do); failing that, between two characters. A word that could be read as a list
//!    marker never starts a block cut inside a line.
//!
//! Blocks cut after a blank line segment exactly as the whole document would, because no
//! segmentation rule looks across a blank line (metadata fields only open a document); the
//! pipeline numbers segments, spans and paragraphs across blocks as if the document were one.
//!
//! ```no_run
//! use tolk::input::DecodeOptions;
//! use tolk::output::{OutputFormat, RenderOptions, StreamWriter};
//! use tolk::pipeline::Pipeline;
//! use tolk::stream::{DocumentInput, StreamOptions};
//!
//! let pipeline = Pipeline::builder().build()?;
//! let mut input = DocumentInput::open(
//!     "corpus.txt".as_ref(),
//!     &DecodeOptions::default(),
//!     &StreamOptions::default(),
//! )?;
//! let stdout = std::io::stdout().lock();
//! let mut writer = StreamWriter::new(stdout, "<stdout>", OutputFormat::Jsonl, &RenderOptions::default(), None)?;
//! let report = pipeline.translate_document(&mut input, &mut writer)?;
//! eprintln!("{} sentences in {} blocks", report.sentences, report.blocks);
//! # Ok::<(), tolk::Error>(())
//! ```

use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::mpsc;

use crate::error::{Error, Result};
use crate::input::{read_some, DecodeOptions, DecodeStats, StreamDecoder, READ_CHUNK};
use crate::segment::chars::{is_closer, is_line_break, is_space, is_terminal};

/// Default for [`StreamOptions::threshold`]: 1 MiB.
pub const DEFAULT_THRESHOLD: u64 = 1 << 20;

/// Default for [`StreamOptions::block_bytes`]: 256 KiB.
pub const DEFAULT_BLOCK_BYTES: usize = 256 << 10;

/// The smallest block size accepted: a block must hold a few words.
pub const MIN_BLOCK_BYTES: usize = 64;

/// Bytes of decoded text kept beyond a block's end, so that the word after a cut is seen whole.
const LOOKAHEAD: usize = 64;

/// When and how inputs are read in blocks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOptions {
    /// Inputs of more than this many bytes are read block by block; smaller ones are read whole,
    /// as one block. Default: [`DEFAULT_THRESHOLD`] (1 MiB).
    pub threshold: u64,
    /// Most bytes of decoded text in one block (at least [`MIN_BLOCK_BYTES`]). Default:
    /// [`DEFAULT_BLOCK_BYTES`] (256 KiB).
    pub block_bytes: usize,
    /// Where JSON and Markdown outputs spool the parts that follow the summary once they outgrow
    /// memory. Default: the system's temporary directory.
    pub spool_dir: Option<PathBuf>,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            threshold: DEFAULT_THRESHOLD,
            block_bytes: DEFAULT_BLOCK_BYTES,
            spool_dir: None,
        }
    }
}

impl StreamOptions {
    /// Options that read every input whole, however large (for tools that need the whole text).
    pub fn whole() -> Self {
        StreamOptions {
            threshold: u64::MAX,
            ..StreamOptions::default()
        }
    }

    /// Sets [`StreamOptions::threshold`].
    #[must_use]
    pub fn with_threshold(mut self, bytes: u64) -> Self {
        self.threshold = bytes;
        self
    }

    /// Sets [`StreamOptions::block_bytes`] (raised to [`MIN_BLOCK_BYTES`]).
    #[must_use]
    pub fn with_block_bytes(mut self, bytes: usize) -> Self {
        self.block_bytes = bytes.max(MIN_BLOCK_BYTES);
        self
    }

    /// Sets [`StreamOptions::spool_dir`].
    #[must_use]
    pub fn with_spool_dir(mut self, dir: Option<PathBuf>) -> Self {
        self.spool_dir = dir;
        self
    }

    /// Whether an input of `bytes` bytes is read in blocks.
    pub fn streams(&self, bytes: u64) -> bool {
        bytes > self.threshold
    }
}

/// Anything that hands out a document's text block by block, in order.
pub trait BlockSource {
    /// The next block, or `None` at the end of the document. A problem in the input (invalid
    /// UTF-8, a NUL byte, ...) is an error once the whole blocks of text before it are out.
    fn next_block(&mut self) -> Result<Option<TextBlock>>;

    /// What decoding found, once known (for a source that decodes as it reads: after the last
    /// block).
    fn decode_stats(&self) -> Option<DecodeStats>;
}

/// A document opened by the library's input policy (see the module documentation): decoded
/// whole and handed out as one block, or read block by block.
pub struct DocumentInput {
    name: String,
    source: Source,
}

enum Source {
    /// Decoded whole: the one block, until it is taken.
    Whole {
        block: Option<TextBlock>,
        stats: DecodeStats,
    },
    /// Read in blocks; `checked` is what a first pass over a file found.
    Blocks {
        reader: Box<BlockReader<Box<dyn Read + Send>>>,
        checked: Option<DecodeStats>,
    },
}

impl std::fmt::Debug for DocumentInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DocumentInput")
            .field("name", &self.name)
            .field("streamed", &self.is_streamed())
            .finish_non_exhaustive()
    }
}

impl DocumentInput {
    /// Opens a file: decoded whole when it has at most [`StreamOptions::threshold`] bytes,
    /// otherwise checked whole and then read in blocks; a pipe or a device is read as
    /// [`DocumentInput::from_reader`] reads. Every decoding problem of a file is reported here,
    /// before anything is translated.
    pub fn open(path: &Path, decode: &DecodeOptions, options: &StreamOptions) -> Result<Self> {
        let name = path.display().to_string();
        let meta = std::fs::metadata(path).map_err(|e| Error::io(path, e))?;
        if meta.is_file() && !options.streams(meta.len()) {
            let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
            return Self::decoded(&bytes, name, decode);
        }
        let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
        if !meta.is_file() {
            // A pipe or a device: its size is known only by reading it.
            return Self::from_reader(Box::new(file), &name, decode, options);
        }
        let checked = crate::input::check_file(path, decode)?;
        let reader = BlockReader::new(
            Box::new(file) as Box<dyn Read + Send>,
            &name,
            decode,
            options.block_bytes,
        );
        Ok(DocumentInput {
            name,
            source: Source::Blocks {
                reader: Box::new(reader),
                checked: Some(checked),
            },
        })
    }

    /// Reads from a stream (standard input, a socket) of unknown length: up to one byte past the
    /// threshold is read and decoded at once (the whole input if it is small); a larger input is
    /// then decoded block by block as it comes. `name` (such as `<stdin>`) appears in errors.
    pub fn from_reader(
        mut reader: Box<dyn Read + Send>,
        name: &str,
        decode: &DecodeOptions,
        options: &StreamOptions,
    ) -> Result<Self> {
        let mut head = Vec::new();
        reader
            .by_ref()
            .take(options.threshold.saturating_add(1))
            .read_to_end(&mut head)
            .map_err(|e| Error::io(name, e))?;
        if !options.streams(head.len() as u64) {
            return Self::decoded(&head, name.to_string(), decode);
        }
        let mut blocks = BlockReader::new(reader, name, decode, options.block_bytes);
        blocks.push(&head)?;
        Ok(DocumentInput {
            name: name.to_string(),
            source: Source::Blocks {
                reader: Box::new(blocks),
                checked: None,
            },
        })
    }

    /// A text already decoded (an article given to the library or the server): one block.
    pub fn from_text(text: impl Into<String>, name: &str) -> Self {
        let text = text.into();
        let stats = DecodeStats {
            input_bytes: text.len() as u64,
            text_bytes: text.len() as u64,
            ..DecodeStats::default()
        };
        DocumentInput {
            name: name.to_string(),
            source: Source::Whole {
                block: Some(TextBlock {
                    text,
                    offset: 0,
                    mid_sentence: false,
                }),
                stats,
            },
        }
    }

    fn decoded(bytes: &[u8], name: String, decode: &DecodeOptions) -> Result<Self> {
        let (text, stats) = crate::input::decode_with_stats(bytes, &name, decode)?;
        Ok(DocumentInput {
            name,
            source: Source::Whole {
                block: Some(TextBlock {
                    text,
                    offset: 0,
                    mid_sentence: false,
                }),
                stats,
            },
        })
    }

    /// The file path or stream name, as it appears in errors.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether the document is read block by block (it was larger than the threshold).
    pub fn is_streamed(&self) -> bool {
        matches!(self.source, Source::Blocks { .. })
    }

    /// The whole text of a document read whole (`None` once it was taken, or when the document
    /// is read in blocks).
    pub fn into_text(self) -> Option<String> {
        match self.source {
            Source::Whole { block, .. } => block.map(|b| b.text),
            Source::Blocks { .. } => None,
        }
    }
}

impl BlockSource for DocumentInput {
    fn next_block(&mut self) -> Result<Option<TextBlock>> {
        match &mut self.source {
            Source::Whole { block, .. } => Ok(block.take()),
            Source::Blocks { reader, .. } => reader.next_block(),
        }
    }

    fn decode_stats(&self) -> Option<DecodeStats> {
        match &self.source {
            Source::Whole { stats, .. } => Some(*stats),
            Source::Blocks { reader, checked } => checked.or_else(|| reader.stats().copied()),
        }
    }
}

/// A piece of a document's decoded text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TextBlock {
    /// The text.
    pub text: String,
    /// Its byte offset in the document's decoded text.
    pub offset: usize,
    /// Whether it was cut from the previous block inside a sentence (between two words or
    /// characters), so that its first segment continues the previous block's last.
    pub mid_sentence: bool,
}

/// Reads and decodes an input and cuts it into [`TextBlock`]s (see the module documentation),
/// holding at most one block and one read in memory.
pub struct BlockReader<R> {
    reader: R,
    name: String,
    decoder: StreamDecoder,
    buf: Vec<u8>,
    pending: String,
    offset: usize,
    block_bytes: usize,
    mid_sentence: bool,
    stats: Option<DecodeStats>,
    /// A decoding problem met in the last read, reported once the blocks before it are out.
    failed: Option<Error>,
    /// The most bytes the read buffer and the pending text took at once (capacities).
    peak: usize,
}

impl<R> std::fmt::Debug for BlockReader<R> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("BlockReader")
            .field("name", &self.name)
            .field("offset", &self.offset)
            .field("block_bytes", &self.block_bytes)
            .finish_non_exhaustive()
    }
}

impl<R: Read> BlockReader<R> {
    /// Blocks of at most `block_bytes` (at least [`MIN_BLOCK_BYTES`]) from `reader`; `name`
    /// (the file path or `<stdin>`) appears in errors. The decoder fails at the first problem in
    /// reading order.
    pub fn new(reader: R, name: &str, options: &DecodeOptions, block_bytes: usize) -> Self {
        BlockReader {
            reader,
            name: name.to_string(),
            decoder: StreamDecoder::new(name, options),
            buf: Vec::new(),
            pending: String::new(),
            offset: 0,
            block_bytes: block_bytes.max(MIN_BLOCK_BYTES),
            mid_sentence: false,
            stats: None,
            failed: None,
            peak: 0,
        }
    }

    /// Decodes bytes that were read from the input before it was given to this reader (the
    /// first bytes of standard input, read to find out how long it is); they come before
    /// everything the reader reads.
    pub fn push(&mut self, bytes: &[u8]) -> Result<()> {
        let pushed = self.decoder.push(bytes, &mut self.pending);
        self.note_peak();
        pushed
    }

    /// The next block, or `None` at the end of the input. A problem in the input (invalid
    /// UTF-8, a NUL byte, ...) is an error once the whole blocks of text before it have been
    /// returned.
    pub fn next_block(&mut self) -> Result<Option<TextBlock>> {
        loop {
            let at_end = self.stats.is_some();
            if let Some(block) = self.cut(at_end) {
                return Ok(Some(block));
            }
            if let Some(e) = self.failed.take() {
                // What is left is the start of a block that will not be finished.
                self.pending.clear();
                return Err(e);
            }
            if at_end {
                return Ok(None);
            }
            if self.buf.is_empty() {
                self.buf = vec![0; READ_CHUNK];
            }
            let n =
                read_some(&mut self.reader, &mut self.buf).map_err(|e| Error::io(&self.name, e))?;
            let decoded = match self.buf.get(..n) {
                Some(bytes) if n > 0 => self.decoder.push(bytes, &mut self.pending),
                _ => self
                    .decoder
                    .finish(&mut self.pending)
                    .map(|stats| self.stats = Some(stats)),
            };
            self.note_peak();
            if let Err(e) = decoded {
                self.failed = Some(e);
            }
        }
    }

    fn note_peak(&mut self) {
        self.peak = self.peak.max(self.buf.capacity() + self.pending.capacity());
    }

    /// The most memory, in bytes, that this reader's own buffers (the read buffer and the
    /// decoded text not yet returned) took at any one time: at most about
    /// `block_bytes + `[`READ_CHUNK`] for the text, twice that while it grows, plus
    /// [`READ_CHUNK`] for the read buffer; it does not grow with the input. Blocks handed out
    /// are the caller's, and are not counted.
    pub fn peak_buffered(&self) -> usize {
        self.peak
    }

    /// What decoding did, once the last block has been returned.
    pub fn stats(&self) -> Option<&DecodeStats> {
        self.stats.as_ref()
    }

    /// Input bytes read so far.
    pub fn input_bytes(&self) -> u64 {
        self.decoder.input_bytes()
    }

    fn cut(&mut self, at_end: bool) -> Option<TextBlock> {
        if self.pending.is_empty() || (!at_end && self.pending.len() < self.block_bytes + LOOKAHEAD)
        {
            return None;
        }
        let (end, mid_sentence) = if self.pending.len() <= self.block_bytes {
            (self.pending.len(), false)
        } else {
            find_cut(&self.pending, self.block_bytes)
        };
        // `find_cut` gives a character boundary in `1..=len`; anything else takes the rest whole.
        let end = if end > 0 && self.pending.is_char_boundary(end) {
            end
        } else {
            self.pending.len()
        };
        // Copied out, so that the block takes only its own length and the pending buffer is
        // reused for the next one instead of growing again.
        let text = self.pending.get(..end).unwrap_or_default().to_string();
        self.pending.drain(..end);
        let block = TextBlock {
            offset: self.offset,
            mid_sentence: self.mid_sentence,
            text,
        };
        self.offset += end;
        self.mid_sentence = mid_sentence;
        Some(block)
    }
}

impl<R: Read> BlockSource for BlockReader<R> {
    fn next_block(&mut self) -> Result<Option<TextBlock>> {
        BlockReader::next_block(self)
    }

    fn decode_stats(&self) -> Option<DecodeStats> {
        self.stats().copied()
    }
}

/// A stream read line by line as it comes (a co-process's standard input): each block is the
/// lines already there, decoded, so that every line is translated (and can be written) before
/// the next is waited for, and lines that arrive together are batched together.
pub struct LineSource {
    lines: mpsc::Receiver<Line>,
    /// A line received but not yet handed out (it did not fit the last block).
    held: Option<String>,
    offset: usize,
    block_bytes: usize,
    stats: Option<DecodeStats>,
    done: bool,
}

/// What the reading thread sends.
enum Line {
    Text(String),
    End(DecodeStats),
    Failed(Error),
}

impl std::fmt::Debug for LineSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LineSource")
            .field("offset", &self.offset)
            .finish_non_exhaustive()
    }
}

impl LineSource {
    /// Reads `reader` on a thread of its own, a line at a time, decoding as
    /// [`crate::input`] does (`name` appears in errors); blocks hold at most `block_bytes` of
    /// text (a longer line is one block).
    pub fn new(
        reader: impl Read + Send + 'static,
        name: &str,
        options: &DecodeOptions,
        block_bytes: usize,
    ) -> Self {
        let (tx, rx) = mpsc::channel();
        let mut decoder = StreamDecoder::new(name, options);
        let name = name.to_string();
        std::thread::spawn(move || {
            let mut reader = std::io::BufReader::new(reader);
            let mut raw = Vec::new();
            loop {
                raw.clear();
                let mut text = String::new();
                let message = match std::io::BufRead::read_until(&mut reader, b'\n', &mut raw) {
                    Err(e) => Line::Failed(Error::io(&name, e)),
                    Ok(0) => match decoder.finish(&mut text) {
                        Ok(stats) => {
                            if !text.is_empty() && tx.send(Line::Text(text)).is_err() {
                                return;
                            }
                            Line::End(stats)
                        }
                        Err(e) => Line::Failed(e),
                    },
                    Ok(_) => match decoder.push(&raw, &mut text) {
                        Ok(()) => Line::Text(text),
                        Err(e) => Line::Failed(e),
                    },
                };
                let last = !matches!(message, Line::Text(_));
                if tx.send(message).is_err() || last {
                    return;
                }
            }
        });
        LineSource {
            lines: rx,
            held: None,
            offset: 0,
            block_bytes: block_bytes.max(MIN_BLOCK_BYTES),
            stats: None,
            done: false,
        }
    }

    fn take(&mut self, message: Line, text: &mut String) -> Result<bool> {
        match message {
            Line::Text(t) => {
                if !text.is_empty() && text.len() + t.len() > self.block_bytes {
                    self.held = Some(t);
                    return Ok(false);
                }
                text.push_str(&t);
                Ok(true)
            }
            Line::End(stats) => {
                self.stats = Some(stats);
                self.done = true;
                Ok(false)
            }
            Line::Failed(e) => {
                self.done = true;
                Err(e)
            }
        }
    }
}

impl BlockSource for LineSource {
    fn next_block(&mut self) -> Result<Option<TextBlock>> {
        let mut text = self.held.take().unwrap_or_default();
        if text.is_empty() && !self.done {
            // Wait for the next line...
            match self.lines.recv() {
                Ok(m) => {
                    self.take(m, &mut text)?;
                }
                Err(_) => self.done = true,
            }
        }
        // ... and take the ones that are already there.
        while !self.done && self.held.is_none() {
            match self.lines.try_recv() {
                Ok(m) => {
                    if !self.take(m, &mut text)? {
                        break;
                    }
                }
                Err(mpsc::TryRecvError::Empty) => break,
                Err(mpsc::TryRecvError::Disconnected) => self.done = true,
            }
        }
        if text.is_empty() {
            return Ok(None);
        }
        let block = TextBlock {
            offset: self.offset,
            mid_sentence: false,
            text,
        };
        self.offset += block.text.len();
        Ok(Some(block))
    }

    fn decode_stats(&self) -> Option<DecodeStats> {
        self.stats
    }
}

/// Where to end a block of `text` of at most `limit` bytes (`text` is longer): the end and
/// whether the cut lies inside a sentence. Always in `1..=limit` on a character boundary.
fn find_cut(text: &str, limit: usize) -> (usize, bool) {
    let limit = floor_boundary(text, limit.min(text.len()));
    let half = limit / 2;
    let window = text.get(..limit).unwrap_or_default();
    // One pass over the window, remembering the last cut of each kind.
    let mut paragraph = None;
    let mut line = None;
    let mut sentence_line = None;
    let mut sentence = None;
    let mut word = None;
    let mut line_blank = true;
    let mut line_ends_sentence = false;
    let mut prev: Option<char> = None;
    // The last non-space character, ignoring closing quotes and brackets, was a sentence mark.
    let mut after_terminal = false;
    for (i, c) in window.char_indices() {
        let next = i + c.len_utf8();
        if is_line_break(c) {
            if line_blank {
                paragraph = Some(next);
            }
            line = Some(next);
            if line_ends_sentence && next >= half {
                sentence_line = Some(next);
            }
            line_blank = true;
            line_ends_sentence = false;
        } else if !is_space(c) {
            if prev.is_some_and(is_space) && i > 0 {
                if after_terminal && c.is_uppercase() && i >= half {
                    sentence = Some(i);
                }
                if safe_start(text.get(i..).unwrap_or_default()) {
                    word = Some(i);
                }
            }
            line_blank = false;
            if is_terminal(c) {
                after_terminal = true;
                line_ends_sentence = true;
            } else if !is_closer(c) {
                after_terminal = false;
                line_ends_sentence = false;
            }
        }
        prev = Some(c);
    }
    if let Some(at) = paragraph.or(sentence_line).or(line) {
        return (at, false);
    }
    if let Some(at) = sentence {
        return (at, false);
    }
    if let Some(at) = word {
        return (at, true);
    }
    // No white space at all: between two characters, moved back (a little) if the text after
    // the cut could be read as a list marker.
    let mut at = limit;
    for _ in 0..8 {
        if safe_start(text.get(at..).unwrap_or_default()) {
            break;
        }
        let back = floor_boundary(text, at.saturating_sub(1));
        if back == 0 {
            break;
        }
        at = back;
    }
    (at.max(1).min(text.len()), true)
}

/// Whether a block may start with `rest` inside a line: its first word cannot be taken for a
/// list marker (`-`, `•`, `1.`, `a)`, `(3)`: at most five characters, the last not a letter or
/// digit, followed by white space).
fn safe_start(rest: &str) -> bool {
    let word_end = rest.find(is_space);
    let Some(end) = word_end else {
        // The word runs to the end of the text: nothing follows it, so it opens no list item.
        return true;
    };
    let word = rest.get(..end).unwrap_or_default();
    word.chars().count() > 5 || word.chars().next_back().is_some_and(char::is_alphanumeric)
}

/// The largest character boundary of `text` at or below `at`.
fn floor_boundary(text: &str, at: usize) -> usize {
    let mut at = at.min(text.len());
    while at > 0 && !text.is_char_boundary(at) {
        at -= 1;
    }
    at
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every block of `text` (decoded as UTF-8) with blocks of `size` bytes.
    fn blocks(text: &str, size: usize) -> Vec<TextBlock> {
        let mut reader = BlockReader::new(text.as_bytes(), "t", &DecodeOptions::default(), size);
        let mut out = Vec::new();
        while let Some(b) = reader.next_block().unwrap() {
            out.push(b);
        }
        out
    }

    fn check_covers(text: &str, got: &[TextBlock], size: usize) {
        let mut offset = 0;
        for b in got {
            assert_eq!(b.offset, offset);
            assert!(
                !b.text.is_empty() && b.text.len() <= size.max(MIN_BLOCK_BYTES),
                "{b:?}"
            );
            offset += b.text.len();
        }
        let joined: String = got.iter().map(|b| b.text.as_str()).collect();
        assert_eq!(joined, text);
    }

    #[test]
    fn blocks_end_after_blank_lines_when_they_can() {
        let para = "Een zin in een alinea. Nog een zin.\nEen tweede regel.\n\n";
        let text = para.repeat(40);
        let got = blocks(&text, 200);
        check_covers(&text, &got, 200);
        assert!(got.len() > 10);
        for b in &got {
            assert!(b.text.ends_with("\n\n"), "{:?}", b.text);
            assert!(!b.mid_sentence);
        }
    }

    #[test]
    fn a_long_paragraph_is_cut_after_a_line_that_ends_a_sentence() {
        let text = "Dit is een regel zonder punt\nen dit is er een met een punt.\n".repeat(20);
        let got = blocks(&text, 150);
        check_covers(&text, &got, 150);
        for b in got.iter().take(got.len() - 1) {
            assert!(b.text.ends_with(".\n"), "{:?}", b.text);
        }
    }

    #[test]
    fn a_long_line_is_cut_between_sentences_then_words_then_characters() {
        let text = "Dit is een zin. En nog een zin met meer woorden erin. ".repeat(20);
        let got = blocks(&text, 120);
        check_covers(&text, &got, 120);
        for b in got.iter().skip(1) {
            assert!(!b.mid_sentence, "{b:?}");
            assert!(b.text.starts_with(char::is_uppercase), "{b:?}");
        }
        let words = "woord ".repeat(200);
        let got = blocks(&words, 100);
        check_covers(&words, &got, 100);
        assert!(got
            .iter()
            .skip(1)
            .all(|b| b.mid_sentence && b.text.starts_with('w')));
        let solid = "é".repeat(500);
        let got = blocks(&solid, 101);
        check_covers(&solid, &got, 101);
        assert!(got.iter().skip(1).all(|b| b.mid_sentence));
    }

    #[test]
    fn no_block_starts_with_something_that_reads_as_a_list_marker() {
        // Every word here but "x" could open a list item.
        let text = "- 1. a) (2) • x ".repeat(100);
        for size in [64, 65, 77, 100] {
            let got = blocks(&text, size);
            check_covers(&text, &got, size);
            for b in got.iter().skip(1) {
                assert!(b.text.starts_with('x'), "{size}: {:?}", b.text);
            }
        }
        assert!(safe_start("woord en"));
        assert!(safe_start("-"));
        assert!(!safe_start("- x"));
        assert!(!safe_start("12. x"));
        assert!(!safe_start("(b) x"));
        assert!(safe_start("(123)a x"));
    }

    /// `copies` copies of `piece`, then `tail`, made as they are read: a large input that the
    /// test itself never holds.
    struct Generated {
        piece: &'static [u8],
        copies: usize,
        tail: &'static [u8],
        at: usize,
    }

    impl Generated {
        fn len(&self) -> usize {
            self.piece.len() * self.copies + self.tail.len()
        }

        fn byte(&self, at: usize) -> Option<u8> {
            let body = self.piece.len() * self.copies;
            if at < body {
                self.piece.get(at % self.piece.len()).copied()
            } else {
                self.tail.get(at - body).copied()
            }
        }
    }

    impl Read for Generated {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            let mut n = 0;
            for slot in buf.iter_mut() {
                let Some(b) = self.byte(self.at) else { break };
                *slot = b;
                self.at += 1;
                n += 1;
            }
            Ok(n)
        }
    }

    const PARAGRAPH: &[u8] = "De gemeenteraad van Utrecht heeft dinsdag ingestemd met het plan. \
        Het café aan de Oudegracht blijft open tot één uur.\nDe wethouder is tevreden.\n\n"
        .as_bytes();

    /// Reads `input` in blocks of `size`, checking each against the input's bytes as it comes;
    /// returns the blocks, the reader's peak and the error that ended it, if any.
    fn drain(input: Generated, size: usize) -> (usize, usize, usize, Option<Error>) {
        let check = Generated { at: 0, ..input };
        let mut reader = BlockReader::new(input, "big.txt", &DecodeOptions::default(), size);
        let (mut blocks, mut offset) = (0, 0);
        let error = loop {
            match reader.next_block() {
                Ok(Some(b)) => {
                    assert_eq!(b.offset, offset);
                    assert!(b.text.len() <= size && !b.text.is_empty());
                    assert!(b
                        .text
                        .bytes()
                        .enumerate()
                        .all(|(i, x)| check.byte(offset + i) == Some(x)));
                    offset += b.text.len();
                    blocks += 1;
                }
                Ok(None) => break None,
                Err(e) => break Some(e),
            }
        };
        (blocks, offset, reader.peak_buffered(), error)
    }

    #[test]
    fn the_reader_holds_as_much_for_16_mb_as_for_1_mb() {
        let size = 64 << 10;
        let input = |mb: usize| Generated {
            piece: PARAGRAPH,
            copies: (mb << 20) / PARAGRAPH.len(),
            tail: b"Einde.",
            at: 0,
        };
        let (small_len, big_len) = (input(1).len(), input(16).len());
        let (blocks, read, small, error) = drain(input(1), size);
        assert!(error.is_none());
        assert_eq!(read, small_len);
        assert!(blocks >= small_len / size);
        let (blocks, read, big, error) = drain(input(16), size);
        assert!(error.is_none());
        assert_eq!(read, big_len);
        assert!(blocks >= big_len / size);
        // The text held grows to a block, the look-ahead and one read (doubled while a buffer
        // grows), plus the read buffer; nothing in it depends on the input's length.
        let bound = 2 * (size + LOOKAHEAD + READ_CHUNK) + READ_CHUNK;
        assert!(small > size && small <= bound, "{small} > {bound}");
        assert!(big <= small, "16 MB: {big} bytes, 1 MB: {small}");
    }

    #[test]
    fn a_bad_byte_late_in_the_input_ends_it_after_the_whole_blocks_before_it() {
        let copies = (3 << 20) / PARAGRAPH.len();
        let body = PARAGRAPH.len() * copies;
        for (tail, want) in [
            (
                &b"Nog een zin.\x00 binair"[..],
                format!("big.txt: contains a NUL byte (at byte {})", body + 12),
            ),
            (
                &b"Caf\xE9 open.\n"[..],
                format!(
                    "big.txt: is not valid UTF-8 at byte {} (line {}, column 4: bytes e9)",
                    body + 3,
                    3 * copies + 1
                ),
            ),
        ] {
            let size = 64 << 10;
            let input = Generated {
                piece: PARAGRAPH,
                copies,
                tail,
                at: 0,
            };
            let (blocks, read, _, error) = drain(input, size);
            let error = error.expect("an error").to_string();
            assert!(error.starts_with(&want), "{error}");
            // Only text before the bad byte came out, all of it but the unfinished block.
            assert!(
                read <= body + tail.len() && read + size + LOOKAHEAD + READ_CHUNK > body,
                "{read}"
            );
            assert!(blocks > 40);
        }
    }

    #[test]
    fn small_inputs_are_one_block() {
        let got = blocks("Kort.\n\nNog een.", 64);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].text, "Kort.\n\nNog een.");
        assert!(blocks("", 64).is_empty());
    }
}
