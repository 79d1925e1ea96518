//! The top-logit shortcut, [`QMatrix::matmul_top`]: with VNNI and 16-bit activations, the
//! high parts' product for every output, and both parts' for those that could be near their
//! row's largest.

#[cfg(target_arch = "x86_64")]
use super::{
    activations::{quantize_row16, quantize_rows, Dst16, QRows, Rows, SCRATCH},
    split_value, vnni, Activations, Avx512Vnni, HIGH, NB,
};
use super::{multiversion, Isa, QMatrix};
use crate::error::Result;

impl QMatrix {
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
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_variables))]
    pub(crate) fn matmul_top(
        &self,
        x: &[f32],
        m: usize,
        bias: &[f32],
        out: &mut [f32],
        margin: f32,
    ) -> Result<()> {
        self.check(x, m, Some(bias), out)?;
        let isa = Isa::best();
        #[cfg(target_arch = "x86_64")]
        if let Isa::Vnni(vnni) = isa {
            if self.activations == Activations::Int16 {
                self.top_vnni(vnni, x, m, bias, out, margin);
                return Ok(());
            }
        }
        self.run(isa, x, m, Some(bias), out);
        Ok(())
    }

    /// [`QMatrix::matmul_top`] with VNNI (lengths checked).
    #[cfg(target_arch = "x86_64")]
    fn top_vnni(
        &self,
        vnni: Avx512Vnni,
        x: &[f32],
        m: usize,
        bias: &[f32],
        out: &mut [f32],
        margin: f32,
    ) {
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
        self.product(Isa::Vnni(vnni), &q, Some(bias), out);
        let top = self.top.get_or_init(|| self.top_parts());
        if let Rows::Bytes(high) = &q.rows {
            out.par_chunks_mut(self.n.max(1))
                .zip(high.par_chunks(kp).zip(low.par_chunks(kp)))
                .zip(&units)
                .for_each(|((row, (hi, lo)), &unit)| {
                    self.refine_top(vnni, row, [hi, lo], unit, top, bias, margin)
                });
        }
        q.recycle();
    }

    /// Each column's length, and the columns' mean: one pass over the packed weights, a block
    /// of 16 columns and 4 inputs (64 bytes) at a time.
    #[cfg(target_arch = "x86_64")]
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
    /// bytes, `kp` each) with their column.
    #[cfg(target_arch = "x86_64")]
    #[allow(clippy::too_many_arguments)]
    fn refine_top(
        &self,
        vnni: Avx512Vnni,
        row: &mut [f32],
        parts: [&[u8]; 2],
        unit: f32,
        top: &TopParts,
        bias: &[f32],
        margin: f32,
    ) {
        // Both parts cut to `kp` bytes (checked): the column sums below read that many.
        let parts = [&parts[0][..self.kp], &parts[1][..self.kp]];
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
            // SAFETY: `block` is one block of `kp` inputs (`16 * kp` bytes, cut just above; `kp`
            // a multiple of 4, as every `QMatrix`'s), both parts `kp` bytes (cut above), `jj` <
            // 16.
            let [h, l] = unsafe { vnni::column_sums(vnni, parts, block, jj, self.kp) };
            row[j] = split_value(
                [h as i64, l as i64],
                self.offsets[j],
                unit * self.scales[j],
                bias[j],
            );
        }
    }
}

/// Outputs per group of [`shift_lower_max`]'s peaks.
#[cfg(target_arch = "x86_64")]
const GROUP: usize = 256;

multiversion! {
#[cfg(target_arch = "x86_64")]
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
#[cfg(target_arch = "x86_64")]
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
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
pub(super) struct TopParts {
    /// Per column: the length (2-norm) of its quantised weights times its scale.
    norms: Vec<f32>,
    /// Per input (`kp`): the columns' mean, dequantised.
    mean: Vec<f32>,
}
