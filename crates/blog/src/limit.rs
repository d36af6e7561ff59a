//! Rate limits of the paths that guess or burn CPU: login attempts per client
//! address, failed logins per (account, client address), and registrations and
//! credential changes per client address. Each is counted in a fixed window,
//! in Redis when there is one (so the limit holds across replicas) or in
//! memory; when Redis is unreachable the counts fall back to this process's
//! memory (limits per replica instead of none). Over a limit, the request
//! answers 429 with `Retry-After` before any password is hashed or checked.
//!
//! Failed logins are counted per account *and* client, not per account alone:
//! an attacker who fails ten times locks only herself out, never the owner.
//! A distributed guesser is held by the per-address limit and argon2id.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bloginfer_service::common::lock;

use crate::redis_link::{RedisDown, RedisLink};

/// How many attempts a window allows.
#[derive(Debug, Clone, Copy)]
pub struct Limit {
    /// Attempts allowed in a window.
    pub attempts: u32,
    /// How long the count lasts from the first attempt before it starts over.
    pub window: Duration,
}

/// Limits of login attempts, registrations and credential changes.
#[derive(Debug, Clone, Copy)]
pub struct LoginLimits {
    /// All login attempts from one client address.
    pub per_ip: Limit,
    /// Failed login attempts on one account from one client address (a success resets it).
    pub per_account: Limit,
    /// Registrations and password or e-mail changes from one client address.
    pub per_ip_writes: Limit,
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
            per_ip_writes: Limit {
                attempts: 20,
                window: Duration::from_secs(10 * 60),
            },
        }
    }
}

/// Bytes of a client address or account that go into a key; longer values are
/// cut (an e-mail is at most 255 bytes anyway, an address far less).
const KEY_PART_BYTES: usize = 255;

fn key_part(value: &str) -> &str {
    if value.len() <= KEY_PART_BYTES {
        return value;
    }
    let mut end = KEY_PART_BYTES;
    while !value.is_char_boundary(end) {
        end -= 1;
    }
    &value[..end]
}

type Counts = Mutex<HashMap<String, (u32, Instant)>>;

enum Store {
    Memory(Counts),
    Redis {
        link: Arc<RedisLink>,
        prefix: String,
        /// Where counts go while Redis is unreachable.
        fallback: Counts,
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

/// Adds `by` to `key`'s count in this process's `counts`.
fn add_in_memory(counts: &Counts, key: &str, by: u32, window: Duration) -> (u32, Duration) {
    let mut map = lock(counts);
    let now = Instant::now();
    if map.len() > 100_000 {
        map.retain(|_, (_, ends)| *ends > now);
    }
    let entry = map.entry(key.to_string()).or_insert((0, now + window));
    if entry.1 <= now {
        *entry = (0, now + window);
    }
    entry.0 = entry.0.saturating_add(by);
    (entry.0, entry.1.saturating_duration_since(now))
}

fn redis_failed(e: &RedisDown) {
    if !matches!(e, RedisDown::Open) {
        tracing::warn!("rate limit store unreachable, counting in this process: {e}");
    }
}

impl Store {
    /// Adds `by` to `key`'s count in a window of `window`; the count and the
    /// time left in its window.
    async fn add(&self, key: &str, by: u32, window: Duration) -> (u32, Duration) {
        match self {
            Self::Memory(counts) => add_in_memory(counts, key, by, window),
            Self::Redis {
                link,
                prefix,
                fallback,
            } => {
                let redis_key = format!("{prefix}{key}");
                // The window starts with the first attempt; INCRBY 0 reads.
                let mut pipe = redis::pipe();
                pipe.cmd("SET")
                    .arg(&redis_key)
                    .arg(0)
                    .arg("EX")
                    .arg(window.as_secs().max(1))
                    .arg("NX")
                    .cmd("INCRBY")
                    .arg(&redis_key)
                    .arg(by)
                    .cmd("TTL")
                    .arg(&redis_key);
                match link.pipe::<((), u32, i64)>(&pipe).await {
                    Ok((_, count, ttl)) => {
                        // TTL is negative for a key without expiry or just gone: say a second.
                        let left = u64::try_from(ttl.max(1)).unwrap_or(1);
                        (count, Duration::from_secs(left))
                    }
                    Err(e) => {
                        redis_failed(&e);
                        add_in_memory(fallback, key, by, window)
                    }
                }
            }
        }
    }

    async fn reset(&self, key: &str) {
        match self {
            Self::Memory(counts) => {
                lock(counts).remove(key);
            }
            Self::Redis {
                link,
                prefix,
                fallback,
            } => {
                lock(fallback).remove(key);
                let done = link
                    .query::<()>(redis::cmd("DEL").arg(format!("{prefix}{key}")))
                    .await;
                if let Err(e) = done {
                    redis_failed(&e);
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

    /// Counts in Redis (through `link`) under keys starting with `prefix`,
    /// and in this process while Redis is unreachable.
    pub fn redis(limits: LoginLimits, link: Arc<RedisLink>, prefix: String) -> Self {
        Self {
            limits,
            store: Store::Redis {
                link,
                prefix,
                fallback: Mutex::new(HashMap::new()),
            },
        }
    }

    fn account_key(ip: &str, account: &str) -> String {
        format!("account:{}|{}", key_part(account), key_part(ip))
    }

    /// Counts a login attempt from `ip` on `account`; `Err` when the address
    /// is over its limit or has failed too often on this account.
    pub async fn attempt(&self, ip: &str, account: &str) -> Result<(), Limited> {
        let LoginLimits {
            per_ip,
            per_account,
            ..
        } = self.limits;
        let (count, left) = self
            .store
            .add(&format!("ip:{}", key_part(ip)), 1, per_ip.window)
            .await;
        if count > per_ip.attempts {
            return Err(Limited(left));
        }
        let key = Self::account_key(ip, account);
        let (failures, left) = self.store.add(&key, 0, per_account.window).await;
        if failures >= per_account.attempts {
            return Err(Limited(left));
        }
        Ok(())
    }

    /// Records a failed login from `ip` on `account`.
    pub async fn failed(&self, ip: &str, account: &str) {
        let window = self.limits.per_account.window;
        self.store
            .add(&Self::account_key(ip, account), 1, window)
            .await;
    }

    /// Records a successful sign-in: this address's failures on the account are forgiven.
    pub async fn succeeded(&self, ip: &str, account: &str) {
        self.store.reset(&Self::account_key(ip, account)).await;
    }

    /// Counts a registration or credential change from `ip`; `Err` past the limit.
    pub async fn write(&self, ip: &str) -> Result<(), Limited> {
        let limit = self.limits.per_ip_writes;
        let (count, left) = self
            .store
            .add(&format!("writes:{}", key_part(ip)), 1, limit.window)
            .await;
        if count > limit.attempts {
            return Err(Limited(left));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn limits(ip: u32, account: u32) -> LoginLimits {
        let window = Duration::from_secs(60);
        LoginLimits {
            per_ip: Limit {
                attempts: ip,
                window,
            },
            per_account: Limit {
                attempts: account,
                window,
            },
            per_ip_writes: Limit {
                attempts: 2,
                window,
            },
        }
    }

    #[tokio::test]
    async fn failures_lock_the_guesser_out_of_an_account_but_not_its_owner() {
        let limiter = LoginLimiter::memory(limits(100, 3));
        for _ in 0..3 {
            limiter
                .attempt("1.2.3.4", "a@example.com")
                .await
                .expect("allowed");
            limiter.failed("1.2.3.4", "a@example.com").await;
        }
        let Limited(left) = limiter
            .attempt("1.2.3.4", "a@example.com")
            .await
            .expect_err("the guesser is locked out");
        assert!(left > Duration::ZERO && left <= Duration::from_secs(60));
        assert!(
            limiter.attempt("5.6.7.8", "a@example.com").await.is_ok(),
            "the owner, elsewhere, is not"
        );
        assert!(limiter.attempt("1.2.3.4", "b@example.com").await.is_ok());
        limiter.succeeded("1.2.3.4", "a@example.com").await;
        assert!(limiter.attempt("1.2.3.4", "a@example.com").await.is_ok());
    }

    #[tokio::test]
    async fn writes_are_limited_per_address_and_long_keys_are_cut() {
        let limiter = LoginLimiter::memory(limits(100, 3));
        let long = "x".repeat(10_000);
        assert!(limiter.write(&long).await.is_ok());
        assert!(limiter.write(&long).await.is_ok());
        assert!(limiter.write(&long).await.is_err());
        assert!(limiter.write("9.9.9.9").await.is_ok());
        if let Store::Memory(counts) = &limiter.store {
            assert!(lock(counts)
                .keys()
                .all(|k| k.len() <= 2 * KEY_PART_BYTES + 16));
        }
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
