//! The AVX-512 VNNI kernel (`vpdpbusd`: 64 byte multiply-adds per instruction), and the
//! gathered column sums of the top-logit shortcut.
//!
//! Every function here takes the [`Avx512Vnni`] capability: holding it proves that the CPU has
//! the features they enable. What their callers guarantee besides is in their `# Safety`
//! sections: the loads and stores are unchecked.

use super::{Avx512Vnni, NB};
use std::arch::x86_64::*;

/// How a panel's sums become outputs: `(acc - offsets) * (xs[row] * scales) + bias` (the
/// arithmetic of `finish_row`, in the same order, so that every kernel gives the same bits).
pub(super) struct Finish<'a> {
    /// One scale per output row of the panel.
    pub xs: &'a [f32],
    /// From the panel's first column, padded to whole blocks.
    pub offsets: &'a [i32],
    /// One per valid column.
    pub scales: &'a [f32],
    /// One per valid column (zeros where the product has no bias).
    pub bias: &'a [f32],
}

/// Where a panel's sums go.
pub(super) enum Target<'a, 'o> {
    /// Finished into the outputs, one slice per row of `x`, each as long as the panel's
    /// valid columns.
    Outs(&'a Finish<'a>, &'a mut [&'o mut [f32]]),
    /// Rows `2i` and `2i + 1` of `x` are the high and low parts of output row `i`
    /// ([`super::Rows::Split`]): their sums are combined exactly (in f64) into the f32 that
    /// `finish_split` gives, and finished into `outs[i]` (half as many slices as rows of `x`).
    Split(&'a Finish<'a>, &'a mut [&'o mut [f32]]),
}

/// One column's sums with both parts of a row: `sum_i parts[p][i] * w[i]` for column `jj`
/// of `block` (its 4-input groups gathered 16 at a time).
///
/// # Safety
/// `block` holds one block of `kp` inputs (at least `16 * kp` bytes), both parts at least `kp`
/// bytes, `jj` < 16: the gathers and loads are unchecked. (The CPU's features are proven by the
/// capability.)
#[target_feature(enable = "avx512f,avx512vnni")]
pub(super) unsafe fn column_sums(
    _: Avx512Vnni,
    parts: [&[u8]; 2],
    block: &[i8],
    jj: usize,
    kp: usize,
) -> [i32; 2] {
    // Group g of column jj: bytes 64 g + 4 jj of the block.
    let index = _mm512_add_epi32(
        _mm512_setr_epi32(
            0, 64, 128, 192, 256, 320, 384, 448, 512, 576, 640, 704, 768, 832, 896, 960,
        ),
        _mm512_set1_epi32(4 * jj as i32),
    );
    let (mut h, mut l) = (_mm512_setzero_si512(), _mm512_setzero_si512());
    let groups = kp / 4;
    let (hp, lp, wp) = (
        parts[0].as_ptr(),
        parts[1].as_ptr(),
        block.as_ptr() as *const u8,
    );
    let mut g = 0;
    while g < groups {
        let n = (groups - g).min(16);
        let mask: __mmask16 = if n == 16 {
            0xFFFF
        } else {
            ((1u32 << n) - 1) as u16
        };
        // SAFETY: the `n` lanes gathered read bytes `64 * (g + t) + 4 * jj..+ 4` for `t < n`,
        // `g + n <= kp / 4`: below `16 * kp` (`jj < 16`), inside `block`; the masked loads read
        // `4 * (g + n) <= kp` bytes of each part (the contract).
        let (w, xh, xl) = unsafe {
            (
                _mm512_mask_i32gather_epi32::<1>(
                    _mm512_setzero_si512(),
                    mask,
                    index,
                    wp.add(64 * g) as *const _,
                ),
                _mm512_maskz_loadu_epi32(mask, hp.add(4 * g) as *const i32),
                _mm512_maskz_loadu_epi32(mask, lp.add(4 * g) as *const i32),
            )
        };
        h = _mm512_dpbusd_epi32(h, xh, w);
        l = _mm512_dpbusd_epi32(l, xl, w);
        g += n;
    }
    [_mm512_reduce_add_epi32(h), _mm512_reduce_add_epi32(l)]
}

/// `rows` rows `x` of the panel times `nb` blocks of weights `w`, into `target`.
///
/// # Safety
/// `rows` is 1 to 6 and `nb` 1 to 4; `x` holds `rows` rows of `kp` bytes, `w` `nb` blocks of
/// `16 * kp` bytes. `outs` has `rows` slices (`rows / 2` with `Target::Split`, `rows` even), all
/// of the same length `cols` <= 16 * `nb`, `f.xs` one scale per slice of `outs`, `f.offsets`
/// `16 * nb` entries, and `f.scales` and `f.bias` at least `cols` entries: the kernel's loads and
/// stores are unchecked. (The CPU's features are proven by the capability.)
pub(super) unsafe fn panel(
    isa: Avx512Vnni,
    x: &[u8],
    w: &[i8],
    kp: usize,
    nb: usize,
    rows: usize,
    target: Target,
) {
    // SAFETY: `R == rows` and `B == nb` in every arm (`nb` is 1 to 4, `rows` 1 to 6), the rest
    // is this function's contract.
    unsafe {
        match (rows, nb) {
            (6, 4) => kernel::<6, 4>(isa, x, w, kp, target),
            (m, 4) => dispatch_rows::<4>(isa, m, x, w, kp, target),
            (m, 3) => dispatch_rows::<3>(isa, m, x, w, kp, target),
            (m, 2) => dispatch_rows::<2>(isa, m, x, w, kp, target),
            (m, _) => dispatch_rows::<1>(isa, m, x, w, kp, target),
        }
    }
}

/// # Safety
/// As [`panel`], with `m` rows and `B == nb`.
unsafe fn dispatch_rows<const B: usize>(
    isa: Avx512Vnni,
    m: usize,
    x: &[u8],
    w: &[i8],
    kp: usize,
    target: Target,
) {
    // SAFETY: `R == m` in every arm (`m` is 1 to 6), the rest is this function's contract.
    unsafe {
        match m {
            1 => kernel::<1, B>(isa, x, w, kp, target),
            2 => kernel::<2, B>(isa, x, w, kp, target),
            3 => kernel::<3, B>(isa, x, w, kp, target),
            4 => kernel::<4, B>(isa, x, w, kp, target),
            5 => kernel::<5, B>(isa, x, w, kp, target),
            _ => kernel::<6, B>(isa, x, w, kp, target),
        }
    }
}

/// `R` rows by `B` blocks of 16 columns, sums in registers, finished straight into the
/// outputs or stored in the tile.
///
/// # Safety
/// As [`panel`], with `R == rows` and `B == nb`.
#[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
#[allow(clippy::needless_range_loop)]
unsafe fn kernel<const R: usize, const B: usize>(
    _: Avx512Vnni,
    x: &[u8],
    w: &[i8],
    kp: usize,
    target: Target,
) {
    let mut a = [[_mm512_setzero_si512(); B]; R];
    let wp = w.as_ptr();
    let xp = x.as_ptr();
    let block = NB * kp;
    for k4 in 0..kp / 4 {
        let mut wv = [_mm512_setzero_si512(); B];
        for (b, v) in wv.iter_mut().enumerate() {
            // SAFETY: `b < B == nb` blocks of `block` bytes, `64 * k4 + 64 <= 16 * kp == block`.
            *v = unsafe { _mm512_loadu_si512(wp.add(b * block + k4 * 64) as *const _) };
        }
        for (i, ar) in a.iter_mut().enumerate() {
            // SAFETY: row `i < R == rows` of `kp` bytes, `4 * k4 + 4 <= kp`.
            let xv = _mm512_set1_epi32(unsafe {
                (xp.add(i * kp + k4 * 4) as *const i32).read_unaligned()
            });
            for (b, av) in ar.iter_mut().enumerate() {
                *av = _mm512_dpbusd_epi32(*av, xv, wv[b]);
            }
        }
    }
    // The sums to memory once, for the finish's indexing by row: into an uninitialised
    // array, so that `a` itself can stay in registers (read by a runtime row index, `a`
    // was given a stack slot and zeroed there, a 1.5 KB memset per call).
    let mut sums = [[std::mem::MaybeUninit::<__m512i>::uninit(); B]; R];
    for (s, ar) in sums.iter_mut().zip(&a) {
        for (v, &av) in s.iter_mut().zip(ar) {
            v.write(av);
        }
    }
    // SAFETY: every element was written just above, and `MaybeUninit<T>` has `T`'s layout.
    // A view, not `assume_init` by value: `sums.map(..)` copied the 1.5 KB (a memmove call
    // per kernel call, 5 % of int8 beam-4 batched time).
    let a = unsafe { &*(sums.as_ptr() as *const [[__m512i; B]; R]) };
    let (f, outs, split) = match target {
        Target::Outs(f, outs) => (f, outs, false),
        Target::Split(f, outs) => (f, outs, true),
    };
    // Straight from the registers to the outputs.
    let cols = outs.first().map_or(0, |o| o.len());
    let high = _mm512_set1_pd(super::HIGH as f64);
    for b in 0..B {
        let lo = b * NB;
        if lo >= cols {
            break;
        }
        let valid = (cols - lo).min(NB);
        let mask: __mmask16 = if valid == NB {
            0xFFFF
        } else {
            ((1u32 << valid) - 1) as u16
        };
        // SAFETY: `f.offsets` holds `16 * nb` entries and `lo + 16 <= 16 * B`; the masked loads
        // read `lo + valid <= cols` entries of `f.scales` and `f.bias` (at least `cols` each).
        let (off, sc, bias) = unsafe {
            (
                _mm512_loadu_si512(f.offsets.as_ptr().add(lo) as *const _),
                _mm512_maskz_loadu_ps(mask, f.scales.as_ptr().add(lo)),
                _mm512_maskz_loadu_ps(mask, f.bias.as_ptr().add(lo)),
            )
        };
        // The high and low parts' sums as HIGH * h + l, in f64 (exact: below 2^53) eight
        // lanes at a time, rounded to f32 once.
        let combine = |h: __m512i, l: __m512i| {
            let (h, l) = (_mm512_sub_epi32(h, off), _mm512_sub_epi32(l, off));
            let half = |h: __m256i, l: __m256i| {
                let t = _mm512_fmadd_pd(_mm512_cvtepi32_pd(h), high, _mm512_cvtepi32_pd(l));
                _mm512_cvtpd_ps(t)
            };
            let low8 = half(_mm512_castsi512_si256(h), _mm512_castsi512_si256(l));
            let high8 = half(
                _mm512_extracti64x4_epi64::<1>(h),
                _mm512_extracti64x4_epi64::<1>(l),
            );
            let both = _mm512_insertf64x4::<1>(
                _mm512_castpd256_pd512(_mm256_castps_pd(low8)),
                _mm256_castps_pd(high8),
            );
            _mm512_castpd_ps(both)
        };
        let per_out = if split { 2 } else { 1 };
        for (o, out) in outs.iter_mut().enumerate().take(R / per_out) {
            let v = if split {
                combine(a[2 * o][b], a[2 * o + 1][b])
            } else {
                _mm512_cvtepi32_ps(_mm512_sub_epi32(a[o][b], off))
            };
            let scale = _mm512_mul_ps(_mm512_set1_ps(f.xs[o]), sc);
            let r = _mm512_add_ps(_mm512_mul_ps(v, scale), bias);
            // SAFETY: every slice of `outs` holds `cols >= lo + valid` values; `valid` lanes are
            // stored.
            unsafe { _mm512_mask_storeu_ps(out.as_mut_ptr().add(lo), mask, r) };
        }
    }
}
