//! The blog's own Prometheus metrics: how its caches fare. Request counts and
//! latency are the host's (`bloginfer_http_requests_total{service="blog",...}`);
//! these families appear under `bloginfer_blog_`.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::registry::Registry;

/// Outcome of a cache lookup.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheOutcome {
    /// `hit`, `miss` or `error`.
    pub outcome: &'static str,
}

/// The blog's metric families, counted by the handlers and registered with the
/// host once.
#[derive(Default)]
pub struct Metrics {
    /// Redis cache lookups and failures (comment lists, the tag list).
    pub cache: Family<CacheOutcome, Counter>,
    /// Anonymous page cache lookups and failures (article listings).
    pub page_cache: Family<CacheOutcome, Counter>,
}

impl Metrics {
    /// Registers the families in `registry` (the host's, already prefixed
    /// with the service's name).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "cache",
            "Cache lookups by outcome (hit, miss, error)",
            self.cache.clone(),
        );
        registry.register(
            "page_cache",
            "Anonymous page cache lookups by outcome (hit, miss, error)",
            self.page_cache.clone(),
        );
    }

    /// Counts a page cache outcome.
    pub fn page_cache(&self, outcome: &'static str) {
        self.page_cache
            .get_or_create(&CacheOutcome { outcome })
            .inc();
    }

    /// Counts a cache outcome.
    pub fn cache(&self, outcome: &'static str) {
        self.cache.get_or_create(&CacheOutcome { outcome }).inc();
    }
}
