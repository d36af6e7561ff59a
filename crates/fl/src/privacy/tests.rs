//! Tests of the DP primitives and the accountant against published values.

use rand::{rngs::StdRng, SeedableRng};

use super::accountant::log_erfc;
use super::*;
use crate::params::Param;

/// Relative tolerance against `dp_accounting` 0.6.0 (the same algorithm).
const REL: f64 = 1e-6;

fn close(got: f64, want: f64, rel: f64) -> bool {
    (got - want).abs() <= rel * want.abs()
}

fn params(values: &[&[f32]]) -> ParamSet {
    let param = |v: &[f32]| Param {
        shape: vec![v.len()],
        values: v.to_vec(),
    };
    ParamSet(
        (0..)
            .map(|i| format!("p{i}"))
            .zip(values.iter().map(|v| param(v)))
            .collect(),
    )
}

/// `steps` rounds at (q, σ) over `orders`, then (ε, order) at `delta`.
fn run(orders: Vec<f64>, q: f64, sigma: f64, steps: u64, delta: f64) -> (f64, f64) {
    let mut acc = RdpAccountant::with_orders(orders).expect("orders");
    acc.compose(q, sigma, steps);
    acc.epsilon(delta)
}

#[test]
fn settings_validate_and_round_trip() {
    let ok: DpSettings =
        serde_json::from_str(r#"{"noise_multiplier":1.1,"clip":0.5,"delta":1e-5}"#).expect("parse");
    assert_eq!(ok.validate(), Ok(()));
    let json = serde_json::to_string(&ok).expect("serialize");
    assert_eq!(
        serde_json::from_str::<DpSettings>(&json).expect("parse"),
        ok
    );
    let bad: [fn(&mut DpSettings); 5] = [
        |s| s.noise_multiplier = -0.1,
        |s| s.noise_multiplier = f64::NAN,
        |s| s.clip = 0.0,
        |s| s.clip = f64::INFINITY,
        |s| s.delta = 1.0,
    ];
    for (i, spoil) in bad.iter().enumerate() {
        let mut s = ok;
        spoil(&mut s);
        assert!(s.validate().is_err(), "case {i}");
    }
}

#[test]
fn clipping_bounds_the_norm_and_keeps_small_updates() {
    let mut big = params(&[&[3.0, 4.0], &[12.0]]);
    assert!(close(clip_to_norm(&mut big, 1.0), 13.0, 1e-12));
    assert!(big.norm() <= 1.0 && big.norm() > 1.0 - 1e-6);
    assert!(close(f64::from(big.0["p0"].values[1]), 4.0 / 13.0, 1e-6));
    let vals: Vec<f32> = (0..60_000u16)
        .map(|i| f32::from(i % 97) * 0.37 - 17.0)
        .collect();
    let mut many = params(&[&vals]);
    for clip in [7.77, 3.3, 1.0, 0.1] {
        clip_to_norm(&mut many, clip);
        assert!(many.norm() <= clip, "{} > {clip}", many.norm());
    }
    let small = params(&[&[0.1, -0.2], &[0.05]]);
    let mut copy = small.clone();
    assert!(close(clip_to_norm(&mut copy, 1.0), small.norm(), 1e-12));
    assert_eq!(copy, small);
    clip_to_norm(&mut copy, f64::NAN);
    assert_eq!(copy.norm(), 0.0);
    let mut bad = params(&[&[f32::NAN, 1.0]]);
    clip_to_norm(&mut bad, 1.0);
    assert_eq!(bad.0["p0"].values, vec![0.0, 0.0]);
}

#[test]
fn noise_has_the_requested_std() {
    let mut p = params(&[&vec![0.0; 600_000], &vec![0.0; 400_000]]);
    let mut rng = StdRng::seed_from_u64(7);
    add_gaussian_noise(&mut p, 0.5, &mut rng);
    let vals: Vec<f64> =
        p.0.values()
            .flat_map(|q| &q.values)
            .map(|&v| f64::from(v))
            .collect();
    let mean = vals.iter().sum::<f64>() / 1e6;
    let std = (vals.iter().map(|v| (v - mean).powi(2)).sum::<f64>() / 1e6).sqrt();
    assert!(
        mean.abs() < 0.005 && (std - 0.5).abs() < 0.01,
        "{mean} {std}"
    );
    let before = p.clone();
    add_gaussian_noise(&mut p, 0.0, &mut rng);
    assert_eq!(p, before);
}

#[test]
fn log_erfc_matches_scipy() {
    // ln 2 + scipy.special.log_ndtr(-x·√2).
    let cases = [(-30.0, std::f64::consts::LN_2), (-3.2, 0.6931441676748307)];
    let cases = cases
        .into_iter()
        .chain([(-0.1, 0.10657640058652262), (3.0, -10.720363041981116)]);
    let cases = cases.chain([(3.1, -11.360319632044744), (300.0, -90006.27615297309)]);
    for (x, want) in cases {
        assert!(close(log_erfc(x), want, 1e-10), "x={x}: {}", log_erfc(x));
    }
}

#[test]
fn rdp_matches_published_values() {
    // TF Privacy rdp_accountant_test.py test_compute_rdp_scalar:
    // compute_rdp(q=0.1, noise_multiplier=2, steps=10, orders=5) = 0.07737 (5 places).
    assert!((10.0 * rdp_sampled_gaussian(0.1, 2.0, 5.0) - 0.07737).abs() < 1e-5);
    // Same file, test_compute_rdp_no_sampling: q=1, σ=10, order 20 -> 0.1.
    assert!(close(rdp_sampled_gaussian(1.0, 10.0, 20.0), 0.1, 1e-15));
    // dp_accounting rdp_privacy_accountant_test.py test_compute_rdp_poisson_sampled_gaussian:
    // q=0.01, σ=2.5, 50 steps, orders 1.5, 2.5, 5, 50, 100 (np.allclose: rtol 1e-5, atol 1e-8).
    let mut acc = RdpAccountant::with_orders(vec![1.5, 2.5, 5.0, 50.0, 100.0]).expect("orders");
    acc.compose(0.01, 2.5, 50);
    let want = [
        6.70579741e-4,
        1.08548710e-3,
        2.18075656e-3,
        2.38460375e-2,
        1.67416308e2,
    ];
    for (got, want) in acc.rdp().iter().zip(want) {
        assert!((got - want).abs() <= 1e-8 + 1e-5 * want, "{got} vs {want}");
    }
    // Extreme (q, σ, α) of dp_accounting's test_compute_log_a_equals_mp (checked
    // there against mpmath); ln A_α = RDP·(α-1) from dp_accounting 0.6.0.
    for (q, sigma, alpha, log_a) in [
        (1e-7, 0.1, 1.01, 4.0034136195371197e-08),
        (1e-5, 0.1, 256.1, 3263607.039788421),
        (1e-6, 1.0, 27.0, 8.769511303101142e-10),
        (0.1, 100.0, 20.5, 0.0001999181845791853),
        (0.99, 0.1, 256.0, 3263997.427114021),
        (0.999, 100.0, 256.1, 3.260108037973145),
    ] {
        let got = rdp_sampled_gaussian(q, sigma, alpha) * (alpha - 1.0);
        assert!(close(got, log_a, REL), "q={q} σ={sigma} α={alpha}: {got}");
    }
}

#[test]
fn conversion_matches_published_values() {
    // TF Privacy rdp_accountant_test.py test_get_privacy_spent_check_target_delta
    // (dp_accounting: test_compute_epsilon_delta_pure_dp): RDP 1.1 at orders
    // 2..=32, δ=1e-5 -> ε = 1.32783806176 at order 32.
    let orders: Vec<f64> = (2..33u32).map(f64::from).collect();
    let (eps, order) = epsilon_from_rdp(&orders, &[1.1; 31], 1e-5);
    assert!(
        (eps - 1.32783806176).abs() < 1e-10 && order == 32.0,
        "{eps} {order}"
    );
    // Same test: σ = 4.530877117, no sampling, orders 1.001..100 step 0.001
    // is (1, 1e-6)-DP (7 places).
    let fine = (1001..100_000u32).map(|i| 0.001 * f64::from(i)).collect();
    let (eps, _) = run(fine, 1.0, 4.530877117, 1, 1e-6);
    assert!((eps - 1.0).abs() < 1e-7, "{eps}");
}

#[test]
fn epsilon_matches_published_dp_sgd_values() {
    let mut tf = vec![1.25, 1.5, 1.75, 2.0, 2.25, 2.5, 3.0, 3.5, 4.0, 4.5];
    tf.extend((5..64u32).map(f64::from).chain([128.0, 256.0, 512.0]));
    // TF Privacy compute_dp_sgd_privacy_test.py test_compute_dp_sgd_privacy:
    // (n, batch, σ, epochs, δ) -> (ε, order) with TF Privacy's orders, q = batch/n,
    // steps = ⌈epochs·n/batch⌉. The last row is compute_dp_sgd_privacy.py's
    // docstring example, (2.92, 1e-5)-DP under the older conversion; the current
    // one gives 2.521558861805894 (dp_accounting 0.6.0, same orders and steps).
    for (n, b, sigma, epochs, delta, want, want_order) in [
        (
            60_000u32,
            150u32,
            1.3,
            15u32,
            1e-5,
            0.7242234026109595,
            19.0,
        ),
        (100_000, 100, 1.0, 30, 1e-7, 1.4154988495444842, 13.0),
        (100_000_000, 1024, 0.1, 10, 1e-7, 5907982.3113978775, 1.25),
        (60_000, 256, 1.12, 60, 1e-5, 2.521558861805894, 8.0),
    ] {
        let q = f64::from(b) / f64::from(n);
        let (eps, order) = run(tf.clone(), q, sigma, (epochs * n).div_ceil(b).into(), delta);
        assert!(
            close(eps, want, REL) && order == want_order,
            "{n}/{b}: {eps} {order}"
        );
    }
    // Opacus tests/accountants_test.py test_rdp_accountant: q=0.04, σ=1.5, 2250
    // steps, δ=1e-5 -> 7.32911117143 over Opacus's DEFAULT_ALPHAS. Opacus sums
    // its fractional series a little differently (dp_accounting 0.6.0 gives
    // 7.329334702381698 there), hence 1e-4.
    let alphas = (1..100u32).map(|x| 1.0 + f64::from(x) / 10.0);
    let (eps, order) = run(
        alphas.chain((12..64u32).map(f64::from)).collect(),
        0.04,
        1.5,
        2250,
        1e-5,
    );
    assert!(
        close(eps, 7.32911117143, 1e-4) && close(eps, 7.329334702381698, REL),
        "{eps}"
    );
    assert!(close(order, 3.9, 1e-12));
}

#[test]
fn epsilon_matches_dp_accounting_default_orders() {
    // dp_accounting 0.6.0 RdpAccountant() after composing
    // SelfComposedDpEvent(PoissonSampledDpEvent(q, GaussianDpEvent(σ)), steps):
    // get_epsilon_and_optimal_order(δ).
    for (q, sigma, steps, delta, want, want_order) in [
        (1.0, 1.0, 10, 1e-5, 19.05359753163139, 2.5),
        (1.0, 5.0, 1, 1e-5, 0.794522032537103, 22.0),
        (0.01, 1.1, 1000, 1e-5, 1.7117701662429012, 9.6),
        (256.0 / 60000.0, 1.1, 14063, 1e-5, 2.596655529521983, 8.1),
        (0.1, 0.7, 5000, 1e-5, 261.6722552238399, 1.7), // orders 1.1-1.6 give up
        (0.001, 4.0, 3, 1e-6, 0.06274789431890489, 128.0),
        (1e-4, 0.5, 100_000, 1e-6, 3.975689244782337, 4.2),
        (0.02, 10.0, 1, 1e-5, 0.009516475257460896, 512.0),
    ] {
        let (eps, order) = run(RdpAccountant::default_orders(), q, sigma, steps, delta);
        assert!(
            close(eps, want, REL) && close(order, want_order, 1e-12),
            "{q} {sigma}"
        );
        assert!(close(epsilon_for(q, sigma, steps, delta), want, REL));
    }
}

#[test]
fn epsilon_is_monotone_and_degenerate_cases_are_safe() {
    let by_sigma = [0.5, 0.8, 1.0, 2.0, 8.0].map(|s| epsilon_for(0.01, s, 1000, 1e-5));
    assert!(by_sigma.windows(2).all(|w| w[0] > w[1]), "{by_sigma:?}");
    let by_steps = [1, 10, 100, 1000, 10_000].map(|t| epsilon_for(0.01, 1.0, t, 1e-5));
    assert!(by_steps.windows(2).all(|w| w[0] < w[1]), "{by_steps:?}");
    let mut acc = RdpAccountant::new();
    acc.compose(0.01, 1.0, 300);
    acc.compose(0.01, 1.0, 700);
    assert!(close(
        acc.epsilon(1e-5).0,
        epsilon_for(0.01, 1.0, 1000, 1e-5),
        1e-12
    ));
    assert_eq!(
        (acc.epsilon(0.0).0, acc.epsilon(1.0).0),
        (f64::INFINITY, 0.0)
    );
    // σ = 0 is no privacy; q = 0 or no steps cost nothing; bad input is ∞.
    let nan = f64::NAN;
    for (q, sigma, steps, want) in [
        (0.01, 0.0, 10, f64::INFINITY),
        (1.0, 0.0, 1, f64::INFINITY),
        (0.0, 0.0, 10, 0.0),
        (0.01, 1.0, 0, 0.0),
        (1.5, 1.0, 1, f64::INFINITY),
        (nan, 1.0, 1, f64::INFINITY),
        (0.1, -1.0, 1, f64::INFINITY),
    ] {
        assert_eq!(epsilon_for(q, sigma, steps, 1e-5), want, "q={q} σ={sigma}");
    }
    assert!(RdpAccountant::with_orders(vec![]).is_err());
    assert!(RdpAccountant::with_orders(vec![2.0, 1.0]).is_err());
    assert_eq!(RdpAccountant::default_orders().len(), 156);
}
