//! `bloginfer aggregator`: runs one federated training run as a network service.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use bloginfer_fl::params::ParamSet;
use bloginfer_fl::protocol::LocalSettings;
use bloginfer_fl::server::{Aggregator, AggregatorConfig, RoundRules};
use bloginfer_fl::strategy::Strategy;
use bloginfer_model::config::{ModelConfig, TrainConfig};
use bloginfer_model::{data, Checkpoint, Registry};
use bloginfer_text::Vocab;
use clap::Args;

use super::args::RunArgs;

/// Flags of `bloginfer aggregator`.
#[derive(Args)]
pub struct AggregatorArgs {
    /// Address to listen on.
    #[arg(long, env = "FL_LISTEN", default_value = "127.0.0.1:7000")]
    listen: SocketAddr,
    /// Write the bound address here once listening (useful with port 0).
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Write the final run status (JSON) here on success.
    #[arg(long, env = "FL_RESULT_FILE")]
    result_file: Option<PathBuf>,
    /// Run id; state and updates of other runs are refused.
    #[arg(long, env = "FL_RUN_ID")]
    run_id: String,
    #[command(flatten)]
    token: RunToken,
    /// Model architecture (JSON, as stored in checkpoints); needs --vocab.
    #[arg(
        long,
        env = "FL_MODEL_CONFIG",
        requires = "vocab",
        conflicts_with = "init_model"
    )]
    model_config: Option<PathBuf>,
    /// Shared vocabulary (JSON list of tokens, `<pad>` and `<unk>` first).
    #[arg(long, env = "FL_VOCAB")]
    vocab: Option<PathBuf>,
    /// Start from this model instead (a registry version, `current`, or a checkpoint file):
    /// its architecture, vocabulary and weights.
    #[arg(long, env = "FL_INIT_MODEL")]
    init_model: Option<String>,
    #[command(flatten)]
    run: RunArgs,
    /// Standard deviation of the initial embeddings (fresh models only).
    #[arg(long, default_value_t = TrainConfig::default().embed_init_std)]
    embed_init_std: f32,
    /// A worker counts as available this long after it was last heard from.
    #[arg(long, env = "FL_CLIENT_LEASE", default_value = "60s", value_parser = humantime::parse_duration)]
    client_lease: Duration,
    /// Labelled data evaluated on the server after every round (`label<TAB>text` TSV).
    #[arg(long, env = "FL_VALIDATION")]
    validation: Option<PathBuf>,
    /// Where round state is persisted (a restarted aggregator resumes from it).
    #[arg(long, env = "FL_STATE_DIR", default_value = "./var/fl-state")]
    state_dir: PathBuf,
    /// Make the final model the registry's current version.
    #[arg(long, env = "FL_PROMOTE")]
    promote: bool,
    /// Keep answering this long after the run ends, so every worker learns it.
    #[arg(long, env = "FL_LINGER", default_value = "30s", value_parser = humantime::parse_duration)]
    linger: Duration,
    /// Largest accepted request body, in MiB.
    #[arg(long, default_value_t = 256)]
    max_body_mib: usize,
    /// Fingerprint of the training data, recorded in the model's metadata.
    #[arg(long, env = "FL_DATA_FINGERPRINT")]
    data_fingerprint: Option<String>,
    /// Keep the run's status (JSON) in this file, replaced whenever it changes.
    #[arg(long, env = "FL_STATUS_FILE")]
    status_file: Option<PathBuf>,
    /// Extra settings (a JSON object) recorded in the final model's metadata.
    #[arg(long, env = "FL_SETTINGS")]
    settings: Option<String>,
}

/// The run token, given directly or in a file (a Kubernetes volume).
#[derive(Args)]
pub struct RunToken {
    /// Token every worker request must carry.
    #[arg(long = "token", env = "FL_RUN_TOKEN", hide_env_values = true)]
    value: Option<String>,
    /// File holding the token (instead of --token).
    #[arg(
        long = "token-file",
        env = "FL_RUN_TOKEN_FILE",
        conflicts_with = "value"
    )]
    file: Option<PathBuf>,
}

impl RunToken {
    /// The token.
    pub fn resolve(&self) -> Result<String> {
        let token = match (&self.value, &self.file) {
            (Some(value), _) => value.clone(),
            (None, Some(path)) => std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the run token {}", path.display()))?
                .trim()
                .to_string(),
            (None, None) => anyhow::bail!("give the run token with --token or --token-file"),
        };
        anyhow::ensure!(!token.is_empty(), "the run token must not be empty");
        Ok(token)
    }
}

fn read_json<T: serde::de::DeserializeOwned>(path: &Path, what: &str) -> Result<T> {
    let raw = std::fs::read_to_string(path)
        .with_context(|| format!("cannot read the {what} {}", path.display()))?;
    serde_json::from_str(&raw).with_context(|| format!("{} is not a valid {what}", path.display()))
}

fn load_model(
    models_dir: &Path,
    args: &AggregatorArgs,
) -> Result<(ModelConfig, Vocab, Option<ParamSet>)> {
    if let Some(init) = &args.init_model {
        let path = Path::new(init);
        let checkpoint = if path.is_file() {
            Checkpoint::load(path)?
        } else {
            let version = (init != "current").then_some(init.as_str());
            Registry::open(models_dir)?
                .load_version_or_current(version)?
                .1
        };
        let params = ParamSet::from_tensors(&checkpoint.weights)?;
        return Ok((checkpoint.config, checkpoint.vocab, Some(params)));
    }
    let (Some(config_path), Some(vocab_path)) = (&args.model_config, &args.vocab) else {
        anyhow::bail!("give --model-config and --vocab, or --init-model");
    };
    let mut config: ModelConfig = read_json(config_path, "model config")?;
    let vocab: Vocab = read_json(vocab_path, "vocabulary")?;
    config.vocab_size = vocab.len();
    config.validate().map_err(anyhow::Error::msg)?;
    Ok((config, vocab, None))
}

/// Runs `bloginfer aggregator`.
pub fn run(models_dir: &Path, threads: usize, args: AggregatorArgs) -> Result<()> {
    let token = args.token.resolve()?;
    anyhow::ensure!(args.run.rounds > 0, "--rounds must be at least 1");
    anyhow::ensure!(
        args.run.fraction > 0.0 && args.run.fraction <= 1.0,
        "--fraction must be in (0, 1]"
    );
    let (model, vocab, initial) = load_model(models_dir, &args)?;
    let validation = match &args.validation {
        Some(path) => data::read_tsv(path)?,
        None => Vec::new(),
    };
    let strategy = Strategy::new(args.run.strategy, &args.run.strategy_options())?;
    let min_clients = args.run.min_clients.unwrap_or(1).max(1);
    let config = AggregatorConfig {
        run_id: args.run_id.clone(),
        token,
        model,
        vocab,
        initial,
        embed_init_std: args.embed_init_std,
        strategy,
        local: LocalSettings {
            batch_size: args.run.batch_size.max(1),
            clip_norm: args.run.clip_norm,
            token_dropout: args.run.token_dropout,
            seed: args.run.seed,
        },
        rules: RoundRules {
            rounds: args.run.rounds,
            min_clients,
            min_available: args.run.min_available.unwrap_or(min_clients),
            fraction: args.run.fraction,
            deadline: args.run.round_deadline,
            lease: args.client_lease,
            seed: args.run.seed,
        },
        max_update_norm: args.run.max_update_norm,
        upload_dtype: args.run.upload_dtype,
        validation,
        state_dir: args.state_dir.clone(),
        models_dir: Some(models_dir.to_path_buf()),
        promote: args.promote,
        linger: args.linger,
        max_body_bytes: args.max_body_mib.saturating_mul(1 << 20),
        threads,
        data_fingerprint: args.data_fingerprint.clone(),
        settings: match &args.settings {
            Some(json) => serde_json::from_str(json).context("--settings is not valid JSON")?,
            None => serde_json::Value::Null,
        },
        status_file: args.status_file.clone(),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let aggregator = tokio::task::spawn_blocking(move || Aggregator::build(config)).await??;
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let bound = listener.local_addr()?;
        tracing::info!(%bound, run = %args.run_id, "aggregator listening");
        if let Some(path) = &args.addr_file {
            bloginfer_model::registry::write_atomic(path, bound.to_string().as_bytes())?;
        }
        let status = aggregator.serve(listener, shutdown_signal()).await?;
        if let Some(path) = &args.result_file {
            bloginfer_model::registry::write_atomic(
                path,
                serde_json::to_string_pretty(&status)?.as_bytes(),
            )?;
        }
        if let Some(version) = &status.version {
            println!("{version}");
        }
        Ok(())
    })
}

/// Resolves on Ctrl-C or SIGTERM (Kubernetes stops pods with SIGTERM).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = term => {}
    }
}
