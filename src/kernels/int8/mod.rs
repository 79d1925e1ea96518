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
//!
//! By concern: [`quantize`] quantises and packs the weights (and builds, joins and reads
//! [`QMatrix`]es), [`activations`] quantises the activation rows of each product, one file per
//! instruction set runs the products over panels ([`scalar`], `avx2`, `vnni`), and [`top`] is the
//! shortcut for a model's logits ([`QMatrix::matmul_top`]). This file checks a product's lengths,
//! chooses its kernel and drives it over tasks and panels.

mod activations;
#[cfg(target_arch = "x86_64")]
mod avx2;
mod quantize;
mod scalar;
#[cfg(test)]
mod tests;
mod top;
#[cfg(target_arch = "x86_64")]
mod vnni;

use activations::{QRows, Rows};
pub use quantize::Packed;
use scalar::scalar_panel;
use top::TopParts;

use super::simd::multiversion;
#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2, Avx512Vnni};
use crate::error::{Error, Result};

/// Columns per block (one 512-bit register of i32 lanes).
const NB: usize = 16;
/// Blocks per kernel call (64 columns).
const PANEL: usize = 4;
/// Rows per kernel call.
const MR: usize = 6;

/// A kernel asked for ([`QMatrix::matmul_with`]). What runs is the best kernel up to it that
/// the CPU has ([`Int8Kernel::select`]): a kernel the CPU does not have is never run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) enum Int8Kernel {
    /// Portable Rust (asked for by tests: otherwise only ever the fallback of the others).
    #[cfg_attr(not(test), allow(dead_code))]
    Scalar,
    /// AVX2.
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    Avx2,
    /// AVX-512 with VNNI.
    Avx512Vnni,
}

impl Int8Kernel {
    /// The best kernel up to `self` that the CPU has, holding the capability that proves it
    /// (detected once, [`super::simd::caps`]).
    fn select(self) -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            let caps = super::simd::caps();
            if self >= Int8Kernel::Avx512Vnni {
                if let Some(isa) = caps.avx512_vnni() {
                    return Isa::Vnni(isa);
                }
            }
            if self >= Int8Kernel::Avx2 {
                if let Some(isa) = caps.avx2() {
                    return Isa::Avx2(isa);
                }
            }
        }
        Isa::Scalar
    }
}

/// The kernel that runs: an instruction set's holds the capability that proves the CPU has it,
/// so that only [`Int8Kernel::select`] (through detection) can choose it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Isa {
    /// Portable Rust ([`scalar`]).
    Scalar,
    /// AVX2 (`avx2`).
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2),
    /// AVX-512 with VNNI (`vnni`).
    #[cfg(target_arch = "x86_64")]
    Vnni(Avx512Vnni),
}

impl Isa {
    /// The best kernel the CPU has.
    fn best() -> Self {
        Int8Kernel::Avx512Vnni.select()
    }

    /// Whether this is the VNNI kernel (which takes 16-bit activations as two byte rows).
    fn is_vnni(self) -> bool {
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Vnni(_) => true,
            _ => false,
        }
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
    /// What [`QMatrix::matmul_top`] needs besides the weights, computed on its first use (with
    /// VNNI).
    #[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
    top: std::sync::OnceLock<TopParts>,
}

impl QMatrix {
    /// `out` (`m` x `n`) = `x` (`m` x `k`) times this matrix transposed, plus `bias` (`n`), with
    /// the best kernel this CPU has. Every length is checked first.
    pub(crate) fn matmul(
        &self,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) -> Result<()> {
        self.check(x, m, bias, out)?;
        self.run(Isa::best(), x, m, bias, out);
        Ok(())
    }

    /// [`QMatrix::matmul`] with `kernel`, or the best one below it that the CPU has.
    #[cfg(test)]
    pub(crate) fn matmul_with(
        &self,
        kernel: Int8Kernel,
        x: &[f32],
        m: usize,
        bias: Option<&[f32]>,
        out: &mut [f32],
    ) -> Result<()> {
        self.check(x, m, bias, out)?;
        self.run(kernel.select(), x, m, bias, out);
        Ok(())
    }

    /// A product with `isa` once its lengths are checked ([`QMatrix::check`]): its activations
    /// quantised, then multiplied.
    fn run(&self, isa: Isa, x: &[f32], m: usize, bias: Option<&[f32]>, out: &mut [f32]) {
        let q = QRows::quantize(x, m, self.k, self.kp, self.activations, isa.is_vnni());
        self.product(isa, &q, bias, out);
        q.recycle();
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

    /// `out` = the quantised rows `q` times this matrix transposed. Every slice a kernel gets is
    /// cut (bounds-checked) here and in [`QMatrix::panel_rows`]: wrong lengths panic, they
    /// cannot reach a kernel.
    fn product(&self, isa: Isa, q: &QRows, bias: Option<&[f32]>, out: &mut [f32]) {
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
                self.panel_rows(isa, q, cols, bias, rows);
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
        isa: Isa,
        q: &QRows,
        cols: Cols,
        bias: Option<&[f32]>,
        rows: &mut [&mut [f32]],
    ) {
        let Cols { c0, nb, at, width } = cols;
        // What the kernels' contracts ask of the panel's shape (the slices below are cut to it).
        assert!(
            (1..=PANEL).contains(&nb) && width <= nb * NB,
            "int8 panel of {nb} blocks, {width} columns"
        );
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
            // 1 <= mr <= MR / per_row (chunks <= m, and chunks * (MR / per_row) >= m).
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
                    if let Isa::Vnni(isa) = isa {
                        // SAFETY: `mr` is 1 to 6; `x` holds `mr` rows of `kp` bytes, `w` `nb`
                        // (1 to 4) blocks of `16 * kp`, `offsets` `16 * nb` entries, `xs` one
                        // scale per slice of `outs` (`mr`), `scales`, `bias` and every slice of
                        // `outs` `width` <= 16 * nb entries (all cut to those lengths above).
                        unsafe { vnni::panel(isa, x, w, kp, nb, mr, vnni::Target::Outs(&f, outs)) };
                        m0 += mr;
                        continue;
                    }
                    let mut acc = [[0i64; NB * PANEL]; MR];
                    match isa {
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx2(isa) => avx2::panel(isa, x, w, kp, mr, nb, &mut acc),
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
                    if let Isa::Vnni(isa) = isa {
                        // SAFETY: as for `Bytes`, with `2 * mr` (2 to 6: `per_row` is 2) rows of
                        // `kp` bytes in `x`, two per slice of `outs`.
                        unsafe {
                            vnni::panel(isa, x, w, kp, nb, 2 * mr, vnni::Target::Split(&f, outs))
                        };
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
                    match isa {
                        #[cfg(target_arch = "x86_64")]
                        Isa::Avx2(isa) => avx2::panel(isa, x, w, kp, mr, nb, &mut acc),
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
