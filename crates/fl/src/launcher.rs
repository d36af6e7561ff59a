//! The local launcher behind `bloginfer fl run`: writes one shard file per
//! worker (the validation split stays with the aggregator), starts the
//! aggregator and the workers as child processes of the same binary on
//! loopback, reports progress, and stops every child on Ctrl-C or failure.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use bloginfer_model::data::Example;
use bloginfer_model::ModelConfig;
use bloginfer_text::Vocab;
use rand::Rng;
use tokio::process::{Child, Command};

use crate::error::{FlError, Result};
use crate::partition::{partition, write_tsv, Partition};
use crate::protocol::RunStatus;

/// The files a run needs, written by [`prepare`].
#[derive(Debug, Clone)]
pub struct RunFiles {
    /// The run's working directory.
    pub dir: PathBuf,
    /// One shard per worker.
    pub shards: Vec<PathBuf>,
    /// The aggregator's validation data.
    pub validation: PathBuf,
    /// Shared vocabulary (JSON token list).
    pub vocab: PathBuf,
    /// Model architecture (JSON).
    pub model_config: PathBuf,
    /// Samples per shard.
    pub shard_sizes: Vec<usize>,
}

/// How training data is cut into worker shards.
#[derive(Debug, Clone, Copy)]
pub struct Sharding {
    /// Number of workers (one shard each).
    pub workers: usize,
    /// IID or Dirichlet.
    pub partition: Partition,
    /// Seed of the stable keys and the Dirichlet draws.
    pub seed: u64,
}

/// Writes shards, validation data, vocabulary and model config into `dir`.
/// The vocabulary comes from the data owner that makes the shards (the
/// launcher or orchestrator) and is shipped to workers as part of the model.
pub fn prepare(
    dir: &Path,
    train: &[Example],
    validation: &[Example],
    vocab: &Vocab,
    model: &ModelConfig,
    sharding: Sharding,
) -> Result<RunFiles> {
    std::fs::create_dir_all(dir)
        .map_err(|e| FlError::io(format!("cannot create {}", dir.display()), e))?;
    let shards = partition(train, sharding.workers, sharding.partition, sharding.seed)?;
    let mut paths = Vec::with_capacity(sharding.workers);
    for (i, shard) in shards.iter().enumerate() {
        let path = dir.join(format!("shard-{i}.tsv"));
        write_tsv(&path, shard)?;
        paths.push(path);
    }
    let validation_path = dir.join("validation.tsv");
    write_tsv(&validation_path, validation)?;
    let write_json = |name: &str, value: &dyn erased::Json| -> Result<PathBuf> {
        let path = dir.join(name);
        std::fs::write(&path, value.to_json()?)
            .map_err(|e| FlError::io(format!("cannot write {}", path.display()), e))?;
        Ok(path)
    };
    let mut model = model.clone();
    model.vocab_size = vocab.len();
    Ok(RunFiles {
        dir: dir.to_path_buf(),
        shards: paths,
        validation: validation_path,
        vocab: write_json("vocab.json", vocab)?,
        model_config: write_json("model.json", &model)?,
        shard_sizes: shards.iter().map(Vec::len).collect(),
    })
}

mod erased {
    use crate::error::{FlError, Result};
    pub trait Json {
        fn to_json(&self) -> Result<String>;
    }
    impl<T: serde::Serialize> Json for T {
        fn to_json(&self) -> Result<String> {
            serde_json::to_string(self).map_err(|e| FlError::Invalid(e.to_string()))
        }
    }
}

/// A fresh random run token (hex).
pub fn random_token() -> String {
    let bytes: [u8; 24] = rand::rng().random();
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// How to launch a prepared run.
#[derive(Debug, Clone)]
pub struct Launch {
    /// The `bloginfer` binary.
    pub exe: PathBuf,
    /// Prepared files.
    pub files: RunFiles,
    /// Run id.
    pub run_id: String,
    /// Run token.
    pub token: String,
    /// Model registry.
    pub models_dir: PathBuf,
    /// Flags for `bloginfer aggregator` beyond the ones the launcher sets
    /// (rounds, strategy, sampling, ...).
    pub aggregator_args: Vec<String>,
    /// Threads per worker process.
    pub worker_threads: usize,
}

/// Hooks for showing progress.
pub trait LaunchProgress {
    /// A new status arrived.
    fn status(&mut self, status: &RunStatus, elapsed: Duration);
}

/// What a finished launch produced.
#[derive(Debug, Clone)]
pub struct LaunchOutcome {
    /// The aggregator's final status.
    pub status: RunStatus,
    /// Registry version of the final model.
    pub version: String,
    /// Wall time.
    pub seconds: f64,
}

fn log_file(dir: &Path, name: &str) -> Result<std::fs::File> {
    let path = dir.join(name);
    std::fs::File::create(&path)
        .map_err(|e| FlError::io(format!("cannot create {}", path.display()), e))
}

fn spawn(exe: &Path, args: &[String], log: std::fs::File, token: &str) -> Result<Child> {
    let err = log
        .try_clone()
        .map_err(|e| FlError::io("cannot duplicate a log handle", e))?;
    Command::new(exe)
        .args(args)
        .env("FL_RUN_TOKEN", token)
        .stdin(Stdio::null())
        .stdout(Stdio::from(log))
        .stderr(Stdio::from(err))
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| FlError::io(format!("cannot start {}", exe.display()), e))
}

/// Waits for a starting aggregator to write its bound address to `path`;
/// fails if it exits first or takes longer than `patience`.
pub async fn wait_for_addr(
    path: &Path,
    aggregator: &mut Child,
    patience: Duration,
) -> Result<String> {
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

/// Starts the aggregator and one worker per shard, follows the run until the
/// aggregator exits, and returns the final model's version. Ctrl-C stops all
/// children (they are killed when dropped).
pub async fn launch(plan: &Launch, progress: &mut dyn LaunchProgress) -> Result<LaunchOutcome> {
    let started = Instant::now();
    let dir = &plan.files.dir;
    let addr_file = dir.join("aggregator.addr");
    let result_file = dir.join("result.json");
    let _ = std::fs::remove_file(&addr_file);
    let _ = std::fs::remove_file(&result_file);
    let s = |p: &Path| p.display().to_string();
    // Workers sit idle while the aggregator evaluates, so it may use every core.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut args = vec![
        "--models-dir".to_string(),
        s(&plan.models_dir),
        format!("--threads={cores}"),
        "aggregator".into(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--addr-file".into(),
        s(&addr_file),
        "--run-id".into(),
        plan.run_id.clone(),
        "--model-config".into(),
        s(&plan.files.model_config),
        "--vocab".into(),
        s(&plan.files.vocab),
        "--validation".into(),
        s(&plan.files.validation),
        "--state-dir".into(),
        s(&dir.join("state")),
        "--result-file".into(),
        s(&result_file),
    ];
    args.extend(plan.aggregator_args.iter().cloned());
    let mut aggregator = spawn(
        &plan.exe,
        &args,
        log_file(dir, "aggregator.log")?,
        &plan.token,
    )?;
    let addr = tokio::select! {
        addr = wait_for_addr(&addr_file, &mut aggregator, Duration::from_secs(60)) => addr?,
        _ = tokio::signal::ctrl_c() => return Err(FlError::Interrupted),
    };
    let url = format!("http://{addr}");
    let mut workers = Vec::new();
    for (i, shard) in plan.files.shards.iter().enumerate() {
        let args = vec![
            "--threads".to_string(),
            plan.worker_threads.to_string(),
            "worker".into(),
            "--aggregator".into(),
            url.clone(),
            "--worker-id".into(),
            i.to_string(),
            "--shard".into(),
            s(shard),
        ];
        workers.push(spawn(
            &plan.exe,
            &args,
            log_file(dir, &format!("worker-{i}.log"))?,
            &plan.token,
        )?);
    }
    let http = reqwest::Client::builder()
        .http2_prior_knowledge()
        .timeout(Duration::from_secs(10))
        .build()
        .map_err(|e| FlError::Config(e.to_string()))?;
    let exit = loop {
        tokio::select! {
            _ = tokio::signal::ctrl_c() => {
                return Err(FlError::Interrupted);
            }
            exit = aggregator.wait() => break exit.map_err(|e| FlError::io("waiting for the aggregator", e))?,
            _ = tokio::time::sleep(Duration::from_millis(500)) => {
                let polled = http.get(format!("{url}/v1/status")).bearer_auth(&plan.token).send().await;
                if let Ok(resp) = polled {
                    if let Ok(status) = resp.json::<RunStatus>().await {
                        progress.status(&status, started.elapsed());
                    }
                }
                if !workers.is_empty() && workers.iter_mut().all(|w| matches!(w.try_wait(), Ok(Some(code)) if !code.success())) {
                    return Err(FlError::Process("every worker failed; see the worker logs".into()));
                }
            }
        }
    };
    // Workers exit on their own once told the run is over.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    for (i, w) in workers.iter_mut().enumerate() {
        match tokio::time::timeout_at(deadline, w.wait()).await {
            Ok(Ok(code)) if !code.success() => {
                tracing::warn!(worker = i, %code, "worker exited with an error")
            }
            Ok(_) => {}
            Err(_) => {
                tracing::warn!(worker = i, "worker did not exit; stopping it");
                let _ = w.kill().await;
            }
        }
    }
    if !exit.success() {
        return Err(FlError::Process(format!(
            "the aggregator failed ({exit}); see {}",
            dir.join("aggregator.log").display()
        )));
    }
    let raw = std::fs::read_to_string(&result_file)
        .map_err(|e| FlError::io(format!("cannot read {}", result_file.display()), e))?;
    let status: RunStatus = serde_json::from_str(&raw)
        .map_err(|e| FlError::Invalid(format!("{}: {e}", result_file.display())))?;
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
