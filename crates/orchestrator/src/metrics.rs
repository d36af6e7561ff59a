//! The orchestrator's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// One label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// Its value.
    pub kind: String,
}

/// Route and status of a request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RouteStatus {
    /// Matched route.
    pub route: String,
    /// HTTP status.
    pub status: u16,
}

/// Every metric of the orchestrator.
pub struct Metrics {
    registry: Registry,
    /// Runs started.
    pub runs_started: Counter,
    /// Runs ended, by status.
    pub runs_finished: Family<Kind, Counter>,
    /// Candidates judged, by decision (`promoted`, `rejected`).
    pub decisions: Family<Kind, Counter>,
    /// 1 while a run is active.
    pub run_active: Gauge,
    /// Rounds finished by the active run.
    pub active_rounds_done: Gauge,
    /// Things retention deleted, by kind (`model`, `run_dir`).
    pub retention_deleted: Family<Kind, Counter>,
    /// Requests by route and status.
    pub requests: Family<RouteStatus, Counter>,
}

impl Metrics {
    /// Registers everything.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bloginfer_orchestrator");
        let m = Self {
            registry: Registry::default(),
            runs_started: Counter::default(),
            runs_finished: Family::default(),
            decisions: Family::default(),
            run_active: Gauge::default(),
            active_rounds_done: Gauge::default(),
            retention_deleted: Family::default(),
            requests: Family::default(),
        };
        registry.register(
            "runs_started",
            "Training runs started",
            m.runs_started.clone(),
        );
        registry.register(
            "runs_finished",
            "Training runs ended, by status",
            m.runs_finished.clone(),
        );
        registry.register(
            "decisions",
            "Candidates judged, by decision",
            m.decisions.clone(),
        );
        registry.register(
            "run_active",
            "1 while a training run is active",
            m.run_active.clone(),
        );
        registry.register(
            "active_rounds_done",
            "Rounds finished by the active run",
            m.active_rounds_done.clone(),
        );
        registry.register(
            "retention_deleted",
            "Model versions and run directories deleted by retention",
            m.retention_deleted.clone(),
        );
        registry.register(
            "http_requests",
            "HTTP requests by route and status",
            m.requests.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts one of `family` with label `kind`.
    pub fn count(family: &Family<Kind, Counter>, kind: &str) {
        family
            .get_or_create(&Kind {
                kind: kind.to_string(),
            })
            .inc();
    }

    /// The text exposition format, with the metrics of `more` registries (the
    /// labeler's, when it runs here) on the same page.
    pub fn render(&self, more: &[&Registry]) -> String {
        use prometheus_client::encoding::text::{encode_eof, encode_registry};
        let mut out = String::new();
        let encoded = std::iter::once(&self.registry)
            .chain(more.iter().copied())
            .try_for_each(|r| encode_registry(&mut out, r))
            .and_then(|()| encode_eof(&mut out));
        if encoded.is_err() {
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
