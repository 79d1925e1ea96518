//! The portable kernel (any CPU; the oracle of the others in tests).

use super::{MR, NB, PANEL};

/// `mr` rows of `x` (bytes or 16-bit values) times `nb` blocks of `w`, summed into `acc`.
pub(super) fn scalar_panel<X: Copy + Into<i64>>(
    x: &[X],
    w: &[i8],
    kp: usize,
    mr: usize,
    nb: usize,
    acc: &mut [[i64; NB * PANEL]; MR],
) {
    for (i, row_acc) in acc.iter_mut().enumerate().take(mr) {
        let xr = &x[i * kp..(i + 1) * kp];
        for b in 0..nb {
            let wb = &w[b * NB * kp..(b + 1) * NB * kp];
            for k4 in 0..kp / 4 {
                let xa = &xr[k4 * 4..k4 * 4 + 4];
                let chunk = &wb[k4 * NB * 4..(k4 + 1) * NB * 4];
                for j in 0..NB {
                    let mut s = 0i64;
                    for t in 0..4 {
                        s += xa[t].into() * chunk[j * 4 + t] as i64;
                    }
                    row_acc[b * NB + j] += s;
                }
            }
        }
    }
}
