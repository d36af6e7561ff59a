//! `bloginfer up`: the whole system in one process on one listener: the blog
//! API (`/api/...`, SQLite under the data dir), inference (`/v1/sentiment...`),
//! the orchestrator with the local launcher (`/v1/trainings...`,
//! `/v1/models...`, `/v1/feedback...`), the labeler, one `/metrics` page and
//! the built web app. With no model yet, it trains the first one as an
//! ordinary orchestrator run (so the dashboard lists it) while the site is
//! already up. It keeps a generated admin login in
//! `<data dir>/admin-login.txt` (mode 0600).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use axum::routing::any;
use axum::Router;
use bloginfer_blog::admin::AdminLogin;
use bloginfer_blog::{Blog, BlogConfig};
use bloginfer_db::DbOptions;
use bloginfer_fl::launcher::LaunchProgress;
use bloginfer_fl::protocol::RunStatus;
use bloginfer_fl::spec::RunDir;
use bloginfer_infer::{BatchConfig, InferConfig, Inference};
use bloginfer_labeler::LabelerService;
use bloginfer_orchestrator::http::AdminAuthConfig;
use bloginfer_orchestrator::launcher::local::LocalLauncher;
use bloginfer_orchestrator::store::Status;
use bloginfer_orchestrator::Orchestrator;
use bloginfer_service::{CancellationToken, Host, ServeConfig, Service};
use clap::Args;
use secrecy::{ExposeSecret, SecretString};
use tower_http::services::{ServeDir, ServeFile};

use crate::args::labeler::LabelerArgs;
use crate::args::training::{Placement, TrainingArgs};
use crate::args::{listen_default, secret_bytes, ListenArgs};
use crate::progress::RoundBar;
use crate::serve;

/// Flags of `bloginfer up`.
#[derive(Args)]
#[command(mut_arg("listen", |a| listen_default(a, "127.0.0.1:8080")))]
pub struct UpArgs {
    #[command(flatten)]
    listen: ListenArgs,
    /// Where models, runs and the database live.
    #[arg(long, env = "BLOGINFER_DATA_DIR", default_value = "./var")]
    data_dir: PathBuf,
    /// The built web app (`npm run build` in web/).
    #[arg(long, env = "BLOGINFER_WEB_DIR", default_value = "web/dist")]
    web_dir: PathBuf,
    /// Workers of a run (and of the first model's run) unless a request says otherwise.
    #[arg(long, default_value_t = 2)]
    workers: u32,
    /// Rounds of a run (and of the first model's run) unless a request says otherwise.
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    #[command(flatten)]
    training: TrainingArgs,
    #[command(flatten)]
    feedback: LabelerArgs,
}

const ADMIN_LOGIN_FILE: &str = "admin-login.txt";

/// The admin login kept in `data_dir`, made up when the file is missing (and
/// then the account's password is reset to it, so a regenerated file works and
/// the old password stops working).
fn admin_login(data_dir: &Path) -> Result<(AdminLogin, PathBuf)> {
    let path = data_dir.join(ADMIN_LOGIN_FILE);
    if let Ok(text) = std::fs::read_to_string(&path) {
        let field = |name: &str| {
            text.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_string())
                .filter(|v| !v.is_empty())
        };
        if let (Some(email), Some(password)) = (field("email:"), field("password:")) {
            let username = field("username:").unwrap_or_else(|| "admin".into());
            let login = AdminLogin {
                email,
                username,
                password: Some(password.into()),
                // The operator may have changed it since; the file is a first login.
                reset_password: false,
            };
            return Ok((login, path));
        }
        anyhow::bail!(
            "{} has no `email:` and `password:` lines; fix it or delete it to get a new login",
            path.display()
        );
    }
    let password = SecretString::from(bloginfer_common::random_hex(12));
    let text = format!(
        "email: admin@bloginfer.local\nusername: admin\npassword: {}\n",
        password.expose_secret()
    );
    let login = AdminLogin {
        email: "admin@bloginfer.local".into(),
        username: "admin".into(),
        password: Some(password),
        reset_password: true,
    };
    bloginfer_common::write_private(&path, text.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))?;
    Ok((login, path))
}

/// The web app for every path no API serves; unknown API paths stay JSON 404s.
fn web_app(dir: &Path) -> Router {
    let not_found = any(bloginfer_service::error::not_found);
    let index = dir.join("index.html");
    if !index.is_file() {
        eprintln!(
            "note: no web app at {} (build it with `npm ci && npm run build` in web/); serving the APIs only",
            dir.display()
        );
        return Router::new().fallback(bloginfer_service::error::not_found);
    }
    Router::new()
        .route("/api/{*rest}", not_found.clone())
        .route("/v1/{*rest}", not_found)
        // The Vue router handles the app's own paths.
        .fallback_service(ServeDir::new(dir).fallback(ServeFile::new(index)))
}

/// Trains the first model through the orchestrator, showing its rounds, and
/// waits until it is promoted.
async fn first_model(orchestrator: &Orchestrator, runs_dir: &Path, args: &UpArgs) -> Result<()> {
    let id = orchestrator
        .ensure_first_model(args.workers, args.rounds)
        .await
        .context("cannot start the first model's run")?;
    eprintln!(
        "no model yet: training the first one by a local federated run ({} workers, {} rounds); run {id}",
        args.workers, args.rounds
    );
    let status_file = RunDir::new(runs_dir.join(&id)).status();
    let mut bar = RoundBar::new(args.rounds);
    let started = Instant::now();
    loop {
        tokio::time::sleep(Duration::from_millis(500)).await;
        if let Some(status) = std::fs::read(&status_file)
            .ok()
            .and_then(|raw| serde_json::from_slice::<RunStatus>(&raw).ok())
        {
            bar.status(&status, started.elapsed());
        }
        let Some(run) = orchestrator.run(&id).await? else {
            anyhow::bail!("the first model's run {id} disappeared");
        };
        match run.status {
            Status::Succeeded if run.promoted => {
                bar.finish();
                eprintln!(
                    "first model {} ready: {}",
                    run.candidate_version.unwrap_or_default(),
                    run.decision.unwrap_or_default()
                );
                return Ok(());
            }
            Status::Succeeded | Status::Failed | Status::Cancelled => {
                bar.finish();
                anyhow::bail!(
                    "the first model's run {id} ended {}: {}",
                    run.phase,
                    run.error.or(run.decision).unwrap_or_default()
                );
            }
            Status::Pending | Status::Running => {}
        }
    }
}

/// Runs `bloginfer up`.
pub fn run(threads: usize, args: UpArgs) -> Result<()> {
    let models = args.data_dir.join("models");
    let runs_dir = args.data_dir.join("runs");
    std::fs::create_dir_all(&args.data_dir)
        .with_context(|| format!("cannot create {}", args.data_dir.display()))?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let inference_config = InferConfig {
        models_dir: models.clone(),
        pinned_version: None,
        batching: BatchConfig {
            max_batch: 64,
            max_wait: Duration::from_millis(1),
            queue_capacity: 1024,
            queue_bytes: BatchConfig::DEFAULT_QUEUE_BYTES,
            compute_workers: cores,
        },
        reload_interval: Duration::from_secs(1),
        max_body_bytes: 1 << 20,
    };
    let jwt_secret = secret_bytes(None, None, &args.data_dir.join("jwt-secret"))?;
    let database = DbOptions::new(&format!(
        "sqlite://{}",
        args.data_dir.join("blog.db").display()
    ))
    .map_err(anyhow::Error::msg)?;
    let (login, login_file) = admin_login(&args.data_dir)?;
    serve::runtime(Some(cores.clamp(1, 4)))?.block_on(async {
        // Bound first: the blog reaches inference, and the orchestrator the
        // blog, at this very address (which port 0 only tells once bound).
        let (listener, bound) = serve::bind(&args.listen).await?;
        let here = format!("http://{bound}");
        let inference = Inference::build(inference_config)?;
        inference.reload_now().await;
        let has_model = inference.follower().get().is_some();
        let blog = Blog::build(BlogConfig {
            database,
            jwt_secret,
            redis_url: None,
            redis_prefix: String::new(),
            inference_url: Some(here.clone()),
            inference_timeout: Duration::from_millis(300),
            backfill_interval: Duration::from_secs(5),
            page_cache: true,
            // Inference is on this same listener already.
            forward_inference: false,
            login_limits: Default::default(),
            behind_proxy: false,
        })
        .await?;
        blog.ensure_admin(&login).await?;
        let config = args.training.config(Placement {
            models_dir: &models,
            runs_dir: &runs_dir,
            workers: args.workers,
            rounds: args.rounds,
            threads,
            // Admin sessions are the blog's, on this same listener.
            admin: AdminAuthConfig {
                token: None,
                blog_url: Some(here.clone()),
            },
        })?;
        // The labeler shares inference's model, which inference keeps current.
        let labeler = args
            .feedback
            .build(blog.db(), inference.follower(), false)?;
        let launcher = Arc::new(LocalLauncher::new(crate::launch::local_launcher(
            &models, threads,
        )?));
        let orchestrator = Orchestrator::build(config, blog.db(), launcher, labeler.clone())?;
        let mut host = Host::new(ServeConfig::default(), CancellationToken::new());
        let mut services: Vec<Arc<dyn Service>> = vec![
            Arc::new(inference),
            Arc::new(blog),
            Arc::new(orchestrator.clone()),
        ];
        services.extend(labeler.map(|l| Arc::new(LabelerService(l)) as Arc<dyn Service>));
        for service in services {
            host.mount(service);
        }
        announce(bound, &login, &login_file);
        let alongside = async {
            if has_model {
                Ok(())
            } else {
                first_model(&orchestrator, &runs_dir, &args).await
            }
        };
        serve::serve_while(
            listener,
            &args.listen,
            host,
            Some(web_app(&args.web_dir)),
            alongside,
        )
        .await
    })
}

fn announce(bound: SocketAddr, login: &AdminLogin, login_file: &Path) {
    eprintln!("bloginfer is up at http://{bound}");
    eprintln!(
        "admin login: {} / {}  (kept in {})",
        login.email,
        login
            .password
            .as_ref()
            .map_or("(see the file)", ExposeSecret::expose_secret),
        login_file.display()
    );
}
