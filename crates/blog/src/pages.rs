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
//!
//! The cache is bounded: at most [`CAPACITY`] entries and [`BUDGET_BYTES`] of
//! pages (as [`Weigh`] estimates them), evicting stale entries first and then
//! the oldest; keys longer than [`MAX_KEY_BYTES`] are not cached at all, so a
//! client inventing query strings cannot grow it.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bloginfer_service::common::lock;

use crate::metrics::Metrics;
use crate::redis_link::{RedisDown, RedisLink};

/// How long an entry may be served at most.
pub const MAX_AGE: Duration = Duration::from_secs(30);

/// Entries kept at most (listings that are worth caching are few and hot).
pub const CAPACITY: usize = 512;

/// Bytes of pages kept at most.
pub const BUDGET_BYTES: usize = 32 << 20;

/// Keys longer than this (long tag or author names) are served uncached.
pub const MAX_KEY_BYTES: usize = 256;

/// What a cached page costs in memory, roughly (for [`BUDGET_BYTES`]).
pub trait Weigh {
    /// Estimated bytes held by the value.
    fn weight(&self) -> usize;
}

enum Generation {
    Local(AtomicU64),
    Redis { link: Arc<RedisLink>, key: String },
}

struct Entry<T> {
    generation: u64,
    stored: Instant,
    weight: usize,
    value: Arc<T>,
}

struct Entries<T> {
    map: HashMap<String, Entry<T>>,
    /// Sum of the entries' weights.
    bytes: usize,
}

/// The cache; see the module documentation.
pub struct PageCache<T> {
    enabled: bool,
    generation: Generation,
    entries: Mutex<Entries<T>>,
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

impl<T> Entries<T> {
    fn new() -> Self {
        Self {
            map: HashMap::new(),
            bytes: 0,
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.map.remove(key) {
            self.bytes -= old.weight;
        }
    }

    fn clear(&mut self) {
        self.map.clear();
        self.bytes = 0;
    }

    /// Makes room for one entry of `weight`: stale entries go first, then the oldest.
    fn make_room(&mut self, weight: usize, generation: u64) {
        let fits = |e: &Self| e.map.len() < CAPACITY && e.bytes + weight <= BUDGET_BYTES;
        if fits(self) {
            return;
        }
        self.map
            .retain(|_, e| e.generation == generation && e.stored.elapsed() < MAX_AGE);
        self.bytes = self.map.values().map(|e| e.weight).sum();
        while !fits(self) {
            let Some(oldest) = self
                .map
                .iter()
                .min_by_key(|(_, e)| e.stored)
                .map(|(k, _)| k.clone())
            else {
                return;
            };
            self.remove(&oldest);
        }
    }
}

impl<T: Weigh> PageCache<T> {
    /// A cache for one process; `enabled: false` makes every lookup a bypass.
    pub fn local(enabled: bool) -> Self {
        Self {
            enabled,
            generation: Generation::Local(AtomicU64::new(0)),
            entries: Mutex::new(Entries::new()),
        }
    }

    /// A cache whose generation lives in Redis (through `link`) under `key`,
    /// shared by replicas.
    pub fn shared(enabled: bool, link: Arc<RedisLink>, key: String) -> Self {
        Self {
            enabled,
            generation: Generation::Redis { link, key },
            entries: Mutex::new(Entries::new()),
        }
    }

    /// Entries and their estimated bytes, for tests and metrics.
    pub fn size(&self) -> (usize, usize) {
        let entries = lock(&self.entries);
        (entries.map.len(), entries.bytes)
    }

    async fn current(&self, metrics: &Metrics) -> Option<u64> {
        match &self.generation {
            Generation::Local(n) => Some(n.load(Ordering::Acquire)),
            Generation::Redis { link, key } => {
                match link.query::<Option<u64>>(redis::cmd("GET").arg(key)).await {
                    Ok(n) => Some(n.unwrap_or(0)),
                    Err(e) => {
                        if !matches!(e, RedisDown::Open) {
                            tracing::warn!(
                                "page cache generation unreadable, reading the database: {e}"
                            );
                        }
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
        if !self.enabled || key.len() > MAX_KEY_BYTES {
            return Lookup::Bypass;
        }
        let Some(generation) = self.current(metrics).await else {
            return Lookup::Bypass;
        };
        let entries = lock(&self.entries);
        match entries.map.get(key) {
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
        let weight = value.weight().saturating_add(key.len());
        if key.len() > MAX_KEY_BYTES || weight > BUDGET_BYTES / 4 {
            return;
        }
        let mut entries = lock(&self.entries);
        entries.remove(&key);
        entries.make_room(weight, generation);
        entries.bytes += weight;
        entries.map.insert(
            key,
            Entry {
                generation,
                stored: Instant::now(),
                weight,
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
            Generation::Redis { link, key } => {
                let bumped = link.query::<u64>(redis::cmd("INCR").arg(key)).await;
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

impl Weigh for crate::http::Listing {
    fn weight(&self) -> usize {
        // The rendered JSON, plus the parsed list it was rendered from (the
        // same strings again, with per-field overhead).
        self.body.len().saturating_mul(3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Page(usize);

    impl Weigh for Page {
        fn weight(&self) -> usize {
            self.0
        }
    }

    #[test]
    fn the_cache_stays_within_its_byte_budget_and_keeps_the_newest() {
        let cache = PageCache::local(true);
        let page = BUDGET_BYTES / 10;
        for i in 0..100 {
            cache.store(format!("page {i}"), 0, Arc::new(Page(page)));
            let (_, bytes) = cache.size();
            assert!(bytes <= BUDGET_BYTES, "{bytes} after {i}");
        }
        let entries = lock(&cache.entries);
        assert!(entries.map.contains_key("page 99"), "the newest stays");
        assert!(!entries.map.contains_key("page 0"), "the oldest went");
    }

    #[test]
    fn many_small_pages_are_bounded_in_count_and_long_keys_are_not_kept() {
        let cache = PageCache::local(true);
        for i in 0..(CAPACITY * 3) {
            cache.store(format!("page {i}"), 0, Arc::new(Page(10)));
        }
        assert_eq!(cache.size().0, CAPACITY);
        cache.store("x".repeat(MAX_KEY_BYTES + 1), 0, Arc::new(Page(10)));
        assert_eq!(cache.size().0, CAPACITY);
        assert!(!lock(&cache.entries)
            .map
            .contains_key(&"x".repeat(MAX_KEY_BYTES + 1)));
    }
}
