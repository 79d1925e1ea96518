//! Times opening weight files and loading every tensor, to check that loading stays cheap.
//!
//! `cargo run --release --example weights_load_time -- pytorch_model.bin [model.safetensors ...]`
//! For each file: open (index only), load every tensor as f32 on the CPU through the
//! `VarBuilder` backend, and, for torch files, convert to safetensors once and time that copy.

use std::path::Path;
use std::time::Instant;

use candle_core::{DType, Device};
use candle_nn::var_builder::SimpleBackend;
use tolk::weights::Weights;

/// Loads every tensor and keeps them all, as a model would.
fn load_all(w: &Weights) -> anyhow::Result<Vec<candle_core::Tensor>> {
    w.names()
        .map(|name| Ok(w.get_unchecked(name, DType::F32, &Device::Cpu)?))
        .collect()
}

/// Resident and peak memory of this process, from /proc (Linux only; empty elsewhere).
fn memory() -> String {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .filter(|l| l.starts_with("VmRSS") || l.starts_with("VmHWM"))
        .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
        .collect::<Vec<_>>()
        .join(", ")
}

fn report(path: &Path) -> anyhow::Result<()> {
    let t = Instant::now();
    let w = Weights::open(path)?;
    let open = t.elapsed();
    let after_open = memory();
    let t = Instant::now();
    let tensors = load_all(&w)?;
    let load = t.elapsed();
    let bytes: usize = tensors.iter().map(|t| t.elem_count() * 4).sum();
    println!(
        "{}: {} ({} tensors): open {:.1} ms [{after_open}], load all as f32 {:.1} ms \
         ({:.0} MB) [{}]",
        path.display(),
        w.format(),
        w.len(),
        open.as_secs_f64() * 1e3,
        load.as_secs_f64() * 1e3,
        bytes as f64 / 1e6,
        memory()
    );
    drop(tensors);
    if w.format() != tolk::weights::WeightsFormat::Safetensors {
        let out = path.with_extension("cached.safetensors");
        let t = Instant::now();
        w.save_safetensors(&out)?;
        println!(
            "  save_safetensors {:.1} ms -> {} ({:.0} MB)",
            t.elapsed().as_secs_f64() * 1e3,
            out.display(),
            std::fs::metadata(&out).map(|m| m.len()).unwrap_or(0) as f64 / 1e6
        );
        report(&out)?;
    }
    Ok(())
}

fn main() -> anyhow::Result<()> {
    for arg in std::env::args().skip(1) {
        report(Path::new(&arg))?;
    }
    Ok(())
}
