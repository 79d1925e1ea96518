//! Alignments between a text and its translation, for any script.
//!
//! The decoder's cross-attention says, for every generated token, which source tokens it read.
//! Tokens are SentencePiece pieces, so an alignment is first one between pieces; markup needs it
//! between *units*: the smallest stretches of text that inline markup can sensibly cover. A
//! unit is a word where the script writes spaces between words (Latin, Cyrillic, Greek,
//! Arabic, Hangul, ...) and a single piece where it does not (Han, kana, Thai, Lao, Khmer,
//! Myanmar, Tibetan): a Chinese sentence has no spaces, so "a word" would be the whole sentence.
//!
//! Pieces are matched to the bytes of the text they came from by [`locate`], which walks the
//! text and the pieces together and tolerates what normalisation changed (Moses punctuation
//! rules turn `。` into `.`, NFKC folds full-width forms, white space is collapsed).

use std::ops::Range;

use serde::ser::SerializeSeq;
use serde::{Serialize, Serializer};

/// How a translation lines up with its source.
///
/// Both texts are cut into units (byte ranges, in order, not overlapping, none empty); for
/// every target unit, `links` names the source unit it translates, or `None`.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize)]
pub struct Alignment {
    /// The source text's units: byte ranges of the source.
    #[serde(serialize_with = "ranges")]
    pub source: Vec<Range<usize>>,
    /// The translation's units: byte ranges of the translation.
    #[serde(serialize_with = "ranges")]
    pub target: Vec<Range<usize>>,
    /// For each target unit, the index of its source unit (`None`: aligned with none).
    pub links: Vec<Option<usize>>,
    /// For each source unit, the target unit that attended to it most (the other direction of
    /// the attention); empty when not known (an alignment not made from attention).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub anchors: Vec<Option<usize>>,
}

fn ranges<S: Serializer>(r: &[Range<usize>], s: S) -> std::result::Result<S::Ok, S::Error> {
    let mut seq = s.serialize_seq(Some(r.len()))?;
    for r in r {
        seq.serialize_element(&[r.start, r.end])?;
    }
    seq.end()
}

impl Alignment {
    /// Whether it is consistent with `source` and `target`: every range inside its text on
    /// character boundaries, in order and not empty, one link per target unit, every link to a
    /// source unit.
    pub fn fits(&self, source: &str, target: &str) -> bool {
        let ok = |units: &[Range<usize>], text: &str| {
            let mut end = 0;
            units.iter().all(|r| {
                let fine = r.start >= end
                    && r.start < r.end
                    && r.end <= text.len()
                    && text.is_char_boundary(r.start)
                    && text.is_char_boundary(r.end);
                end = r.end;
                fine
            })
        };
        ok(&self.source, source)
            && ok(&self.target, target)
            && self.links.len() == self.target.len()
            && self.links.iter().flatten().all(|&s| s < self.source.len())
    }

    /// Units of both texts ([`units`]) with every target unit linked to the source unit at the
    /// same relative place: what markup uses when a translator gives no alignment.
    pub fn proportional(source: &str, target: &str) -> Alignment {
        let source = units(source);
        let target = units(target);
        let (n, m) = (source.len(), target.len());
        let links = (0..m).map(|i| (n > 0).then(|| i * n / m)).collect();
        Alignment {
            source,
            target,
            links,
            anchors: Vec::new(),
        }
    }

    /// Every unit of `text` linked to itself: the alignment of a text kept as it is.
    pub fn identity(text: &str) -> Alignment {
        let u = units(text);
        Alignment {
            links: (0..u.len()).map(Some).collect(),
            anchors: (0..u.len()).map(Some).collect(),
            source: u.clone(),
            target: u,
        }
    }

    /// The alignment of `source` and `target` from attention between their pieces:
    /// `attention[t][s]` is how much target piece `t` attended to source piece `s` (rows and
    /// columns beyond the pieces, like `</s>`, are ignored). `source_pieces` and
    /// `target_pieces` are the pieces as SentencePiece writes them (`▁` for a space; `None`
    /// for a special token that is not in the text). A target unit is linked to the source
    /// unit that its pieces attended to most, summed over the unit's pieces.
    ///
    /// `None` when the source pieces cannot be found in `source` (nothing matched).
    pub fn from_attention(
        source: &str,
        source_pieces: &[&str],
        target: &str,
        target_pieces: &[Option<&str>],
        attention: &[Vec<f32>],
    ) -> Option<Alignment> {
        let s_ranges = locate(source, source_pieces.iter().copied());
        if !source_pieces.is_empty() && s_ranges.iter().all(|r| r.is_empty()) {
            return None;
        }
        let (s_units, s_of_piece) = group(source, source_pieces, &s_ranges);
        let present: Vec<&str> = target_pieces.iter().flatten().copied().collect();
        let t_ranges = locate(target, present.iter().copied());
        let (t_units, t_of_present) = group(target, &present, &t_ranges);
        let mut sums = vec![vec![0f32; s_units.len()]; t_units.len()];
        let mut k = 0;
        for (row, piece) in attention.iter().zip(target_pieces) {
            if piece.is_none() {
                continue;
            }
            let t = t_of_present[k];
            k += 1;
            let Some(sums) = sums.get_mut(t) else {
                continue;
            };
            for (p, &s) in row.iter().zip(&s_of_piece) {
                if let Some(v) = sums.get_mut(s) {
                    *v += p;
                }
            }
        }
        let links = sums
            .iter()
            .map(|row| {
                row.iter()
                    .enumerate()
                    .filter(|(_, &v)| v > 0.0)
                    .max_by(|a, b| a.1.total_cmp(b.1))
                    .map(|(i, _)| i)
            })
            .collect();
        let anchors = (0..s_units.len())
            .map(|s| {
                sums.iter()
                    .enumerate()
                    .filter(|(_, row)| row[s] > 0.0)
                    .max_by(|a, b| a.1[s].total_cmp(&b.1[s]))
                    .map(|(t, _)| t)
            })
            .collect();
        Some(Alignment {
            source: s_units,
            target: t_units,
            links,
            anchors,
        })
    }

    /// The same alignment for source and target with the same prefix put in front of both (a
    /// list marker and a space): every range moved by `shift` bytes, and the prefix's first
    /// `unit` bytes (the marker) one more unit in each, linked to each other.
    pub fn prefixed(&self, unit: usize, shift: usize) -> Alignment {
        let moved = |r: &Range<usize>| r.start + shift..r.end + shift;
        let has = unit > 0;
        let mut source: Vec<Range<usize>> = has.then_some(0..unit).into_iter().collect();
        let mut target = source.clone();
        let mut links: Vec<Option<usize>> = has.then_some(Some(0)).into_iter().collect();
        source.extend(self.source.iter().map(moved));
        target.extend(self.target.iter().map(moved));
        let bump = usize::from(has);
        links.extend(self.links.iter().map(|l| l.map(|s| s + bump)));
        let anchors = if self.anchors.is_empty() {
            Vec::new()
        } else {
            let mut a = links.iter().take(bump).copied().collect::<Vec<_>>();
            a.extend(self.anchors.iter().map(|t| t.map(|t| t + bump)));
            a
        };
        Alignment {
            source,
            target,
            links,
            anchors,
        }
    }
}

/// Whether `c` belongs to a script written without spaces between words.
pub fn unspaced(c: char) -> bool {
    matches!(c as u32,
        0x0E00..=0x0EFF      // Thai, Lao
        | 0x0F00..=0x0FFF    // Tibetan
        | 0x1000..=0x109F    // Myanmar
        | 0x1780..=0x17FF    // Khmer
        | 0x19E0..=0x19FF    // Khmer symbols
        | 0x2E80..=0x2FDF    // CJK radicals, Kangxi
        | 0x3000..=0x303F    // CJK symbols and punctuation
        | 0x3040..=0x30FF    // Hiragana, Katakana
        | 0x3100..=0x312F    // Bopomofo
        | 0x31A0..=0x31FF    // Bopomofo extended, CJK strokes, Katakana extensions
        | 0x3400..=0x4DBF    // CJK extension A
        | 0x4E00..=0x9FFF    // CJK unified ideographs
        | 0xF900..=0xFAFF    // CJK compatibility ideographs
        | 0xFF00..=0xFFEF    // full-width and half-width forms
        | 0x20000..=0x3FFFF  // CJK extensions B-H
    )
}

/// The units of a text on its own, with no tokenizer: white-space separated words, and every
/// character of a script written without spaces on its own.
pub fn units(text: &str) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start: Option<usize> = None;
    for (i, c) in text.char_indices() {
        if c.is_whitespace() {
            if let Some(s) = start.take() {
                out.push(s..i);
            }
        } else if unspaced(c) {
            if let Some(s) = start.take() {
                out.push(s..i);
            }
            out.push(i..i + c.len_utf8());
        } else if start.is_none() {
            start = Some(i);
        }
    }
    if let Some(s) = start {
        out.push(s..text.len());
    }
    out
}

/// Lower-case form for matching a piece's character with the text's.
fn fold(c: char) -> char {
    // Full-width ASCII forms, as NFKC writes them.
    let c = match c as u32 {
        0xFF01..=0xFF5E => char::from_u32(c as u32 - 0xFEE0).unwrap_or(c),
        _ => c,
    };
    c.to_lowercase().next().unwrap_or(c)
}

/// How far ahead in the text a piece's character is looked for.
const LOOKAHEAD: usize = 8;

/// Where each piece is in `text`: the byte range from its first to its last matched character
/// (empty, at the place reached, for a piece none of whose characters was found: a byte
/// fallback piece, a special token). Pieces are SentencePiece's (`▁` a space; white space is
/// not matched). A piece's character matches the text's next character when they are equal up
/// to case and full-width forms; failing that, when both are punctuation (normalisation
/// rewrote it); failing that, the same character a few characters ahead (normalisation removed
/// some); else it matches nothing (normalisation added it).
pub fn locate<'p>(text: &str, pieces: impl IntoIterator<Item = &'p str>) -> Vec<Range<usize>> {
    let chars: Vec<(usize, char)> = text.char_indices().collect();
    let end_of = |k: usize| chars.get(k).map_or(text.len(), |&(i, _)| i);
    let mut p = 0;
    let mut out = Vec::new();
    for piece in pieces {
        let mut range: Option<Range<usize>> = None;
        let byte_piece = piece.len() == 6 && piece.starts_with("<0x") && piece.ends_with('>');
        if !byte_piece {
            for c in piece.chars() {
                if c == '\u{2581}' || c.is_whitespace() {
                    continue;
                }
                while chars.get(p).is_some_and(|&(_, t)| t.is_whitespace()) {
                    p += 1;
                }
                let Some(&(_, t)) = chars.get(p) else { break };
                let f = fold(c);
                let hit = if fold(t) == f || (!t.is_alphanumeric() && !c.is_alphanumeric()) {
                    Some(p)
                } else {
                    (p + 1..(p + LOOKAHEAD).min(chars.len())).find(|&q| fold(chars[q].1) == f)
                };
                if let Some(q) = hit {
                    let (i, t) = chars[q];
                    let r = range.get_or_insert(i..i);
                    r.end = i + t.len_utf8();
                    p = q + 1;
                }
            }
        }
        let at = end_of(p);
        out.push(range.unwrap_or(at..at));
    }
    out
}

/// Groups located pieces into units: a piece starts a new unit when it starts with `▁`, or when
/// it or the piece before it is in a script written without spaces. Returns the units (byte
/// ranges; a unit none of whose pieces was found is merged into the one before it) and each
/// piece's unit.
fn group(text: &str, pieces: &[&str], ranges: &[Range<usize>]) -> (Vec<Range<usize>>, Vec<usize>) {
    let mut units: Vec<Range<usize>> = Vec::new();
    let mut of_piece = Vec::with_capacity(pieces.len());
    let mut open: Option<Range<usize>> = None;
    let mut previous_unspaced = false;
    for (piece, range) in pieces.iter().zip(ranges) {
        let found = &text[range.clone()];
        let is_unspaced = found.chars().any(unspaced);
        let starts = piece.starts_with('\u{2581}') || is_unspaced || previous_unspaced;
        previous_unspaced = is_unspaced;
        if starts && open.as_ref().is_some_and(|r| !r.is_empty()) {
            units.extend(open.take());
        }
        if range.is_empty() {
            if open.is_none() && units.is_empty() {
                open = Some(range.clone());
            }
        } else {
            let r: &mut Range<usize> = open.get_or_insert(range.clone());
            if r.start == r.end {
                *r = range.clone();
            }
            r.end = r.end.max(range.end);
        }
        // The unit this piece ends up in: the open one, or (empty and nothing open) the last.
        of_piece.push(if open.is_some() {
            units.len()
        } else {
            units.len().saturating_sub(1)
        });
    }
    if let Some(r) = open.take().filter(|r| !r.is_empty()) {
        units.push(r);
    }
    // Pieces that pointed at a unit that never got text (all pieces unmatched) point at the last.
    let n = units.len();
    for u in &mut of_piece {
        *u = (*u).min(n.saturating_sub(1));
    }
    if n == 0 {
        // Nothing was found: one empty unit would be meaningless; pieces point at nothing.
        of_piece.clear();
        of_piece.resize(pieces.len(), usize::MAX);
    }
    (units, of_piece)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn texts<'a>(text: &'a str, ranges: &[Range<usize>]) -> Vec<&'a str> {
        ranges.iter().map(|r| &text[r.clone()]).collect()
    }

    #[test]
    fn pieces_are_found_through_normalisation() {
        // Moses turns 。 into ". " and ， into ","; pieces carry ▁.
        let text = "政府宣布，计划。";
        let pieces = ["▁政府", "宣布", ",", "计划", ".", "▁"];
        let r = locate(text, pieces);
        assert_eq!(texts(text, &r), ["政府", "宣布", "，", "计划", "。", ""]);
        // Full-width letters and removed characters.
        let text = "Ｈet ka\u{ad}binet";
        let r = locate(text, ["▁Het", "▁kabinet"]);
        assert_eq!(texts(text, &r), ["Ｈet", "ka\u{ad}binet"]);
        // A byte-fallback piece and an unknown character match nothing, and the walk goes on.
        let r = locate("a 😀 b", ["▁a", "▁", "<0xF0>", "▁b"]);
        assert_eq!(texts("a 😀 b", &r), ["a", "", "", "b"]);
    }

    #[test]
    fn units_are_words_or_pieces_by_script() {
        let text = "Het kabinet is gevallen.";
        let pieces = ["▁Het", "▁kab", "inet", "▁is", "▁geval", "len", "."];
        let (u, of) = group(text, &pieces, &locate(text, pieces));
        assert_eq!(texts(text, &u), ["Het", "kabinet", "is", "gevallen."]);
        assert_eq!(of, [0, 1, 1, 2, 3, 3, 3]);
        let text = "这个计划将在明年开始实施。";
        let pieces = ["▁这个", "计划", "将在", "明年", "开始", "实施", "."];
        let (u, of) = group(text, &pieces, &locate(text, pieces));
        assert_eq!(
            texts(text, &u),
            ["这个", "计划", "将在", "明年", "开始", "实施", "。"]
        );
        assert_eq!(of, [0, 1, 2, 3, 4, 5, 6]);
        // Without a tokenizer: words, and unspaced characters one by one.
        let text = "Tokyo 東京 ok";
        assert_eq!(texts(text, &units(text)), ["Tokyo", "東", "京", "ok"]);
    }

    #[test]
    fn units_take_the_most_attention_of_their_pieces() {
        let source = "明年开始。";
        let target = "Starting next year.";
        let s = ["▁明年", "开始", "."];
        let t = [
            Some("▁Start"),
            Some("ing"),
            Some("▁next"),
            Some("▁year"),
            Some("."),
            None,
        ];
        // Rows: target pieces (and </s>); columns: source pieces and </s>.
        let att = vec![
            vec![0.1, 0.8, 0.0, 0.1],
            vec![0.2, 0.7, 0.0, 0.1],
            vec![0.9, 0.1, 0.0, 0.0],
            vec![0.8, 0.1, 0.1, 0.0],
            vec![0.0, 0.1, 0.9, 0.0],
            vec![0.0, 0.0, 0.0, 1.0],
        ];
        let a = Alignment::from_attention(source, &s, target, &t, &att).unwrap();
        assert_eq!(texts(source, &a.source), ["明年", "开始", "。"]);
        assert_eq!(texts(target, &a.target), ["Starting", "next", "year."]);
        // "year." holds "year" (明年) and "." (。): 0.8 + 0.0 against 0.1 + 0.9.
        assert_eq!(a.links, [Some(1), Some(0), Some(2)]);
        assert!(a.fits(source, target));
    }

    #[test]
    fn prefixes_add_a_unit_linked_to_the_other() {
        let a = Alignment::identity("a b");
        let p = a.prefixed(2, 3);
        assert!(p.fits("1. a b", "1. a b"));
        assert_eq!(p.links, [Some(0), Some(1), Some(2)]);
        assert_eq!(p.target[0], 0..2); // "1." without its space
        assert_eq!(p.target[1], 3..4); // "a" of "1. a b"
        assert_eq!(
            Alignment::proportional("a b c d", "x y").links,
            [Some(0), Some(2)]
        );
    }
}
