//! CPU kernels that candle does not have: int8 matrix products (for `--quantize int8`), f32
//! products streamed over the cores for a few rows, a vectorised `exp`, and a thread pool kept
//! awake through a batch.
//!
//! Crate-private, with checked entry points: every function callable from safe code validates
//! the lengths of its inputs and outputs (in release builds too) before any raw pointer is
//! touched, and returns an error instead; parallel writers each own a disjoint `&mut` sub-slice
//! of the output.
//!
//! The instruction sets are detected once, into capability values that only the detection can
//! create ([`simd::caps`]: one per set of features a kernel enables, F16C and FMA included);
//! every `#[target_feature]` kernel takes the value of its set, so that calling it needs the
//! proof that the CPU has it ([`simd::level`], a plain value for code that matches on one, is
//! derived from the same capabilities). Every `unsafe fn` says in its `# Safety` section what its caller
//! guarantees (the lengths its unchecked loads and stores rely on), every `unsafe` block why
//! that holds (`// SAFETY:`, enforced below), and no unsafe operation hides in the body of an
//! `unsafe fn` without its own block (`unsafe_op_in_unsafe_fn`, denied for the crate).
//!
//! Checking the kernels for memory errors: `cargo +nightly miri test --lib kernels` where a
//! nightly toolchain with miri is installed (miri runs the portable paths: it has no SIMD
//! intrinsics for AVX); where it is not, `tools/check-kernels.sh` runs the same unit tests under
//! valgrind's memcheck (whose virtual CPU has AVX2 but not AVX-512, so the AVX2 and portable paths
//! are the ones checked; the AVX-512 paths are checked against them bit for bit by the tests).

#![deny(clippy::undocumented_unsafe_blocks)]

pub(crate) mod exp;
pub(crate) mod f32;
pub(crate) mod int8;
pub(crate) mod pool;
pub(crate) mod simd;

#[cfg(test)]
mod bench;

/// Runs `run(c0, rows)` once per range of `width` columns of `out` (rows of `n` values; the last
/// range may be shorter), `rows` holding that range's disjoint slice of every row: the split of a
/// matrix product over tasks that own whole column ranges. In parallel when there are several.
pub(crate) fn for_column_ranges(
    out: &mut [f32],
    n: usize,
    width: usize,
    run: impl Fn(usize, &mut [&mut [f32]]) + Sync,
) {
    use rayon::prelude::*;
    let (n, width) = (n.max(1), width.max(1));
    let rows = out.len() / n;
    // parts[t]: (first column, task t's slice of every row)
    let mut parts: Vec<(usize, Vec<&mut [f32]>)> = (0..n.div_ceil(width))
        .map(|t| (t * width, Vec::with_capacity(rows)))
        .collect();
    for row in out.chunks_mut(n) {
        for (part, cols) in parts.iter_mut().zip(row.chunks_mut(width)) {
            part.1.push(cols);
        }
    }
    let run = |(c0, mut rows): (usize, Vec<&mut [f32]>)| run(c0, &mut rows);
    if parts.len() > 1 {
        parts.into_par_iter().for_each(run);
    } else {
        parts.into_iter().for_each(run);
    }
}
