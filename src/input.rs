//! Input decoding: the bytes of a file or of standard input turned into the text the pipeline
//! reads, with clear errors for what is not text.
//!
//! What [`decode`] does, in order:
//!
//! 1. **Encoding.** A UTF-16 byte-order mark (`FF FE` or `FE FF`) selects UTF-16 (little or big
//!    endian), which is decoded; everything else must be UTF-8, with or without a byte-order
//!    mark (`EF BB BF`, removed). Other encodings (Latin-1, Windows-1252, UTF-16 without a mark)
//!    are not guessed by default: they fail, and the message says what to do. With
//!    [`DecodeOptions::encoding`] an input without a byte-order mark is read in a named encoding
//!    (any WHATWG label of [`encoding_rs`]: `windows-1252`, `iso-8859-15`, `utf-16le`,
//!    `shift_jis`, ...), or in the one detected from its first bytes ([`EncodingChoice::Auto`]:
//!    UTF-8 when they are valid UTF-8, else [`chardetng`]'s guess among the legacy encodings).
//!    A byte-order mark always wins, as it does in browsers.
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
use std::str::FromStr;

use crate::error::{Error, Remedy, Result};

/// The encoding crate whose encodings [`EncodingChoice::Label`] names (`encoding_rs::WINDOWS_1252`).
pub use encoding_rs;

/// How many bytes the streaming readers read at a time.
pub const READ_CHUNK: usize = 64 * 1024;

/// Bytes after the byte-order mark kept to tell UTF-16 without a mark from other binary data.
const SAMPLE_BYTES: usize = 4096;

/// How much of an input, from its first non-ASCII byte, [`EncodingChoice::Auto`] looks at
/// before it decides (less when the input ends sooner): 64 KiB.
pub const DETECT_BYTES: usize = 64 * 1024;

/// How input bytes are decoded.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DecodeOptions {
    /// Replace invalid byte sequences (of UTF-8 or of the chosen encoding) and unpaired UTF-16
    /// surrogates with U+FFFD instead of failing. Default: `false` (fail, naming the byte
    /// offset).
    pub lossy: bool,
    /// The encoding of an input without a byte-order mark. Default: `None`: UTF-8 (and UTF-16
    /// with a byte-order mark); anything else is refused, naming the first invalid byte.
    pub encoding: Option<EncodingChoice>,
}

impl DecodeOptions {
    /// Sets [`DecodeOptions::lossy`].
    #[must_use]
    pub fn with_lossy(mut self, lossy: bool) -> Self {
        self.lossy = lossy;
        self
    }

    /// Sets [`DecodeOptions::encoding`].
    #[must_use]
    pub fn with_encoding(mut self, encoding: Option<EncodingChoice>) -> Self {
        self.encoding = encoding;
        self
    }
}

/// The encoding to read an input without a byte-order mark in ([`DecodeOptions::encoding`]).
///
/// ```
/// use tolk::input::{decode, DecodeOptions};
///
/// let cp1252 = b"Caf\xe9 \x80 5,-";
/// let options = DecodeOptions::default().with_encoding(Some("windows-1252".parse()?));
/// let d = decode(cp1252, "old.txt", &options)?;
/// assert_eq!(d.text, "Café € 5,-");
/// assert_eq!(d.encoding.name(), "windows-1252");
/// // The default refuses it.
/// assert!(decode(cp1252, "old.txt", &DecodeOptions::default()).is_err());
/// # Ok::<(), tolk::Error>(())
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EncodingChoice {
    /// This encoding. WHATWG labels name them ([`EncodingChoice::from_label`]): as in browsers,
    /// `iso-8859-1`, `latin1` and `ascii` name windows-1252, which agrees with ISO-8859-1 on
    /// every printable character.
    Label(&'static encoding_rs::Encoding),
    /// The encoding detected from the input's first bytes: from its first non-ASCII byte, up to
    /// [`DETECT_BYTES`] are read (and held) before deciding. UTF-8 when they are valid UTF-8
    /// (and when the whole input is ASCII), else the best guess of [`chardetng`] (the detector
    /// of Firefox) among the legacy encodings. 7-bit encodings such as ISO-2022-JP are never
    /// guessed; name them.
    Auto,
}

impl EncodingChoice {
    /// `auto`, or a WHATWG encoding label (case and surrounding white space do not matter).
    /// Fails with [`Error::Option`] for an unknown label, and for the labels of the
    /// "replacement" encoding (`iso-2022-kr`, `hz-gb-2312`, ...), which decode nothing.
    pub fn from_label(label: &str) -> Result<Self> {
        let trimmed = label.trim();
        if trimmed.eq_ignore_ascii_case("auto") {
            return Ok(EncodingChoice::Auto);
        }
        match encoding_rs::Encoding::for_label(trimmed.as_bytes()) {
            Some(e) if e == encoding_rs::REPLACEMENT => Err(Error::option(
                "encoding",
                format!("`{trimmed}` names an encoding that cannot be decoded safely"),
            )),
            Some(e) => Ok(EncodingChoice::Label(e)),
            None => Err(Error::option(
                "encoding",
                format!(
                    "unknown encoding `{trimmed}`: expected auto or a WHATWG label such as utf-8, windows-1252, iso-8859-1, iso-8859-15, utf-16le or shift_jis"
                ),
            )),
        }
    }
}

impl FromStr for EncodingChoice {
    type Err = Error;

    fn from_str(s: &str) -> Result<Self> {
        EncodingChoice::from_label(s)
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
    /// UTF-16 little endian, with a byte-order mark or as [`DecodeOptions::encoding`] said.
    Utf16Le,
    /// UTF-16 big endian, with a byte-order mark or as [`DecodeOptions::encoding`] said.
    Utf16Be,
    /// Another encoding ([`DecodeOptions::encoding`]: named or detected), such as windows-1252.
    Legacy(#[serde(serialize_with = "encoding_name")] &'static encoding_rs::Encoding),
}

impl Encoding {
    /// The encoding's name: `UTF-8`, `UTF-16LE`, `UTF-16BE`, or the WHATWG name of another
    /// (`windows-1252`, `Shift_JIS`).
    pub fn name(&self) -> &'static str {
        match self {
            Encoding::Utf8 | Encoding::Utf8Bom => "UTF-8",
            Encoding::Utf16Le => "UTF-16LE",
            Encoding::Utf16Be => "UTF-16BE",
            Encoding::Legacy(e) => e.name(),
        }
    }
}

fn encoding_name<S: serde::Serializer>(
    encoding: &&'static encoding_rs::Encoding,
    serializer: S,
) -> std::result::Result<S::Ok, S::Error> {
    serializer.serialize_str(encoding.name())
}

/// Decoded text and what decoding changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decoded {
    /// The text: LF line endings, no control characters but TAB and LF, no byte-order mark.
    pub text: String,
    /// The encoding it was read in.
    pub encoding: Encoding,
    /// Whether the encoding was detected ([`EncodingChoice::Auto`]), not told by a byte-order
    /// mark, named or the default.
    pub detected: bool,
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
    /// Whether the encoding was detected ([`EncodingChoice::Auto`]), not told by a byte-order
    /// mark, named or the default.
    pub detected: bool,
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

impl DecodeStats {
    /// The notes for reports (the batch runner's per-file notes), each only where it applies:
    /// the encoding when it was not plain UTF-8 (`decoded from UTF-16LE`, `decoded from
    /// windows-1252 (detected)`), then `N invalid byte sequences replaced with U+FFFD` (lossy decoding).
    pub fn notes(&self) -> Vec<String> {
        let detected = if self.detected { " (detected)" } else { "" };
        let mut notes = Vec::new();
        match self.encoding {
            Encoding::Utf8 | Encoding::Utf8Bom => {}
            other => notes.push(format!("decoded from {}{detected}", other.name())),
        }
        match self.replaced {
            0 => {}
            1 => notes.push("1 invalid byte sequence replaced with U+FFFD".to_string()),
            n => notes.push(format!("{n} invalid byte sequences replaced with U+FFFD")),
        }
        notes
    }
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
        detected: stats.detected,
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
    /// A byte sequence that is not valid in the legacy `encoding`, at `at` (bytes after the
    /// byte-order mark), 1-based `line` and `column` (in bytes), with the offending `bytes`.
    Malformed {
        encoding: &'static encoding_rs::Encoding,
        at: u64,
        line: u64,
        column: u64,
        bytes: Vec<u8>,
    },
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
#[derive(Debug)]
pub struct StreamDecoder {
    name: String,
    lossy: bool,
    fail_fast: bool,
    /// [`DecodeOptions::encoding`].
    choice: Option<EncodingChoice>,
    encoding: Option<Encoding>,
    /// The decoder of a legacy encoding, once chosen.
    legacy: Option<encoding_rs::Decoder>,
    /// [`EncodingChoice::Auto`] before it has decided.
    detection: Option<Detection>,
    /// The last bytes a legacy decoder read (at most 8), to show an invalid sequence that began
    /// in an earlier piece.
    recent: Vec<u8>,
    /// Whether the encoding was detected.
    detected: bool,
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

/// [`EncodingChoice::Auto`] at work: the detector and the bytes it has not decided on.
struct Detection {
    detector: chardetng::EncodingDetector,
    /// The input from its first non-ASCII byte on.
    held: Vec<u8>,
}

impl Detection {
    fn new() -> Self {
        Detection {
            detector: chardetng::EncodingDetector::new(chardetng::Iso2022JpDetection::Deny),
            held: Vec::new(),
        }
    }
}

impl std::fmt::Debug for Detection {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Detection")
            .field("held", &self.held.len())
            .finish_non_exhaustive()
    }
}

impl StreamDecoder {
    /// A decoder that fails as soon as it meets a problem (see the type's documentation); `name`
    /// (the file path or `<stdin>`) appears in errors.
    pub fn new(name: &str, options: &DecodeOptions) -> Self {
        StreamDecoder {
            name: name.to_string(),
            lossy: options.lossy,
            fail_fast: true,
            choice: options.encoding,
            encoding: None,
            legacy: None,
            detection: None,
            recent: Vec::new(),
            detected: false,
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
            detected: self.detected,
            replaced: self.replaced,
            line_endings_changed: self.line_endings_changed,
            controls_removed: self.controls_removed,
            input_bytes: self.total,
            text_bytes: self.text_bytes,
        })
    }

    fn start(&mut self, encoding: Encoding, bom: u64, out: &mut String) {
        // Without a byte-order mark, the chosen encoding.
        let encoding = match (encoding, self.choice) {
            (Encoding::Utf8, Some(EncodingChoice::Label(e))) if e == encoding_rs::UTF_16LE => {
                Encoding::Utf16Le
            }
            (Encoding::Utf8, Some(EncodingChoice::Label(e))) if e == encoding_rs::UTF_16BE => {
                Encoding::Utf16Be
            }
            (Encoding::Utf8, Some(EncodingChoice::Label(e))) if e != encoding_rs::UTF_8 => {
                self.legacy = Some(e.new_decoder_without_bom_handling());
                Encoding::Legacy(e)
            }
            (Encoding::Utf8, Some(EncodingChoice::Auto)) => {
                self.detected = true;
                self.detection = Some(Detection::new());
                Encoding::Utf8
            }
            (encoding, _) => encoding,
        };
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
                encoding_error(
                    name,
                    format!(
                        "{what} at byte {at} (line {line}, column {column}: bytes {}); {OTHER_ENCODING}",
                        shown.join(" ")
                    ),
                )
            }
            Problem::Malformed {
                encoding,
                at,
                line,
                column,
                bytes,
            } => {
                let shown: Vec<String> = bytes.iter().map(|b| format!("{b:02x}")).collect();
                encoding_error(
                    name,
                    format!(
                        "is not valid {} at byte {at} (line {line}, column {column}: bytes {}); {OTHER_ENCODING}",
                        encoding.name(),
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
                    self.encoding.unwrap_or_default().name()
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
            if self.detection.is_some() {
                self.feed_detecting(bytes, out, last);
            } else if self.legacy.is_some() {
                self.feed_legacy(bytes, out, last);
            } else {
                self.feed_utf8(bytes, out, last);
            }
        }
    }

    /// [`EncodingChoice::Auto`] before it has decided: the ASCII before the first non-ASCII byte
    /// is decoded at once (every encoding the detector can choose reads it alike); from that byte
    /// on, the input is held until [`DETECT_BYTES`] of it, or its end, are there, then decoded in
    /// the encoding detected.
    fn feed_detecting(&mut self, bytes: &[u8], out: &mut String, last: bool) {
        let Some(detection) = self.detection.as_mut() else {
            return;
        };
        // The detector sees the ASCII start and the first DETECT_BYTES from the first
        // non-ASCII byte on, however the input is cut into pieces, so that it decides alike.
        let (prefix, rest) = if detection.held.is_empty() {
            let ascii = bytes
                .iter()
                .position(|b| !b.is_ascii())
                .unwrap_or(bytes.len());
            bytes.split_at(ascii)
        } else {
            (&[][..], bytes)
        };
        let room = DETECT_BYTES.saturating_sub(detection.held.len());
        let seen = rest.get(..room.min(rest.len())).unwrap_or_default();
        let ends = last && seen.len() == rest.len();
        detection.detector.feed(prefix, false);
        detection.detector.feed(seen, ends);
        detection.held.extend_from_slice(rest);
        if !prefix.is_empty() {
            // feed_utf8 reads `rest_seen` as the offset after its bytes.
            let seen_all = self.rest_seen;
            self.rest_seen = seen_all - rest.len() as u64;
            self.feed_utf8(prefix, out, false);
            self.rest_seen = seen_all;
        }
        let held = self.detection.as_ref().map_or(0, |d| d.held.len());
        if !(last || held >= DETECT_BYTES) {
            return;
        }
        let Some(detection) = self.detection.take() else {
            return;
        };
        let guess = if detection.held.is_empty() {
            encoding_rs::UTF_8
        } else {
            detection
                .detector
                .guess(None, chardetng::Utf8Detection::Allow)
        };
        // The held bytes are the last ones seen: their offset is `rest_seen` minus their length.
        if guess == encoding_rs::UTF_8 {
            self.feed_utf8(&detection.held, out, last);
        } else {
            self.encoding = Some(Encoding::Legacy(guess));
            self.legacy = Some(guess.new_decoder_without_bom_handling());
            self.feed_legacy(&detection.held, out, last);
        }
    }

    /// Decodes bytes of a legacy encoding (its decoder keeps an unfinished character between
    /// calls); `last` marks the end of the input.
    fn feed_legacy(&mut self, bytes: &[u8], out: &mut String, last: bool) {
        if self.invalid.is_some() && !self.lossy {
            return;
        }
        let Some(mut decoder) = self.legacy.take() else {
            return;
        };
        let encoding = decoder.encoding();
        // Offset (after the byte-order mark) of bytes[0].
        let mut pos = self.rest_seen - bytes.len() as u64;
        let mut raw = String::new();
        let mut src = bytes;
        loop {
            let need = decoder
                .max_utf8_buffer_length_without_replacement(src.len())
                .unwrap_or(src.len().saturating_mul(3).saturating_add(16));
            raw.reserve(need.max(16));
            let (result, read) = decoder.decode_to_string_without_replacement(src, &mut raw, last);
            let (done, bad) = match result {
                encoding_rs::DecoderResult::InputEmpty => (true, None),
                encoding_rs::DecoderResult::OutputFull => (false, None),
                encoding_rs::DecoderResult::Malformed(len, after) => {
                    (false, Some((usize::from(len), usize::from(after))))
                }
            };
            let consumed = src.get(..read).unwrap_or_default();
            match bad {
                None => self.count_lines(consumed, pos),
                Some((len, after)) => {
                    // The sequence ends `after` bytes before the end of what was read (it may
                    // have begun in an earlier piece).
                    let end = read.saturating_sub(after);
                    let before = consumed.get(..end).unwrap_or_default();
                    self.count_lines(before, pos);
                    let at = (pos + end as u64).saturating_sub(len as u64);
                    if self.lossy {
                        raw.push('\u{FFFD}');
                        self.replaced += 1;
                        self.count_lines(consumed.get(end..).unwrap_or_default(), pos + end as u64);
                    } else {
                        // The sequence's bytes, some perhaps from the piece before.
                        let mut recent = std::mem::take(&mut self.recent);
                        recent.extend_from_slice(before);
                        let shown = recent
                            .get(recent.len().saturating_sub(len)..)
                            .unwrap_or_default();
                        self.invalid = Some(Problem::Malformed {
                            encoding,
                            at,
                            line: self.newlines + 1,
                            column: at.saturating_sub(self.line_start) + 1,
                            bytes: shown.iter().take(4).copied().collect(),
                        });
                        self.emit(&raw, out);
                        self.legacy = Some(decoder);
                        return;
                    }
                }
            }
            self.recent.extend_from_slice(consumed);
            let keep = self.recent.len().saturating_sub(8);
            self.recent.drain(..keep);
            pos += read as u64;
            src = src.get(read..).unwrap_or_default();
            if done {
                break;
            }
        }
        self.emit(&raw, out);
        self.legacy = Some(decoder);
    }

    /// Counts the line feeds of `bytes` (at offset `pos` after the byte-order mark), for the
    /// line and column of an error.
    fn count_lines(&mut self, bytes: &[u8], pos: u64) {
        for (i, _) in bytes.iter().enumerate().filter(|&(_, &b)| b == b'\n') {
            self.newlines += 1;
            self.line_start = pos + i as u64 + 1;
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
        remedy: Some(Remedy::Lossy),
    }
}

/// What an input with bytes that are invalid in the encoding it is read in can do.
const OTHER_ENCODING: &str = "if it is in another encoding (Windows-1252, Latin-1, ...), name it or have it detected, or decode it lossily (invalid bytes become U+FFFD)";

/// A decoding error that the right encoding ([`DecodeOptions::encoding`]) or lossy decoding
/// would get past.
fn encoding_error(name: &str, message: impl Into<String>) -> Error {
    Error::Input {
        source_name: name.to_string(),
        message: message.into(),
        remedy: Some(Remedy::Encoding),
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
        "; it looks like UTF-16 without a byte-order mark: name its encoding (UTF-16LE or UTF-16BE), convert it to UTF-8 or add a byte-order mark"
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
    use super::{
        binary, encoding_error, input_error, lossy_error, DecodeOptions, Decoded, Encoding,
        OTHER_ENCODING,
    };
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
            detected: false,
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
                Err(encoding_error(
                    name,
                    format!(
                        "{what} at byte {at} (line {line}, column {column}: bytes {}); {OTHER_ENCODING}",
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
    pub fn normalize(raw: &str) -> (String, usize, usize) {
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
                        detected: d.detected,
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

    // --- other encodings ---

    /// Dutch text with every character that UTF-8 and Windows-1252 write differently.
    const CP1252_TEXT: &str = "Één café, een reünie en naïeve ‘ideeën’ over €5 – “zo’n” Überraschung.\r\nTweede regel: ë ï ü é.";
    /// The same for ISO-8859-1, which has no euro sign and no curly quotes.
    const LATIN1_TEXT: &str =
        "Één café, een reünie, naïef en Curaçao: «ja», ü ë ï.\r\nTweede regel.";

    fn encoded(text: &str, encoding: &'static encoding_rs::Encoding) -> Vec<u8> {
        let (bytes, _, unmappable) = encoding.encode(text);
        assert!(!unmappable, "{text} in {}", encoding.name());
        bytes.into_owned()
    }

    fn with(label: &str) -> DecodeOptions {
        DecodeOptions::default().with_encoding(Some(label.parse().unwrap()))
    }

    #[test]
    fn labels() {
        let label = |l: &str| EncodingChoice::from_label(l).unwrap();
        assert_eq!(
            label(" Windows-1252 "),
            EncodingChoice::Label(encoding_rs::WINDOWS_1252)
        );
        assert_eq!(
            label("latin1"),
            EncodingChoice::Label(encoding_rs::WINDOWS_1252)
        );
        assert_eq!(
            label("iso-8859-1"),
            EncodingChoice::Label(encoding_rs::WINDOWS_1252)
        );
        assert_eq!(
            label("ISO-8859-15"),
            EncodingChoice::Label(encoding_rs::ISO_8859_15)
        );
        assert_eq!(
            label("utf-16le"),
            EncodingChoice::Label(encoding_rs::UTF_16LE)
        );
        assert_eq!(label("AUTO"), EncodingChoice::Auto);
        for bad in ["", "latin-9x", "iso-2022-kr", "replacement"] {
            assert!(
                matches!(EncodingChoice::from_label(bad), Err(Error::Option { .. })),
                "{bad}"
            );
        }
    }

    #[test]
    fn windows_1252_and_iso_8859_1_are_decoded_when_named() {
        let want = |t: &str| t.replace("\r\n", "\n");
        for (text, label) in [
            (CP1252_TEXT, "windows-1252"),
            (CP1252_TEXT, "cp1252"),
            (LATIN1_TEXT, "iso-8859-1"),
            (LATIN1_TEXT, "latin1"),
        ] {
            let bytes = encoded(text, encoding_rs::WINDOWS_1252);
            let d = decode(&bytes, "f.txt", &with(label)).unwrap();
            assert_eq!(d.text, want(text), "{label}");
            assert_eq!(d.encoding, Encoding::Legacy(encoding_rs::WINDOWS_1252));
            assert_eq!(d.encoding.name(), "windows-1252");
            assert!(!d.detected);
            assert_eq!(d.line_endings_changed, 1);
            // In pieces of any size, the same text and figures.
            for size in [1, 2, 3, 7, 64] {
                for fail_fast in [false, true] {
                    let (text, stats) = chunked(&bytes, size, &with(label), fail_fast).unwrap();
                    assert_eq!(text, d.text, "{label} {size}");
                    assert_eq!(stats.encoding, d.encoding);
                    assert_eq!(stats.text_bytes, text.len() as u64);
                    assert_eq!(stats.line_endings_changed, 1);
                }
            }
            // The default still refuses it, and says what gets past it.
            let e = decode(&bytes, "f.txt", &DecodeOptions::default()).unwrap_err();
            assert_eq!(e.remedy(), Some(Remedy::Encoding));
            let msg = e.to_string();
            assert!(msg.contains("is not valid UTF-8 at byte 0"), "{msg}");
            assert!(msg.contains("name it or have it detected"), "{msg}");
        }
        // ISO-8859-15 is another encoding: its 0xA4 is the euro sign.
        let d = decode(b"\xa4 5", "f", &with("iso-8859-15")).unwrap();
        assert_eq!(d.text, "€ 5");
        assert_eq!(d.encoding.name(), "ISO-8859-15");
        let d = decode(b"\xa4 5", "f", &with("iso-8859-1")).unwrap();
        assert_eq!(d.text, "¤ 5");
    }

    #[test]
    fn auto_detects_windows_1252_and_keeps_utf8() {
        let bytes = encoded(CP1252_TEXT, encoding_rs::WINDOWS_1252);
        let auto = DecodeOptions::default().with_encoding(Some(EncodingChoice::Auto));
        let d = decode(&bytes, "f.txt", &auto).unwrap();
        assert_eq!(d.text, CP1252_TEXT.replace("\r\n", "\n"));
        assert_eq!(d.encoding, Encoding::Legacy(encoding_rs::WINDOWS_1252));
        assert!(d.detected);
        // Valid UTF-8, and plain ASCII, are UTF-8.
        let d = decode(CP1252_TEXT.as_bytes(), "f.txt", &auto).unwrap();
        assert_eq!((d.encoding, d.detected), (Encoding::Utf8, true));
        let d = decode(b"Gewoon tekst.", "f.txt", &auto).unwrap();
        assert_eq!((d.encoding, d.detected), (Encoding::Utf8, true));
        // A byte-order mark wins over any choice.
        let mut marked = b"\xEF\xBB\xBF".to_vec();
        marked.extend_from_slice("Één café.".as_bytes());
        for options in [auto, with("windows-1252")] {
            let d = decode(&marked, "f.txt", &options).unwrap();
            assert_eq!(
                (d.text.as_str(), d.encoding),
                ("Één café.", Encoding::Utf8Bom)
            );
            assert!(!d.detected);
        }
        // A long ASCII start: the decision waits for the first non-ASCII byte, then holds at
        // most DETECT_BYTES; in pieces, the same.
        let mut long = "Een zin zonder bijzondere tekens.\n"
            .repeat(3000)
            .into_bytes();
        long.extend_from_slice(&bytes);
        long.extend_from_slice(&"En nog meer gewone tekst.\n".repeat(4000).into_bytes());
        long.extend_from_slice(&bytes);
        let whole = decode(&long, "f.txt", &auto).unwrap();
        assert_eq!(whole.encoding, Encoding::Legacy(encoding_rs::WINDOWS_1252));
        assert!(whole.text.ends_with("Tweede regel: ë ï ü é."));
        for fail_fast in [false, true] {
            let (text, stats) = chunked(&long, READ_CHUNK, &auto, fail_fast).unwrap();
            assert_eq!(text, whole.text);
            assert!(stats.detected);
            assert_eq!(stats.notes(), ["decoded from windows-1252 (detected)"]);
            let lossy = DecodeStats {
                replaced: 2,
                ..stats
            };
            assert_eq!(
                lossy.notes(),
                [
                    "decoded from windows-1252 (detected)",
                    "2 invalid byte sequences replaced with U+FFFD"
                ]
            );
            let one = DecodeStats {
                encoding: Encoding::Utf8,
                detected: false,
                replaced: 1,
                ..stats
            };
            assert_eq!(
                one.notes(),
                ["1 invalid byte sequence replaced with U+FFFD"]
            );
            assert!(DecodeStats::default().notes().is_empty());
        }
        // UTF-8 in the first 64 KiB, Windows-1252 after: UTF-8 was detected, so the late byte
        // is an error at its offset.
        let mut mixed = "Één café.\n".repeat(8000).into_bytes();
        let at = mixed.len() + 3;
        mixed.extend_from_slice(b"Caf\xe9.");
        let e = decode(&mixed, "f.txt", &auto).unwrap_err().to_string();
        assert!(
            e.contains(&format!("is not valid UTF-8 at byte {at}")),
            "{e}"
        );
    }

    #[test]
    fn utf16_and_multibyte_legacy_encodings_when_named() {
        let mut no_bom = utf16("Één 🚲.\r\n", false);
        no_bom.drain(..2);
        let d = decode(&no_bom, "f", &with("utf-16le")).unwrap();
        assert_eq!(
            (d.text.as_str(), d.encoding),
            ("Één 🚲.\n", Encoding::Utf16Le)
        );
        let mut be = utf16("Één.", true);
        be.drain(..2);
        assert_eq!(decode(&be, "f", &with("utf-16be")).unwrap().text, "Één.");
        // Shift_JIS: a character split between pieces, and an invalid sequence named by its
        // offset, line and column.
        let sjis = encoded("今日は。\n明日も。", encoding_rs::SHIFT_JIS);
        for size in [1, 2, 3] {
            let (text, _) = chunked(&sjis, size, &with("shift_jis"), true).unwrap();
            assert_eq!(text, "今日は。\n明日も。");
        }
        let mut bad = sjis.clone();
        bad.extend_from_slice(b"\nab\x81\x20cd");
        let e = decode(&bad, "f.txt", &with("shift_jis")).unwrap_err();
        assert_eq!(e.remedy(), Some(Remedy::Encoding));
        let msg = e.to_string();
        let at = sjis.len() + 3;
        assert!(
            msg.starts_with(&format!(
                "f.txt: is not valid Shift_JIS at byte {at} (line 3, column 3: bytes 81"
            )),
            "{msg}"
        );
        for size in [1, 2, 5] {
            let got = chunked(&bad, size, &with("shift_jis"), true).unwrap_err();
            assert_eq!(got.to_string(), msg, "{size}");
        }
        let lossy = with("shift_jis").with_lossy(true);
        let d = decode(&bad, "f.txt", &lossy).unwrap();
        assert_eq!(d.replaced, 1);
        assert!(d.text.ends_with("ab\u{FFFD} cd"), "{:?}", d.text);
        // A NUL byte is still binary.
        assert!(decode(b"a\x00b", "f", &with("windows-1252")).is_err());
    }

    /// Decodes with encoding_rs itself and normalises as the decoder does: the reference for
    /// legacy encodings.
    fn reference(bytes: &[u8], encoding: &'static encoding_rs::Encoding) -> String {
        let (raw, _) = encoding.decode_without_bom_handling(bytes);
        oracle::normalize(&raw).0
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(300))]

        /// Named and detected encodings: the same text, figures and errors in any pieces as
        /// whole, and with lossy decoding the text encoding_rs gives.
        #[test]
        fn other_encodings_decode_alike_in_any_pieces(
            bytes in proptest::collection::vec(proptest::sample::select(vec![
                0x00u8, b'\r', b'\n', b'a', b' ', 0x0B, 0x81, 0x82, 0x85, 0x8D, 0x93, 0x9F,
                0xA4, 0xC3, 0xA9, 0xE0, 0xE9, 0xEF, 0xFD, 0xFE, 0xFF, 0x40, 0x7E,
            ]), 0..40),
            choice in proptest::sample::select(vec![
                "windows-1252", "shift_jis", "gbk", "utf-16le", "utf-16be", "iso-8859-7", "auto",
            ]),
            size in 1usize..9,
            lossy in proptest::bool::ANY,
        ) {
            let options = with(choice).with_lossy(lossy);
            let whole = decode_with_stats(&bytes, "f.txt", &options);
            let got = chunked(&bytes, size, &options, false);
            match (&whole, &got) {
                (Ok(a), Ok(b)) => proptest::prop_assert_eq!(a, b),
                (Err(a), Err(b)) => proptest::prop_assert_eq!(a.to_string(), b.to_string()),
                _ => proptest::prop_assert!(false, "{:?} vs {:?}", whole, got),
            }
            let fast = chunked(&bytes, size, &options, true);
            match (&whole, &fast) {
                (Ok(a), Ok(b)) => proptest::prop_assert_eq!(a, b),
                (Err(_), Err(_)) => {}
                _ => proptest::prop_assert!(false, "fail-fast {:?} vs {:?}", whole, fast),
            }
            if let (Ok((text, stats)), true) = (&whole, lossy) {
                if let Encoding::Legacy(e) = stats.encoding {
                    proptest::prop_assert_eq!(text, &reference(&bytes, e));
                }
            }
        }
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
