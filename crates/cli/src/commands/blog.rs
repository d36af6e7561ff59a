//! `bloginfer blog`: the blog API (RealWorld Conduit) as its own service.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use std::time::Duration;

use bloginfer_blog::limit::{Limit, LoginLimits};
use bloginfer_blog::{Blog, BlogConfig};
use clap::Args;

/// Flags of `bloginfer blog`.
#[derive(Args)]
pub struct BlogArgs {
    /// Address to listen on (0.0.0.0 in a container).
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on.
    #[arg(long, env = "LISTEN_PORT", default_value_t = 8081)]
    port: u16,
    /// Write the bound address here once listening (useful with port 0).
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// `sqlite:path/blog.db` or `mysql://user:password@host:3306/database`.
    #[arg(long, env = "DATABASE_URL", default_value = "sqlite:./var/blog.db")]
    database_url: String,
    /// Password for the database user, put into `--database-url` (from a secret).
    #[arg(long, env = "DATABASE_PASSWORD", hide_env_values = true)]
    database_password: Option<String>,
    /// The JWT signing secret (at least 32 bytes; from a Kubernetes Secret).
    #[arg(
        long,
        env = "JWT_SECRET",
        hide_env_values = true,
        conflicts_with = "jwt_secret_file"
    )]
    jwt_secret: Option<String>,
    /// File holding the JWT signing secret, instead of `--jwt-secret`.
    #[arg(long, env = "JWT_SECRET_FILE")]
    jwt_secret_file: Option<PathBuf>,
    /// This address becomes an admin when it registers (the first user always does).
    #[arg(long, env = "ADMIN_EMAIL")]
    admin_email: Option<String>,
    /// Redis for sessions (none: in memory, single process only).
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    /// Prefix of this deployment's Redis keys.
    #[arg(long, env = "REDIS_PREFIX", default_value = "bloginfer:")]
    redis_prefix: String,
    /// Base URL of the inference service for comment sentiment (none: comments stay pending).
    #[arg(long, env = "INFERENCE_URL")]
    inference_url: Option<String>,
    /// How long creating a comment waits for the inference service.
    #[arg(long, env = "INFERENCE_TIMEOUT", default_value = "300ms", value_parser = humantime::parse_duration)]
    inference_timeout: Duration,
    /// Serve signed-out readers' article listings from memory (checked against
    /// a generation number that every write bumps); `false` reads the database
    /// on every request.
    #[arg(long, env = "BLOG_PAGE_CACHE", default_value_t = true, action = clap::ArgAction::Set)]
    page_cache: bool,
    /// Login attempts allowed per client address and minute.
    #[arg(long, env = "LOGIN_ATTEMPTS_PER_IP", default_value_t = 30)]
    login_attempts_per_ip: u32,
    /// Failed logins allowed per account in 15 minutes.
    #[arg(long, env = "LOGIN_FAILURES_PER_ACCOUNT", default_value_t = 10)]
    login_failures_per_account: u32,
    /// Behind a reverse proxy (nginx): take client addresses from X-Forwarded-For.
    #[arg(long, env = "BLOG_BEHIND_PROXY")]
    behind_proxy: bool,
}

impl BlogArgs {
    fn login_limits(&self) -> LoginLimits {
        LoginLimits {
            per_ip: Limit {
                attempts: self.login_attempts_per_ip,
                window: Duration::from_secs(60),
            },
            per_account: Limit {
                attempts: self.login_failures_per_account,
                window: Duration::from_secs(15 * 60),
            },
        }
    }
}

/// The JWT secret: given, from a file, or generated once into `fallback`
/// (mode 0600) for single-process use.
pub fn jwt_secret(value: Option<&str>, file: Option<&Path>, fallback: &Path) -> Result<Vec<u8>> {
    if let Some(secret) = value {
        return Ok(secret.trim().as_bytes().to_vec());
    }
    if let Some(path) = file {
        let secret =
            std::fs::read(path).with_context(|| format!("cannot read {}", path.display()))?;
        return Ok(secret.trim_ascii().to_vec());
    }
    if let Ok(secret) = std::fs::read(fallback) {
        return Ok(secret.trim_ascii().to_vec());
    }
    let bytes: [u8; 32] = rand::random();
    let secret: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    if let Some(dir) = fallback.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    }
    write_private(fallback, secret.as_bytes())?;
    Ok(secret.into_bytes())
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options
        .open(path)
        .with_context(|| format!("cannot create {}", path.display()))?;
    file.write_all(bytes)
        .with_context(|| format!("cannot write {}", path.display()))
}

/// Creates the folder of a SQLite database file, so a fresh `./var` works.
pub fn ensure_sqlite_dir(database_url: &str) {
    if let Some(path) = database_url.strip_prefix("sqlite:") {
        if let Some(dir) = Path::new(path.trim_start_matches("//")).parent() {
            std::fs::create_dir_all(dir).ok();
        }
    }
}

/// Runs `bloginfer blog`.
pub fn run(args: BlogArgs) -> Result<()> {
    let secret = jwt_secret(
        args.jwt_secret.as_deref(),
        args.jwt_secret_file.as_deref(),
        Path::new("./var/jwt-secret"),
    )?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        ensure_sqlite_dir(&args.database_url);
        let database_url = match &args.database_password {
            Some(password) => bloginfer_blog::db::with_password(&args.database_url, password)
                .map_err(anyhow::Error::msg)?,
            None => args.database_url.clone(),
        };
        let blog = Blog::start(BlogConfig {
            database_url,
            jwt_secret: secret,
            admin_email: args.admin_email.clone(),
            redis_url: args.redis_url.clone(),
            redis_prefix: args.redis_prefix.clone(),
            inference_url: args.inference_url.clone(),
            inference_timeout: args.inference_timeout,
            backfill_interval: Duration::from_secs(5),
            page_cache: args.page_cache,
            forward_inference: args.inference_url.is_some(),
            login_limits: args.login_limits(),
            behind_proxy: args.behind_proxy,
        })
        .await?;
        let addr = SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        tracing::info!(%bound, "blog API listening");
        if let Some(path) = &args.addr_file {
            std::fs::write(path, bound.to_string())
                .with_context(|| format!("cannot write {}", path.display()))?;
        }
        let app = blog
            .router()
            .into_make_service_with_connect_info::<SocketAddr>();
        axum::serve(listener, app)
            .with_graceful_shutdown(super::aggregator::shutdown_signal())
            .await
            .context("server failed")?;
        Ok(())
    })
}
