//! The hot-data cache: cache-aside in Redis for an article's comment list and
//! the tag list, invalidated on every write that touches them. The database
//! stays the only copy: when Redis is missing or unreachable every read goes
//! to the database (logged and counted).

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::metrics::Metrics;

/// How long an entry may live even if no write invalidates it (bounds the
/// staleness of author names and images shown with comments).
const TTL: Duration = Duration::from_secs(60);

/// The cache; `None` when no Redis is configured.
pub struct Cache {
    redis: Option<(redis::aio::ConnectionManager, String)>,
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

    /// A cache in Redis at `url` under keys starting with `prefix`.
    pub async fn redis(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let config = redis::aio::ConnectionManagerConfig::new()
            .set_connection_timeout(Duration::from_millis(500))
            .set_response_timeout(Duration::from_millis(500))
            .set_number_of_retries(1);
        let manager = redis::aio::ConnectionManager::new_with_config(client, config).await?;
        Ok(Self {
            redis: Some((manager, format!("{prefix}cache:"))),
        })
    }

    /// The Redis connection, when there is one.
    pub fn connection(&self) -> Option<redis::aio::ConnectionManager> {
        self.redis.as_ref().map(|(manager, _)| manager.clone())
    }

    /// The cached value of `key`, if any (errors count as misses).
    pub async fn get<T: DeserializeOwned>(&self, key: &str, metrics: &Metrics) -> Option<T> {
        let (manager, prefix) = self.redis.as_ref()?;
        let mut conn = manager.clone();
        let raw: Result<Option<String>, _> = redis::cmd("GET")
            .arg(format!("{prefix}{key}"))
            .query_async(&mut conn)
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
                tracing::warn!("cache unreachable, reading the database: {e}");
                metrics.cache("error");
                None
            }
        }
    }

    /// Stores `value` under `key` (best effort).
    pub async fn put<T: Serialize>(&self, key: &str, value: &T, metrics: &Metrics) {
        let Some((manager, prefix)) = self.redis.as_ref() else {
            return;
        };
        let Ok(json) = serde_json::to_string(value) else {
            return;
        };
        let mut conn = manager.clone();
        let result: Result<(), _> = redis::cmd("SET")
            .arg(format!("{prefix}{key}"))
            .arg(json)
            .arg("EX")
            .arg(TTL.as_secs())
            .query_async(&mut conn)
            .await;
        if let Err(e) = result {
            tracing::warn!("cache unreachable, not caching: {e}");
            metrics.cache("error");
        }
    }

    /// Drops `key` after a write (best effort: the entry's TTL bounds the damage).
    pub async fn invalidate(&self, key: &str, metrics: &Metrics) {
        let Some((manager, prefix)) = self.redis.as_ref() else {
            return;
        };
        let mut conn = manager.clone();
        let result: Result<(), _> = redis::cmd("DEL")
            .arg(format!("{prefix}{key}"))
            .query_async(&mut conn)
            .await;
        if let Err(e) = result {
            tracing::warn!("cache unreachable, could not invalidate {key}: {e}");
            metrics.cache("error");
        }
    }
}
