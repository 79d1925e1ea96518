//! Unigram segmentation: the best-scoring split of a normalised string into vocabulary pieces,
//! computed exactly as SentencePiece's optimised Viterbi (`Model::EncodeOptimized` in
//! `unigram_model.cc`, the default encoder since sentencepiece 0.1.9x).
//!
//! Exactness matters down to floating point, because near-ties are common (`"000"` as
//! `0|00` or `00|0`): scores and running totals are `float`s, a candidate is the piece's score
//! plus the total where it starts, added in `float`, and it replaces the best path ending at the
//! same place only when strictly greater, so among equal paths the one whose last piece starts
//! earliest wins. (The 0.2.1 source computes the candidate in `double`; the 0.2.3 package that
//! transformers uses behaves as `float`, which is what the recorded reference confirms.)
//!
//! Unlike SentencePiece, it does not keep one lattice entry per byte for the whole input: every
//! position that no candidate piece spans is a point that all paths cross, so the best path up
//! to it is final. The search emits that part and forgets it, which keeps memory proportional to
//! the longest stretch without such a point, while every score is computed as before.

use super::normalizer::one_char_len;
use super::trie::Trie;
use crate::proto::PieceType;

/// SentencePiece's `kUnkPenalty`: an unknown character scores `min_score - 10`.
const UNK_PENALTY: f32 = 10.0;

/// The vocabulary data the search needs.
#[derive(Debug, Clone)]
pub(crate) struct Unigram {
    /// Normal, user-defined and unused pieces (the ones SentencePiece puts in its trie).
    trie: Trie,
    scores: Vec<f32>,
    kinds: Vec<PieceType>,
    unk_id: u32,
    unk_score: f32,
    max_score: f32,
}

/// One piece of the best path: byte range in the normalised text and the vocabulary id
/// (`unk_id` for an unknown character).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Span {
    pub start: usize,
    pub end: usize,
    pub id: u32,
}

#[derive(Debug, Clone, Copy)]
struct Best {
    score: f32,
    /// Start of the last piece of the best path ending here; `usize::MAX` when none yet.
    starts_at: usize,
    id: u32,
}

const UNSET: Best = Best {
    score: 0.0,
    starts_at: usize::MAX,
    id: 0,
};

impl Unigram {
    /// `pieces` are `(piece, score, kind)` in id order; `unk_id` is the id of the unknown piece.
    pub(crate) fn new(pieces: &[(&[u8], f32, PieceType)], unk_id: u32) -> Self {
        // SentencePiece starts from FLT_MAX / FLT_MIN (the smallest *positive* float), and looks
        // only at normal pieces.
        let mut min_score = f32::MAX;
        let mut max_score = f32::MIN_POSITIVE;
        for &(_, score, kind) in pieces {
            if kind == PieceType::Normal {
                min_score = min_score.min(score);
                max_score = max_score.max(score);
            }
        }
        let in_trie = |k: PieceType| {
            matches!(
                k,
                PieceType::Normal | PieceType::UserDefined | PieceType::Unused
            )
        };
        let trie = Trie::new(
            pieces
                .iter()
                .enumerate()
                .filter(|(_, p)| in_trie(p.2))
                .map(|(i, p)| (p.0, i as u32)),
        );
        Unigram {
            trie,
            scores: pieces.iter().map(|p| p.1).collect(),
            kinds: pieces.iter().map(|p| p.2).collect(),
            unk_id,
            unk_score: min_score - UNK_PENALTY,
            max_score,
        }
    }

    /// True when no piece can ever be matched (SentencePiece refuses such models).
    pub(crate) fn has_no_pieces(&self) -> bool {
        self.trie.is_empty()
    }

    /// Calls `emit` with each piece of the best segmentation of `text`, in order. Pieces come
    /// out as soon as they are final, so memory does not grow with the whole text.
    pub(crate) fn encode(&self, text: &[u8], mut emit: impl FnMut(Span)) {
        let mut path: Vec<Span> = Vec::new();
        let size = text.len();
        if size == 0 {
            return;
        }
        // best[i] describes position base + i.
        let mut base = 0usize;
        let mut best: Vec<Best> = vec![Best {
            score: 0.0,
            starts_at: usize::MAX,
            id: 0,
        }];
        // The furthest end of any candidate seen so far.
        let mut furthest = 0usize;
        let mut starts_at = 0usize;
        while starts_at < size {
            if furthest <= starts_at && starts_at > base {
                // Nothing spans this position: the best path up to here is final.
                self.backtrack(&best, base, starts_at, &mut path);
                path.drain(..).for_each(&mut emit);
                let here = best.get(starts_at - base).copied().unwrap_or(UNSET);
                best.clear();
                best.push(Best {
                    score: here.score,
                    starts_at: usize::MAX,
                    id: 0,
                });
                base = starts_at;
            }
            let till_here = best.get(starts_at - base).map_or(0.0, |b| b.score);
            let mblen = one_char_len(text[starts_at]).min(size - starts_at);
            let mut has_single_node = false;
            self.trie.for_each_prefix(&text[starts_at..], |length, id| {
                let Some(&kind) = self.kinds.get(id as usize) else {
                    return;
                };
                if kind == PieceType::Unused {
                    return;
                }
                let score: f32 = if kind == PieceType::UserDefined {
                    (f64::from(length as f32 * self.max_score) - 0.1) as f32
                } else {
                    self.scores.get(id as usize).copied().unwrap_or(0.0)
                };
                let candidate = score + till_here;
                let end = starts_at + length;
                let slot = end - base;
                if best.len() <= slot {
                    best.resize(slot + 1, UNSET);
                }
                let target = &mut best[slot];
                if target.starts_at == usize::MAX || candidate > target.score {
                    *target = Best {
                        score: candidate,
                        starts_at,
                        id,
                    };
                }
                furthest = furthest.max(end);
                if length == mblen {
                    has_single_node = true;
                }
            });
            if !has_single_node {
                let end = starts_at + mblen;
                let slot = end - base;
                if best.len() <= slot {
                    best.resize(slot + 1, UNSET);
                }
                let candidate = self.unk_score + till_here;
                let target = &mut best[slot];
                if target.starts_at == usize::MAX || candidate > target.score {
                    *target = Best {
                        score: candidate,
                        starts_at,
                        id: self.unk_id,
                    };
                }
                furthest = furthest.max(end);
            }
            starts_at += mblen;
        }
        self.backtrack(&best, base, size, &mut path);
        path.drain(..).for_each(&mut emit);
    }

    /// Appends the best path from `base` to `end` (both cut points) to `out`.
    fn backtrack(&self, best: &[Best], base: usize, end: usize, out: &mut Vec<Span>) {
        let first = out.len();
        let mut ends_at = end;
        while ends_at > base {
            let Some(node) = best.get(ends_at - base) else {
                break;
            };
            // Every reached position has a predecessor at or after `base`.
            if node.starts_at == usize::MAX || node.starts_at < base || node.starts_at >= ends_at {
                break;
            }
            out.push(Span {
                start: node.starts_at,
                end: ends_at,
                id: node.id,
            });
            ends_at = node.starts_at;
        }
        out[first..].reverse();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(pieces: &[(&str, f32, PieceType)]) -> Unigram {
        let p: Vec<(&[u8], f32, PieceType)> = pieces
            .iter()
            .map(|&(s, f, k)| (s.as_bytes(), f, k))
            .collect();
        Unigram::new(&p, 0)
    }

    fn seg(m: &Unigram, text: &str) -> Vec<(String, u32)> {
        let mut out = Vec::new();
        m.encode(text.as_bytes(), |s| out.push(s));
        out.iter()
            .map(|s| (text[s.start..s.end].to_string(), s.id))
            .collect()
    }

    #[test]
    fn best_path_unknowns_and_user_symbols() {
        use PieceType::*;
        let m = model(&[
            ("<unk>", 0.0, Unknown),
            ("a", -1.0, Normal),
            ("b", -1.0, Normal),
            ("ab", -1.5, Normal),
            ("abc", -10.0, Normal),
            ("c", -3.0, Normal),
            ("xy", 0.0, UserDefined),
            ("x", -0.5, Normal),
            ("zz", -0.1, Unused),
        ]);
        assert_eq!(
            seg(&m, "abc"),
            vec![("ab".into(), 3), ("c".into(), 5)],
            "-4.5 beats -10"
        );
        assert_eq!(seg(&m, "xyx"), vec![("xy".into(), 6), ("x".into(), 7)]);
        assert_eq!(
            seg(&m, "zé"),
            vec![("z".into(), 0), ("é".into(), 0)],
            "unused pieces never match; unknowns are one character each"
        );
        assert!(seg(&m, "").is_empty());
    }

    #[test]
    fn ties_keep_the_longer_piece() {
        use PieceType::*;
        let m = model(&[
            ("<unk>", 0.0, Unknown),
            ("a", -1.0, Normal),
            ("b", -1.0, Normal),
            ("ab", -2.0, Normal),
        ]);
        assert_eq!(seg(&m, "ab"), vec![("ab".into(), 3)]);
    }
}
