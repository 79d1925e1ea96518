//! CPU kernels that candle does not have: int8 matrix products (for `--quantize int8`).

pub mod int8;

pub use int8::{Int8Kernel, QMatrix};
