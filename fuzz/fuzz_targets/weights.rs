//! Fuzz target for the weight readers (safetensors, torch zip and legacy pickles): arbitrary
//! bytes given to `Weights::from_bytes` must give `Ok` or `Err`, never a panic, a runaway
//! allocation (see `tolk_fuzz::CappedAlloc`) or a hang, and never run anything. When they load,
//! every tensor must load too, with the dtype and shape `info` announced.

#![no_main]

use candle_core::Device;
use libfuzzer_sys::fuzz_target;
use tolk::weights::Weights;

/// Tensors that expand beyond this (a strided view repeating a small storage) are not
/// materialised by the target, to stay within the fuzzer's memory; the reader itself caps
/// expansion at 1 GiB.
const MAX_READ_BYTES: usize = 64 << 20;

fuzz_target!(|data: &[u8]| {
    let Ok(weights) = Weights::from_bytes("fuzzed.bin", data.to_vec()) else {
        return;
    };
    let _ = weights.format();
    let _ = weights.metadata();
    let names: Vec<String> = weights.names().map(str::to_string).collect();
    assert_eq!(names.len(), weights.len());
    for name in &names {
        assert!(weights.contains(name));
        let info = weights
            .info(name)
            .unwrap_or_else(|| panic!("tensor `{name}` is listed but has no info"));
        let bytes = info
            .shape
            .iter()
            .try_fold(info.stored.size_in_bytes(), |acc, &d| acc.checked_mul(d))
            .unwrap_or_else(|| panic!("tensor `{name}` has an overflowing shape {:?}", info.shape));
        assert!(
            bytes <= 1 << 30 || bytes <= data.len(),
            "tensor `{name}` expands to {bytes} bytes"
        );
        weights
            .check_shape(name, &info.shape)
            .unwrap_or_else(|e| panic!("check_shape with its own shape: {e}"));
        if bytes > MAX_READ_BYTES {
            continue;
        }
        let tensor = weights
            .tensor(name, &Device::Cpu)
            .unwrap_or_else(|e| panic!("tensor `{name}` was accepted but does not load: {e}"));
        assert_eq!(tensor.dims(), info.shape.as_slice(), "shape of `{name}`");
        assert_eq!(tensor.dtype(), info.dtype, "dtype of `{name}`");
    }
    assert!(weights.check_shape("no such tensor", &[1]).is_err());
});
