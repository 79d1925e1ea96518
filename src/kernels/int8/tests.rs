use super::*;

fn lcg(seed: &mut u64) -> f32 {
    *seed = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    ((*seed >> 33) as f32 / (1u64 << 31) as f32) - 0.5
}

fn reference(x: &[f32], w: &[f32], m: usize, n: usize, k: usize, bias: &[f32]) -> Vec<f32> {
    let mut out = vec![0f32; m * n];
    for i in 0..m {
        for j in 0..n {
            out[i * n + j] = (0..k).map(|t| x[i * k + t] * w[j * k + t]).sum::<f32>() + bias[j];
        }
    }
    out
}

/// The kernels this CPU runs: each asked for, it is the one selected.
fn available_kernels() -> Vec<Int8Kernel> {
    #[cfg_attr(not(target_arch = "x86_64"), allow(unused_mut))]
    let mut ks = vec![Int8Kernel::Scalar];
    #[cfg(target_arch = "x86_64")]
    {
        let caps = crate::kernels::simd::caps();
        if caps.avx2().is_some() {
            ks.push(Int8Kernel::Avx2);
        }
        if caps.avx512_vnni().is_some() {
            ks.push(Int8Kernel::Avx512Vnni);
        }
    }
    ks
}

#[test]
fn every_kernel_gives_the_same_integers_and_a_close_product() {
    let mut seed = 7;
    for activations in [Activations::Int8, Activations::Int16] {
        for &(m, n, k) in &[
            (1, 1, 1),
            (3, 17, 5),
            (7, 70, 33),
            (13, 130, 64),
            (1, 64, 512),
            (4, 200, 512),
        ] {
            let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed)).collect();
            let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
            let bias: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
            let q = QMatrix::quantize(&w, n, k).with_activations(activations);
            let want = reference(&x, &w, m, n, k, &bias);
            let mut first: Option<Vec<f32>> = None;
            for kernel in available_kernels() {
                let mut out = vec![0f32; m * n];
                q.matmul_with(kernel, &x, m, Some(&bias), &mut out).unwrap();
                let err = out
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0f32, f32::max);
                assert!(
                    err < 0.02 * (k as f32).sqrt(),
                    "{kernel:?} {activations:?} {m}x{n}x{k}: error {err}"
                );
                match &first {
                    None => first = Some(out),
                    Some(f) => assert_eq!(
                        f, &out,
                        "{kernel:?} {activations:?} differs from the scalar kernel"
                    ),
                }
            }
        }
    }
}

/// With weights that int8 holds exactly, the only error left is the activations': 16 bits
/// (8 plus the residual's 8) make it over 100 times smaller than 8 bits (about 250: the
/// residual's unit is 1/254 of the first), in every kernel.
#[test]
fn sixteen_bit_activations_leave_only_float_rounding() {
    let mut seed = 17;
    let (m, n, k) = (5, 48, 512);
    // Every row's largest |w| is 127 / 127, so each weight is exactly q / 127.
    let w: Vec<f32> = (0..n * k)
        .map(|i| {
            if i % k == 0 {
                1.0
            } else {
                (lcg(&mut seed) * 254.0).round() / 127.0
            }
        })
        .collect();
    // Activations with an outlier per row, as transformer layers have.
    let x: Vec<f32> = (0..m * k)
        .map(|i| lcg(&mut seed) * if i % k == 7 { 40.0 } else { 1.0 })
        .collect();
    let want = reference(&x, &w, m, n, k, &vec![0.0; n]);
    for kernel in available_kernels() {
        let err = |activations| {
            let q = QMatrix::quantize(&w, n, k).with_activations(activations);
            let mut out = vec![0f32; m * n];
            q.matmul_with(kernel, &x, m, None, &mut out).unwrap();
            out.iter()
                .zip(&want)
                .map(|(a, b)| (a - b).abs())
                .fold(0f32, f32::max)
        };
        let (e8, e16) = (err(Activations::Int8), err(Activations::Int16));
        assert!(e8 > 0.05, "{kernel:?}: 8-bit error {e8}");
        assert!(
            e16 < e8 / 100.0,
            "{kernel:?}: 16-bit error {e16}, 8-bit {e8}"
        );
    }
}

/// The VNNI form of 16-bit activations (high and low bytes, two products combined) gives
/// the integers of the 16-bit form; run here through the portable kernel.
#[test]
fn split_sixteen_bit_rows_give_the_same_outputs() {
    let mut seed = 29;
    let (m, n, k) = (7, 70, 130);
    let x: Vec<f32> = (0..m * k)
        .map(|i| lcg(&mut seed) * if i % 13 == 0 { 30.0 } else { 1.0 })
        .collect();
    let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
    let bias: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
    let q = QMatrix::quantize(&w, n, k).with_activations(Activations::Int16);
    let mut outs = Vec::new();
    for split in [false, true] {
        let rows = QRows::quantize(&x, m, k, q.kp, Activations::Int16, split);
        assert_eq!(rows.rows_per_input(), 1 + usize::from(split));
        let mut out = vec![0f32; m * n];
        q.product(Isa::Scalar, &rows, Some(&bias), &mut out);
        outs.push(out);
    }
    assert_eq!(outs[0], outs[1]);
    // The two forms hold the same values, row by row.
    let (wide, split) = (
        QRows::quantize(&x, m, k, q.kp, Activations::Int16, false),
        QRows::quantize(&x, m, k, q.kp, Activations::Int16, true),
    );
    let (Rows::Wide(a), Rows::Split(b)) = (&wide.rows, &split.rows) else {
        panic!("16-bit rows of the wrong form");
    };
    for (a, b) in a.chunks_exact(q.kp).zip(b.chunks_exact(2 * q.kp)) {
        let (hi, lo) = b.split_at(q.kp);
        for c in 0..k {
            let v = HIGH * (hi[c] as i32 - 128) + (lo[c] as i32 - 128);
            assert_eq!(v, a[c] as i32, "input {c}");
        }
    }
}

/// Sums far beyond an i32 lane's range (2048 inputs of the largest 16-bit activation by the
/// largest weight): every kernel still adds them exactly.
#[test]
fn long_rows_of_the_largest_values_do_not_overflow() {
    let (m, n, k) = (3, 32, 2048);
    let w = vec![1.0f32; n * k];
    let x = vec![1.0f32; m * k];
    for activations in [Activations::Int8, Activations::Int16] {
        let q = QMatrix::quantize(&w, n, k).with_activations(activations);
        for kernel in available_kernels() {
            let mut out = vec![0f32; m * n];
            q.matmul_with(kernel, &x, m, None, &mut out).unwrap();
            assert!(
                out.iter().all(|&v| (v - k as f32).abs() < 1e-2),
                "{kernel:?} {activations:?}: {:?}",
                &out[..4]
            );
        }
    }
}

#[test]
fn parts_round_trip_and_rows_dequantize() {
    let mut seed = 3;
    let (n, k) = (37, 21);
    let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
    let q = QMatrix::quantize(&w, n, k);
    let (p, s) = q.parts();
    let r = QMatrix::from_parts(n, k, Packed::Owned(p.to_vec()), s.to_vec()).unwrap();
    assert_eq!(r.offsets, q.offsets);
    let mut row = vec![0f32; k];
    q.dequantize_row(5, &mut row).unwrap();
    for (a, b) in row.iter().zip(&w[5 * k..6 * k]) {
        assert!((a - b).abs() <= q.scales[5] / 2.0 + 1e-6);
    }
    assert!(QMatrix::from_parts(n, k, Packed::Owned(vec![0; 3]), s.to_vec()).is_none());
}

#[test]
fn concatenated_matrices_give_each_part_s_columns() {
    let mut seed = 11;
    let (m, k) = (5, 40);
    let sizes = [32usize, 16, 21];
    let ws: Vec<Vec<f32>> = sizes
        .iter()
        .map(|&n| (0..n * k).map(|_| lcg(&mut seed)).collect())
        .collect();
    let qs: Vec<QMatrix> = ws
        .iter()
        .zip(&sizes)
        .map(|(w, &n)| QMatrix::quantize(w, n, k))
        .collect();
    let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed)).collect();
    let all = QMatrix::concat(&qs.iter().collect::<Vec<_>>()).unwrap();
    let total: usize = sizes.iter().sum();
    assert_eq!((all.rows(), all.cols()), (total, k));
    let bias: Vec<f32> = (0..total).map(|_| lcg(&mut seed)).collect();
    let mut out = vec![0f32; m * total];
    all.matmul(&x, m, Some(&bias), &mut out).unwrap();
    let mut c0 = 0;
    for (q, &n) in qs.iter().zip(&sizes) {
        let mut part = vec![0f32; m * n];
        q.matmul(&x, m, Some(&bias[c0..c0 + n]), &mut part).unwrap();
        for r in 0..m {
            assert_eq!(
                &out[r * total + c0..r * total + c0 + n],
                &part[r * n..(r + 1) * n]
            );
        }
        c0 += n;
    }
    // Only the last part may end inside a block of 16 outputs; inputs must agree.
    assert!(QMatrix::concat(&[&qs[2], &qs[0]]).is_none());
    let other = QMatrix::quantize(&vec![0.5; 16 * 8], 16, 8);
    assert!(QMatrix::concat(&[&qs[0], &other]).is_none());
    assert!(QMatrix::concat(&[]).is_none());
}

#[test]
fn leftover_scratch_never_reaches_an_output() {
    // Padded rows (k = 5 -> 8) and a zero row, before and after a product that fills this
    // thread's scratch with other values (longer rows, no zero row).
    let mut seed = 11;
    let (m, n, k) = (3, 20, 5);
    let mut x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed)).collect();
    x[k..2 * k].fill(0.0);
    let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
    let bias: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
    let (bm, bk) = (9, 7);
    let bx: Vec<f32> = (0..bm * bk).map(|_| 1.0 + lcg(&mut seed).abs()).collect();
    let bw: Vec<f32> = (0..n * bk).map(|_| lcg(&mut seed)).collect();
    for activations in [Activations::Int8, Activations::Int16] {
        let q = QMatrix::quantize(&w, n, k).with_activations(activations);
        let big = QMatrix::quantize(&bw, n, bk).with_activations(activations);
        for kernel in available_kernels() {
            let mut first = vec![0f32; m * n];
            q.matmul_with(kernel, &x, m, Some(&bias), &mut first)
                .unwrap();
            let mut other = vec![0f32; bm * n];
            big.matmul_with(kernel, &bx, bm, None, &mut other).unwrap();
            let mut again = vec![0f32; m * n];
            q.matmul_with(kernel, &x, m, Some(&bias), &mut again)
                .unwrap();
            let bits = |v: &[f32]| v.iter().map(|f| f.to_bits()).collect::<Vec<_>>();
            assert_eq!(bits(&first), bits(&again), "{kernel:?} {activations:?}");
            assert_eq!(bits(&first[n..2 * n]), bits(&bias), "{kernel:?}: zero row");
        }
    }
}

#[test]
fn top_outputs_are_the_full_products_bit_for_bit_and_the_rest_within_their_bound() {
    // k = 100: 25 groups of 4 inputs (one gather of 16 and a partial one); k = 5 padded to
    // 8; n not a multiple of 16 nor of the peaks' groups. A few peaked columns give each row
    // a clear top; a zero row has only its bias.
    let mut seed = 21;
    for (m, n, k) in [(7, 1005, 100), (3, 40, 5), (13, 300, 512)] {
        let mut x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed)).collect();
        x[k..2 * k].fill(0.0);
        let mut w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
        for r in 0..m.min(n) {
            let j = (r * 37) % n;
            w[j * k..(j + 1) * k].copy_from_slice(&x[r * k..(r + 1) * k]);
        }
        let bias: Vec<f32> = (0..n).map(|_| lcg(&mut seed) * 0.1).collect();
        let q = QMatrix::quantize(&w, n, k);
        let mut full = vec![0f32; m * n];
        q.matmul(&x, m, Some(&bias), &mut full).unwrap();
        // The 8-bit activations' error (half a step) through each column, and through the
        // columns' mean (the shift), from the float weights (plus their rounding).
        let l1: Vec<f32> = (0..n)
            .map(|j| w[j * k..(j + 1) * k].iter().map(|v| v.abs() + 0.01).sum())
            .collect();
        let mean_l1 = l1.iter().sum::<f32>() / n as f32;
        let vnni = Isa::best().is_vnni();
        for margin in [0.0, 0.3, f32::INFINITY] {
            let mut top = vec![f32::NAN; m * n];
            q.matmul_top(&x, m, &bias, &mut top, margin).unwrap();
            let mut approximate = 0;
            for r in 0..m {
                let (t, f) = (&top[r * n..(r + 1) * n], &full[r * n..(r + 1) * n]);
                let best = f.iter().fold(f32::NEG_INFINITY, |a, &v| a.max(v));
                let amax = x[r * k..(r + 1) * k]
                    .iter()
                    .fold(0f32, |a, v| a.max(v.abs()));
                for j in 0..n {
                    if f[j] >= best - margin {
                        assert_eq!(t[j].to_bits(), f[j].to_bits(), "{m}x{n}x{k} {r},{j}");
                    }
                    let bound = (amax / 254.0) * (l1[j] + mean_l1) + 1e-5;
                    assert!(
                        (t[j] - f[j]).abs() <= bound,
                        "{r},{j}: {} vs {}",
                        t[j],
                        f[j]
                    );
                    approximate += usize::from(t[j].to_bits() != f[j].to_bits());
                }
                // A row alone gives the same outputs as among the others.
                let mut alone = vec![0f32; n];
                let xr = &x[r * k..(r + 1) * k];
                q.matmul_top(xr, 1, &bias, &mut alone, margin).unwrap();
                assert!(alone.iter().zip(t).all(|(a, b)| a.to_bits() == b.to_bits()));
            }
            assert!(top[n..2 * n]
                .iter()
                .zip(&bias)
                .all(|(a, b)| a.to_bits() == b.to_bits()));
            // The 8-bit shortcut is taken (with VNNI) wherever the margin leaves room.
            assert_eq!(
                approximate > 0,
                vnni && margin.is_finite(),
                "{m}x{n}x{k} {margin}"
            );
        }
    }
    // Lengths are checked as for `matmul`.
    let q = QMatrix::quantize(&[0.5; 8], 2, 4);
    assert!(q
        .matmul_top(&[0.0; 4], 1, &[0.0], &mut [0.0; 2], 0.0)
        .is_err());
    assert!(q
        .matmul_top(&[0.0; 3], 1, &[0.0; 2], &mut [0.0; 2], 0.0)
        .is_err());
}

#[test]
fn matmul_top_takes_out_the_part_of_the_errors_that_the_columns_share() {
    // Columns = a shared direction plus a little of their own (as embeddings are): the 8-bit
    // errors are then mostly one shift per row, which matmul_top removes.
    let mut seed = 8;
    let (m, n, k) = (4, 400, 64);
    let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed)).collect();
    let shared: Vec<f32> = (0..k).map(|_| lcg(&mut seed)).collect();
    let w: Vec<f32> = (0..n * k)
        .map(|i| shared[i % k] + 0.1 * lcg(&mut seed))
        .collect();
    let bias = vec![0f32; n];
    let q = QMatrix::quantize(&w, n, k);
    let mut full = vec![0f32; m * n];
    q.matmul(&x, m, Some(&bias), &mut full).unwrap();
    let mut top = vec![0f32; m * n];
    q.matmul_top(&x, m, &bias, &mut top, 0.0).unwrap();
    let eight = q.clone().with_activations(Activations::Int8);
    let mut plain = vec![0f32; m * n];
    eight.matmul(&x, m, Some(&bias), &mut plain).unwrap();
    let err = |v: &[f32]| v.iter().zip(&full).map(|(a, b)| (a - b).abs()).sum::<f32>();
    if Isa::best().is_vnni() {
        assert!(
            err(&top) < 0.25 * err(&plain),
            "{} vs {}",
            err(&top),
            err(&plain)
        );
    } else {
        assert_eq!(err(&top), 0.0);
    }
}

#[test]
fn zero_rows_stay_zero() {
    let q = QMatrix::quantize(&[0.0; 8], 2, 4);
    let mut out = vec![1f32; 2];
    q.matmul(&[0.0, 0.0, 0.0, 0.0], 1, None, &mut out).unwrap();
    assert_eq!(out, vec![0.0, 0.0]);
}

#[test]
fn wrong_lengths_and_rows_are_errors_and_missing_kernels_are_never_run() {
    let q = QMatrix::quantize(&[0.5; 8], 2, 4);
    let mut out = vec![0f32; 2];
    assert!(q.matmul(&[0.0; 3], 1, None, &mut out).is_err());
    assert!(q.matmul(&[0.0; 4], 1, Some(&[0.0]), &mut out).is_err());
    assert!(
        q.matmul(&[0.0; 8], 2, None, &mut out).is_err(),
        "out too short"
    );
    let mut row = vec![0f32; 4];
    assert!(q.dequantize_row(2, &mut row).is_err());
    assert!(q.dequantize_row(0, &mut row[..3]).is_err());
    // Asking for a kernel runs the best one up to it that this CPU has (and only one whose
    // capability was detected: `Isa` holds it).
    assert_eq!(Int8Kernel::Avx512Vnni.select(), Isa::best());
    assert_eq!(Int8Kernel::Scalar.select(), Isa::Scalar);
    assert!(!Int8Kernel::Avx2.select().is_vnni());
    for kernel in available_kernels() {
        let isa = kernel.select();
        let kind = match isa {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2(_) => Int8Kernel::Avx2,
            #[cfg(target_arch = "x86_64")]
            Isa::Vnni(_) => Int8Kernel::Avx512Vnni,
            Isa::Scalar => Int8Kernel::Scalar,
        };
        assert_eq!(kind, kernel);
    }
    q.matmul_with(Int8Kernel::Avx512Vnni, &[1.0; 4], 1, None, &mut out)
        .unwrap();
    assert!(out.iter().all(|&v| (v - 2.0).abs() < 0.05), "{out:?}");
}

/// Many rows and columns, split over threads: every output written once, by one task.
#[test]
fn products_split_from_256k_multiply_adds_one_task_per_thread_up_to_4m() {
    assert_eq!(tasks((1 << 18) - 1, 8, 2), 1);
    assert_eq!(tasks(1 << 18, 8, 2), 2);
    assert_eq!(tasks(1 << 18, 1, 2), 1, "one panel cannot be split");
    assert_eq!(tasks((1 << 22) - 1, 32, 2), 2);
    assert_eq!(tasks(1 << 22, 32, 2), 8);
    assert_eq!(tasks(1 << 22, 5, 2), 5, "at most one task per panel");
    assert_eq!(tasks(1 << 22, 32, 1), 4);
    assert_eq!(tasks(1 << 22, 32, 0), 4);
}

#[test]
fn parallel_products_match_a_single_thread() {
    // One task (below 256K multiply-adds), one per thread (to 4M), several per thread: the
    // tasks each shape gets on 3 threads.
    for (m, n, k, split) in [(1, 600, 256, 1), (5, 1000, 96, 3), (23, 1000, 200, 12)] {
        assert_eq!(tasks(m * n * k, n.div_ceil(NB * PANEL), 3), split);
        let mut seed = 5;
        let x: Vec<f32> = (0..m * k).map(|_| lcg(&mut seed)).collect();
        let w: Vec<f32> = (0..n * k).map(|_| lcg(&mut seed)).collect();
        let bias: Vec<f32> = (0..n).map(|_| lcg(&mut seed)).collect();
        let q = QMatrix::quantize(&w, n, k);
        let product = |threads| {
            let pool = rayon::ThreadPoolBuilder::new()
                .num_threads(threads)
                .build()
                .unwrap();
            let mut out = vec![f32::NAN; m * n];
            pool.install(|| q.matmul(&x, m, Some(&bias), &mut out).unwrap());
            out
        };
        let single = product(1);
        let want = reference(&x, &w, m, n, k, &bias);
        for (a, b) in single.iter().zip(&want) {
            assert!(
                (a - b).abs() < 0.02 * (k as f32).sqrt(),
                "{m}x{n}x{k}: {a} vs {b}"
            );
        }
        for threads in [2, 3] {
            let par = product(threads);
            assert!(
                par.iter()
                    .zip(&single)
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{m}x{n}x{k} on {threads} threads differs from one thread"
            );
        }
    }
}
