//! Input decoding: the bytes of a file or of standard input turned into the text the pipeline
//! reads, with clear errors for what is not text.
//!
//! What [`decode`] does, in order:
//!
//! 1. **Encoding.** A UTF-16 byte-order mark (`FF FE` or `FE FF`) selects UTF-16 (little or big
//!    endian), which is decoded; everything else must be UTF-8, with or without a byte-order
//!    mark (`EF BB BF`, removed). Other encodings (Latin-1, Windows-1252, UTF-16 without a mark)
//!    are not guessed: they fail, and the message says how to convert them.
//! 2. **Binary content.** A NUL character anywhere means the input is not text (images, archives,
//!    word-processor files, UTF-16 without a byte-order mark); it is refused with
//!    [`Error::Input`] naming the offset of the first NUL.
//! 3. **Invalid UTF-8.** The first invalid byte sequence is an error naming the byte offset, line
//!    and column. With [`DecodeOptions::lossy`] each invalid sequence becomes U+FFFD instead,
//!    unless more than a quarter of the text would be replacement characters, which is refused
//!    as binary.
//! 4. **Line endings.** CRLF and lone CR become LF, and so do the other control characters that
//!    end a line in some convention (vertical tab, form feed, NEL U+0085). Byte spans in the
//!    pipeline's output are offsets into this normalised text ([`Decoded::text`]).
//! 5. **Control characters.** TAB and LF are kept; every other control character (C0, DEL, C1)
//!    is removed: they carry no text, and a stray one inside a word would split it.
//!
//! Empty or white-space-only input is not an error: [`Decoded::is_blank`] is true and the
//! pipeline returns an empty result without running the model.
//!
//! [`decode`] works on the whole input; [`StreamDecoder`] does the same work on an input given in
//! pieces of any size, with memory bounded by the piece size, and [`decode`] is built on it, so the
//! two give the same text, counts and errors. A decoder that reports problems as soon as it meets
//! them ([`StreamDecoder::new`]) can only report the first one in reading order, while the whole
//! input decoder reports them in a fixed precedence (a NUL byte anywhere before an earlier invalid
//! UTF-8 sequence, an odd UTF-16 length before anything else); [`check_reader`] reads a whole
//! input with that precedence, without keeping its text, for a first pass over a large file.

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

/// How many bytes the streaming readers read at a time.
pub const READ_CHUNK: usize = 64 * 1024;

/// Bytes after the byte-order mark kept to tell UTF-16 without a mark from other binary data.
const SAMPLE_BYTES: usize = 4096;

/// How input bytes are decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Replace invalid UTF-8 sequences and unpaired UTF-16 surrogates with U+FFFD instead of
    /// failing. Default: `false` (fail, naming the byte offset).
    pub lossy: bool,
}

impl DecodeOptions {
    /// Sets [`DecodeOptions::lossy`].
    #[must_use]
    pub fn with_lossy(mut self, lossy: bool) -> Self {
        self.lossy = lossy;
        self
    }
}

/// The encoding an input was read in.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// UTF-8 without a byte-order mark.
    #[default]
    Utf8,
    /// UTF-8 with a byte-order mark (removed).
    Utf8Bom,
    /// UTF-16 little endian, with a byte-order mark.
    Utf16Le,
    /// UTF-16 big endian, with a byte-order mark.
    Utf16Be,
}

/// Decoded text and what decoding changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text: LF line endings, no control characters but TAB and LF, no byte-order mark.
    pub text: String,
    /// The encoding it was read in.
    pub encoding: Encoding,
    /// Invalid sequences replaced by U+FFFD (only with [`DecodeOptions::lossy`]).
    pub replaced: usize,
    /// Line endings changed to LF (CRLF, CR, VT, FF, NEL).
    pub line_endings_changed: usize,
    /// Control characters removed.
    pub controls_removed: usize,
}

impl Decoded {
    /// Whether the text is empty or white space only (nothing to translate).
    pub fn is_blank(&self) -> bool {
        self.text.trim().is_empty()
    }
}

/// What decoding a whole input did, without its text: from [`StreamDecoder::finish`] and
/// [`check_reader`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeStats {
    /// The encoding it was read in.
    pub encoding: Encoding,
    /// Invalid sequences replaced by U+FFFD (only with [`DecodeOptions::lossy`]).
    pub replaced: usize,
    /// Line endings changed to LF (CRLF, CR, VT, FF, NEL).
    pub line_endings_changed: usize,
    /// Control characters removed.
    pub controls_removed: usize,
    /// Bytes of input read, byte-order mark included.
    pub input_bytes: u64,
    /// Bytes of decoded text produced.
    pub text_bytes: u64,
}

/// Reads and decodes a file; errors name the file.
pub fn read_file(path: impl AsRef<Path>, options: &DecodeOptions) -> Result<Decoded> {
    let path = path.as_ref();
    let bytes = std::fs::read(path).map_err(|e| Error::io(path, e))?;
    decode(&bytes, &path.display().to_string(), options)
}

/// Reads everything from `reader` and decodes it; `name` (such as `<stdin>`) appears in errors.
pub fn read_from(mut reader: impl Read, name: &str, options: &DecodeOptions) -> Result<Decoded> {
    let mut bytes = Vec::new();
    reader
        .read_to_end(&mut bytes)
        .map_err(|e| Error::io(name, e))?;
    decode(&bytes, name, options)
}

/// Decodes input bytes into text (see the module documentation for the rules). `name` is the
/// file path or `<stdin>`, used in error messages.
pub fn decode(bytes: &[u8], name: &str, options: &DecodeOptions) -> Result<Decoded> {
    let (text, stats) = decode_with_stats(bytes, name, options)?;
    Ok(Decoded {
        text,
        encoding: stats.encoding,
        replaced: stats.replaced,
        line_endings_changed: stats.line_endings_changed,
        controls_removed: stats.controls_removed,
    })
}

/// [`decode`], returning the text and every figure of [`DecodeStats`].
pub fn decode_with_stats(
    bytes: &[u8],
    name: &str,
    options: &DecodeOptions,
) -> Result<(String, DecodeStats)> {
    let mut decoder = StreamDecoder::whole_input(name, options);
    let mut text = String::with_capacity(bytes.len());
    decoder.push(bytes, &mut text)?;
    let stats = decoder.finish(&mut text)?;
    Ok((text, stats))
}

/// Reads `reader` to its end and checks that it decodes, exactly as [`decode`] would (same
/// errors, same precedence), keeping no more than one read's worth of it in memory. `name`
/// appears in errors.
pub fn check_reader(
    mut reader: impl Read,
    name: &str,
    options: &DecodeOptions,
) -> Result<DecodeStats> {
    let mut decoder = StreamDecoder::whole_input(name, options);
    let mut buf = vec![0u8; READ_CHUNK];
    let mut scratch = String::new();
    loop {
        let n = read_some(&mut reader, &mut buf).map_err(|e| Error::io(name, e))?;
        let Some(chunk) = buf.get(..n).filter(|c| !c.is_empty()) else {
            break;
        };
        decoder.push(chunk, &mut scratch)?;
        scratch.clear();
    }
    decoder.finish(&mut scratch)
}

/// [`check_reader`] on a file; errors name the file.
pub fn check_file(path: impl AsRef<Path>, options: &DecodeOptions) -> Result<DecodeStats> {
    let path = path.as_ref();
    let file = std::fs::File::open(path).map_err(|e| Error::io(path, e))?;
    check_reader(file, &path.display().to_string(), options)
}

/// One `read`, retried when interrupted by a signal.
pub(crate) fn read_some(reader: &mut impl Read, buf: &mut [u8]) -> std::io::Result<usize> {
    loop {
        match reader.read(buf) {
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            other => return other,
        }
    }
}

/// What is wrong with an input, kept until it is reported.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Problem {
    /// A NUL byte in UTF-8 input, at this offset of the whole input.
    NulByte(u64),
    /// An invalid UTF-8 sequence at `at` (bytes after the byte-order mark), 1-based `line` and
    /// `column` (in bytes), the offending `bytes`, and whether the input ends inside it.
    InvalidUtf8 {
        at: u64,
        line: u64,
        column: u64,
        bytes: Vec<u8>,
        truncated: bool,
    },
    /// An unpaired UTF-16 surrogate at byte `at` of the whole input.
    Surrogate { unit: u16, at: u64 },
    /// A NUL character in UTF-16 input, at this byte offset of the decoded text.
    NulChar(u64),
    /// UTF-16 input with an odd number of bytes (the whole input's length).
    OddLength(u64),
    /// Too many replaced sequences (`--lossy`): binary data.
    MostlyInvalid { replaced: usize, chars: u64 },
}

/// Decodes an input given in pieces of any size, by the rules of [`decode`], into the same
/// text: push the pieces in order with [`StreamDecoder::push`], then call
/// [`StreamDecoder::finish`]. Memory stays bounded by the piece size (at most 4 KiB of the input
/// and three bytes of an unfinished character are kept between pieces).
///
/// A decoder from [`StreamDecoder::new`] fails as soon as it meets a problem, so the caller can
/// stop reading; an input that ends in the middle of a character, an odd number of UTF-16 bytes
/// and too many replacements under [`DecodeOptions::lossy`] can only be known at the end and are
/// reported by `finish`.
///
/// ```
/// use tolk::input::{DecodeOptions, StreamDecoder};
///
/// let mut decoder = StreamDecoder::new("<stdin>", &DecodeOptions::default());
/// let mut text = String::new();
/// for piece in [&b"Caf\xC3"[..], &b"\xA9 open.\r"[..], &b"\nDicht."[..]] {
///     decoder.push(piece, &mut text)?;
/// }
/// let stats = decoder.finish(&mut text)?;
/// assert_eq!(text, "Café open.\nDicht.");
/// assert_eq!(stats.line_endings_changed, 1);
/// # Ok::<(), tolk::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct StreamDecoder {
    name: String,
    lossy: bool,
    fail_fast: bool,
    encoding: Option<Encoding>,
    /// The first bytes, held until the byte-order mark (or its absence) is certain.
    head: Vec<u8>,
    bom: u64,
    /// Bytes pushed, byte-order mark included.
    total: u64,
    /// Bytes after the byte-order mark that reached the decoder (an unfinished character
    /// included).
    rest_seen: u64,
    /// The first [`SAMPLE_BYTES`] after the byte-order mark.
    sample: Vec<u8>,
    /// The bytes of an unfinished UTF-8 character or UTF-16 code unit.
    carry: Vec<u8>,
    /// A UTF-16 high surrogate waiting for its pair, and its unit index.
    high: Option<(u16, u64)>,
    /// UTF-16 code units read.
    units: u64,
    /// Line feeds before the decoding position and the offset after the last one (UTF-8), for
    /// the line and column of an error.
    newlines: u64,
    line_start: u64,
    /// Decoded text before normalisation: bytes and characters.
    raw_len: u64,
    raw_chars: u64,
    /// The last character normalised was a CR (a following LF belongs to it).
    after_cr: bool,
    replaced: usize,
    line_endings_changed: usize,
    controls_removed: usize,
    text_bytes: u64,
    nul_byte: Option<u64>,
    nul_char: Option<u64>,
    /// The first invalid UTF-8 sequence or unpaired surrogate; decoding stops there (no more
    /// text is produced) unless the decoder is lossy.
    invalid: Option<Problem>,
}

impl StreamDecoder {
    /// A decoder that fails as soon as it meets a problem (see the type's documentation); `name`
    /// (the file path or `<stdin>`) appears in errors.
    pub fn new(name: &str, options: &DecodeOptions) -> Self {
        StreamDecoder {
            name: name.to_string(),
            lossy: options.lossy,
            fail_fast: true,
            encoding: None,
            head: Vec::new(),
            bom: 0,
            total: 0,
            rest_seen: 0,
            sample: Vec::new(),
            carry: Vec::new(),
            high: None,
            units: 0,
            newlines: 0,
            line_start: 0,
            raw_len: 0,
            raw_chars: 0,
            after_cr: false,
            replaced: 0,
            line_endings_changed: 0,
            controls_removed: 0,
            text_bytes: 0,
            nul_byte: None,
            nul_char: None,
            invalid: None,
        }
    }

    /// A decoder that reads on past problems and reports, from `finish`, the one [`decode`]
    /// reports for the whole input.
    fn whole_input(name: &str, options: &DecodeOptions) -> Self {
        StreamDecoder {
            fail_fast: false,
            ..StreamDecoder::new(name, options)
        }
    }

    /// The encoding, once the first bytes have told it.
    pub fn encoding(&self) -> Option<Encoding> {
        self.encoding
    }

    /// Bytes pushed so far.
    pub fn input_bytes(&self) -> u64 {
        self.total
    }

    /// Decodes the next piece of input, appending its text (normalised) to `out`. Text may lag
    /// behind the input by up to three bytes (an unfinished character, a CR whose LF may follow).
    pub fn push(&mut self, bytes: &[u8], out: &mut String) -> Result<()> {
        self.total += bytes.len() as u64;
        if self.encoding.is_some() {
            self.feed(bytes, out, false);
        } else {
            self.head.extend_from_slice(bytes);
            if let Some((encoding, bom)) = detect(&self.head, false) {
                self.start(encoding, bom, out);
            }
        }
        match self.problem(false) {
            Some(p) if self.fail_fast => Err(self.error(p)),
            _ => Ok(()),
        }
    }

    /// Ends the input: decodes what was held back and returns what decoding did, or the input's
    /// problem.
    pub fn finish(&mut self, out: &mut String) -> Result<DecodeStats> {
        if self.encoding.is_none() {
            let (encoding, bom) = detect(&self.head, true).unwrap_or((Encoding::Utf8, 0));
            self.start(encoding, bom, out);
        }
        match self.encoding {
            Some(Encoding::Utf16Le | Encoding::Utf16Be) => {
                if let Some((unit, index)) = self.high.take() {
                    let mut raw = String::new();
                    self.unpaired(unit, index, &mut raw);
                    self.emit(&raw, out);
                }
                if (self.total - self.bom) % 2 == 1 && self.lossy {
                    self.replaced += 1;
                    self.emit("\u{FFFD}", out);
                }
            }
            _ => self.feed(&[], out, true),
        }
        if let Some(p) = self.problem(true) {
            return Err(self.error(p));
        }
        Ok(DecodeStats {
            encoding: self.encoding.unwrap_or(Encoding::Utf8),
            replaced: self.replaced,
            line_endings_changed: self.line_endings_changed,
            controls_removed: self.controls_removed,
            input_bytes: self.total,
            text_bytes: self.text_bytes,
        })
    }

    fn start(&mut self, encoding: Encoding, bom: u64, out: &mut String) {
        self.encoding = Some(encoding);
        self.bom = bom;
        let head = std::mem::take(&mut self.head);
        let body = head.get(bom as usize..).unwrap_or_default();
        self.feed(body, out, false);
    }

    fn is_utf16(&self) -> bool {
        matches!(self.encoding, Some(Encoding::Utf16Le | Encoding::Utf16Be))
    }

    /// The problem to report: at the end, the whole-input precedence; before it, in a
    /// fail-fast decoder, what is already certain.
    fn problem(&self, at_end: bool) -> Option<Problem> {
        if self.is_utf16() {
            let odd = (self.total - self.bom) % 2 == 1;
            if at_end && odd && !self.lossy {
                return Some(Problem::OddLength(self.total));
            }
            if let Some(p) = &self.invalid {
                return Some(p.clone());
            }
            if let Some(at) = self.nul_char {
                return Some(Problem::NulChar(at));
            }
        } else {
            if let Some(at) = self.nul_byte {
                return Some(Problem::NulByte(at));
            }
            if let Some(p) = &self.invalid {
                return Some(p.clone());
            }
        }
        // A few bad bytes in a short text are not evidence of binary data.
        if at_end && self.replaced >= 8 && self.replaced as u64 * 4 > self.raw_chars {
            return Some(Problem::MostlyInvalid {
                replaced: self.replaced,
                chars: self.raw_chars,
            });
        }
        None
    }

    fn error(&self, problem: Problem) -> Error {
        let name = self.name.as_str();
        match problem {
            Problem::NulByte(at) => binary(name, at, &self.sample),
            Problem::InvalidUtf8 {
                at,
                line,
                column,
                bytes,
                truncated,
            } => {
                let shown: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
                let what = if truncated {
                    "ends in the middle of a UTF-8 character"
                } else {
                    "is not valid UTF-8"
                };
                lossy_error(
                    name,
                    format!(
                        "{what} at byte {at} (line {line}, column {column}: bytes {}); convert it to UTF-8 (for Latin-1 or Windows-1252: iconv -f CP1252 -t UTF-8) or decode it lossily, replacing invalid bytes with U+FFFD",
                        shown.join(" ")
                    ),
                )
            }
            Problem::Surrogate { unit, at } => lossy_error(
                name,
                format!(
                    "is not valid UTF-16: unpaired surrogate {unit:04x} at byte {at} (lossy decoding replaces it with U+FFFD)"
                ),
            ),
            Problem::NulChar(at) => input_error(
                name,
                format!("contains a NUL character (at character offset {at}): binary data, not text"),
            ),
            Problem::OddLength(total) => input_error(
                name,
                format!("UTF-16 input has an odd number of bytes ({total}): the file is truncated"),
            ),
            Problem::MostlyInvalid { replaced, chars } => input_error(
                name,
                format!(
                    "{replaced} of {chars} characters are not valid {}: binary data, not text",
                    if self.is_utf16() { "UTF-16" } else { "UTF-8" }
                ),
            ),
        }
    }

    /// Decodes bytes after the byte-order mark; `last` marks the end of the input.
    fn feed(&mut self, bytes: &[u8], out: &mut String, last: bool) {
        if self.sample.len() < SAMPLE_BYTES {
            let take = (SAMPLE_BYTES - self.sample.len()).min(bytes.len());
            self.sample
                .extend_from_slice(bytes.get(..take).unwrap_or_default());
        }
        let offset = self.rest_seen;
        self.rest_seen += bytes.len() as u64;
        if self.is_utf16() {
            self.feed_utf16(bytes, out);
        } else {
            if self.nul_byte.is_none() {
                if let Some(p) = bytes.iter().position(|&b| b == 0) {
                    self.nul_byte = Some(self.bom + offset + p as u64);
                }
            }
            if self.fail_fast && self.nul_byte.is_some() {
                return;
            }
            self.feed_utf8(bytes, out, last);
        }
    }

    fn feed_utf8(&mut self, bytes: &[u8], out: &mut String, last: bool) {
        if self.invalid.is_some() && !self.lossy {
            return;
        }
        let joined = self.after_carry(bytes);
        let data: &[u8] = &joined;
        // Offset (after the byte-order mark) of data[0].
        let mut pos = self.rest_seen - data.len() as u64;
        let mut chunks = data.utf8_chunks().peekable();
        while let Some(chunk) = chunks.next() {
            let valid = chunk.valid();
            for (i, _) in valid.bytes().enumerate().filter(|&(_, b)| b == b'\n') {
                self.newlines += 1;
                self.line_start = pos + i as u64 + 1;
            }
            self.emit(valid, out);
            pos += valid.len() as u64;
            let invalid = chunk.invalid();
            if invalid.is_empty() {
                continue;
            }
            let truncated = chunks.peek().is_none()
                && std::str::from_utf8(invalid)
                    .err()
                    .is_some_and(|e| e.error_len().is_none());
            if truncated && !last {
                self.carry = invalid.to_vec();
                return;
            }
            if self.lossy {
                self.replaced += 1;
                self.emit("\u{FFFD}", out);
                pos += invalid.len() as u64;
                continue;
            }
            self.invalid = Some(Problem::InvalidUtf8 {
                at: pos,
                line: self.newlines + 1,
                column: pos - self.line_start + 1,
                bytes: invalid.iter().take(4).copied().collect(),
                truncated,
            });
            return;
        }
    }

    /// `bytes` after what the previous block left over (an incomplete character), which is taken.
    fn after_carry<'a>(&mut self, bytes: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        if self.carry.is_empty() {
            return std::borrow::Cow::Borrowed(bytes);
        }
        let mut joined = std::mem::take(&mut self.carry);
        joined.extend_from_slice(bytes);
        std::borrow::Cow::Owned(joined)
    }

    fn feed_utf16(&mut self, bytes: &[u8], out: &mut String) {
        let joined = self.after_carry(bytes);
        let data: &[u8] = &joined;
        let pairs = data.chunks_exact(2);
        self.carry = pairs.remainder().to_vec();
        if self.invalid.is_some() && !self.lossy {
            return;
        }
        let big_endian = self.encoding == Some(Encoding::Utf16Be);
        let mut raw = String::with_capacity(data.len());
        for pair in pairs {
            let pair = [
                pair.first().copied().unwrap_or(0),
                pair.get(1).copied().unwrap_or(0),
            ];
            let unit = if big_endian {
                u16::from_be_bytes(pair)
            } else {
                u16::from_le_bytes(pair)
            };
            let index = self.units;
            self.units += 1;
            if let Some((high, high_index)) = self.high.take() {
                if (0xDC00..=0xDFFF).contains(&unit) {
                    let c =
                        0x10000 + ((u32::from(high) - 0xD800) << 10) + (u32::from(unit) - 0xDC00);
                    raw.push(char::from_u32(c).unwrap_or('\u{FFFD}'));
                    continue;
                }
                self.unpaired(high, high_index, &mut raw);
            }
            if self.invalid.is_some() && !self.lossy {
                break;
            }
            match unit {
                0xD800..=0xDBFF => self.high = Some((unit, index)),
                0xDC00..=0xDFFF => self.unpaired(unit, index, &mut raw),
                _ => raw.push(char::from_u32(u32::from(unit)).unwrap_or('\u{FFFD}')),
            }
            if self.invalid.is_some() && !self.lossy {
                break;
            }
        }
        self.emit(&raw, out);
    }

    /// An unpaired surrogate: replaced (lossy) or the decoding problem.
    fn unpaired(&mut self, unit: u16, index: u64, raw: &mut String) {
        if self.lossy {
            raw.push('\u{FFFD}');
            self.replaced += 1;
        } else if self.invalid.is_none() {
            self.invalid = Some(Problem::Surrogate {
                unit,
                at: self.bom + 2 * index,
            });
        }
    }

    /// Normalises decoded text into `out`: line endings to LF, control characters other than TAB
    /// and LF removed.
    fn emit(&mut self, raw: &str, out: &mut String) {
        if raw.is_empty() {
            return;
        }
        if self.nul_char.is_none() {
            if let Some(p) = raw.find('\0') {
                self.nul_char = Some(self.raw_len + p as u64);
            }
        }
        self.raw_len += raw.len() as u64;
        self.raw_chars += raw.chars().count() as u64;
        let before = out.len();
        let mut text = raw;
        if std::mem::take(&mut self.after_cr) {
            text = text.strip_prefix('\n').unwrap_or(text);
        }
        if !text
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t')
        {
            out.push_str(text);
        } else {
            for c in text.chars() {
                if std::mem::take(&mut self.after_cr) && c == '\n' {
                    continue;
                }
                match c {
                    '\r' => {
                        out.push('\n');
                        self.line_endings_changed += 1;
                        self.after_cr = true;
                    }
                    '\u{0B}' | '\u{0C}' | '\u{85}' => {
                        out.push('\n');
                        self.line_endings_changed += 1;
                    }
                    '\n' | '\t' => out.push(c),
                    c if c.is_control() => self.controls_removed += 1,
                    c => out.push(c),
                }
            }
        }
        self.text_bytes += (out.len() - before) as u64;
    }
}

/// The encoding and byte-order mark length told by the first bytes, or `None` while they could
/// still be the start of a mark (`at_end`: no more bytes will come).
fn detect(head: &[u8], at_end: bool) -> Option<(Encoding, u64)> {
    const MARKS: [(&[u8], Encoding); 3] = [
        (&[0xFF, 0xFE], Encoding::Utf16Le),
        (&[0xFE, 0xFF], Encoding::Utf16Be),
        (&[0xEF, 0xBB, 0xBF], Encoding::Utf8Bom),
    ];
    for (mark, encoding) in MARKS {
        if head.starts_with(mark) {
            return Some((encoding, mark.len() as u64));
        }
    }
    let undecided = MARKS
        .iter()
        .any(|(mark, _)| head.len() < mark.len() && mark.starts_with(head));
    (at_end || !undecided).then_some((Encoding::Utf8, 0))
}

fn input_error(name: &str, message: impl Into<String>) -> Error {
    Error::Input {
        source_name: name.to_string(),
        message: message.into(),
        remedy: None,
    }
}

/// A decoding error that lossy decoding ([`DecodeOptions::lossy`]) would get past.
fn lossy_error(name: &str, message: impl Into<String>) -> Error {
    Error::Input {
        source_name: name.to_string(),
        message: message.into(),
        remedy: Some(crate::error::Remedy::Lossy),
    }
}

/// The error for a NUL byte at `at`; says so when the bytes look like UTF-16 without a mark.
fn binary(name: &str, at: u64, bytes: &[u8]) -> Error {
    let sample = bytes
        .get(..bytes.len().min(SAMPLE_BYTES))
        .unwrap_or_default();
    let zeros_even = sample.iter().step_by(2).filter(|&&b| b == 0).count();
    let zeros_odd = sample
        .iter()
        .skip(1)
        .step_by(2)
        .filter(|&&b| b == 0)
        .count();
    let half = sample.len() / 2;
    let utf16 = half > 0 && (zeros_even * 10 > half * 7 || zeros_odd * 10 > half * 7);
    let hint = if utf16 {
        "; it looks like UTF-16 without a byte-order mark: convert it to UTF-8 (iconv -f UTF-16LE -t UTF-8) or add a byte-order mark"
    } else {
        ""
    };
    input_error(
        name,
        format!("contains a NUL byte (at byte {at}): binary data, not text{hint}"),
    )
}

/// The whole-input decoder as it was before [`StreamDecoder`] (with one fix: the byte offset of an
/// unpaired surrogate counts code units, not decoded characters), kept as the reference that
/// the streaming decoder must agree with.
#[cfg(test)]
mod oracle {
    // The messages are built by the same helpers as the streaming decoder's; what is checked is
    // when and where each problem is found.
    use super::{binary, input_error, lossy_error, DecodeOptions, Decoded, Encoding};
    use crate::error::Result;

    /// Decodes input bytes into text (see the module documentation for the rules). `name` is the
    /// file path or `<stdin>`, used in error messages.
    pub fn decode(bytes: &[u8], name: &str, options: &DecodeOptions) -> Result<Decoded> {
        let (raw, encoding, replaced) = if let Some(rest) = bytes.strip_prefix(&[0xFF, 0xFE]) {
            let (text, replaced) = decode_utf16(rest, false, name, options)?;
            (text, Encoding::Utf16Le, replaced)
        } else if let Some(rest) = bytes.strip_prefix(&[0xFE, 0xFF]) {
            let (text, replaced) = decode_utf16(rest, true, name, options)?;
            (text, Encoding::Utf16Be, replaced)
        } else {
            let (rest, encoding) = match bytes.strip_prefix(&[0xEF, 0xBB, 0xBF]) {
                Some(rest) => (rest, Encoding::Utf8Bom),
                None => (bytes, Encoding::Utf8),
            };
            if let Some(at) = rest.iter().position(|&b| b == 0) {
                return Err(binary(name, (at + (bytes.len() - rest.len())) as u64, rest));
            }
            let (text, replaced) = decode_utf8(rest, name, options)?;
            (text, encoding, replaced)
        };
        if let Some(at) = raw.find('\0') {
            return Err(input_error(
                name,
                format!(
                    "contains a NUL character (at character offset {at}): binary data, not text"
                ),
            ));
        }
        let chars = raw.chars().count();
        // A few bad bytes in a short text are not evidence of binary data.
        if replaced >= 8 && replaced * 4 > chars {
            return Err(input_error(
                name,
                format!(
                    "{replaced} of {chars} characters are not valid {}: binary data, not text",
                    match encoding {
                        Encoding::Utf16Le | Encoding::Utf16Be => "UTF-16",
                        _ => "UTF-8",
                    }
                ),
            ));
        }
        let (text, line_endings_changed, controls_removed) = normalize(&raw);
        Ok(Decoded {
            text,
            encoding,
            replaced,
            line_endings_changed,
            controls_removed,
        })
    }

    fn decode_utf8(bytes: &[u8], name: &str, options: &DecodeOptions) -> Result<(String, usize)> {
        match std::str::from_utf8(bytes) {
            Ok(text) => Ok((text.to_string(), 0)),
            Err(e) if !options.lossy => {
                let at = e.valid_up_to();
                let (line, column) = line_column(bytes, at);
                let len = e.error_len().unwrap_or(bytes.len() - at).clamp(1, 4);
                let shown: Vec<String> = bytes
                    .get(at..at + len)
                    .unwrap_or_default()
                    .iter()
                    .map(|b| format!("{b:02x}"))
                    .collect();
                let what = if e.error_len().is_none() {
                    "ends in the middle of a UTF-8 character"
                } else {
                    "is not valid UTF-8"
                };
                Err(lossy_error(
                    name,
                    format!(
                        "{what} at byte {at} (line {line}, column {column}: bytes {}); convert it to UTF-8 (for Latin-1 or Windows-1252: iconv -f CP1252 -t UTF-8) or decode it lossily, replacing invalid bytes with U+FFFD",
                        shown.join(" ")
                    ),
                ))
            }
            Err(_) => {
                let text = String::from_utf8_lossy(bytes).into_owned();
                // Every replacement character that was not in the input marks one invalid sequence.
                let before = count_replacement_runs_in_valid_parts(bytes);
                let replaced = text.matches('\u{FFFD}').count().saturating_sub(before);
                Ok((text, replaced))
            }
        }
    }

    /// U+FFFD characters that were already in the input (valid UTF-8 `EF BF BD`).
    fn count_replacement_runs_in_valid_parts(bytes: &[u8]) -> usize {
        bytes
            .windows(3)
            .filter(|w| w == &[0xEF, 0xBF, 0xBD])
            .count()
    }

    /// 1-based line and column (in bytes) of byte offset `at`.
    fn line_column(bytes: &[u8], at: usize) -> (usize, usize) {
        let before = &bytes[..at.min(bytes.len())];
        let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
        let line_start = before
            .iter()
            .rposition(|&b| b == b'\n')
            .map_or(0, |p| p + 1);
        (line, at - line_start + 1)
    }

    fn decode_utf16(
        bytes: &[u8],
        big_endian: bool,
        name: &str,
        options: &DecodeOptions,
    ) -> Result<(String, usize)> {
        let mut replaced = 0;
        if !bytes.len().is_multiple_of(2) {
            if !options.lossy {
                return Err(input_error(
                    name,
                    format!(
                        "UTF-16 input has an odd number of bytes ({}): the file is truncated",
                        bytes.len() + 2
                    ),
                ));
            }
            replaced += 1;
        }
        let units = bytes.chunks_exact(2).map(|pair| {
            let pair = [pair[0], pair[1]];
            if big_endian {
                u16::from_be_bytes(pair)
            } else {
                u16::from_le_bytes(pair)
            }
        });
        let mut text = String::with_capacity(bytes.len() / 2);
        let mut n = 0;
        for unit in char::decode_utf16(units) {
            let at = n;
            n += unit.as_ref().map_or(1, |c| c.len_utf16());
            match unit {
                Ok(c) => text.push(c),
                Err(e) if !options.lossy => {
                    return Err(lossy_error(
                        name,
                        format!(
                            "is not valid UTF-16: unpaired surrogate {:04x} at byte {} (lossy decoding replaces it with U+FFFD)",
                            e.unpaired_surrogate(),
                            2 + 2 * at
                        ),
                    ))
                }
                Err(_) => {
                    text.push('\u{FFFD}');
                    replaced += 1;
                }
            }
        }
        if !bytes.len().is_multiple_of(2) {
            text.push('\u{FFFD}');
        }
        Ok((text, replaced))
    }

    /// Line endings to LF, control characters other than TAB and LF removed. Returns the text, the
    /// number of line endings changed and the number of control characters removed.
    fn normalize(raw: &str) -> (String, usize, usize) {
        let needs_work = raw
            .chars()
            .any(|c| c.is_control() && c != '\n' && c != '\t');
        if !needs_work {
            return (raw.to_string(), 0, 0);
        }
        let mut out = String::with_capacity(raw.len());
        let mut changed = 0;
        let mut removed = 0;
        let mut chars = raw.chars().peekable();
        while let Some(c) = chars.next() {
            match c {
                '\r' => {
                    if chars.peek() == Some(&'\n') {
                        chars.next();
                    }
                    out.push('\n');
                    changed += 1;
                }
                '\u{0B}' | '\u{0C}' | '\u{85}' => {
                    out.push('\n');
                    changed += 1;
                }
                '\n' | '\t' => out.push(c),
                c if c.is_control() => removed += 1,
                c => out.push(c),
            }
        }
        (out, changed, removed)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(bytes: &[u8]) -> Decoded {
        decode(bytes, "f.txt", &DecodeOptions::default()).unwrap()
    }

    fn err(bytes: &[u8]) -> String {
        decode(bytes, "f.txt", &DecodeOptions::default())
            .unwrap_err()
            .to_string()
    }

    fn utf16(text: &str, big_endian: bool) -> Vec<u8> {
        let mut out = if big_endian {
            vec![0xFE, 0xFF]
        } else {
            vec![0xFF, 0xFE]
        };
        for u in text.encode_utf16() {
            out.extend(if big_endian {
                u.to_be_bytes()
            } else {
                u.to_le_bytes()
            });
        }
        out
    }

    #[test]
    fn utf8_with_and_without_bom() {
        let d = ok("Één zin.".as_bytes());
        assert_eq!((d.text.as_str(), d.encoding), ("Één zin.", Encoding::Utf8));
        let d = ok(b"\xEF\xBB\xBFHallo.");
        assert_eq!((d.text.as_str(), d.encoding), ("Hallo.", Encoding::Utf8Bom));
    }

    #[test]
    fn utf16_with_a_bom_is_decoded() {
        let text = "Één zin.\r\nTwee 🚲.";
        let d = ok(&utf16(text, false));
        assert_eq!(d.encoding, Encoding::Utf16Le);
        assert_eq!(d.text, "Één zin.\nTwee 🚲.");
        let d = ok(&utf16(text, true));
        assert_eq!(d.encoding, Encoding::Utf16Be);
        assert_eq!(d.text, "Één zin.\nTwee 🚲.");
        // Truncated and unpaired surrogates.
        let mut odd = utf16("ab", false);
        odd.push(b'c');
        assert!(err(&odd).contains("odd number of bytes"));
        let lone = [0xFF, 0xFE, 0x00, 0xD8, b'a', 0];
        assert!(err(&lone).contains("unpaired surrogate d800 at byte 2"));
        let lossy = decode(&lone, "f", &DecodeOptions::default().with_lossy(true)).unwrap();
        assert_eq!(lossy.text, "\u{FFFD}a");
    }

    #[test]
    fn invalid_utf8_names_the_offset_or_is_replaced() {
        let bytes = b"Goed.\nCaf\xE9 open.";
        let e = err(bytes);
        assert!(
            e.starts_with("f.txt: is not valid UTF-8 at byte 9 (line 2, column 4: bytes e9"),
            "{e}"
        );
        assert!(e.contains("decode it lossily"));
        let d = decode(bytes, "f", &DecodeOptions::default().with_lossy(true)).unwrap();
        assert_eq!(d.text, "Goed.\nCaf\u{FFFD} open.");
        assert_eq!(d.replaced, 1);
        // A replacement character already in the input is not counted.
        let d = decode(
            "\u{FFFD} x \u{FFFD}".as_bytes(),
            "f",
            &DecodeOptions::default().with_lossy(true),
        )
        .unwrap();
        assert_eq!(d.replaced, 0);
        assert!(err(b"abc\xE2\x82").contains("ends in the middle of a UTF-8 character at byte 3"));
    }

    #[test]
    fn binary_content_is_refused() {
        let e = err(b"PK\x03\x04\x00\x00binary");
        assert!(
            e.contains("NUL byte (at byte 4)") && e.contains("not text"),
            "{e}"
        );
        // UTF-16 without a byte-order mark.
        let mut bytes = utf16("Hallo wereld, dit is tekst.", false);
        bytes.drain(..2);
        assert!(err(&bytes).contains("UTF-16 without a byte-order mark"));
        // Mostly garbage with --lossy.
        let garbage: Vec<u8> = (0..200).map(|i| 0x80 + (i % 60) as u8).collect();
        let e = decode(&garbage, "f", &DecodeOptions::default().with_lossy(true))
            .unwrap_err()
            .to_string();
        assert!(e.contains("binary data"), "{e}");
        // NUL inside UTF-16.
        assert!(err(&utf16("a\0b", false)).contains("NUL character"));
    }

    #[test]
    fn line_endings_and_control_characters() {
        let d = ok(b"a\r\nb\rc\nd\x0Ce\x1B[0mf\tg\x7F\xC2\x85h");
        assert_eq!(d.text, "a\nb\nc\nd\ne[0mf\tg\nh");
        assert_eq!(d.line_endings_changed, 4);
        assert_eq!(d.controls_removed, 2);
        let d = ok(b"no change\n");
        assert_eq!((d.line_endings_changed, d.controls_removed), (0, 0));
    }

    #[test]
    fn blank_input_is_not_an_error() {
        assert!(ok(b"").is_blank());
        assert!(ok(b" \r\n\t\n").is_blank());
        assert!(ok(b"\xEF\xBB\xBF").is_blank());
        assert!(ok(&utf16("", true)).is_blank());
        assert!(!ok(b"x").is_blank());
    }

    /// Decodes `bytes` pushed in pieces of `size` bytes.
    fn chunked(
        bytes: &[u8],
        size: usize,
        options: &DecodeOptions,
        fail_fast: bool,
    ) -> Result<(String, DecodeStats)> {
        let mut d = if fail_fast {
            StreamDecoder::new("f.txt", options)
        } else {
            StreamDecoder::whole_input("f.txt", options)
        };
        let mut text = String::new();
        for piece in bytes.chunks(size.max(1)) {
            d.push(piece, &mut text)?;
        }
        let stats = d.finish(&mut text)?;
        Ok((text, stats))
    }

    /// Every input the tests above use, and a few more.
    fn samples() -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = vec![
            "Één zin.".as_bytes().to_vec(),
            b"\xEF\xBB\xBFHallo.".to_vec(),
            b"\xEF\xBB".to_vec(),
            b"\xFF".to_vec(),
            b"Goed.\nCaf\xE9 open.".to_vec(),
            "\u{FFFD} x \u{FFFD}".as_bytes().to_vec(),
            b"abc\xE2\x82".to_vec(),
            b"PK\x03\x04\x00\x00binary".to_vec(),
            b"a\r\nb\rc\nd\x0Ce\x1B[0mf\tg\x7F\xC2\x85h".to_vec(),
            b"no change\n".to_vec(),
            b"".to_vec(),
            b" \r\n\t\n".to_vec(),
            b"\xEF\xBB\xBF".to_vec(),
            b"x".to_vec(),
            b"r\r".to_vec(),
            b"\r\r\n\r".to_vec(),
            b"line\nbad \xF0\x9F\x98 here\n\xC0".to_vec(),
            b"early \xE9 then NUL\x00".to_vec(),
            (0..200).map(|i| 0x80 + (i % 60) as u8).collect(),
            [0xFF, 0xFE, 0x00, 0xD8, b'a', 0].to_vec(),
            [0xFF, 0xFE, 0x3D, 0xD8, 0x00, 0xDE, 0x00, 0xDC, b'a', 0].to_vec(),
            [0xFF, 0xFE, 0x3D, 0xD8].to_vec(),
        ];
        for text in ["Één zin.\r\nTwee 🚲.", "", "a\0b", "x\u{85}y\r"] {
            v.push(utf16(text, false));
            v.push(utf16(text, true));
        }
        let mut odd = utf16("ab🚲", false);
        odd.push(b'c');
        v.push(odd);
        let mut no_bom = utf16("Hallo wereld, dit is tekst.", false);
        no_bom.drain(..2);
        v.push(no_bom);
        v
    }

    fn same(
        got: Result<(String, DecodeStats)>,
        want: Result<Decoded>,
        what: &str,
    ) -> std::result::Result<(), String> {
        match (got, want) {
            (Ok((text, stats)), Ok(d)) => {
                let got = (
                    text,
                    stats.encoding,
                    stats.replaced,
                    stats.line_endings_changed,
                    stats.controls_removed,
                );
                let want = (
                    d.text.clone(),
                    d.encoding,
                    d.replaced,
                    d.line_endings_changed,
                    d.controls_removed,
                );
                if got.0.len() as u64 != stats.text_bytes {
                    return Err(format!("{what}: text_bytes {}", stats.text_bytes));
                }
                (got == want)
                    .then_some(())
                    .ok_or_else(|| format!("{what}: {got:?} != {want:?}"))
            }
            (Err(a), Err(b)) if a.to_string() == b.to_string() => Ok(()),
            (a, b) => Err(format!("{what}: {a:?} != {b:?}")),
        }
    }

    #[test]
    fn streaming_decoder_agrees_with_the_whole_input_decoder() {
        for bytes in samples() {
            for lossy in [false, true] {
                let options = DecodeOptions::default().with_lossy(lossy);
                let want = || oracle::decode(&bytes, "f.txt", &options);
                let what = format!("{bytes:?} lossy={lossy}");
                let whole = decode(&bytes, "f.txt", &options).map(|d| {
                    let stats = DecodeStats {
                        encoding: d.encoding,
                        replaced: d.replaced,
                        line_endings_changed: d.line_endings_changed,
                        controls_removed: d.controls_removed,
                        input_bytes: bytes.len() as u64,
                        text_bytes: d.text.len() as u64,
                    };
                    (d.text, stats)
                });
                same(whole, want(), &what).unwrap();
                for size in [1, 2, 3, 5, 7, 64] {
                    let got = chunked(&bytes, size, &options, false);
                    same(got, want(), &format!("{what} size={size}")).unwrap();
                    // A fail-fast decoder gives the same text, and an error whenever the whole
                    // input decoder gives one.
                    let got = chunked(&bytes, size, &options, true);
                    match (got, want()) {
                        (Err(_), Err(_)) => {}
                        (got, want) => {
                            same(got, want, &format!("{what} fail-fast {size}")).unwrap()
                        }
                    }
                }
                let read = check_reader(&bytes[..], "f.txt", &options);
                match (read, want()) {
                    (Ok(stats), Ok(d)) => assert_eq!(stats.text_bytes, d.text.len() as u64),
                    (Err(a), Err(b)) => assert_eq!(a.to_string(), b.to_string()),
                    (a, b) => panic!("{what}: {a:?} vs {b:?}"),
                }
            }
        }
    }

    #[test]
    fn invalid_utf8_far_into_a_large_input_names_its_offset_line_and_column() {
        let line = "Dit is een gewone regel tekst.\r\n";
        let mut bytes = Vec::new();
        while bytes.len() < 3_000_000 {
            bytes.extend_from_slice(line.as_bytes());
        }
        let at = bytes.len() + 3;
        let line = bytes.iter().filter(|&&b| b == b'\n').count() + 1;
        bytes.extend_from_slice(b"Caf\xE9 \xC3\xA9\n");
        let want =
            format!("f.txt: is not valid UTF-8 at byte {at} (line {line}, column 4: bytes e9)");
        let e = chunked(&bytes, READ_CHUNK, &DecodeOptions::default(), true)
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&want), "{e}");
        let e = check_reader(&bytes[..], "f.txt", &DecodeOptions::default())
            .unwrap_err()
            .to_string();
        assert!(e.starts_with(&want), "{e}");
        // A NUL byte later still wins, as in the whole-input decoder.
        bytes.extend_from_slice(b"\x00");
        let e = check_reader(&bytes[..], "f.txt", &DecodeOptions::default())
            .unwrap_err()
            .to_string();
        assert!(
            e.contains(&format!("NUL byte (at byte {})", bytes.len() - 1)),
            "{e}"
        );
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(400))]

        /// Random inputs from bytes that matter to decoding (marks, NUL, CR, halves of multi-byte
        /// characters, surrogates), cut at random places.
        #[test]
        fn random_inputs_decode_alike_in_any_pieces(
            bytes in proptest::collection::vec(proptest::sample::select(vec![
                0x00u8, b'\r', b'\n', b'a', b' ', 0x0B, 0x85, 0xC2, 0xC3, 0xA9, 0xE2, 0x82, 0xAC,
                0xF0, 0x9F, 0x98, 0x80, 0xFF, 0xFE, 0xEF, 0xBB, 0xBF, 0xD8, 0xDC, 0xBD,
            ]), 0..40),
            prefix in proptest::sample::select(vec![0usize, 1, 2, 3]),
            size in 1usize..9,
            lossy in proptest::bool::ANY,
        ) {
            let marks: [&[u8]; 4] = [b"", b"\xFF\xFE", b"\xFE\xFF", b"\xEF\xBB\xBF"];
            let mut input = marks.get(prefix).copied().unwrap_or_default().to_vec();
            input.extend_from_slice(&bytes);
            let options = DecodeOptions::default().with_lossy(lossy);
            let got = chunked(&input, size, &options, false);
            let r = same(got, oracle::decode(&input, "f.txt", &options), &format!("{input:?}"));
            proptest::prop_assert!(r.is_ok(), "{:?}", r);
            let got = chunked(&input, size, &options, true);
            match (got, oracle::decode(&input, "f.txt", &options)) {
                (Err(_), Err(_)) => {}
                (got, want) => {
                    let r = same(got, want, &format!("fail-fast {input:?}"));
                    proptest::prop_assert!(r.is_ok(), "{:?}", r);
                }
            }
        }
    }
}
