//! The adaptive bound on update norms, on by default: an update whose L2 norm
//! exceeds a multiple of the round's median norm is scaled down to that bound
//! before it is combined. A boosted update (a worker that multiplies its
//! update by 1000 to drag the mean) then weighs no more than a few honest ones,
//! while honest updates, whose norms differ by small factors between shards,
//! pass untouched. The median is the *lower* median, so that with two workers
//! the reference is the smaller update: one hostile worker of two cannot raise
//! its own bound.

use crate::params::ParamSet;

/// The default multiple of the median norm: honest updates of shards a few
/// times larger than the median pass; a boosted one counts as three at most.
pub const DEFAULT_MULTIPLE: f64 = 3.0;

/// What bounding did to a round's updates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NormBounding {
    /// The bound applied (`None`: bounding is off, or no updates).
    pub bound: Option<f64>,
    /// The round's lower-median update norm.
    pub median: f64,
    /// How many updates were scaled down.
    pub clipped: usize,
}

/// Scales every update whose norm exceeds `multiple` times the lower median of
/// the updates' norms down to that bound (`multiple` 0: bounding off).
pub fn bound_norms(updates: &mut [&mut ParamSet], multiple: f64) -> NormBounding {
    let norms: Vec<f64> = updates.iter().map(|u| u.norm()).collect();
    let mut sorted = norms.clone();
    sorted.sort_by(f64::total_cmp);
    let median = match sorted.len() {
        0 => {
            return NormBounding {
                bound: None,
                median: 0.0,
                clipped: 0,
            }
        }
        n => sorted[(n - 1) / 2],
    };
    if multiple <= 0.0 {
        return NormBounding {
            bound: None,
            median,
            clipped: 0,
        };
    }
    let bound = multiple * median;
    let mut clipped = 0;
    for (update, norm) in updates.iter_mut().zip(norms) {
        if norm > bound && norm > 0.0 {
            scale(update, bound / norm);
            clipped += 1;
        }
    }
    NormBounding {
        bound: Some(bound),
        median,
        clipped,
    }
}

/// Multiplies every value of `update` by `factor`.
// Updates are f32; the factor is below 1 and exact enough in f32.
#[allow(clippy::cast_possible_truncation)]
pub fn scale(update: &mut ParamSet, factor: f64) {
    let factor = factor as f32;
    for p in update.0.values_mut() {
        p.values.iter_mut().for_each(|v| *v *= factor);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::params::Param;

    fn update(values: Vec<f32>) -> ParamSet {
        ParamSet(
            [(
                "w".to_string(),
                Param {
                    shape: vec![values.len()],
                    values,
                },
            )]
            .into_iter()
            .collect(),
        )
    }

    #[test]
    fn a_boosted_update_is_scaled_to_a_multiple_of_the_median() {
        let mut honest_a = update(vec![3.0, 4.0]); // norm 5
        let mut honest_b = update(vec![0.0, 6.0]); // norm 6
        let mut boosted = update(vec![3000.0, 4000.0]); // norm 5000
        let mut all = [&mut honest_a, &mut honest_b, &mut boosted];
        let result = bound_norms(&mut all, 3.0);
        assert_eq!(result.median, 6.0);
        assert_eq!(result.bound, Some(18.0));
        assert_eq!(result.clipped, 1);
        assert!((boosted.norm() - 18.0).abs() < 1e-3, "{}", boosted.norm());
        assert_eq!(honest_a, update(vec![3.0, 4.0]));
    }

    #[test]
    fn with_two_workers_the_smaller_update_sets_the_bound() {
        let mut honest = update(vec![0.0, 1.0]);
        let mut boosted = update(vec![0.0, 1000.0]);
        let result = bound_norms(&mut [&mut honest, &mut boosted], 3.0);
        assert_eq!(result.clipped, 1);
        assert!((boosted.norm() - 3.0).abs() < 1e-4);
        let off = bound_norms(&mut [&mut update(vec![0.0, 1000.0])], 0.0);
        assert_eq!((off.bound, off.clipped), (None, 0));
    }
}
