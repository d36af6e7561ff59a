//! `bloginfer orchestrator`: the training daemon. It serves the admin API
//! (`/v1/trainings`, `/v1/models`, `/v1/feedback`), runs the labeler of the
//! feedback loop, launches runs as local processes or as Kubernetes Jobs, and
//! keeps the model registry tidy. `bloginfer up` hosts the same two services.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use bloginfer_labeler::LabelerService;
use bloginfer_model::{ModelFollower, Registry};
use bloginfer_orchestrator::http::AdminAuthConfig;
use bloginfer_orchestrator::launcher::kubernetes::{
    load_template, KubernetesLauncher, KubernetesSettings,
};
use bloginfer_orchestrator::launcher::local::LocalLauncher;
use bloginfer_orchestrator::launcher::Launcher;
use bloginfer_orchestrator::Orchestrator;
use bloginfer_service::{ServeConfig, Service};
use clap::{Args, ValueEnum};
use secrecy::{ExposeSecret, SecretString};

use crate::args::labeler::LabelerArgs;
use crate::args::training::{Placement, TrainingArgs};
use crate::args::{listen_default, secret, DatabaseArgs, ListenArgs};
use crate::serve;

/// Where runs are launched.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LauncherKind {
    /// Child processes of this binary on loopback.
    Local,
    /// Jobs and a Service through the Kubernetes API (in-cluster credentials).
    Kubernetes,
}

/// Flags of `bloginfer orchestrator`.
#[derive(Args)]
#[command(mut_arg("listen", |a| listen_default(a, "127.0.0.1:8000")))]
pub struct OrchestratorArgs {
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Grants admin access (`Authorization: Bearer <token>`); at least 32
    /// bytes, e.g. `openssl rand -hex 32`.
    #[arg(long, env = "ADMIN_TOKEN", hide_env_values = true, value_parser = secret)]
    admin_token: Option<SecretString>,
    /// Behind a reverse proxy (nginx): failed admin logins are counted per
    /// address from X-Forwarded-For's last entry instead of per peer.
    #[arg(long, env = "ORCHESTRATOR_BEHIND_PROXY")]
    behind_proxy: bool,
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
    feedback: LabelerArgs,
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
    // Before anything is opened or bound: a weak token is a refusal to start.
    if let Some(token) = &args.admin_token {
        bloginfer_orchestrator::http::check_admin_token(token.expose_secret())?;
    }
    let admin = AdminAuthConfig {
        token: args.admin_token.clone(),
        blog_url: args.blog_url.clone(),
    };
    if admin
        .token
        .as_ref()
        .is_none_or(|t| t.expose_secret().is_empty())
        && admin.blog_url.is_none()
    {
        tracing::warn!("neither ADMIN_TOKEN nor BLOG_URL is set: nobody can use the API");
    }
    let config = args.training.config(Placement {
        models_dir,
        runs_dir: &args.runs_dir,
        workers: args.workers,
        rounds: args.rounds,
        threads,
        admin,
    })?;
    let database = args.database.options()?;
    serve::runtime(None)?.block_on(async {
        let (listener, _) = serve::bind(&args.listen).await?;
        let db = bloginfer_db::connect_with(&database)
            .await
            .context("cannot open the database")?;
        let launcher = match args.launcher {
            LauncherKind::Local => Arc::new(LocalLauncher::new(crate::launch::local_launcher(
                models_dir, threads,
            )?)),
            LauncherKind::Kubernetes => kubernetes_launcher(&args).await?,
        };
        // Inference runs elsewhere here: the labeler follows the registry itself.
        let follower = Arc::new(ModelFollower::new(Registry::open(models_dir)?, None));
        let labeler = args.feedback.build(db.clone(), follower, true)?;
        let orchestrator = Orchestrator::build(config, db, launcher, labeler.clone())?
            .behind_proxy(args.behind_proxy);
        let mut services: Vec<Arc<dyn Service>> = vec![Arc::new(orchestrator)];
        services.extend(labeler.map(|l| Arc::new(LabelerService(l)) as Arc<dyn Service>));
        serve::host(
            listener,
            &args.listen,
            ServeConfig::default(),
            services,
            None,
        )
        .await
    })
}
