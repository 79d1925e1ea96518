//! Attention over cached keys and values, stored in f32 (the exact path) or in f16 (with int8
//! weights: decoding many rows at once is bound by reading these caches, and f16 halves the bytes).
//!
//! f16 keeps 11 significant bits, against the 8 that int8 activations keep, and converting back
//! to f32 is exact; rounding to f16 is round-to-nearest-even on every CPU (F16C, or the `half`
//! crate's software conversion where the CPU has no F16C), so results do not depend on the CPU.
//! Values beyond f16's range are stored as its largest finite value, never as infinity.

use half::f16;

use crate::kernels::simd::{level, Level};

/// Positions per block of attention scores; key capacities are multiples of it.
pub(crate) const BLOCK: usize = 16;

/// How cached keys and values are stored.
pub(crate) trait KvElem: Copy + Default + Send + Sync + std::fmt::Debug + 'static {
    /// Appends `src`, converted, to `dst`.
    fn store(src: &[f32], dst: &mut Vec<Self>);

    /// The stored value as f32.
    fn get(self) -> f32;

    /// Scores, softmax and weighted values for every head (see [`attend_body`]).
    #[allow(clippy::too_many_arguments)]
    fn attend(
        q: &[f32],
        kt: &[Self],
        cap: usize,
        len: usize,
        values: &[Self],
        heads: usize,
        out: &mut [f32],
        scores: &mut [f32],
    );
}

impl KvElem for f32 {
    fn store(src: &[f32], dst: &mut Vec<Self>) {
        dst.extend_from_slice(src);
    }

    fn get(self) -> f32 {
        self
    }

    fn attend(
        q: &[f32],
        kt: &[f32],
        cap: usize,
        len: usize,
        values: &[f32],
        heads: usize,
        out: &mut [f32],
        scores: &mut [f32],
    ) {
        match level() {
            // SAFETY: the CPU was checked to have these features.
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => unsafe {
                x86::f32_avx512(q, kt, cap, len, values, heads, out, scores)
            },
            // SAFETY: the CPU was checked to have AVX2 and FMA (`Level::Avx2`).
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 => unsafe { x86::f32_avx2(q, kt, cap, len, values, heads, out, scores) },
            _ => attend_body::<LoadF32>(q, kt, cap, len, values, heads, out, scores),
        }
    }
}

impl KvElem for f16 {
    fn get(self) -> f32 {
        self.to_f32_const()
    }

    fn store(src: &[f32], dst: &mut Vec<Self>) {
        use half::slice::HalfFloatSliceExt;
        let n0 = dst.len();
        dst.resize(n0 + src.len(), f16::ZERO);
        let new = &mut dst[n0..];
        new.convert_from_f32_slice(src);
        for (d, &s) in new.iter_mut().zip(src) {
            if d.is_infinite() && s.is_finite() {
                *d = if s > 0.0 { f16::MAX } else { f16::MIN };
            }
        }
    }

    fn attend(
        q: &[f32],
        kt: &[f16],
        cap: usize,
        len: usize,
        values: &[f16],
        heads: usize,
        out: &mut [f32],
        scores: &mut [f32],
    ) {
        match level() {
            // SAFETY: the CPU was checked to have these features (AVX-512F includes F16C).
            #[cfg(target_arch = "x86_64")]
            Level::Avx512 => unsafe {
                x86::f16_avx512(q, kt, cap, len, values, heads, out, scores)
            },
            // SAFETY: the CPU was checked to have AVX2 and FMA (`Level::Avx2`), and F16C here.
            #[cfg(target_arch = "x86_64")]
            Level::Avx2 if std::is_x86_feature_detected!("f16c") => unsafe {
                x86::f16_avx2(q, kt, cap, len, values, heads, out, scores)
            },
            _ => attend_body::<LoadF16Soft>(q, kt, cap, len, values, heads, out, scores),
        }
    }
}

/// Reads 16 stored elements as f32.
trait Load {
    type E: Copy;
    /// `s` holds at least 16 elements.
    fn load16(s: &[Self::E]) -> [f32; 16];
    fn one(e: Self::E) -> f32;
}

struct LoadF32;
impl Load for LoadF32 {
    type E = f32;
    #[inline(always)]
    fn load16(s: &[f32]) -> [f32; 16] {
        s.get(..16)
            .and_then(|s| s.try_into().ok())
            .unwrap_or([0.0; 16])
    }
    #[inline(always)]
    fn one(e: f32) -> f32 {
        e
    }
}

/// f16 in software (CPUs without F16C).
struct LoadF16Soft;
impl Load for LoadF16Soft {
    type E = f16;
    #[inline(always)]
    fn load16(s: &[f16]) -> [f32; 16] {
        let mut out = [0f32; 16];
        for (o, &v) in out.iter_mut().zip(s) {
            *o = v.to_f32_const();
        }
        out
    }
    #[inline(always)]
    fn one(e: f16) -> f32 {
        e.to_f32_const()
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use super::{attend_body, Load, LoadF32};
    use half::f16;
    use std::arch::x86_64::*;

    /// f16 with AVX-512's conversion: 16 elements per instruction.
    pub(super) struct LoadF16Avx512;
    impl Load for LoadF16Avx512 {
        type E = f16;
        #[inline(always)]
        fn load16(s: &[f16]) -> [f32; 16] {
            let s = &s[..16];
            // SAFETY: only compiled into functions that enable avx512f (checked at run time by
            // the caller); `s` holds 16 elements of 2 bytes.
            unsafe {
                let v = _mm512_cvtph_ps(_mm256_loadu_si256(s.as_ptr() as *const __m256i));
                std::mem::transmute::<__m512, [f32; 16]>(v)
            }
        }
        #[inline(always)]
        fn one(e: f16) -> f32 {
            e.to_f32_const()
        }
    }

    /// f16 with F16C: 8 elements per instruction.
    pub(super) struct LoadF16C;
    impl Load for LoadF16C {
        type E = f16;
        #[inline(always)]
        fn load16(s: &[f16]) -> [f32; 16] {
            let s = &s[..16];
            // SAFETY: only compiled into functions that enable f16c (checked at run time by the
            // caller); `s` holds 16 elements of 2 bytes.
            unsafe {
                let p = s.as_ptr() as *const __m128i;
                let a = _mm256_cvtph_ps(_mm_loadu_si128(p));
                let b = _mm256_cvtph_ps(_mm_loadu_si128(p.add(1)));
                std::mem::transmute::<[__m256; 2], [f32; 16]>([a, b])
            }
        }
        #[inline(always)]
        fn one(e: f16) -> f32 {
            e.to_f32_const()
        }
    }

    macro_rules! variant {
        ($name:ident, $features:literal, $load:ty, $e:ty) => {
            /// [`attend_body`] compiled for these CPU features.
            ///
            /// # Safety
            /// The CPU has every feature this function enables; the slices are as
            /// [`attend_body`] reads them (checked by [`attend_row`]).
            #[allow(clippy::too_many_arguments)]
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(
                q: &[f32],
                kt: &[$e],
                cap: usize,
                len: usize,
                values: &[$e],
                heads: usize,
                out: &mut [f32],
                scores: &mut [f32],
            ) {
                attend_body::<$load>(q, kt, cap, len, values, heads, out, scores)
            }
        };
    }
    variant!(f32_avx512, "avx512f,avx2,fma", LoadF32, f32);
    variant!(f32_avx2, "avx2,fma", LoadF32, f32);
    variant!(f16_avx512, "avx512f,avx2,fma,f16c", LoadF16Avx512, f16);
    variant!(f16_avx2, "avx2,fma,f16c", LoadF16C, f16);
}

/// Attention keys stored feature-major (`d` rows of `cap` positions, `cap` a multiple of
/// [`BLOCK`], unused positions zero), so that a query's scores over all positions are `hd`
/// vectorised multiply-adds along the positions, with no horizontal sums per position.
#[derive(Debug, Default)]
pub(crate) struct KeysT<E = f32> {
    pub(crate) data: Vec<E>,
    pub(crate) d: usize,
    pub(crate) cap: usize,
    pub(crate) len: usize,
}

impl<E: KvElem> Clone for KeysT<E> {
    fn clone(&self) -> Self {
        KeysT {
            data: self.data.clone(),
            d: self.d,
            cap: self.cap,
            len: self.len,
        }
    }

    /// Reuses this buffer's allocation (beam reordering copies rows every step).
    fn clone_from(&mut self, source: &Self) {
        self.data.clone_from(&source.data);
        self.d = source.d;
        self.cap = source.cap;
        self.len = source.len;
    }
}

impl<E: KvElem> KeysT<E> {
    /// From `len` keys laid out position-major (`len x d`).
    pub(crate) fn from_rows(rows: &[f32], d: usize) -> Self {
        let len = rows.len() / d.max(1);
        let cap = len.div_ceil(BLOCK) * BLOCK;
        let mut stored = Vec::with_capacity(rows.len());
        E::store(rows, &mut stored);
        let mut k = KeysT {
            data: vec![E::default(); d * cap],
            d,
            cap,
            len: 0,
        };
        for r in stored.chunks_exact(d.max(1)) {
            k.push(r);
        }
        k
    }

    /// Appends one key, already converted.
    pub(crate) fn push(&mut self, key: &[E]) {
        if self.d == 0 {
            self.d = key.len();
        }
        if self.len == self.cap {
            let cap = (self.cap * 2).max(BLOCK);
            let mut data = vec![E::default(); self.d * cap];
            for f in 0..self.d {
                data[f * cap..f * cap + self.len]
                    .copy_from_slice(&self.data[f * self.cap..f * self.cap + self.len]);
            }
            self.data = data;
            self.cap = cap;
        }
        for (f, &v) in key.iter().enumerate() {
            self.data[f * self.cap + self.len] = v;
        }
        self.len += 1;
    }
}

/// One query row (all heads) attending over the first `keys.len` positions.
pub(crate) fn attend_row<E: KvElem>(
    q: &[f32],
    keys: &KeysT<E>,
    values: &[E],
    heads: usize,
    out: &mut [f32],
    scores: &mut Vec<f32>,
) {
    if keys.len == 0 || heads == 0 || !keys.cap.is_multiple_of(BLOCK) {
        out.iter_mut().for_each(|o| *o = 0.0);
        return;
    }
    // Whole blocks of scores: the padding positions get scores too, and are then ignored.
    scores.resize(keys.len.div_ceil(BLOCK) * BLOCK, 0.0);
    E::attend(
        q, &keys.data, keys.cap, keys.len, values, heads, out, scores,
    )
}

/// The attention probabilities of one query row over the first `keys.len` positions, averaged
/// over the heads, into `out[..keys.len]`: how much the token being predicted looks at each
/// source position (its alignment). A plain loop: it runs for one layer, and only when
/// alignments are asked for.
pub(crate) fn attention_probs<E: KvElem>(
    q: &[f32],
    keys: &KeysT<E>,
    heads: usize,
    out: &mut [f32],
) {
    let (d, len, cap) = (q.len(), keys.len, keys.cap);
    let n = len.min(out.len());
    let out = &mut out[..n];
    out.iter_mut().for_each(|o| *o = 0.0);
    if heads == 0 || len == 0 || keys.data.len() < d * cap {
        return;
    }
    let hd = d / heads;
    let scaling = (hd as f64).powf(-0.5) as f32;
    let mut scores = vec![0f32; out.len()];
    for h in 0..heads {
        for (j, s) in scores.iter_mut().enumerate() {
            let mut acc = 0f32;
            for (i, &qi) in q.iter().enumerate().take((h + 1) * hd).skip(h * hd) {
                acc += qi * scaling * keys.data[i * cap + j].get();
            }
            *s = acc;
        }
        let max = scores.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let sum: f32 = scores.iter().map(|&s| (s - max).exp()).sum();
        for (o, &s) in out.iter_mut().zip(&scores) {
            *o += (s - max).exp() / sum / heads as f32;
        }
    }
}

/// Scores, softmax and weighted values for every head. The loops keep four independent
/// accumulators, so that they are bound by loads rather than by the latency of one chain of
/// additions.
#[allow(clippy::too_many_arguments)]
#[inline(always)]
fn attend_body<Ld: Load>(
    q: &[f32],
    kt: &[Ld::E],
    cap: usize,
    len: usize,
    values: &[Ld::E],
    heads: usize,
    out: &mut [f32],
    scores: &mut [f32],
) {
    const L: usize = BLOCK;
    let d = q.len();
    let hd = d / heads;
    let scaling = (hd as f64).powf(-0.5) as f32;
    let mut qs = [0f32; 256];
    let qs = if hd <= qs.len() {
        &mut qs[..hd]
    } else {
        return;
    };
    for h in 0..heads {
        // q is scaled before the product, as the reference does.
        for (a, &b) in qs.iter_mut().zip(&q[h * hd..(h + 1) * hd]) {
            *a = b * scaling;
        }
        let keys = &kt[h * hd * cap..(h + 1) * hd * cap];
        for (blk, sc) in scores.chunks_exact_mut(L).enumerate() {
            let j0 = blk * L;
            let mut acc = [[0f32; L]; 4];
            let mut quads = qs.chunks_exact(4);
            let mut i = 0;
            for qq in &mut quads {
                for (t, a) in acc.iter_mut().enumerate() {
                    let base = (i + t) * cap + j0;
                    let row = Ld::load16(&keys[base..base + L]);
                    for l in 0..L {
                        a[l] += qq[t] * row[l];
                    }
                }
                i += 4;
            }
            for &qi in quads.remainder() {
                let base = i * cap + j0;
                let row = Ld::load16(&keys[base..base + L]);
                for l in 0..L {
                    acc[0][l] += qi * row[l];
                }
                i += 1;
            }
            for (l, s) in sc.iter_mut().enumerate() {
                *s = (acc[0][l] + acc[1][l]) + (acc[2][l] + acc[3][l]);
            }
        }
        let live = &mut scores[..len];
        // Softmax with one accumulator per lane, so that it vectorises.
        let mut lanes = [f32::NEG_INFINITY; L];
        let mut blocks = live.chunks_exact(L);
        for b in &mut blocks {
            for l in 0..L {
                lanes[l] = lanes[l].max(b[l]);
            }
        }
        let max = blocks
            .remainder()
            .iter()
            .chain(&lanes)
            .fold(f32::NEG_INFINITY, |m, &v| m.max(v));
        let mut sums = [0f32; L];
        let mut blocks = live.chunks_exact_mut(L);
        for b in &mut blocks {
            for l in 0..L {
                b[l] = crate::kernels::exp::exp_nonpos(b[l] - max);
                sums[l] += b[l];
            }
        }
        let mut sum: f32 = sums.iter().sum();
        for s in blocks.into_remainder() {
            *s = crate::kernels::exp::exp_nonpos(*s - max);
            sum += *s;
        }
        let inv = 1.0 / sum;
        for s in live.iter_mut() {
            *s *= inv;
        }
        // Weighted values: 64 features (four registers) at a time over the positions.
        let o = &mut out[h * hd..(h + 1) * hd];
        let mut c0 = 0;
        while c0 + 4 * L <= hd {
            let mut acc = [[0f32; L]; 4];
            for (j, &p) in live.iter().enumerate() {
                let base = j * d + h * hd + c0;
                let v = &values[base..base + 4 * L];
                for (t, a) in acc.iter_mut().enumerate() {
                    let vt = Ld::load16(&v[t * L..]);
                    for l in 0..L {
                        a[l] += p * vt[l];
                    }
                }
            }
            for (t, a) in acc.iter().enumerate() {
                o[c0 + t * L..c0 + (t + 1) * L].copy_from_slice(a);
            }
            c0 += 4 * L;
        }
        for c in c0..hd {
            let mut acc = 0f32;
            for (j, &p) in live.iter().enumerate() {
                acc += p * Ld::one(values[j * d + h * hd + c]);
            }
            o[c] = acc;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_clone_from_keeps_every_key() {
        let mut a = KeysT::<f32>::default();
        for p in 0..20 {
            a.push(&[p as f32, -(p as f32)]);
        }
        let mut b = KeysT::from_rows(&[9.0, 9.0], 2);
        b.clone_from(&a);
        assert_eq!((b.len, b.cap, b.d), (20, a.cap, 2));
        assert_eq!(b.data, a.data);
        assert_eq!(b.data[19], 19.0);
        assert_eq!(b.data[b.cap + 19], -19.0);
    }

    /// f16 storage rounds to nearest, saturates instead of overflowing, and keeps NaN.
    #[test]
    fn f16_store_rounds_and_saturates() {
        let src = [
            1.0f32,
            1.0 + 1.0 / 4096.0,
            70_000.0,
            -1e9,
            0.1,
            f32::NAN,
            f32::INFINITY,
        ];
        let mut dst = Vec::new();
        f16::store(&src, &mut dst);
        let back: Vec<f32> = dst.iter().map(|v| v.to_f32()).collect();
        assert_eq!(back[0], 1.0);
        assert_eq!(back[1], 1.0, "a quarter of an f16 step rounds down");
        assert_eq!(back[2], 65504.0);
        assert_eq!(back[3], -65504.0);
        assert!((back[4] - 0.1).abs() < 1e-4);
        assert!(back[5].is_nan());
        assert_eq!(back[6], f32::INFINITY);
    }

    /// Softmax-weighted values as a plain loop in f64, from the stored (rounded) keys and values.
    fn reference(q: &[f32], keys: &[f32], values: &[f32], len: usize, heads: usize) -> Vec<f32> {
        let d = q.len();
        let hd = d / heads;
        let scale = (hd as f64).powf(-0.5);
        let mut out = vec![0f32; d];
        for h in 0..heads {
            let s: Vec<f64> = (0..len)
                .map(|j| {
                    (0..hd)
                        .map(|i| q[h * hd + i] as f64 * scale * keys[j * d + h * hd + i] as f64)
                        .sum()
                })
                .collect();
            let m = s.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
            let e: Vec<f64> = s.iter().map(|v| (v - m).exp()).collect();
            let z: f64 = e.iter().sum();
            for i in 0..hd {
                let v: f64 = (0..len)
                    .map(|j| e[j] / z * values[j * d + h * hd + i] as f64)
                    .sum();
                out[h * hd + i] = v as f32;
            }
        }
        out
    }

    fn check<E: KvElem>(round: impl Fn(f32) -> f32, tol: f32) {
        // Head sizes with and without a multiple of 64 features, lengths across block edges.
        for (d, heads) in [(128usize, 2usize), (96, 4), (64, 1)] {
            for len in [1usize, 15, 16, 17, 40] {
                let val = |i: usize, salt: usize| (((i * 7919 + salt) % 1000) as f32 / 500.0) - 1.0;
                let q: Vec<f32> = (0..d).map(|i| val(i, 3)).collect();
                let k: Vec<f32> = (0..len * d).map(|i| val(i, 11)).collect();
                let v: Vec<f32> = (0..len * d).map(|i| val(i, 17)).collect();
                let keys = KeysT::<E>::from_rows(&k, d);
                let mut values = Vec::new();
                E::store(&v, &mut values);
                let mut out = vec![f32::NAN; d];
                let mut scores = Vec::new();
                attend_row(&q, &keys, &values, heads, &mut out, &mut scores);
                let kr: Vec<f32> = k.iter().map(|&x| round(x)).collect();
                let vr: Vec<f32> = v.iter().map(|&x| round(x)).collect();
                let want = reference(&q, &kr, &vr, len, heads);
                for (i, (a, b)) in out.iter().zip(&want).enumerate() {
                    assert!(
                        (a - b).abs() <= tol,
                        "d={d} heads={heads} len={len} [{i}]: {a} vs {b}"
                    );
                }
            }
        }
    }

    #[test]
    fn attention_matches_a_plain_loop_in_f32_and_f16() {
        check::<f32>(|x| x, 1e-5);
        check::<f16>(|x| f16::from_f32(x).to_f32(), 1e-5);
    }

    /// Every CPU path gives the same bits as the portable one.
    #[test]
    fn f16_paths_agree_bit_for_bit() {
        let d = 128;
        let len = 37;
        let val = |i: usize| (((i * 104729) % 997) as f32 / 300.0) - 1.5;
        let q: Vec<f32> = (0..d).map(val).collect();
        let k: Vec<f32> = (0..len * d).map(|i| val(i + 5)).collect();
        let v: Vec<f32> = (0..len * d).map(|i| val(i + 9)).collect();
        let keys = KeysT::<f16>::from_rows(&k, d);
        let mut values = Vec::new();
        f16::store(&v, &mut values);
        let mut scores = vec![0f32; keys.cap];
        let mut want = vec![0f32; d];
        attend_body::<LoadF16Soft>(
            &q,
            &keys.data,
            keys.cap,
            len,
            &values,
            2,
            &mut want,
            &mut scores,
        );
        let mut got = vec![0f32; d];
        attend_row(&q, &keys, &values, 2, &mut got, &mut scores);
        assert_eq!(got, want);
    }
}
