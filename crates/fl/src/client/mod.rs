//! The worker: registers its shard's sample count, then loops over tasks —
//! fetch the round's global weights, train locally on its own data, upload
//! the pseudo-gradient — until the aggregator says the run is over. Text and
//! token ids never leave this module; only weights, updates, counts and
//! metrics do.

use std::path::PathBuf;
use std::str::FromStr;
use std::time::{Duration, Instant};

use bloginfer_model::data::read_tsv;
use bloginfer_model::train::{encode_all, Encoded};
use bloginfer_text::Encoder;
use reqwest::StatusCode;
use serde::de::DeserializeOwned;

mod secure;

pub use secure::secure_weight;

use crate::error::{FlError, Result};
use crate::local::{round_seed, train_round};
use crate::params::ParamSet;
use crate::protocol::{
    RegisterRequest, RunPlan, Task, UpdateAccepted, UpdateHeader, WeightsHeader, SPARSE_PARAMS,
    UPDATE_KIND, WEIGHTS_KIND,
};
use crate::spec::WorkerDir;
use crate::wire::{self, WireSet};
use bloginfer_service::error::ErrorEnvelope;
use secrecy::{ExposeSecret, SecretString};

/// A deliberate misbehaviour, for testing the aggregator's defences.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Fault {
    /// Behave as a correct worker (the default).
    #[default]
    None,
    /// Send NaN in every update.
    Nan,
    /// Multiply every update by this factor.
    Scale(f32),
    /// Send the update negated and multiplied by this factor (a sign-flipping attacker).
    SignFlip(f32),
}

impl FromStr for Fault {
    type Err = String;
    fn from_str(s: &str) -> std::result::Result<Self, String> {
        match s.split_once(':') {
            None if s == "none" => Ok(Self::None),
            None if s == "nan" => Ok(Self::Nan),
            None if s == "sign-flip" => Ok(Self::SignFlip(1.0)),
            Some(("sign-flip", f)) => f
                .parse()
                .map(Self::SignFlip)
                .map_err(|_| format!("invalid factor {f:?}")),
            Some(("scale", f)) => f
                .parse()
                .map(Self::Scale)
                .map_err(|_| format!("invalid scale {f:?}")),
            _ => Err(format!(
                "unknown fault {s:?} (expected none, nan, scale:FACTOR or sign-flip[:FACTOR])"
            )),
        }
    }
}

/// How a worker runs.
#[derive(Debug, Clone)]
pub struct WorkerConfig {
    /// Aggregator base URL, e.g. `http://127.0.0.1:7000`.
    pub aggregator: String,
    /// The worker's own credential, sent as a bearer token with every request.
    pub token: SecretString,
    /// The worker's id in the run, under which the aggregator counts its updates.
    pub worker_id: String,
    /// Its own shard (`label<TAB>text` TSV).
    pub shard: PathBuf,
    /// Threads for local training.
    pub threads: usize,
    /// Give up after the aggregator has been unreachable this long.
    pub max_unreachable: Duration,
    /// Deliberate misbehaviour (tests only).
    pub fault: Fault,
    /// The run this worker was started for; an aggregator of another run is refused.
    pub expected_run: Option<String>,
}

impl WorkerConfig {
    /// A worker of the run whose folder is `dir` (identity, shard, token), talking
    /// to the aggregator at `aggregator`.
    pub fn from_dir(
        aggregator: String,
        dir: &WorkerDir,
        threads: usize,
        max_unreachable: Duration,
        fault: Fault,
    ) -> Result<Self> {
        let identity = dir.read_identity()?;
        Ok(Self {
            aggregator,
            token: dir.read_token()?.into(),
            worker_id: identity.worker_id,
            shard: dir.shard(),
            threads,
            max_unreachable,
            fault,
            expected_run: Some(identity.run_id),
        })
    }
}

/// What a worker did.
#[derive(Debug, Clone, Default)]
pub struct WorkerSummary {
    /// Rounds whose update was accepted.
    pub rounds_accepted: u32,
    /// Updates refused by the aggregator.
    pub rounds_refused: u32,
    /// Bytes of updates sent to the aggregator.
    pub bytes_up: u64,
    /// Bytes of global weights fetched from the aggregator.
    pub bytes_down: u64,
    /// Final registry version, as announced.
    pub version: Option<String>,
}

struct Connection {
    http: reqwest::Client,
    base: String,
    token: SecretString,
    max_unreachable: Duration,
}

impl Connection {
    fn new(config: &WorkerConfig) -> Result<Self> {
        let http = reqwest::Client::builder()
            .http2_prior_knowledge()
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(120))
            .pool_idle_timeout(bloginfer_service::CLIENT_POOL_IDLE_TIMEOUT)
            .build()
            .map_err(|e| FlError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            http,
            base: config.aggregator.trim_end_matches('/').to_string(),
            token: config.token.clone(),
            max_unreachable: config.max_unreachable,
        })
    }

    /// Sends a request built by `build`, retrying with exponential backoff
    /// while the aggregator is unreachable (connection errors, timeouts, 502-504).
    async fn send(
        &self,
        build: impl Fn(&reqwest::Client) -> reqwest::RequestBuilder,
    ) -> Result<reqwest::Response> {
        let first_failure = Instant::now();
        let mut delay = Duration::from_millis(200);
        loop {
            let attempt = build(&self.http)
                .bearer_auth(self.token.expose_secret())
                .send()
                .await;
            let transient = match attempt {
                Ok(resp) if matches!(resp.status().as_u16(), 502..=504) => {
                    format!("status {}", resp.status())
                }
                Ok(resp) => return Ok(resp),
                Err(e) => e.to_string(),
            };
            if first_failure.elapsed() >= self.max_unreachable {
                return Err(FlError::Unreachable(format!(
                    "{transient} (gave up after {:?})",
                    self.max_unreachable
                )));
            }
            tracing::warn!("aggregator unreachable ({transient}); retrying in {delay:?}");
            tokio::time::sleep(delay).await;
            delay = (delay * 2).min(Duration::from_secs(5));
        }
    }

    async fn refusal(resp: reqwest::Response) -> FlError {
        let status = resp.status().as_u16();
        let body = resp.bytes().await.unwrap_or_default();
        match serde_json::from_slice::<ErrorEnvelope>(&body) {
            Ok(e) => FlError::Refused {
                status,
                code: e.error.code,
                message: e.error.message,
            },
            Err(_) => FlError::Refused {
                status,
                code: "unknown".into(),
                message: String::from_utf8_lossy(&body).chars().take(200).collect(),
            },
        }
    }

    async fn json<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T> {
        if !resp.status().is_success() {
            return Err(Self::refusal(resp).await);
        }
        resp.json::<T>()
            .await
            .map_err(|e| FlError::Invalid(format!("unexpected answer from the aggregator: {e}")))
    }

    fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }
}

async fn register(conn: &Connection, worker_id: &str, samples: u64) -> Result<RunPlan> {
    let request = RegisterRequest {
        worker_id: worker_id.to_string(),
        samples,
    };
    let started = Instant::now();
    loop {
        let resp = conn
            .send(|c| c.post(conn.url("/v1/register")).json(&request))
            .await?;
        // A restarted worker may find its earlier registration still live:
        // the aggregator says how long until it lapses.
        if resp.status() == StatusCode::CONFLICT && started.elapsed() < conn.max_unreachable {
            let wait = resp
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(1)
                .clamp(1, 30);
            tracing::info!(
                "an earlier registration of this worker is still live; retrying in {wait} s"
            );
            tokio::time::sleep(Duration::from_secs(wait)).await;
            continue;
        }
        return Connection::json(resp).await;
    }
}

fn apply_fault(update: &mut ParamSet, fault: Fault) {
    let f: Box<dyn Fn(f32) -> f32> = match fault {
        Fault::None => return,
        Fault::Nan => Box::new(|_| f32::NAN),
        Fault::Scale(k) => Box::new(move |v| v * k),
        Fault::SignFlip(k) => Box::new(move |v| -k * v),
    };
    update
        .0
        .values_mut()
        .flat_map(|p| p.values.iter_mut())
        .for_each(|v| *v = f(*v));
}

/// A worker's update for one round, before it leaves the silo.
#[derive(Debug, Clone)]
pub struct Trained {
    /// The pseudo-gradient (dense; the wire may send only touched rows).
    pub update: ParamSet,
    /// Mean local training loss.
    pub train_loss: f64,
    /// Local optimisation steps.
    pub steps: u64,
    /// Seconds of local training.
    pub train_seconds: f64,
}

/// What turns a round's global weights into the worker's update: local
/// training on its shard ([`ShardTrainer`]), or anything else that speaks
/// the protocol (tests drive the real protocol with known updates).
pub trait Trainer: Send + Sync + 'static {
    /// The update for `round`, trained from `global` under `plan`.
    fn train(&self, plan: &RunPlan, round: u32, global: &ParamSet) -> Result<Trained>;
}

/// Local training on the worker's own shard.
pub struct ShardTrainer {
    worker_id: String,
    examples: Vec<bloginfer_model::data::Example>,
    encoded: std::sync::OnceLock<Vec<Encoded>>,
    threads: usize,
    fault: Fault,
}

impl ShardTrainer {
    /// A trainer over `examples` (encoded with the run's vocabulary on first use).
    pub fn new(
        worker_id: String,
        examples: Vec<bloginfer_model::data::Example>,
        threads: usize,
        fault: Fault,
    ) -> Self {
        Self {
            worker_id,
            examples,
            encoded: std::sync::OnceLock::new(),
            threads,
            fault,
        }
    }
}

impl Trainer for ShardTrainer {
    fn train(&self, plan: &RunPlan, round: u32, global: &ParamSet) -> Result<Trained> {
        let data = self.encoded.get_or_init(|| {
            let encoder = Encoder::new(plan.vocab.clone(), plan.model.max_len)
                .with_granularity(plan.model.granularity);
            encode_all(&encoder, &self.examples)
        });
        let seed = round_seed(plan.local.seed, &self.worker_id, round);
        let mut outcome = train_round(
            &plan.model,
            global,
            data,
            plan.strategy.local,
            &plan.local,
            seed,
            self.threads,
        )?;
        apply_fault(&mut outcome.update, self.fault);
        Ok(Trained {
            update: outcome.update,
            train_loss: outcome.train_loss,
            steps: outcome.steps,
            train_seconds: outcome.seconds,
        })
    }
}

/// Runs the worker until the run is over: trains on its shard.
pub async fn run_worker(config: WorkerConfig) -> Result<WorkerSummary> {
    let shard_path = config.shard.clone();
    let examples = tokio::task::spawn_blocking(move || read_tsv(&shard_path))
        .await
        .map_err(|e| FlError::Config(e.to_string()))??;
    let samples = examples.len() as u64;
    let trainer = ShardTrainer::new(
        config.worker_id.clone(),
        examples,
        config.threads,
        config.fault,
    );
    run_participant(config, samples, std::sync::Arc::new(trainer)).await
}

/// What a worker keeps between the tasks of a run.
struct Worker {
    config: WorkerConfig,
    conn: Connection,
    samples: u64,
    plan: RunPlan,
    trainer: std::sync::Arc<dyn Trainer>,
    summary: WorkerSummary,
    secure: Option<secure::Session>,
}

/// Runs a participant that registers with `samples` and gets its updates
/// from `trainer`, until the run is over.
pub async fn run_participant(
    config: WorkerConfig,
    samples: u64,
    trainer: std::sync::Arc<dyn Trainer>,
) -> Result<WorkerSummary> {
    let conn = Connection::new(&config)?;
    let plan = register(&conn, &config.worker_id, samples).await?;
    if let Some(expected) = &config.expected_run {
        if *expected != plan.run_id {
            return Err(FlError::Config(format!(
                "the aggregator runs {}, but this worker was started for {expected}",
                plan.run_id
            )));
        }
    }
    tracing::info!(run = %plan.run_id, samples, rounds = plan.rounds, secure = plan.privacy.secure_aggregation, "registered");
    let mut worker = Worker {
        config,
        conn,
        samples,
        plan,
        trainer,
        summary: WorkerSummary::default(),
        secure: None,
    };
    loop {
        let worker_id = worker.config.worker_id.clone();
        let conn = &worker.conn;
        let resp = conn
            .send(|c| {
                c.get(conn.url("/v1/task"))
                    .query(&[("worker_id", worker_id.as_str())])
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            // The aggregator lost track of us (restarted without state): join again.
            worker.plan = register(&worker.conn, &worker_id, worker.samples).await?;
            continue;
        }
        let task = Connection::json::<Task>(resp).await?;
        let outcome = match task {
            Task::Finished { version } => {
                tracing::info!(?version, "run finished");
                worker.summary.version = version;
                return Ok(worker.summary);
            }
            Task::Wait { .. } => continue,
            Task::Train { round } => worker.plain_round(round).await,
            secure_task => worker.secure_task(secure_task).await,
        };
        match outcome {
            Ok(()) => {}
            Err(FlError::Refused {
                status: 401,
                message,
                ..
            }) => {
                return Err(FlError::Refused {
                    status: 401,
                    code: "unauthorized".into(),
                    message,
                })
            }
            Err(FlError::Refused {
                status,
                code,
                message,
            }) => {
                worker.summary.rounds_refused += 1;
                tracing::warn!(status, %code, "the aggregator refused a message: {message}");
            }
            Err(e) => return Err(e),
        }
    }
}

impl Worker {
    /// Sends an update-shaped binary body to `path` (retrying while the
    /// aggregator is unreachable) and counts it.
    async fn upload<T: DeserializeOwned>(&mut self, path: &str, body: Vec<u8>) -> Result<T> {
        self.summary.bytes_up += body.len() as u64;
        let body = axum::body::Bytes::from(body);
        let conn = &self.conn;
        let resp = conn
            .send(|c| {
                c.post(conn.url(path))
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(body.clone())
            })
            .await?;
        let accepted = Connection::json::<T>(resp).await?;
        self.summary.rounds_accepted += 1;
        Ok(accepted)
    }

    /// Fetches `round`'s global weights and trains on them; `None` when the
    /// round moved on meanwhile.
    async fn trained(&mut self, round: u32) -> Result<Option<(Trained, Duration)>> {
        let fetch_started = Instant::now();
        let conn = &self.conn;
        let resp = conn
            .send(|c| c.get(conn.url(&format!("/v1/rounds/{round}/weights"))))
            .await?;
        if resp.status() == StatusCode::CONFLICT {
            return Ok(None);
        }
        if !resp.status().is_success() {
            return Err(Connection::refusal(resp).await);
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| FlError::Unreachable(e.to_string()))?;
        self.summary.bytes_down += body.len() as u64;
        let (header, set): (WeightsHeader, WireSet) = wire::decode(&body, WEIGHTS_KIND)?;
        if header.run_id != self.plan.run_id {
            return Err(FlError::Invalid(format!(
                "weights belong to run {}, not {}",
                header.run_id, self.plan.run_id
            )));
        }
        let global = set.to_params();
        global.check_shapes(&self.plan.model)?;
        let fetched = fetch_started.elapsed();
        let (trainer, plan) = (self.trainer.clone(), self.plan.clone());
        let trained = tokio::task::spawn_blocking(move || trainer.train(&plan, round, &global))
            .await
            .map_err(|e| FlError::Config(format!("local training panicked: {e}")))??;
        Ok(Some((trained, fetched)))
    }

    /// A round in the clear: train, send the update.
    async fn plain_round(&mut self, round: u32) -> Result<()> {
        let Some((trained, fetched)) = self.trained(round).await? else {
            return Ok(());
        };
        let header = UpdateHeader {
            run_id: self.plan.run_id.clone(),
            round,
            worker_id: self.config.worker_id.clone(),
            samples: self.samples,
            train_loss: trained.train_loss,
            steps: trained.steps,
            train_seconds: trained.train_seconds,
        };
        let sparse: &[&str] = if self.plan.privacy.dense_embedding_updates {
            &[]
        } else {
            &SPARSE_PARAMS
        };
        let dtype = self.plan.upload_dtype;
        let body = tokio::task::spawn_blocking(move || {
            let set = WireSet::from_params(trained.update, sparse);
            wire::encode(UPDATE_KIND, &header, &set, dtype)
        })
        .await
        .map_err(|e| FlError::Config(format!("encoding the update panicked: {e}")))??;
        let upload_started = Instant::now();
        let accepted: UpdateAccepted = self
            .upload(&format!("/v1/rounds/{round}/update"), body)
            .await?;
        tracing::info!(
            round,
            received = accepted.received,
            fetch_ms = u64::try_from(fetched.as_millis()).unwrap_or(u64::MAX),
            train_seconds = trained.train_seconds,
            upload_ms = u64::try_from(upload_started.elapsed().as_millis()).unwrap_or(u64::MAX),
            "update accepted"
        );
        Ok(())
    }
}
