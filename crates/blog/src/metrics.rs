//! The blog's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// Route and status of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    /// Matched route.
    pub route: String,
    /// HTTP status.
    pub status: u16,
}

/// Outcome of a cache lookup.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct CacheOutcome {
    /// `hit`, `miss` or `error`.
    pub outcome: String,
}

/// Every metric of the blog service.
pub struct Metrics {
    registry: Registry,
    /// Requests by route and status.
    pub requests: Family<RouteStatus, Counter>,
    /// Latency by route and status.
    pub latency: Family<RouteStatus, Histogram>,
    /// Cache lookups and failures.
    pub cache: Family<CacheOutcome, Counter>,
    /// Anonymous page cache lookups and failures.
    pub page_cache: Family<CacheOutcome, Counter>,
}

impl Metrics {
    /// Registers everything.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bloginfer_blog");
        let latency = Family::<RouteStatus, Histogram>::new_with_constructor(|| {
            Histogram::new(exponential_buckets(0.0002, 2.0, 16))
        });
        let m = Self {
            requests: Family::default(),
            latency,
            cache: Family::default(),
            page_cache: Family::default(),
            registry: Registry::default(),
        };
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            m.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP latency by route and status",
            m.latency.clone(),
        );
        registry.register(
            "cache",
            "Cache lookups by outcome (hit, miss, error)",
            m.cache.clone(),
        );
        registry.register(
            "page_cache",
            "Anonymous page cache lookups by outcome (hit, miss, error)",
            m.page_cache.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts a page cache outcome.
    pub fn page_cache(&self, outcome: &str) {
        self.page_cache
            .get_or_create(&CacheOutcome {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Counts a cache outcome.
    pub fn cache(&self, outcome: &str) {
        self.cache
            .get_or_create(&CacheOutcome {
                outcome: outcome.to_string(),
            })
            .inc();
    }

    /// Records a finished request.
    pub fn observe(&self, route: &str, status: u16, seconds: f64) {
        let labels = RouteStatus {
            route: route.to_string(),
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
    }

    /// The text exposition format.
    pub fn render(&self) -> String {
        let mut out = String::new();
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
