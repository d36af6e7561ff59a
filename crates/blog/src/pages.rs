//! The page cache: article listings as a reader who is not signed in sees them
//! (the home page's global feed, a tag's page; signed-in readers get the same
//! page with their own favourites and follows filled in), kept in this process
//! and tagged with a generation number that every write touching a listing
//! bumps. A replica serves an entry only while its
//! generation is still the current one, so no replica serves a page older than
//! the last write it can see:
//!
//! - one process (no Redis): the generation is a counter in memory, and every
//!   write goes through this process;
//! - replicas with Redis: the generation is a Redis counter (`INCR` after each
//!   write, one `GET` per cached read); when Redis cannot be reached the cache is
//!   bypassed and the database answers.
//!
//! Entries also expire after [`MAX_AGE`], which bounds staleness in the one case
//! the generation cannot cover (a bump lost to a Redis outage).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bloginfer_service::common::lock;

use crate::metrics::Metrics;

/// How long an entry may be served at most.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// Entries kept at most; past it the cache starts over (listings are few and hot).
const CAPACITY: usize = 512;

enum Generation {
    Local(AtomicU64),
    Redis {
        redis: redis::aio::ConnectionManager,
        key: String,
    },
}

struct Entry<T> {
    generation: u64,
    stored: Instant,
    value: Arc<T>,
}

/// The cache; see the module documentation.
pub struct PageCache<T> {
    enabled: bool,
    generation: Generation,
    entries: Mutex<HashMap<String, Entry<T>>>,
}

/// A looked-up page: the page to serve, or the generation to store a fresh one under.
pub enum Lookup<T> {
    /// A current entry: serve it as is.
    Hit(Arc<T>),
    /// Render from the database, then [`PageCache::store`] under this generation.
    Miss(u64),
    /// Render from the database and do not store it.
    Bypass,
}

impl<T> PageCache<T> {
    /// A cache for one process; `enabled: false` makes every lookup a bypass.
    pub fn local(enabled: bool) -> Self {
        Self {
            enabled,
            generation: Generation::Local(AtomicU64::new(0)),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// A cache whose generation lives in Redis under `key`, shared by replicas.
    pub fn shared(enabled: bool, redis: redis::aio::ConnectionManager, key: String) -> Self {
        Self {
            enabled,
            generation: Generation::Redis { redis, key },
            entries: Mutex::new(HashMap::new()),
        }
    }

    async fn current(&self, metrics: &Metrics) -> Option<u64> {
        match &self.generation {
            Generation::Local(n) => Some(n.load(Ordering::Acquire)),
            Generation::Redis { redis, key } => {
                let mut conn = redis.clone();
                match redis::cmd("GET")
                    .arg(key)
                    .query_async::<Option<u64>>(&mut conn)
                    .await
                {
                    Ok(n) => Some(n.unwrap_or(0)),
                    Err(e) => {
                        tracing::warn!(
                            "page cache generation unreadable, reading the database: {e}"
                        );
                        metrics.page_cache("error");
                        None
                    }
                }
            }
        }
    }

    /// Looks `key` up: a current entry, a miss to render and store, or a bypass when
    /// caching is off.
    pub async fn lookup(&self, key: &str, metrics: &Metrics) -> Lookup<T> {
        if !self.enabled {
            return Lookup::Bypass;
        }
        let Some(generation) = self.current(metrics).await else {
            return Lookup::Bypass;
        };
        let entries = lock(&self.entries);
        match entries.get(key) {
            Some(e) if e.generation == generation && e.stored.elapsed() < MAX_AGE => {
                metrics.page_cache("hit");
                Lookup::Hit(e.value.clone())
            }
            _ => {
                metrics.page_cache("miss");
                Lookup::Miss(generation)
            }
        }
    }

    /// Stores a page rendered after [`Lookup::Miss`]`(generation)`.
    pub fn store(&self, key: String, generation: u64, value: Arc<T>) {
        let mut entries = lock(&self.entries);
        if entries.len() >= CAPACITY && !entries.contains_key(&key) {
            entries.clear();
        }
        entries.insert(
            key,
            Entry {
                generation,
                stored: Instant::now(),
                value,
            },
        );
    }

    /// Marks every cached page out of date; call it after a write commits.
    pub async fn bump(&self, metrics: &Metrics) {
        match &self.generation {
            Generation::Local(n) => {
                n.fetch_add(1, Ordering::AcqRel);
            }
            Generation::Redis { redis, key } => {
                let mut conn = redis.clone();
                let bumped = redis::cmd("INCR")
                    .arg(key)
                    .query_async::<u64>(&mut conn)
                    .await;
                if let Err(e) = bumped {
                    // Other replicas keep their pages until MAX_AGE; this one drops its own.
                    tracing::warn!("page cache generation not bumped: {e}");
                    metrics.page_cache("error");
                    lock(&self.entries).clear();
                }
            }
        }
    }
}
