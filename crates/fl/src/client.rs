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
    /// The run token, sent as a bearer token with every request.
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
    let resp = conn
        .send(|c| c.post(conn.url("/v1/register")).json(&request))
        .await?;
    Connection::json(resp).await
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

/// Runs the worker until the run is over.
pub async fn run_worker(config: WorkerConfig) -> Result<WorkerSummary> {
    let shard_path = config.shard.clone();
    let examples = tokio::task::spawn_blocking(move || read_tsv(&shard_path))
        .await
        .map_err(|e| FlError::Config(e.to_string()))??;
    let conn = Connection::new(&config)?;
    let samples = examples.len() as u64;
    let mut plan = register(&conn, &config.worker_id, samples).await?;
    if let Some(expected) = &config.expected_run {
        if *expected != plan.run_id {
            return Err(FlError::Config(format!(
                "the aggregator runs {}, but this worker was started for {expected}",
                plan.run_id
            )));
        }
    }
    tracing::info!(run = %plan.run_id, samples, rounds = plan.rounds, "registered");
    let encoder = Encoder::new(plan.vocab.clone(), plan.model.max_len)
        .with_granularity(plan.model.granularity);
    let data: std::sync::Arc<Vec<Encoded>> = std::sync::Arc::new(
        tokio::task::spawn_blocking(move || encode_all(&encoder, &examples))
            .await
            .map_err(|e| FlError::Config(e.to_string()))?,
    );
    let mut summary = WorkerSummary::default();
    loop {
        let worker_id = config.worker_id.clone();
        let resp = conn
            .send(|c| {
                c.get(conn.url("/v1/task"))
                    .query(&[("worker_id", worker_id.as_str())])
            })
            .await?;
        if resp.status() == StatusCode::NOT_FOUND {
            // The aggregator lost track of us (restarted without state): join again.
            plan = register(&conn, &config.worker_id, samples).await?;
            continue;
        }
        let round = match Connection::json::<Task>(resp).await? {
            Task::Finished { version } => {
                tracing::info!(?version, "run finished");
                summary.version = version;
                return Ok(summary);
            }
            Task::Wait { .. } => continue,
            Task::Train { round } => round,
        };
        let fetch_started = Instant::now();
        let resp = conn
            .send(|c| c.get(conn.url(&format!("/v1/rounds/{round}/weights"))))
            .await?;
        if resp.status() == StatusCode::CONFLICT {
            continue;
        }
        if !resp.status().is_success() {
            return Err(Connection::refusal(resp).await);
        }
        let body = resp
            .bytes()
            .await
            .map_err(|e| FlError::Unreachable(e.to_string()))?;
        summary.bytes_down += body.len() as u64;
        let (header, set): (WeightsHeader, WireSet) = wire::decode(&body, WEIGHTS_KIND)?;
        if header.run_id != plan.run_id {
            return Err(FlError::Invalid(format!(
                "weights belong to run {}, not {}",
                header.run_id, plan.run_id
            )));
        }
        let global = set.to_params();
        let fetched = fetch_started.elapsed();
        global.check_shapes(&plan.model)?;
        let (model, strategy, local) = (plan.model.clone(), plan.strategy, plan.local.clone());
        let seed = round_seed(local.seed, &config.worker_id, round);
        let (threads, fault, shard) = (config.threads, config.fault, data.clone());
        let upload_dtype = plan.upload_dtype;
        let header_base = (plan.run_id.clone(), config.worker_id.clone());
        let body = tokio::task::spawn_blocking(move || -> Result<Vec<u8>> {
            let mut outcome = train_round(
                &model,
                &global,
                &shard,
                strategy.local,
                &local,
                seed,
                threads,
            )?;
            apply_fault(&mut outcome.update, fault);
            let header = UpdateHeader {
                run_id: header_base.0,
                round,
                worker_id: header_base.1,
                samples: outcome.samples,
                train_loss: outcome.train_loss,
                steps: outcome.steps,
                train_seconds: outcome.seconds,
            };
            let set = WireSet::from_params(outcome.update, &SPARSE_PARAMS);
            wire::encode(UPDATE_KIND, &header, &set, upload_dtype)
        })
        .await
        .map_err(|e| FlError::Config(format!("local training panicked: {e}")))??;
        summary.bytes_up += body.len() as u64;
        let trained = fetch_started.elapsed() - fetched;
        let upload_started = Instant::now();
        let body = axum::body::Bytes::from(body);
        let resp = conn
            .send(|c| {
                c.post(conn.url(&format!("/v1/rounds/{round}/update")))
                    .header(reqwest::header::CONTENT_TYPE, "application/octet-stream")
                    .body(body.clone())
            })
            .await?;
        match Connection::json::<UpdateAccepted>(resp).await {
            Ok(accepted) => {
                summary.rounds_accepted += 1;
                tracing::info!(
                    round,
                    received = accepted.received,
                    fetch_ms = u64::try_from(fetched.as_millis()).unwrap_or(u64::MAX),
                    train_ms = u64::try_from(trained.as_millis()).unwrap_or(u64::MAX),
                    upload_ms =
                        u64::try_from(upload_started.elapsed().as_millis()).unwrap_or(u64::MAX),
                    "update accepted"
                );
            }
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
                summary.rounds_refused += 1;
                tracing::warn!(round, status, %code, "update refused: {message}");
            }
            Err(e) => return Err(e),
        }
    }
}
