//! `bloginfer blog`: the blog API (RealWorld Conduit) as its own service.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bloginfer_blog::limit::{Limit, LoginLimits};
use bloginfer_blog::{Blog, BlogConfig};
use bloginfer_service::ServeConfig;
use clap::Args;
use secrecy::SecretString;

use crate::args::{duration, listen_default, secret, secret_bytes, DatabaseArgs, ListenArgs};
use crate::serve;

/// Flags of `bloginfer blog`.
#[derive(Args)]
#[command(mut_arg("listen", |a| listen_default(a, "127.0.0.1:8081")))]
pub struct BlogArgs {
    #[command(flatten)]
    listen: ListenArgs,
    #[command(flatten)]
    database: DatabaseArgs,
    /// Signs session tokens; at least 32 bytes (from a Kubernetes Secret).
    #[arg(long, env = "JWT_SECRET", hide_env_values = true, value_parser = secret, conflicts_with = "jwt_secret_file")]
    jwt_secret: Option<SecretString>,
    /// File holding the JWT signing secret, instead of `--jwt-secret`.
    #[arg(long, env = "JWT_SECRET_FILE")]
    jwt_secret_file: Option<PathBuf>,
    /// Redis for sessions and hot data, shared by replicas (none: in memory, one process only).
    #[arg(long, env = "REDIS_URL")]
    redis_url: Option<String>,
    /// Prefix of this deployment's Redis keys.
    #[arg(long, env = "REDIS_PREFIX", default_value = "bloginfer:")]
    redis_prefix: String,
    /// Base URL of the inference service for comment sentiment (none: comments stay pending).
    #[arg(long, env = "INFERENCE_URL")]
    inference_url: Option<String>,
    /// How long creating a comment waits for the inference service.
    #[arg(long, env = "INFERENCE_TIMEOUT", default_value = "300ms", value_parser = duration)]
    inference_timeout: Duration,
    /// Serve signed-out readers' article listings from memory (checked against
    /// a generation number that every write bumps); `false` reads the database
    /// on every request.
    #[arg(long, env = "BLOG_PAGE_CACHE", default_value_t = true, action = clap::ArgAction::Set)]
    page_cache: bool,
    /// Login attempts allowed per client address and minute.
    #[arg(long, env = "LOGIN_ATTEMPTS_PER_IP", default_value_t = 30)]
    login_attempts_per_ip: u32,
    /// Failed logins allowed per account and client address in 15 minutes.
    #[arg(long, env = "LOGIN_FAILURES_PER_ACCOUNT", default_value_t = 10)]
    login_failures_per_account: u32,
    /// Registrations and password or e-mail changes allowed per client address in 10 minutes.
    #[arg(long, env = "ACCOUNT_WRITES_PER_IP", default_value_t = 20)]
    account_writes_per_ip: u32,
    /// Behind a reverse proxy (nginx): take client addresses from X-Forwarded-For.
    #[arg(long, env = "BLOG_BEHIND_PROXY")]
    behind_proxy: bool,
}

impl BlogArgs {
    fn config(&self) -> Result<BlogConfig> {
        Ok(BlogConfig {
            database: self.database.options()?,
            jwt_secret: secret_bytes(
                self.jwt_secret.as_ref(),
                self.jwt_secret_file.as_deref(),
                Path::new("./var/jwt-secret"),
            )?,
            redis_url: self.redis_url.clone(),
            redis_prefix: self.redis_prefix.clone(),
            inference_url: self.inference_url.clone(),
            inference_timeout: self.inference_timeout,
            backfill_interval: Duration::from_secs(5),
            page_cache: self.page_cache,
            forward_inference: self.inference_url.is_some(),
            login_limits: LoginLimits {
                per_ip: Limit {
                    attempts: self.login_attempts_per_ip,
                    window: Duration::from_secs(60),
                },
                per_account: Limit {
                    attempts: self.login_failures_per_account,
                    window: Duration::from_secs(15 * 60),
                },
                per_ip_writes: Limit {
                    attempts: self.account_writes_per_ip,
                    window: Duration::from_secs(10 * 60),
                },
            },
            behind_proxy: self.behind_proxy,
        })
    }
}

/// Runs `bloginfer blog`.
pub fn run(args: BlogArgs) -> Result<()> {
    let config = args.config()?;
    serve::runtime(None)?.block_on(async {
        let (listener, _) = serve::bind(&args.listen).await?;
        let blog = Blog::build(config).await?;
        serve::host(
            listener,
            &args.listen,
            ServeConfig::default(),
            vec![Arc::new(blog)],
            None,
        )
        .await
    })
}
