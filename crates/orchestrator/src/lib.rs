//! The training daemon. It takes "train now" requests (at most one run at a
//! time, at least `MIN_TRAIN_INTERVAL_SECONDS` apart), and drives each run:
//! snapshot the training data (the corpus plus accepted feedback) into one
//! shard per worker, launch the aggregator and the workers (as local processes
//! or as Kubernetes Jobs), follow the rounds, judge the candidate on the fixed
//! evaluation split, promote it unless it is worse than the current model or
//! the best model ever promoted by more than a margin, and roll inference
//! out. Everything is recorded in the database, so a restarted orchestrator
//! picks its runs up where they were.
//!
//! - [`store`]: runs in the database;
//! - [`snapshot`]: a run's data cut into shard files;
//! - [`feedback`]: the labeler's accepted samples selected for a run;
//! - [`launcher`]: the launcher trait, local processes and Kubernetes Jobs;
//! - [`runner`]: one run from start to decision;
//! - [`evaluate`]: judging a candidate;
//! - [`promotions`]: what promoted versions scored (the gate's floor);
//! - [`overlap`]: near-duplicates of evaluation texts, kept out of training;
//! - [`retention`]: old models and run directories;
//! - [`http`]: the admin API;
//! - [`metrics`]: Prometheus metrics.
//!
//! [`Orchestrator`] is the service facade: built from its configuration, its
//! admin API as routes, and its work (picking up unfinished runs, retention,
//! each run's driver) as supervised background tasks.

#![warn(missing_docs)]

pub mod error;
pub mod evaluate;
pub mod feedback;
pub mod http;
pub mod launcher;
pub mod metrics;
pub mod overlap;
pub mod promotions;
pub mod retention;
pub mod runner;
pub mod snapshot;
pub mod store;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use bloginfer_db::Db;
use bloginfer_fl::spec::Tuning;
use bloginfer_labeler::Labeler;
use bloginfer_model::data::Example;
use bloginfer_model::{ModelConfig, Registry};
use bloginfer_service::common::{compact_utc_stamp, lock, now_millis, random_hex};
use bloginfer_service::{BoxFuture, Readiness, Service, Supervisor};
use tokio::sync::watch;

pub use error::{OrchestratorError, Result};
use launcher::Launcher;
use metrics::Metrics;
use store::{Run, Status};

/// What a run does unless the request says otherwise, and what it may ask for.
#[derive(Debug, Clone)]
pub struct RunDefaults {
    /// Workers of a run unless the request names a number.
    pub workers: u32,
    /// Rounds of a run unless the request names a number.
    pub rounds: u32,
    /// Strategy (`fedavg`, `fedsgd`, `fedprox`, `fedavgm`, `fedadam`) unless
    /// the request names one.
    pub strategy: String,
    /// Most workers a request may ask for (each is a process or a pod).
    pub max_workers: u32,
    /// Most rounds a request may ask for.
    pub max_rounds: u32,
}

impl Default for RunDefaults {
    fn default() -> Self {
        Self {
            workers: 2,
            rounds: 10,
            strategy: "fedavg".into(),
            max_workers: 16,
            max_rounds: 200,
        }
    }
}

/// Settings of the orchestrator.
#[derive(Clone)]
pub struct OrchestratorConfig {
    /// The model registry (`MODEL_DIR`).
    pub models_dir: PathBuf,
    /// Where run directories are written (`RUNS_DIR`; shared with the runs' pods).
    pub runs_dir: PathBuf,
    /// Least time between two runs' starts (`MIN_TRAIN_INTERVAL_SECONDS`).
    pub min_interval: Duration,
    /// How often an active run is looked at (`TRAIN_POLL_INTERVAL_SECONDS`).
    pub poll_interval: Duration,
    /// How often retention runs (`CLEAN_INTERVAL_SECONDS`).
    pub clean_interval: Duration,
    /// Run directories older than this are deleted (`MAX_CLIENT_MODEL_AGE_SECONDS`).
    pub max_run_age: Duration,
    /// Model versions retention keeps (`KEEP_MODELS`).
    pub keep_models: usize,
    /// A candidate may be this much less accurate (a fraction) and still be promoted.
    pub promotion_margin: f64,
    /// Run defaults and limits.
    pub defaults: RunDefaults,
    /// Architecture of the models trained.
    pub model: ModelConfig,
    /// Minimum token count for a run's vocabulary.
    pub min_count: u64,
    /// How every run trains (strategy knobs, local settings, round rules);
    /// its seed also assigns shards.
    pub tuning: Tuning,
    /// The corpus's training split.
    pub corpus: Arc<Vec<Example>>,
    /// The fixed evaluation split.
    pub evaluation: Arc<Vec<Example>>,
    /// Threads for evaluating candidates.
    pub threads: usize,
    /// Who may use the admin API.
    pub admin: http::AdminAuthConfig,
}

/// The active run's handle.
struct Active {
    id: String,
    cancel: watch::Sender<bool>,
}

/// What handlers and run tasks share.
pub struct Inner {
    config: OrchestratorConfig,
    db: Db,
    registry: Registry,
    launcher: Arc<dyn Launcher>,
    labeler: Option<Arc<Labeler>>,
    metrics: Metrics,
    active: Mutex<Option<Active>>,
    /// Serialises picking up unfinished runs and the checks and insert of a
    /// new run; holds whether the runs an earlier orchestrator left
    /// unfinished have been picked up (a new run must not start before, nor
    /// be picked up as one of them after).
    trigger: tokio::sync::Mutex<bool>,
    /// Versions that retention must keep (candidates being judged).
    protected: Mutex<HashMap<String, String>>,
    /// Where run drivers are spawned; set when the host starts the background tasks.
    tasks: OnceLock<Supervisor>,
    /// The evaluation split's name in the promotion record (its fingerprint).
    evaluation_split: String,
}

/// The training daemon: starts runs one at a time, follows them, and judges
/// and promotes their models.
#[derive(Clone)]
pub struct Orchestrator {
    inner: Arc<Inner>,
    auth: Arc<http::AdminAuth>,
    behind_proxy: bool,
}

/// Who asked for the run that trains `bloginfer up`'s first model; it does
/// not start the cooldown of runs people ask for.
pub const FIRST_MODEL: &str = "bloginfer up (first model)";

/// What a training request may set.
#[derive(Debug, Clone, Default, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TrainingRequest {
    /// Workers to train on, from 1 to the configured maximum (default: the
    /// configured count).
    pub workers: Option<u32>,
    /// Rounds to run, from 1 to the configured maximum (default: the configured count).
    pub rounds: Option<u32>,
    /// A federated strategy's name, e.g. `fedavg` (default: the configured one).
    pub strategy: Option<String>,
}

/// Why a run was not started.
#[derive(Debug, thiserror::Error)]
pub enum TriggerError {
    /// Another run is still active (its id); one runs at a time.
    #[error("run {0} is still active")]
    Active(String),
    /// Too soon after the last start.
    #[error("the last run started less than the minimum interval ago; retry in {} s", .0.as_secs())]
    Cooldown(Duration),
    /// A request field is unusable.
    #[error("{field}: {message}")]
    Invalid {
        /// The request field at fault (`workers`, `rounds` or `strategy`).
        field: &'static str,
        /// What is wrong with its value, for the caller.
        message: String,
    },
    /// Reading or writing the runs table failed.
    #[error(transparent)]
    Failed(#[from] OrchestratorError),
}

/// Why a run was not cancelled.
#[derive(Debug, thiserror::Error)]
pub enum CancelError {
    /// No run has this id.
    #[error("no run {0}")]
    NotFound(String),
    /// It is over already.
    #[error("run {0} is over already")]
    Finished(String),
    /// Reading or writing the runs table failed.
    #[error(transparent)]
    Failed(#[from] OrchestratorError),
}

fn new_run_id() -> String {
    format!("run-{}-{}", compact_utc_stamp(), random_hex(3))
}

impl Orchestrator {
    /// The orchestrator over `db`, launching runs with `launcher`, with the
    /// feedback loop's `labeler` when it runs in this process. Nothing runs
    /// until the host starts its background tasks.
    pub fn build(
        config: OrchestratorConfig,
        db: Db,
        launcher: Arc<dyn Launcher>,
        labeler: Option<Arc<Labeler>>,
    ) -> Result<Self> {
        std::fs::create_dir_all(&config.runs_dir).map_err(|e| {
            OrchestratorError::io(format!("cannot create {}", config.runs_dir.display()), e)
        })?;
        let registry = Registry::open(&config.models_dir)?;
        let auth = Arc::new(http::AdminAuth::new(&config.admin)?);
        let evaluation_split = evaluate::split_id(&config.evaluation);
        let inner = Arc::new(Inner {
            config,
            db,
            registry,
            launcher,
            labeler,
            metrics: Metrics::default(),
            active: Mutex::new(None),
            trigger: tokio::sync::Mutex::new(false),
            protected: Mutex::new(HashMap::new()),
            tasks: OnceLock::new(),
            evaluation_split,
        });
        Ok(Self {
            inner,
            auth,
            behind_proxy: false,
        })
    }

    /// Takes client addresses (what failed admin authentications are counted
    /// against) from the last `X-Forwarded-For` entry, for an orchestrator
    /// that is only reached through a reverse proxy that appends it.
    #[must_use]
    pub fn behind_proxy(mut self, yes: bool) -> Self {
        self.behind_proxy = yes;
        self
    }

    /// Picks up runs an earlier orchestrator left unfinished, once: the
    /// newest goes on from its phase, any older one is marked failed.
    async fn reconcile(&self) -> Result<()> {
        let mut reconciled = self.inner.trigger.lock().await;
        self.reconcile_locked(&mut reconciled).await
    }

    /// [`Self::reconcile`] with the trigger lock held.
    async fn reconcile_locked(&self, reconciled: &mut bool) -> Result<()> {
        if *reconciled {
            return Ok(());
        }
        let mut unfinished = store::unfinished(&self.inner.db).await?;
        let newest = unfinished.pop();
        for mut stale in unfinished {
            stale.status = Status::Failed;
            stale.phase = "failed".into();
            stale.error = Some("superseded by a newer run while the orchestrator was down".into());
            stale.finished_at = Some(now_millis());
            store::save(&self.inner.db, &stale).await?;
        }
        if let Some(run) = newest {
            tracing::info!(run = %run.id, phase = %run.phase, "resuming a run left unfinished");
            self.spawn(run);
        }
        *reconciled = true;
        Ok(())
    }

    fn spawn(&self, run: Run) {
        let (cancel, cancelled) = watch::channel(false);
        *lock(&self.inner.active) = Some(Active {
            id: run.id.clone(),
            cancel,
        });
        self.inner.metrics.run_active.set(1);
        let inner = self.inner.clone();
        let name = format!("run {}", run.id);
        match self.inner.tasks.get() {
            Some(tasks) => tasks.spawn_once("orchestrator", &name, move |shutdown| {
                runner::drive(inner, run, cancelled, shutdown)
            }),
            // Only reachable by calling `trigger` before the host started the
            // background tasks: the run still runs, unsupervised.
            None => {
                tracing::warn!(run = %run.id, "run started before the orchestrator's tasks");
                tokio::spawn(runner::drive(
                    inner,
                    run,
                    cancelled,
                    bloginfer_service::CancellationToken::new(),
                ));
            }
        }
    }

    /// The active run's id.
    pub fn active_id(&self) -> Option<String> {
        self.inner.active_id()
    }

    /// How long until a new run may start.
    pub async fn cooldown(&self) -> Result<Duration> {
        let Some(last) = store::last_created_at(&self.inner.db, FIRST_MODEL).await? else {
            return Ok(Duration::ZERO);
        };
        let interval =
            i64::try_from(self.inner.config.min_interval.as_millis()).unwrap_or(i64::MAX);
        let left = last.saturating_add(interval).saturating_sub(now_millis());
        Ok(Duration::from_millis(u64::try_from(left).unwrap_or(0)))
    }

    /// Starts a run for `request`, asked for by `who`; returns its id.
    #[tracing::instrument(skip(self))]
    pub async fn trigger(
        &self,
        request: TrainingRequest,
        who: &str,
    ) -> Result<String, TriggerError> {
        let d = &self.inner.config.defaults;
        let workers = request.workers.unwrap_or(d.workers);
        if workers == 0 || workers > d.max_workers {
            return Err(TriggerError::Invalid {
                field: "workers",
                message: format!("must be between 1 and {}", d.max_workers),
            });
        }
        let rounds = request.rounds.unwrap_or(d.rounds);
        if rounds == 0 || rounds > d.max_rounds {
            return Err(TriggerError::Invalid {
                field: "rounds",
                message: format!("must be between 1 and {}", d.max_rounds),
            });
        }
        let strategy = request.strategy.unwrap_or_else(|| d.strategy.clone());
        if strategy
            .parse::<bloginfer_fl::strategy::StrategyKind>()
            .is_err()
        {
            return Err(TriggerError::Invalid {
                field: "strategy",
                message: "must be fedavg, fedsgd, fedprox, fedavgm or fedadam".into(),
            });
        }
        let mut reconciled = self.inner.trigger.lock().await;
        // A run left unfinished goes on before any new one may start.
        self.reconcile_locked(&mut reconciled).await?;
        if let Some(id) = self.active_id() {
            return Err(TriggerError::Active(id));
        }
        let wait = if who == FIRST_MODEL {
            Duration::ZERO
        } else {
            self.cooldown().await?
        };
        if !wait.is_zero() {
            return Err(TriggerError::Cooldown(wait));
        }
        let run = Run::new(
            new_run_id(),
            who.to_string(),
            self.inner.launcher.name(),
            strategy,
            workers,
            rounds,
            now_millis(),
        );
        store::insert(&self.inner.db, &run).await?;
        tracing::info!(run = %run.id, by = who, workers, rounds, "training run requested");
        self.inner.metrics.runs_started.inc();
        let id = run.id.clone();
        self.spawn(run);
        Ok(id)
    }

    /// Asks run `id` to stop.
    pub async fn cancel(&self, id: &str) -> Result<(), CancelError> {
        let run = store::get(&self.inner.db, id)
            .await?
            .ok_or_else(|| CancelError::NotFound(id.to_string()))?;
        if run.status.is_terminal() {
            return Err(CancelError::Finished(id.to_string()));
        }
        let active = lock(&self.inner.active);
        match active.as_ref() {
            Some(a) if a.id == id => {
                let _ = a.cancel.send(true);
                Ok(())
            }
            _ => Err(CancelError::Finished(id.to_string())),
        }
    }

    /// The newest runs, newest first.
    pub async fn runs(&self, limit: i64) -> Result<Vec<Run>> {
        store::recent(&self.inner.db, limit).await
    }

    /// The run `id`, or `None` when there is no such run.
    pub async fn run(&self, id: &str) -> Result<Option<Run>> {
        store::get(&self.inner.db, id).await
    }

    /// The model registry its runs store candidates in and promote within.
    pub fn registry(&self) -> &Registry {
        &self.inner.registry
    }

    /// Makes `version` current (a roll back when it is older) and rolls
    /// inference out to it.
    pub async fn promote(&self, version: &str) -> Result<()> {
        self.inner.registry.set_current(version)?;
        tracing::info!(%version, "promoted by hand");
        self.inner.launcher.roll_out(version).await
    }

    /// The run that trains the first model when the registry has none: one
    /// still unfinished (after a restart of `up`), or a new one. It skips the
    /// cooldown, and does not start one either.
    pub async fn ensure_first_model(
        &self,
        workers: u32,
        rounds: u32,
    ) -> Result<String, TriggerError> {
        if let Some(run) = store::recent(&self.inner.db, 20)
            .await?
            .into_iter()
            .find(|r| r.requested_by == FIRST_MODEL && !r.status.is_terminal())
        {
            return Ok(run.id);
        }
        self.trigger(
            TrainingRequest {
                workers: Some(workers),
                rounds: Some(rounds),
                strategy: None,
            },
            FIRST_MODEL,
        )
        .await
    }

    /// The feedback loop, when it runs here.
    pub fn labeler(&self) -> Option<&Arc<Labeler>> {
        self.inner.labeler.as_ref()
    }

    /// What the next run would take of the feedback, and what it would leave out.
    pub async fn feedback_preview(&self) -> Result<Option<bloginfer_labeler::Selection>> {
        match &self.inner.labeler {
            Some(labeler) => Ok(Some(
                feedback::preview(labeler, &self.inner.config.corpus).await?,
            )),
            None => Ok(None),
        }
    }
}

impl Service for Orchestrator {
    fn name(&self) -> &'static str {
        "orchestrator"
    }

    fn routes(&self) -> axum::Router {
        http::routes(Arc::new(http::ApiState {
            orchestrator: self.clone(),
            auth: self.auth.clone(),
            behind_proxy: self.behind_proxy,
        }))
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.inner.metrics.register(registry);
    }

    fn ready(&self) -> BoxFuture<'_, Readiness> {
        Box::pin(async move {
            match sqlx::query("SELECT 1").execute(self.inner.db.read()).await {
                Ok(_) => Readiness::ready()
                    .with("launcher", self.inner.launcher.name())
                    .with("active_run", self.active_id()),
                Err(e) => Readiness::not_ready(format!("the database does not answer: {e}")),
            }
        })
    }

    fn spawn_background(&self, tasks: &Supervisor) {
        if self.inner.tasks.set(tasks.clone()).is_err() {
            tracing::warn!("the orchestrator's tasks were started twice; keeping the first");
            return;
        }
        let orchestrator = self.clone();
        tasks.spawn_once("orchestrator", "reconcile", move |_| async move {
            if let Err(e) = orchestrator.reconcile().await {
                tracing::error!("cannot pick up unfinished runs: {e}");
            }
        });
        let inner = self.inner.clone();
        tasks.spawn("orchestrator", "retention", false, move |token| {
            runner::retention_loop(inner.clone(), token)
        });
    }
}

impl Inner {
    fn active_id(&self) -> Option<String> {
        lock(&self.active).as_ref().map(|a| a.id.clone())
    }
}
