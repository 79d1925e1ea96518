//! f32 products of a few rows by a weight matrix (`x W^T`, W row-major `n x k`), the memory-bound
//! case of decoding one sentence at a time: every weight is read once per step, streamed by all
//! cores, with the dot products vectorised over `k`. Larger batches go to the `gemm` crate.

use rayon::prelude::*;

use super::simd::multiversion;

/// Most rows handled by [`small_matmul`]; callers use `gemm` above this.
pub const MAX_ROWS: usize = 4;

#[derive(Clone, Copy)]
struct SendPtr(*mut f32);
// SAFETY: used to write disjoint column ranges from different threads.
unsafe impl Send for SendPtr {}
unsafe impl Sync for SendPtr {}

/// `out` (m x n) = `x` (m x k) `w`^T + `bias` for m <= [`MAX_ROWS`].
pub fn small_matmul(
    x: &[f32],
    m: usize,
    w: &[f32],
    n: usize,
    k: usize,
    bias: &[f32],
    out: &mut [f32],
) {
    debug_assert!(m <= MAX_ROWS && x.len() == m * k && w.len() >= n * k && out.len() == m * n);
    const CHUNK: usize = 512;
    let ptr = SendPtr(out.as_mut_ptr());
    let run = |c: usize| {
        let j0 = c * CHUNK;
        let j1 = (j0 + CHUNK).min(n);
        let p = ptr;
        // SAFETY: chunks write disjoint columns j0..j1 of each row.
        unsafe { columns(x, m, w, n, k, bias, j0, j1, p.0) };
    };
    let chunks = n.div_ceil(CHUNK);
    if n * k >= 1 << 18 && chunks > 1 {
        (0..chunks).into_par_iter().for_each(run);
    } else {
        (0..chunks).for_each(run);
    }
}

#[allow(clippy::too_many_arguments)]
unsafe fn columns(
    x: &[f32],
    m: usize,
    w: &[f32],
    n: usize,
    k: usize,
    bias: &[f32],
    j0: usize,
    j1: usize,
    out: *mut f32,
) {
    let out = std::slice::from_raw_parts_mut(out, m * n);
    match m {
        1 => cols::<1>(x, w, n, k, bias, j0, j1, out),
        2 => cols::<2>(x, w, n, k, bias, j0, j1, out),
        3 => cols::<3>(x, w, n, k, bias, j0, j1, out),
        _ => cols::<4>(x, w, n, k, bias, j0, j1, out),
    }
}

macro_rules! cols_fn {
    ($($m:literal => $name:ident),*) => {
        #[allow(clippy::too_many_arguments)]
        fn cols<const M: usize>(x: &[f32], w: &[f32], n: usize, k: usize, bias: &[f32], j0: usize, j1: usize, out: &mut [f32]) {
            match M {
                $($m => $name(x, w, n, k, bias, j0, j1, out),)*
                _ => unreachable!(),
            }
        }
        $(
        multiversion! {
            #[allow(clippy::too_many_arguments)]
            fn $name(x: &[f32], w: &[f32], n: usize, k: usize, bias: &[f32], j0: usize, j1: usize, out: &mut [f32]) -> () {
                dots::<$m>(x, w, n, k, bias, j0, j1, out)
            }
        }
        )*
    };
}
cols_fn!(1 => cols1, 2 => cols2, 3 => cols3, 4 => cols4);

#[inline(always)]
#[allow(clippy::too_many_arguments)]
fn dots<const M: usize>(
    x: &[f32],
    w: &[f32],
    n: usize,
    k: usize,
    bias: &[f32],
    j0: usize,
    j1: usize,
    out: &mut [f32],
) {
    const L: usize = 16;
    // Columns ahead to prefetch when there are several rows of `x`: their longer loop leaves the
    // hardware prefetcher short of the stream of weight rows on a busy machine. With one row the
    // hint only costs (measured: 15 % slower greedy decoding).
    const AHEAD: usize = 4;
    let kc = k / L * L;
    for j in j0..j1 {
        let wr = &w[j * k..(j + 1) * k];
        let ahead = w.as_ptr().wrapping_add((j + AHEAD).min(j1 - 1) * k);
        let mut acc = [[0f32; L]; M];
        for c in (0..kc).step_by(L) {
            if M > 1 {
                prefetch(ahead.wrapping_add(c));
            }
            let wc = &wr[c..c + L];
            for (i, a) in acc.iter_mut().enumerate() {
                let xc = &x[i * k + c..i * k + c + L];
                for l in 0..L {
                    a[l] += xc[l] * wc[l];
                }
            }
        }
        for (i, a) in acc.iter().enumerate() {
            let mut s: f32 = a.iter().sum();
            for c in kc..k {
                s += x[i * k + c] * wr[c];
            }
            out[i * n + j] = s + bias[j];
        }
    }
}

/// A hint to bring the cache line at `p` closer; `p` need not be valid.
#[inline(always)]
fn prefetch(p: *const f32) {
    #[cfg(target_arch = "x86_64")]
    // SAFETY: prefetching never faults, whatever the address.
    unsafe {
        std::arch::x86_64::_mm_prefetch(p as *const i8, std::arch::x86_64::_MM_HINT_T0)
    };
    #[cfg(not(target_arch = "x86_64"))]
    let _ = p;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_plain_product() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (1, 1000, 37),
            (2, 513, 64),
            (3, 70, 100),
            (4, 1500, 512),
        ] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 31) % 17) as f32 / 17.0 - 0.5)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 7) % 23) as f32 / 23.0 - 0.5)
                .collect();
            let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
            let mut out = vec![0f32; m * n];
            small_matmul(&x, m, &w, n, k, &b, &mut out);
            for i in 0..m {
                for j in 0..n {
                    let want: f32 = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum::<f32>() + b[j];
                    assert!(
                        (out[i * n + j] - want).abs() < 1e-4 * (k as f32),
                        "{m}x{n}x{k} at {i},{j}"
                    );
                }
            }
        }
    }
}
