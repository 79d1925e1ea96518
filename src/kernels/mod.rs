//! CPU kernels that candle does not have: int8 matrix products (for `--quantize int8`),
//! memory-bound f32 products of a few rows, and a thread pool kept awake through a batch.

pub mod f32;
pub mod int8;
pub mod pool;
pub mod simd;

pub use int8::{Int8Kernel, QMatrix};
