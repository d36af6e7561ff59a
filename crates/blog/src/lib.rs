//! The blog backend: the RealWorld "Conduit" API (users, profiles, articles,
//! comments, tags) on SQLite or MySQL/MariaDB, extended with comment sentiment.
//!
//! - [`admin`]: creating or promoting an admin (the only way to one);
//! - [`auth`]: argon2id passwords (bounded), JWTs carrying a session id, sessions
//!   in the database with a cache in front;
//! - [`names`]: usernames readers can tell apart;
//! - [`redis_link`]: the bounded, breaker-guarded link to Redis;
//! - [`extract`]: `AuthUser`, `MaybeAuthUser` and JSON bodies with API errors;
//! - [`error`]: the RealWorld 422 body, everything else in the chassis's envelope;
//! - [`http`]: one module and router per resource;
//! - [`sentiment`]: the inference client and the back-fill of pending comments;
//! - [`cache`]: cache-aside in Redis for hot reads;
//! - [`limit`]: rate limits of login, registration and credential changes;
//! - [`pages`]: article listings served from memory, generation-checked;
//! - [`metrics`]: the blog's own Prometheus metrics (the host counts requests).
//!
//! [`Blog`] is the service facade: built from a [`BlogConfig`], hosted alone
//! (`bloginfer blog`) or beside inference and the orchestrator (`bloginfer up`)
//! by a [`bloginfer_service::Host`], which adds the probes, `/metrics`, the
//! JSON 404 and request tracing.

#![warn(missing_docs)]

pub mod admin;
pub mod auth;
pub mod cache;
pub mod error;
pub mod extract;
pub mod http;
pub mod limit;
pub mod metrics;
pub mod names;
pub mod pages;
pub mod redis_link;
pub mod sentiment;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use bloginfer_service::tasks::sleep_or_cancelled;
use bloginfer_service::{BoxFuture, Readiness, Service, Supervisor};
use prometheus_client::registry::Registry;
use secrecy::SecretSlice;

use crate::auth::{Auth, JwtKeys, Passwords, Sessions};
use crate::cache::Cache;
use crate::limit::{LoginLimiter, LoginLimits};
use crate::metrics::Metrics;
use crate::pages::PageCache;
use crate::redis_link::RedisLink;
use crate::sentiment::SentimentClient;
pub use bloginfer_db as db;
use bloginfer_db::Db;

/// Settings of the blog service.
#[derive(Clone, Debug)]
pub struct BlogConfig {
    /// Where the database is and how to log in.
    pub database: bloginfer_db::DbOptions,
    /// Signs the session tokens (HS256); at least 32 bytes. Kept secret so
    /// that it never reaches a log or `Debug` output.
    pub jwt_secret: SecretSlice<u8>,
    /// Redis for the session cache, the hot-data cache, the page generation and
    /// the rate limits (`redis://host:6379/`), shared by replicas; `None` keeps
    /// them in memory. Sessions themselves live in the database either way.
    pub redis_url: Option<String>,
    /// Starts every Redis key of this deployment, so deployments can share a Redis.
    pub redis_prefix: String,
    /// Base URL of the inference service (comment sentiment); `None` leaves
    /// every comment pending.
    pub inference_url: Option<String>,
    /// How long comment creation waits for the inference service.
    pub inference_timeout: Duration,
    /// How often pending comments are back-filled.
    pub backfill_interval: Duration,
    /// Serve the public inference endpoints (`/v1/sentiment...`) by forwarding
    /// them to `inference_url` (for a gateway that routes them to the blog).
    pub forward_inference: bool,
    /// Whether anonymous article listings are served from the page cache.
    pub page_cache: bool,
    /// How many login attempts a client address and an account get.
    pub login_limits: LoginLimits,
    /// Behind a reverse proxy: client addresses come from `X-Forwarded-For`.
    pub behind_proxy: bool,
}

/// The state every handler shares: the database, auth, caches and the sentiment client.
pub struct AppState {
    /// The blog's tables (and the other services' in the same database).
    pub db: Db,
    /// Issues and checks session tokens.
    pub auth: Auth,
    /// Hashes and checks passwords, a bounded number at a time.
    pub passwords: Passwords,
    /// Scores new comments, when an inference URL is configured.
    pub sentiment: Option<SentimentClient>,
    /// Comment lists and the tag list in Redis, when there is one.
    pub cache: Cache,
    /// Anonymous article listings kept in memory.
    pub(crate) pages: PageCache<http::Listing>,
    /// Counts login attempts to refuse guessing.
    pub login_limiter: LoginLimiter,
    /// Forwards the public inference endpoints, when enabled.
    pub inference_proxy: Option<http::inference::InferenceProxy>,
    /// See [`BlogConfig::behind_proxy`].
    pub behind_proxy: bool,
    /// Cache outcomes, for the host's `/metrics`.
    pub metrics: Metrics,
    /// The link to Redis, when configured (its state shows in `/readyz`).
    pub redis: Option<Arc<RedisLink>>,
}

/// The blog service, connected and migrated; cheap to clone.
#[derive(Clone)]
pub struct Blog {
    state: Arc<AppState>,
    backfill_interval: Duration,
}

/// Why the service could not start.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The database failed or its URL is wrong.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// A setting is unusable.
    #[error("configuration: {0}")]
    Config(String),
}

impl Blog {
    /// Connects to the database and migrates it, and sets up sessions, caches
    /// and limits (Redis, when configured, is connected on first use, so a
    /// blog starts while Redis is down). Nothing runs in the background until
    /// a host calls [`Service::spawn_background`].
    pub async fn build(config: BlogConfig) -> Result<Self, StartError> {
        let keys = JwtKeys::from_secret(&config.jwt_secret).map_err(StartError::Config)?;
        let db = db::connect_with(&config.database).await?;
        admin::fill_username_skeletons(&db).await?;
        let redis = config
            .redis_url
            .as_deref()
            .map(RedisLink::new)
            .transpose()
            .map_err(|e| StartError::Config(format!("redis: {e}")))?
            .map(Arc::new);
        let prefix = &config.redis_prefix;
        let sessions = match &redis {
            Some(link) => Sessions::redis(db.clone(), link.clone(), format!("{prefix}session:")),
            None => Sessions::local(db.clone()),
        };
        let auth = Auth::new(keys, sessions);
        let sentiment = config
            .inference_url
            .as_deref()
            .map(|url| SentimentClient::new(url, config.inference_timeout))
            .transpose()
            .map_err(StartError::Config)?;
        let (cache, pages, login_limiter) = match redis.clone() {
            Some(link) => (
                Cache::redis(link.clone(), prefix),
                PageCache::shared(
                    config.page_cache,
                    link.clone(),
                    format!("{prefix}pages:generation"),
                ),
                LoginLimiter::redis(config.login_limits, link, format!("{prefix}login:")),
            ),
            None => (
                Cache::disabled(),
                PageCache::local(config.page_cache),
                LoginLimiter::memory(config.login_limits),
            ),
        };
        let inference_proxy = match (&config.inference_url, config.forward_inference) {
            (Some(url), true) => {
                Some(http::inference::InferenceProxy::new(url).map_err(StartError::Config)?)
            }
            _ => None,
        };
        let state = Arc::new(AppState {
            db,
            auth,
            passwords: Passwords::default(),
            sentiment,
            cache,
            pages,
            login_limiter,
            inference_proxy,
            behind_proxy: config.behind_proxy,
            metrics: Metrics::default(),
            redis,
        });
        Ok(Self {
            state,
            backfill_interval: config.backfill_interval,
        })
    }
}

impl Service for Blog {
    fn name(&self) -> &'static str {
        "blog"
    }

    fn routes(&self) -> Router {
        http::routes(self.state.clone())
    }

    fn register_metrics(&self, registry: &mut Registry) {
        self.state.metrics.register(registry);
    }

    fn ready(&self) -> BoxFuture<'_, Readiness> {
        Box::pin(async move {
            match sqlx::query("SELECT 1").execute(self.state.db.read()).await {
                // Redis is never needed for an answer: a dead one is shown, not fatal.
                Ok(_) => match &self.state.redis {
                    Some(link) if link.is_open() => {
                        Readiness::ready().with("redis", "unreachable; serving from the database")
                    }
                    Some(_) => Readiness::ready().with("redis", "ok"),
                    None => Readiness::ready(),
                },
                Err(e) => {
                    // The reason is public (`/readyz`); the error may name hosts.
                    tracing::warn!("database not reachable: {e}");
                    Readiness::not_ready("the database does not answer")
                }
            }
        })
    }

    fn spawn_background(&self, tasks: &Supervisor) {
        let Some(client) = self.state.sentiment.clone() else {
            return;
        };
        let (state, every) = (self.state.clone(), self.backfill_interval);
        tasks.spawn("blog", "backfill", false, move |token| {
            let (state, client) = (state.clone(), client.clone());
            async move {
                loop {
                    tokio::select! {
                        () = token.cancelled() => return,
                        () = sentiment::backfill_and_log(&state, &client) => {}
                    }
                    if sleep_or_cancelled(&token, every).await {
                        return;
                    }
                }
            }
        });
    }
}
