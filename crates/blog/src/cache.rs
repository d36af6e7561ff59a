//! The hot-data cache: cache-aside in Redis for an article's comment list and
//! the tag list, invalidated on every write that touches them. The database
//! stays the only copy: when Redis is missing or unreachable every read goes
//! to the database (logged and counted).

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::metrics::Metrics;
use crate::redis_link::{RedisDown, RedisLink};

/// How long an entry may live even if no write invalidates it (bounds the
/// staleness of author names and images shown with comments).
const TTL: Duration = Duration::from_secs(60);

/// The cache; `None` when no Redis is configured.
pub struct Cache {
    redis: Option<(Arc<RedisLink>, String)>,
}

/// Key of an article's comment list.
pub fn comments_key(article: i64) -> String {
    format!("comments:{article}")
}

/// Key of the tag list.
pub const TAGS_KEY: &str = "tags";

impl Cache {
    /// No cache: every read goes to the database (no Redis configured).
    pub fn disabled() -> Self {
        Self { redis: None }
    }

    /// A cache in Redis (through `link`) under keys starting with `prefix`.
    pub fn redis(link: Arc<RedisLink>, prefix: &str) -> Self {
        Self {
            redis: Some((link, format!("{prefix}cache:"))),
        }
    }

    /// The cached value of `key`, if any (errors count as misses).
    pub async fn get<T: DeserializeOwned>(&self, key: &str, metrics: &Metrics) -> Option<T> {
        let (link, prefix) = self.redis.as_ref()?;
        let raw = link
            .query::<Option<String>>(redis::cmd("GET").arg(format!("{prefix}{key}")))
            .await;
        match raw {
            Ok(Some(json)) => match serde_json::from_str(&json) {
                Ok(value) => {
                    metrics.cache("hit");
                    Some(value)
                }
                Err(_) => {
                    metrics.cache("miss");
                    None
                }
            },
            Ok(None) => {
                metrics.cache("miss");
                None
            }
            Err(e) => {
                unreachable(&e, "reading the database");
                metrics.cache("error");
                None
            }
        }
    }

    /// Stores `value` under `key` (best effort).
    pub async fn put<T: Serialize>(&self, key: &str, value: &T, metrics: &Metrics) {
        let Some((link, prefix)) = self.redis.as_ref() else {
            return;
        };
        let Ok(json) = serde_json::to_string(value) else {
            return;
        };
        let result = link
            .query::<()>(
                redis::cmd("SET")
                    .arg(format!("{prefix}{key}"))
                    .arg(json)
                    .arg("EX")
                    .arg(TTL.as_secs()),
            )
            .await;
        if let Err(e) = result {
            unreachable(&e, "not caching");
            metrics.cache("error");
        }
    }

    /// Drops `key` after a write (best effort: the entry's TTL bounds the damage).
    pub async fn invalidate(&self, key: &str, metrics: &Metrics) {
        let Some((link, prefix)) = self.redis.as_ref() else {
            return;
        };
        let result = link
            .query::<()>(redis::cmd("DEL").arg(format!("{prefix}{key}")))
            .await;
        if let Err(e) = result {
            tracing::warn!("cache unreachable, could not invalidate {key}: {e}");
            metrics.cache("error");
        }
    }
}

/// Logs a cache failure: a real one as a warning, a skip by the open breaker
/// (which follows real failures already logged) at debug.
fn unreachable(e: &RedisDown, fallback: &str) {
    match e {
        RedisDown::Open => tracing::debug!("cache skipped, {fallback}: {e}"),
        _ => tracing::warn!("cache unreachable, {fallback}: {e}"),
    }
}
