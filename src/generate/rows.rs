//! Fast per-row arithmetic over a vocabulary of logits: maximum, sum of exponentials and top-k in a
//! few vectorisable passes.
//!
//! A log-softmax and the banning processors only shift a row by a constant or set entries to -inf,
//! so the order of the remaining entries is that of the raw logits: the search picks its
//! candidates on the raw row and computes the exact log-probabilities of those few only. This gives
//! transformers' values (up to float rounding) at a fraction of the cost of normalising 67,028
//! entries twice per row and step.

use crate::kernels::exp::exp_nonpos;
use crate::kernels::simd::multiversion;

const LANES: usize = 16;

/// Largest value and the first index holding it (NaN ignored). Empty or all-NaN: (-inf, 0).
pub fn max_first(xs: &[f32]) -> (f32, usize) {
    let (m, idx) = max_first_lanes(xs);
    if m == f32::NEG_INFINITY {
        // All -inf, NaN or empty: the first -inf if there is one.
        return (m, xs.iter().position(|&v| v == m).unwrap_or(0));
    }
    (m, idx)
}

multiversion! {
/// One pass: per lane the largest value and the first chunk holding it, then the smallest index
/// among the lanes that hold the overall maximum.
fn max_first_lanes(xs: &[f32]) -> (f32, usize) {
    let mut best = [f32::NEG_INFINITY; LANES];
    let mut at = [0u32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for (c, chunk) in chunks.enumerate() {
        let c = c as u32;
        for l in 0..LANES {
            let v = chunk[l];
            let take = v > best[l];
            best[l] = if take { v } else { best[l] };
            at[l] = if take { c } else { at[l] };
        }
    }
    let mut m = f32::NEG_INFINITY;
    let mut idx = usize::MAX;
    for l in 0..LANES {
        let i = at[l] as usize * LANES + l;
        if best[l] > m || (best[l] == m && i < idx) {
            m = best[l];
            idx = i;
        }
    }
    let base = xs.len() - rest.len();
    for (j, &v) in rest.iter().enumerate() {
        if v > m {
            m = v;
            idx = base + j;
        }
    }
    (m, if idx == usize::MAX { 0 } else { idx })
}
}

multiversion! {
/// Sum of exp(x - m) over the row (m should be the row's maximum).
pub fn exp_sum(xs: &[f32], m: f32) -> f32 {
    let mut lanes = [0f32; LANES];
    let chunks = xs.chunks_exact(LANES);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l += exp_nonpos(v - m);
        }
    }
    let mut s: f32 = lanes.iter().sum();
    for &v in rest {
        s += exp_nonpos(v - m);
    }
    s
}
}

/// The `k` largest entries as (value, index), best first; ties keep the lower index. NaN is
/// skipped; fewer than `k` entries gives all of them.
pub fn top_k(xs: &[f32], k: usize, out: &mut Vec<(f32, u32)>) {
    out.clear();
    if k == 0 {
        return;
    }
    let mut threshold = f32::NEG_INFINITY;
    let mut full = false;
    let insert = |out: &mut Vec<(f32, u32)>, v: f32, i: u32| {
        // Position after every entry >= v: equal values keep their (lower) indices first.
        let pos = out.partition_point(|&(w, _)| w >= v);
        if out.len() == k {
            out.pop();
        }
        out.insert(pos, (v, i));
    };
    for (c, chunk) in xs.chunks(LANES).enumerate() {
        if full && chunk_max(chunk) <= threshold {
            continue;
        }
        for (j, &v) in chunk.iter().enumerate() {
            if v.is_nan() || (full && v <= threshold) {
                continue;
            }
            insert(out, v, (c * LANES + j) as u32);
            if out.len() == k {
                full = true;
                threshold = out[k - 1].0;
            }
        }
    }
}

/// Largest value of a chunk of at most [`LANES`] entries (NaN ignored), with a vector max over
/// lanes rather than a chain of scalar ones.
#[inline(always)]
fn chunk_max(chunk: &[f32]) -> f32 {
    if let Ok(c) = <&[f32; LANES]>::try_from(chunk) {
        let mut lanes = *c;
        let mut w = LANES / 2;
        while w > 0 {
            for l in 0..w {
                lanes[l] = lanes[l].max(lanes[l + w]);
            }
            w /= 2;
        }
        lanes[0]
    } else {
        chunk.iter().fold(f32::NEG_INFINITY, |m, &v| m.max(v))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn max_first_takes_the_first_of_equal_maxima_in_any_lane() {
        for n in [1usize, 15, 16, 17, 40, 67, 1000] {
            for at in [0usize, n / 3, n - 1] {
                let mut xs: Vec<f32> = (0..n).map(|i| ((i * 13) % 7) as f32 - 10.0).collect();
                xs[at] = 5.0;
                if at + 5 < n {
                    xs[at + 5] = 5.0;
                }
                if n > 20 {
                    xs[n - 20] = f32::NAN;
                }
                let want = xs.iter().position(|&v| v == 5.0).unwrap();
                assert_eq!(max_first(&xs), (5.0, want), "n={n} at={at}");
            }
        }
        assert_eq!(max_first(&[f32::NAN, f32::NEG_INFINITY, 1.0]), (1.0, 2));
        assert_eq!(
            max_first(&[f32::NAN, f32::NEG_INFINITY]),
            (f32::NEG_INFINITY, 1)
        );
        assert_eq!(max_first(&[f32::NAN]), (f32::NEG_INFINITY, 0));
    }

    #[test]
    fn max_and_sum() {
        let xs: Vec<f32> = (0..37).map(|i| ((i * 7) % 11) as f32 * 0.5).collect();
        let (m, i) = max_first(&xs);
        assert_eq!((m, i), (5.0, 3));
        let want: f32 = xs.iter().map(|&v| (v - m).exp()).sum();
        assert!((exp_sum(&xs, m) - want).abs() < 1e-5);
        assert_eq!(max_first(&[]).0, f32::NEG_INFINITY);
    }

    #[test]
    fn top_k_is_sorted_with_ties_by_index() {
        let xs = [0.1, 0.5, -1.0, 0.5, 0.9, f32::NAN, 0.0, 0.9];
        let mut out = Vec::new();
        top_k(&xs, 3, &mut out);
        assert_eq!(out, vec![(0.9, 4), (0.9, 7), (0.5, 1)]);
        top_k(&xs[..2], 5, &mut out);
        assert_eq!(out, vec![(0.5, 1), (0.1, 0)]);
        let long: Vec<f32> = (0..1000).map(|i| ((i * 7919) % 1009) as f32).collect();
        top_k(&long, 4, &mut out);
        let mut sorted: Vec<(f32, u32)> = long
            .iter()
            .enumerate()
            .map(|(i, &v)| (v, i as u32))
            .collect();
        sorted.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        assert_eq!(out, sorted[..4].to_vec());
    }
}
