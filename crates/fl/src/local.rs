//! A worker's local work in one round: start from the global weights, train on
//! its own encoded shard (or take one batch's gradient), and return the
//! pseudo-gradient. Pure computation: no network, no files.

use std::time::Instant;

use bloginfer_model::train::{Encoded, Silent, Trainer};
use bloginfer_model::{ModelConfig, SentimentModel, TrainConfig};
use rand::rngs::StdRng;
use rand::seq::index::sample;
use rand::SeedableRng;

use crate::error::{FlError, Result};
use crate::params::{Param, ParamSet};
use crate::protocol::LocalSettings;
use crate::strategy::LocalWork;

/// What local training produced.
#[derive(Debug, Clone)]
pub struct LocalOutcome {
    /// Pseudo-gradient: `global - local`, or the raw gradient.
    pub update: ParamSet,
    /// Mean training loss over the local steps, reported to the aggregator.
    pub train_loss: f64,
    /// Optimisation steps taken (1 for a gradient).
    pub steps: u64,
    /// Samples behind the update.
    pub samples: u64,
    /// Seconds of local training, reported to the aggregator.
    pub seconds: f64,
}

/// The seed a worker uses in a round: distinct per worker and round, the
/// same on every machine (so a restarted worker repeats its work exactly).
pub fn round_seed(base: u64, worker_id: &str, round: u32) -> u64 {
    let key = format!("{worker_id}/{round}");
    bloginfer_model::data::stable_key(base, &key)
}

/// The training settings local work runs with.
pub fn local_train_config(settings: &LocalSettings, learning_rate: f64, seed: u64) -> TrainConfig {
    TrainConfig {
        epochs: 1,
        batch_size: settings.batch_size,
        learning_rate,
        clip_norm: settings.clip_norm,
        seed,
        token_dropout: settings.token_dropout,
        ..TrainConfig::default()
    }
}

/// Runs one round of local work on `data` from `global`.
pub fn train_round(
    config: &ModelConfig,
    global: &ParamSet,
    data: &[Encoded],
    work: LocalWork,
    settings: &LocalSettings,
    seed: u64,
    threads: usize,
) -> Result<LocalOutcome> {
    if data.is_empty() {
        return Err(FlError::Config("the shard has no examples".into()));
    }
    let start = Instant::now();
    let anchor = global.to_tensors()?;
    let model = SentimentModel::from_tensors(config.clone(), anchor.clone())?.with_threads(threads);
    match work {
        LocalWork::Epochs {
            epochs,
            learning_rate,
            prox_mu,
        } => {
            let mut trainer =
                Trainer::new(model, &local_train_config(settings, learning_rate, seed))?;
            trainer.set_proximal(prox_mu, anchor);
            let (mut loss_sum, mut steps) = (0f64, 0u64);
            for epoch in 1..=epochs {
                let (loss, _) = trainer.epoch(data, epoch, &mut Silent)?;
                loss_sum += loss;
                steps += data.len().div_ceil(settings.batch_size.max(1)) as u64;
            }
            let local = ParamSet::from_model(trainer.model())?;
            Ok(LocalOutcome {
                update: global.minus(&local)?,
                train_loss: loss_sum / epochs as f64,
                steps,
                samples: data.len() as u64,
                seconds: start.elapsed().as_secs_f64(),
            })
        }
        LocalWork::Gradient => {
            let batch = settings.batch_size.clamp(1, data.len());
            let mut rng = StdRng::seed_from_u64(seed);
            let mut picked: Vec<usize> = sample(&mut rng, data.len(), batch).into_vec();
            picked.sort_unstable();
            let examples: Vec<&Encoded> = picked.iter().map(|&i| &data[i]).collect();
            let cfg = local_train_config(settings, 1e-3, seed);
            let mut trainer = Trainer::new(model, &cfg)?;
            let (loss, grads) = trainer.loss_and_gradients(&examples)?;
            let mut update = ParamSet::default();
            for (name, var) in trainer.model().vars()? {
                let shape = var.as_tensor().dims().to_vec();
                let values = match grads.get(var.as_tensor()) {
                    Some(g) => g.flatten_all()?.to_vec1::<f32>()?,
                    None => vec![0.0; shape.iter().product()],
                };
                update.0.insert(name, Param { shape, values });
            }
            Ok(LocalOutcome {
                update,
                train_loss: f64::from(loss),
                steps: 1,
                samples: batch as u64,
                seconds: start.elapsed().as_secs_f64(),
            })
        }
    }
}
