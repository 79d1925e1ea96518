//! int8 matrix products for `--quantize int8`: weights quantised once per output row (symmetric,
//! scale = max|w| / 127), activations quantised per input row at each call, products accumulated
//! in i32 and scaled back to f32. The same scheme as CTranslate2's and oneDNN's int8 GEMM.
//!
//! Kernels: AVX-512 VNNI (`vpdpbusd`, 64 multiply-adds per instruction), AVX2 (widened to i16 and
//! `vpmaddwd`), and a portable scalar one; the best the CPU has is chosen at run time. All three
//! compute the same integers, so results do not depend on the CPU.
//!
//! Packed layout: columns (output features) in blocks of 16; inside a block, for every 4
//! consecutive inputs, 64 bytes: column j's 4 weights at bytes 4j..4j+4. This is the operand
//! order of `vpdpbusd`, whose 32-bit lane j adds 4 products of unsigned activation bytes by signed
//! weight bytes. Activations are stored as `q + 128` (unsigned); the `128 * sum(w)` that this adds
//! is subtracted with precomputed column sums.

use std::cell::Cell;

use super::simd::multiversion;
use crate::error::{Error, Result};

/// Columns per block (one 512-bit register of i32 lanes).
const NB: usize = 16;
/// Blocks per kernel call (64 columns).
const PANEL: usize = 4;
/// Rows per kernel call.
const MR: usize = 6;

/// Which kernel runs. Chosen by [`Int8Kernel::detect`], never by a caller: a kernel the CPU does
/// not have is never run ([`Int8Kernel::available`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Int8Kernel {
    /// Portable Rust.
    Scalar,
    /// AVX2.
    Avx2,
    /// AVX-512 with VNNI.
    Avx512Vnni,
}

impl Int8Kernel {
    /// The best kernel for the running CPU (detected once).
    pub(crate) fn detect() -> Self {
        static KERNEL: std::sync::OnceLock<Int8Kernel> = std::sync::OnceLock::new();
        *KERNEL.get_or_init(Self::probe)
    }

    /// `self` if the CPU has it, else the best kernel it has.
    pub(crate) fn available(self) -> Self {
        self.min(Self::detect())
    }

    fn probe() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx512f")
                && std::is_x86_feature_detected!("avx512bw")
                && std::is_x86_feature_detected!("avx512vnni")
            {
                return Int8Kernel::Avx512Vnni;
            }
            if std::is_x86_feature_detected!("avx2") {
                return Int8Kernel::Avx2;
            }
        }
        Int8Kernel::Scalar
    }
}

/// How activations are quantised at each product.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub(crate) enum Activations {
    /// Each row in 8 bits (scale max|x| / 127): one integer product. Fastest; the rounding
    /// error changes the output of about a third of the sentences on real OPUS-MT weights.
    Int8,
    /// Each row in 8 bits, then that rounding error in 8 more bits (about 15 bits in all): two
    /// integer products over the same weights, summed in f32. As close to float32 as the int8
    /// weights allow.
    #[default]
    Int16,
}

impl Activations {
    /// Quantised rows per activation row.
    fn passes(self) -> usize {
        match self {
            Activations::Int8 => 1,
            Activations::Int16 => 2,
        }
    }
}

/// Packed int8 weights: owned, or a range of a memory-mapped cache file (no copy, and the pages
/// count once in memory).
#[derive(Clone)]
pub enum Packed {
    /// In memory.
    Owned(Vec<i8>),
    /// Part of a mapped file.
    Mapped {
        /// The mapping.
        map: std::sync::Arc<memmap2::Mmap>,
        /// Byte range of the weights.
        range: std::ops::Range<usize>,
    },
}

impl std::ops::Deref for Packed {
    type Target = [i8];
    fn deref(&self) -> &[i8] {
        match self {
            Packed::Owned(v) => v,
            Packed::Mapped { map, range } => {
                let bytes = &map[range.clone()];
                // SAFETY: i8 and u8 have the same size and alignment.
                unsafe { std::slice::from_raw_parts(bytes.as_ptr() as *const i8, bytes.len()) }
            }
        }
    }
}

impl std::fmt::Debug for Packed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Packed({} bytes)", self.len())
    }
}

/// A weight matrix (`n` outputs x `k` inputs, row-major like `nn.Linear.weight`) in int8.
#[derive(Debug, Clone)]
pub struct QMatrix {
    n: usize,
    k: usize,
    /// `k` rounded up to a multiple of 4.
    kp: usize,
    packed: Packed,
    scales: Vec<f32>,
    /// Per column: 128 * sum of its quantised weights (the offset of unsigned activations).
    offsets: Vec<i32>,
    activations: Activations,
}

fn round_i8(x: f32) -> i8 {
    x.round().clamp(-127.0, 127.0) as i8
}

impl QMatrix {
    /// Quantises `w` (`n` x `k`, row-major).
    pub fn quantize(w: &[f32], n: usize, k: usize) -> Self {
        debug_assert_eq!(w.len(), n * k);
        let kp = k.div_ceil(4) * 4;
        let blocks = n.div_ceil(NB);
        let mut packed = vec![0i8; blocks * NB * kp];
        let mut scales = vec![0f32; n];
        let mut offsets = vec![0i32; blocks * NB];
        for (r, (row, (scale, offset))) in w
            .chunks_exact(k)
            .zip(scales.iter_mut().zip(offsets.iter_mut()))
            .enumerate()
        {
            let amax = row.iter().fold(0f32, |m, &x| m.max(x.abs()));
            let s = if amax > 0.0 { amax / 127.0 } else { 0.0 };
            *scale = s;
            let inv = if s > 0.0 { 1.0 / s } else { 0.0 };
            let (b, j) = (r / NB, r % NB);
            let base = b * NB * kp;
            let mut sum = 0i32;
            for (kk, &x) in row.iter().enumerate() {
                let q = round_i8(x * inv);
                sum += q as i32;
                packed[base + (kk / 4) * NB * 4 + j * 4 + kk % 4] = q;
            }
            *offset = 128 * sum;
        }
        QMatrix {
            n,
            k,
            kp,
            packed: Packed::Owned(packed),
            scales,
            offsets,
            activations: Activations::default(),
        }
    }

    /// This matrix with its products quantising activations as `activations` says.
    pub(crate) fn with_activations(mut self, activations: Activations) -> Self {
        self.activations = activations;
        self
    }

    /// Rebuilds a matrix from its stored parts (see [`QMatrix::parts`]).
    pub fn from_parts(n: usize, k: usize, packed: Packed, scales: Vec<f32>) -> Option<Self> {
        let kp = k.div_ceil(4) * 4;
        let blocks = n.div_ceil(NB);
        if packed.len() != blocks * NB * kp || scales.len() != n {
            return None;
        }
        let mut offsets = vec![0i32; blocks * NB];
        for (b, chunk) in packed.chunks_exact(NB * kp).enumerate() {
            for (i, &q) in chunk.iter().enumerate() {
                offsets[b * NB + (i % (NB * 4)) / 4] += 128 * q as i32;
            }
        }
        Some(QMatrix {
            n,
            k,
            kp,
            packed,
            scales,
            offsets,
            activations: Activations::default(),
        })
    }

    /// The matrices' outputs one after another (one product instead of several on the same
    /// input: the input is quantised once, and the threads meet once). Every output column gives
    /// the same numbers as in its own matrix. `None` unless all have the same inputs and
    /// activations and all but the last a multiple of 16 outputs.
    pub fn concat(parts: &[&QMatrix]) -> Option<QMatrix> {
        let first = parts.first()?;
        let k = first.k;
        let last = parts.len() - 1;
        if parts.iter().enumerate().any(|(i, p)| {
            p.k != k || p.activations != first.activations || (i < last && !p.n.is_multiple_of(NB))
        }) {
            return None;
        }
        let mut packed = Vec::with_capacity(parts.iter().map(|p| p.packed.len()).sum());
        let mut scales = Vec::new();
        let mut offsets = Vec::new();
        for p in parts {
            packed.extend_from_slice(&p.packed);
            scales.extend_from_slice(&p.scales);
            offsets.extend_from_slice(&p.offsets);
        }
        Some(QMatrix {
            n: parts.iter().map(|p| p.n).sum(),
            k,
            kp: first.kp,
            packed: Packed::Owned(packed),
            scales,
            offsets,
            activations: first.activations,
        })
    }

    /// The packed weights and per-row scales, for saving.
    pub fn parts(&self) -> (&[i8], &[f32]) {
        (&self.packed, &self.scales)
    }

    /// Output features.
    pub fn rows(&self) -> usize {
        self.n
    }

    /// Input features.
    pub fn cols(&self) -> usize {
        self.k
    }

    /// Row `r` dequantised into `out` (length `k`): used as an embedding lookup.
    pub(crate) fn dequantize_row(&self, r: usize, out: &mut [f32]) -> Result<()> {
        if r >= self.n || out.len() != self.k {
            return Err(Error::Internal(format!(
                "row {r} of {} ({} values) into {} values",
                self.n,
                self.k,
                out.len()
            )));
        }
        let (b, j) = (r / NB, r % NB);
        let block = &self.packed[b * NB * self.kp..(b + 1) * NB * self.kp];
        let s = self.scales[r];
        for (kk, o) in out.iter_mut().enumerate() {
            *o = block[(kk / 4) * NB * 4 + j * 4 + kk % 4] as f32 * s;
        }
        Ok(())
    }

    /// `out` (`m` x `n`) = `x` (`m` x `k`) times this matrix transposed, plus `bias` (`n`), with
    /// the best kernel this CPU has. Every length is checked first.
    pub(crate) fn matmul(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) -> Result<()> {
        self.matmul_with(Int8Kernel::detect(), x, m, bias, out)
    }

    /// [`QMatrix::matmul`] with `kernel`, or the best one below it that the CPU has.
    pub(crate) fn matmul_with(
        &self,
        kernel: Int8Kernel,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) -> Result<()> {
        let bias_ok = bias.is_none_or(|b| b.len() == self.n);
        if x.len() != m * self.k || out.len() != m * self.n || !bias_ok {
            return Err(Error::Internal(format!(
                "int8 product of {m}x{} by {}x{} given {} inputs, {} outputs and {:?} biases",
                self.k,
                self.n,
                self.k,
                x.len(),
                out.len(),
                bias.map(<[f32]>::len)
            )));
        }
        let kernel = kernel.available();
        let passes = self.activations.passes();
        let (xq, xs) = quantize_rows(x, m, self.k, self.kp, passes, SCRATCH.take());
        let panels = self.n.div_ceil(NB * PANEL);
        // Tasks own whole panels (64 columns), as one disjoint slice of every output row. A few
        // tasks per thread balance the work; below ~2M multiply-adds one task does it all (a
        // thread hand-off costs more than it saves).
        let work = m * self.n * self.k;
        let parallel = work >= (1 << 21) && panels >= 2;
        let tasks = if parallel {
            panels.min(4 * rayon::current_num_threads()).max(1)
        } else {
            1
        };
        let width = panels.div_ceil(tasks) * NB * PANEL;
        super::for_column_ranges(out, self.n, width, |c0, rows| {
            let cols = rows.first().map_or(0, |r| r.len());
            let mut done = 0;
            while done < cols {
                let p0 = c0 + done;
                let nb = PANEL.min((self.n - p0).div_ceil(NB));
                let width = (nb * NB).min(cols - done);
                let cols = Cols {
                    c0: p0,
                    nb,
                    at: done,
                    width,
                };
                self.panel_rows(kernel, &xq, &xs, passes, cols, bias, rows);
                done += width;
            }
        });
        SCRATCH.set(xq);
        Ok(())
    }

    /// One panel (`nb` blocks of 16 columns from column `c0`) for every row: the rows in equal
    /// chunks of at most [`MR`] quantised rows (19 rows: 5+5+5+4, not 6+6+6+1), so that every
    /// chunk reuses each loaded weight vector several times. Output row `i` is quantised rows
    /// `passes * i ..`; `rows[i][at..at + width]` is where its columns `c0..c0 + width` go.
    #[allow(clippy::too_many_arguments)]
    fn panel_rows(
        &self,
        kernel: Int8Kernel,
        xq: &[u8],
        xs: &[f32],
        passes: usize,
        cols: Cols,
        bias: Option<&[f32]>,
        rows: &mut [&mut [f32]],
    ) {
        let Cols { c0, nb, at, width } = cols;
        let m = rows.len();
        let per_chunk = MR / passes;
        let chunks = m.div_ceil(per_chunk);
        let w = &self.packed[c0 * self.kp..(c0 + nb * NB) * self.kp];
        let offsets = &self.offsets[c0..c0 + nb * NB];
        let scales = &self.scales[c0..c0 + width];
        let bias = bias.map(|b| &b[c0..c0 + width]);
        let mut m0 = 0;
        for c in 0..chunks {
            let mr = m / chunks + usize::from(c < m % chunks);
            let (q0, qr) = (m0 * passes, mr * passes);
            let x = &xq[q0 * self.kp..(q0 + qr) * self.kp];
            let xs = &xs[q0..q0 + qr];
            let mut outs: [&mut [f32]; MR] = Default::default();
            for (o, row) in outs.iter_mut().zip(rows[m0..m0 + mr].iter_mut()) {
                *o = &mut row[at..at + width];
            }
            let outs = &mut outs[..mr];
            #[cfg(target_arch = "x86_64")]
            if kernel == Int8Kernel::Avx512Vnni {
                let f = vnni::Finish {
                    xs,
                    passes,
                    offsets,
                    scales,
                    bias,
                };
                // SAFETY: `kernel` is one the CPU has (`Int8Kernel::available`); `x` holds
                // `qr = passes * mr` <= 6 rows of `kp`, `w` `nb` blocks of 16 columns, `offsets`
                // `nb` blocks, `xs` `qr` scales, `scales`, `bias` and every slice of `outs`
                // `width` <= 16 * nb entries.
                unsafe { vnni::panel(x, w, self.kp, nb, &f, outs) };
                m0 += mr;
                continue;
            }
            // The portable kernels accumulate into a tile (the VNNI one finishes in registers).
            let mut acc = [[0i32; NB * PANEL]; MR];
            match kernel {
                #[cfg(target_arch = "x86_64")]
                // SAFETY: `kernel` is one the CPU has; `x` holds `qr` <= 6 rows of `kp`, `w` `nb`
                // <= 4 blocks.
                Int8Kernel::Avx2 => unsafe { avx2::panel(x, w, self.kp, qr, nb, &mut acc) },
                _ => scalar_panel(x, w, self.kp, qr, nb, &mut acc),
            }
            let zeros = [0f32; NB * PANEL];
            let b = bias.unwrap_or(&zeros[..width]);
            for ((accs, sx), dst) in acc
                .chunks(passes)
                .zip(xs.chunks(passes))
                .zip(outs.iter_mut())
            {
                if passes == 2 {
                    let acc = [&accs[0][..width], &accs[1][..width]];
                    finish_pair(acc, &offsets[..width], scales, [sx[0], sx[1]], b, dst);
                } else {
                    finish_row(&accs[0][..width], &offsets[..width], scales, sx[0], b, dst);
                }
            }
            m0 += mr;
        }
    }
}

/// Columns of one panel: from column `c0`, `nb` blocks, `width` valid; written at `at` in each
/// output slice.
#[derive(Clone, Copy)]
struct Cols {
    c0: usize,
    nb: usize,
    at: usize,
    width: usize,
}

multiversion! {
/// i32 sums back to f32: (acc - offset) * (row scale * column scale) + bias.
fn finish_row(acc: &[i32], offsets: &[i32], scales: &[f32], sx: f32, bias: &[f32], dst: &mut [f32]) -> () {
    for ((((d, &a), &o), &s), &b) in dst.iter_mut().zip(acc).zip(offsets).zip(scales).zip(bias) {
        *d = (a - o) as f32 * (sx * s) + b;
    }
}
}

multiversion! {
/// [`finish_row`] for [`Activations::Int16`]: the row's two products (8 bits, then the residual)
/// summed, `((a0 - offset) * (sx0 * s) + (a1 - offset) * (sx1 * s)) + bias`.
fn finish_pair(acc: [&[i32]; 2], offsets: &[i32], scales: &[f32], sx: [f32; 2], bias: &[f32], dst: &mut [f32]) -> () {
    let [a0, a1] = acc;
    for (((((d, &x0), &x1), &o), &s), &b) in dst.iter_mut().zip(a0).zip(a1).zip(offsets).zip(scales).zip(bias) {
        *d = ((x0 - o) as f32 * (sx[0] * s) + (x1 - o) as f32 * (sx[1] * s)) + b;
    }
}
}

thread_local! {
    /// The quantised activations' buffer, kept between calls: allocating it anew each time costs
    /// page faults once it is large (a beam batch's rows). Taken, not borrowed, so that a nested
    /// call on the same thread (rayon may run another job while waiting) just allocates.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
}

/// Per-row symmetric quantisation of activations to `q + 128` bytes, rows padded to `kp`, into
/// `q` (reused); with 2 `passes`, each row is followed by its rounding error, quantised the same
/// way (see [`Activations::Int16`]). Returns the bytes and one scale per quantised row.
fn quantize_rows(
    x: &[f32],
    m: usize,
    k: usize,
    kp: usize,
    passes: usize,
    mut q: Vec<u8>,
) -> (Vec<u8>, Vec<f32>) {
    q.clear();
    q.resize(m * passes * kp, 128u8);
    let mut scales = vec![0f32; m * passes];
    let mut residual = Vec::new();
    for ((row, dst), s) in x
        .chunks_exact(k)
        .zip(q.chunks_exact_mut(passes * kp))
        .zip(scales.chunks_exact_mut(passes))
    {
        if passes == 1 {
            s[0] = quantize_row(row, dst);
        } else {
            let (first, second) = dst.split_at_mut(kp);
            residual.resize(k, 0.0);
            s[0] = quantize_row_with_residual(row, first, &mut residual);
            s[1] = quantize_row(&residual, second);
        }
    }
    (q, scales)
}

/// Adding 1.5 * 2^23 rounds to an integer (ties to even) held in the low mantissa bits, two's
/// complement; flipping the top bit of the low byte adds 128. Integer operations only, so that
/// the loops vectorise (a float-to-u8 cast does not).
const MAGIC: f32 = 12_582_912.0;

multiversion! {
/// The largest |x| of a row (0 for a row with no finite non-zero maximum).
fn row_amax(row: &[f32]) -> f32 {
    let mut lanes = [0f32; 16];
    let chunks = row.chunks_exact(16);
    let rest = chunks.remainder();
    for c in chunks {
        for (l, &v) in lanes.iter_mut().zip(c) {
            *l = l.max(v.abs());
        }
    }
    let amax = rest
        .iter()
        .fold(lanes.iter().fold(0f32, |a, &v| a.max(v)), |a, &v| a.max(v.abs()));
    if amax > 0.0 && amax.is_finite() { amax } else { 0.0 }
}
}

multiversion! {
/// One row to `q + 128` bytes (round to nearest, ties to even); returns its scale.
fn quantize_row(row: &[f32], dst: &mut [u8]) -> f32 {
    let amax = row_amax(row);
    if amax == 0.0 {
        return 0.0;
    }
    let inv = 127.0 / amax;
    for (d, &v) in dst.iter_mut().zip(row) {
        *d = ((v * inv + MAGIC).to_bits() as u8) ^ 0x80;
    }
    amax / 127.0
}
}

multiversion! {
/// [`quantize_row`], also writing each value's rounding error (`x - q * scale`) to `residual`.
fn quantize_row_with_residual(row: &[f32], dst: &mut [u8], residual: &mut [f32]) -> f32 {
    let amax = row_amax(row);
    if amax == 0.0 {
        residual.fill(0.0);
        return 0.0;
    }
    let inv = 127.0 / amax;
    let scale = amax / 127.0;
    for ((d, e), &v) in dst.iter_mut().zip(residual.iter_mut()).zip(row) {
        let r = v * inv + MAGIC;
        *d = (r.to_bits() as u8) ^ 0x80;
        *e = v - (r - MAGIC) * scale;
    }
    scale
}
}

fn scalar_panel(
    x: &[u8],
    w: &[i8],
    kp: usize,
    mr: usize,
    nb: usize,
    acc: &mut [[i32; NB * PANEL]; MR],
) {
    for (i, row_acc) in acc.iter_mut().enumerate().take(mr) {
        let xr = &x[i * kp..(i + 1) * kp];
        for b in 0..nb {
            let wb = &w[b * NB * kp..(b + 1) * NB * kp];
            for k4 in 0..kp / 4 {
                let xa = &xr[k4 * 4..k4 * 4 + 4];
                let chunk = &wb[k4 * NB * 4..(k4 + 1) * NB * 4];
                for j in 0..NB {
                    let mut s = 0i32;
                    for t in 0..4 {
                        s += xa[t] as i32 * chunk[j * 4 + t] as i32;
                    }
                    row_acc[b * NB + j] += s;
                }
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod vnni {
    use super::NB;
    use std::arch::x86_64::*;

    /// How a panel's sums become outputs: `(acc - offsets) * (xs[row] * scales) + bias` (the
    /// arithmetic of `finish_row`, in the same order, so that every kernel gives the same bits).
    pub(super) struct Finish<'a> {
        /// One scale per quantised row of the panel.
        pub xs: &'a [f32],
        /// Quantised rows per output row (1 or 2, see `Activations`).
        pub passes: usize,
        /// From the panel's first column, padded to whole blocks.
        pub offsets: &'a [i32],
        /// One per valid column.
        pub scales: &'a [f32],
        /// One per valid column.
        pub bias: Option<&'a [f32]>,
    }

    /// Rows `x` of the panel times `nb` blocks of weights `w`, into `outs` (one slice per row, each
    /// as long as the panel's valid columns).
    ///
    /// # Safety
    /// The CPU has avx512f, avx512bw and avx512vnni. `outs` has 1 to 6 / `f.passes` slices, all
    /// of the same length `cols` <= 16 * `nb`; `x` holds `f.passes * outs.len()` rows of `kp`
    /// bytes (`kp` a multiple of 4), `w` `nb` blocks of `16 * kp` bytes, `f.xs` one scale per row
    /// of `x`, `f.offsets` `16 * nb` entries, and `f.scales` and `f.bias` at least `cols`
    /// entries.
    pub(super) unsafe fn panel(
        x: &[u8],
        w: &[i8],
        kp: usize,
        nb: usize,
        f: &Finish,
        outs: &mut [&mut [f32]],
    ) {
        match (f.passes * outs.len(), nb) {
            (6, 4) => kernel::<6, 4>(x, w, kp, f, outs),
            (m, 4) => dispatch_rows::<4>(m, x, w, kp, f, outs),
            (m, 3) => dispatch_rows::<3>(m, x, w, kp, f, outs),
            (m, 2) => dispatch_rows::<2>(m, x, w, kp, f, outs),
            (m, _) => dispatch_rows::<1>(m, x, w, kp, f, outs),
        }
    }

    /// # Safety
    /// As [`panel`], with `m == f.passes * outs.len()`.
    unsafe fn dispatch_rows<const B: usize>(
        m: usize,
        x: &[u8],
        w: &[i8],
        kp: usize,
        f: &Finish,
        outs: &mut [&mut [f32]],
    ) {
        match m {
            1 => kernel::<1, B>(x, w, kp, f, outs),
            2 => kernel::<2, B>(x, w, kp, f, outs),
            3 => kernel::<3, B>(x, w, kp, f, outs),
            4 => kernel::<4, B>(x, w, kp, f, outs),
            5 => kernel::<5, B>(x, w, kp, f, outs),
            _ => kernel::<6, B>(x, w, kp, f, outs),
        }
    }

    /// `R` rows by `B` blocks of 16 columns, sums in registers, finished straight into `outs`.
    ///
    /// # Safety
    /// As [`panel`], with `R == f.passes * outs.len()` and `B == nb`.
    #[target_feature(enable = "avx512f,avx512bw,avx512vnni")]
    #[allow(clippy::needless_range_loop)]
    unsafe fn kernel<const R: usize, const B: usize>(
        x: &[u8],
        w: &[i8],
        kp: usize,
        f: &Finish,
        outs: &mut [&mut [f32]],
    ) {
        let mut a = [[_mm512_setzero_si512(); B]; R];
        let wp = w.as_ptr();
        let xp = x.as_ptr();
        let block = NB * kp;
        for k4 in 0..kp / 4 {
            let mut wv = [_mm512_setzero_si512(); B];
            for (b, v) in wv.iter_mut().enumerate() {
                *v = _mm512_loadu_si512(wp.add(b * block + k4 * 64) as *const _);
            }
            for (i, ar) in a.iter_mut().enumerate() {
                let xv =
                    _mm512_set1_epi32((xp.add(i * kp + k4 * 4) as *const i32).read_unaligned());
                for (b, av) in ar.iter_mut().enumerate() {
                    *av = _mm512_dpbusd_epi32(*av, xv, wv[b]);
                }
            }
        }
        // Straight from the registers to the outputs.
        let cols = outs.first().map_or(0, |o| o.len());
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
            let off = _mm512_loadu_si512(f.offsets.as_ptr().add(lo) as *const _);
            let sc = _mm512_maskz_loadu_ps(mask, f.scales.as_ptr().add(lo));
            let bias = match f.bias {
                Some(bias) => _mm512_maskz_loadu_ps(mask, bias.as_ptr().add(lo)),
                None => _mm512_setzero_ps(),
            };
            let product = |i: usize| {
                let scale = _mm512_mul_ps(_mm512_set1_ps(f.xs[i]), sc);
                let v = _mm512_cvtepi32_ps(_mm512_sub_epi32(a[i][b], off));
                _mm512_mul_ps(v, scale)
            };
            for (o, out) in outs.iter_mut().enumerate() {
                let mut v = product(o * f.passes);
                if f.passes == 2 {
                    v = _mm512_add_ps(v, product(o * 2 + 1));
                }
                let r = _mm512_add_ps(v, bias);
                _mm512_mask_storeu_ps(out.as_mut_ptr().add(lo), mask, r);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, NB, PANEL};
    use std::arch::x86_64::*;

    /// `mr` rows of `x` times `nb` blocks of `w`, summed into `acc`: block by block, in groups
    /// of at most 3 rows that share each widened weight vector.
    ///
    /// # Safety
    /// The CPU has AVX2; `x` holds `mr` <= 6 rows of `kp` bytes (`kp` a multiple of 4) and `w`
    /// `nb` <= 4 blocks of `16 * kp` bytes.
    pub(super) unsafe fn panel(
        x: &[u8],
        w: &[i8],
        kp: usize,
        mr: usize,
        nb: usize,
        acc: &mut [[i32; NB * PANEL]; MR],
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
                // SAFETY: the CPU has AVX2; `xs` holds `g` rows of `kp`, `wb` one block.
                unsafe {
                    match g {
                        1 => block::<1>(xs, wb, kp, r0, b, acc),
                        2 => block::<2>(xs, wb, kp, r0, b, acc),
                        _ => block::<3>(xs, wb, kp, r0, b, acc),
                    }
                }
                r0 += g;
            }
        }
    }

    /// `G` rows against one block of 16 columns, into `acc[r0..r0 + G]` at columns `16 * b..`.
    /// Each 16-byte quarter of a 64-byte group (4 columns x 4 inputs) is widened to i16 once and
    /// multiplied with every row's 4 activations by `vpmaddwd`, giving pair sums that are added
    /// up at the end.
    ///
    /// # Safety
    /// The CPU has AVX2; `x` holds `G` rows of `kp` bytes (a multiple of 4), `w` `16 * kp` bytes;
    /// `r0 + G <= MR` and `b < PANEL`.
    #[target_feature(enable = "avx2")]
    unsafe fn block<const G: usize>(
        x: &[u8],
        w: &[i8],
        kp: usize,
        r0: usize,
        b: usize,
        acc: &mut [[i32; NB * PANEL]; MR],
    ) {
        let mut sums = [[_mm256_setzero_si256(); 4]; G];
        let (xp, wp) = (x.as_ptr(), w.as_ptr());
        for k4 in 0..kp / 4 {
            // Row g's [a0 a1 a2 a3] as i16, repeated four times.
            let mut a16 = [_mm256_setzero_si256(); G];
            for (g, a) in a16.iter_mut().enumerate() {
                // SAFETY: g * kp + 4 * k4 + 4 <= G * kp <= x.len().
                let v = unsafe { (xp.add(g * kp + k4 * 4) as *const u32).read_unaligned() };
                *a = _mm256_cvtepu8_epi16(_mm_set1_epi32(v as i32));
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
                    out[q * 4 + c] += lanes[2 * c] + lanes[2 * c + 1];
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lcg(seed: &mut u64) -> f32 {
        *seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        ((*seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
    }

    fn reference(x: &[f32], w: &[f32], m: usize, n: usize, k: usize, bias: &[f32]) -> Vec<f32> {
        let mut out = vec![0f32; m * n];
        for i in 0..m {
            for j in 0..n {
                out[i * n + j] = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum::<f32>() + bias[j];
            }
        }
        out
    }

    fn available_kernels() -> Vec<Int8Kernel> {
        let mut ks = vec![Int8Kernel::Scalar];
        #[cfg(target_arch = "x86_64")]
        {
            if std::is_x86_feature_detected!("avx2") {
                ks.push(Int8Kernel::Avx2);
            }
        }
        if Int8Kernel::detect() == Int8Kernel::Avx512Vnni {
            ks.push(Int8Kernel::Avx512Vnni);
        }
        ks
    }

    #[test]
    fn every_kernel_gives_the_same_integers_and_a_close_product() {
        let mut seed = 7;
        for activations in [Activations::Int8, Activations::Int16] {
            for &(m, n, k) in &[
                (1, 1, 1),
                (3, 17, 5),
                (7, 70, 33),
                (13, 130, 64),
                (1, 64, 512),
                (4, 200, 512),
            ] {
                let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed)).collect();
                let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
                let bias: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
                let q = QMatrix::quantize(&w, n, k).with_activations(activations);
                let want = reference(&x, &w, m, n, k, &bias);
                let mut first: Option<Vec<f32>> = None;
                for kernel in available_kernels() {
                    let mut out = vec![0f32; m * n];
                    q.matmul_with(kernel, &x, m, Some(&bias), &mut out).unwrap();
                    let err = out
                        .iter()
                        .zip(&want)
                        .map(|(a, b)| (a - b).abs())
                        .fold(0f32, f32::max);
                    assert!(
                        err < 0.02 * (k as f32).sqrt(),
                        "{kernel:?} {activations:?} {m}x{n}x{k}: error {err}"
                    );
                    match &first {
                        None => first = Some(out),
                        Some(f) => assert_eq!(
                            f, &out,
                            "{kernel:?} {activations:?} differs from the scalar kernel"
                        ),
                    }
                }
            }
        }
    }

    /// With weights that int8 holds exactly, the only error left is the activations': 16 bits
    /// (8 plus the residual's 8) make it over 100 times smaller than 8 bits (about 250: the
    /// residual's scale is at most 1/254 of the first), in every kernel.
    #[test]
    fn sixteen_bit_activations_leave_only_float_rounding() {
        let mut seed = 17;
        let (m, n, k) = (5, 48, 512);
        // Every row's largest |w| is 127 / 127, so each weight is exactly q / 127.
        let w: Vec<f32> = (0..n * k)
            .map(|i| {
                if i % k == 0 {
                    1.0
                } else {
                    (lcg(&mut seed) * 254.0).round() / 127.0
                }
            })
            .collect();
        // Activations with an outlier per row, as transformer layers have.
        let x: Vec<f32> = (0..m * k)
            .map(|i| lcg(&mut seed) * if i % k == 7 { 40.0 } else { 1.0 })
            .collect();
        let want = reference(&x, &w, m, n, k, &vec![0.0; n]);
        for kernel in available_kernels() {
            let err = |activations| {
                let q = QMatrix::quantize(&w, n, k).with_activations(activations);
                let mut out = vec![0f32; m * n];
                q.matmul_with(kernel, &x, m, None, &mut out).unwrap();
                out.iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max)
            };
            let (e8, e16) = (err(Activations::Int8), err(Activations::Int16));
            assert!(e8 > 0.05, "{kernel:?}: 8-bit error {e8}");
            assert!(
                e16 < e8 / 100.0,
                "{kernel:?}: 16-bit error {e16}, 8-bit {e8}"
            );
        }
    }

    #[test]
    fn parts_round_trip_and_rows_dequantize() {
        let mut seed = 3;
        let (n, k) = (37, 21);
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
        let q = QMatrix::quantize(&w, n, k);
        let (p, s) = q.parts();
        let r = QMatrix::from_parts(n, k, Packed::Owned(p.to_vec()), s.to_vec()).unwrap();
        assert_eq!(r.offsets, q.offsets);
        let mut row = vec![0f32; k];
        q.dequantize_row(5, &mut row).unwrap();
        for (a, b) in row.iter().zip(&w[5 * k..6 * k]) {
            assert!((a - b).abs() <= q.scales[5] / 2.0 + 1e-6);
        }
        assert!(QMatrix::from_parts(n, k, Packed::Owned(vec![0; 3]), s.to_vec()).is_none());
    }

    #[test]
    fn concatenated_matrices_give_each_part_s_columns() {
        let mut seed = 11;
        let (m, k) = (5, 40);
        let sizes = [32usize, 16, 21];
        let ws: Vec<Vec<f32>> = sizes
            .iter()
            .map(|&n| (0..n * k).map(|_| lcg(&mut seed)).collect())
            .collect();
        let qs: Vec<QMatrix> = ws
            .iter()
            .zip(&sizes)
            .map(|(w, &n)| QMatrix::quantize(w, n, k))
            .collect();
        let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed)).collect();
        let all = QMatrix::concat(&qs.iter().collect::<Vec<_>>()).unwrap();
        let total: usize = sizes.iter().sum();
        assert_eq!((all.rows(), all.cols()), (total, k));
        let bias: Vec<f32> = (0..total).map(|_| lcg(&mut seed)).collect();
        let mut out = vec![0f32; m * total];
        all.matmul(&x, m, Some(&bias), &mut out).unwrap();
        let mut c0 = 0;
        for (q, &n) in qs.iter().zip(&sizes) {
            let mut part = vec![0f32; m * n];
            q.matmul(&x, m, Some(&bias[c0..c0 + n]), &mut part).unwrap();
            for r in 0..m {
                assert_eq!(
                    &out[r * total + c0..r * total + c0 + n],
                    &part[r * n..(r + 1) * n]
                );
            }
            c0 += n;
        }
        // Only the last part may end inside a block of 16 outputs; inputs must agree.
        assert!(QMatrix::concat(&[&qs[2], &qs[0]]).is_none());
        let other = QMatrix::quantize(&vec![0.5; 16 * 8], 16, 8);
        assert!(QMatrix::concat(&[&qs[0], &other]).is_none());
        assert!(QMatrix::concat(&[]).is_none());
    }

    #[test]
    fn zero_rows_stay_zero() {
        let q = QMatrix::quantize(&[0.0; 8], 2, 4);
        let mut out = vec![1f32; 2];
        q.matmul(&[0.0, 0.0, 0.0, 0.0], 1, None, &mut out).unwrap();
        assert_eq!(out, vec![0.0, 0.0]);
    }

    #[test]
    fn wrong_lengths_and_rows_are_errors_and_missing_kernels_are_never_run() {
        let q = QMatrix::quantize(&[0.5; 8], 2, 4);
        let mut out = vec![0f32; 2];
        assert!(q.matmul(&[0.0; 3], 1, None, &mut out).is_err());
        assert!(q.matmul(&[0.0; 4], 1, Some(&[0.0]), &mut out).is_err());
        assert!(
            q.matmul(&[0.0; 8], 2, None, &mut out).is_err(),
            "out too short"
        );
        let mut row = vec![0f32; 4];
        assert!(q.dequantize_row(2, &mut row).is_err());
        assert!(q.dequantize_row(0, &mut row[..3]).is_err());
        // Asking for the widest kernel runs the best one this CPU has.
        assert!(Int8Kernel::Avx512Vnni.available() <= Int8Kernel::detect());
        q.matmul_with(Int8Kernel::Avx512Vnni, &[1.0; 4], 1, None, &mut out)
            .unwrap();
        assert!(out.iter().all(|&v| (v - 2.0).abs() < 0.05), "{out:?}");
    }

    /// Many rows and columns, split over threads: every output written once, by one task.
    #[test]
    fn parallel_products_match_a_single_task() {
        let mut seed = 5;
        let (m, n, k) = (23, 1000, 96);
        let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed)).collect();
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
        let bias: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
        let q = QMatrix::quantize(&w, n, k);
        let mut par = vec![f32::NAN; m * n];
        q.matmul(&x, m, Some(&bias), &mut par).unwrap();
        let want = reference(&x, &w, m, n, k, &bias);
        for (a, b) in par.iter().zip(&want) {
            assert!((a - b).abs() < 0.02 * (k as f32).sqrt(), "{a} vs {b}");
        }
    }
}
