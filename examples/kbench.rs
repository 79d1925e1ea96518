//! Micro-benchmark of the int8 kernels against candle's f32 matmul (development aid).
use candle_core::{Device, Tensor};
use std::time::Instant;
use tolk::kernels::{Int8Kernel, QMatrix};

fn main() {
    let k = 512;
    for &(m, n) in &[
        (1usize, 67028usize),
        (19, 67028),
        (76, 67028),
        (19, 2048),
        (1, 2048),
    ] {
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let q = QMatrix::quantize(&w, n, k);
        let mut out = vec![0f32; m * n];
        let reps = (2_000_000_000 / (m * n * k)).clamp(3, 2000);
        for kernel in [Int8Kernel::detect(), Int8Kernel::Avx2] {
            q.matmul(&x, m, None, &mut out, kernel);
            let t = Instant::now();
            for _ in 0..reps {
                q.matmul(&x, m, None, &mut out, kernel);
            }
            let dt = t.elapsed().as_secs_f64() / reps as f64;
            println!(
                "int8 {kernel:?} m={m} n={n} k={k}: {:.3} ms, {:.1} GOP/s",
                dt * 1e3,
                2.0 * (m * n * k) as f64 / dt / 1e9
            );
        }
        let wt = Tensor::from_vec(w.clone(), (n, k), &Device::Cpu).unwrap();
        let xt = Tensor::from_vec(x.clone(), (m, k), &Device::Cpu).unwrap();
        let _ = xt.matmul(&wt.t().unwrap()).unwrap();
        let t = Instant::now();
        for _ in 0..reps {
            let _ = xt.matmul(&wt.t().unwrap()).unwrap();
        }
        let dt = t.elapsed().as_secs_f64() / reps as f64;
        println!(
            "f32 candle m={m} n={n} k={k}: {:.3} ms, {:.1} GFLOP/s",
            dt * 1e3,
            2.0 * (m * n * k) as f64 / dt / 1e9
        );
    }
}
