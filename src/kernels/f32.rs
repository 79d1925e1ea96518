//! f32 matrix products `x W^T + b` (W row-major `n x k`, as `nn.Linear.weight`), the float32
//! path's every product.
//!
//! A few rows (decoding one sentence at a time) are memory-bound: every weight is read once per
//! step, streamed by all cores over disjoint column ranges, with the dot products vectorised over
//! `k` ([`MAX_ROWS`] rows at most). More rows go to the `gemm` crate's packed kernels.
//!
//! [`matmul_t`] is the checked entry point: it validates every length before any kernel runs,
//! so no caller can make a kernel read or write out of bounds.

use candle_core::{DType, Storage, Tensor};
use rayon::prelude::*;

use super::simd::multiversion;
use crate::error::{Error, Result};

/// Most rows handled by the streamed kernel; [`matmul_t`] uses `gemm` above this.
pub(crate) const MAX_ROWS: usize = 4;

/// Calls `f` with the values of a contiguous CPU f32 tensor (no copy).
pub(crate) fn with_host_slice<R>(t: &Tensor, f: impl FnOnce(&[f32]) -> R) -> Result<R> {
    if t.dtype() != DType::F32 {
        return Err(Error::Internal(format!(
            "a {:?} tensor given to an f32 kernel",
            t.dtype()
        )));
    }
    let (storage, layout) = t.storage_and_layout();
    let Storage::Cpu(cpu) = &*storage else {
        return Err(Error::Internal(
            "a device tensor given to a CPU kernel".into(),
        ));
    };
    if !layout.is_contiguous() {
        return Err(Error::Internal(
            "a non-contiguous tensor given to a CPU kernel".into(),
        ));
    }
    let all = cpu.as_slice::<f32>()?;
    let start = layout.start_offset();
    let values = all
        .get(start..start + t.elem_count())
        .ok_or_else(|| Error::Internal("a tensor's layout runs past its storage".into()))?;
    Ok(f(values))
}

/// `out` (resized to `m x n`) = `x` (`m x k`) times `w` (`n x k`) transposed, plus `bias` (`n`).
pub(crate) fn matmul_t(
    x: &[f32],
    m: usize,
    w: &[f32],
    n: usize,
    k: usize,
    bias: &[f32],
    out: &mut Vec<f32>,
) -> Result<()> {
    if x.len() != m * k || w.len() != n * k || bias.len() != n {
        return Err(Error::Internal(format!(
            "f32 product of {m}x{k} by {n}x{k} given {} inputs, {} weights and {} biases",
            x.len(),
            w.len(),
            bias.len()
        )));
    }
    out.clear();
    if m <= MAX_ROWS {
        out.resize(m * n, 0.0);
        streamed(x, m, w, n, k, bias, out);
        return Ok(());
    }
    for _ in 0..m {
        out.extend_from_slice(bias);
    }
    let threads = rayon::current_num_threads();
    let par = if threads > 1 && m * n * k >= (1 << 20) {
        gemm::Parallelism::Rayon(threads)
    } else {
        gemm::Parallelism::None
    };
    // SAFETY: the lengths were checked above: `x` holds m x k values (row stride k), `w` n x k
    // (read as the k x n right-hand side with column stride k), `out` m x n (row stride n);
    // `gemm` reads and writes only inside those extents.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            out.as_mut_ptr(),
            1,
            n as isize,
            true,
            x.as_ptr(),
            1,
            k as isize,
            w.as_ptr(),
            k as isize,
            1,
            1.0f32,
            1.0f32,
            false,
            false,
            false,
            par,
        );
    }
    Ok(())
}

/// Columns per parallel task of the streamed kernel (at least).
const CHUNK: usize = 512;

/// The streamed kernel (`m <= MAX_ROWS`; lengths checked by the caller): every task owns one
/// column range, as one disjoint slice of each output row.
fn streamed(x: &[f32], m: usize, w: &[f32], n: usize, k: usize, bias: &[f32], out: &mut [f32]) {
    let tasks = n.div_ceil(CHUNK).max(1);
    let width = n.div_ceil(tasks);
    // parts[t]: (first column, task t's slice of every row)
    let mut parts: Vec<(usize, Vec<&mut [f32]>)> = (0..tasks)
        .map(|t| (t * width, Vec::with_capacity(m)))
        .collect();
    for row in out.chunks_mut(n) {
        for (part, cols) in parts.iter_mut().zip(row.chunks_mut(width)) {
            part.1.push(cols);
        }
    }
    let run = |(j0, mut rows): (usize, Vec<&mut [f32]>)| match m {
        1 => cols1(x, w, k, bias, j0, &mut rows),
        2 => cols2(x, w, k, bias, j0, &mut rows),
        3 => cols3(x, w, k, bias, j0, &mut rows),
        _ => cols4(x, w, k, bias, j0, &mut rows),
    };
    if n * k >= 1 << 18 && tasks > 1 {
        parts.into_par_iter().for_each(run);
    } else {
        parts.into_iter().for_each(run);
    }
}

macro_rules! cols_fn {
    ($($m:literal => $name:ident),*) => {
        $(
        multiversion! {
            /// Columns `j0..j0 + rows[0].len()` of every row.
            fn $name(x: &[f32], w: &[f32], k: usize, bias: &[f32], j0: usize, rows: &mut [&mut [f32]]) -> () {
                dots::<$m>(x, w, k, bias, j0, rows)
            }
        }
        )*
    };
}
cols_fn!(1 => cols1, 2 => cols2, 3 => cols3, 4 => cols4);

#[inline(always)]
fn dots<const M: usize>(
    x: &[f32],
    w: &[f32],
    k: usize,
    bias: &[f32],
    j0: usize,
    rows: &mut [&mut [f32]],
) {
    const L: usize = 16;
    // Columns ahead to prefetch when there are several rows of `x`: their longer loop leaves the
    // hardware prefetcher short of the stream of weight rows on a busy machine. With one row the
    // hint only costs (measured: 15 % slower greedy decoding).
    const AHEAD: usize = 4;
    let cols = rows.first().map_or(0, |r| r.len());
    let j1 = j0 + cols;
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
        for (i, (a, row)) in acc.iter().zip(rows.iter_mut()).enumerate() {
            let mut s: f32 = a.iter().sum();
            for c in kc..k {
                s += x[i * k + c] * wr[c];
            }
            row[j - j0] = s + bias[j];
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
    fn matches_a_plain_product_for_few_and_many_rows() {
        for &(m, n, k) in &[
            (1, 1, 1),
            (1, 1000, 37),
            (2, 513, 64),
            (3, 70, 100),
            (4, 1500, 512),
            (5, 33, 17),
            (19, 300, 64),
        ] {
            let x: Vec<f32> = (0..m * k)
                .map(|i| ((i * 31) % 17) as f32 / 17.0 - 0.5)
                .collect();
            let w: Vec<f32> = (0..n * k)
                .map(|i| ((i * 7) % 23) as f32 / 23.0 - 0.5)
                .collect();
            let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
            let mut out = Vec::new();
            matmul_t(&x, m, &w, n, k, &b, &mut out).unwrap();
            assert_eq!(out.len(), m * n);
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

    #[test]
    fn wrong_lengths_are_errors_not_out_of_bounds_accesses() {
        let mut out = Vec::new();
        assert!(matmul_t(&[0.0; 3], 1, &[0.0; 8], 2, 4, &[0.0; 2], &mut out).is_err());
        assert!(matmul_t(&[0.0; 4], 1, &[0.0; 7], 2, 4, &[0.0; 2], &mut out).is_err());
        assert!(matmul_t(&[0.0; 4], 1, &[0.0; 8], 2, 4, &[0.0; 1], &mut out).is_err());
        assert!(matmul_t(&[0.0; 40], 10, &[0.0; 8], 2, 4, &[0.0; 2], &mut out).is_ok());
    }
}
