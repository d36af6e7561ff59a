//! One run from request to decision, phase by phase, each recorded before the
//! next begins so that a restarted orchestrator continues from the phase it
//! finds: `queued` -> `snapshot` -> `training` -> `evaluating` -> `promoting` ->
//! `promoted` (or `rejected`, `failed`, `cancelled`).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use bloginfer_fl::protocol::RunStatus;
use bloginfer_fl::spec::{RunDir, RunShape};
use bloginfer_fl::strategy::StrategyKind;
use bloginfer_service::common::{lock, now_millis, random_hex};
use bloginfer_service::tasks::sleep_or_cancelled;
use bloginfer_service::CancellationToken;
use tokio::sync::watch;

use crate::error::{OrchestratorError, Result};
use crate::evaluate;
use crate::feedback;
use crate::launcher::{Observed, RunPlan};
use crate::metrics::Metrics;
use crate::snapshot::{self, Inputs};
use crate::store::{self, RoundMetric, Run, Status, WorkerSamples};
use crate::Inner;

/// Attempts at starting a run's processes before the run fails.
const START_ATTEMPTS: u32 = 3;

fn dir_of(inner: &Inner, run: &Run) -> PathBuf {
    inner.config.runs_dir.join(&run.id)
}

/// What a launcher needs to start `run`, whose directory holds its `run.json`
/// (a pure function of the record, so a restarted orchestrator finds the same).
fn plan_of(inner: &Inner, run: &Run) -> RunPlan {
    RunPlan {
        run_id: run.id.clone(),
        dir: dir_of(inner, run),
        workers: run.workers as usize,
        models_dir: inner.config.models_dir.clone(),
    }
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

/// Drives `run` until it ends, then frees the active slot. On `shutdown` it
/// stops following the run and leaves it as recorded, for the next
/// orchestrator to pick up.
pub async fn drive(
    inner: Arc<Inner>,
    mut run: Run,
    cancelled: watch::Receiver<bool>,
    shutdown: CancellationToken,
) {
    let outcome = tokio::select! {
        outcome = phases(&inner, &mut run, cancelled) => outcome,
        () = shutdown.cancelled() => {
            tracing::info!(run = %run.id, phase = %run.phase, "shutting down; the run resumes at the next start");
            return;
        }
    };
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
        lock(&inner.protected).remove(candidate);
    }
    let mut active = lock(&inner.active);
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
        inner.config.tuning.local.seed,
    );
    let workers = run.workers as usize;
    let strategy: StrategyKind = run
        .strategy
        .parse()
        .map_err(|e: String| Stop::Failed(format!("the run's strategy: {e}")))?;
    let tuning = inner.config.tuning.clone();
    let shape = RunShape {
        run_id: run.id.clone(),
        strategy,
        rounds: run.rounds,
        workers,
        // The orchestrator judges the candidate before it becomes current.
        promote: false,
        linger: Duration::from_secs(10),
        data_fingerprint: None,
        settings: serde_json::json!({
            "run_id": run.id,
            "requested_by": run.requested_by,
        }),
    };
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
        let snap = snapshot::write(&dir, &inputs, &random_hex(24))?;
        let mut spec = tuning.spec(RunShape {
            data_fingerprint: Some(snap.fingerprint.clone()),
            settings: serde_json::json!({
                "run_id": shape.run_id,
                "requested_by": shape.settings["requested_by"],
                "train_samples": snap.train_samples,
                "feedback_samples": snap.feedback_samples,
            }),
            ..shape
        })?;
        spec.workers = snap.workers.clone();
        RunDir::new(&dir).write_spec(&spec)?;
        Ok::<_, OrchestratorError>(snap)
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
    if snap.held_out_feedback > 0 {
        tracing::warn!(
            run = %run.id,
            held_out = snap.held_out_feedback,
            "feedback samples left out as near-duplicates of evaluation texts"
        );
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
            secure: r.secure,
            epsilon: r.epsilon,
            delta: r.epsilon.and(status.delta),
        })
        .collect();
    let done = status.history.iter().filter(|r| r.round > 0).count();
    let done = u32::try_from(done).unwrap_or(u32::MAX);
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
    let run_dir = RunDir::new(&plan.dir);
    let status_file = run_dir.status();
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
                let result = read_status(&run_dir.result())
                    .or_else(|| read_status(&status_file))
                    .ok_or_else(|| Stop::Failed("the aggregator left no result".into()))?;
                absorb_status(run, &result);
                if let Some(error) = result.error {
                    return Err(Stop::Failed(format!("the aggregator failed: {error}")));
                }
                let version = result.version.ok_or_else(|| {
                    Stop::Failed("the aggregator finished without storing a model".into())
                })?;
                lock(&inner.protected).insert(version.clone(), run.id.clone());
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
        evaluate::judge(&registry, &candidate, &examples, margin, threads)
    })
    .await
    .map_err(|e| Stop::Failed(format!("evaluation task failed: {e}")))??;
    run.candidate_accuracy = Some(verdict.candidate.accuracy);
    run.previous_version = verdict.previous.as_ref().map(|(v, _)| v.clone());
    run.previous_accuracy = verdict.previous.as_ref().map(|(_, m)| m.accuracy);
    run.decision = Some(verdict.reason.clone());
    tracing::info!(
        run = %run.id,
        promote = verdict.promote,
        best = ?verdict.best.as_ref().map(|b| (&b.version, b.accuracy)),
        "{}",
        verdict.reason
    );
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
    // The floor for later candidates. Should this fail, the next judgement
    // records the version anyway, as the current one.
    let registry = inner.registry.clone();
    let (version, split, source) = (
        candidate.clone(),
        inner.evaluation_split.clone(),
        format!("run {}", run.id),
    );
    let accuracy = run.candidate_accuracy;
    let recorded = tokio::task::spawn_blocking(move || match accuracy {
        Some(accuracy) => {
            evaluate::record_promotion(&registry, &version, &split, accuracy, &source)
        }
        None => Ok(()),
    })
    .await;
    match recorded {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::error!(run = %run.id, "cannot record the promotion: {e}"),
        Err(e) => tracing::error!(run = %run.id, "the promotion record task failed: {e}"),
    }
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

/// Retention every clean interval, until `token` is cancelled.
pub async fn retention_loop(inner: Arc<Inner>, token: CancellationToken) {
    loop {
        if sleep_or_cancelled(&token, inner.config.clean_interval).await {
            return;
        }
        let protected: Vec<String> = lock(&inner.protected).keys().cloned().collect();
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
