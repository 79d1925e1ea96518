//! The activations: each product's input rows quantised (8 bits, or 16 bits as one row of
//! values or, for VNNI, two rows of bytes), into buffers kept between calls.

use std::cell::Cell;

use super::{multiversion, Activations, HIGH};

thread_local! {
    /// The quantised activations' buffers, kept between calls: allocating them anew each time
    /// costs page faults once they are large (a beam batch's rows). Taken, not borrowed, so that
    /// a nested call on the same thread (rayon may run another job while waiting) just allocates.
    pub(super) static SCRATCH: Cell<Vec<u8>> = const { Cell::new(Vec::new()) };
    static SCRATCH16: Cell<Vec<i16>> = const { Cell::new(Vec::new()) };
}

/// Activation rows quantised for one product, each padded to `kp` inputs with zeros.
pub(super) struct QRows {
    pub(super) rows: Rows,
    /// One per input row: the value of one unit.
    pub(super) scales: Vec<f32>,
}

/// The quantised values of [`QRows`].
pub(super) enum Rows {
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
    pub(super) fn quantize(
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
    pub(super) fn rows_per_input(&self) -> usize {
        match self.rows {
            Rows::Split(_) => 2,
            Rows::Bytes(_) | Rows::Wide(_) => 1,
        }
    }

    /// Hands the buffers back to this thread's scratch.
    pub(super) fn recycle(self) {
        match self.rows {
            Rows::Bytes(q) | Rows::Split(q) => SCRATCH.set(q),
            Rows::Wide(q) => SCRATCH16.set(q),
        }
    }
}

/// The rows of `x` (`k` long) quantised by `quantize` into `width` elements each of `q`
/// (resized, new elements `fill`, the rest left as they were), each row's scale into `scales`.
pub(super) fn quantize_rows<T: Copy>(
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
pub(super) enum Dst16<'a> {
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
pub(super) fn quantize_row16(row: &[f32], dst: Dst16<'_>) -> f32 {
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
