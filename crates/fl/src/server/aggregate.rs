//! A closed round becomes new global weights: plain updates are bounded (or
//! clipped and noised under differential privacy) and combined, secure ones
//! unmasked; the server optimiser steps, the result is validated and the
//! round's record written.

use std::time::Instant;

use bloginfer_model::train::{evaluate, Encoded};
use bloginfer_model::{ModelConfig, SentimentModel};

use super::coordinator::{self, RoundInput};
use super::{secure, AggregatorConfig, Shared};
use crate::error::{FlError, Result};
use crate::params::ParamSet;
use crate::protocol::RoundRecord;
use crate::strategy::{combine, Contribution, ServerState};

/// Validation metrics of `params` on `data`, and the seconds they took.
pub(super) fn evaluate_params(
    config: &ModelConfig,
    params: &ParamSet,
    data: &[Encoded],
    threads: usize,
) -> Result<(bloginfer_model::Metrics, f64)> {
    let start = Instant::now();
    let model =
        SentimentModel::from_tensors(config.clone(), params.to_tensors()?)?.with_threads(threads);
    let metrics = evaluate(&model, data)?;
    Ok((metrics, start.elapsed().as_secs_f64()))
}

/// Combines a round's updates into one pseudo-gradient: under differential
/// privacy each is clipped to the clip norm, the mean is unweighted and
/// Gaussian noise is added; otherwise updates beyond the adaptive bound are
/// scaled down and the strategy's aggregate weighs each by its roster samples.
fn combine_plain(
    config: &AggregatorConfig,
    updates: &mut [coordinator::Received],
    record: &mut RoundRecord,
) -> Result<ParamSet> {
    let mut sets: Vec<&mut ParamSet> = updates.iter_mut().map(|r| &mut r.update).collect();
    if let Some(dp) = &config.privacy.dp {
        let mut clipped = 0;
        for set in &mut sets {
            if crate::privacy::clip_to_norm(set, dp.clip) > dp.clip {
                clipped += 1;
            }
        }
        (record.norm_bound, record.clipped) = (Some(dp.clip), clipped);
    } else {
        let bounding = crate::bounds::bound_norms(&mut sets, config.adaptive_norm_multiple);
        (record.norm_bound, record.clipped) = (bounding.bound, bounding.clipped);
    }
    let dp = config.privacy.dp.as_ref();
    let contributions: Vec<Contribution<'_>> = updates
        .iter()
        .map(|r| Contribution {
            update: &r.update,
            // Under DP every client weighs the same: the noise is calibrated to
            // one client's clipped contribution to an unweighted mean.
            samples: if dp.is_some() { 1 } else { r.header.samples },
        })
        .collect();
    let mut combined = combine(config.strategy.aggregation, &contributions)?;
    if let Some(dp) = dp {
        let std = dp.noise_multiplier * dp.clip / updates.len().max(1) as f64;
        crate::privacy::add_gaussian_noise(&mut combined, std, &mut rand::rng());
    }
    Ok(combined)
}

/// Aggregates a round into new global weights; evaluates them.
pub(super) fn aggregate(
    shared: &Shared,
    round: u32,
    global: &ParamSet,
    mut server: ServerState,
    input: RoundInput,
) -> Result<(ParamSet, ServerState, RoundRecord)> {
    let config = &shared.config;
    let mut record = RoundRecord {
        round,
        ..RoundRecord::default()
    };
    let (combined, reports) = match input {
        RoundInput::Plain {
            mut updates,
            selected,
        } => {
            record.selected = selected;
            let combined = combine_plain(config, &mut updates, &mut record)?;
            let reports: Vec<secure::Report> = updates
                .into_iter()
                .map(|r| secure::Report {
                    worker_id: r.header.worker_id,
                    samples: r.header.samples,
                    train_loss: r.header.train_loss,
                    train_seconds: r.header.train_seconds,
                    bytes: r.bytes,
                })
                .collect();
            (combined, reports)
        }
        RoundInput::Secure(input) => {
            record.secure = true;
            record.selected = input.selected();
            record.norm_bound = config.privacy.dp.map(|dp| dp.clip);
            secure::unmask(global, *input)?
        }
    };
    let mut next = global.clone();
    server.apply(&mut next, &combined)?;
    if let Some((name, _)) = next
        .0
        .iter()
        .find(|(_, p)| p.values.iter().any(|v| !v.is_finite()))
    {
        return Err(FlError::Invalid(format!(
            "aggregation produced non-finite values in {name}"
        )));
    }
    let samples: u64 = reports.iter().map(|r| r.samples).sum();
    record.train_loss = Some(
        reports
            .iter()
            .map(|r| r.train_loss * r.samples as f64)
            .sum::<f64>()
            / samples.max(1) as f64,
    );
    if let Some(dp) = &config.privacy.dp {
        // The sample is who was selected, whether or not their update
        // arrived: counting only arrivals would understate ε.
        let selected = record.selected.max(reports.len()) as f64;
        let sample_rate = (selected / config.roster.len().max(1) as f64).min(1.0);
        record.dp_sample_rate = Some(sample_rate);
        let epsilon = spent_epsilon(
            shared.lock().history.iter().chain(std::iter::once(&record)),
            dp,
        );
        record.epsilon = Some(epsilon);
    }
    if !shared.validation.is_empty() {
        let (m, s) = evaluate_params(&config.model, &next, &shared.validation, config.threads)?;
        (record.val_loss, record.val_accuracy, record.val_macro_f1) =
            (m.loss, Some(m.accuracy), Some(m.macro_f1));
        record.eval_seconds = s;
    }
    record.clients = reports.len();
    record.samples = samples;
    record.slowest_train_seconds = reports.iter().map(|r| r.train_seconds).fold(0.0, f64::max);
    record.upload_bytes_mean =
        reports.iter().map(|r| r.bytes as u64).sum::<u64>() / reports.len().max(1) as u64;
    record.worker_samples = reports
        .iter()
        .map(|r| (r.worker_id.clone(), r.samples))
        .collect();
    Ok((next, server, record))
}

/// ε spent by the rounds of `records` (each with its sampling rate) at the run's δ.
fn spent_epsilon<'a>(
    records: impl Iterator<Item = &'a RoundRecord>,
    dp: &crate::privacy::DpSettings,
) -> f64 {
    let mut accountant = crate::privacy::RdpAccountant::new();
    for rate in records.filter_map(|r| r.dp_sample_rate) {
        accountant.compose(rate, dp.noise_multiplier, 1);
    }
    accountant.epsilon(dp.delta).0
}
