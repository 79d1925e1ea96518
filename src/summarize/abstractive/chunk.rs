//! Cutting a sequence of text pieces into model-sized chunks: the fewest chunks, as even as
//! possible, never splitting a piece; and splitting a piece that is too long on its own.

use std::ops::Range;

use crate::error::{Error, Result};

/// Greedy packing: each chunk takes pieces while its total stays within `cap`. Gives the fewest
/// chunks possible for `cap` (a piece larger than `cap` gets a chunk of its own).
pub(crate) fn greedy(costs: &[usize], cap: usize) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    let mut total = 0usize;
    for (i, &c) in costs.iter().enumerate() {
        if i > start && total + c > cap {
            out.push(start..i);
            start = i;
            total = 0;
        }
        total += c;
    }
    if start < costs.len() {
        out.push(start..costs.len());
    }
    out
}

/// The fewest chunks of at most `cap` (as [`greedy`]), with the largest chunk as small as that
/// count allows: greedy packing under the smallest cap that still needs no more chunks. Without
/// this, the last chunk is often a short remainder, and a summary of a few sentences is mostly
/// the model's invention.
pub(crate) fn balanced(costs: &[usize], cap: usize) -> Vec<Range<usize>> {
    let fewest = greedy(costs, cap);
    let k = fewest.len();
    if k <= 1 {
        return fewest;
    }
    let total: usize = costs.iter().sum();
    let largest = costs.iter().copied().max().unwrap_or(0);
    // Invariant: `hi` needs at most k chunks; `lo` needs more (or is below the largest piece).
    let mut lo = total.div_ceil(k).max(largest).saturating_sub(1);
    let mut hi = cap.max(largest);
    while hi > lo + 1 {
        let mid = lo + (hi - lo) / 2;
        if greedy(costs, mid).len() <= k {
            hi = mid;
        } else {
            lo = mid;
        }
    }
    greedy(costs, hi)
}

/// The largest `k` such that `fits(k)` holds, assuming `fits(0)`; a binary search that only
/// needs `fits` to be true at the answer and false just above it, so a predicate that is not
/// perfectly monotonic (BPE token counts of growing prefixes of a word) still gives a `k` that
/// fits.
pub(crate) fn largest_fitting(
    n: usize,
    mut fits: impl FnMut(usize) -> Result<bool>,
) -> Result<usize> {
    if n == 0 || fits(n)? {
        return Ok(n);
    }
    let (mut lo, mut hi) = (0, n);
    while hi > lo + 1 {
        let mid = lo + (hi - lo) / 2;
        if fits(mid)? {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    Ok(lo)
}

/// Splits `text`, which is too long for one model input, into pieces that each fit
/// (`fits(piece)`): at whitespace, as many words per piece as fit; a single word that does not
/// fit on its own is cut between characters. Whitespace between words becomes one space; no
/// character other than whitespace is lost.
pub(crate) fn split_to_fit(
    text: &str,
    mut fits: impl FnMut(&str) -> Result<bool>,
) -> Result<Vec<String>> {
    let words: Vec<&str> = text.split_whitespace().collect();
    let mut out = Vec::new();
    let mut i = 0;
    while i < words.len() {
        let rest = &words[i..];
        let k = largest_fitting(rest.len(), |k| fits(&rest[..k].join(" ")))?;
        if k > 0 {
            out.push(rest[..k].join(" "));
            i += k;
            continue;
        }
        // One word longer than a model input: cut it between characters.
        let word = rest[0];
        let bounds: Vec<usize> = word
            .char_indices()
            .map(|(b, _)| b)
            .chain([word.len()])
            .collect();
        let mut start = 0; // index into `bounds`
        while start + 1 < bounds.len() {
            let avail = bounds.len() - 1 - start;
            let k = largest_fitting(avail, |k| fits(&word[bounds[start]..bounds[start + k]]))?;
            if k == 0 {
                return Err(Error::option(
                    "max_input_tokens",
                    "too small to hold a single character with the start and end tokens",
                ));
            }
            out.push(word[bounds[start]..bounds[start + k]].to_string());
            start += k;
        }
        i += 1;
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sums(costs: &[usize], chunks: &[Range<usize>]) -> Vec<usize> {
        chunks
            .iter()
            .map(|r| costs[r.clone()].iter().sum())
            .collect()
    }

    #[test]
    fn greedy_packs_in_order() {
        assert_eq!(greedy(&[3, 3, 3, 3], 6), vec![0..2, 2..4]);
        assert_eq!(greedy(&[5, 2, 9, 1], 6), vec![0..1, 1..2, 2..3, 3..4]);
        assert_eq!(greedy(&[], 6), Vec::<Range<usize>>::new());
        assert_eq!(greedy(&[1, 1], 6), vec![0..2]);
    }

    #[test]
    fn balanced_keeps_the_count_and_evens_the_sizes() {
        let costs = [10, 10, 10, 10, 10, 10, 10, 10, 10, 2];
        let g = greedy(&costs, 60);
        assert_eq!(sums(&costs, &g), vec![60, 32]);
        let b = balanced(&costs, 60);
        assert_eq!(b.len(), 2);
        assert_eq!(sums(&costs, &b), vec![50, 42]);
        // Every index once, in order.
        let costs: Vec<usize> = (0..200).map(|i| 1 + (i * 37) % 23).collect();
        for cap in [23, 40, 100, 1000] {
            let b = balanced(&costs, cap);
            assert_eq!(b.len(), greedy(&costs, cap).len());
            assert_eq!(b.first().map(|r| r.start), Some(0));
            assert_eq!(b.last().map(|r| r.end), Some(200));
            assert!(b.windows(2).all(|w| w[0].end == w[1].start));
            assert!(sums(&costs, &b).iter().all(|&s| s <= cap));
        }
    }

    #[test]
    fn split_to_fit_cuts_at_words_then_characters() {
        let fits = |s: &str| Ok(s.chars().count() <= 10);
        let out = split_to_fit("one two three  four\nfive", fits).unwrap();
        assert_eq!(out, vec!["one two", "three four", "five"]);
        let out = split_to_fit("a abcdefghijklmnopqrstuvwxyz b", fits).unwrap();
        assert_eq!(out, vec!["a", "abcdefghij", "klmnopqrst", "uvwxyz", "b"]);
        let out = split_to_fit("ééééééééééééé", fits).unwrap();
        assert_eq!(out.concat(), "ééééééééééééé");
        assert!(split_to_fit("abc", |_| Ok(false)).is_err());
    }
}
