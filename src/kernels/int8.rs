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
    /// Each row in 16 bits: `254 * q0 + q1`, where `q0` is the 8-bit value above and `q1` its
    /// rounding error in steps of 1/254 of the 8-bit step (about 15 bits in all, one scale per
    /// row). One exact integer product per output (in i64); on AVX2 one 16-bit product, with
    /// VNNI two 8-bit products (the high and low parts) combined before scaling. As close to
    /// float32 as the int8 weights allow. (The output projection with VNNI: the high parts'
    /// product for every logit, both for those near the best, [`QMatrix::matmul_top`].)
    #[default]
    Int16,
}

/// The weight of the high part in [`Activations::Int16`]: `|254 * 127 + 127| < 2^15`.
const HIGH: i32 = 254;

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
    /// What [`QMatrix::matmul_top`] needs besides the weights, computed on its first use.
    top: std::sync::OnceLock<TopParts>,
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
            top: Default::default(),
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
            top: Default::default(),
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
            top: Default::default(),
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
        self.check(x, m, bias, out)?;
        let kernel = kernel.available();
        let split = kernel == Int8Kernel::Avx512Vnni;
        let q = QRows::quantize(x, m, self.k, self.kp, self.activations, split);
        self.product(kernel, &q, bias, out);
        q.recycle();
        Ok(())
    }

    /// The lengths of a product's operands, checked.
    fn check(&self, x: &[f32], m: usize, bias: Option<&[f32]>, out: &[f32]) -> Result<()> {
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
        Ok(())
    }

    /// [`QMatrix::matmul`] for products of which each row's largest outputs are the ones that
    /// matter (a model's logits): every output within `margin` of its row's largest is the
    /// number `matmul` gives, bit for bit; every other is within a bound of it (below), and the
    /// outputs of a row do not depend on the other rows.
    ///
    /// With VNNI and [`Activations::Int16`] a full product is two 8-bit products, one for each
    /// part of the 16-bit activations (`HIGH * q0 + q1`). Here the high part's runs for every
    /// output (half the work). The low part would add `unit * s_j * sum_i q1_i w_ji` to output
    /// j, at most `unit * |q1| * s_j |w_j|` (Cauchy-Schwarz: the lengths of the row's low parts
    /// and of the column's weights); its product with the columns' mean, shared by all, is added
    /// to every output (which keeps the row's log-sum-exp close: the errors of the many small
    /// outputs share that part). Every output that could be within `margin` of the row's
    /// largest, given those bounds, then gets both parts' sums (its column gathered), finished
    /// with `matmul`'s arithmetic. Elsewhere this is `matmul`.
    pub(crate) fn matmul_top(
        &self,
        x: &[f32],
        m: usize,
        bias: &[f32],
        out: &mut [f32],
        margin: f32,
    ) -> Result<()> {
        self.check(x, m, Some(bias), out)?;
        let kernel = Int8Kernel::detect().available();
        #[cfg(target_arch = "x86_64")]
        if kernel == Int8Kernel::Avx512Vnni && self.activations == Activations::Int16 {
            self.top_vnni(x, m, bias, out, margin);
            return Ok(());
        }
        self.matmul_with(kernel, x, m, Some(bias), out)
    }

    /// [`QMatrix::matmul_top`] with VNNI (lengths checked, the kernel there).
    #[cfg(target_arch = "x86_64")]
    fn top_vnni(&self, x: &[f32], m: usize, bias: &[f32], out: &mut [f32], margin: f32) {
        use rayon::prelude::*;
        let (k, kp) = (self.k, self.kp);
        // The high parts as 8-bit rows (scale: the unit times HIGH), the low parts beside them.
        let mut low = vec![128u8; m * kp];
        let mut units = vec![0f32; m];
        let mut lows = low.chunks_exact_mut(kp);
        let high = quantize_rows(
            SCRATCH.take(),
            128,
            (x, k, kp),
            &mut units,
            |row, dst| match lows.next() {
                Some(l) => quantize_row16(row, Dst16::Split(&mut dst[..k], &mut l[..k])),
                None => 0.0,
            },
        );
        let q = QRows {
            rows: Rows::Bytes(high),
            scales: units.iter().map(|&u| u * HIGH as f32).collect(),
        };
        self.product(Int8Kernel::Avx512Vnni, &q, Some(bias), out);
        let top = self.top.get_or_init(|| self.top_parts());
        if let Rows::Bytes(high) = &q.rows {
            out.par_chunks_mut(self.n.max(1))
                .zip(high.par_chunks(kp).zip(low.par_chunks(kp)))
                .zip(&units)
                .for_each(|((row, (hi, lo)), &unit)| {
                    self.refine_top(row, [hi, lo], unit, top, bias, margin)
                });
        }
        q.recycle();
    }

    /// Each column's length, and the columns' mean: one pass over the packed weights, a block
    /// of 16 columns and 4 inputs (64 bytes) at a time.
    fn top_parts(&self) -> TopParts {
        let kp = self.kp;
        let mut norms = Vec::with_capacity(self.n.div_ceil(NB) * NB);
        let mut mean = vec![0f64; kp];
        for (b, block) in self.packed.chunks_exact(NB * kp).enumerate() {
            // Padding columns (past n) hold zeros: their scale does not matter.
            let mut scales = [0f32; NB];
            for (s, &v) in scales
                .iter_mut()
                .zip(self.scales.get(b * NB..).unwrap_or(&[]))
            {
                *s = v;
            }
            let mut squares = [0i64; NB];
            for (g, group) in block.chunks_exact(NB * 4).enumerate() {
                // This group's 4 inputs: the 16 columns' weights times their scales, summed.
                let mut sums = [0f32; 4];
                for ((column, sq), &s) in group.chunks_exact(4).zip(&mut squares).zip(&scales) {
                    for (sum, &w) in sums.iter_mut().zip(column) {
                        *sq += w as i64 * w as i64;
                        *sum += w as f32 * s;
                    }
                }
                for (m, &sum) in mean[4 * g..4 * g + 4].iter_mut().zip(&sums) {
                    *m += sum as f64;
                }
            }
            norms.extend(
                squares
                    .iter()
                    .zip(&scales)
                    .map(|(&q, &s)| (q as f64).sqrt() as f32 * s),
            );
        }
        norms.truncate(self.n);
        let n = self.n.max(1) as f64;
        TopParts {
            norms,
            mean: mean.iter().map(|&m| (m / n) as f32).collect(),
        }
    }

    /// One row of [`QMatrix::matmul_top`]: `row` holds the high parts' outputs; those that could
    /// be within `margin` of the largest get the full sums of `parts` (the row's high and low
    /// bytes) with their column.
    #[cfg(target_arch = "x86_64")]
    fn refine_top(
        &self,
        row: &mut [f32],
        parts: [&[u8]; 2],
        unit: f32,
        top: &TopParts,
        bias: &[f32],
        margin: f32,
    ) {
        let low = &parts[1][..self.k];
        let length = low.iter().map(|&l| (l as i64 - 128).pow(2)).sum::<i64>();
        // The bound's factor for this row, with slack for the f32 rounding of the outputs.
        let c = (length as f32).sqrt() * unit * (1.0 + 1e-3);
        // The low parts' product with the columns' mean: the part of the columns' errors that
        // they share, added to all. Without it the error of each row's log-sum-exp, summed over
        // the many small outputs, changed beam search's choice on 5 % of real sentences.
        let shift = low
            .iter()
            .zip(&top.mean)
            .map(|(&l, &m)| (l as i32 - 128) as f32 * m)
            .sum::<f32>()
            * unit;
        // Each output is now within `c * norms[j] + |shift|` of its full product: the largest
        // full output is at least `lower - |shift|` (`lower` the largest `row[j] - c *
        // norms[j]`), and output j can be within `margin` of it only if `row[j] + c * norms[j]
        // + |shift| >= lower - |shift| - margin`.
        let norms = &top.norms[..];
        let mut peaks = vec![[0f32; 16]; row.len().div_ceil(GROUP)];
        let floor = shift_lower_max(row, norms, c, shift, &mut peaks) - 2.0 * shift.abs() - margin;
        if floor.is_nan() {
            return;
        }
        let mut picked = Vec::new();
        candidates(row, norms, c, (floor, &peaks), &mut picked);
        for j in picked {
            let j = j as usize;
            let (b, jj) = (j / NB, j % NB);
            let block = &self.packed[b * NB * self.kp..(b + 1) * NB * self.kp];
            // SAFETY: VNNI is there (`matmul_top` checked); `block` is one block of `kp` inputs,
            // both parts `kp` bytes, `jj` < 16.
            let [h, l] = unsafe { vnni::column_sums(parts, block, jj, self.kp) };
            row[j] = split_value(
                [h as i64, l as i64],
                self.offsets[j],
                unit * self.scales[j],
                bias[j],
            );
        }
    }

    /// `out` = the quantised rows `q` times this matrix transposed (lengths checked by the
    /// caller; `kernel` one the CPU has).
    fn product(&self, kernel: Int8Kernel, q: &QRows, bias: Option<&[f32]>, out: &mut [f32]) {
        let m = q.scales.len();
        let panels = self.n.div_ceil(NB * PANEL);
        // Tasks own whole panels (64 columns), as one disjoint slice of every output row.
        let tasks = tasks(m * self.n * self.k, panels, rayon::current_num_threads());
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
                self.panel_rows(kernel, q, cols, bias, rows);
                done += width;
            }
        });
    }

    /// One panel (`nb` blocks of 16 columns from column `c0`) for every row: the rows in equal
    /// chunks of at most [`MR`] quantised rows (19 rows: 5+5+5+4, not 6+6+6+1), so that every
    /// chunk reuses each loaded weight vector several times. `rows[i][at..at + width]` is where
    /// output row `i`'s columns `c0..c0 + width` go.
    fn panel_rows(
        &self,
        kernel: Int8Kernel,
        q: &QRows,
        cols: Cols,
        bias: Option<&[f32]>,
        rows: &mut [&mut [f32]],
    ) {
        let Cols { c0, nb, at, width } = cols;
        let (m, kp) = (rows.len(), self.kp);
        let per_row = q.rows_per_input();
        let chunks = m.div_ceil(MR / per_row);
        let w = &self.packed[c0 * kp..(c0 + nb * NB) * kp];
        let offsets = &self.offsets[c0..c0 + nb * NB];
        let scales = &self.scales[c0..c0 + width];
        let zeros = [0f32; NB * PANEL];
        let b = bias.map_or(&zeros[..width], |b| &b[c0..c0 + width]);
        let mut m0 = 0;
        for c in 0..chunks {
            let mr = m / chunks + usize::from(c < m % chunks);
            let xs = &q.scales[m0..m0 + mr];
            let mut outs: [&mut [f32]; MR] = Default::default();
            for (o, row) in outs.iter_mut().zip(rows[m0..m0 + mr].iter_mut()) {
                *o = &mut row[at..at + width];
            }
            let outs = &mut outs[..mr];
            // How the VNNI kernel finishes its sums straight into `outs`.
            #[cfg(target_arch = "x86_64")]
            let f = vnni::Finish {
                xs,
                offsets,
                scales,
                bias: b,
            };
            match &q.rows {
                Rows::Bytes(bytes) => {
                    let x = &bytes[m0 * kp..(m0 + mr) * kp];
                    #[cfg(target_arch = "x86_64")]
                    if kernel == Int8Kernel::Avx512Vnni {
                        // SAFETY: `kernel` is one the CPU has (`Int8Kernel::available`); `x`
                        // holds `mr` <= 6 rows of `kp`, `w` `nb` blocks of 16 columns, `offsets`
                        // `nb` blocks, `xs` `mr` scales, `scales`, `bias` and every slice of
                        // `outs` `width` <= 16 * nb entries.
                        unsafe { vnni::panel(x, w, kp, nb, mr, vnni::Target::Outs(&f, outs)) };
                        m0 += mr;
                        continue;
                    }
                    let mut acc = [[0i64; NB * PANEL]; MR];
                    match kernel {
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: `kernel` is one the CPU has; `x` holds `mr` <= 6 rows of `kp`,
                        // `w` `nb` <= 4 blocks.
                        Int8Kernel::Avx2 => unsafe { avx2::panel(x, w, kp, mr, nb, &mut acc) },
                        _ => scalar_panel(x, w, kp, mr, nb, &mut acc),
                    }
                    for ((a, &sx), dst) in acc.iter().zip(xs).zip(outs.iter_mut()) {
                        finish_row(&a[..width], &offsets[..width], scales, sx, b, dst);
                    }
                }
                Rows::Split(bytes) => {
                    // Two byte rows per output row: its high and low parts' sums, combined.
                    let x = &bytes[2 * m0 * kp..2 * (m0 + mr) * kp];
                    #[cfg(target_arch = "x86_64")]
                    if kernel == Int8Kernel::Avx512Vnni {
                        // SAFETY: as for `Bytes`, with `2 * mr` <= 6 rows of `kp` in `x`.
                        unsafe { vnni::panel(x, w, kp, nb, 2 * mr, vnni::Target::Split(&f, outs)) };
                        m0 += mr;
                        continue;
                    }
                    // The portable kernel (the VNNI one's oracle in tests).
                    let mut acc = [[0i64; NB * PANEL]; MR];
                    scalar_panel(x, w, kp, 2 * mr, nb, &mut acc);
                    for (i, (&sx, dst)) in xs.iter().zip(outs.iter_mut()).enumerate() {
                        let sums = [&acc[2 * i][..width], &acc[2 * i + 1][..width]];
                        finish_split(sums, &offsets[..width], scales, sx, b, dst);
                    }
                }
                Rows::Wide(wide) => {
                    let x = &wide[m0 * kp..(m0 + mr) * kp];
                    let mut acc = [[0i64; NB * PANEL]; MR];
                    match kernel {
                        #[cfg(target_arch = "x86_64")]
                        // SAFETY: as for `Bytes`.
                        Int8Kernel::Avx2 => unsafe { avx2::panel(x, w, kp, mr, nb, &mut acc) },
                        _ => scalar_panel(x, w, kp, mr, nb, &mut acc),
                    }
                    for ((a, &sx), dst) in acc.iter().zip(xs).zip(outs.iter_mut()) {
                        finish_wide(&a[..width], scales, sx, b, dst);
                    }
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
/// Integer sums back to f32: (acc - offset) * (row scale * column scale) + bias.
fn finish_row(acc: &[i64], offsets: &[i32], scales: &[f32], sx: f32, bias: &[f32], dst: &mut [f32]) -> () {
    for ((((d, &a), &o), &s), &b) in dst.iter_mut().zip(acc).zip(offsets).zip(scales).zip(bias) {
        *d = (a - o as i64) as f32 * (sx * s) + b;
    }
}
}

multiversion! {
/// [`finish_wide`] for the high and low parts' sums (the portable form of the VNNI kernel's
/// finish, which combines them in f64): `HIGH * (hi - offset) + (lo - offset)` rounded to f32
/// once.
fn finish_split(sums: [&[i64]; 2], offsets: &[i32], scales: &[f32], sx: f32, bias: &[f32], dst: &mut [f32]) -> () {
    let [hi, lo] = sums;
    for (((((d, &h), &l), &o), &s), &b) in dst.iter_mut().zip(hi).zip(lo).zip(offsets).zip(scales).zip(bias) {
        *d = split_value([h, l], o, sx * s, b);
    }
}
}

/// One output of [`finish_split`] from its high and low sums, column offset, scale (the row's
/// times the column's) and bias.
#[inline(always)]
fn split_value([h, l]: [i64; 2], offset: i32, scale: f32, bias: f32) -> f32 {
    let t = (h - offset as i64) * HIGH as i64 + (l - offset as i64);
    t as f32 * scale + bias
}

multiversion! {
/// [`finish_row`] for [`Activations::Int16`] (signed activations, no offset): `acc * (row scale
/// * column scale) + bias`, the exact sum rounded to f32 once.
fn finish_wide(acc: &[i64], scales: &[f32], sx: f32, bias: &[f32], dst: &mut [f32]) -> () {
    for (((d, &a), &s), &b) in dst.iter_mut().zip(acc).zip(scales).zip(bias) {
        *d = a as f32 * (sx * s) + b;
    }
}
}

/// How many tasks share a product of `work` multiply-adds over `panels` panels. The smallest
/// product split is 256K multiply-adds (one row by 512 x 512, ~12 us on one thread), as in the
/// f32 product: with the pool kept awake through decoding (`pool::hot`) a hand-off costs about
/// a microsecond (from 2M, as before, one row's layer products all ran on one thread while the
/// other waited: a quarter of int8 greedy time at batch 1). Up to 4M (one row's layer products,
/// a few rows' small ones) one task per thread, each hand-off a tenth of the work or more;
/// above, a few per thread balance the work.
fn tasks(work: usize, panels: usize, threads: usize) -> usize {
    if work < 1 << 18 || panels < 2 {
        1
    } else {
        let per_thread = if work < 1 << 22 { 1 } else { 4 };
        panels.min(per_thread * threads.max(1))
    }
}

thread_local! {
    /// The quantised activations' buffers, kept between calls: allocating them anew each time
    /// costs page faults once they are large (a beam batch's rows). Taken, not borrowed, so that
    /// a nested call on the same thread (rayon may run another job while waiting) just allocates.
    static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static SCRATCH16: Cell<Vec<i16>> = const { Cell::new(Vec::new()) };
}

/// Activation rows quantised for one product, each padded to `kp` inputs with zeros.
struct QRows {
    rows: Rows,
    /// One per input row: the value of one unit.
    scales: Vec<f32>,
}

enum Rows {
    /// [`Activations::Int8`]: one row of `q + 128` bytes per input row.
    Bytes(Vec<u8>),
    /// [`Activations::Int16`] for VNNI: two rows of `q + 128` bytes per input row, the high and
    /// low parts `h`, `l` of its 16-bit values `HIGH * h + l`.
    Split(Vec<u8>),
    /// [`Activations::Int16`]: one row of 16-bit values per input row.
    Wide(Vec<i16>),
}

impl QRows {
    /// `x` (`m` rows of `k`) quantised as `activations` says; 16-bit values `split` into bytes
    /// for the VNNI kernel.
    ///
    /// The scratch buffers are reused as they are, not cleared (clearing them was a memset of
    /// every product's rows, 2.5 % of int8 beam-4 batched time): what a row's quantiser leaves
    /// unwritten cannot reach an output. A row's padding inputs `k..kp` meet zero weights
    /// (`QMatrix::quantize` pads with zeros), and a row with no non-zero finite value (left as
    /// it was) has scale 0, so its outputs are the bias whatever its bytes.
    fn quantize(
        x: &[f32],
        m: usize,
        k: usize,
        kp: usize,
        activations: Activations,
        split: bool,
    ) -> Self {
        let mut scales = vec![0f32; m];
        let rows = match activations {
            Activations::Int8 => Rows::Bytes(quantize_rows(
                SCRATCH.take(),
                128,
                (x, k, kp),
                &mut scales,
                quantize_row,
            )),
            // Each row as its high and low bytes (`kp` each), straight from the floats.
            Activations::Int16 if split => Rows::Split(quantize_rows(
                SCRATCH.take(),
                128,
                (x, k, 2 * kp),
                &mut scales,
                |row, dst| {
                    let (hi, lo) = dst.split_at_mut(kp);
                    quantize_row16(row, Dst16::Split(&mut hi[..k], &mut lo[..k]))
                },
            )),
            Activations::Int16 => Rows::Wide(quantize_rows(
                SCRATCH16.take(),
                0,
                (x, k, kp),
                &mut scales,
                |row, dst| quantize_row16(row, Dst16::Wide(&mut dst[..k])),
            )),
        };
        QRows { rows, scales }
    }

    /// Quantised rows per input row.
    fn rows_per_input(&self) -> usize {
        match self.rows {
            Rows::Split(_) => 2,
            Rows::Bytes(_) | Rows::Wide(_) => 1,
        }
    }

    /// Hands the buffers back to this thread's scratch.
    fn recycle(self) {
        match self.rows {
            Rows::Bytes(q) | Rows::Split(q) => SCRATCH.set(q),
            Rows::Wide(q) => SCRATCH16.set(q),
        }
    }
}

/// The rows of `x` (`k` long) quantised by `quantize` into `width` elements each of `q`
/// (resized, new elements `fill`, the rest left as they were), each row's scale into `scales`.
fn quantize_rows<T: Copy>(
    mut q: Vec<T>,
    fill: T,
    (x, k, width): (&[f32], usize, usize),
    scales: &mut [f32],
    mut quantize: impl FnMut(&[f32], &mut [T]) -> f32,
) -> Vec<T> {
    q.resize(scales.len() * width, fill);
    for ((row, dst), s) in x.chunks_exact(k).zip(q.chunks_exact_mut(width)).zip(scales) {
        *s = quantize(row, dst);
    }
    q
}

/// Outputs per group of [`shift_lower_max`]'s peaks.
const GROUP: usize = 256;

multiversion! {
/// Adds `shift` to every `row[j]`; returns the largest `row[j] - c * norms[j]` after, and sets
/// `peaks[i]` to the largest `row[j] + c * norms[j]` of group `i` ([`GROUP`] outputs; the last
/// may be shorter) in each of 16 lanes.
fn shift_lower_max(row: &mut [f32], norms: &[f32], c: f32, shift: f32, peaks: &mut [[f32; 16]]) -> f32 {
    let mut lanes = [f32::NEG_INFINITY; 16];
    // Up to 16 outputs into the lanes' lower bounds `lanes` and upper bounds `up`.
    let add = |lanes: &mut [f32; 16], up: &mut [f32; 16], r: &mut [f32], g: &[f32]| {
        for (((l, u), v), &g) in lanes.iter_mut().zip(up.iter_mut()).zip(r.iter_mut()).zip(g) {
            *v += shift;
            *l = l.max(*v - c * g);
            *u = u.max(*v + c * g);
        }
    };
    for ((r, g), p) in row.chunks_mut(GROUP).zip(norms.chunks(GROUP)).zip(peaks.iter_mut()) {
        let mut up = [f32::NEG_INFINITY; 16];
        let (mut rs, mut gs) = (r.chunks_exact_mut(16), g.chunks_exact(16));
        for (r, g) in (&mut rs).zip(&mut gs) {
            add(&mut lanes, &mut up, r, g);
        }
        add(&mut lanes, &mut up, rs.into_remainder(), gs.remainder());
        *p = up;
    }
    lanes.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v))
}
}

/// The indices `j` with `row[j] + c * norms[j] >= floor`, appended to `out`: only in the groups
/// whose peaks ([`shift_lower_max`]) reach `floor`.
fn candidates(
    row: &[f32],
    norms: &[f32],
    c: f32,
    (floor, peaks): (f32, &[[f32; 16]]),
    out: &mut Vec<u32>,
) {
    for (i, p) in peaks.iter().enumerate() {
        if p.iter().any(|&p| p >= floor) {
            let j0 = GROUP * i;
            let end = row.len().min(j0 + GROUP);
            for (t, (&v, &g)) in row[j0..end].iter().zip(&norms[j0..end]).enumerate() {
                if v + c * g >= floor {
                    out.push((j0 + t) as u32);
                }
            }
        }
    }
}

/// What [`QMatrix::matmul_top`] keeps per matrix.
#[derive(Debug, Clone)]
struct TopParts {
    /// Per column: the length (2-norm) of its quantised weights times its scale.
    norms: Vec<f32>,
    /// Per input (`kp`): the columns' mean, dequantised.
    mean: Vec<f32>,
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

/// The bits of `MAGIC`: a rounded value's integer is its bits minus these.
const MAGIC_BITS: i32 = 0x4B40_0000;

/// Where [`quantize_row16`] writes a row.
enum Dst16<'a> {
    /// The 16-bit values `HIGH * q0 + q1`.
    Wide(&'a mut [i16]),
    /// Their high and low parts as `q + 128` bytes, `q0` and `q1` themselves (both in
    /// -127..=127): the VNNI kernel's two byte rows, combined as `HIGH * h + l`.
    Split(&'a mut [u8], &'a mut [u8]),
}

/// One value's 16-bit quantisation (`inv` = 127 / max|x|, `scale` its inverse, `inv_low` =
/// `inv * HIGH`): `q0` the value in 8 bits, `q1` its rounding error in units of a 254th of that
/// step (clamped to ±127, which only float rounding can reach). Round to nearest, ties to even.
#[inline(always)]
fn quantize16(v: f32, inv: f32, scale: f32, inv_low: f32) -> (i32, i32) {
    let r = v * inv + MAGIC;
    let q0 = r.to_bits() as i32 - MAGIC_BITS;
    let e = ((v - (r - MAGIC) * scale) * inv_low).clamp(-127.0, 127.0);
    let q1 = (e + MAGIC).to_bits() as i32 - MAGIC_BITS;
    (q0, q1)
}

multiversion! {
/// One row to [`Activations::Int16`] values `HIGH * q0 + q1` ([`quantize16`]), in the form
/// `dst` asks for; returns the value of one unit (a 254th of the 8-bit step).
fn quantize_row16(row: &[f32], dst: Dst16<'_>) -> f32 {
    let amax = row_amax(row);
    if amax == 0.0 {
        // Scale 0: the row's outputs are the bias whatever `dst` holds (as in `quantize_row`).
        return 0.0;
    }
    let inv = 127.0 / amax;
    let scale = amax / 127.0;
    let inv_low = inv * HIGH as f32;
    match dst {
        Dst16::Wide(d) => {
            for (d, &v) in d.iter_mut().zip(row) {
                let (q0, q1) = quantize16(v, inv, scale, inv_low);
                *d = (HIGH * q0 + q1) as i16;
            }
        }
        Dst16::Split(h, l) => {
            for ((h, l), &v) in h.iter_mut().zip(l.iter_mut()).zip(row) {
                let (q0, q1) = quantize16(v, inv, scale, inv_low);
                *h = (q0 + 128) as u8;
                *l = (q1 + 128) as u8;
            }
        }
    }
    scale / HIGH as f32
}
}

/// `mr` rows of `x` (bytes or 16-bit values) times `nb` blocks of `w`, summed into `acc`.
fn scalar_panel<X: Copy + Into<i64>>(
    x: &[X],
    w: &[i8],
    kp: usize,
    mr: usize,
    nb: usize,
    acc: &mut [[i64; NB * PANEL]; MR],
) {
    for (i, row_acc) in acc.iter_mut().enumerate().take(mr) {
        let xr = &x[i * kp..(i + 1) * kp];
        for b in 0..nb {
            let wb = &w[b * NB * kp..(b + 1) * NB * kp];
            for k4 in 0..kp / 4 {
                let xa = &xr[k4 * 4..k4 * 4 + 4];
                let chunk = &wb[k4 * NB * 4..(k4 + 1) * NB * 4];
                for j in 0..NB {
                    let mut s = 0i64;
                    for t in 0..4 {
                        s += xa[t].into() * chunk[j * 4 + t] as i64;
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
    /// The CPU has avx512f and avx512vnni; `block` holds one block of `kp` inputs (`16 * kp`
    /// bytes, `kp` a multiple of 4), both parts at least `kp` bytes, `jj` < 16.
    #[target_feature(enable = "avx512f,avx512vnni")]
    pub(super) unsafe fn column_sums(
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
            let w = _mm512_mask_i32gather_epi32::<1>(
                _mm512_setzero_si512(),
                mask,
                index,
                wp.add(64 * g) as *const _,
            );
            let xh = _mm512_maskz_loadu_epi32(mask, hp.add(4 * g) as *const i32);
            let xl = _mm512_maskz_loadu_epi32(mask, lp.add(4 * g) as *const i32);
            h = _mm512_dpbusd_epi32(h, xh, w);
            l = _mm512_dpbusd_epi32(l, xl, w);
            g += n;
        }
        [_mm512_reduce_add_epi32(h), _mm512_reduce_add_epi32(l)]
    }

    /// `rows` rows `x` of the panel times `nb` blocks of weights `w`, into `target`.
    ///
    /// # Safety
    /// The CPU has avx512f, avx512bw and avx512vnni. `rows` is 1 to 6; `x` holds `rows` rows of
    /// `kp` bytes (`kp` a multiple of 4), `w` `nb` <= 4 blocks of `16 * kp` bytes. `outs` has
    /// `rows` slices (`rows / 2` with `Target::Split`, `rows` even), all of the same length
    /// `cols` <= 16 * `nb`,
    /// `f.xs` one scale per slice of `outs`, `f.offsets` `16 * nb` entries, and `f.scales` and
    /// `f.bias` at least `cols` entries.
    pub(super) unsafe fn panel(
        x: &[u8],
        w: &[i8],
        kp: usize,
        nb: usize,
        rows: usize,
        target: Target,
    ) {
        match (rows, nb) {
            (6, 4) => kernel::<6, 4>(x, w, kp, target),
            (m, 4) => dispatch_rows::<4>(m, x, w, kp, target),
            (m, 3) => dispatch_rows::<3>(m, x, w, kp, target),
            (m, 2) => dispatch_rows::<2>(m, x, w, kp, target),
            (m, _) => dispatch_rows::<1>(m, x, w, kp, target),
        }
    }

    /// # Safety
    /// As [`panel`], with `m` rows.
    unsafe fn dispatch_rows<const B: usize>(
        m: usize,
        x: &[u8],
        w: &[i8],
        kp: usize,
        target: Target,
    ) {
        match m {
            1 => kernel::<1, B>(x, w, kp, target),
            2 => kernel::<2, B>(x, w, kp, target),
            3 => kernel::<3, B>(x, w, kp, target),
            4 => kernel::<4, B>(x, w, kp, target),
            5 => kernel::<5, B>(x, w, kp, target),
            _ => kernel::<6, B>(x, w, kp, target),
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
        let a = &*(sums.as_ptr() as *const [[__m512i; B]; R]);
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
            let off = _mm512_loadu_si512(f.offsets.as_ptr().add(lo) as *const _);
            let sc = _mm512_maskz_loadu_ps(mask, f.scales.as_ptr().add(lo));
            let bias = _mm512_maskz_loadu_ps(mask, f.bias.as_ptr().add(lo));
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
                _mm512_mask_storeu_ps(out.as_mut_ptr().add(lo), mask, r);
            }
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod avx2 {
    use super::{MR, NB, PANEL};
    use std::arch::x86_64::*;

    /// An activation element the AVX2 kernel takes: `q + 128` bytes or signed 16-bit values.
    pub(super) trait Act: Copy {
        /// The most 4-input steps whose pair sums fit an i32 lane.
        const STEPS: usize;
        /// Inputs `4 * k4..4 * k4 + 4` of the row at `p`, as i16, repeated four times.
        ///
        /// # Safety
        /// The CPU has AVX2; `p` points at 4 readable elements.
        unsafe fn four(p: *const Self) -> __m256i;
    }

    impl Act for u8 {
        // (255 * 127 * 2) per step: never near 2^31 for any k.
        const STEPS: usize = usize::MAX;
        #[target_feature(enable = "avx2")]
        unsafe fn four(p: *const u8) -> __m256i {
            // SAFETY: 4 bytes readable (the caller's contract).
            let v = unsafe { (p as *const u32).read_unaligned() };
            _mm256_cvtepu8_epi16(_mm_set1_epi32(v as i32))
        }
    }

    impl Act for i16 {
        // |a| <= 254 * 127 + 127, |w| <= 127: 8_225_790 per step, 261 steps below 2^31.
        const STEPS: usize = 256;
        #[target_feature(enable = "avx2")]
        unsafe fn four(p: *const i16) -> __m256i {
            // SAFETY: 4 values (8 bytes) readable (the caller's contract).
            let v = unsafe { (p as *const i64).read_unaligned() };
            _mm256_set1_epi64x(v)
        }
    }

    /// `mr` rows of `x` times `nb` blocks of `w`, summed into `acc`: block by block, in groups
    /// of at most 3 rows that share each widened weight vector.
    ///
    /// # Safety
    /// The CPU has AVX2; `x` holds `mr` <= 6 rows of `kp` elements (`kp` a multiple of 4) and
    /// `w` `nb` <= 4 blocks of `16 * kp` bytes.
    pub(super) unsafe fn panel<A: Act>(
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
                // SAFETY: the CPU has AVX2; `xs` holds `g` rows of `kp`, `wb` one block.
                unsafe {
                    match g {
                        1 => block::<A, 1>(xs, wb, kp, r0, b, acc),
                        2 => block::<A, 2>(xs, wb, kp, r0, b, acc),
                        _ => block::<A, 3>(xs, wb, kp, r0, b, acc),
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
    /// The CPU has AVX2; `x` holds `G` rows of `kp` elements (a multiple of 4), `w` `16 * kp`
    /// bytes; `r0 + G <= MR` and `b < PANEL`.
    #[target_feature(enable = "avx2")]
    unsafe fn block<A: Act, const G: usize>(
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
                    *a = unsafe { A::four(xp.add(g * kp + k4 * 4)) };
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
    /// residual's unit is 1/254 of the first), in every kernel.
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

    /// The VNNI form of 16-bit activations (high and low bytes, two products combined) gives
    /// the integers of the 16-bit form; run here through the portable kernel.
    #[test]
    fn split_sixteen_bit_rows_give_the_same_outputs() {
        let mut seed = 29;
        let (m, n, k) = (7, 70, 130);
        let x: Vec<f32> = (0..m * k)
            .map(|i| lcg(&mut seed) * if i % 13 == 0 { 30.0 } else { 1.0 })
            .collect();
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
        let bias: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
        let q = QMatrix::quantize(&w, n, k).with_activations(Activations::Int16);
        let mut outs = Vec::new();
        for split in [false, true] {
            let rows = QRows::quantize(&x, m, k, q.kp, Activations::Int16, split);
            assert_eq!(rows.rows_per_input(), 1 + usize::from(split));
            let mut out = vec![0f32; m * n];
            q.product(Int8Kernel::Scalar, &rows, Some(&bias), &mut out);
            outs.push(out);
        }
        assert_eq!(outs[0], outs[1]);
        // The two forms hold the same values, row by row.
        let (wide, split) = (
            QRows::quantize(&x, m, k, q.kp, Activations::Int16, false),
            QRows::quantize(&x, m, k, q.kp, Activations::Int16, true),
        );
        let (Rows::Wide(a), Rows::Split(b)) = (&wide.rows, &split.rows) else {
            panic!("16-bit rows of the wrong form");
        };
        for (a, b) in a.chunks_exact(q.kp).zip(b.chunks_exact(2 * q.kp)) {
            let (hi, lo) = b.split_at(q.kp);
            for c in 0..k {
                let v = HIGH * (hi[c] as i32 - 128) + (lo[c] as i32 - 128);
                assert_eq!(v, a[c] as i32, "input {c}");
            }
        }
    }

    /// Sums far beyond an i32 lane's range (2048 inputs of the largest 16-bit activation by the
    /// largest weight): every kernel still adds them exactly.
    #[test]
    fn long_rows_of_the_largest_values_do_not_overflow() {
        let (m, n, k) = (3, 32, 2048);
        let w = vec![1.0f32; n * k];
        let x = vec![1.0f32; m * k];
        for activations in [Activations::Int8, Activations::Int16] {
            let q = QMatrix::quantize(&w, n, k).with_activations(activations);
            for kernel in available_kernels() {
                let mut out = vec![0f32; m * n];
                q.matmul_with(kernel, &x, m, None, &mut out).unwrap();
                assert!(
                    out.iter().all(|&v| (v - k as f32).abs() < 1e-2),
                    "{kernel:?} {activations:?}: {:?}",
                    &out[..4]
                );
            }
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
    fn leftover_scratch_never_reaches_an_output() {
        // Padded rows (k = 5 -> 8) and a zero row, before and after a product that fills this
        // thread's scratch with other values (longer rows, no zero row).
        let mut seed = 11;
        let (m, n, k) = (3, 20, 5);
        let mut x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed)).collect();
        x[k..2 * k].fill(0.0);
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
        let bias: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
        let (bm, bk) = (9, 7);
        let bx: Vec<f32> = (0..bm * bk).map(|_| 1.0 + lcg(&mut seed).abs()).collect();
        let bw: Vec<f32> = (0..n * bk).map(|_| lcg(&mut seed)).collect();
        for activations in [Activations::Int8, Activations::Int16] {
            let q = QMatrix::quantize(&w, n, k).with_activations(activations);
            let big = QMatrix::quantize(&bw, n, bk).with_activations(activations);
            for kernel in available_kernels() {
                let mut first = vec![0f32; m * n];
                q.matmul_with(kernel, &x, m, Some(&bias), &mut first)
                    .unwrap();
                let mut other = vec![0f32; bm * n];
                big.matmul_with(kernel, &bx, bm, None, &mut other).unwrap();
                let mut again = vec![0f32; m * n];
                q.matmul_with(kernel, &x, m, Some(&bias), &mut again)
                    .unwrap();
                let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
                assert_eq!(bits(&first), bits(&again), "{kernel:?} {activations:?}");
                assert_eq!(bits(&first[n..2 * n]), bits(&bias), "{kernel:?}: zero row");
            }
        }
    }

    #[test]
    fn top_outputs_are_the_full_products_bit_for_bit_and_the_rest_within_their_bound() {
        // k = 100: 25 groups of 4 inputs (one gather of 16 and a partial one); k = 5 padded to
        // 8; n not a multiple of 16 nor of the peaks' groups. A few peaked columns give each row
        // a clear top; a zero row has only its bias.
        let mut seed = 21;
        for (m, n, k) in [(7, 1005, 100), (3, 40, 5), (13, 300, 512)] {
            let mut x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed)).collect();
            x[k..2 * k].fill(0.0);
            let mut w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
            for r in 0..m.min(n) {
                let j = (r * 37) % n;
                w[j * k..(j + 1) * k].copy_from_slice(&x[r * k..(r + 1) * k]);
            }
            let bias: Vec<f32> = (0..n).map(|_| lcg(&mut seed) * 0.1).collect();
            let q = QMatrix::quantize(&w, n, k);
            let mut full = vec![0f32; m * n];
            q.matmul(&x, m, Some(&bias), &mut full).unwrap();
            // The 8-bit activations' error (half a step) through each column, and through the
            // columns' mean (the shift), from the float weights (plus their rounding).
            let l1: Vec<f32> = (0..n)
                .map(|j| w[j * k..(j + 1) * k].iter().map(|v| v.abs() + 0.01).sum())
                .collect();
            let mean_l1 = l1.iter().sum::<f32>() / n as f32;
            let vnni = Int8Kernel::detect() == Int8Kernel::Avx512Vnni;
            for margin in [0.0, 0.3, f32::INFINITY] {
                let mut top = vec![f32::NAN; m * n];
                q.matmul_top(&x, m, &bias, &mut top, margin).unwrap();
                let mut approximate = 0;
                for r in 0..m {
                    let (t, f) = (&top[r * n..(r + 1) * n], &full[r * n..(r + 1) * n]);
                    let best = f.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                    let amax = x[r * k..(r + 1) * k]
                        .iter()
                        .fold(0f32, |a, v| a.max(v.abs()));
                    for j in 0..n {
                        if f[j] >= best - margin {
                            assert_eq!(t[j].to_bits(), f[j].to_bits(), "{m}x{n}x{k} {r},{j}");
                        }
                        let bound = (amax / 254.0) * (l1[j] + mean_l1) + 1e-5;
                        assert!(
                            (t[j] - f[j]).abs() <= bound,
                            "{r},{j}: {} vs {}",
                            t[j],
                            f[j]
                        );
                        approximate += usize::from(t[j].to_bits() != f[j].to_bits());
                    }
                    // A row alone gives the same outputs as among the others.
                    let mut alone = vec![0f32; n];
                    let xr = &x[r * k..(r + 1) * k];
                    q.matmul_top(xr, 1, &bias, &mut alone, margin).unwrap();
                    assert!(alone.iter().zip(t).all(|(a, b)| a.to_bits() == b.to_bits()));
                }
                assert!(top[n..2 * n]
                    .iter()
                    .zip(&bias)
                    .all(|(a, b)| a.to_bits() == b.to_bits()));
                // The 8-bit shortcut is taken (with VNNI) wherever the margin leaves room.
                assert_eq!(
                    approximate > 0,
                    vnni && margin.is_finite(),
                    "{m}x{n}x{k} {margin}"
                );
            }
        }
        // Lengths are checked as for `matmul`.
        let q = QMatrix::quantize(&[0.5; 8], 2, 4);
        assert!(q
            .matmul_top(&[0.0; 4], 1, &[0.0], &mut [0.0; 2], 0.0)
            .is_err());
        assert!(q
            .matmul_top(&[0.0; 3], 1, &[0.0; 2], &mut [0.0; 2], 0.0)
            .is_err());
    }

    #[test]
    fn matmul_top_takes_out_the_part_of_the_errors_that_the_columns_share() {
        // Columns = a shared direction plus a little of their own (as embeddings are): the 8-bit
        // errors are then mostly one shift per row, which matmul_top removes.
        let mut seed = 8;
        let (m, n, k) = (4, 400, 64);
        let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed)).collect();
        let shared: Vec<f32> = (0..k).map(|_| lcg(&mut seed)).collect();
        let w: Vec<f32> = (0..n * k)
            .map(|i| shared[i % k] + 0.1 * lcg(&mut seed))
            .collect();
        let bias = vec![0f32; n];
        let q = QMatrix::quantize(&w, n, k);
        let mut full = vec![0f32; m * n];
        q.matmul(&x, m, Some(&bias), &mut full).unwrap();
        let mut top = vec![0f32; m * n];
        q.matmul_top(&x, m, &bias, &mut top, 0.0).unwrap();
        let eight = q.clone().with_activations(Activations::Int8);
        let mut plain = vec![0f32; m * n];
        eight.matmul(&x, m, Some(&bias), &mut plain).unwrap();
        let err = |v: &[f32]| v.iter().zip(&full).map(|(a, b)| (a - b).abs()).sum::<f32>();
        if Int8Kernel::detect() == Int8Kernel::Avx512Vnni {
            assert!(
                err(&top) < 0.25 * err(&plain),
                "{} vs {}",
                err(&top),
                err(&plain)
            );
        } else {
            assert_eq!(err(&top), 0.0);
        }
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
    fn products_split_from_256k_multiply_adds_one_task_per_thread_up_to_4m() {
        assert_eq!(tasks((1 << 18) - 1, 8, 2), 1);
        assert_eq!(tasks(1 << 18, 8, 2), 2);
        assert_eq!(tasks(1 << 18, 1, 2), 1, "one panel cannot be split");
        assert_eq!(tasks((1 << 22) - 1, 32, 2), 2);
        assert_eq!(tasks(1 << 22, 32, 2), 8);
        assert_eq!(tasks(1 << 22, 5, 2), 5, "at most one task per panel");
        assert_eq!(tasks(1 << 22, 32, 1), 4);
        assert_eq!(tasks(1 << 22, 32, 0), 4);
    }

    #[test]
    fn parallel_products_match_a_single_thread() {
        // One task (below 256K multiply-adds), one per thread (to 4M), several per thread: the
        // tasks each shape gets on 3 threads.
        for (m, n, k, split) in [(1, 600, 256, 1), (5, 1000, 96, 3), (23, 1000, 200, 12)] {
            assert_eq!(tasks(m * n * k, n.div_ceil(NB * PANEL), 3), split);
            let mut seed = 5;
            let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed)).collect();
            let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
            let bias: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
            let q = QMatrix::quantize(&w, n, k);
            let product = |threads| {
                let pool = rayon::ThreadPoolBuilder::new()
                    .num_threads(threads)
                    .build()
                    .unwrap();
                let mut out = vec![f32::NAN; m * n];
                pool.install(|| q.matmul(&x, m, Some(&bias), &mut out).unwrap());
                out
            };
            let single = product(1);
            let want = reference(&x, &w, m, n, k, &bias);
            for (a, b) in single.iter().zip(&want) {
                assert!(
                    (a - b).abs() < 0.02 * (k as f32).sqrt(),
                    "{m}x{n}x{k}: {a} vs {b}"
                );
            }
            for threads in [2, 3] {
                let par = product(threads);
                assert!(
                    par.iter()
                        .zip(&single)
                        .all(|(a, b)| a.to_bits() == b.to_bits()),
                    "{m}x{n}x{k} on {threads} threads differs from one thread"
                );
            }
        }
    }
}
