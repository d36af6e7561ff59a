//! The aggregator: an HTTP/2 (or HTTP/1.1) service that runs one federated
//! training run. Workers register, long-poll for tasks, download the round's
//! global weights and upload pseudo-gradients; a driver task closes rounds,
//! aggregates, evaluates, persists, and finally writes the model to the
//! registry. [`Aggregator`] is the service facade; its driver is its one
//! background task, and when the run is over it asks the host to shut down.

mod aggregate;
mod coordinator;
mod http;
mod metrics;
pub mod persist;
mod secure;

mod config;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::Router;
use bloginfer_model::data::Example;
use bloginfer_model::train::{encode_all, Encoded};
use bloginfer_model::{Checkpoint, ModelConfig, Registry, SentimentModel, TrainingMetadata};
use bloginfer_service::{BoxFuture, CancellationToken, Readiness, Service, Supervisor};
use bloginfer_text::{Encoder, Vocab};
use rand::rngs::StdRng;
use rand::SeedableRng;
use secrecy::SecretString;
use tokio::sync::watch;

pub use config::HostSettings;
pub use coordinator::{Coordinator, Phase, Refusal, RoundInput, RoundRules};

use crate::error::{FlError, Result};
use crate::params::ParamSet;
use crate::protocol::{LocalSettings, RoundRecord, RunStatus, WeightsHeader, WEIGHTS_KIND};
use crate::spec::PrivacySpec;
use crate::strategy::{ServerState, Strategy};
use crate::wire::{self, WireDtype, WireSet};
use aggregate::{aggregate, evaluate_params};

/// Everything that defines a run on the aggregator's side.
#[derive(Clone)]
pub struct AggregatorConfig {
    /// Run id (ties state files and updates to this run).
    pub run_id: String,
    /// The run key: every worker's credential is derived from it
    /// ([`crate::credentials`]); presented itself, it may read the status only.
    pub run_key: SecretString,
    /// The run's workers and the shard size each one's updates weigh.
    pub roster: BTreeMap<String, u64>,
    /// Architecture (its `vocab_size` must match `vocab`).
    pub model: ModelConfig,
    /// The vocabulary every worker encodes with, sent when it registers.
    pub vocab: Vocab,
    /// Starting weights; `None` initialises from `local.seed`.
    pub initial: Option<ParamSet>,
    /// Standard deviation of initial embeddings.
    pub embed_init_std: f32,
    /// What workers do locally, how their updates combine, and the server optimiser.
    pub strategy: Strategy,
    /// Local-training settings sent to workers.
    pub local: LocalSettings,
    /// How many rounds, how many workers, and when a round starts and ends.
    pub rules: RoundRules,
    /// Updates with a larger L2 norm are refused (0: no bound).
    pub max_update_norm: f64,
    /// Updates beyond this multiple of the round's median norm are scaled down
    /// to it before they are combined (0: never).
    pub adaptive_norm_multiple: f64,
    /// Element type workers upload in.
    pub upload_dtype: WireDtype,
    /// Secure aggregation, differential privacy, dense embedding updates.
    pub privacy: PrivacySpec,
    /// Server-side validation data (may be empty).
    pub validation: Vec<Example>,
    /// Where round state is persisted.
    pub state_dir: PathBuf,
    /// Registry for the final model (`None`: keep it only in the state dir).
    pub models_dir: Option<PathBuf>,
    /// Make the final model the registry's current version.
    pub promote: bool,
    /// How long to keep answering after the run ends, so workers learn it.
    pub linger: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
    /// Threads for the server-side evaluation after each round.
    pub threads: usize,
    /// Data fingerprint to record in the model's metadata, when known.
    pub data_fingerprint: Option<String>,
    /// Extra settings recorded in the model's metadata.
    pub settings: serde_json::Value,
    /// A file that always holds the run's current status (JSON, replaced
    /// atomically whenever it changes), for a supervisor that shares the disk
    /// but not the network (the orchestrator).
    pub status_file: Option<PathBuf>,
}

/// Shared by handlers and the driver.
pub struct Shared {
    /// The configuration the aggregator was started with.
    pub config: AggregatorConfig,
    coordinator: Mutex<Coordinator>,
    changed: watch::Sender<u64>,
    /// The aggregator's metrics, served by the host under `bloginfer_fl_`.
    pub metrics: metrics::Metrics,
    validation: Vec<Encoded>,
    started_at: String,
    /// Held while this aggregator lives, so that no second one runs from the same state.
    _state_lock: std::fs::File,
}

/// The lock file in a run's state directory, which names its holder.
const LOCK_FILE: &str = "aggregator.lock";

/// Takes the lock of `state_dir` (created if missing): a second aggregator
/// on one run would write over the first one's state and split its workers.
/// The kernel drops the lock when the process ends, however it ends. The file
/// holds the holder's process id, so that a launcher can find an aggregator
/// it lost track of ([`aggregator_holding`]).
fn lock_state(state_dir: &std::path::Path) -> Result<std::fs::File> {
    std::fs::create_dir_all(state_dir)
        .map_err(|e| FlError::io(format!("cannot create {}", state_dir.display()), e))?;
    let path = state_dir.join(LOCK_FILE);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .map_err(|e| FlError::io(format!("cannot open {}", path.display()), e))?;
    match file.try_lock() {
        Ok(()) => {
            use std::io::Write;
            file.set_len(0)
                .and_then(|()| write!(file, "{}", std::process::id()))
                .map_err(|e| FlError::io(format!("cannot write {}", path.display()), e))?;
            Ok(file)
        }
        Err(std::fs::TryLockError::WouldBlock) => Err(FlError::Config(format!(
            "another aggregator is running from {}; stop it first",
            state_dir.display()
        ))),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(FlError::io(format!("cannot lock {}", path.display()), e))
        }
    }
}

/// The process id of the aggregator that holds the lock of `state_dir`, if
/// one does (a live process: the kernel drops the lock of a dead one).
pub fn aggregator_holding(state_dir: &std::path::Path) -> Option<u32> {
    let path = state_dir.join(LOCK_FILE);
    let file = std::fs::File::open(&path).ok()?;
    match file.try_lock() {
        // Nobody holds it (ours is released when `file` is dropped).
        Ok(()) => None,
        Err(std::fs::TryLockError::WouldBlock) => std::fs::read_to_string(&path)
            .ok()
            .and_then(|text| text.trim().parse().ok()),
        Err(std::fs::TryLockError::Error(_)) => None,
    }
}

impl Shared {
    /// Locks the state machine (a poisoned lock is still usable: its data is
    /// only ever left consistent between statements).
    pub fn lock(&self) -> MutexGuard<'_, Coordinator> {
        bloginfer_common::lock(&self.coordinator)
    }

    /// Wakes long-polling workers and the driver.
    pub fn notify(&self) {
        self.changed.send_modify(|v| *v += 1);
    }

    /// A receiver that sees every later [`Shared::notify`].
    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }
}

fn encode_weights(run_id: &str, round: u32, global: &ParamSet) -> Result<Vec<u8>> {
    let header = WeightsHeader {
        run_id: run_id.to_string(),
        round,
    };
    wire::encode(
        WEIGHTS_KIND,
        &header,
        &WireSet::from_params(global.clone(), &[]),
        WireDtype::F32,
    )
}

/// A ready-to-serve aggregator: state loaded (or initialised and persisted).
#[derive(Clone)]
pub struct Aggregator {
    shared: Arc<Shared>,
}

impl Aggregator {
    /// Builds the aggregator, resuming from `state_dir` when it holds this run's state.
    pub fn build(config: AggregatorConfig) -> Result<Self> {
        if config.vocab.len() != config.model.vocab_size {
            return Err(FlError::Config(format!(
                "vocabulary has {} tokens, model config says {}",
                config.vocab.len(),
                config.model.vocab_size
            )));
        }
        config.model.validate().map_err(FlError::Config)?;
        let state_lock = lock_state(&config.state_dir)?;
        let encoder = Encoder::new(config.vocab.clone(), config.model.max_len)
            .with_granularity(config.model.granularity);
        let validation = encode_all(&encoder, &config.validation);
        let now = Instant::now();
        let (round, global, server, history, clients, version) =
            match persist::load(&config.state_dir)? {
                Some(saved) => {
                    if saved.header.run_id != config.run_id {
                        return Err(FlError::Config(format!(
                            "{} holds the state of run {}, not {}; use another state dir",
                            config.state_dir.display(),
                            saved.header.run_id,
                            config.run_id
                        )));
                    }
                    saved.global.check_shapes(&config.model)?;
                    tracing::info!(
                        completed = saved.header.completed_round,
                        "resuming from saved state"
                    );
                    let clients = saved
                        .header
                        .clients
                        .iter()
                        .map(|(id, &samples)| {
                            // Restored workers must show up again before they count as available.
                            let last_seen = now.checked_sub(config.rules.lease * 2).unwrap_or(now);
                            (
                                id.clone(),
                                coordinator::ClientInfo {
                                    samples,
                                    last_seen,
                                    told_finished: false,
                                },
                            )
                        })
                        .collect();
                    (
                        saved.header.completed_round + 1,
                        saved.global,
                        saved.server,
                        saved.header.history,
                        clients,
                        saved.header.version,
                    )
                }
                None => {
                    let global = match &config.initial {
                        Some(p) => {
                            p.check_shapes(&config.model)?;
                            p.clone()
                        }
                        None => {
                            let mut rng = StdRng::seed_from_u64(config.local.seed);
                            let model = SentimentModel::with_embedding_std(
                                config.model.clone(),
                                config.embed_init_std,
                                &mut rng,
                            )?;
                            ParamSet::from_model(&model)?
                        }
                    };
                    let mut history = Vec::new();
                    if !validation.is_empty() {
                        let (metrics, eval_seconds) =
                            evaluate_params(&config.model, &global, &validation, config.threads)?;
                        history.push(RoundRecord {
                            round: 0,
                            val_loss: metrics.loss,
                            val_accuracy: Some(metrics.accuracy),
                            val_macro_f1: Some(metrics.macro_f1),
                            eval_seconds,
                            ..RoundRecord::default()
                        });
                    }
                    let server = ServerState::new(config.strategy.server);
                    (1, global, server, history, BTreeMap::new(), None)
                }
            };
        let weights_body = encode_weights(&config.run_id, round, &global)?;
        let finished = round > config.rules.rounds;
        let phase = match (finished, &version) {
            (true, Some(_)) => Phase::Finished,
            (true, None) => Phase::Finalizing,
            _ => Phase::Waiting,
        };
        let coordinator = Coordinator {
            rules: config.rules.clone(),
            run_id: config.run_id.clone(),
            round,
            phase,
            global: Arc::new(global),
            weights_body: weights_body.into(),
            server,
            history,
            clients,
            version,
            error: None,
            attempt: 0,
            rejected: 0,
            round_started: None,
            finished_at: None,
            roster: config.roster.clone(),
            privacy: config.privacy.clone(),
            model_len: config
                .model
                .parameter_shapes()
                .iter()
                .map(|(_, s)| s.iter().product::<usize>())
                .sum(),
        };
        let shared = Arc::new(Shared {
            coordinator: Mutex::new(coordinator),
            changed: watch::channel(0).0,
            metrics: metrics::Metrics::new(),
            validation,
            started_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
            _state_lock: state_lock,
            config,
        });
        if round == 1 {
            persist_now(&shared)?;
        }
        shared.metrics.round.set(i64::from(round));
        Ok(Self { shared })
    }

    /// The shared state (for tests and the HTTP layer).
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// How the run ended, once the host has stopped: its final status (with the
    /// registry version, if one was written), or why it did not finish.
    pub fn outcome(&self) -> Result<RunStatus> {
        let guard = self.shared.lock();
        match (&guard.phase, &guard.error) {
            (_, Some(error)) => Err(FlError::Config(error.clone())),
            (Phase::Finished, _) => Ok(guard.status(Instant::now())),
            _ => Err(FlError::Config("stopped before the run finished".into())),
        }
    }
}

impl Service for Aggregator {
    fn name(&self) -> &'static str {
        "fl"
    }

    fn routes(&self) -> Router {
        http::routes(self.shared.clone())
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.shared.metrics.register(registry);
    }

    fn ready(&self) -> BoxFuture<'_, Readiness> {
        let failed = matches!(self.shared.lock().phase, Phase::Failed);
        Box::pin(async move {
            if failed {
                Readiness::not_ready("the run failed")
            } else {
                Readiness::ready()
            }
        })
    }

    fn spawn_background(&self, tasks: &Supervisor) {
        let (shared, host) = (self.shared.clone(), tasks.clone());
        tasks.spawn("fl", "driver", true, move |token| {
            drive(shared.clone(), token, host.clone())
        });
    }
}

fn state_header(
    c: &Coordinator,
    completed_round: u32,
    history: Vec<RoundRecord>,
    server: &ServerState,
) -> persist::StateHeader {
    persist::StateHeader {
        run_id: c.run_id.clone(),
        completed_round,
        history,
        optimizer: server.optimizer,
        optimizer_step: server.step,
        clients: c
            .clients
            .iter()
            .map(|(id, info)| (id.clone(), info.samples))
            .collect(),
        version: c.version.clone(),
    }
}

/// Persists the coordinator's current state.
fn persist_now(shared: &Shared) -> Result<()> {
    let (header, global, server) = {
        let c = shared.lock();
        (
            state_header(&c, c.round - 1, c.history.clone(), &c.server),
            c.global.clone(),
            c.server.clone(),
        )
    };
    persist::save(&shared.config.state_dir, &header, &global, &server)
}

/// Writes the final model to the registry; returns its version.
fn finalize(shared: &Shared) -> Result<Option<String>> {
    let Some(dir) = &shared.config.models_dir else {
        return Ok(None);
    };
    let (global, history, clients) = {
        let c = shared.lock();
        (c.global.clone(), c.history.clone(), c.clients.clone())
    };
    let cfg = &shared.config;
    let metrics = if shared.validation.is_empty() {
        None
    } else {
        Some(evaluate_params(&cfg.model, &global, &shared.validation, cfg.threads)?.0)
    };
    let rounds: Vec<&RoundRecord> = history.iter().filter(|r| r.round > 0).collect();
    let metadata = TrainingMetadata {
        method: "federated".into(),
        run_id: Some(cfg.run_id.clone()),
        data_fingerprint: cfg.data_fingerprint.clone().unwrap_or_default(),
        train_samples: usize::try_from(clients.values().map(|c| c.samples).sum::<u64>())
            .unwrap_or(usize::MAX),
        val_samples: cfg.validation.len(),
        epochs: rounds.len(),
        best_epoch: rounds.len(),
        seed: cfg.local.seed,
        metrics,
        // Epoch records need validation numbers; without validation data the
        // per-round details live in `settings.federated.round_records` only.
        history: rounds
            .iter()
            .filter(|r| r.val_accuracy.is_some())
            .map(|r| bloginfer_model::train::EpochRecord {
                epoch: r.round as usize,
                train_loss: r.train_loss.unwrap_or(f64::NAN),
                val_loss: r.val_loss.unwrap_or(f64::NAN),
                val_accuracy: r.val_accuracy.unwrap_or(f64::NAN),
                val_macro_f1: r.val_macro_f1.unwrap_or(f64::NAN),
                samples_per_sec: r.samples as f64 / r.seconds.max(1e-9),
                seconds: r.seconds,
            })
            .collect(),
        settings: serde_json::json!({
            "federated": {
                "strategy": cfg.strategy,
                "rounds": cfg.rules.rounds,
                "min_clients": cfg.rules.min_clients,
                "min_available": cfg.rules.min_available,
                "fraction": cfg.rules.fraction,
                "round_deadline_seconds": cfg.rules.deadline.as_secs_f64(),
                "max_update_norm": cfg.max_update_norm,
                "adaptive_norm_multiple": cfg.adaptive_norm_multiple,
                "privacy": cfg.privacy,
                "epsilon": history.last().and_then(|r| r.epsilon),
                "delta": cfg.privacy.dp.map(|dp| dp.delta),
                "upload_dtype": cfg.upload_dtype,
                "local": cfg.local,
                "workers": clients.iter().map(|(id, c)| (id.clone(), c.samples)).collect::<BTreeMap<_, _>>(),
                "round_records": history,
            },
            "extra": cfg.settings,
        }),
        started_at: shared.started_at.clone(),
        finished_at: humantime::format_rfc3339_millis(std::time::SystemTime::now()).to_string(),
    };
    let model = SentimentModel::from_tensors(cfg.model.clone(), global.to_tensors()?)?;
    let checkpoint = Checkpoint::from_model(&model, cfg.vocab.clone(), metadata)?;
    let registry = Registry::open(dir)?;
    let version = registry.publish(&checkpoint)?;
    if cfg.promote {
        registry.set_current(&version)?;
    }
    tracing::info!(%version, promote = cfg.promote, "final model written");
    Ok(Some(version))
}

/// What makes one status different from another for [`write_status`].
type StatusMark = (String, u32, usize, usize, usize, Option<String>);

/// Writes the status file when the status changed since `last`.
fn write_status(shared: &Shared, last: &mut Option<StatusMark>) {
    let Some(path) = &shared.config.status_file else {
        return;
    };
    let status = shared.lock().status(Instant::now());
    let mark = (
        status.phase.clone(),
        status.round,
        status.history.len(),
        status.selected,
        status.reported,
        status.version.clone(),
    );
    if last.as_ref() == Some(&mark) {
        return;
    }
    let written = serde_json::to_vec(&status)
        .map_err(|e| e.to_string())
        .and_then(|json| bloginfer_common::write_atomic(path, &json).map_err(|e| e.to_string()));
    match written {
        Ok(()) => *last = Some(mark),
        Err(e) => tracing::warn!("cannot write the status file {}: {e}", path.display()),
    }
}

/// Closes rounds as they complete; finalises, and asks the host to shut down
/// when the run is over and every worker was told (or the linger time passed).
async fn drive(shared: Arc<Shared>, token: CancellationToken, host: Supervisor) {
    let mut changed = shared.subscribe();
    let mut last_status = None;
    loop {
        if token.is_cancelled() {
            write_status(&shared, &mut last_status);
            return;
        }
        write_status(&shared, &mut last_status);
        let now = Instant::now();
        let (ready, finalizing, done) = {
            let mut c = shared.lock();
            shared
                .metrics
                .clients_available
                .set(i64::try_from(c.available(now).len()).unwrap_or(i64::MAX));
            let before = c.task_mark();
            let ready = c.tick(now);
            if c.task_mark() != before {
                // A round opened or a secure stage moved on: what workers should
                // do changed, so wake their long polls (the message that
                // completed a stage woke them before the stage closed).
                shared.notify();
            }
            let done = matches!(c.phase, Phase::Finished | Phase::Failed)
                && (c.everyone_told()
                    || c.finished_at
                        .is_some_and(|t| now.duration_since(t) >= shared.config.linger));
            (
                ready.map(|r| {
                    (
                        r,
                        c.round,
                        c.global.clone(),
                        c.server.clone(),
                        c.round_started,
                        c.attempt,
                        c.rejected,
                    )
                }),
                matches!(c.phase, Phase::Finalizing),
                done,
            )
        };
        if done {
            // A moment for the last long polls to deliver their answers.
            tokio::time::sleep(Duration::from_millis(200)).await;
            host.request_shutdown();
            return;
        }
        if let Some((updates, round, global, server, started, attempt, rejected)) = ready {
            shared.notify();
            let worker = shared.clone();
            let result = tokio::task::spawn_blocking(move || {
                aggregate(&worker, round, &global, server, updates)
            })
            .await;
            let outcome = match result {
                Ok(Ok(v)) => Ok(v),
                Ok(Err(e)) => Err(e.to_string()),
                Err(e) => Err(format!("aggregation task failed: {e}")),
            };
            match outcome {
                Ok((next, server, mut record)) => {
                    let body = match encode_weights(&shared.config.run_id, round + 1, &next) {
                        Ok(b) => b,
                        Err(e) => {
                            fail(&shared, format!("cannot encode weights: {e}"));
                            continue;
                        }
                    };
                    record.seconds = started.map(|s| s.elapsed().as_secs_f64()).unwrap_or(0.0);
                    record.download_bytes = shared.lock().weights_body.len() as u64;
                    record.attempts = attempt + 1;
                    record.rejected = rejected;
                    tracing::info!(round, clients = record.clients, loss = ?record.train_loss, accuracy = ?record.val_accuracy, seconds = record.seconds, "round aggregated");
                    shared.metrics.round_seconds.observe(record.seconds);
                    shared.metrics.rounds_completed.inc();
                    if let Some(acc) = record.val_accuracy {
                        shared.metrics.validation_accuracy.set(acc);
                    }
                    // Persist before the round becomes visible: a round anyone has
                    // seen finished is never redone after a crash.
                    let header = {
                        let c = shared.lock();
                        let mut history = c.history.clone();
                        history.push(record.clone());
                        state_header(&c, round, history, &server)
                    };
                    let (saver, to_save, server_copy) =
                        (shared.clone(), next.clone(), server.clone());
                    let saved = tokio::task::spawn_blocking(move || {
                        persist::save(&saver.config.state_dir, &header, &to_save, &server_copy)
                    })
                    .await;
                    match saved {
                        Ok(Ok(())) => {}
                        Ok(Err(e)) => {
                            fail(&shared, format!("cannot persist state: {e}"));
                            continue;
                        }
                        Err(e) => {
                            fail(&shared, format!("persist task failed: {e}"));
                            continue;
                        }
                    }
                    shared.lock().complete_round(next, body, server, record);
                    shared.metrics.round.set(i64::from(round + 1));
                    shared.notify();
                }
                Err(e) => fail(&shared, format!("round {round} failed: {e}")),
            }
            continue;
        }
        if finalizing {
            let worker = shared.clone();
            let result = tokio::task::spawn_blocking(move || finalize(&worker)).await;
            match result {
                Ok(Ok(version)) => {
                    {
                        let mut c = shared.lock();
                        c.version = version;
                        c.phase = Phase::Finished;
                        c.finished_at = Some(Instant::now());
                    }
                    let saver = shared.clone();
                    if let Ok(Err(e)) =
                        tokio::task::spawn_blocking(move || persist_now(&saver)).await
                    {
                        tracing::error!("cannot persist the finished state: {e}");
                    }
                }
                Ok(Err(e)) => fail(&shared, format!("cannot write the final model: {e}")),
                Err(e) => fail(&shared, format!("finalize task failed: {e}")),
            }
            shared.notify();
            continue;
        }
        tokio::select! {
            _ = changed.changed() => {}
            () = token.cancelled() => {}
            () = tokio::time::sleep(Duration::from_millis(100)) => {}
        }
    }
}

fn fail(shared: &Shared, message: String) {
    tracing::error!("{message}");
    let mut c = shared.lock();
    c.error = Some(message);
    c.phase = Phase::Failed;
    c.finished_at = Some(Instant::now());
}
