//! The weights: quantised once per output row and packed in the kernels' layout (the module's
//! documentation), stored and loaded ([`Packed`], [`QMatrix::parts`],
//! [`QMatrix::from_parts`]), joined ([`QMatrix::concat`]) and read back as floats
//! ([`QMatrix::dequantize_row`]).

use super::{Activations, QMatrix, NB};
use crate::error::{Error, Result};

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
}
