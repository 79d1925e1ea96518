//! f32 matrix products `x W^T + b` (W `n x k`, as `nn.Linear.weight`): the float32 path's every
//! product, over weights packed once at load ([`PackedF32`]).
//!
//! The weights are laid out in panels of [`NR`] output columns, each panel `k` rows of `NR`
//! values (input `c`'s weights for those columns side by side), so that a product reads every
//! weight once, in order, whatever the number of rows: a micro-kernel keeps up to [`MR`] rows x
//! `NR` columns of sums in registers and runs down the panel, adding one broadcast input times
//! one panel row per input. The same kernel serves one row (a memory-bound step: the weights
//! stream by once) and hundreds (the encoder): each panel is read from memory once per call, and
//! stays in cache while every group of rows takes it (the rows' inputs are what is read again).
//! Packing at load is what the `gemm` crate otherwise did at every call (a third of a batched
//! decoding step).
//!
//! Each output is one sum over `k` in input order, whichever rows share its call: a sentence's
//! figures do not depend on the batch it is in, nor on the thread count. The AVX-512 and AVX2
//! kernels fuse each multiply-add; the portable one (other CPUs) rounds the product first.
//!
//! [`PackedF32::matmul`] is the checked entry point: it validates every length before any
//! kernel runs, so no caller can make a kernel read or write out of bounds.

use candle_core::{DType, Storage, Tensor};
use rayon::prelude::*;

#[cfg(target_arch = "x86_64")]
use super::simd::{Avx2Fma, Avx512};
use crate::error::{Error, Result};

/// Output columns per panel: two AVX-512 registers.
pub(crate) const NR: usize = 32;
/// Most rows of one micro-kernel call: with AVX-512, 2 x MR accumulator registers (each row's
/// 32 columns in two); the AVX2 kernel takes them in pairs, the portable one all together.
const MR: usize = 8;
/// Inputs per pass of the AVX2 kernel over a panel: 16 KiB of weights, kept in L1 while every
/// pair of rows takes them.
#[cfg(target_arch = "x86_64")]
const KC: usize = 128;

/// One input's weights for one panel's columns (cache-line aligned).
#[derive(Debug, Clone, Copy)]
#[repr(C, align(64))]
struct Lane([f32; NR]);

/// A weight matrix (`n` outputs x `k` inputs) packed for [`PackedF32::matmul`].
#[derive(Debug)]
pub(crate) struct PackedF32 {
    n: usize,
    k: usize,
    /// Panel `p`'s input `c` at `p * k + c`; the last panel's missing columns are zeros.
    lanes: Lanes,
}

/// Zeroed, page-aligned memory for lanes: fresh pages from the system (no pass to clear them:
/// that was a sixth of loading a model), asking for 2 MiB pages where the system offers them
/// (every product streams its whole matrix; with 4 KiB pages each 4 KiB is a TLB miss).
struct Lanes {
    map: memmap2::MmapMut,
    len: usize,
}

impl Lanes {
    fn zeroed(len: usize) -> Result<Self> {
        let bytes = len
            .checked_mul(std::mem::size_of::<Lane>())
            .ok_or_else(|| Error::Internal(format!("{len} lanes overflow the address space")))?;
        let map = memmap2::MmapMut::map_anon(bytes.max(1)).map_err(|e| {
            Error::Internal(format!("cannot allocate {bytes} bytes of weights: {e}"))
        })?;
        #[cfg(target_os = "linux")]
        let _ = map.advise(memmap2::Advice::HugePage);
        Ok(Lanes { map, len })
    }
}

impl std::ops::Deref for Lanes {
    type Target = [Lane];
    fn deref(&self) -> &[Lane] {
        // SAFETY: the mapping is page-aligned (a `Lane` needs 64 bytes), holds `len` lanes'
        // bytes, starts zeroed (all-zero bits are 0.0 floats) and lives as long as `self`.
        unsafe { std::slice::from_raw_parts(self.map.as_ptr().cast::<Lane>(), self.len) }
    }
}

impl std::ops::DerefMut for Lanes {
    fn deref_mut(&mut self) -> &mut [Lane] {
        // SAFETY: as in `deref`, and `&mut self` makes this the only reference.
        unsafe { std::slice::from_raw_parts_mut(self.map.as_mut_ptr().cast::<Lane>(), self.len) }
    }
}

impl std::fmt::Debug for Lanes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} lanes", self.len)
    }
}

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

impl PackedF32 {
    /// Packs `w` (`n x k`, row-major).
    pub(crate) fn pack(w: &[f32], n: usize, k: usize) -> Result<Self> {
        if w.len() != n * k || k == 0 {
            return Err(Error::Internal(format!(
                "packing a {n}x{k} matrix from {} values",
                w.len()
            )));
        }
        Self::pack_from(n, k, |i| w[i])
    }

    /// Packs a matrix stored as `n x k` little-endian f32 bytes (straight from a weights file:
    /// one copy, no float tensor in between).
    pub(crate) fn pack_le_bytes(bytes: &[u8], n: usize, k: usize) -> Result<Self> {
        if bytes.len() != 4 * n * k || k == 0 {
            return Err(Error::Internal(format!(
                "packing a {n}x{k} matrix from {} bytes",
                bytes.len()
            )));
        }
        Self::pack_from(n, k, |i| {
            f32::from_le_bytes([
                bytes[4 * i],
                bytes[4 * i + 1],
                bytes[4 * i + 2],
                bytes[4 * i + 3],
            ])
        })
    }

    /// Packs the matrix whose row-major element `i` (`j * k + c`) is `value(i)`, `k > 0`.
    fn pack_from(n: usize, k: usize, value: impl Fn(usize) -> f32 + Sync) -> Result<Self> {
        let panels = n.div_ceil(NR);
        let mut lanes = Lanes::zeroed(panels * k)?;
        lanes.par_chunks_mut(k).enumerate().for_each(|(p, panel)| {
            let j0 = p * NR;
            for (l, j) in (j0..n.min(j0 + NR)).enumerate() {
                for (c, lane) in panel.iter_mut().enumerate() {
                    lane.0[l] = value(j * k + c);
                }
            }
        });
        Ok(PackedF32 { n, k, lanes })
    }

    /// Packs a CPU f32 tensor of shape `n x k`.
    pub(crate) fn from_tensor(t: &Tensor) -> Result<Self> {
        let (n, k) = t.dims2()?;
        with_host_slice(t, |w| Self::pack(w, n, k))?
    }

    /// Outputs (rows of the original matrix).
    pub(crate) fn rows(&self) -> usize {
        self.n
    }

    /// Inputs (columns of the original matrix).
    pub(crate) fn cols(&self) -> usize {
        self.k
    }

    /// Row `j` of the original matrix (an embedding) into `out` (`k` values).
    pub(crate) fn row(&self, j: usize, out: &mut [f32]) -> Result<()> {
        if j >= self.n || out.len() != self.k {
            return Err(Error::Internal(format!(
                "row {j} of a {}x{} matrix into {} values",
                self.n,
                self.k,
                out.len()
            )));
        }
        let panel = &self.lanes[j / NR * self.k..(j / NR + 1) * self.k];
        for (o, lane) in out.iter_mut().zip(panel) {
            *o = lane.0[j % NR];
        }
        Ok(())
    }

    /// `out` (resized to `m x n`) = `x` (`m x k`) times the matrix transposed, plus `bias` (`n`).
    pub(crate) fn matmul(
        &self,
        x: &[f32],
        m: usize,
        bias: &[f32],
        out: &mut Vec<f32>,
    ) -> Result<()> {
        let (n, k) = (self.n, self.k);
        if x.len() != m * k || bias.len() != n {
            return Err(Error::Internal(format!(
                "f32 product of {m}x{k} by {n}x{k} given {} inputs and {} biases",
                x.len(),
                bias.len()
            )));
        }
        // Every output is written below: only new entries are zeroed (a beam step's logits are
        // tens of MB, cleared for nothing otherwise).
        out.resize(m * n, 0.0);
        if m == 0 {
            return Ok(());
        }
        let panels = n.div_ceil(NR);
        let work = m * n * k;
        let tasks = if work < 1 << 18 {
            1
        } else {
            (rayon::current_num_threads() * 4)
                .min(work >> 16)
                .min(panels)
                .max(1)
        };
        let width = panels.div_ceil(tasks) * NR;
        let kernel = Kernel::detect();
        super::for_column_ranges(out, n, width, |c0, rows| {
            self.columns(kernel, x, bias, c0 / NR, rows)
        });
        Ok(())
    }

    /// One task: the panels from `p0` on that `rows` (every row's slice of their columns) cover.
    fn columns(&self, kernel: Kernel, x: &[f32], bias: &[f32], p0: usize, rows: &mut [&mut [f32]]) {
        let k = self.k;
        let cols = rows.first().map_or(0, |r| r.len());
        let mut acc = [[0f32; NR]; MR];
        for (i, c0) in (0..cols).step_by(NR).enumerate() {
            let p = p0 + i;
            let panel = &self.lanes[p * k..(p + 1) * k];
            let width = NR.min(cols - c0);
            let b = &bias[p * NR..p * NR + width];
            for t0 in (0..rows.len()).step_by(MR) {
                let t1 = rows.len().min(t0 + MR);
                let xs = &x[t0 * k..t1 * k];
                kernel.tile(t1 - t0, xs, k, panel, &mut acc);
                for (row, a) in rows[t0..t1].iter_mut().zip(&acc) {
                    for ((o, &s), &bj) in row[c0..c0 + width].iter_mut().zip(a).zip(b) {
                        *o = s + bj;
                    }
                }
            }
        }
    }
}

/// The micro-kernel the CPU runs (detected, never chosen by a caller): an instruction set's
/// kernel holds the capability that proves the CPU has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kernel {
    #[cfg(target_arch = "x86_64")]
    Avx512(Avx512),
    #[cfg(target_arch = "x86_64")]
    Avx2(Avx2Fma),
    Portable,
}

impl Kernel {
    /// The widest kernel the CPU has.
    fn detect() -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            let caps = super::simd::caps();
            if let Some(isa) = caps.avx512() {
                return Kernel::Avx512(isa);
            }
            if let Some(isa) = caps.avx2_fma() {
                return Kernel::Avx2(isa);
            }
        }
        Kernel::Portable
    }

    /// `acc[r][l]` = sum over `c` of `x[r * k + c] * panel[c][l]`, for the `rows` rows of `x`
    /// (`1..=MR`; `x.len() == rows * k`, `panel.len() == k`, checked).
    fn tile(self, rows: usize, x: &[f32], k: usize, panel: &[Lane], acc: &mut [[f32; NR]; MR]) {
        assert!(
            (1..=MR).contains(&rows) && x.len() == rows * k && panel.len() == k,
            "f32 tile of {rows} rows: {} inputs, {} panel rows for k = {k}",
            x.len(),
            panel.len()
        );
        macro_rules! by_rows {
            ($f:ident $(, $isa:expr)?) => {
                match rows {
                    1 => $f::<1>($($isa,)? x, k, panel, acc),
                    2 => $f::<2>($($isa,)? x, k, panel, acc),
                    3 => $f::<3>($($isa,)? x, k, panel, acc),
                    4 => $f::<4>($($isa,)? x, k, panel, acc),
                    5 => $f::<5>($($isa,)? x, k, panel, acc),
                    6 => $f::<6>($($isa,)? x, k, panel, acc),
                    7 => $f::<7>($($isa,)? x, k, panel, acc),
                    _ => $f::<8>($($isa,)? x, k, panel, acc),
                }
            };
        }
        match self {
            // SAFETY: `x.len() == rows * k` and `panel.len() == k` (checked above), `rows` the
            // kernel's `R`; the capability proves the CPU has AVX-512F.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512(isa) => unsafe { by_rows!(tile_avx512, isa) },
            // SAFETY: as above; the capability proves the CPU has AVX2 and FMA.
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2(isa) => unsafe { by_rows!(tile_avx2, isa) },
            Kernel::Portable => by_rows!(tile_portable),
        }
    }
}

/// [`Kernel::tile`] for `R` rows with AVX-512: 2R accumulator registers, one fused
/// multiply-add per input, row and register.
///
/// # Safety
/// `x.len() >= R * k` and `panel.len() >= k` (its loads are unchecked); `R <= MR`. (The CPU's
/// AVX-512F is proven by the capability.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
unsafe fn tile_avx512<const R: usize>(
    _: Avx512,
    x: &[f32],
    k: usize,
    panel: &[Lane],
    acc: &mut [[f32; NR]; MR],
) {
    use std::arch::x86_64::*;
    let mut lo = [_mm512_setzero_ps(); R];
    let mut hi = [_mm512_setzero_ps(); R];
    let xp = x.as_ptr();
    let bp = panel.as_ptr() as *const f32;
    for c in 0..k {
        // SAFETY: c < k <= panel.len(): lane c is NR = 32 values, 64-byte aligned.
        let (b0, b1) = unsafe {
            (
                _mm512_load_ps(bp.add(c * NR)),
                _mm512_load_ps(bp.add(c * NR + 16)),
            )
        };
        for r in 0..R {
            // SAFETY: r * k + c < R * k <= x.len().
            let v = _mm512_set1_ps(unsafe { *xp.add(r * k + c) });
            lo[r] = _mm512_fmadd_ps(v, b0, lo[r]);
            hi[r] = _mm512_fmadd_ps(v, b1, hi[r]);
        }
    }
    for r in 0..R {
        // SAFETY: acc[r] holds NR = 32 values.
        unsafe {
            _mm512_storeu_ps(acc[r].as_mut_ptr(), lo[r]);
            _mm512_storeu_ps(acc[r].as_mut_ptr().add(16), hi[r]);
        }
    }
}

/// [`Kernel::tile`] for `R` rows with AVX2 and FMA (16 registers of 8 values): the rows in pairs,
/// each pair taking the panel's 32 columns in one pass (8 accumulators, the 4 weight vectors
/// loaded once per input and 2 broadcasts: 8 multiply-adds per 6 loads, no spills; measured
/// faster on Zen 3 than 6 rows by 16 columns in two halves, or 3 rows by 32). The passes go
/// [`KC`] inputs at a time, so that the weights come from memory once, whole cache lines in
/// order, and from L1 for the other pairs (the sums wait in `acc` between chunks; each is still
/// one sum in input order).
///
/// # Safety
/// `x.len() >= R * k` and `panel.len() >= k` (its loads are unchecked); `R <= MR`. (The CPU's
/// AVX2 and FMA are proven by the capability.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn tile_avx2<const R: usize>(
    isa: Avx2Fma,
    x: &[f32],
    k: usize,
    panel: &[Lane],
    acc: &mut [[f32; NR]; MR],
) {
    for c0 in (0..k).step_by(KC) {
        let p = Pass {
            k,
            c0,
            c1: k.min(c0 + KC),
        };
        for r0 in (0..R).step_by(2) {
            // SAFETY: rows `r0..r0 + 2` (or the last one, `r0 + 1 == R`) of `x` exist (`x.len() >=
            // R * k`), `c1 <= k <= panel.len()`, `r0 + G <= R <= MR` (this function's contract).
            unsafe {
                if r0 + 1 < R {
                    avx2_rows::<2>(isa, x, r0, p, panel, acc);
                } else {
                    avx2_rows::<1>(isa, x, r0, p, panel, acc);
                }
            }
        }
    }
}

/// Inputs `c0..c1` of rows of `k` inputs; the sums start at zero when `c0 == 0`, else from `acc`.
#[cfg(target_arch = "x86_64")]
#[derive(Clone, Copy)]
struct Pass {
    k: usize,
    c0: usize,
    c1: usize,
}

/// Rows `r0..r0 + G` of `x` by all 32 columns of the panel, inputs `p.c0..p.c1`, into
/// `acc[r0..]`.
///
/// # Safety
/// `x.len() >= (r0 + G) * p.k`, `p.c1 <= p.k <= panel.len()` (its loads are unchecked), `r0 + G
/// <= MR`. (The CPU's AVX2 and FMA are proven by the capability.)
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
unsafe fn avx2_rows<const G: usize>(
    _: Avx2Fma,
    x: &[f32],
    r0: usize,
    p: Pass,
    panel: &[Lane],
    acc: &mut [[f32; NR]; MR],
) {
    use std::arch::x86_64::*;
    let mut s = [[_mm256_setzero_ps(); 4]; G];
    if p.c0 > 0 {
        for (g, sg) in s.iter_mut().enumerate() {
            for (q, a) in sg.iter_mut().enumerate() {
                // SAFETY: acc[r0 + g] holds NR = 32 values.
                *a = unsafe { _mm256_loadu_ps(acc[r0 + g].as_ptr().add(q * 8)) };
            }
        }
    }
    let xp = x.as_ptr();
    let bp = panel.as_ptr() as *const f32;
    for c in p.c0..p.c1 {
        // SAFETY: c < k <= panel.len(): lane c is NR = 32 values, 64-byte aligned.
        let b = unsafe {
            [
                _mm256_load_ps(bp.add(c * NR)),
                _mm256_load_ps(bp.add(c * NR + 8)),
                _mm256_load_ps(bp.add(c * NR + 16)),
                _mm256_load_ps(bp.add(c * NR + 24)),
            ]
        };
        for (g, sg) in s.iter_mut().enumerate() {
            // SAFETY: (r0 + g) * k + c < (r0 + G) * k <= x.len().
            let v = _mm256_set1_ps(unsafe { *xp.add((r0 + g) * p.k + c) });
            for (a, &bv) in sg.iter_mut().zip(&b) {
                *a = _mm256_fmadd_ps(v, bv, *a);
            }
        }
    }
    for (g, sg) in s.iter().enumerate() {
        for (q, &a) in sg.iter().enumerate() {
            // SAFETY: acc[r0 + g] holds NR = 32 values.
            unsafe { _mm256_storeu_ps(acc[r0 + g].as_mut_ptr().add(q * 8), a) };
        }
    }
}

/// [`Kernel::tile`] for `R` rows in plain Rust (vectorised by the compiler over the lanes).
#[inline(always)]
fn tile_portable<const R: usize>(x: &[f32], k: usize, panel: &[Lane], acc: &mut [[f32; NR]; MR]) {
    let mut sums = [[0f32; NR]; R];
    for (c, lane) in panel.iter().enumerate().take(k) {
        for (r, s) in sums.iter_mut().enumerate() {
            let v = x[r * k + c];
            for (a, &b) in s.iter_mut().zip(&lane.0) {
                *a += v * b;
            }
        }
    }
    acc[..R].copy_from_slice(&sums);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn product(x: &[f32], m: usize, w: &[f32], n: usize, k: usize, b: &[f32]) -> Vec<f64> {
        let mut want = vec![0f64; m * n];
        for i in 0..m {
            for j in 0..n {
                want[i * n + j] = (0..k)
                    .map(|t| x[i * k + t] as f64 * w[j * k + t] as f64)
                    .sum::<f64>()
                    + b[j] as f64;
            }
        }
        want
    }

    fn values(len: usize, mul: usize, modulus: usize) -> Vec<f32> {
        (0..len)
            .map(|i| ((i * mul) % modulus) as f32 / modulus as f32 - 0.5)
            .collect()
    }

    #[test]
    fn matches_a_plain_product_for_few_and_many_rows_on_every_kernel() {
        #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
        let mut kernels = vec![Kernel::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            let caps = crate::kernels::simd::caps();
            kernels.extend(caps.avx2_fma().map(Kernel::Avx2));
            kernels.extend(caps.avx512().map(Kernel::Avx512));
        }
        for &(m, n, k) in &[
            (1, 1, 1),
            (1, 1000, 37),
            (2, 513, 64),
            (3, 70, 100),
            (4, 1500, 512),
            (5, 33, 17),
            (8, 64, 9),
            (9, 31, 40),
            (19, 300, 64),
            (70, 97, 33),
            (130, 40, 8),
        ] {
            let x = values(m * k, 31, 17);
            let w = values(n * k, 7, 23);
            let b: Vec<f32> = (0..n).map(|i| i as f32 * 0.01).collect();
            let want = product(&x, m, &w, n, k, &b);
            let packed = PackedF32::pack(&w, n, k).unwrap();
            // A reused buffer's old contents (here NaN, and too long) never reach the output.
            let mut out = vec![f32::NAN; m * n + 7];
            packed.matmul(&x, m, &b, &mut out).unwrap();
            let mut by_kernel = Vec::new();
            for &kernel in &kernels {
                let mut got = vec![0f32; m * n];
                for (i, row) in got.chunks_mut(n).enumerate() {
                    let mut rows = vec![row];
                    packed.columns(kernel, &x[i * k..(i + 1) * k], &b, 0, &mut rows);
                }
                by_kernel.push(got);
            }
            for (got, name) in std::iter::once(&out)
                .chain(&by_kernel)
                .zip(["matmul", "kernel 0", "kernel 1", "kernel 2"])
            {
                assert_eq!(got.len(), m * n);
                for (at, (&g, &w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g as f64 - w).abs() < 1e-5 * (k as f64),
                        "{name} {m}x{n}x{k} at {at}: {g} vs {w}"
                    );
                }
            }
            // A row's figures do not depend on the rows beside it (the same kernel, one
            // row at a time or all together).
            assert_eq!(out, *by_kernel.last().unwrap(), "{m}x{n}x{k}");
        }
    }

    #[test]
    fn rows_of_the_packed_matrix_are_the_original_rows() {
        let (n, k) = (70, 5);
        let w = values(n * k, 13, 29);
        let packed = PackedF32::pack(&w, n, k).unwrap();
        assert_eq!((packed.n, packed.k, packed.lanes.len()), (n, k, 3 * k));
        let mut row = vec![0f32; k];
        for j in 0..n {
            packed.row(j, &mut row).unwrap();
            assert_eq!(row, w[j * k..(j + 1) * k]);
        }
        assert!(packed.row(n, &mut row).is_err());
        assert!(packed.row(0, &mut row[..k - 1]).is_err());
    }

    #[test]
    fn packing_little_endian_bytes_equals_packing_the_floats() {
        let (n, k) = (70, 9);
        let w = values(n * k, 13, 29);
        let bytes: Vec<u8> = w.iter().flat_map(|v| v.to_le_bytes()).collect();
        let a = PackedF32::pack(&w, n, k).unwrap();
        let b = PackedF32::pack_le_bytes(&bytes, n, k).unwrap();
        assert_eq!(a.lanes.len(), b.lanes.len());
        for (x, y) in a.lanes.iter().zip(b.lanes.iter()) {
            assert_eq!(x.0, y.0);
        }
        // The last panel's missing columns are zeros (fresh pages, never written).
        assert!(b.lanes[2 * k..]
            .iter()
            .all(|l| l.0[n - 2 * NR..] == [0.0; 3 * NR - 70]));
        assert!(PackedF32::pack_le_bytes(&bytes[1..], n, k).is_err());
        assert!(PackedF32::pack_le_bytes(&[], 0, 0).is_err());
    }

    #[test]
    fn wrong_lengths_are_errors_not_out_of_bounds_accesses() {
        let mut out = Vec::new();
        assert!(PackedF32::pack(&[0.0; 7], 2, 4).is_err());
        assert!(PackedF32::pack(&[], 2, 0).is_err());
        let p = PackedF32::pack(&[0.0; 8], 2, 4).unwrap();
        assert!(p.matmul(&[0.0; 3], 1, &[0.0; 2], &mut out).is_err());
        assert!(p.matmul(&[0.0; 4], 1, &[0.0; 1], &mut out).is_err());
        assert!(p.matmul(&[0.0; 40], 10, &[0.0; 2], &mut out).is_ok());
        assert_eq!(out.len(), 20);
        assert!(p.matmul(&[], 0, &[0.0; 2], &mut out).is_ok());
        assert!(out.is_empty());
    }
}
