//! `bloginfer up`: the all-in-one process on one listener. It serves the blog
//! API (`/api/...`, SQLite under the data dir), inference (`/v1/sentiment...`),
//! the orchestrator with the local launcher (`/v1/trainings...`,
//! `/v1/models...`, `/v1/feedback...`) and the labeler of the feedback loop,
//! one `/metrics` page for all of them, and the built web app.
//! With no model yet it first trains one by a local federated run. It keeps
//! a generated admin login in `<data dir>/admin-login.txt` (mode 0600).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use std::sync::Arc;

use anyhow::{Context, Result};
use axum::http::header;
use axum::response::IntoResponse;
use bloginfer_blog::admin::AdminLogin;
use bloginfer_blog::{Blog, BlogConfig};
use bloginfer_infer::{BatchConfig, InferConfig, InferService};
use bloginfer_model::Registry;
use bloginfer_orchestrator::http::{AdminAuth, ApiState};
use bloginfer_orchestrator::Orchestrator;
use clap::Args;
use tower_http::services::{ServeDir, ServeFile};

/// Flags of `bloginfer up`.
#[derive(Args)]
pub struct UpArgs {
    /// Address of the one listener.
    #[arg(long, env = "BLOGINFER_LISTEN", default_value = "127.0.0.1:8080")]
    listen: SocketAddr,
    /// Where models, runs and (later) the database live.
    #[arg(long, env = "BLOGINFER_DATA_DIR", default_value = "./var")]
    data_dir: PathBuf,
    /// The built web app (`npm run build` in web/).
    #[arg(long, env = "BLOGINFER_WEB_DIR", default_value = "web/dist")]
    web_dir: PathBuf,
    /// Write the bound address here once listening (useful with port 0).
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Workers of the first federated run, when there is no model yet.
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// Rounds of that run.
    #[arg(long, default_value_t = 10)]
    rounds: u32,
    #[command(flatten)]
    training: super::orchestrator::TrainingArgs,
    #[command(flatten)]
    model: super::args::ModelArgs,
    #[command(flatten)]
    feedback: super::labeler::LabelerArgs,
}

const ADMIN_LOGIN_FILE: &str = "admin-login.txt";

/// The admin login kept in `data_dir`, made up the first time.
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
            return Ok((
                AdminLogin {
                    email,
                    username,
                    password,
                },
                path,
            ));
        }
        anyhow::bail!(
            "{} has no `email:` and `password:` lines; fix it or delete it to get a new login",
            path.display()
        );
    }
    let bytes: [u8; 12] = rand::random();
    let login = AdminLogin {
        email: "admin@bloginfer.local".into(),
        username: "admin".into(),
        password: bytes.iter().map(|b| format!("{b:02x}")).collect(),
    };
    let text = format!(
        "email: {}\nusername: {}\npassword: {}\n",
        login.email, login.username, login.password
    );
    super::blog::write_private(&path, text.as_bytes())?;
    Ok((login, path))
}

/// One OpenMetrics page from several (each ends with its own `# EOF`).
fn merge_metrics(pages: &[String]) -> String {
    let mut out = String::new();
    for page in pages {
        out.push_str(page.trim_end().trim_end_matches("# EOF").trim_end());
        out.push('\n');
    }
    out.push_str("# EOF\n");
    out
}

/// Trains the first model with `bloginfer fl run` (same binary, own progress display).
fn train_first_model(models: &Path, args: &UpArgs, threads: usize) -> Result<()> {
    eprintln!(
        "no model yet: training the first one by a local federated run ({} workers, {} rounds)",
        args.workers, args.rounds
    );
    let exe = std::env::current_exe().context("cannot find the bloginfer binary")?;
    let status = std::process::Command::new(exe)
        .arg("--models-dir")
        .arg(models)
        .args(["--threads", &threads.to_string(), "fl", "run"])
        .args([
            "--workers",
            &args.workers.to_string(),
            "--rounds",
            &args.rounds.to_string(),
        ])
        .args(args.model.to_flags())
        .args(args.training.train_limit.map(|n| format!("--limit={n}")))
        .args(
            args.training
                .train_data
                .iter()
                .flat_map(|p| [std::ffi::OsString::from("--data"), p.into()]),
        )
        .args(&args.training.aggregator_flags)
        .arg("--work-dir")
        .arg(args.data_dir.join("fl").join("first-model"))
        .stdout(std::process::Stdio::null())
        .status()
        .context("cannot start the federated run")?;
    anyhow::ensure!(
        status.success(),
        "the first federated run failed ({status})"
    );
    Ok(())
}

/// Runs `bloginfer up`.
pub fn run(threads: usize, args: UpArgs) -> Result<()> {
    let models = args.data_dir.join("models");
    let registry = Registry::open(&models)?;
    if registry.current()?.is_none() {
        train_first_model(&models, &args, threads)?;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let config = InferConfig {
        models_dir: models.clone(),
        pinned_version: None,
        batching: BatchConfig {
            max_batch: 64,
            max_wait: Duration::from_millis(1),
            queue_capacity: 1024,
            compute_workers: cores,
        },
        reload_interval: Duration::from_secs(1),
        max_body_bytes: 1 << 20,
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.clamp(1, 4))
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let inference = InferService::start(config)?;
        inference.reload_now().await;
        let _reloader = inference.spawn_reloader();
        // Bound first: the blog reaches inference, and the orchestrator the
        // blog, at this very address (which port 0 only tells once bound).
        let listener = tokio::net::TcpListener::bind(args.listen)
            .await
            .with_context(|| format!("cannot listen on {}", args.listen))?;
        let bound = listener.local_addr()?;
        let secret = super::blog::jwt_secret(None, None, &args.data_dir.join("jwt-secret"))?;
        let database = args.data_dir.join("blog.db");
        let blog = Blog::start(BlogConfig {
            database_url: format!("sqlite://{}", database.display()),
            jwt_secret: secret,
            admin_email: None,
            redis_url: None,
            redis_prefix: String::new(),
            // Inference is served by this same process, on this same listener.
            inference_url: Some(format!("http://{bound}")),
            inference_timeout: Duration::from_millis(300),
            backfill_interval: Duration::from_secs(5),
            page_cache: true,
            // Inference is on this same listener already.
            forward_inference: false,
            login_limits: Default::default(),
            behind_proxy: false,
        })
        .await?;
        let (login, login_file) = admin_login(&args.data_dir)?;
        blog.ensure_admin(&login).await?;
        let runs_dir = args.data_dir.join("runs");
        let config = args.training.config(
            &models,
            &runs_dir,
            super::orchestrator::run_defaults(args.workers as u32, args.rounds),
            (args.model.config()?, args.model.min_count),
            threads,
        )?;
        let launcher = super::orchestrator::local_launcher(threads)?;
        let labeler = args.feedback.build(blog.db(), &models)?;
        let orchestrator =
            Orchestrator::start(config, blog.db(), launcher, labeler.clone()).await?;
        let _labelling = labeler.map(|l| l.spawn());
        // Admin sessions are the blog's, on this same listener.
        let orchestrator_api = Arc::new(ApiState {
            orchestrator: orchestrator.clone(),
            auth: AdminAuth::new(None, Some(format!("http://{bound}"))),
        });
        let metrics = {
            let (blog, inference, orchestrator) =
                (blog.clone(), inference.clone(), orchestrator.clone());
            axum::routing::get(move || async move {
                let page = merge_metrics(&[
                    blog.render_metrics(),
                    inference.render_metrics(),
                    orchestrator.render_metrics(),
                ]);
                (
                    [(
                        header::CONTENT_TYPE,
                        "application/openmetrics-text; version=1.0.0; charset=utf-8",
                    )],
                    page,
                )
                    .into_response()
            })
        };
        // Both have /healthz and /readyz; the blog's answer for the database wins.
        let not_found = axum::routing::any(bloginfer_blog::http::not_found);
        let apis = inference
            .routes_without_probes()
            .merge(blog.routes())
            .merge(bloginfer_orchestrator::http::routes(orchestrator_api, false))
            .route("/metrics", metrics)
            // Unknown API paths are JSON 404s, never the web app.
            .route("/api/{*rest}", not_found.clone())
            .route("/v1/{*rest}", not_found);
        let index = args.web_dir.join("index.html");
        let app = if index.is_file() {
            // Unknown paths get the app's index.html: the Vue router handles them.
            let web = ServeDir::new(&args.web_dir).fallback(ServeFile::new(&index));
            apis.fallback_service(web)
        } else {
            eprintln!(
                "note: no web app at {} (build it with `npm ci && npm run build` in web/); serving the APIs only",
                args.web_dir.display()
            );
            apis.fallback(bloginfer_blog::http::not_found)
        };
        if let Some(path) = &args.addr_file {
            std::fs::write(path, bound.to_string())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        eprintln!("bloginfer is up at http://{bound}");
        eprintln!(
            "admin login: {} / {}  (kept in {})",
            login.email,
            login.password,
            login_file.display()
        );
        axum::serve(listener, app.into_make_service_with_connect_info::<SocketAddr>())
            .with_graceful_shutdown(super::aggregator::shutdown_signal())
            .await
            .context("server failed")?;
        Ok(())
    })
}
