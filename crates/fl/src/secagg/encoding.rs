//! Fixed-point encoding: `f32` updates to integers in the `u32` ring, where
//! masks add and cancel exactly, and the decoding of their sum.

use rand::Rng;
use serde::{Deserialize, Serialize};

use super::SecAggError;

/// Default clipping bound: Flower SecAgg+'s `clipping_range` of 8.
pub const DEFAULT_CLIP: f32 = 8.0;

/// Default number of quantisation steps: `2^22 - 1`, so an encoded value is
/// one of Flower's `quantization_range` = 2^22 integers `0..=2^22-1`, and up
/// to `u32::MAX / (2^22 - 1)` = 1024 vectors sum without wrapping.
pub const DEFAULT_LEVELS: u32 = (1 << 22) - 1;

/// A fixed-point code for the values of one vector.
///
/// A value is clipped to `[-clip, clip]`, mapped linearly onto `[0, levels]`
/// and rounded *stochastically* to one of its two neighbouring integers, with
/// probabilities that make the code unbiased: `E[decode(encode(x))] = x` for
/// `|x| <= clip`. The step between codes is `step = 2 clip / levels`.
///
/// Encoded vectors are summed with wrapping `u32` arithmetic (the ring masks
/// live in); the sum of `count` encodings stays below `2^32`, hence decodes
/// exactly, while `count <= max_vectors() = u32::MAX / levels` (1024 with the
/// defaults).
///
/// **Error bound.** Each encoded term is off from its clipped value by less
/// than one `step`, so each coordinate of [`FixedPoint::decode_sum`] differs
/// from the sum of the clipped values by less than `count * step`, plus the
/// final rounding of the result to `f32` (at most `count * clip * 2^-24`):
/// see [`FixedPoint::error_bound`]. With the defaults, `step` ≈ 3.8e-6.
/// Errors are unbiased and independent, so the typical error is far smaller
/// (≈ `step * sqrt(count) / 2`).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct FixedPoint {
    /// Values are clipped to `[-clip, clip]`; must be finite and positive.
    pub clip: f32,
    /// Codes run over `0..=levels`; must be positive.
    pub levels: u32,
}

impl Default for FixedPoint {
    fn default() -> Self {
        Self {
            clip: DEFAULT_CLIP,
            levels: DEFAULT_LEVELS,
        }
    }
}

/// `q` as a `u32`; callers clamp it to `[0, levels]` first.
#[allow(
    clippy::cast_possible_truncation,
    clippy::cast_sign_loss,
    reason = "q is an integer-valued f64 already clamped to [0, u32::MAX]"
)]
fn code(q: f64) -> u32 {
    q as u32
}

/// `x` rounded to `f32`.
#[allow(
    clippy::cast_possible_truncation,
    reason = "narrowing the decoded sum to f32 is the intended output precision"
)]
fn narrow(x: f64) -> f32 {
    x as f32
}

impl FixedPoint {
    /// The value between two consecutive codes, `2 clip / levels`.
    pub fn step(&self) -> f64 {
        2.0 * f64::from(self.clip) / f64::from(self.levels.max(1))
    }

    /// The most vectors whose encodings can be summed without wrapping:
    /// `u32::MAX / levels` (1024 with the defaults).
    pub fn max_vectors(&self) -> usize {
        usize::try_from(u32::MAX / self.levels.max(1)).unwrap_or(usize::MAX)
    }

    /// Worst-case absolute error per coordinate of [`FixedPoint::decode_sum`]
    /// for `count` vectors, against the sum of the clipped inputs:
    /// `count * (step + clip * 2^-24)`.
    pub fn error_bound(&self, count: usize) -> f64 {
        let n = f64::from(u32::try_from(count).unwrap_or(u32::MAX));
        n * (self.step() + f64::from(self.clip) * f64::from(f32::EPSILON) / 2.0)
    }

    fn validate(&self) -> Result<(), SecAggError> {
        if self.clip.is_finite() && self.clip > 0.0 && self.levels > 0 {
            Ok(())
        } else {
            Err(SecAggError::InvalidFixedPoint {
                clip: self.clip,
                levels: self.levels,
            })
        }
    }

    /// Encodes `values` into codes in `0..=levels`, one per value.
    ///
    /// Values beyond `±clip` (and infinities) are clipped; `NaN` encodes as
    /// 0.0 so that one bad coordinate cannot poison the aggregate. `rng`
    /// drives the stochastic rounding: the same seed gives the same codes.
    pub fn encode<R: Rng + ?Sized>(
        &self,
        values: &[f32],
        rng: &mut R,
    ) -> Result<Vec<u32>, SecAggError> {
        self.validate()?;
        let clip = f64::from(self.clip);
        let levels = f64::from(self.levels);
        let scale = levels / (2.0 * clip);
        Ok(values
            .iter()
            .map(|&v| {
                let x = if v.is_nan() {
                    0.0
                } else {
                    f64::from(v).clamp(-clip, clip)
                };
                // Clamp again: (x + clip) * scale may round just past levels.
                let t = ((x + clip) * scale).clamp(0.0, levels);
                let floor = t.floor();
                // Round up with probability equal to the fractional part, so
                // the expected code is exactly t.
                let up = rng.random::<f64>() < t - floor;
                code((floor + f64::from(u8::from(up))).min(levels))
            })
            .collect())
    }

    /// Decodes the wrapping sum of `count` encoded vectors into the sum of
    /// their values: `S * step - count * clip` per coordinate, within
    /// [`FixedPoint::error_bound`]`(count)` of the sum of the clipped inputs.
    ///
    /// Fails if `count` exceeds [`FixedPoint::max_vectors`] (the sum may have
    /// wrapped, so no decoding would be right).
    pub fn decode_sum(&self, sum: &[u32], count: usize) -> Result<Vec<f32>, SecAggError> {
        self.validate()?;
        let max = self.max_vectors();
        let n = u32::try_from(count)
            .ok()
            .filter(|_| count <= max)
            .ok_or(SecAggError::TooManyVectors { count, max })?;
        let step = self.step();
        let offset = f64::from(n) * f64::from(self.clip);
        Ok(sum
            .iter()
            .map(|&s| narrow(f64::from(s) * step - offset))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn defaults_hold_1024_vectors_without_wrapping() {
        let fp = FixedPoint::default();
        assert_eq!(fp.max_vectors(), 1024);
        assert!(u64::from(fp.levels) * 1024 <= u64::from(u32::MAX));
        assert!(u64::from(fp.levels) * 1025 > u64::from(u32::MAX));
        assert!(matches!(
            fp.decode_sum(&[0], 1025),
            Err(SecAggError::TooManyVectors { max: 1024, .. })
        ));
        let bad = FixedPoint {
            clip: 0.0,
            levels: 10,
        };
        assert!(bad
            .encode(&[1.0], &mut ChaCha8Rng::seed_from_u64(0))
            .is_err());
    }

    #[test]
    fn sum_of_encodings_decodes_within_bound() {
        let fp = FixedPoint::default();
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (n, len) = (9, 20_000);
        let mut sum = vec![0u32; len];
        let mut exact = vec![0f64; len];
        for _ in 0..n {
            // Some values fall outside ±clip, to exercise clipping too.
            let v: Vec<f32> = (0..len).map(|_| rng.random_range(-10.0..10.0)).collect();
            let enc = fp.encode(&v, &mut rng).unwrap();
            assert!(enc.iter().all(|&q| q <= fp.levels));
            for i in 0..len {
                sum[i] = sum[i].wrapping_add(enc[i]);
                exact[i] += f64::from(v[i].clamp(-fp.clip, fp.clip));
            }
        }
        let decoded = fp.decode_sum(&sum, n).unwrap();
        let bound = fp.error_bound(n);
        let worst = decoded
            .iter()
            .zip(&exact)
            .map(|(&d, &e)| (f64::from(d) - e).abs())
            .fold(0.0, f64::max);
        assert!(worst < bound, "worst error {worst} >= bound {bound}");
        // The bound is not vacuous: it is a few dozen steps at most.
        assert!(bound < 20.0 * fp.step());
    }

    #[test]
    fn values_beyond_clip_are_clipped() {
        let fp = FixedPoint::default();
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let v = [100.0, -100.0, f32::INFINITY, f32::NEG_INFINITY, 8.0, -8.0];
        let enc = fp.encode(&v, &mut rng).unwrap();
        assert_eq!(enc, [fp.levels, 0, fp.levels, 0, fp.levels, 0]);
        let nan = fp.encode(&[f32::NAN], &mut rng).unwrap();
        let back = fp.decode_sum(&nan, 1).unwrap();
        assert!(f64::from(back[0]).abs() <= fp.step());
    }

    #[test]
    fn stochastic_rounding_is_unbiased() {
        let fp = FixedPoint::default();
        // 0.3 of a step above a code (up to the f32 rounding of x).
        let x = narrow((2_000_000.3) * fp.step() - f64::from(fp.clip));
        // Make sure x sits well between two codes, where rounding to the
        // nearest code would be biased by a sizeable fraction of a step.
        let t = (f64::from(x) + f64::from(fp.clip)) / fp.step();
        let frac = t - t.floor();
        assert!((0.1..0.9).contains(&frac), "frac {frac}");
        let draws = 200_000;
        let enc = fp
            .encode(&vec![x; draws], &mut ChaCha8Rng::seed_from_u64(3))
            .unwrap();
        let ups = enc.iter().filter(|&&q| f64::from(q) > t).count();
        assert!(ups > 0 && ups < draws, "both neighbours must occur");
        let mean_err = enc
            .iter()
            .map(|&q| f64::from(q) * fp.step() - f64::from(fp.clip) - f64::from(x))
            .sum::<f64>()
            / 200_000.0;
        // The standard deviation of the mean is ≈ 0.0011 step here.
        assert!(
            mean_err.abs() < 0.01 * fp.step(),
            "mean error {mean_err} vs step {}",
            fp.step()
        );
    }
}
