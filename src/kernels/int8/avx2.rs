//! The AVX2 kernel: activations and weights widened to i16, multiplied by `vpmaddwd`.
//!
//! Every function here takes the [`Avx2`] capability: holding it proves that the CPU has AVX2.
//! [`panel`], the entry point, checks the lengths of what it hands on; the functions under it
//! load unchecked, and say in their `# Safety` sections what their callers guarantee.

use super::{Avx2, MR, NB, PANEL};
use std::arch::x86_64::*;

/// An activation element the AVX2 kernel takes: `q + 128` bytes or signed 16-bit values.
pub(super) trait Act: Copy {
    /// The most 4-input steps whose pair sums fit an i32 lane.
    const STEPS: usize;
    /// Inputs `4 * k4..4 * k4 + 4` of the row at `p`, as i16, repeated four times.
    ///
    /// # Safety
    /// `p` points at 4 readable elements. (The CPU's AVX2 is proven by the capability.)
    unsafe fn four(isa: Avx2, p: *const Self) -> __m256i;
}

impl Act for u8 {
    // (255 * 127 * 2) per step: never near 2^31 for any k.
    const STEPS: usize = usize::MAX;
    #[target_feature(enable = "avx2")]
    unsafe fn four(_: Avx2, p: *const u8) -> __m256i {
        // SAFETY: 4 bytes readable (the caller's contract).
        let v = unsafe { (p as *const u32).read_unaligned() };
        _mm256_cvtepu8_epi16(_mm_set1_epi32(v as i32))
    }
}

impl Act for i16 {
    // |a| <= 254 * 127 + 127, |w| <= 127: 8_225_790 per step, 261 steps below 2^31.
    const STEPS: usize = 256;
    #[target_feature(enable = "avx2")]
    unsafe fn four(_: Avx2, p: *const i16) -> __m256i {
        // SAFETY: 4 values (8 bytes) readable (the caller's contract).
        let v = unsafe { (p as *const i64).read_unaligned() };
        _mm256_set1_epi64x(v)
    }
}

/// `mr` rows of `x` times `nb` blocks of `w`, summed into `acc`: block by block, in groups
/// of at most 3 rows that share each widened weight vector.
///
/// `x` holds `mr` <= 6 rows of `kp` elements and `w` `nb` <= 4 blocks of `16 * kp` bytes
/// (each row group and block is cut from them with a bounds check: shorter ones panic). The
/// capability proves the CPU has AVX2.
pub(super) fn panel<A: Act>(
    isa: Avx2,
    x: &[A],
    w: &[i8],
    kp: usize,
    mr: usize,
    nb: usize,
    acc: &mut [[i64; NB * PANEL]; MR],
) {
    // Groups: 1..=3 rows alone, 4 as 2 + 2, 5 as 3 + 2, 6 as 3 + 3.
    let first = if mr <= 3 { mr } else { mr.div_ceil(2) };
    for b in 0..nb {
        let wb = &w[b * NB * kp..(b + 1) * NB * kp];
        let mut r0 = 0;
        for g in [first, mr - first] {
            if g == 0 {
                continue;
            }
            let xs = &x[r0 * kp..(r0 + g) * kp];
            // SAFETY: `xs` holds `g` (`G`: 1 to 3) rows of `kp` and `wb` one block (both cut,
            // checked, just above); `r0 + G <= mr <= MR` and `b < nb <= PANEL`.
            unsafe {
                match g {
                    1 => block::<A, 1>(isa, xs, wb, kp, r0, b, acc),
                    2 => block::<A, 2>(isa, xs, wb, kp, r0, b, acc),
                    _ => block::<A, 3>(isa, xs, wb, kp, r0, b, acc),
                }
            }
            r0 += g;
        }
    }
}

/// `G` rows against one block of 16 columns, into `acc[r0..r0 + G]` at columns `16 * b..`.
/// Each 16-byte quarter of a 64-byte group (4 columns x 4 inputs) is widened to i16 once and
/// multiplied with every row's 4 activations by `vpmaddwd`, giving pair sums that are added
/// up in i32 lanes for at most `A::STEPS` steps at a time, then into `acc`.
///
/// # Safety
/// `x` holds `G` rows of `kp` elements, `w` `16 * kp` bytes: the loads are unchecked. (The
/// CPU's AVX2 is proven by the capability.)
#[target_feature(enable = "avx2")]
unsafe fn block<A: Act, const G: usize>(
    isa: Avx2,
    x: &[A],
    w: &[i8],
    kp: usize,
    r0: usize,
    b: usize,
    acc: &mut [[i64; NB * PANEL]; MR],
) {
    let (xp, wp) = (x.as_ptr(), w.as_ptr());
    let steps = kp / 4;
    let mut k0 = 0;
    while k0 < steps {
        let k1 = steps.min(k0.saturating_add(A::STEPS));
        let mut sums = [[_mm256_setzero_si256(); 4]; G];
        for k4 in k0..k1 {
            let mut a16 = [_mm256_setzero_si256(); G];
            for (g, a) in a16.iter_mut().enumerate() {
                // SAFETY: g * kp + 4 * k4 + 4 <= G * kp <= x.len().
                *a = unsafe { A::four(isa, xp.add(g * kp + k4 * 4)) };
            }
            for q in 0..4 {
                // SAFETY: 64 * k4 + 16 * q + 16 <= 16 * kp = w.len().
                let wv = unsafe { _mm_loadu_si128(wp.add(k4 * 64 + q * 16) as *const _) };
                let w16 = _mm256_cvtepi8_epi16(wv);
                for (s, a) in sums.iter_mut().zip(&a16) {
                    s[q] = _mm256_add_epi32(s[q], _mm256_madd_epi16(*a, w16));
                }
            }
        }
        for (g, s) in sums.iter().enumerate() {
            let out = &mut acc[r0 + g][b * NB..(b + 1) * NB];
            for (q, &v) in s.iter().enumerate() {
                let mut lanes = [0i32; 8];
                // SAFETY: `lanes` holds 8 values.
                unsafe { _mm256_storeu_si256(lanes.as_mut_ptr() as *mut _, v) };
                for c in 0..4 {
                    out[q * 4 + c] += lanes[2 * c] as i64 + lanes[2 * c + 1] as i64;
                }
            }
        }
        k0 = k1;
    }
}
