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

use std::io::Read;
use std::path::Path;

use crate::error::{Error, Result};

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
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Encoding {
    /// UTF-8 without a byte-order mark.
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
            return Err(binary(name, at + (bytes.len() - rest.len()), rest));
        }
        let (text, replaced) = decode_utf8(rest, name, options)?;
        (text, encoding, replaced)
    };
    if let Some(at) = raw.find('\0') {
        return Err(input_error(
            name,
            format!("contains a NUL character (at character offset {at}): binary data, not text"),
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

fn input_error(name: &str, message: impl Into<String>) -> Error {
    Error::Input {
        source_name: name.to_string(),
        message: message.into(),
    }
}

/// The error for a NUL byte at `at`; says so when the bytes look like UTF-16 without a mark.
fn binary(name: &str, at: usize, bytes: &[u8]) -> Error {
    let sample = &bytes[..bytes.len().min(4096)];
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
            Err(input_error(
                name,
                format!(
                    "{what} at byte {at} (line {line}, column {column}: bytes {}); convert it to UTF-8 (for Latin-1 or Windows-1252: iconv -f CP1252 -t UTF-8) or pass --lossy to replace invalid bytes",
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
    for (n, unit) in char::decode_utf16(units).enumerate() {
        match unit {
            Ok(c) => text.push(c),
            Err(e) if !options.lossy => {
                return Err(input_error(
                    name,
                    format!(
                        "is not valid UTF-16: unpaired surrogate {:04x} at byte {} (pass --lossy to replace it)",
                        e.unpaired_surrogate(),
                        2 + 2 * n
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
        assert!(e.contains("--lossy"));
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
}
