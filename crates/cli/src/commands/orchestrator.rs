//! `bloginfer orchestrator`: the training daemon. It serves the admin API
//! (`/v1/trainings`, `/v1/models`, `/v1/feedback`), runs the labeler of the
//! feedback loop, runs trainings with the local launcher
//! (child processes) or the Kubernetes launcher (Jobs), and keeps the model
//! registry tidy. `bloginfer up` builds the same thing with the local launcher.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bloginfer_fl::strategy::StrategyKind;
use bloginfer_model::config::{ModelConfig, TrainConfig};
use bloginfer_model::data;
use bloginfer_orchestrator::http::{AdminAuth, ApiState};
use bloginfer_orchestrator::launcher::kubernetes::{
    load_template, KubernetesLauncher, KubernetesSettings,
};
use bloginfer_orchestrator::launcher::local::LocalLauncher;
use bloginfer_orchestrator::launcher::Launcher;
use bloginfer_orchestrator::{OrchestratorConfig, RunDefaults};
use clap::{Args, ValueEnum};

use super::args::ModelArgs;

/// Where runs are launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LauncherKind {
    /// Child processes of this binary on loopback.
    Local,
    /// Jobs and a Service through the Kubernetes API (in-cluster credentials).
    Kubernetes,
}

/// How runs are scheduled, judged and cleaned up (shared with `bloginfer up`).
#[derive(Args, Clone)]
pub struct TrainingArgs {
    /// Least time between the starts of two runs, in seconds.
    #[arg(long, env = "MIN_TRAIN_INTERVAL_SECONDS", default_value_t = 600.0)]
    pub min_train_interval_seconds: f64,
    /// How often an active run is looked at, in seconds.
    #[arg(long, env = "TRAIN_POLL_INTERVAL_SECONDS", default_value_t = 5.0)]
    pub train_poll_interval_seconds: f64,
    /// How often old models and run folders are deleted, in seconds.
    #[arg(long, env = "CLEAN_INTERVAL_SECONDS", default_value_t = 3600.0)]
    pub clean_interval_seconds: f64,
    /// Run folders (shards, worker artifacts, logs) older than this are deleted, in seconds.
    #[arg(long, env = "MAX_CLIENT_MODEL_AGE_SECONDS", default_value_t = 86400.0)]
    pub max_client_model_age_seconds: f64,
    /// Model versions kept by retention (the current one and candidates always stay).
    #[arg(long, env = "KEEP_MODELS", default_value_t = 5)]
    pub keep_models: usize,
    /// A candidate is promoted unless its accuracy is lower than the current
    /// model's by more than this (a fraction: 0.005 is half a point).
    #[arg(long, env = "PROMOTION_MARGIN", default_value_t = 0.005)]
    pub promotion_margin: f64,
    /// Federated strategy of a run unless the request names one.
    #[arg(long, env = "TRAIN_STRATEGY", default_value = "fedavg")]
    pub train_strategy: StrategyKind,
    /// Training data instead of the bundled corpus (`label<TAB>text` TSV); its
    /// fixed validation split is the evaluation split.
    #[arg(long, env = "TRAIN_DATA")]
    pub train_data: Option<PathBuf>,
    /// Use only the first N training examples of the corpus (quick runs).
    #[arg(long, env = "TRAIN_LIMIT")]
    pub train_limit: Option<usize>,
    /// One more `bloginfer aggregator` flag for every run (repeatable), e.g.
    /// `--aggregator-flag=--local-epochs=2`.
    #[arg(long = "aggregator-flag", allow_hyphen_values = true)]
    pub aggregator_flags: Vec<String>,
}

fn seconds(value: f64, name: &str) -> Result<Duration> {
    anyhow::ensure!(
        value.is_finite() && value >= 0.0,
        "{name} must be a number of seconds, at least 0"
    );
    Ok(Duration::from_secs_f64(value))
}

impl TrainingArgs {
    /// The orchestrator's settings: these flags, the run shape and the model
    /// (architecture and vocabulary threshold).
    pub fn config(
        &self,
        models_dir: &Path,
        runs_dir: &Path,
        defaults: RunDefaults,
        model: (ModelConfig, u64),
        threads: usize,
    ) -> Result<OrchestratorConfig> {
        let poll = seconds(
            self.train_poll_interval_seconds,
            "TRAIN_POLL_INTERVAL_SECONDS",
        )?;
        anyhow::ensure!(
            poll >= Duration::from_millis(10),
            "TRAIN_POLL_INTERVAL_SECONDS must be at least 0.01"
        );
        let clean = seconds(self.clean_interval_seconds, "CLEAN_INTERVAL_SECONDS")?;
        anyhow::ensure!(
            clean >= Duration::from_secs(1),
            "CLEAN_INTERVAL_SECONDS must be at least 1"
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&self.promotion_margin),
            "PROMOTION_MARGIN is a fraction of accuracy, between 0 and 1"
        );
        anyhow::ensure!(self.keep_models >= 1, "KEEP_MODELS must be at least 1");
        let examples = match &self.train_data {
            Some(path) => data::read_tsv(path)?,
            None => data::bundled_corpus(),
        };
        let (mut corpus, evaluation) =
            data::split(examples, data::VALIDATION_FRACTION, data::VALIDATION_SEED);
        if let Some(limit) = self.train_limit {
            corpus.truncate(limit);
        }
        anyhow::ensure!(
            !corpus.is_empty() && !evaluation.is_empty(),
            "too little data for training and evaluation"
        );
        Ok(OrchestratorConfig {
            models_dir: models_dir.to_path_buf(),
            runs_dir: runs_dir.to_path_buf(),
            min_interval: seconds(
                self.min_train_interval_seconds,
                "MIN_TRAIN_INTERVAL_SECONDS",
            )?,
            poll_interval: poll,
            clean_interval: clean,
            max_run_age: seconds(
                self.max_client_model_age_seconds,
                "MAX_CLIENT_MODEL_AGE_SECONDS",
            )?,
            keep_models: self.keep_models,
            promotion_margin: self.promotion_margin,
            defaults: RunDefaults {
                strategy: self.train_strategy.to_string(),
                ..defaults
            },
            model: model.0,
            min_count: model.1,
            seed: TrainConfig::default().seed,
            corpus: Arc::new(corpus),
            evaluation: Arc::new(evaluation),
            aggregator_flags: self.aggregator_flags.clone(),
            threads,
        })
    }
}

/// Flags of `bloginfer orchestrator`.
#[derive(Args)]
pub struct OrchestratorArgs {
    /// Address to listen on (0.0.0.0 in a container).
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8000)]
    port: u16,
    /// Write the bound address here once listening (useful with port 0).
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// The database runs are recorded in (the blog's): `sqlite:path` or `mysql://...`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite:./var/blog.db")]
    database_url: String,
    /// Password for the database user, put into `--database-url` (from a secret).
    #[arg(long, env = "DATABASE_PASSWORD", hide_env_values = true)]
    database_password: Option<String>,
    /// Token that grants admin access (`Authorization: Bearer <token>`).
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true)]
    admin_token: Option<String>,
    /// The blog's base URL: admin users' sessions are checked there.
    #[arg(long, env = "BLOG_URL")]
    blog_url: Option<String>,
    /// Where runs are launched.
    #[arg(long, env = "ORCHESTRATOR_LAUNCHER", value_enum, default_value_t = LauncherKind::Local)]
    launcher: LauncherKind,
    /// Run folders (shards, tokens, aggregator state), shared with the runs' pods.
    #[arg(long, env = "RUNS_DIR", default_value = "./var/runs")]
    runs_dir: PathBuf,
    /// Kubernetes namespace of the runs and the inference Deployment.
    #[arg(long, env = "NAMESPACE", default_value = "bloginfer")]
    namespace: String,
    /// The worker Job template (Kubernetes launcher).
    #[arg(long, env = "TRAIN_JOB_YAML")]
    train_job_yaml: Option<PathBuf>,
    /// The aggregator Job template (Kubernetes launcher).
    #[arg(long, env = "AGG_JOB_YAML")]
    agg_job_yaml: Option<PathBuf>,
    /// The Deployment patched to roll inference out to a promoted model.
    #[arg(long, env = "INFERENCE_DEPLOYMENT_NAME", default_value = "inference")]
    inference_deployment_name: String,
    /// Image of the runs' pods (the orchestrator's own build); unset keeps the templates'.
    #[arg(long, env = "WORKLOAD_IMAGE")]
    workload_image: Option<String>,
    /// Workers of a run unless the request says otherwise.
    #[arg(long = "train-workers", env = "TRAIN_WORKERS", default_value_t = 2)]
    workers: u32,
    /// Rounds of a run unless the request says otherwise.
    #[arg(long = "train-rounds", env = "TRAIN_ROUNDS", default_value_t = 10)]
    rounds: u32,
    #[command(flatten)]
    training: TrainingArgs,
    #[command(flatten)]
    model: ModelArgs,
    #[command(flatten)]
    feedback: super::labeler::LabelerArgs,
}

/// The run shape: `workers` and `rounds` by default, the limits of requests.
pub fn run_defaults(workers: u32, rounds: u32) -> RunDefaults {
    RunDefaults {
        workers,
        rounds,
        ..RunDefaults::default()
    }
}

/// A local launcher on this very binary.
pub fn local_launcher(threads: usize) -> Result<Arc<dyn Launcher>> {
    let exe = std::env::current_exe().context("cannot find the bloginfer binary")?;
    Ok(Arc::new(LocalLauncher::new(exe, threads, threads)))
}

async fn kubernetes_launcher(args: &OrchestratorArgs) -> Result<Arc<dyn Launcher>> {
    let (Some(worker), Some(aggregator)) = (&args.train_job_yaml, &args.agg_job_yaml) else {
        anyhow::bail!("the kubernetes launcher needs TRAIN_JOB_YAML and AGG_JOB_YAML");
    };
    let settings = KubernetesSettings {
        namespace: args.namespace.clone(),
        aggregator_template: load_template(aggregator)?,
        worker_template: load_template(worker)?,
        image: args.workload_image.clone().filter(|i| !i.is_empty()),
        inference_deployment: args.inference_deployment_name.clone(),
    };
    let client = kube::Client::try_default()
        .await
        .context("cannot reach the Kubernetes API (in-cluster service account or kubeconfig)")?;
    Ok(Arc::new(KubernetesLauncher::new(client, settings)?))
}

/// Runs `bloginfer orchestrator`.
pub fn run(models_dir: &Path, threads: usize, args: OrchestratorArgs) -> Result<()> {
    let config = args.training.config(
        models_dir,
        &args.runs_dir,
        run_defaults(args.workers, args.rounds),
        (args.model.config()?, args.model.min_count),
        threads,
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        super::blog::ensure_sqlite_dir(&args.database_url);
        let database_url = match &args.database_password {
            Some(password) => bloginfer_db::with_password(&args.database_url, password)
                .map_err(anyhow::Error::msg)?,
            None => args.database_url.clone(),
        };
        let db = bloginfer_db::connect(&database_url)
            .await
            .context("cannot open the database")?;
        let launcher = match args.launcher {
            LauncherKind::Local => local_launcher(threads)?,
            LauncherKind::Kubernetes => kubernetes_launcher(&args).await?,
        };
        if args.admin_token.as_deref().is_none_or(str::is_empty) && args.blog_url.is_none() {
            tracing::warn!("neither ADMIN_TOKEN nor BLOG_URL is set: nobody can use the API");
        }
        let labeler = args.feedback.build(db.clone(), models_dir)?;
        let orchestrator =
            bloginfer_orchestrator::Orchestrator::start(config, db, launcher, labeler.clone())
                .await?;
        let _labelling = labeler.map(|l| l.spawn());
        let state = Arc::new(ApiState {
            orchestrator,
            auth: AdminAuth::new(args.admin_token.clone(), args.blog_url.clone()),
        });
        let app = bloginfer_orchestrator::http::routes(state, true)
            .fallback(bloginfer_orchestrator::http::not_found);
        let addr = SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        tracing::info!(%bound, launcher = ?args.launcher, "orchestrator listening");
        if let Some(path) = &args.addr_file {
            std::fs::write(path, bound.to_string())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        axum::serve(listener, app)
            .with_graceful_shutdown(super::aggregator::shutdown_signal())
            .await
            .context("server failed")?;
        Ok(())
    })
}
