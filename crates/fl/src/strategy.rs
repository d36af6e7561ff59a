//! Federated strategies as one mechanism: clients send pseudo-gradients
//! (global weights minus their locally trained weights, or their raw gradient
//! when they take one local step); the server combines them (a sample-weighted
//! mean, or a robust coordinate-wise median / trimmed mean) and hands the
//! result to a server optimiser. SGD with rate 1 on the mean is FedAvg.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::error::{FlError, Result};
use crate::params::ParamSet;

/// The strategies a run can name; each fixes the defaults of a [`Strategy`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StrategyKind {
    /// Parameter averaging: local epochs, server SGD with rate 1.
    FedAvg,
    /// Gradient averaging: one local batch per round, server Adam.
    FedSgd,
    /// FedAvg with a proximal term `mu` in the clients' loss.
    FedProx,
    /// FedAvg with server momentum.
    FedAvgM,
    /// FedAvg's pseudo-gradients through server Adam.
    FedAdam,
}

impl FromStr for StrategyKind {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "fedavg" => Ok(Self::FedAvg),
            "fedsgd" => Ok(Self::FedSgd),
            "fedprox" => Ok(Self::FedProx),
            "fedavgm" => Ok(Self::FedAvgM),
            "fedadam" => Ok(Self::FedAdam),
            other => Err(format!(
                "unknown strategy {other:?} (expected fedavg, fedsgd, fedprox, fedavgm or fedadam)"
            )),
        }
    }
}

impl fmt::Display for StrategyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::FedAvg => "fedavg",
            Self::FedSgd => "fedsgd",
            Self::FedProx => "fedprox",
            Self::FedAvgM => "fedavgm",
            Self::FedAdam => "fedadam",
        })
    }
}

/// How client pseudo-gradients are combined.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Aggregation {
    /// Mean weighted by sample counts.
    Mean,
    /// Coordinate-wise median (unweighted): robust to a minority of bad clients.
    Median,
    /// Coordinate-wise mean after dropping the `trim` share of largest and
    /// smallest values (unweighted).
    TrimmedMean {
        /// Share cut from each end, in [0, 0.5).
        trim: f64,
    },
}

impl FromStr for Aggregation {
    type Err = String;
    /// `mean`, `median` or `trimmed-mean[:SHARE]` (default share 0.2).
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        let (name, arg) = s.split_once(':').unwrap_or((s, ""));
        match name {
            "mean" if arg.is_empty() => Ok(Self::Mean),
            "median" if arg.is_empty() => Ok(Self::Median),
            "trimmed-mean" | "trimmed_mean" => {
                let trim = if arg.is_empty() {
                    0.2
                } else {
                    arg.parse::<f64>()
                        .map_err(|_| format!("invalid trim share {arg:?}"))?
                };
                if !(0.0..0.5).contains(&trim) {
                    return Err(format!("trim share must be in [0, 0.5), got {trim}"));
                }
                Ok(Self::TrimmedMean { trim })
            }
            _ => Err(format!(
                "unknown aggregation {s:?} (expected mean, median or trimmed-mean[:SHARE])"
            )),
        }
    }
}

/// What a client does in a round.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum LocalWork {
    /// Train `epochs` passes over the shard with a fresh local Adam and send
    /// `global - local`.
    Epochs {
        /// Passes over the shard.
        epochs: usize,
        /// Local Adam learning rate.
        learning_rate: f64,
        /// FedProx proximal weight (0: plain FedAvg).
        prox_mu: f64,
    },
    /// Compute the gradient of one batch and send it as is.
    Gradient,
}

/// The server optimiser applied to the combined pseudo-gradient.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum ServerOptimizer {
    /// `w -= lr * (momentum buffer)`; momentum 0 is plain SGD.
    Sgd {
        /// Server learning rate; 1 on the mean of `global - local` is FedAvg.
        lr: f64,
        /// Heavy-ball momentum in [0, 1) (fedavgm's default 0.5); 0 is plain SGD.
        momentum: f64,
    },
    /// Adam with bias correction.
    Adam {
        /// Server learning rate (fedadam's default 0.1; fedsgd uses the local rate).
        lr: f64,
        /// Decay of the running mean of pseudo-gradients (0.9).
        beta1: f64,
        /// Decay of the running mean of squared pseudo-gradients (0.99 for fedadam,
        /// 0.999 for fedsgd).
        beta2: f64,
        /// Denominator guard (FedAdam's tau).
        eps: f64,
    },
}

/// A strategy fully spelled out.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Strategy {
    /// The name it was built from, as runs and models record it.
    pub kind: StrategyKind,
    /// What each selected client does in a round: local epochs, or one gradient.
    pub local: LocalWork,
    /// How updates are combined.
    pub aggregation: Aggregation,
    /// What the server does with the combination.
    pub server: ServerOptimizer,
}

/// Knobs a user may set; unset ones take the strategy's defaults.
#[derive(Debug, Clone, Default)]
pub struct StrategyOptions {
    /// Local epochs per round (not for fedsgd).
    pub local_epochs: Option<usize>,
    /// Learning rate of the clients' local Adam (default 2e-3; also fedsgd's
    /// server rate).
    pub local_lr: Option<f64>,
    /// Weight of FedProx's proximal term (default 0.01; fedprox only).
    pub prox_mu: Option<f64>,
    /// Learning rate of the server optimiser (default 1, or 0.1 for fedadam).
    pub server_lr: Option<f64>,
    /// Server momentum for fedavgm (default 0.5).
    pub server_momentum: Option<f64>,
    /// How updates combine (default the weighted mean); median or trimmed
    /// mean resist hostile workers.
    pub aggregation: Option<Aggregation>,
}

impl Strategy {
    /// `kind` with its defaults, overridden by `options`.
    pub fn new(kind: StrategyKind, options: &StrategyOptions) -> Result<Self> {
        let epochs = options.local_epochs.unwrap_or(1);
        let learning_rate = options.local_lr.unwrap_or(2e-3);
        let local = |prox_mu: f64| LocalWork::Epochs {
            epochs,
            learning_rate,
            prox_mu,
        };
        let sgd = |lr: f64, momentum: f64| ServerOptimizer::Sgd { lr, momentum };
        let (local, server) = match kind {
            StrategyKind::FedAvg => (local(0.0), sgd(options.server_lr.unwrap_or(1.0), 0.0)),
            StrategyKind::FedProx => (
                local(options.prox_mu.unwrap_or(0.01)),
                sgd(options.server_lr.unwrap_or(1.0), 0.0),
            ),
            StrategyKind::FedAvgM => (
                local(0.0),
                sgd(
                    options.server_lr.unwrap_or(1.0),
                    options.server_momentum.unwrap_or(0.5),
                ),
            ),
            StrategyKind::FedAdam => (
                local(0.0),
                ServerOptimizer::Adam {
                    lr: options.server_lr.unwrap_or(0.1),
                    beta1: 0.9,
                    beta2: 0.99,
                    eps: 1e-3,
                },
            ),
            StrategyKind::FedSgd => (
                LocalWork::Gradient,
                ServerOptimizer::Adam {
                    lr: options.server_lr.unwrap_or(learning_rate),
                    beta1: 0.9,
                    beta2: 0.999,
                    eps: 1e-8,
                },
            ),
        };
        let strategy = Self {
            kind,
            local,
            aggregation: options.aggregation.unwrap_or(Aggregation::Mean),
            server,
        };
        strategy.validate()?;
        Ok(strategy)
    }

    fn validate(&self) -> Result<()> {
        let bad = |m: String| Err(FlError::Config(m));
        if let LocalWork::Epochs {
            epochs,
            learning_rate,
            prox_mu,
        } = self.local
        {
            if epochs == 0 {
                return bad("local epochs must be at least 1".into());
            }
            let valid = positive(learning_rate) && prox_mu.is_finite() && prox_mu >= 0.0;
            if !valid {
                return bad("local learning rate must be > 0 and mu >= 0".into());
            }
        }
        match self.server {
            ServerOptimizer::Sgd { lr, momentum }
                if !positive(lr) || !(0.0..1.0).contains(&momentum) =>
            {
                bad(format!(
                    "server lr must be > 0 and momentum in [0, 1), got {lr}, {momentum}"
                ))
            }
            ServerOptimizer::Adam { lr, .. } if !positive(lr) => {
                bad(format!("server lr must be > 0, got {lr}"))
            }
            _ => Ok(()),
        }
    }
}

/// True for finite values above zero (false for NaN).
fn positive(x: f64) -> bool {
    x.is_finite() && x > 0.0
}

/// One client's contribution to a round.
pub struct Contribution<'a> {
    /// The client's pseudo-gradient for the round.
    pub update: &'a ParamSet,
    /// Its training samples (the mean's weight).
    pub samples: u64,
}

/// Combines contributions (all shaped alike) into one pseudo-gradient.
// The sums run in f64 and land in the f32 parameters: narrowing them is the
// point. The trimmed count is `floor(trim * k)` with trim in [0, 0.5), so it
// is a small non-negative whole number.
#[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
pub fn combine(aggregation: Aggregation, contributions: &[Contribution<'_>]) -> Result<ParamSet> {
    let first = contributions
        .first()
        .ok_or_else(|| FlError::Invalid("no updates to aggregate".into()))?;
    let mut out = first.update.clone();
    match aggregation {
        Aggregation::Mean => {
            let total: f64 = contributions.iter().map(|c| c.samples as f64).sum();
            if !positive(total) {
                return Err(FlError::Invalid("updates carry no samples".into()));
            }
            for (name, param) in out.0.iter_mut() {
                param.values.fill(0.0);
                let mut acc = vec![0f64; param.values.len()];
                for c in contributions {
                    let weight = c.samples as f64 / total;
                    let values = &c.update.0[name].values;
                    for (a, &v) in acc.iter_mut().zip(values) {
                        *a += weight * f64::from(v);
                    }
                }
                for (p, a) in param.values.iter_mut().zip(acc) {
                    *p = a as f32;
                }
            }
        }
        Aggregation::Median | Aggregation::TrimmedMean { .. } => {
            let k = contributions.len();
            let cut = match aggregation {
                Aggregation::TrimmedMean { trim } => {
                    ((trim * k as f64).floor() as usize).min((k - 1) / 2)
                }
                _ => 0,
            };
            let mut column = Vec::with_capacity(k);
            for (name, param) in out.0.iter_mut() {
                let sources: Vec<&[f32]> = contributions
                    .iter()
                    .map(|c| c.update.0[name].values.as_slice())
                    .collect();
                for (i, p) in param.values.iter_mut().enumerate() {
                    column.clear();
                    column.extend(sources.iter().map(|s| s[i]));
                    column.sort_unstable_by(f32::total_cmp);
                    *p = match aggregation {
                        Aggregation::Median => median(&column),
                        _ => {
                            let kept = &column[cut..k - cut];
                            kept.iter().map(|&v| f64::from(v)).sum::<f64>() as f32
                                / kept.len() as f32
                        }
                    };
                }
            }
        }
    }
    Ok(out)
}

fn median(sorted: &[f32]) -> f32 {
    let n = sorted.len();
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

/// A server optimiser with its state (kept across rounds and persisted).
#[derive(Debug, Clone)]
pub struct ServerState {
    /// Which optimiser, with its hyper-parameters.
    pub optimizer: ServerOptimizer,
    /// Steps taken so far; Adam's bias correction depends on it.
    pub step: u64,
    /// Momentum buffer (SGD with momentum) or first moment (Adam).
    pub m: Option<ParamSet>,
    /// Second moment (Adam).
    pub v: Option<ParamSet>,
}

impl ServerState {
    /// `optimizer` with no steps taken and no buffers yet.
    pub fn new(optimizer: ServerOptimizer) -> Self {
        Self {
            optimizer,
            step: 0,
            m: None,
            v: None,
        }
    }

    /// Moves `global` against the combined pseudo-gradient `g`.
    // The hyper-parameters are f64 (as configured); the parameters and their
    // update run in f32, like the local optimiser's.
    #[allow(clippy::cast_possible_truncation)]
    pub fn apply(&mut self, global: &mut ParamSet, g: &ParamSet) -> Result<()> {
        self.step += 1;
        match self.optimizer {
            ServerOptimizer::Sgd { lr, momentum } => {
                let lr = lr as f32;
                if momentum == 0.0 {
                    for_each_pair(global, g, |w, d| *w -= lr * d)?;
                    return Ok(());
                }
                let m = self.m.get_or_insert_with(|| zeros_like(g));
                let beta = momentum as f32;
                for (name, param) in global.0.iter_mut() {
                    let grad = &g.0[name].values;
                    let buf = &mut m.0.get_mut(name).ok_or_else(|| missing(name))?.values;
                    for ((w, b), &d) in param.values.iter_mut().zip(buf.iter_mut()).zip(grad) {
                        *b = beta * *b + d;
                        *w -= lr * *b;
                    }
                }
            }
            ServerOptimizer::Adam {
                lr,
                beta1,
                beta2,
                eps,
            } => {
                let m = self.m.get_or_insert_with(|| zeros_like(g));
                let v = self.v.get_or_insert_with(|| zeros_like(g));
                // Past i32::MAX steps beta^t is 0 anyway, as with the cap.
                let t = i32::try_from(self.step).unwrap_or(i32::MAX);
                let bc1 = 1.0 - beta1.powi(t);
                let bc2 = 1.0 - beta2.powi(t);
                let step_size = (lr * bc2.sqrt() / bc1) as f32;
                let eps = (eps * bc2.sqrt()) as f32;
                let (b1, b2) = (beta1 as f32, beta2 as f32);
                for (name, param) in global.0.iter_mut() {
                    let grad = &g.0[name].values;
                    let mm = &mut m.0.get_mut(name).ok_or_else(|| missing(name))?.values;
                    let vv = &mut v.0.get_mut(name).ok_or_else(|| missing(name))?.values;
                    for (((w, mi), vi), &d) in param
                        .values
                        .iter_mut()
                        .zip(mm.iter_mut())
                        .zip(vv.iter_mut())
                        .zip(grad)
                    {
                        *mi = b1 * *mi + (1.0 - b1) * d;
                        *vi = b2 * *vi + (1.0 - b2) * d * d;
                        *w -= step_size * *mi / (vi.sqrt() + eps);
                    }
                }
            }
        }
        Ok(())
    }
}

fn missing(name: &str) -> FlError {
    FlError::Invalid(format!("optimizer state lacks {name}"))
}

fn zeros_like(p: &ParamSet) -> ParamSet {
    let mut z = p.clone();
    z.0.values_mut().for_each(|q| q.values.fill(0.0));
    z
}

fn for_each_pair(
    global: &mut ParamSet,
    g: &ParamSet,
    mut f: impl FnMut(&mut f32, f32),
) -> Result<()> {
    for (name, param) in global.0.iter_mut() {
        let grad = g.0.get(name).ok_or_else(|| missing(name))?;
        for (w, &d) in param.values.iter_mut().zip(&grad.values) {
            f(w, d);
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;
    use crate::params::Param;

    fn set(values: &[f32]) -> ParamSet {
        ParamSet(BTreeMap::from([(
            "w".to_string(),
            Param {
                shape: vec![values.len()],
                values: values.to_vec(),
            },
        )]))
    }

    #[test]
    fn mean_is_weighted_by_samples() {
        let (a, b) = (set(&[1.0, 0.0]), set(&[4.0, 3.0]));
        let out = combine(
            Aggregation::Mean,
            &[
                Contribution {
                    update: &a,
                    samples: 2,
                },
                Contribution {
                    update: &b,
                    samples: 1,
                },
            ],
        )
        .unwrap();
        assert_eq!(out.0["w"].values, vec![2.0, 1.0]);
    }

    #[test]
    fn median_and_trimmed_mean_ignore_one_outlier() {
        let sets = [
            set(&[1.0]),
            set(&[1.2]),
            set(&[0.8]),
            set(&[1.1]),
            set(&[-1000.0]),
        ];
        let contributions: Vec<_> = sets
            .iter()
            .map(|s| Contribution {
                update: s,
                samples: 1,
            })
            .collect();
        let median = combine(Aggregation::Median, &contributions).unwrap();
        assert_eq!(median.0["w"].values, vec![1.0]);
        let trimmed = combine(Aggregation::TrimmedMean { trim: 0.2 }, &contributions).unwrap();
        assert!((trimmed.0["w"].values[0] - (1.0 + 0.8 + 1.1) / 3.0).abs() < 1e-6);
        let mean = combine(Aggregation::Mean, &contributions).unwrap();
        assert!(mean.0["w"].values[0] < -100.0);
    }

    #[test]
    fn sgd_with_rate_one_on_the_mean_is_parameter_averaging() {
        let global = set(&[1.0, 1.0]);
        let locals = [set(&[3.0, 0.0]), set(&[1.0, 2.0])];
        let deltas: Vec<ParamSet> = locals.iter().map(|l| global.minus(l).unwrap()).collect();
        let contributions: Vec<_> = deltas
            .iter()
            .map(|d| Contribution {
                update: d,
                samples: 1,
            })
            .collect();
        let g = combine(Aggregation::Mean, &contributions).unwrap();
        let mut w = global.clone();
        let mut opt = ServerState::new(ServerOptimizer::Sgd {
            lr: 1.0,
            momentum: 0.0,
        });
        opt.apply(&mut w, &g).unwrap();
        assert_eq!(w.0["w"].values, vec![2.0, 1.0]);
    }

    #[test]
    fn server_momentum_accumulates_and_adam_takes_lr_sized_first_steps() {
        let mut w = set(&[0.0]);
        let mut opt = ServerState::new(ServerOptimizer::Sgd {
            lr: 1.0,
            momentum: 0.5,
        });
        opt.apply(&mut w, &set(&[1.0])).unwrap();
        opt.apply(&mut w, &set(&[1.0])).unwrap();
        assert_eq!(w.0["w"].values, vec![-2.5]);
        let mut w = set(&[0.0, 0.0]);
        let mut adam = ServerState::new(ServerOptimizer::Adam {
            lr: 0.1,
            beta1: 0.9,
            beta2: 0.999,
            eps: 1e-8,
        });
        adam.apply(&mut w, &set(&[5.0, -0.01])).unwrap();
        assert!((w.0["w"].values[0] + 0.1).abs() < 1e-5 && (w.0["w"].values[1] - 0.1).abs() < 1e-4);
    }

    #[test]
    fn strategies_parse_and_validate() {
        assert_eq!(
            "FedProx".parse::<StrategyKind>().unwrap(),
            StrategyKind::FedProx
        );
        assert!("fedfoo".parse::<StrategyKind>().is_err());
        assert_eq!(
            "trimmed-mean:0.25".parse::<Aggregation>().unwrap(),
            Aggregation::TrimmedMean { trim: 0.25 }
        );
        assert!("trimmed-mean:0.5".parse::<Aggregation>().is_err());
        let options = StrategyOptions {
            local_epochs: Some(0),
            ..Default::default()
        };
        assert!(Strategy::new(StrategyKind::FedAvg, &options).is_err());
        let sgd = Strategy::new(StrategyKind::FedSgd, &StrategyOptions::default()).unwrap();
        assert_eq!(sgd.local, LocalWork::Gradient);
    }
}
