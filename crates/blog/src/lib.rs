//! The blog backend: the RealWorld "Conduit" API (users, profiles, articles,
//! comments, tags) on SQLite or MySQL/MariaDB, extended with comment sentiment.
//!
//! - [`admin`]: the operator's admin account in single-process installs;
//! - [`auth`]: argon2id passwords, JWTs carrying a session id, session stores;
//! - [`extract`]: `AuthUser`, `MaybeAuthUser` and JSON bodies with API errors;
//! - [`error`]: the one error type and its JSON shapes;
//! - [`http`]: one module and router per resource;
//! - [`sentiment`]: the inference client and the back-fill of pending comments;
//! - [`cache`]: cache-aside in Redis for hot reads;
//! - [`limit`]: the login rate limit per client address and per account;
//! - [`pages`]: article listings served from memory, generation-checked;
//! - [`metrics`]: Prometheus metrics.

#![warn(missing_docs)]

pub mod admin;
pub mod auth;
pub mod cache;
pub mod error;
pub mod extract;
pub mod http;
pub mod limit;
pub mod metrics;
pub mod pages;
pub mod sentiment;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Router;

use crate::auth::{Auth, MemorySessions, Sessions};
use crate::cache::Cache;
use crate::limit::{LoginLimiter, LoginLimits};
use crate::metrics::Metrics;
use crate::pages::PageCache;
use crate::sentiment::SentimentClient;
pub use bloginfer_db as db;
use bloginfer_db::Db;

/// Settings of the blog service.
#[derive(Clone)]
pub struct BlogConfig {
    /// `sqlite:path` or `mysql://user:password@host/database`.
    pub database_url: String,
    /// JWT signing secret (at least 32 bytes).
    pub jwt_secret: Vec<u8>,
    /// This address becomes an admin when it registers (besides the first user).
    pub admin_email: Option<String>,
    /// Redis for sessions (`redis://host:6379/`); `None` keeps them in memory.
    pub redis_url: Option<String>,
    /// Prefix of this deployment's Redis keys.
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
    /// Limits of login attempts.
    pub login_limits: LoginLimits,
    /// Behind a reverse proxy: client addresses come from `X-Forwarded-For`.
    pub behind_proxy: bool,
}

/// What handlers share.
pub struct AppState {
    /// The database.
    pub db: Db,
    /// Tokens and sessions.
    pub auth: Auth,
    /// See [`BlogConfig::admin_email`].
    pub admin_email: Option<String>,
    /// The inference client, when configured.
    pub sentiment: Option<SentimentClient>,
    /// The hot-data cache.
    pub cache: Cache,
    /// The page cache of article listings.
    pub(crate) pages: PageCache<http::Listing>,
    /// The login rate limit.
    pub login_limiter: LoginLimiter,
    /// Forwarding of the public inference endpoints, when enabled.
    pub inference_proxy: Option<http::inference::InferenceProxy>,
    /// See [`BlogConfig::behind_proxy`].
    pub behind_proxy: bool,
    /// Prometheus metrics.
    pub metrics: Metrics,
}

/// The blog service, connected and migrated.
#[derive(Clone)]
pub struct Blog {
    state: Arc<AppState>,
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
    /// Connects, migrates and sets up sessions in memory.
    pub async fn start(config: BlogConfig) -> Result<Self, StartError> {
        if config.jwt_secret.len() < 32 {
            return Err(StartError::Config(
                "the JWT secret must be at least 32 bytes".into(),
            ));
        }
        let db = db::connect(&config.database_url).await?;
        let sessions = match &config.redis_url {
            Some(url) => Sessions::redis(url, &format!("{}session:", config.redis_prefix))
                .await
                .map_err(|e| StartError::Config(format!("redis: {e}")))?,
            None => Sessions::Memory(MemorySessions::default()),
        };
        let auth = Auth::new(&config.jwt_secret, sessions);
        let sentiment = config
            .inference_url
            .as_deref()
            .map(|url| SentimentClient::new(url, config.inference_timeout))
            .transpose()
            .map_err(StartError::Config)?;
        let cache = match &config.redis_url {
            Some(url) => Cache::redis(url, &config.redis_prefix)
                .await
                .map_err(|e| StartError::Config(format!("redis: {e}")))?,
            None => Cache::disabled(),
        };
        let (pages, login_limiter) = match cache.connection() {
            Some(redis) => (
                PageCache::shared(
                    config.page_cache,
                    redis.clone(),
                    format!("{}pages:generation", config.redis_prefix),
                ),
                LoginLimiter::redis(
                    config.login_limits,
                    redis,
                    format!("{}login:", config.redis_prefix),
                ),
            ),
            None => (
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
            admin_email: config.admin_email.map(|e| e.trim().to_lowercase()),
            sentiment: sentiment.clone(),
            cache,
            pages,
            login_limiter,
            inference_proxy,
            behind_proxy: config.behind_proxy,
            metrics: Metrics::new(),
        });
        if let Some(client) = sentiment {
            tokio::spawn(sentiment::backfill_loop(
                state.clone(),
                client,
                config.backfill_interval,
            ));
        }
        Ok(Self { state })
    }

    /// The API's routes, without a fallback or `/metrics`.
    pub fn routes(&self) -> Router {
        http::routes(self.state.clone(), false)
    }

    /// The standalone service: the routes, `/metrics`, and a JSON 404 for anything else.
    pub fn router(&self) -> Router {
        http::routes(self.state.clone(), true).fallback(http::not_found)
    }
}

/// ISO 8601 UTC with milliseconds (`2026-11-28T10:00:00.000Z`) of a millisecond timestamp.
pub fn iso_millis(millis: i64) -> String {
    let at = UNIX_EPOCH + std::time::Duration::from_millis(millis.max(0) as u64);
    humantime::format_rfc3339_millis(at).to_string()
}

/// Milliseconds since the Unix epoch (timestamps are stored so on both backends).
pub fn now_millis() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as i64)
}
