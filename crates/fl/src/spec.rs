//! A federated run described as data. Whoever prepares a run (`bloginfer fl
//! run`, the orchestrator) writes one run directory, with its description in
//! `run.json`; the aggregator (`bloginfer aggregator --run-dir DIR`) and each
//! worker (`bloginfer worker --worker-dir DIR/worker-<i>`) read what they need
//! from it, so no setting travels as a rebuilt command line.
//!
//! ```text
//! <run dir>/
//!   run.json               the RunSpec
//!   token                  the run key (mode 0600; never in run.json): the
//!                          aggregator's secret, from which worker credentials derive
//!   model.json vocab.json  a fresh model's architecture and vocabulary
//!   validation.tsv         the held-out split the aggregator evaluates each round
//!   worker-<i>/worker.json worker i's identity (run id, worker id)
//!   worker-<i>/shard.tsv   worker i's data, and nothing else's
//!   worker-<i>/token       its own credential (a worker pod mounts only its own folder)
//!   state/                 the aggregator's persisted rounds
//!   status.json            the aggregator's status, replaced as it changes
//!   result.json            its final status
//!   aggregator.addr        where a local aggregator listens
//!   *.log                  logs of locally launched processes
//! ```

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::error::{FlError, Result};
use crate::privacy::DpSettings;
use crate::protocol::LocalSettings;
use crate::strategy::Aggregation;
use crate::strategy::{Strategy, StrategyKind, StrategyOptions};
use crate::wire::WireDtype;

/// The version of the `run.json` format this build writes and reads.
pub const SPEC_VERSION: u32 = 2;

/// Everything that defines a federated run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunSpec {
    /// The `run.json` format version; a build reads only its own [`SPEC_VERSION`].
    pub version: u32,
    /// Ties state files, tokens and updates to this run.
    pub run_id: String,
    /// Where the model starts.
    pub model: ModelSource,
    /// The strategy, fully resolved (local work, aggregation, server optimiser).
    pub strategy: Strategy,
    /// Local-training settings every worker gets.
    pub local: LocalSettings,
    /// When rounds start, end and count.
    pub rounds: RoundSpec,
    /// Updates with a larger L2 norm are refused (0: no bound).
    pub max_update_norm: f64,
    /// Updates whose L2 norm exceeds this multiple of the round's median norm
    /// are scaled down to it before they are combined (0: never).
    pub adaptive_norm_multiple: f64,
    /// Element type workers upload in.
    pub upload_dtype: WireDtype,
    /// What the aggregator may learn and what leaves a silo.
    pub privacy: PrivacySpec,
    /// The run's roster: its workers, each with its shard's size. Only these
    /// ids may join, each proving its id with its own credential, and each
    /// update weighs what the roster says.
    pub workers: Vec<WorkerSpec>,
    /// Make the final model the registry's current version.
    pub promote: bool,
    /// How long the aggregator keeps answering after the end, so every worker learns it.
    pub linger_seconds: f64,
    /// SHA-256 of the training data, recorded in the model's metadata.
    pub data_fingerprint: Option<String>,
    /// Extra settings recorded in the final model's metadata.
    pub settings: serde_json::Value,
}

/// Where a run's model starts.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum ModelSource {
    /// A new model: its architecture in `model.json`, its vocabulary in
    /// `vocab.json` of the run directory.
    Fresh {
        /// Standard deviation of the initial embeddings.
        embed_init_std: f32,
    },
    /// The architecture, vocabulary and weights of a registry version
    /// (`current` or a version id) or of a checkpoint file.
    Continue {
        /// The version or file.
        from: String,
    },
}

/// How many rounds a run has, and when each starts and ends.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RoundSpec {
    /// Rounds to aggregate before the run ends.
    pub rounds: u32,
    /// Updates needed to aggregate a round.
    pub min_clients: usize,
    /// Workers that must be available before a round starts.
    pub min_available: usize,
    /// Share of available workers selected each round, in (0, 1].
    pub fraction: f64,
    /// A round aggregates what it has after this long, or starts over.
    pub deadline_seconds: f64,
    /// A worker counts as available this long after it was last heard from.
    pub lease_seconds: f64,
}

/// What the aggregator may learn of each update, and what leaves a silo.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PrivacySpec {
    /// Workers mask their updates so that the aggregator learns only their
    /// sum ([`crate::secagg`]).
    pub secure_aggregation: bool,
    /// Client-level differential privacy: clipping, Gaussian noise and an
    /// accountant ([`crate::privacy`]).
    pub dp: Option<DpSettings>,
    /// Workers send the whole embedding, not only the rows their data touched,
    /// so that an update does not reveal which words a silo used.
    pub dense_embedding_updates: bool,
}

/// One worker of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerSpec {
    /// Its id (`0`, `1`, ...: a Kubernetes Job's completion index).
    pub id: String,
    /// Examples in its shard.
    pub samples: u64,
}

/// What a worker reads from its own folder: which run it belongs to and who it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerIdentity {
    /// The run the worker was started for; it refuses an aggregator of another run.
    pub run_id: String,
    /// Its id among [`RunSpec::workers`], under which the aggregator knows it.
    pub worker_id: String,
}

impl RunSpec {
    /// Checks what a hand-written or stale `run.json` could get wrong.
    pub fn validate(&self) -> Result<()> {
        let fail = |m: String| Err(FlError::Config(format!("run.json: {m}")));
        if self.version != SPEC_VERSION {
            return fail(format!(
                "format version {} is not {SPEC_VERSION}, the one this build reads",
                self.version
            ));
        }
        if !valid_id(&self.run_id) {
            return fail("run_id must be 1-64 of [A-Za-z0-9._-]".into());
        }
        let r = &self.rounds;
        if r.rounds == 0 {
            return fail("rounds must be at least 1".into());
        }
        if !(r.fraction > 0.0 && r.fraction <= 1.0) {
            return fail("fraction must be in (0, 1]".into());
        }
        if r.min_clients == 0 {
            return fail("min_clients must be at least 1".into());
        }
        for (name, seconds) in [
            ("deadline_seconds", r.deadline_seconds),
            ("lease_seconds", r.lease_seconds),
            ("linger_seconds", self.linger_seconds),
        ] {
            if !(seconds.is_finite() && seconds >= 0.0) {
                return fail(format!("{name} must be a number of seconds, at least 0"));
            }
        }
        if !(self.max_update_norm.is_finite() && self.max_update_norm >= 0.0) {
            return fail("max_update_norm must be at least 0".into());
        }
        let multiple = self.adaptive_norm_multiple;
        if !(multiple.is_finite() && (multiple == 0.0 || multiple >= 1.0)) {
            return fail("adaptive_norm_multiple must be 0 (off) or at least 1".into());
        }
        if let Some(dp) = &self.privacy.dp {
            dp.validate()
                .map_err(|m| FlError::Config(format!("run.json: dp: {m}")))?;
        }
        if self.privacy.secure_aggregation {
            if self.strategy.aggregation != Aggregation::Mean {
                return fail(
                    "secure aggregation reveals only the sum of the updates, so it works with \
                     the mean only; median and trimmed mean need every update in the clear"
                        .into(),
                );
            }
            if self.rounds.min_clients < 2 {
                return fail(
                    "secure aggregation needs at least 2 updates per round (min_clients >= 2): \
                     the sum of one update is the update"
                        .into(),
                );
            }
        }
        if self.workers.is_empty() {
            return fail("a run needs at least one worker".into());
        }
        let mut ids: Vec<&str> = self.workers.iter().map(|w| w.id.as_str()).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) || !ids.iter().all(|id| valid_id(id)) {
            return fail("worker ids must be unique, 1-64 of [A-Za-z0-9._-]".into());
        }
        Ok(())
    }

    /// `deadline_seconds` as a duration: a round aggregates what it has after
    /// this long, or starts over.
    pub fn deadline(&self) -> Duration {
        Duration::from_secs_f64(self.rounds.deadline_seconds)
    }

    /// `lease_seconds` as a duration: a worker counts as available this long
    /// after it was last heard from.
    pub fn lease(&self) -> Duration {
        Duration::from_secs_f64(self.rounds.lease_seconds)
    }

    /// `linger_seconds` as a duration: how long the aggregator answers after the end.
    pub fn linger(&self) -> Duration {
        Duration::from_secs_f64(self.linger_seconds)
    }
}

/// How runs train, apart from their shape (rounds, strategy, workers) and their
/// data: what `bloginfer fl run`, the orchestrator and `up` take from their
/// flags, and turn into each run's [`RunSpec`].
#[derive(Debug, Clone)]
pub struct Tuning {
    /// Strategy knobs; unset ones take the strategy's defaults.
    pub options: StrategyOptions,
    /// Local-training settings (the seed also drives client selection).
    pub local: LocalSettings,
    /// Updates needed to aggregate a round [default: every worker].
    pub min_clients: Option<usize>,
    /// Workers that must be available before a round starts [default: min_clients].
    pub min_available: Option<usize>,
    /// Share of available workers selected each round.
    pub fraction: f64,
    /// A round aggregates what it has after this long, or starts over.
    pub round_deadline: Duration,
    /// A worker counts as available this long after it was last heard from.
    pub client_lease: Duration,
    /// Updates with a larger L2 norm are refused (0: no bound).
    pub max_update_norm: f64,
    /// Updates beyond this multiple of the round's median norm are scaled
    /// down to it (0: never).
    pub adaptive_norm_multiple: f64,
    /// Element type of uploads.
    pub upload_dtype: WireDtype,
    /// Secure aggregation, differential privacy, dense embedding updates.
    pub privacy: PrivacySpec,
    /// Standard deviation of a fresh model's initial embeddings.
    pub embed_init_std: f32,
}

/// What one run adds to a [`Tuning`].
#[derive(Debug, Clone)]
pub struct RunShape {
    /// Ties state files, tokens and updates to this run (becomes [`RunSpec::run_id`]).
    pub run_id: String,
    /// The named strategy, resolved with the tuning's options into [`RunSpec::strategy`].
    pub strategy: StrategyKind,
    /// Rounds to aggregate before the run ends.
    pub rounds: u32,
    /// Workers (their list is filled in when the shards are written).
    pub workers: usize,
    /// Make the final model current.
    pub promote: bool,
    /// How long the aggregator keeps answering after the end.
    pub linger: Duration,
    /// SHA-256 of the training data.
    pub data_fingerprint: Option<String>,
    /// Recorded in the final model's metadata.
    pub settings: serde_json::Value,
}

impl Tuning {
    /// The description of a run of `shape` trained this way (its worker list
    /// still empty).
    pub fn spec(&self, shape: RunShape) -> Result<RunSpec> {
        let min_clients = self.min_clients.unwrap_or(shape.workers).max(1);
        Ok(RunSpec {
            version: SPEC_VERSION,
            run_id: shape.run_id,
            model: ModelSource::Fresh {
                embed_init_std: self.embed_init_std,
            },
            strategy: Strategy::new(shape.strategy, &self.options)?,
            local: self.local.clone(),
            rounds: RoundSpec {
                rounds: shape.rounds,
                min_clients,
                min_available: self.min_available.unwrap_or(min_clients),
                fraction: self.fraction,
                deadline_seconds: self.round_deadline.as_secs_f64(),
                lease_seconds: self.client_lease.as_secs_f64(),
            },
            max_update_norm: self.max_update_norm,
            adaptive_norm_multiple: self.adaptive_norm_multiple,
            upload_dtype: self.upload_dtype,
            privacy: self.privacy.clone(),
            workers: Vec::new(),
            promote: shape.promote,
            linger_seconds: shape.linger.as_secs_f64(),
            data_fingerprint: shape.data_fingerprint,
            settings: shape.settings,
        })
    }
}

/// Whether `id` can name a run or a worker (and so a folder or a label).
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

/// The files of a run directory, by name.
#[derive(Debug, Clone)]
pub struct RunDir(PathBuf);

impl RunDir {
    /// The run directory at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }

    /// The run directory itself; every other path here lies inside it.
    pub fn path(&self) -> &Path {
        &self.0
    }

    /// `run.json`, the run's [`RunSpec`].
    pub fn spec(&self) -> PathBuf {
        self.0.join("run.json")
    }
    /// The run key's file (mode 0600), kept out of `run.json`: the
    /// aggregator's secret, from which each worker's credential is derived.
    pub fn token(&self) -> PathBuf {
        self.0.join("token")
    }
    /// A fresh model's architecture.
    pub fn model_config(&self) -> PathBuf {
        self.0.join("model.json")
    }
    /// A fresh model's vocabulary.
    pub fn vocab(&self) -> PathBuf {
        self.0.join("vocab.json")
    }
    /// The aggregator's validation data.
    pub fn validation(&self) -> PathBuf {
        self.0.join("validation.tsv")
    }
    /// Worker `id`'s folder.
    pub fn worker(&self, id: &str) -> PathBuf {
        self.0.join(format!("worker-{id}"))
    }
    /// The aggregator's persisted rounds.
    pub fn state(&self) -> PathBuf {
        self.0.join("state")
    }
    /// The aggregator's status, replaced as it changes.
    pub fn status(&self) -> PathBuf {
        self.0.join("status.json")
    }
    /// The aggregator's final status.
    pub fn result(&self) -> PathBuf {
        self.0.join("result.json")
    }
    /// Where a locally launched aggregator writes its address.
    pub fn aggregator_addr(&self) -> PathBuf {
        self.0.join("aggregator.addr")
    }
    /// The log of a locally launched process (`aggregator`, `worker-0`, ...).
    pub fn log(&self, name: &str) -> PathBuf {
        self.0.join(format!("{name}.log"))
    }

    /// Reads and checks `run.json`.
    pub fn read_spec(&self) -> Result<RunSpec> {
        let spec: RunSpec = read_json(&self.spec(), "run description")?;
        spec.validate()?;
        Ok(spec)
    }

    /// Writes `run.json` (atomically).
    pub fn write_spec(&self, spec: &RunSpec) -> Result<()> {
        spec.validate()?;
        write_json(&self.spec(), spec)
    }

    /// Reads the run key.
    pub fn read_token(&self) -> Result<String> {
        read_token(&self.token())
    }
}

/// The files of one worker's folder (all a worker pod can see).
#[derive(Debug, Clone)]
pub struct WorkerDir(PathBuf);

impl WorkerDir {
    /// The worker folder at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self(path.into())
    }
    /// Who the worker is.
    pub fn identity(&self) -> PathBuf {
        self.0.join("worker.json")
    }
    /// `shard.tsv`: the worker's training data, and nothing else's.
    pub fn shard(&self) -> PathBuf {
        self.0.join("shard.tsv")
    }
    /// The worker's own credential, which it sends to the aggregator.
    pub fn token(&self) -> PathBuf {
        self.0.join("token")
    }
    /// Reads `worker.json`: the run the worker belongs to and its id.
    pub fn read_identity(&self) -> Result<WorkerIdentity> {
        read_json(&self.identity(), "worker identity")
    }
    /// Reads the credential the worker sends to the aggregator.
    pub fn read_token(&self) -> Result<String> {
        read_token(&self.token())
    }
}

/// Reads a token file (trimmed; empty is an error).
pub fn read_token(path: &Path) -> Result<String> {
    let raw = std::fs::read_to_string(path)
        .map_err(|e| FlError::io(format!("cannot read the token {}", path.display()), e))?;
    let token = raw.trim().to_string();
    if token.is_empty() {
        return Err(FlError::Config(format!("{} is empty", path.display())));
    }
    Ok(token)
}

/// Reads a JSON file as `T`.
pub fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let raw = std::fs::read(path)
        .map_err(|e| FlError::io(format!("cannot read the {what} {}", path.display()), e))?;
    serde_json::from_slice(&raw)
        .map_err(|e| FlError::Config(format!("{} is not a valid {what}: {e}", path.display())))
}

/// Writes `value` as JSON to `path`, atomically.
pub fn write_json<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let json = serde_json::to_vec_pretty(value).map_err(|e| FlError::Invalid(e.to_string()))?;
    bloginfer_common::write_atomic(path, &json)
        .map_err(|e| FlError::io(format!("cannot write {}", path.display()), e))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::strategy::{StrategyKind, StrategyOptions};

    pub(crate) fn example() -> RunSpec {
        RunSpec {
            version: SPEC_VERSION,
            run_id: "fl-test".into(),
            model: ModelSource::Fresh {
                embed_init_std: 0.1,
            },
            strategy: Strategy::new(StrategyKind::FedAvg, &StrategyOptions::default())
                .expect("strategy"),
            local: LocalSettings {
                batch_size: 32,
                clip_norm: 1.0,
                token_dropout: 0.0,
                seed: 7,
            },
            rounds: RoundSpec {
                rounds: 3,
                min_clients: 2,
                min_available: 2,
                fraction: 1.0,
                deadline_seconds: 600.0,
                lease_seconds: 60.0,
            },
            max_update_norm: 0.0,
            adaptive_norm_multiple: 3.0,
            upload_dtype: WireDtype::F32,
            privacy: PrivacySpec::default(),
            workers: vec![
                WorkerSpec {
                    id: "0".into(),
                    samples: 10,
                },
                WorkerSpec {
                    id: "1".into(),
                    samples: 12,
                },
            ],
            promote: false,
            linger_seconds: 10.0,
            data_fingerprint: None,
            settings: serde_json::Value::Null,
        }
    }

    #[test]
    fn a_spec_survives_its_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let run = RunDir::new(dir.path());
        let spec = example();
        run.write_spec(&spec).expect("write");
        assert_eq!(run.read_spec().expect("read"), spec);
    }

    #[test]
    fn broken_specs_are_refused_with_the_field_named() {
        let mut twice = example();
        twice.workers[1].id = "0".into();
        let mut zero = example();
        zero.rounds.rounds = 0;
        let mut fraction = example();
        fraction.rounds.fraction = 1.5;
        let mut path = example();
        path.run_id = "../../etc".into();
        for (spec, field) in [
            (twice, "worker ids"),
            (zero, "rounds"),
            (fraction, "fraction"),
            (path, "run_id"),
        ] {
            let error = spec.validate().expect_err("refused").to_string();
            assert!(error.contains(field), "{error}");
        }
        let unknown = serde_json::json!({"version": 1, "surprise": true});
        assert!(serde_json::from_value::<RunSpec>(unknown).is_err());
    }
}
