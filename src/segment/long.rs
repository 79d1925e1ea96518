//! Splitting of sentences that are too long for the translation model, at clause boundaries.
//!
//! A piece that is over the limit is cut in two at the best boundary near its middle, and each half
//! is cut again until every piece fits (a piece many times over the limit is first cut into about
//! as many pieces as it needs, in one pass). Boundaries are tried in order of preference: `;`, `:`, a
//! comma before a conjunction, a dash or opening bracket, any other comma, any white space, and as
//! a last resort the character boundary nearest the middle. Cutting near the middle keeps pieces
//! balanced (few, similar-sized fragments translate better than one long piece and a short tail)
//! and keeps the work linear in the length of the text, with O(pieces) calls of the length measure.

use std::ops::Range;

use super::chars::{char_at, char_before, is_space, trim};

/// Conjunctions and relative words that start a clause after a comma.
const CONJUNCTIONS: &[&str] = &[
    "en",
    "maar",
    "want",
    "of",
    "dus",
    "omdat",
    "terwijl",
    "doordat",
    "nadat",
    "zodat",
    "waardoor",
    "voordat",
    "hoewel",
    "ofschoon",
    "tenzij",
    "zodra",
    "totdat",
    "aangezien",
    "wanneer",
    "als",
    "die",
    "dat",
    "waarna",
    "waarbij",
    "waarmee",
    "waarop",
    "waarin",
    "waaronder",
    "waarvan",
    "zoals",
    "noch",
    "alsof",
    "opdat",
    "mits",
    "toen",
    "evenals",
    "alhoewel",
    "ondanks",
    "hetgeen",
    "wat",
    "wie",
    "waar",
    "sinds",
    "zonder",
    "behalve",
];

/// Boundary kinds, best first.
const LEVELS: usize = 6;

/// Cuts whose smaller side is under this share (in percent) of the piece are used only when no
/// boundary of any kind lies nearer the middle.
const MIN_SIDE_PERCENT: usize = 15;

/// Splits `text` into pieces whose `measure` is at most `limit`, at clause boundaries.
///
/// Returns byte ranges into `text`, in order, trimmed of white space, that together cover every
/// non-white-space character of `text`: only white space lies between them, so nothing is lost or
/// reordered. A piece can exceed the limit only when it is a single character. Text that is all
/// white space gives no pieces; text within the limit gives one. A `limit` of 0 is treated as 1.
///
/// `measure` can be any length, e.g. characters (`|s| s.chars().count()`) or model tokens; it is
/// called once for each piece considered, never per character.
///
/// ```
/// use tolk::segment::split_long;
///
/// let text = "Het kabinet wil meer geld voor zorg, maar de oppositie is tegen.";
/// let pieces = split_long(text, 40, |s| s.chars().count());
/// let pieces: Vec<&str> = pieces.into_iter().map(|r| &text[r]).collect();
/// assert_eq!(pieces, ["Het kabinet wil meer geld voor zorg,", "maar de oppositie is tegen."]);
/// ```
pub fn split_long(text: &str, limit: usize, measure: impl Fn(&str) -> usize) -> Vec<Range<usize>> {
    let limit = limit.max(1);
    let mut out = Vec::new();
    let whole = trim(text, 0..text.len());
    if whole.is_empty() {
        return out;
    }
    // Depth-first with the first piece on top keeps the output in text order without recursion.
    let mut stack = vec![whole];
    while let Some(range) = stack.pop() {
        let size = measure(&text[range.clone()]);
        if size <= limit {
            out.push(range);
            continue;
        }
        let cuts = cuts(text, range.clone(), size.div_ceil(limit));
        if cuts.is_empty() {
            out.push(range);
            continue;
        }
        let mut start = range.start;
        let mut pieces = Vec::with_capacity(cuts.len() + 1);
        for cut in cuts.into_iter().chain([range.end]) {
            let piece = trim(text, start..cut);
            if !piece.is_empty() {
                pieces.push(piece);
            }
            start = cut;
        }
        stack.extend(pieces.into_iter().rev());
    }
    out
}

/// Where to cut `text[range]` (trimmed, non-empty) into about `pieces` pieces: in two at the best
/// boundary near the middle, or, for a piece many times over the limit, at the best boundary near
/// each of `pieces - 1` evenly spaced points, which scans the text once instead of once per level
/// of halving. Empty for a single character.
fn cuts(text: &str, range: Range<usize>, pieces: usize) -> Vec<usize> {
    let len = range.len();
    if pieces <= 2 || len / pieces < 2 {
        let mid = range.start + len / 2;
        let min_side = len * MIN_SIDE_PERCENT / 100;
        let balanced = range.start + min_side..range.end - min_side;
        return cut_near(text, range.clone(), mid, balanced, false)
            .or_else(|| cut_near(text, range.clone(), mid, range.clone(), true))
            .into_iter()
            .collect();
    }
    let spacing = len / pieces;
    let mut out = Vec::with_capacity(pieces - 1);
    let mut window_start = range.start;
    for n in 1..pieces {
        let target = range.start + n * spacing;
        let window_end = (target + spacing / 2).min(range.end);
        if let Some(cut) = cut_near(text, range.clone(), target, window_start..window_end, true) {
            out.push(cut);
        }
        window_start = window_end;
    }
    out
}

/// The best cut of `text[range]` inside `window`: of the boundary kinds, best first, the one
/// nearest `target`; failing any, and if `chars` allows, the character boundary nearest `target`.
fn cut_near(
    text: &str,
    range: Range<usize>,
    target: usize,
    window: Range<usize>,
    chars: bool,
) -> Option<usize> {
    let lo = ceil_boundary(text, window.start.max(range.start + 1));
    let hi = ceil_boundary(text, window.end.min(range.end));
    if lo >= hi {
        return None;
    }
    let mut best: [Option<usize>; LEVELS] = [None; LEVELS];
    let mut offer = |level: usize, cut: usize| {
        if cut <= range.start || cut >= range.end || !(lo..hi).contains(&cut) {
            return;
        }
        if best[level].is_none_or(|b| cut.abs_diff(target) < b.abs_diff(target)) {
            best[level] = Some(cut);
        }
    };
    let mut prev = char_before(text, lo);
    // One character of look-ahead past the window decides cuts at its last character.
    let scan_end = text[hi..range.end]
        .chars()
        .next()
        .map_or(hi, |c| hi + c.len_utf8());
    for (offset, c) in text[lo..scan_end].char_indices() {
        let at = lo + offset;
        let after = at + c.len_utf8();
        let space_after = after < range.end && char_at(text, after).is_some_and(is_space);
        let space_before = prev.is_some_and(is_space);
        match c {
            ';' if space_after => offer(0, after),
            ':' if space_after => offer(1, after),
            ',' if space_after => {
                let level = if conjunction_at(text, after, range.end) {
                    2
                } else {
                    4
                };
                offer(level, after);
            }
            '–' | '—' | '-' if space_before && space_after => offer(3, at),
            '(' if space_before => offer(3, at),
            c if is_space(c) && prev.is_some_and(|p| !is_space(p)) => offer(5, at),
            _ => {}
        }
        prev = Some(c);
    }
    if let Some(cut) = best.iter().find_map(|cut| *cut) {
        return Some(cut);
    }
    chars.then(|| {
        let target = target.clamp(lo, hi - 1);
        let up = (target..hi).find(|&i| text.is_char_boundary(i));
        let down = (lo..=target).rev().find(|&i| text.is_char_boundary(i));
        [up, down]
            .into_iter()
            .flatten()
            .min_by_key(|i| i.abs_diff(target))
    })?
}

/// The first character boundary at or after `at`.
fn ceil_boundary(text: &str, at: usize) -> usize {
    (at..text.len())
        .find(|&i| text.is_char_boundary(i))
        .unwrap_or(text.len())
}

/// Whether a conjunction starts after the white space at `at`.
fn conjunction_at(text: &str, at: usize, end: usize) -> bool {
    let Some(rest) = text.get(at..end) else {
        return false;
    };
    let rest = rest.trim_start_matches(is_space);
    let word_len = rest
        .find(|c: char| !c.is_alphabetic())
        .unwrap_or(rest.len());
    let word = rest[..word_len].to_lowercase();
    CONJUNCTIONS.contains(&word.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn chars(s: &str) -> usize {
        s.chars().count()
    }

    fn pieces(text: &str, limit: usize) -> Vec<&str> {
        split_long(text, limit, chars)
            .into_iter()
            .map(|r| &text[r])
            .collect()
    }

    #[test]
    fn fits() {
        assert_eq!(pieces("  Kort.  ", 10), ["Kort."]);
        assert!(pieces(" \n ", 10).is_empty());
    }

    #[test]
    fn preference_order() {
        let text = "Aaaa aaaa, bbbb bbbb en cccc; dddd dddd, maar eeee eeee ffff.";
        assert_eq!(
            pieces(text, 40),
            [
                "Aaaa aaaa, bbbb bbbb en cccc;",
                "dddd dddd, maar eeee eeee ffff."
            ]
        );
        let text = "Aaaa aaaa bbbb, cccc dddd, want eeee ffff gggg hhhh.";
        assert_eq!(
            pieces(text, 30),
            ["Aaaa aaaa bbbb, cccc dddd,", "want eeee ffff gggg hhhh."]
        );
        let text = "Aaaa aaaa bbbb – cccc dddd – eeee ffff gggg hhhh.";
        assert_eq!(
            pieces(text, 30),
            ["Aaaa aaaa bbbb – cccc dddd", "– eeee ffff gggg hhhh."]
        );
    }

    #[test]
    fn characters_as_last_resort() {
        let text = "ééééééééééé";
        let got = pieces(text, 3);
        assert!(got.iter().all(|p| chars(p) <= 3), "{got:?}");
        assert_eq!(got.concat(), text);
    }

    #[test]
    fn zero_limit_gives_single_characters() {
        assert_eq!(pieces("ab c", 0), ["a", "b", "c"]);
    }
}
