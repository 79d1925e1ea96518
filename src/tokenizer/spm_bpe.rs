//! SentencePiece BPE segmentation, exactly as `bpe::Model::Encode` in sentencepiece 0.2
//! (`bpe_model.cc`) does it: what the `sentencepiece.bpe.model` of M2M100 and NLLB need.
//!
//! 1. The normalised text is split into symbols: one character each, except that user-defined
//!    symbols are matched whole (the longest one that starts here) and are frozen: they never
//!    take part in a merge.
//! 2. Every pair of adjacent symbols whose concatenation is a piece goes on an agenda. The
//!    agenda gives the pair whose piece has the highest score, among equal scores the leftmost;
//!    that pair merges into one symbol, and the new symbol's pairs with its neighbours join the
//!    agenda. Pairs that a merge has invalidated are skipped when they come up. This repeats
//!    until the agenda is empty.
//! 3. A final symbol whose piece is UNUSED is split again ("resegmented") into the two symbols
//!    it was merged from, recursively, so that unused pieces never come out.
//!
//! The pieces a merge can produce are SentencePiece's `pieces_`: the normal, user-defined and
//! unused pieces (the control, unknown and byte pieces live in another map). A symbol's id is
//! `PieceToId` of its text, where those reserved pieces come first and anything else is
//! unknown; merging unknown characters and byte fallback are left to the caller, as in
//! SentencePiece, where `PopulateSentencePieceText` does them for both model types.
//!
//! Unlike SentencePiece, the text is not merged in one go: every position that no piece can
//! span (no piece starting at an earlier symbol reaches past it) is a point where no merge can
//! ever cross, so the symbols before it are merged, emitted and forgotten. The merges on either
//! side of such a point are independent of each other and happen in the same relative order as
//! in one agenda, so the result is the same, while the memory and the agenda stay as small as
//! the longest stretch between such points (in ordinary text, about a word).

use std::cmp::Ordering;
use std::collections::{BinaryHeap, HashMap};

use super::normalizer::one_char_len;
use super::trie::Trie;
use super::unigram::Span;
use crate::proto::PieceType;

/// No symbol (the end of the list).
const NONE: usize = usize::MAX;

/// The vocabulary data the merges need.
#[derive(Debug, Clone)]
pub(crate) struct Bpe {
    /// SentencePiece's `pieces_`: normal, user-defined and unused pieces, the only strings a
    /// merge can make.
    pieces: Trie,
    /// The score of every id, `-0.0` folded into `0.0` (SentencePiece compares scores with `<`,
    /// for which they are equal; the trainer gives the first merge `-0.0`).
    scores: Vec<f32>,
    /// Whether each id is UNUSED.
    unused: Vec<bool>,
    /// `PieceToId` of the text of every id: the id itself, or the reserved piece with the same
    /// text, which `PieceToId` looks up first.
    resolved: Vec<u32>,
    /// Control, unknown and byte pieces (SentencePiece's `reserved_id_map_`).
    reserved: HashMap<Vec<u8>, u32>,
    /// User-defined symbols, matched whole when the text is split into symbols.
    user_defined: Option<Trie>,
    unk_id: u32,
}

/// A symbol: a byte range of the normalised text, linked to its live neighbours.
#[derive(Debug, Clone, Copy)]
struct Symbol {
    start: usize,
    /// `end == start` once this symbol has been merged into its left neighbour.
    end: usize,
    prev: usize,
    next: usize,
    /// The piece id of a merged symbol; `None` for a symbol that is still one character.
    piece: Option<u32>,
    /// A user-defined symbol, never merged.
    frozen: bool,
}

impl Symbol {
    fn len(&self) -> usize {
        self.end - self.start
    }
}

/// A possible merge of two adjacent symbols on the agenda.
#[derive(Debug, Clone, Copy)]
struct Pair {
    score: f32,
    left: usize,
    right: usize,
    /// Length of the merged piece: when the two symbols no longer add up to it, the pair is
    /// stale.
    len: usize,
    piece: u32,
}

/// The agenda's order: the highest score first, then the leftmost pair.
impl Ord for Pair {
    fn cmp(&self, other: &Self) -> Ordering {
        self.score
            .total_cmp(&other.score)
            .then_with(|| other.left.cmp(&self.left))
    }
}

impl PartialOrd for Pair {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl PartialEq for Pair {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Pair {}

/// Buffers of one `encode` call, reused from one stretch of text to the next.
#[derive(Debug, Default)]
struct Work {
    symbols: Vec<Symbol>,
    agenda: BinaryHeap<Pair>,
    /// SentencePiece's `rev_merge`: for each unused piece that a pair could make, the length
    /// of the pair's left symbol (the last such pair wins, as there).
    splits: HashMap<u32, usize>,
    /// Resegmentation work list: `(start, end, piece)`.
    pending: Vec<(usize, usize, Option<u32>)>,
}

impl Bpe {
    /// `pieces` are `(piece, score, kind)` in id order; `unk_id` is the id of the unknown piece;
    /// `user_defined` holds the user-defined symbols (the normaliser's protected strings).
    pub(crate) fn new(
        pieces: &[(&[u8], f32, PieceType)],
        unk_id: u32,
        user_defined: Option<Trie>,
    ) -> Self {
        let mergeable = |k: PieceType| {
            matches!(
                k,
                PieceType::Normal | PieceType::UserDefined | PieceType::Unused
            )
        };
        let mut reserved = HashMap::new();
        for (id, &(text, _, kind)) in pieces.iter().enumerate() {
            if !mergeable(kind) {
                reserved.entry(text.to_vec()).or_insert(id as u32);
            }
        }
        let resolved = pieces
            .iter()
            .enumerate()
            .map(|(id, &(text, _, kind))| match reserved.get(text) {
                Some(&r) if mergeable(kind) => r,
                _ => id as u32,
            })
            .collect();
        Bpe {
            pieces: Trie::new(
                pieces
                    .iter()
                    .enumerate()
                    .filter(|(_, p)| mergeable(p.2))
                    .map(|(id, p)| (p.0, id as u32)),
            ),
            scores: pieces
                .iter()
                .map(|p| if p.1 == 0.0 { 0.0 } else { p.1 })
                .collect(),
            unused: pieces.iter().map(|p| p.2 == PieceType::Unused).collect(),
            resolved,
            reserved,
            user_defined: user_defined.filter(|t| !t.is_empty()),
            unk_id,
        }
    }

    /// Calls `emit` with each piece of the BPE segmentation of `text`, in order; unknown
    /// characters come out one by one with the unknown id.
    pub(crate) fn encode(&self, text: &[u8], mut emit: impl FnMut(Span)) {
        let mut work = Work::default();
        // The furthest end of a piece that starts at a symbol of the current stretch.
        let mut reach = 0;
        let mut pos = 0;
        while pos < text.len() {
            if pos >= reach && !work.symbols.is_empty() {
                self.segment(text, &mut work, &mut emit);
            }
            let rest = &text[pos..];
            let (len, frozen) = self.next_symbol(rest);
            reach = reach.max(pos + len);
            if !frozen {
                if let Some(longest) = self.pieces.longest_prefix(rest) {
                    reach = reach.max(pos + longest);
                }
            }
            let index = work.symbols.len();
            work.symbols.push(Symbol {
                start: pos,
                end: pos + len,
                prev: index.checked_sub(1).unwrap_or(NONE),
                next: index + 1,
                piece: None,
                frozen,
            });
            pos += len;
        }
        self.segment(text, &mut work, &mut emit);
    }

    /// `PrefixMatcher::PrefixMatch`: the length of the symbol at the start of `rest` (the
    /// longest user-defined symbol there, else one character) and whether it is user-defined.
    fn next_symbol(&self, rest: &[u8]) -> (usize, bool) {
        if let Some(len) = self
            .user_defined
            .as_ref()
            .and_then(|t| t.longest_prefix(rest))
        {
            return (len, true);
        }
        let len = rest.first().map_or(0, |&b| one_char_len(b));
        (len.min(rest.len()), false)
    }

    /// Merges the symbols in `work`, emits the result and empties `work.symbols`.
    fn segment(&self, text: &[u8], work: &mut Work, emit: &mut impl FnMut(Span)) {
        let Work {
            symbols,
            agenda,
            splits,
            pending,
        } = work;
        let Some(last) = symbols.last_mut() else {
            return;
        };
        last.next = NONE;
        agenda.clear();
        splits.clear();
        for right in 1..symbols.len() {
            self.add_pair(text, symbols, agenda, splits, right - 1, right);
        }
        while let Some(top) = agenda.pop() {
            let (left, right) = (symbols[top.left], symbols[top.right]);
            if left.len() == 0 || right.len() == 0 || left.len() + right.len() != top.len {
                continue;
            }
            symbols[top.left].end = right.end;
            symbols[top.left].next = right.next;
            symbols[top.left].piece = Some(top.piece);
            if let Some(after) = symbols.get_mut(right.next) {
                after.prev = top.left;
            }
            symbols[top.right].end = right.start;
            self.add_pair(text, symbols, agenda, splits, left.prev, top.left);
            self.add_pair(text, symbols, agenda, splits, top.left, right.next);
        }

        // The first symbol is never merged away, and the links lead through the live ones.
        let mut index = 0;
        while let Some(symbol) = symbols.get(index) {
            pending.push((symbol.start, symbol.end, symbol.piece));
            while let Some((start, end, piece)) = pending.pop() {
                let piece = piece.or_else(|| self.pieces.get(&text[start..end]));
                let id = self.piece_to_id(&text[start..end], piece);
                let split = if self.is_unused(id) {
                    splits.get(&id).map(|&left_len| start + left_len)
                } else {
                    None
                };
                match split {
                    Some(mid) if start < mid && mid < end => {
                        pending.push((mid, end, None));
                        pending.push((start, mid, None));
                    }
                    _ => emit(Span { start, end, id }),
                }
            }
            index = symbol.next;
        }
        symbols.clear();
    }

    /// `MaybeAddNewSymbolPair`: puts the merge of symbols `left` and `right` on the agenda if
    /// both exist, neither is frozen and their concatenation is a piece.
    fn add_pair(
        &self,
        text: &[u8],
        symbols: &[Symbol],
        agenda: &mut BinaryHeap<Pair>,
        splits: &mut HashMap<u32, usize>,
        left: usize,
        right: usize,
    ) {
        let (Some(l), Some(r)) = (symbols.get(left), symbols.get(right)) else {
            return;
        };
        if l.frozen || r.frozen {
            return;
        }
        let merged = &text[l.start..r.end];
        let Some(piece) = self.pieces.get(merged) else {
            return;
        };
        agenda.push(Pair {
            score: self.scores.get(piece as usize).copied().unwrap_or(0.0),
            left,
            right,
            len: merged.len(),
            piece,
        });
        if self.is_unused(piece) {
            splits.insert(piece, l.len());
        }
    }

    /// `PieceToId` of `text`, whose id in `pieces_` is `piece`.
    fn piece_to_id(&self, text: &[u8], piece: Option<u32>) -> u32 {
        match piece {
            Some(id) => self.resolved.get(id as usize).copied().unwrap_or(id),
            None => self.reserved.get(text).copied().unwrap_or(self.unk_id),
        }
    }

    fn is_unused(&self, id: u32) -> bool {
        self.unused.get(id as usize).copied().unwrap_or(false)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use PieceType::*;

    fn model(pieces: &[(&str, f32, PieceType)]) -> Bpe {
        let p: Vec<(&[u8], f32, PieceType)> = pieces
            .iter()
            .map(|&(s, f, k)| (s.as_bytes(), f, k))
            .collect();
        let user = Trie::new(
            pieces
                .iter()
                .filter(|p| p.2 == UserDefined)
                .map(|p| (p.0.as_bytes(), 0)),
        );
        Bpe::new(&p, 0, Some(user))
    }

    fn seg(m: &Bpe, text: &str) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        m.encode(text.as_bytes(), |s| out.push(s));
        // The pieces cover the text, in order.
        let mut at = 0;
        for s in &out {
            assert_eq!(s.start, at, "{out:?}");
            assert!(s.end > s.start, "{out:?}");
            at = s.end;
        }
        assert_eq!(at, text.len(), "{out:?}");
        out.iter()
            .map(|s| (text[s.start..s.end].to_string(), s.id))
            .collect()
    }

    fn texts(m: &Bpe, text: &str) -> Vec<String> {
        seg(m, text).into_iter().map(|(t, _)| t).collect()
    }

    #[test]
    fn the_best_scoring_pair_merges_first() {
        let m = model(&[
            ("<unk>", 0.0, Unknown),
            ("a", -10.0, Normal),
            ("b", -10.0, Normal),
            ("c", -10.0, Normal),
            ("ab", -2.0, Normal),
            ("bc", -1.0, Normal),
        ]);
        // `bc` scores better than `ab`, so `b` goes right; `a` + `bc` is no piece.
        assert_eq!(seg(&m, "abc"), vec![("a".into(), 1), ("bc".into(), 5)]);
        assert_eq!(seg(&m, "ab"), vec![("ab".into(), 4)]);
        assert_eq!(texts(&m, "abcab"), ["a", "bc", "ab"]);
    }

    #[test]
    fn equal_scores_merge_the_leftmost_pair_first() {
        let m = model(&[
            ("<unk>", 0.0, Unknown),
            ("a", -10.0, Normal),
            ("aa", -1.0, Normal),
            ("b", -10.0, Normal),
            ("ab", -1.0, Normal),
            ("ba", -1.0, Normal),
        ]);
        assert_eq!(texts(&m, "aaa"), ["aa", "a"]);
        assert_eq!(texts(&m, "aaaaa"), ["aa", "aa", "a"]);
        // Different pieces with equal scores: still the leftmost pair.
        assert_eq!(texts(&m, "aba"), ["ab", "a"]);
        assert_eq!(texts(&m, "bab"), ["ba", "b"]);
        // Scores of -0.0 and 0.0 are equal too.
        let m = model(&[
            ("<unk>", 0.0, Unknown),
            ("x", -5.0, Normal),
            ("y", -5.0, Normal),
            ("yx", 0.0, Normal),
            ("xy", -0.0, Normal),
        ]);
        assert_eq!(texts(&m, "xyx"), ["xy", "x"]);
        assert_eq!(texts(&m, "yxy"), ["yx", "y"]);
    }

    #[test]
    fn unused_pieces_are_split_into_what_they_were_merged_from() {
        let m = model(&[
            ("<unk>", 0.0, Unknown),
            ("a", -10.0, Normal),
            ("b", -10.0, Normal),
            ("c", -10.0, Normal),
            ("d", -10.0, Normal),
            ("ab", -1.0, Unused),
            ("abc", -2.0, Unused),
            ("cd", -3.0, Normal),
            ("abcd", -4.0, Normal),
            ("bc", -5.0, Normal),
        ]);
        // a+b -> ab (unused), ab+c -> abc (unused), then no abc+d... abcd is a piece:
        // abc + d -> abcd (normal): it stays.
        assert_eq!(seg(&m, "abcd"), vec![("abcd".into(), 8)]);
        // abc is unused: back to ab + c, and ab, unused too, to a + b.
        assert_eq!(
            seg(&m, "abc"),
            vec![("a".into(), 1), ("b".into(), 2), ("c".into(), 3)]
        );
        // Resegmentation does not merge again: bc is a piece, but a|b|c stays.
        assert_eq!(texts(&m, "abcx"), ["a", "b", "c", "x"]);
        // An unused piece that was never merged (one character) stays as it is.
        let m = model(&[("<unk>", 0.0, Unknown), ("z", -1.0, Unused)]);
        assert_eq!(seg(&m, "z"), vec![("z".into(), 1)]);
    }

    #[test]
    fn user_defined_symbols_are_whole_and_frozen() {
        let m = model(&[
            ("<unk>", 0.0, Unknown),
            ("<sep>", 0.0, UserDefined),
            ("<", -10.0, Normal),
            ("s", -10.0, Normal),
            ("<s", -1.0, Normal),
            ("a", -10.0, Normal),
            ("a<", -0.5, Normal),
            ("<sep>s", -0.1, Normal),
            ("a<sep>", -0.2, Normal),
        ]);
        assert_eq!(seg(&m, "<sep>"), vec![("<sep>".into(), 1)]);
        // Neither `a<` nor `<s` can take a character of the frozen symbol, and although
        // `a<sep>` and `<sep>s` are pieces, the frozen symbol never merges.
        assert_eq!(texts(&m, "a<sep>s"), ["a", "<sep>", "s"]);
        assert_eq!(texts(&m, "a<s"), ["a<", "s"]);
        assert_eq!(texts(&m, "<se"), ["<s", "e"]);
    }

    #[test]
    fn unknown_and_reserved_texts() {
        let m = model(&[
            ("<unk>", 0.0, Unknown),
            ("<s>", 0.0, Control),
            ("a", -1.0, Normal),
            ("é", -1.0, Normal),
            ("aé", -0.5, Normal),
        ]);
        assert_eq!(
            seg(&m, "aéxé😀"),
            vec![
                ("aé".into(), 4),
                ("x".into(), 0),
                ("é".into(), 3),
                ("😀".into(), 0)
            ]
        );
        assert!(seg(&m, "").is_empty());
        // A reserved piece as text (never the case for a single character in real models)
        // gets the reserved id, as `PieceToId` gives it.
        let m = model(&[("<unk>", 0.0, Unknown), ("!", 0.0, Control)]);
        assert_eq!(seg(&m, "!"), vec![("!".into(), 1)]);
    }

    #[test]
    fn stretches_between_cut_points_give_the_same_result() {
        // One long word whose pieces overlap everywhere, and the same word broken up by
        // characters that no piece spans: both must come out as if merged in one agenda.
        let m = model(&[
            ("<unk>", 0.0, Unknown),
            ("a", -10.0, Normal),
            ("b", -10.0, Normal),
            ("ab", -1.0, Normal),
            ("ba", -2.0, Normal),
            ("abab", -3.0, Normal),
        ]);
        let word = "ab".repeat(1000) + "a";
        let mut expected = vec!["abab"; 500];
        expected.push("a");
        assert_eq!(texts(&m, &word), expected);
        assert_eq!(texts(&m, "ababxbaba"), ["abab", "x", "b", "ab", "a"]);
    }
}
