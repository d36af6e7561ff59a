//! The blog's one link to Redis (session cache, hot-data cache, page
//! generation, login counts), with the bounds that keep a Redis outage out of
//! the request path: every command has a deadline, and after a few failures in
//! a row a breaker skips Redis for a while, so that requests fall back at once
//! (to the database, or to this process's counts) instead of each waiting out
//! a timeout. Nothing the blog keeps only in Redis is needed for correctness.
//!
//! The link connects lazily: a blog started while Redis is down serves from the
//! database and starts using Redis once it answers.

use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

use bloginfer_service::common::lock;
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::FromRedisValue;

/// How long one Redis command (or connecting) may take before it counts as failed.
pub const COMMAND_TIMEOUT: Duration = Duration::from_millis(300);
/// Failures in a row that open the breaker.
const FAILURES_TO_OPEN: u32 = 3;
/// How long an open breaker skips Redis before one request probes it again.
const OPEN_FOR: Duration = Duration::from_secs(2);

/// Why a Redis command gave no answer.
#[derive(Debug, thiserror::Error)]
pub enum RedisDown {
    /// Redis failed recently; it is skipped until the breaker lets a probe through.
    #[error("redis skipped after recent failures")]
    Open,
    /// No answer within [`COMMAND_TIMEOUT`].
    #[error("redis did not answer within {} ms", COMMAND_TIMEOUT.as_millis())]
    Timeout,
    /// Redis answered with an error or the connection failed.
    #[error("redis: {0}")]
    Failed(#[from] redis::RedisError),
}

/// Counts failures in a row; open means "do not even try until `open_until`".
struct Breaker {
    failures: AtomicU32,
    /// Milliseconds since `epoch` until which Redis is skipped; 0 when closed.
    open_until: AtomicU64,
    epoch: Instant,
}

impl Breaker {
    fn now(&self) -> u64 {
        u64::try_from(self.epoch.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// Whether a command may go out: closed, or open but due for a probe (which
    /// only one caller gets: it pushes the deadline on for everyone else).
    fn allow(&self) -> bool {
        let until = self.open_until.load(Ordering::Acquire);
        if until == 0 {
            return true;
        }
        let now = self.now();
        if now < until {
            return false;
        }
        let next = now + u64::try_from(OPEN_FOR.as_millis()).unwrap_or(u64::MAX);
        self.open_until
            .compare_exchange(until, next, Ordering::AcqRel, Ordering::Acquire)
            .is_ok()
    }

    fn succeeded(&self) {
        self.failures.store(0, Ordering::Release);
        self.open_until.store(0, Ordering::Release);
    }

    fn failed(&self) {
        let failures = self.failures.fetch_add(1, Ordering::AcqRel) + 1;
        if failures >= FAILURES_TO_OPEN {
            let until = self.now() + u64::try_from(OPEN_FOR.as_millis()).unwrap_or(u64::MAX);
            self.open_until.store(until.max(1), Ordering::Release);
        }
    }
}

/// A shared, bounded connection to one Redis; cheap to share behind an `Arc`.
pub struct RedisLink {
    client: redis::Client,
    manager: Mutex<Option<ConnectionManager>>,
    breaker: Breaker,
    /// Serialises connecting, so an outage costs one connect attempt at a time.
    connecting: tokio::sync::Mutex<()>,
    /// Set once the first connection is made, for the log line about it.
    connected_once: OnceLock<()>,
}

impl RedisLink {
    /// A link to the Redis at `url` (`redis://host:port/db`). Only the URL is
    /// checked here; connecting happens on first use and again after failures.
    pub fn new(url: &str) -> Result<Self, redis::RedisError> {
        Ok(Self {
            client: redis::Client::open(url)?,
            manager: Mutex::new(None),
            breaker: Breaker {
                failures: AtomicU32::new(0),
                open_until: AtomicU64::new(0),
                epoch: Instant::now(),
            },
            connecting: tokio::sync::Mutex::new(()),
            connected_once: OnceLock::new(),
        })
    }

    /// Whether the breaker is open (Redis failed recently), for `/readyz` details.
    pub fn is_open(&self) -> bool {
        self.breaker.open_until.load(Ordering::Acquire) != 0
    }

    async fn connection(&self) -> Result<ConnectionManager, RedisDown> {
        if let Some(manager) = lock(&self.manager).clone() {
            return Ok(manager);
        }
        let _one_at_a_time = self.connecting.lock().await;
        if let Some(manager) = lock(&self.manager).clone() {
            return Ok(manager);
        }
        let config = ConnectionManagerConfig::new()
            .set_connection_timeout(COMMAND_TIMEOUT)
            .set_response_timeout(COMMAND_TIMEOUT)
            .set_number_of_retries(1);
        let manager = ConnectionManager::new_with_config(self.client.clone(), config).await?;
        if self.connected_once.set(()).is_ok() {
            tracing::info!("connected to redis");
        }
        *lock(&self.manager) = Some(manager.clone());
        Ok(manager)
    }

    /// Runs `cmd` within [`COMMAND_TIMEOUT`], unless the breaker is open.
    pub async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> Result<T, RedisDown> {
        self.guarded(|mut conn| async move { cmd.query_async(&mut conn).await })
            .await
    }

    /// Runs `pipe` within [`COMMAND_TIMEOUT`], unless the breaker is open.
    pub async fn pipe<T: FromRedisValue>(&self, pipe: &redis::Pipeline) -> Result<T, RedisDown> {
        self.guarded(|mut conn| async move { pipe.query_async(&mut conn).await })
            .await
    }

    async fn guarded<T, F, Fut>(&self, run: F) -> Result<T, RedisDown>
    where
        F: FnOnce(ConnectionManager) -> Fut,
        Fut: std::future::Future<Output = redis::RedisResult<T>>,
    {
        if !self.breaker.allow() {
            return Err(RedisDown::Open);
        }
        let answer = tokio::time::timeout(COMMAND_TIMEOUT, async {
            let conn = self.connection().await?;
            run(conn).await.map_err(RedisDown::Failed)
        })
        .await
        .unwrap_or(Err(RedisDown::Timeout));
        match &answer {
            Ok(_) => self.breaker.succeeded(),
            Err(_) => self.breaker.failed(),
        }
        answer
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_breaker_opens_after_failures_and_lets_one_probe_through_later() {
        let breaker = Breaker {
            failures: AtomicU32::new(0),
            open_until: AtomicU64::new(0),
            // Started a while ago, so that "open until 1 ms" is in the past.
            epoch: Instant::now()
                .checked_sub(Duration::from_secs(10))
                .unwrap_or_else(Instant::now),
        };
        for _ in 0..FAILURES_TO_OPEN {
            assert!(breaker.allow());
            breaker.failed();
        }
        assert!(!breaker.allow(), "open after {FAILURES_TO_OPEN} failures");
        // Pretend the open period is over: exactly one caller probes.
        breaker.open_until.store(1, Ordering::Release);
        assert!(breaker.allow(), "the first caller probes");
        assert!(!breaker.allow(), "the others still skip");
        breaker.succeeded();
        assert!(breaker.allow(), "closed after a success");
    }

    #[tokio::test]
    async fn a_dead_redis_fails_fast_and_then_is_skipped() {
        // A port nothing listens on: connecting is refused at once.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap_or(1);
        let link = RedisLink::new(&format!("redis://127.0.0.1:{port}/")).unwrap_or_else(|e| {
            panic!("url: {e}");
        });
        let started = Instant::now();
        for _ in 0..FAILURES_TO_OPEN {
            let answer = link
                .query::<Option<String>>(redis::cmd("GET").arg("k"))
                .await;
            assert!(answer.is_err());
        }
        let answer = link
            .query::<Option<String>>(redis::cmd("GET").arg("k"))
            .await;
        assert!(matches!(answer, Err(RedisDown::Open)), "{answer:?}");
        assert!(link.is_open());
        assert!(started.elapsed() < Duration::from_secs(5), "does not hang");
    }
}
