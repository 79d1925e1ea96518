//! Throughput of the matrix kernels at the shapes of a decoding step (a development aid, run by
//! hand, never in CI):
//!
//! ```text
//! cargo test --release --lib kernels::bench -- --ignored --nocapture --test-threads 1
//! TOLK_KBENCH="1 67028 512 76 2048 512" cargo test --release --lib kernels::bench::kernels -- --ignored --nocapture
//! ```
//!
//! (`--test-threads 1`: the kernels and the machine limits are two tests, which otherwise run at
//! once and disturb each other's figures.)
//!
//! `TOLK_KBENCH` holds M N K triples (rows, outputs, inputs); by default the shapes of the
//! opus-mt-nl-en decoder: 1, 4, 19, 76 and 128 rows against 512 x 512, 2048 x 512, 512 x 2048
//! and the 67,028 x 512 output projection. Each kernel's best time of many calls (the machine is
//! shared: the best is the least disturbed), as GB/s of weights read and G multiply-adds/s.

use std::time::Instant;

use super::f32::PackedF32;
use super::int8::QMatrix;

fn best<F: FnMut()>(reps: usize, mut f: F) -> f64 {
    f();
    let mut best = f64::MAX;
    for _ in 0..reps {
        let t = Instant::now();
        f();
        best = best.min(t.elapsed().as_secs_f64());
    }
    best
}

#[test]
#[ignore = "a benchmark: cargo test --release --lib kernels::bench -- --ignored --nocapture --test-threads 1"]
fn kernels() {
    let shapes: Vec<(usize, usize, usize)> = match std::env::var("TOLK_KBENCH") {
        Ok(s) => {
            let v: Vec<usize> = s
                .split_whitespace()
                .filter_map(|t| t.parse().ok())
                .collect();
            v.chunks_exact(3).map(|c| (c[0], c[1], c[2])).collect()
        }
        Err(_) => [1usize, 4, 19, 76, 128]
            .iter()
            .flat_map(|&m| {
                [(512, 512), (2048, 512), (512, 2048), (67028, 512)]
                    .into_iter()
                    .map(move |(n, k)| (m, n, k))
            })
            .collect(),
    };
    println!("threads: {}", rayon::current_num_threads());
    for (m, n, k) in shapes {
        let w: Vec<f32> = (0..n * k)
            .map(|i| ((i * 7919) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let x: Vec<f32> = (0..m * k)
            .map(|i| ((i * 104729) % 1000) as f32 / 1000.0 - 0.5)
            .collect();
        let bias = vec![0f32; n];
        let reps = (2_000_000_000 / (m * n * k)).clamp(10, 2000);
        let macs = (m * n * k) as f64;
        let q = QMatrix::quantize(&w, n, k);
        let mut out = vec![0f32; m * n];
        let dt = best(reps, || q.matmul(&x, m, Some(&bias), &mut out).unwrap());
        println!(
            "int8 {m:>4} x {n:>5} x {k:>4}: {:>8.3} ms {:>6.1} GB/s {:>7.1} GMAC/s",
            dt * 1e3,
            (n * k) as f64 / dt / 1e9,
            macs / dt / 1e9
        );
        let p = PackedF32::pack(&w, n, k).unwrap();
        let mut out = Vec::new();
        let dt = best(reps, || p.matmul(&x, m, &bias, &mut out).unwrap());
        println!(
            "f32  {m:>4} x {n:>5} x {k:>4}: {:>8.3} ms {:>6.1} GB/s {:>7.1} GMAC/s",
            dt * 1e3,
            (4 * n * k) as f64 / dt / 1e9,
            macs / dt / 1e9
        );
    }
}

/// `k` fused multiply-adds on 16 independent AVX-512 registers (the f32 FMA limit of one core).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f")]
fn fma_loop(k: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_set1_ps(1.0); 16];
    let (a, b) = (_mm512_set1_ps(0.999_999), _mm512_set1_ps(1e-7));
    for _ in 0..k {
        for v in acc.iter_mut() {
            *v = _mm512_fmadd_ps(*v, a, b);
        }
    }
    acc.iter().map(|&v| _mm512_reduce_add_ps(v)).sum()
}

/// `k` fused multiply-adds on 12 independent AVX2 registers (the f32 FMA limit of a core
/// without AVX-512).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2,fma")]
fn fma_loop_avx2(k: usize) -> f32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm256_set1_ps(1.0); 12];
    let (a, b) = (_mm256_set1_ps(0.999_999), _mm256_set1_ps(1e-7));
    for _ in 0..k {
        for v in acc.iter_mut() {
            *v = _mm256_fmadd_ps(*v, a, b);
        }
    }
    let mut lanes = [0f32; 8];
    let mut total = 0.0;
    for v in acc {
        // SAFETY: `lanes` holds 8 values.
        unsafe { _mm256_storeu_ps(lanes.as_mut_ptr(), v) };
        total += lanes.iter().sum::<f32>();
    }
    total
}

/// `k` `vpdpbusd` on 16 independent AVX-512 registers, 64 byte multiply-adds each (the int8
/// limit of one core: the VNNI kernel's one instruction per 4 inputs, 16 columns and row).
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx512f,avx512vnni")]
fn vnni_loop(k: usize) -> i32 {
    use std::arch::x86_64::*;
    let mut acc = [_mm512_setzero_si512(); 16];
    let (a, b) = (_mm512_set1_epi8(3), _mm512_set1_epi8(-2));
    for _ in 0..k {
        for v in acc.iter_mut() {
            *v = _mm512_dpbusd_epi32(*v, a, b);
        }
    }
    acc.iter()
        .fold(0i32, |s, &v| s.wrapping_add(_mm512_reduce_add_epi32(v)))
}

/// [`fma_loop`], given the capability that proves the CPU has what it enables.
#[cfg(target_arch = "x86_64")]
fn fma_avx512(_: super::simd::Avx512, k: usize) -> f32 {
    // SAFETY: the `Avx512` capability exists only where the CPU has AVX-512F.
    unsafe { fma_loop(k) }
}

/// [`fma_loop_avx2`], given the capability that proves the CPU has what it enables.
#[cfg(target_arch = "x86_64")]
fn fma_avx2(_: super::simd::Avx2Fma, k: usize) -> f32 {
    // SAFETY: the `Avx2Fma` capability exists only where the CPU has AVX2 and FMA.
    unsafe { fma_loop_avx2(k) }
}

/// [`vnni_loop`], given the capability that proves the CPU has what it enables.
#[cfg(target_arch = "x86_64")]
fn vnni(_: super::simd::Avx512Vnni, k: usize) -> i32 {
    // SAFETY: the `Avx512Vnni` capability exists only where the CPU has AVX-512F and VNNI.
    unsafe { vnni_loop(k) }
}

/// [`fma_avx512`] or [`fma_avx2`]: `k` iterations, returning a sum to keep.
#[cfg(target_arch = "x86_64")]
type FmaLoop = Box<dyn Fn(usize) -> f32 + Sync>;

#[test]
#[ignore = "a benchmark: cargo test --release --lib kernels::bench -- --ignored --nocapture --test-threads 1"]
fn machine_limits() {
    use rayon::prelude::*;
    let threads = rayon::current_num_threads();
    // The widest FMA loop the CPU has: its name, the loop, multiply-adds per iteration.
    #[cfg(target_arch = "x86_64")]
    let caps = super::simd::caps();
    #[cfg(target_arch = "x86_64")]
    let fma: Option<(&str, FmaLoop, usize)> = if let Some(isa) = caps.avx512() {
        Some(("AVX-512", Box::new(move |k| fma_avx512(isa, k)), 16 * 16))
    } else if let Some(isa) = caps.avx2_fma() {
        Some(("AVX2", Box::new(move |k| fma_avx2(isa, k)), 12 * 8))
    } else {
        None
    };
    #[cfg(target_arch = "x86_64")]
    if let Some((name, run, per_iteration)) = fma {
        let k = 50_000_000;
        let dt = best(3, || {
            let s: f32 = (0..threads).into_par_iter().map(|_| run(k)).sum();
            std::hint::black_box(s);
        });
        let fmas = (threads * k * per_iteration) as f64;
        println!(
            "f32 FMA limit ({name}), {threads} threads: {:.1} G multiply-adds/s",
            fmas / dt / 1e9
        );
    }
    #[cfg(target_arch = "x86_64")]
    if let Some(isa) = caps.avx512_vnni() {
        let k = 50_000_000;
        let dt = best(3, || {
            let s: i32 = (0..threads)
                .into_par_iter()
                .map(|_| vnni(isa, k))
                .reduce(|| 0, i32::wrapping_add);
            std::hint::black_box(s);
        });
        let macs = (threads * k * 16 * 64) as f64;
        println!(
            "int8 VNNI limit, {threads} threads: {:.1} G byte multiply-adds/s (int8's 16-bit \
             activations take two per multiply-add, int8-fast's 8-bit ones one)",
            macs / dt / 1e9
        );
    }
    // Reading a buffer far larger than the caches, all threads over disjoint halves: the
    // bandwidth a memory-bound decoding step (every weight read once) can reach.
    let data = vec![1f32; 256 << 20];
    let dt = best(5, || {
        let s: f32 = data
            .par_chunks(data.len() / threads)
            .map(|c| {
                let mut lanes = [0f32; 16];
                for v in c.chunks_exact(16) {
                    for (l, &x) in lanes.iter_mut().zip(v) {
                        *l += x;
                    }
                }
                lanes.iter().sum::<f32>()
            })
            .sum();
        std::hint::black_box(s);
    });
    println!(
        "memory read bandwidth, {threads} threads: {:.1} GB/s",
        (data.len() * 4) as f64 / dt / 1e9
    );
}
