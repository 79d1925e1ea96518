//! SentencePiece's text normaliser: the precompiled character map (a darts-clone double-array
//! trie plus a blob of replacement strings, e.g. `nmt_nfkc`), longest-prefix rewriting, and the
//! whitespace rules (drop extra whitespace, dummy `▁` prefix or suffix, space → `▁`).
//!
//! Mirrors `normalizer.cc` of sentencepiece 0.2 (`Normalizer::Normalize`, `NormalizePrefix`,
//! `DecodePrecompiledCharsMap`) without the byte alignment, which tolk does not need.

use super::trie::Trie;
use crate::proto::NormalizerSpec;

/// `▁` (U+2581), SentencePiece's visible space.
pub(crate) const SPACE_SYMBOL: &[u8] = "\u{2581}".as_bytes();
/// U+FFFD, which replaces each byte of malformed UTF-8.
const REPLACEMENT: &[u8] = "\u{FFFD}".as_bytes();

/// Decodes the UTF-8 character at the start of `s` the way SentencePiece's `DecodeUTF8` does:
/// returns its length, or `None` for a malformed sequence (overlong forms, surrogates, code
/// points past U+10FFFF, truncated sequences), of which one byte is then consumed.
pub(crate) fn utf8_char_len(s: &[u8]) -> Option<usize> {
    let b0 = *s.first()?;
    let trail = |i: usize| s.get(i).is_some_and(|&b| b & 0xC0 == 0x80);
    let bits = |i: usize| u32::from(s.get(i).copied().unwrap_or(0) & 0x3F);
    let valid = |c: u32| c < 0xD800 || (0xE000..=0x10FFFF).contains(&c);
    if b0 < 0x80 {
        Some(1)
    } else if b0 & 0xE0 == 0xC0 {
        let c = (u32::from(b0 & 0x1F) << 6) | bits(1);
        (trail(1) && c >= 0x80 && valid(c)).then_some(2)
    } else if b0 & 0xF0 == 0xE0 {
        let c = (u32::from(b0 & 0x0F) << 12) | (bits(1) << 6) | bits(2);
        (trail(1) && trail(2) && c >= 0x800 && valid(c)).then_some(3)
    } else if b0 & 0xF8 == 0xF0 {
        let c = (u32::from(b0 & 0x07) << 18) | (bits(1) << 12) | (bits(2) << 6) | bits(3);
        (trail(1) && trail(2) && trail(3) && c >= 0x10000 && valid(c)).then_some(4)
    } else {
        None
    }
}

/// SentencePiece's `OneCharLen`: the length a lead byte announces (1 for stray continuation
/// bytes), not checked against the following bytes.
#[inline]
pub(crate) fn one_char_len(b: u8) -> usize {
    match b >> 4 {
        0xC | 0xD => 2,
        0xE => 3,
        0xF => 4,
        _ => 1,
    }
}

/// A decoded `precompiled_charsmap`: darts-clone double-array units and the replacement blob.
#[derive(Debug, Clone)]
pub(crate) struct CharsMap {
    units: Vec<u32>,
    normalized: Vec<u8>,
}

impl CharsMap {
    /// Splits the blob `<u32 LE trie size><trie units><NUL-separated replacement strings>`.
    pub(crate) fn parse(blob: &[u8]) -> Result<Self, String> {
        let (head, rest) = match blob.split_first_chunk::<4>() {
            Some((head, rest)) if !rest.is_empty() => (head, rest),
            _ => return Err("precompiled_charsmap is broken (shorter than its header)".into()),
        };
        let trie_size = u32::from_le_bytes(*head) as usize;
        if trie_size > rest.len() {
            return Err(format!(
                "precompiled_charsmap is broken: its trie has {trie_size} bytes but only {} follow",
                rest.len()
            ));
        }
        let (trie, normalized) = rest.split_at(trie_size);
        let units: Vec<u32> = trie
            .chunks_exact(4)
            .map(|c| u32::from_le_bytes([c[0], c[1], c[2], c[3]]))
            .collect();
        if units.is_empty() {
            return Err("precompiled_charsmap is broken: its trie is empty".into());
        }
        Ok(CharsMap {
            units,
            normalized: normalized.to_vec(),
        })
    }

    /// The longest rule whose source is a prefix of `input`: `(source length, replacement)`.
    ///
    /// Out-of-range positions in a corrupt trie end the search; a replacement offset past the
    /// blob drops that rule (SentencePiece would read memory it does not own there).
    fn longest_match(&self, input: &[u8]) -> Option<(usize, &[u8])> {
        let units = &self.units;
        let offset = |u: u32| ((u >> 10) << ((u & (1 << 9)) >> 6)) as usize;
        let has_leaf = |u: u32| (u >> 8) & 1 == 1;
        let label = |u: u32| u & ((1 << 31) | 0xFF);

        let mut best: Option<(usize, usize)> = None;
        let mut pos = offset(*units.first()?);
        for (i, &b) in input.iter().enumerate() {
            pos ^= usize::from(b);
            let Some(&unit) = units.get(pos) else { break };
            if label(unit) != u32::from(b) {
                break;
            }
            pos ^= offset(unit);
            if has_leaf(unit) {
                let Some(&leaf) = units.get(pos) else { break };
                best = Some((i + 1, (leaf & 0x7FFF_FFFF) as usize));
            }
        }
        let (len, value) = best?;
        let tail = self.normalized.get(value..)?;
        let end = tail.iter().position(|&c| c == 0).unwrap_or(tail.len());
        Some((len, &tail[..end]))
    }
}

/// Everything `Normalizer::Normalize` reads: the spec's switches, the map and the
/// user-defined symbols that are protected from normalisation.
#[derive(Debug, Clone)]
pub(crate) struct Normalizer {
    charsmap: Option<CharsMap>,
    add_dummy_prefix: bool,
    remove_extra_whitespaces: bool,
    escape_whitespaces: bool,
    treat_whitespace_as_suffix: bool,
    /// User-defined symbols: matched before the map and copied through unchanged.
    protected: Option<Trie>,
}

impl Normalizer {
    /// Builds the normaliser of `spec`. `protected` holds the model's user-defined symbols.
    pub(crate) fn new(
        spec: &NormalizerSpec,
        treat_whitespace_as_suffix: bool,
        protected: Option<Trie>,
    ) -> Result<Self, String> {
        let charsmap = if spec.precompiled_charsmap.is_empty() {
            None
        } else {
            Some(CharsMap::parse(&spec.precompiled_charsmap)?)
        };
        Ok(Normalizer {
            charsmap,
            add_dummy_prefix: spec.add_dummy_prefix,
            remove_extra_whitespaces: spec.remove_extra_whitespaces,
            escape_whitespaces: spec.escape_whitespaces,
            treat_whitespace_as_suffix,
            protected: protected.filter(|t| !t.is_empty()),
        })
    }

    /// Normalises the first character (or rule source) of `input`: `(replacement, consumed)`.
    fn normalize_prefix<'a>(&'a self, input: &'a [u8]) -> (&'a [u8], usize) {
        if let Some(len) = self
            .protected
            .as_ref()
            .and_then(|t| t.longest_prefix(input))
        {
            return (&input[..len], len);
        }
        if let Some((len, out)) = self.charsmap.as_ref().and_then(|m| m.longest_match(input)) {
            return (out, len);
        }
        match utf8_char_len(input) {
            Some(len) => (&input[..len], len),
            None => (REPLACEMENT, 1),
        }
    }

    /// Normalises `input` into SentencePiece's internal form (e.g. `"▁Hallo▁wereld"`).
    pub(crate) fn normalize(&self, input: &[u8]) -> Vec<u8> {
        let mut input = input;
        let mut out = Vec::new();
        if input.is_empty() {
            return out;
        }
        if self.remove_extra_whitespaces {
            while !input.is_empty() {
                let (piece, consumed) = self.normalize_prefix(input);
                if piece != b" " {
                    break;
                }
                input = &input[consumed..];
            }
        }
        if input.is_empty() {
            return out;
        }
        out.reserve(input.len() + input.len() / 2 + 3);
        let space: &[u8] = if self.escape_whitespaces {
            SPACE_SYMBOL
        } else {
            b" "
        };
        if !self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            out.extend_from_slice(space);
        }
        let mut is_prev_space = self.remove_extra_whitespaces;
        while !input.is_empty() {
            let (mut piece, consumed) = self.normalize_prefix(input);
            if is_prev_space {
                while let Some(rest) = piece.strip_prefix(b" ") {
                    piece = rest;
                }
            }
            if !piece.is_empty() {
                if self.escape_whitespaces {
                    for &b in piece {
                        if b == b' ' {
                            out.extend_from_slice(SPACE_SYMBOL);
                        } else {
                            out.push(b);
                        }
                    }
                } else {
                    out.extend_from_slice(piece);
                }
                is_prev_space = piece.ends_with(b" ");
            }
            input = &input[consumed..];
            if !self.remove_extra_whitespaces {
                is_prev_space = false;
            }
        }
        if self.remove_extra_whitespaces {
            while out.ends_with(space) {
                out.truncate(out.len() - space.len());
            }
        }
        if self.treat_whitespace_as_suffix && self.add_dummy_prefix {
            out.extend_from_slice(space);
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utf8_lengths_follow_sentencepiece() {
        assert_eq!(utf8_char_len(b"a"), Some(1));
        assert_eq!(utf8_char_len("é".as_bytes()), Some(2));
        assert_eq!(utf8_char_len("€".as_bytes()), Some(3));
        assert_eq!(utf8_char_len("😀".as_bytes()), Some(4));
        assert_eq!(utf8_char_len(&[0xC0, 0x80]), None, "overlong");
        assert_eq!(utf8_char_len(&[0xED, 0xA0, 0x80]), None, "surrogate");
        assert_eq!(
            utf8_char_len(&[0xF4, 0x90, 0x80, 0x80]),
            None,
            "past U+10FFFF"
        );
        assert_eq!(utf8_char_len(&[0xE2, 0x82]), None, "truncated");
        assert_eq!(utf8_char_len(&[0x80]), None, "stray continuation byte");
        assert_eq!(one_char_len(0x80), 1);
        assert_eq!(one_char_len(0xF0), 4);
    }

    fn spec(dummy: bool, remove: bool, escape: bool) -> NormalizerSpec {
        NormalizerSpec {
            add_dummy_prefix: dummy,
            remove_extra_whitespaces: remove,
            escape_whitespaces: escape,
            ..NormalizerSpec::default()
        }
    }

    fn norm(n: &Normalizer, s: &[u8]) -> String {
        String::from_utf8(n.normalize(s)).unwrap()
    }

    #[test]
    fn whitespace_rules_without_a_map() {
        let n = Normalizer::new(&spec(true, true, true), false, None).unwrap();
        assert_eq!(norm(&n, b"  Hallo   wereld  "), "▁Hallo▁wereld");
        assert_eq!(norm(&n, b"   "), "");
        assert_eq!(norm(&n, b""), "");
        assert_eq!(norm(&n, &[b'a', 0xFF, b'b']), "▁a\u{FFFD}b");
        let n = Normalizer::new(&spec(false, false, true), false, None).unwrap();
        assert_eq!(norm(&n, b" a  b "), "▁a▁▁b▁");
        let n = Normalizer::new(&spec(true, false, false), false, None).unwrap();
        assert_eq!(norm(&n, b" a"), "  a");
        let n = Normalizer::new(&spec(true, true, true), true, None).unwrap();
        assert_eq!(norm(&n, b"a b "), "a▁b▁");
    }

    #[test]
    fn protected_symbols_skip_the_map() {
        let t = Trie::new(vec![(&b"  "[..], 0)]);
        let n = Normalizer::new(&spec(true, true, true), false, Some(t)).unwrap();
        // A protected double space is not a single " ", so it survives the whitespace rules.
        assert_eq!(norm(&n, b"a  b"), "▁a▁▁b");
    }

    #[test]
    fn broken_charsmaps_are_refused_and_never_panic() {
        assert!(CharsMap::parse(&[]).is_err());
        assert!(CharsMap::parse(&[1, 0, 0, 0]).is_err());
        assert!(CharsMap::parse(&[9, 0, 0, 0, 1, 2]).is_err());
        assert!(CharsMap::parse(&[0, 0, 0, 0, 1]).is_err());
        // A nonsense trie: lookups stop at out-of-range positions instead of panicking.
        let mut blob = 8u32.to_le_bytes().to_vec();
        blob.extend_from_slice(&u32::MAX.to_le_bytes());
        blob.extend_from_slice(&0x0000_0161u32.to_le_bytes());
        blob.extend_from_slice(b"x\0");
        let m = CharsMap::parse(&blob).unwrap();
        for s in [&b"abc"[..], b"\x00\x01", b"\xff\xfe", b"a"] {
            let _ = m.longest_match(s);
        }
    }
}
