//! Client-level differential privacy (DP-FedAvg) and its accountant.
//!
//! DP-FedAvg (McMahan et al., ICLR 2018) clips each client's update to an L2
//! norm `clip` ([`clip_to_norm`]), sums the clipped updates and adds Gaussian
//! noise of standard deviation `noise_multiplier * clip` to the sum
//! ([`add_gaussian_noise`]). With clients sampled independently with
//! probability `q` per round this is the sampled Gaussian mechanism, whose
//! privacy loss [`RdpAccountant`] tracks in Rényi DP (Mironov, Talwar, Zhang
//! 2019) as Google's `dp_accounting` (`rdp_privacy_accountant.py`, successor of
//! TF Privacy's `rdp_accountant.py`) does, and converts to (ε, δ).

use rand::Rng;
use rand_distr::StandardNormal;
use serde::{Deserialize, Serialize};

use crate::params::ParamSet;

mod accountant;
#[cfg(test)]
mod tests;

pub use accountant::{epsilon_for, epsilon_from_rdp, rdp_sampled_gaussian, RdpAccountant};

/// The δ used when a run does not choose one.
pub const DEFAULT_DELTA: f64 = 1e-5;

/// The privacy parameters of a DP-FedAvg run.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DpSettings {
    /// Noise standard deviation as a multiple of `clip` (σ, often `z`).
    pub noise_multiplier: f64,
    /// Largest L2 norm of one client's update (the sensitivity).
    pub clip: f64,
    /// Target δ of the reported (ε, δ) guarantee.
    pub delta: f64,
}

impl DpSettings {
    /// Checks `noise_multiplier` finite and ≥ 0, `clip` finite and > 0, and
    /// `delta` in (0, 1).
    pub fn validate(&self) -> Result<(), String> {
        let Self {
            noise_multiplier: z,
            clip,
            delta,
        } = *self;
        if !(z.is_finite() && z >= 0.0) {
            Err(format!("noise_multiplier must be finite and >= 0, got {z}"))
        } else if !(clip.is_finite() && clip > 0.0) {
            Err(format!("clip must be finite and > 0, got {clip}"))
        } else if !(delta > 0.0 && delta < 1.0) {
            Err(format!("delta must be in (0, 1), got {delta}"))
        } else {
            Ok(())
        }
    }
}

/// `x` rounded to the f32 that parameters are stored in.
#[allow(clippy::cast_possible_truncation, reason = "parameters are f32")]
fn to_f32(x: f64) -> f32 {
    x as f32
}

/// Scales `update` as a whole (L2 over every value of every parameter) down
/// to norm ≤ `clip`, and returns its norm before clipping.
///
/// An update within `clip` is left untouched. An update with a non-finite
/// value, and any update when `clip` is NaN or ≤ 0, becomes zeros, so the
/// result always has norm ≤ `clip`.
pub fn clip_to_norm(update: &mut ParamSet, clip: f64) -> f64 {
    let norm = update.norm();
    let clip = clip.max(0.0); // NaN becomes 0
    if norm <= clip {
        return norm;
    }
    // 2^-22 of slack absorbs the f32 rounding of the scale and of each product
    // (≤ 2^-24 each), so the norm stays ≤ clip.
    let scale = to_f32(clip / norm * (1.0 - 2f64.powi(-22)));
    let finite = norm.is_finite() && scale > 0.0;
    for v in update.0.values_mut().flat_map(|p| p.values.iter_mut()) {
        *v = if finite { *v * scale } else { 0.0 };
    }
    norm
}

/// Adds i.i.d. N(0, `std`²) noise to every value of `params`, in one pass.
///
/// Only `std`² matters, so a negative `std` acts as its absolute value; a NaN
/// or infinite `std` makes every value non-finite (it never passes silently).
pub fn add_gaussian_noise(params: &mut ParamSet, std: f64, rng: &mut impl Rng) {
    if std == 0.0 {
        return;
    }
    let std = to_f32(std);
    for v in params.0.values_mut().flat_map(|p| p.values.iter_mut()) {
        let z: f32 = rng.sample(StandardNormal);
        *v += std * z;
    }
}
