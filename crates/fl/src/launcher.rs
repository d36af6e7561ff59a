//! Runs prepared and launched on this machine. [`prepare`] writes a run
//! directory (see [`crate::spec`]) from training data; [`LocalLauncher`]
//! starts its aggregator and one worker per shard as child processes of this
//! same binary on loopback, and [`LocalRun`] follows them. `bloginfer fl run`
//! and the orchestrator's local launcher both go through here, so a run is
//! started one way whoever starts it.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bloginfer_model::data::Example;
use bloginfer_model::ModelConfig;
use bloginfer_text::Vocab;
use tokio::process::{Child, Command};

use crate::error::{FlError, Result};
use crate::partition::{partition, write_tsv, Partition};
use crate::protocol::RunStatus;
use crate::spec::{write_json, RunDir, RunSpec, WorkerDir, WorkerIdentity, WorkerSpec};

/// How training data is cut into worker shards.
#[derive(Debug, Clone, Copy)]
pub struct Sharding {
    /// Number of workers (one shard each).
    pub workers: usize,
    /// How labels spread over the shards: evenly (IID), or skewed by Dirichlet draws.
    pub partition: Partition,
    /// Seed of the stable keys and the Dirichlet draws.
    pub seed: u64,
}

/// Writes a file only its owner may read.
fn write_secret(path: &Path, secret: &str) -> Result<()> {
    bloginfer_common::write_private(path, secret.as_bytes())
        .map_err(|e| FlError::io(format!("cannot write {}", path.display()), e))
}

/// Writes worker `id`'s folder: its shard, who it is, and its own credential
/// (derived from the run key, which stays out of the folder). Returns the
/// worker as the run description lists it.
pub fn write_worker(
    dir: &RunDir,
    run_id: &str,
    id: &str,
    shard: &[Example],
    run_key: &str,
) -> Result<WorkerSpec> {
    let folder = dir.worker(id);
    std::fs::create_dir_all(&folder)
        .map_err(|e| FlError::io(format!("cannot create {}", folder.display()), e))?;
    let worker = WorkerDir::new(&folder);
    write_tsv(&worker.shard(), shard)?;
    write_json(
        &worker.identity(),
        &WorkerIdentity {
            run_id: run_id.to_string(),
            worker_id: id.to_string(),
        },
    )?;
    let credential = crate::credentials::worker_credential(run_key, run_id, id)?;
    write_secret(&worker.token(), &credential)?;
    Ok(WorkerSpec {
        id: id.to_string(),
        samples: u64::try_from(shard.len()).unwrap_or(u64::MAX),
    })
}

/// Writes the model files of a fresh model (architecture and vocabulary; the
/// vocabulary's size becomes the architecture's), the validation data and the
/// run key (the aggregator's secret, from which each worker's credential is derived).
pub fn write_run_files(
    dir: &RunDir,
    model: &ModelConfig,
    vocab: &Vocab,
    validation: &[Example],
    run_key: &str,
) -> Result<()> {
    std::fs::create_dir_all(dir.path())
        .map_err(|e| FlError::io(format!("cannot create {}", dir.path().display()), e))?;
    let mut model = model.clone();
    model.vocab_size = vocab.len();
    write_json(&dir.model_config(), &model)?;
    write_json(&dir.vocab(), vocab)?;
    write_tsv(&dir.validation(), validation)?;
    write_secret(&dir.token(), run_key)
}

/// What goes into a run prepared from one data set.
pub struct RunData<'a> {
    /// Training examples, to be cut into shards.
    pub train: &'a [Example],
    /// Held-out examples the aggregator evaluates on.
    pub validation: &'a [Example],
    /// The shared vocabulary (built by the data owner that cuts the shards).
    pub vocab: &'a Vocab,
    /// The architecture of the fresh model the run starts from (`model.json`).
    pub model: &'a ModelConfig,
}

/// Writes the run directory `dir` for `spec`: the training data cut into one
/// shard per worker, the model files, a fresh run key (and a credential per
/// worker derived from it) and `run.json` (whose
/// worker list comes from the shards). Returns the spec as written.
pub fn prepare(
    dir: &RunDir,
    data: &RunData<'_>,
    sharding: Sharding,
    mut spec: RunSpec,
) -> Result<RunSpec> {
    let run_key = bloginfer_common::random_hex(32);
    write_run_files(dir, data.model, data.vocab, data.validation, &run_key)?;
    let shards = partition(
        data.train,
        sharding.workers,
        sharding.partition,
        sharding.seed,
    )?;
    spec.workers = shards
        .iter()
        .enumerate()
        .map(|(i, shard)| write_worker(dir, &spec.run_id, &i.to_string(), shard, &run_key))
        .collect::<Result<_>>()?;
    dir.write_spec(&spec)?;
    Ok(spec)
}

/// Starts runs as child processes of the `bloginfer` binary.
#[derive(Debug, Clone)]
pub struct LocalLauncher {
    exe: PathBuf,
    models_dir: PathBuf,
    worker_threads: usize,
    aggregator_threads: usize,
}

/// Hooks for showing progress.
pub trait LaunchProgress {
    /// A new status arrived.
    fn status(&mut self, status: &RunStatus, elapsed: Duration);
}

/// What a finished run produced.
#[derive(Debug, Clone)]
pub struct LaunchOutcome {
    /// The aggregator's final status.
    pub status: RunStatus,
    /// Registry version of the final model.
    pub version: String,
    /// Seconds from following the run to its final status.
    pub seconds: f64,
}

/// How a local run is doing.
#[derive(Debug, Clone, PartialEq)]
pub enum RunState {
    /// The aggregator has not finished yet.
    Running,
    /// The aggregator finished successfully (its result file holds the outcome).
    Finished,
    /// It failed, and why.
    Failed(String),
}

/// A run started by [`LocalLauncher`]: its aggregator and worker processes, killed when
/// this is dropped.
pub struct LocalRun {
    dir: RunDir,
    url: String,
    aggregator: Child,
    workers: Vec<Child>,
}

impl LocalLauncher {
    /// Launches `exe`; the aggregator publishes to `models_dir`, each worker
    /// trains with `worker_threads`, the aggregator evaluates with `aggregator_threads`.
    pub fn new(
        exe: PathBuf,
        models_dir: PathBuf,
        worker_threads: usize,
        aggregator_threads: usize,
    ) -> Self {
        Self {
            exe,
            models_dir,
            worker_threads: worker_threads.max(1),
            aggregator_threads: aggregator_threads.max(1),
        }
    }

    fn spawn(&self, args: &[String], log: &Path) -> Result<Child> {
        let out = std::fs::File::create(log)
            .map_err(|e| FlError::io(format!("cannot create {}", log.display()), e))?;
        let err = out
            .try_clone()
            .map_err(|e| FlError::io("cannot duplicate a log handle", e))?;
        Command::new(&self.exe)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::from(out))
            .stderr(Stdio::from(err))
            .kill_on_drop(true)
            .spawn()
            .map_err(|e| FlError::io(format!("cannot start {}", self.exe.display()), e))
    }

    /// Starts the aggregator of the run prepared in `dir` (it resumes from
    /// the run's state when there is one), waits until it listens, then starts
    /// one worker per worker folder.
    pub async fn start(&self, dir: &RunDir) -> Result<LocalRun> {
        let spec = dir.read_spec()?;
        let path = |p: &Path| p.display().to_string();
        let addr_file = dir.aggregator_addr();
        let _ = std::fs::remove_file(&addr_file);
        let args = vec![
            format!("--models-dir={}", path(&self.models_dir)),
            format!("--threads={}", self.aggregator_threads),
            "aggregator".into(),
            format!("--run-dir={}", path(dir.path())),
            "--listen=127.0.0.1:0".into(),
            format!("--addr-file={}", path(&addr_file)),
        ];
        let mut aggregator = self.spawn(&args, &dir.log("aggregator"))?;
        let url = format!(
            "http://{}",
            wait_for_addr(&addr_file, &mut aggregator, Duration::from_secs(120)).await?
        );
        let mut workers = Vec::with_capacity(spec.workers.len());
        for worker in &spec.workers {
            let args = vec![
                format!("--threads={}", self.worker_threads),
                "worker".into(),
                format!("--aggregator={url}"),
                format!("--worker-dir={}", path(&dir.worker(&worker.id))),
            ];
            workers.push(self.spawn(&args, &dir.log(&format!("worker-{}", worker.id)))?);
        }
        Ok(LocalRun {
            dir: dir.clone(),
            url,
            aggregator,
            workers,
        })
    }
}

/// Waits for a starting aggregator to write its bound address to `path`;
/// fails if it exits first or takes longer than `patience`.
async fn wait_for_addr(path: &Path, aggregator: &mut Child, patience: Duration) -> Result<String> {
    let start = Instant::now();
    loop {
        if let Ok(addr) = std::fs::read_to_string(path) {
            if !addr.trim().is_empty() {
                return Ok(addr.trim().to_string());
            }
        }
        if let Ok(Some(status)) = aggregator.try_wait() {
            return Err(FlError::Process(format!(
                "the aggregator exited at start-up ({status}); see its log"
            )));
        }
        if start.elapsed() > patience {
            return Err(FlError::Process(format!(
                "the aggregator did not start within {} s",
                patience.as_secs()
            )));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

impl LocalRun {
    /// The aggregator's base URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Process ids: the aggregator's and the workers'.
    pub fn pids(&self) -> (u32, Vec<u32>) {
        (
            self.aggregator.id().unwrap_or(0),
            self.workers.iter().filter_map(Child::id).collect(),
        )
    }

    /// How the run is doing now (does not wait).
    pub fn poll(&mut self) -> Result<RunState> {
        let aggregator = self
            .aggregator
            .try_wait()
            .map_err(|e| FlError::io("waiting for the aggregator", e))?;
        match aggregator {
            Some(status) if status.success() => Ok(RunState::Finished),
            Some(status) => Ok(RunState::Failed(format!(
                "the aggregator failed ({status}); see {}",
                self.dir.log("aggregator").display()
            ))),
            None => {
                let every_worker_failed = !self.workers.is_empty()
                    && self
                        .workers
                        .iter_mut()
                        .all(|w| matches!(w.try_wait(), Ok(Some(s)) if !s.success()));
                Ok(if every_worker_failed {
                    RunState::Failed("every worker failed; see the worker logs".into())
                } else {
                    RunState::Running
                })
            }
        }
    }

    /// Waits up to `within` for the workers to exit on their own (they do once
    /// told the run is over), then stops the rest.
    pub async fn reap_workers(&mut self, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        for (i, w) in self.workers.iter_mut().enumerate() {
            match tokio::time::timeout_at(deadline, w.wait()).await {
                Ok(Ok(code)) if !code.success() => {
                    tracing::warn!(worker = i, %code, "worker exited with an error");
                }
                Ok(_) => {}
                Err(_) => {
                    tracing::warn!(worker = i, "worker did not exit; stopping it");
                    let _ = w.kill().await;
                }
            }
        }
    }

    /// Stops every process of the run.
    pub async fn stop(&mut self) {
        let _ = self.aggregator.kill().await;
        for w in &mut self.workers {
            let _ = w.kill().await;
        }
    }

    /// Follows the run to its end, showing each new status; Ctrl-C stops it.
    /// Returns the final model's version.
    pub async fn follow(&mut self, progress: &mut dyn LaunchProgress) -> Result<LaunchOutcome> {
        let started = Instant::now();
        let mut last_seen = None;
        loop {
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {
                    self.stop().await;
                    return Err(FlError::Interrupted);
                }
                () = tokio::time::sleep(Duration::from_millis(250)) => {}
            }
            if let Some(status) = read_status(&self.dir.status(), &mut last_seen) {
                progress.status(&status, started.elapsed());
            }
            match self.poll()? {
                RunState::Running => {}
                RunState::Failed(why) => {
                    self.stop().await;
                    return Err(FlError::Process(why));
                }
                RunState::Finished => break,
            }
        }
        self.reap_workers(Duration::from_secs(30)).await;
        let result = self.dir.result();
        let raw = std::fs::read(&result)
            .map_err(|e| FlError::io(format!("cannot read {}", result.display()), e))?;
        let status: RunStatus = serde_json::from_slice(&raw)
            .map_err(|e| FlError::Invalid(format!("{}: {e}", result.display())))?;
        let version = status.version.clone().ok_or_else(|| {
            FlError::Process("the aggregator finished without storing a model".into())
        })?;
        progress.status(&status, started.elapsed());
        Ok(LaunchOutcome {
            status,
            version,
            seconds: started.elapsed().as_secs_f64(),
        })
    }
}

/// The status file's content when it changed since `last_seen` (its modification time).
fn read_status(path: &Path, last_seen: &mut Option<std::time::SystemTime>) -> Option<RunStatus> {
    let modified = std::fs::metadata(path).and_then(|m| m.modified()).ok()?;
    if *last_seen == Some(modified) {
        return None;
    }
    let status = serde_json::from_slice(&std::fs::read(path).ok()?).ok()?;
    *last_seen = Some(modified);
    Some(status)
}
