//! The Rényi-DP accountant of the sampled Gaussian mechanism (Mironov, Talwar,
//! Zhang 2019), computed as Google's `dp_accounting` does, and its conversion
//! to (ε, δ).

/// `ln(e^a + e^b)`, exact for `-∞` operands.
fn log_add(a: f64, b: f64) -> f64 {
    let (lo, hi) = if a < b { (a, b) } else { (b, a) };
    if lo == f64::NEG_INFINITY {
        return hi;
    }
    (lo - hi).exp().ln_1p() + hi
}

/// `ln erfc(x)`, accurate in both tails: for `|x| ≤ 3` by the positive series
/// `erf(x) = 2/√π e^(-x²) Σ 2ⁿ x^(2n+1) / (1·3·…·(2n+1))`, beyond by the
/// continued fraction `erfc(x) = e^(-x²)/√π / (x + ½/(x + 1/(x + (3/2)/(x + …))))`
/// (modified Lentz), which never underflows.
pub(super) fn log_erfc(x: f64) -> f64 {
    if x.is_nan() || x == f64::INFINITY {
        return if x.is_nan() { x } else { f64::NEG_INFINITY };
    }
    if x.abs() <= 3.0 {
        let (mut term, mut sum, mut n) = (x, x, 0.0);
        while term.abs() > 1e-17 * sum.abs() {
            n += 1.0;
            term *= 2.0 * x * x / (2.0 * n + 1.0);
            sum += term;
        }
        return (1.0 - std::f64::consts::FRAC_2_SQRT_PI * (-x * x).exp() * sum).ln();
    }
    let y = x.abs().min(1e150); // past 1e150, -y² is -∞ either way
    let (mut f, mut c, mut d, mut n) = (y, y, 0.0_f64, 0.0);
    while n < 500.0 {
        n += 1.0;
        d = 1.0 / (y + n / 2.0 * d);
        c = y + n / 2.0 / c;
        let delta = c * d;
        f *= delta;
        if (delta - 1.0).abs() < 1e-16 {
            break;
        }
    }
    let log_erfc_y = -y * y - 0.5 * std::f64::consts::PI.ln() - f.ln();
    if x > 0.0 {
        log_erfc_y
    } else {
        (2.0 - log_erfc_y.exp()).ln() // erfc(x) = 2 - erfc(-x)
    }
}

/// `ln A_α` for an integer order α:
/// `Σ_{i=0}^{α} C(α,i) q^i (1-q)^(α-i) e^((i²-i)/(2σ²))`, in log space.
fn log_a_int(q: f64, sigma: f64, alpha: f64) -> f64 {
    let (ln_q, ln_1mq) = (q.ln(), (-q).ln_1p());
    let (mut log_a, mut log_coef, mut i) = (f64::NEG_INFINITY, 0.0, 0.0);
    while i <= alpha {
        if i > 0.0 {
            log_coef += (alpha - i + 1.0).ln() - i.ln();
        }
        let s = log_coef + i * ln_q + (alpha - i) * ln_1mq + (i * i - i) / (2.0 * sigma * sigma);
        log_a = log_add(log_a, s);
        i += 1.0;
    }
    log_a
}

/// `ln A_α` for a fractional order, by the two series of Mironov et al. 2019
/// §3.3 with |binomial coefficients|, as the references do. Like
/// `dp_accounting`, gives up after 1000 terms and returns ∞ (the order is
/// then ignored by the conversion).
fn log_a_frac(q: f64, sigma: f64, alpha: f64) -> f64 {
    let (ln_q, ln_1mq) = (q.ln(), (-q).ln_1p());
    let z0 = sigma * sigma * (1.0 / q - 1.0).ln() + 0.5;
    let (scale, two_s2) = (std::f64::consts::SQRT_2 * sigma, 2.0 * sigma * sigma);
    let (mut log_a0, mut log_a1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let (mut last_s0, mut last_s1) = (f64::NEG_INFINITY, f64::NEG_INFINITY);
    let mut log_coef = 0.0;
    for k in 0..1000u32 {
        let (i, j) = (f64::from(k), alpha - f64::from(k));
        if k > 0 {
            log_coef += (j + 1.0).abs().ln() - i.ln();
        }
        let log_e0 = log_erfc((i - z0) / scale) - std::f64::consts::LN_2;
        let log_e1 = log_erfc((z0 - j) / scale) - std::f64::consts::LN_2;
        let log_s0 = log_coef + i * ln_q + j * ln_1mq + (i * i - i) / two_s2 + log_e0;
        let log_s1 = log_coef + j * ln_q + i * ln_1mq + (j * j - j) / two_s2 + log_e1;
        log_a0 = log_add(log_a0, log_s0);
        log_a1 = log_add(log_a1, log_s1);
        let total = log_add(log_a0, log_a1);
        if log_s0 < last_s0 && log_s1 < last_s1 && log_s0.max(log_s1) < total - 30.0 {
            return total;
        }
        (last_s0, last_s1) = (log_s0, log_s1);
    }
    f64::INFINITY
}

/// RDP at order `alpha` (> 1) of one step of the Poisson-subsampled Gaussian
/// mechanism with sampling rate `sample_rate` and noise multiplier σ.
///
/// `sample_rate == 1` is the plain Gaussian mechanism (α/(2σ²)); σ = 0 gives
/// ∞. Parameters out of range (NaN, rate outside [0, 1], σ < 0, α ≤ 1) give ∞:
/// what cannot be accounted for is not private.
pub fn rdp_sampled_gaussian(sample_rate: f64, noise_multiplier: f64, alpha: f64) -> f64 {
    let (q, sigma) = (sample_rate, noise_multiplier);
    if !((0.0..=1.0).contains(&q) && sigma >= 0.0 && alpha > 1.0) {
        f64::INFINITY
    } else if q == 0.0 || sigma == f64::INFINITY {
        0.0
    } else if sigma == 0.0 || alpha == f64::INFINITY {
        f64::INFINITY
    } else if q == 1.0 {
        alpha / (2.0 * sigma * sigma)
    } else if alpha.fract() == 0.0 {
        log_a_int(q, sigma, alpha) / (alpha - 1.0)
    } else {
        log_a_frac(q, sigma, alpha) / (alpha - 1.0)
    }
}

/// The smallest ε ≥ 0 such that RDP `rdp[i]` at `orders[i]` (paired by
/// position) implies (ε, δ)-DP, and the order giving it (NaN if none does).
///
/// Uses `ε = r + ln((α-1)/α) - (ln δ + ln α)/(α-1)` (Balle et al. 2020,
/// Canonne et al. 2020) for α > 1.01, and ε = 0 where the KL bound
/// `δ² ≥ 1 - e^(-r)` holds, as `dp_accounting` and Opacus do. δ ≥ 1 gives 0;
/// δ ≤ 0 gives ∞ unless every RDP is 0.
pub fn epsilon_from_rdp(orders: &[f64], rdp: &[f64], delta: f64) -> (f64, f64) {
    if delta >= 1.0 {
        return (0.0, f64::NAN);
    }
    if delta.is_nan() || delta <= 0.0 {
        let all_zero = rdp.iter().all(|&r| r == 0.0);
        return (if all_zero { 0.0 } else { f64::INFINITY }, f64::NAN);
    }
    let mut best = (f64::INFINITY, f64::NAN);
    for (&a, &r) in orders.iter().zip(rdp) {
        let eps = if r <= 0.0 || delta * delta + (-r).exp_m1() > 0.0 {
            0.0
        } else if a > 1.01 {
            r + (-1.0 / a).ln_1p() - (delta * a).ln() / (a - 1.0)
        } else {
            f64::INFINITY
        };
        let eps = if eps.is_nan() { f64::INFINITY } else { eps };
        if eps < best.0 || best.1.is_nan() {
            best = (eps, a);
        }
    }
    (best.0.max(0.0), best.1)
}

/// Rényi-DP accountant for compositions of the sampled Gaussian mechanism:
/// the RDP accumulated at each of a fixed list of orders.
#[derive(Debug, Clone, PartialEq)]
pub struct RdpAccountant {
    orders: Vec<f64>,
    rdp: Vec<f64>,
}

impl Default for RdpAccountant {
    fn default() -> Self {
        Self::new()
    }
}

impl RdpAccountant {
    /// `dp_accounting`'s `DEFAULT_RDP_ORDERS`: 1.1, 1.2, …, 10.9, then 11, …,
    /// 63, then 128, 256, 512, 1024 (156 orders).
    pub fn default_orders() -> Vec<f64> {
        (1..100u32)
            .map(|x| 1.0 + f64::from(x) / 10.0)
            .chain((11..64u32).map(f64::from))
            .chain([128.0, 256.0, 512.0, 1024.0])
            .collect()
    }

    /// An empty accountant over [`Self::default_orders`].
    pub fn new() -> Self {
        let orders = Self::default_orders();
        let rdp = vec![0.0; orders.len()];
        Self { orders, rdp }
    }

    /// An empty accountant over `orders` (at least one, each finite and > 1).
    pub fn with_orders(orders: Vec<f64>) -> Result<Self, String> {
        if let Some(bad) = orders.iter().find(|a| !(a.is_finite() && **a > 1.0)) {
            return Err(format!("RDP orders must be finite and > 1, got {bad}"));
        }
        if orders.is_empty() {
            return Err("at least one RDP order is needed".into());
        }
        let rdp = vec![0.0; orders.len()];
        Ok(Self { orders, rdp })
    }

    /// The orders tracked.
    pub fn orders(&self) -> &[f64] {
        &self.orders
    }

    /// The RDP accumulated at each of [`Self::orders`].
    pub fn rdp(&self) -> &[f64] {
        &self.rdp
    }

    /// Adds `steps` rounds of the Poisson-subsampled Gaussian mechanism with
    /// client sampling rate `sample_rate` and noise multiplier σ (see
    /// [`rdp_sampled_gaussian`]; σ = 0 makes ε infinite).
    pub fn compose(&mut self, sample_rate: f64, noise_multiplier: f64, steps: u64) {
        if steps == 0 {
            return;
        }
        let steps = steps as f64; // exact up to 2^53
        for (acc, &alpha) in self.rdp.iter_mut().zip(&self.orders) {
            let r = rdp_sampled_gaussian(sample_rate, noise_multiplier, alpha);
            if r != 0.0 {
                *acc += steps * r;
            }
        }
    }

    /// (ε, optimal order) at `delta` for everything composed so far (see
    /// [`epsilon_from_rdp`]).
    pub fn epsilon(&self, delta: f64) -> (f64, f64) {
        epsilon_from_rdp(&self.orders, &self.rdp, delta)
    }
}

/// ε at `delta` after `steps` rounds of the sampled Gaussian mechanism, over
/// [`RdpAccountant::default_orders`].
pub fn epsilon_for(sample_rate: f64, noise_multiplier: f64, steps: u64, delta: f64) -> f64 {
    let mut acc = RdpAccountant::new();
    acc.compose(sample_rate, noise_multiplier, steps);
    acc.epsilon(delta).0
}
