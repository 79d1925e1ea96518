//! Micro-benchmark of matrix kernels (development aid): int8, small-row f32, gemm f32.
use std::time::Instant;
use tolk::kernels::{f32::small_matmul, Int8Kernel, QMatrix};

/// Best time of `reps` calls (the machine is shared: the best is the least disturbed).
fn time<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f();
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

fn main() {
    // Optional shapes from the command line: M N K triples.
    let args: Vec<usize> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let shapes: Vec<(usize, usize, usize)> = if args.len() >= 3 {
        args.chunks_exact(3).map(|c| (c[0], c[1], c[2])).collect()
    } else {
        [
            (1usize, 67028usize),
            (4, 67028),
            (1, 2048),
            (19, 67028),
            (76, 67028),
            (76, 2048),
        ]
        .iter()
        .map(|&(m, n)| (m, n, 512))
        .collect()
    };
    for &(m, n, k) in &shapes {
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let b = vec![0f32; n];
        let mut out = vec![0f32; m * n];
        let reps = (1_000_000_000 / (m * n * k)).clamp(30, 2000);
        let q = QMatrix::quantize(&w, n, k);
        let dt = time(reps, || {
            q.matmul(&x, m, Some(&b), &mut out, Int8Kernel::detect())
        });
        println!(
            "int8 m={m} n={n}: {:.3} ms ({:.1} GB/s of weights, {:.1} GMAC/s)",
            dt * 1e3,
            (n * k) as f64 / dt / 1e9,
            (m * n * k) as f64 / dt / 1e9
        );
        if m <= 4 {
            let dt = time(reps, || small_matmul(&x, m, &w, n, k, &b, &mut out));
            println!(
                "f32 small m={m} n={n}: {:.3} ms ({:.1} GB/s)",
                dt * 1e3,
                (4 * n * k) as f64 / dt / 1e9
            );
        }
        let dt = time(reps, || unsafe {
            gemm::gemm(
                m,
                n,
                k,
                out.as_mut_ptr(),
                1,
                n as isize,
                false,
                x.as_ptr(),
                1,
                k as isize,
                w.as_ptr(),
                k as isize,
                1,
                0.0f32,
                1.0f32,
                false,
                false,
                false,
                gemm::Parallelism::Rayon(rayon::current_num_threads()),
            )
        });
        println!(
            "f32 gemm m={m} n={n}: {:.3} ms ({:.1} GB/s, {:.1} GFLOP/s)",
            dt * 1e3,
            (4 * n * k) as f64 / dt / 1e9,
            2.0 * (m * n * k) as f64 / dt / 1e9
        );
    }
}
