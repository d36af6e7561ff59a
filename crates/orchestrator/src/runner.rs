//! One run from request to decision, phase by phase, each recorded before the
//! next begins so that a restarted orchestrator continues from the phase it
//! finds: `queued` -> `snapshot` -> `training` -> `evaluating` -> `promoting` ->
//! `promoted` (or `rejected`, `failed`, `cancelled`).

use std::path::PathBuf;
use std::sync::Arc;

use bloginfer_fl::protocol::RunStatus;
use tokio::sync::watch;

use crate::error::{OrchestratorError, Result};
use crate::evaluate;
use crate::feedback;
use crate::launcher::{Observed, RunPlan};
use crate::metrics::Metrics;
use crate::snapshot::{self, Inputs, RunPaths};
use crate::store::{self, RoundMetric, Run, Status, WorkerSamples};
use crate::{now_millis, Inner};

/// Attempts at starting a run's processes before the run fails.
const START_ATTEMPTS: u32 = 3;

fn dir_of(inner: &Inner, run: &Run) -> PathBuf {
    inner.config.runs_dir.join(&run.id)
}

/// The launch plan of `run` (a pure function of the record, so a restarted
/// orchestrator rebuilds the same plan).
fn plan_of(inner: &Inner, run: &Run) -> RunPlan {
    let mut flags = vec![
        format!("--rounds={}", run.rounds),
        format!("--strategy={}", run.strategy),
        format!("--min-clients={}", run.workers),
        format!("--seed={}", inner.config.seed),
    ];
    flags.extend(inner.config.aggregator_flags.iter().cloned());
    RunPlan {
        run_id: run.id.clone(),
        dir: dir_of(inner, run),
        workers: run.workers as usize,
        models_dir: inner.config.models_dir.clone(),
        aggregator_flags: flags,
        settings: serde_json::json!({
            "run_id": run.id,
            "requested_by": run.requested_by,
            "train_samples": run.train_samples,
            "feedback_samples": run.feedback_samples,
        }),
        data_fingerprint: run.data_fingerprint.clone().unwrap_or_default(),
    }
}

fn token() -> String {
    let bytes: [u8; 24] = rand::random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Why a phase stopped the run.
enum Stop {
    Cancelled,
    Failed(String),
}

impl From<OrchestratorError> for Stop {
    fn from(e: OrchestratorError) -> Self {
        Self::Failed(e.to_string())
    }
}

/// Drives `run` until it ends, then frees the active slot.
pub async fn drive(inner: Arc<Inner>, mut run: Run, cancelled: watch::Receiver<bool>) {
    let outcome = phases(&inner, &mut run, cancelled).await;
    let plan = plan_of(&inner, &run);
    match outcome {
        Ok(()) => {}
        Err(stop) => {
            if let Some(handle) = &run.attachment {
                if let Err(e) = inner.launcher.stop(&plan, handle).await {
                    tracing::warn!(run = %run.id, "cannot stop the run's processes: {e}");
                }
            }
            let (status, phase, error) = match stop {
                Stop::Cancelled => (Status::Cancelled, "cancelled", None),
                Stop::Failed(why) => (Status::Failed, "failed", Some(why)),
            };
            if let Some(why) = &error {
                tracing::error!(run = %run.id, "training run failed: {why}");
            }
            run.status = status;
            run.phase = phase.into();
            run.error = error;
            run.finished_at = Some(now_millis());
            if let Err(e) = store::save(&inner.db, &run).await {
                tracing::error!(run = %run.id, "cannot record the run's end: {e}");
            }
        }
    }
    Metrics::count(&inner.metrics.runs_finished, run.status.as_str());
    if let Some(candidate) = &run.candidate_version {
        inner
            .protected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(candidate);
    }
    let mut active = inner.active.lock().unwrap_or_else(|p| p.into_inner());
    if active.as_ref().is_some_and(|a| a.id == run.id) {
        *active = None;
    }
    inner.metrics.run_active.set(0);
    inner.metrics.active_rounds_done.set(0);
}

async fn save(inner: &Inner, run: &Run) -> Result<(), Stop> {
    store::save(&inner.db, run).await.map_err(Stop::from)
}

async fn phases(
    inner: &Inner,
    run: &mut Run,
    mut cancelled: watch::Receiver<bool>,
) -> Result<(), Stop> {
    loop {
        if *cancelled.borrow() {
            return Err(Stop::Cancelled);
        }
        match run.phase.as_str() {
            "queued" | "snapshot" => {
                run.status = Status::Running;
                run.phase = "snapshot".into();
                run.started_at = Some(now_millis());
                save(inner, run).await?;
                take_snapshot(inner, run).await?;
                run.phase = "training".into();
                save(inner, run).await?;
            }
            "training" => {
                train(inner, run, &mut cancelled).await?;
                run.phase = "evaluating".into();
                save(inner, run).await?;
            }
            "evaluating" => {
                let promote = judge(inner, run).await?;
                run.phase = if promote { "promoting" } else { "rejected" }.into();
                if !promote {
                    run.status = Status::Succeeded;
                    run.finished_at = Some(now_millis());
                    Metrics::count(&inner.metrics.decisions, "rejected");
                }
                save(inner, run).await?;
            }
            "promoting" => {
                promote(inner, run).await?;
                run.phase = "promoted".into();
                run.status = Status::Succeeded;
                run.finished_at = Some(now_millis());
                Metrics::count(&inner.metrics.decisions, "promoted");
                save(inner, run).await?;
            }
            _ => return Ok(()),
        }
    }
}

async fn take_snapshot(inner: &Inner, run: &mut Run) -> Result<(), Stop> {
    let feedback = match &inner.labeler {
        Some(labeler) => {
            let (samples, selection) = feedback::select(labeler, &inner.config.corpus).await?;
            tracing::info!(run = %run.id, selected = samples.len(), dropped = ?selection.dropped, "feedback selected");
            samples
        }
        None => Vec::new(),
    };
    let dir = dir_of(inner, run);
    let (corpus, evaluation) = (inner.config.corpus.clone(), inner.config.evaluation.clone());
    let (model, min_count, seed) = (
        inner.config.model.clone(),
        inner.config.min_count,
        inner.config.seed,
    );
    let workers = run.workers as usize;
    let snap = tokio::task::spawn_blocking(move || {
        let inputs = Inputs {
            corpus: &corpus,
            evaluation: &evaluation,
            feedback: &feedback,
            model: &model,
            min_count,
            workers,
            seed,
        };
        snapshot::write(&dir, &inputs, &token())
    })
    .await
    .map_err(|e| Stop::Failed(format!("snapshot task failed: {e}")))??;
    if let Some(labeler) = &inner.labeler {
        labeler
            .store()
            .mark_used(&run.id, &snap.feedback_ids)
            .await
            .map_err(|e| Stop::Failed(format!("cannot record the feedback used: {e}")))?;
    }
    run.worker_samples = snap.worker_samples;
    run.train_samples = snap.train_samples;
    run.feedback_samples = snap.feedback_samples;
    run.data_fingerprint = Some(snap.fingerprint);
    tracing::info!(
        run = %run.id,
        samples = run.train_samples,
        feedback = run.feedback_samples,
        shards = ?run.worker_samples.iter().map(|w| w.samples).collect::<Vec<_>>(),
        "training data snapshotted"
    );
    Ok(())
}

/// Reads the aggregator's status file into the run; whether anything changed.
fn absorb_status(run: &mut Run, status: &RunStatus) -> bool {
    let metrics: Vec<RoundMetric> = status
        .history
        .iter()
        .map(|r| RoundMetric {
            round: r.round,
            clients: r.clients,
            train_loss: r.train_loss,
            val_loss: r.val_loss,
            val_accuracy: r.val_accuracy,
            val_macro_f1: r.val_macro_f1,
            seconds: r.seconds,
        })
        .collect();
    let done = status.history.iter().filter(|r| r.round > 0).count() as u32;
    let changed = metrics != run.round_metrics || done != run.rounds_done;
    run.round_metrics = metrics;
    run.rounds_done = done;
    changed
}

fn read_status(path: &std::path::Path) -> Option<RunStatus> {
    let raw = std::fs::read(path).ok()?;
    serde_json::from_slice(&raw).ok()
}

async fn train(
    inner: &Inner,
    run: &mut Run,
    cancelled: &mut watch::Receiver<bool>,
) -> Result<(), Stop> {
    let plan = plan_of(inner, run);
    if run.attachment.is_none() {
        let mut attempt = 0;
        let handle = loop {
            attempt += 1;
            match inner.launcher.start(&plan).await {
                Ok(handle) => break handle,
                Err(e) if attempt < START_ATTEMPTS => {
                    tracing::warn!(run = %run.id, attempt, "cannot start the run yet: {e}");
                    tokio::time::sleep(inner.config.poll_interval).await;
                }
                Err(e) => return Err(e.into()),
            }
        };
        run.attachment = Some(handle);
        save(inner, run).await?;
        tracing::info!(run = %run.id, launcher = inner.launcher.name(), "aggregator and workers started");
    }
    let status_file = RunPaths::status(&plan.dir);
    loop {
        tokio::select! {
            _ = cancelled.changed() => {}
            _ = tokio::time::sleep(inner.config.poll_interval) => {}
        }
        if *cancelled.borrow() {
            return Err(Stop::Cancelled);
        }
        if let Some(status) = read_status(&status_file) {
            if absorb_status(run, &status) {
                inner
                    .metrics
                    .active_rounds_done
                    .set(i64::from(run.rounds_done));
                if let Some(samples) = worker_samples_of(&status) {
                    run.worker_samples = samples;
                }
                save(inner, run).await?;
            }
        }
        let handle = run.attachment.clone().unwrap_or_default();
        let observed = match inner.launcher.observe(&plan, &handle).await {
            Ok((observed, replaced)) => {
                if let Some(new) = replaced {
                    run.attachment = Some(new);
                    save(inner, run).await?;
                }
                observed
            }
            Err(e) => {
                // The API server or a process table can fail for a moment.
                tracing::warn!(run = %run.id, "cannot observe the run: {e}");
                continue;
            }
        };
        match observed {
            Observed::Running => {}
            Observed::Failed(why) => return Err(Stop::Failed(why)),
            Observed::Finished => {
                let result = read_status(&RunPaths::result(&plan.dir))
                    .or_else(|| read_status(&status_file))
                    .ok_or_else(|| Stop::Failed("the aggregator left no result".into()))?;
                absorb_status(run, &result);
                if let Some(error) = result.error {
                    return Err(Stop::Failed(format!("the aggregator failed: {error}")));
                }
                let version = result.version.ok_or_else(|| {
                    Stop::Failed("the aggregator finished without storing a model".into())
                })?;
                inner
                    .protected
                    .lock()
                    .unwrap_or_else(|p| p.into_inner())
                    .insert(version.clone(), run.id.clone());
                run.candidate_version = Some(version);
                return Ok(());
            }
        }
    }
}

/// Per-worker sample counts as the aggregator saw them register (the ids it knows).
fn worker_samples_of(status: &RunStatus) -> Option<Vec<WorkerSamples>> {
    let last = status
        .history
        .iter()
        .rev()
        .find(|r| !r.worker_samples.is_empty())?;
    let mut samples: Vec<WorkerSamples> = last
        .worker_samples
        .iter()
        .map(|(id, n)| WorkerSamples {
            worker_id: id.clone(),
            samples: *n,
        })
        .collect();
    samples.sort_by_key(|w| w.worker_id.parse::<u64>().unwrap_or(u64::MAX));
    Some(samples)
}

/// Judges the candidate; whether to promote it.
async fn judge(inner: &Inner, run: &mut Run) -> Result<bool, Stop> {
    let candidate = run
        .candidate_version
        .clone()
        .ok_or_else(|| Stop::Failed("no candidate to evaluate".into()))?;
    let registry = inner.registry.clone();
    let examples = inner.config.evaluation.clone();
    let margin = inner.config.promotion_margin;
    let threads = inner.config.threads;
    let verdict = tokio::task::spawn_blocking(move || {
        bloginfer_model::runtime::configure_threads(threads);
        evaluate::judge(&registry, &candidate, &examples, margin)
    })
    .await
    .map_err(|e| Stop::Failed(format!("evaluation task failed: {e}")))??;
    run.candidate_accuracy = Some(verdict.candidate.accuracy);
    run.previous_version = verdict.previous.as_ref().map(|(v, _)| v.clone());
    run.previous_accuracy = verdict.previous.as_ref().map(|(_, m)| m.accuracy);
    run.decision = Some(verdict.reason.clone());
    tracing::info!(run = %run.id, promote = verdict.promote, "{}", verdict.reason);
    Ok(verdict.promote)
}

async fn promote(inner: &Inner, run: &mut Run) -> Result<(), Stop> {
    let candidate = run
        .candidate_version
        .clone()
        .ok_or_else(|| Stop::Failed("no candidate to promote".into()))?;
    inner
        .registry
        .set_current(&candidate)
        .map_err(OrchestratorError::from)?;
    run.promoted = true;
    if let Err(e) = inner.launcher.roll_out(&candidate).await {
        // The registry pointer is switched, and inference follows it by
        // itself; the failed roll-out is worth knowing, not a failed run.
        tracing::error!(run = %run.id, "inference roll-out failed: {e}");
        let note = format!("; inference roll-out failed: {e}");
        run.decision = Some(run.decision.take().unwrap_or_default() + &note);
    }
    tracing::info!(run = %run.id, version = %candidate, "candidate promoted");
    Ok(())
}

/// Retention every clean interval, forever.
pub async fn retention_loop(inner: Arc<Inner>) {
    loop {
        tokio::time::sleep(inner.config.clean_interval).await;
        let protected: Vec<String> = inner
            .protected
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .keys()
            .cloned()
            .collect();
        let active: Vec<String> = inner.active_id().into_iter().collect();
        let registry = inner.registry.clone();
        let (keep, runs_dir, max_age) = (
            inner.config.keep_models,
            inner.config.runs_dir.clone(),
            inner.config.max_run_age,
        );
        let cleaned = tokio::task::spawn_blocking(move || {
            crate::retention::clean(&registry, keep, &protected, &runs_dir, max_age, &active)
        })
        .await;
        match cleaned {
            Ok(Ok(c)) => {
                for _ in &c.versions {
                    Metrics::count(&inner.metrics.retention_deleted, "model");
                }
                for _ in &c.run_dirs {
                    Metrics::count(&inner.metrics.retention_deleted, "run_dir");
                }
                if !c.versions.is_empty() || !c.run_dirs.is_empty() {
                    tracing::info!(versions = ?c.versions, run_dirs = ?c.run_dirs, "retention");
                }
            }
            Ok(Err(e)) => tracing::warn!("retention failed: {e}"),
            Err(e) => tracing::warn!("retention task failed: {e}"),
        }
    }
}
