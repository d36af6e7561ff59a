//! The login rate limit: attempts per client address and failed attempts per
//! account, each counted in a fixed window, in Redis when there is one (so the
//! limit holds across replicas) or in memory. Over a limit, login answers 429
//! with `Retry-After` before any password is checked, which also keeps argon2
//! from being used to burn the server's CPU.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bloginfer_service::common::lock;

/// How many attempts a window allows.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Attempts allowed in a window.
    pub attempts: u32,
    /// How long the count lasts from the first attempt before it starts over.
    pub window: Duration,
}

/// Limits of login attempts.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// All attempts from one client address.
    pub per_ip: Limit,
    /// Failed attempts on one account (a success resets it).
    pub per_account: Limit,
}

impl Default for LoginLimits {
    fn default() -> Self {
        Self {
            per_ip: Limit {
                attempts: 30,
                window: Duration::from_secs(60),
            },
            per_account: Limit {
                attempts: 10,
                window: Duration::from_secs(15 * 60),
            },
        }
    }
}

enum Store {
    Memory(Mutex<HashMap<String, (u32, Instant)>>),
    Redis {
        redis: redis::aio::ConnectionManager,
        prefix: String,
    },
}

/// Counts login attempts per client address and failed ones per account, and refuses
/// more past a limit.
pub struct LoginLimiter {
    limits: LoginLimits,
    store: Store,
}

/// Over a limit: try again after this long.
#[derive(Debug)]
pub struct Limited(pub Duration);

impl Store {
    /// Adds `by` to `key`'s count in a window of `window`; the count and the
    /// time left in its window. `None` when the store is unreachable.
    async fn add(&self, key: &str, by: u32, window: Duration) -> Option<(u32, Duration)> {
        match self {
            Self::Memory(map) => {
                let mut map = lock(map);
                let now = Instant::now();
                if map.len() > 100_000 {
                    map.retain(|_, (_, ends)| *ends > now);
                }
                let entry = map.entry(key.to_string()).or_insert((0, now + window));
                if entry.1 <= now {
                    *entry = (0, now + window);
                }
                entry.0 = entry.0.saturating_add(by);
                Some((entry.0, entry.1.saturating_duration_since(now)))
            }
            Self::Redis { redis, prefix } => {
                let mut conn = redis.clone();
                let key = format!("{prefix}{key}");
                // The window starts with the first attempt; INCRBY 0 reads.
                let answer: Result<((), u32, i64), _> = redis::pipe()
                    .cmd("SET")
                    .arg(&key)
                    .arg(0)
                    .arg("EX")
                    .arg(window.as_secs().max(1))
                    .arg("NX")
                    .cmd("INCRBY")
                    .arg(&key)
                    .arg(by)
                    .cmd("TTL")
                    .arg(&key)
                    .query_async(&mut conn)
                    .await;
                match answer {
                    Ok((_, count, ttl)) => {
                        // TTL is negative for a key without expiry or just gone: say a second.
                        let left = u64::try_from(ttl.max(1)).unwrap_or(1);
                        Some((count, Duration::from_secs(left)))
                    }
                    Err(e) => {
                        tracing::warn!("login rate limit store unreachable, not limiting: {e}");
                        None
                    }
                }
            }
        }
    }

    async fn reset(&self, key: &str) {
        match self {
            Self::Memory(map) => {
                lock(map).remove(key);
            }
            Self::Redis { redis, prefix } => {
                let mut conn = redis.clone();
                let done: Result<(), _> = redis::cmd("DEL")
                    .arg(format!("{prefix}{key}"))
                    .query_async(&mut conn)
                    .await;
                if let Err(e) = done {
                    tracing::warn!("login rate limit store unreachable: {e}");
                }
            }
        }
    }
}

impl LoginLimiter {
    /// Counts in this process.
    pub fn memory(limits: LoginLimits) -> Self {
        Self {
            limits,
            store: Store::Memory(Mutex::new(HashMap::new())),
        }
    }

    /// Counts in Redis under keys starting with `prefix`.
    pub fn redis(
        limits: LoginLimits,
        redis: redis::aio::ConnectionManager,
        prefix: String,
    ) -> Self {
        Self {
            limits,
            store: Store::Redis { redis, prefix },
        }
    }

    /// Counts an attempt from `ip` on `account`; `Err` when either is over its limit.
    pub async fn attempt(&self, ip: &str, account: &str) -> Result<(), Limited> {
        let LoginLimits {
            per_ip,
            per_account,
        } = self.limits;
        if let Some((count, left)) = self.store.add(&format!("ip:{ip}"), 1, per_ip.window).await {
            if count > per_ip.attempts {
                return Err(Limited(left));
            }
        }
        let key = format!("account:{account}");
        if let Some((failures, left)) = self.store.add(&key, 0, per_account.window).await {
            if failures >= per_account.attempts {
                return Err(Limited(left));
            }
        }
        Ok(())
    }

    /// Records a failed attempt on `account`.
    pub async fn failed(&self, account: &str) {
        let window = self.limits.per_account.window;
        self.store
            .add(&format!("account:{account}"), 1, window)
            .await;
    }

    /// Records a successful sign-in: the account's failures are forgiven.
    pub async fn succeeded(&self, account: &str) {
        self.store.reset(&format!("account:{account}")).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(ip: u32, account: u32) -> LoginLimits {
        LoginLimits {
            per_ip: Limit {
                attempts: ip,
                window: Duration::from_secs(60),
            },
            per_account: Limit {
                attempts: account,
                window: Duration::from_secs(60),
            },
        }
    }

    #[tokio::test]
    async fn failures_lock_an_account_and_a_success_forgives_them() {
        let limiter = LoginLimiter::memory(limits(100, 3));
        for _ in 0..3 {
            limiter
                .attempt("1.2.3.4", "a@example.com")
                .await
                .expect("allowed");
            limiter.failed("a@example.com").await;
        }
        let Limited(left) = limiter
            .attempt("5.6.7.8", "a@example.com")
            .await
            .expect_err("locked from any address");
        assert!(left > Duration::ZERO && left <= Duration::from_secs(60));
        assert!(limiter.attempt("1.2.3.4", "b@example.com").await.is_ok());
        limiter.succeeded("a@example.com").await;
        assert!(limiter.attempt("1.2.3.4", "a@example.com").await.is_ok());
    }

    #[tokio::test]
    async fn one_address_is_limited_across_accounts() {
        let limiter = LoginLimiter::memory(limits(2, 100));
        assert!(limiter.attempt("1.2.3.4", "a@example.com").await.is_ok());
        assert!(limiter.attempt("1.2.3.4", "b@example.com").await.is_ok());
        assert!(limiter.attempt("1.2.3.4", "c@example.com").await.is_err());
        assert!(limiter.attempt("9.9.9.9", "c@example.com").await.is_ok());
    }
}
