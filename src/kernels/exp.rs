//! `exp` without a libm call, written so that the loops using it vectorise: for the softmaxes of
//! attention and of the search, and the model's swish activation.

/// exp(x) for x <= 0 (larger inputs are not needed here), accurate to a few ulps, written so that
/// the compiler vectorises it; -inf gives 0.
#[inline(always)]
pub(crate) fn exp_nonpos(x: f32) -> f32 {
    let v = exp_reduced(x.max(-87.0));
    if x < -87.0 {
        0.0
    } else {
        v
    }
}

/// exp(x) for any x, as [`exp_nonpos`] (a few ulps; overflow gives +inf, -inf gives 0), written
/// so that the compiler vectorises it.
#[inline(always)]
pub(crate) fn exp_any(x: f32) -> f32 {
    let v = exp_reduced(x.clamp(-87.0, 88.0));
    if x < -87.0 {
        0.0
    } else if x > 88.0 {
        f32::INFINITY
    } else {
        v
    }
}

/// exp(x) for x in [-87, 88]: x = n ln2 + r, exp(r) on [-ln2/2, ln2/2] by Taylor to degree 7
/// (error below 2e-8), scaled by 2^n through the exponent bits.
#[inline(always)]
fn exp_reduced(x: f32) -> f32 {
    const LOG2E: f32 = std::f32::consts::LOG2_E;
    const LN2_HI: f32 = 0.693_145_75;
    const LN2_LO: f32 = 1.428_606_8e-6;
    // Adding 1.5 * 2^23 rounds to an integer held in the low mantissa bits, so
    // 2^n is built with integer arithmetic on those bits: no float-to-int conversion, whose
    // saturating semantics would keep the loop from vectorising.
    const MAGIC: f32 = 12_582_912.0; // 1.5 * 2^23
    let t = x * LOG2E + MAGIC;
    let n = t - MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0
        + r * (1.0
            + r * (0.5
                + r * (1.0 / 6.0
                    + r * (1.0 / 24.0
                        + r * (1.0 / 120.0 + r * (1.0 / 720.0 + r * (1.0 / 5040.0)))))));
    let scale = f32::from_bits(t.to_bits().wrapping_sub(MAGIC.to_bits()).wrapping_add(127) << 23);
    p * scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_std() {
        let mut x = -90.0f32;
        while x <= 0.0 {
            let (a, b) = (exp_nonpos(x), x.exp());
            assert!(
                (a - b).abs() <= 4.0 * f32::EPSILON * b + 1e-37,
                "{x}: {a} vs {b}"
            );
            x += 0.0137;
        }
        assert_eq!(exp_nonpos(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_nonpos(0.0), 1.0);
    }

    #[test]
    fn exp_any_matches_std() {
        let mut x = -90.0f32;
        while x <= 88.0 {
            let (a, b) = (exp_any(x), x.exp());
            assert!(
                (a - b).abs() <= 4.0 * f32::EPSILON * b + 1e-37,
                "{x}: {a} vs {b}"
            );
            x += 0.0137;
        }
        assert_eq!(exp_any(f32::NEG_INFINITY), 0.0);
        assert_eq!(exp_any(f32::INFINITY), f32::INFINITY);
        assert_eq!(exp_any(0.0), 1.0);
    }
}
