//! The labeler's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// How an LLM request ended.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Outcome {
    /// `ok`, `timeout`, `unreachable`, `rate_limited`, `server_error`, `refused`,
    /// `malformed` or `schema`.
    pub outcome: &'static str,
}

/// Source and status of a stored label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Labelled {
    /// `llm`, `pseudo` or `human`.
    pub source: &'static str,
    /// `accepted`, `review` or `rejected`.
    pub status: &'static str,
}

/// Every metric of the labeler.
pub struct Metrics {
    registry: Registry,
    /// LLM requests by outcome (each retry counts).
    pub llm_requests: Family<Outcome, Counter>,
    /// Labels stored, by source and status.
    pub labels: Family<Labelled, Counter>,
    /// Comments whose text was already a sample.
    pub duplicates: Counter,
    /// Comments given up on after the last attempt.
    pub failed: Counter,
    /// Comments waiting for a label at the last pass.
    pub pending: Gauge,
}

impl Metrics {
    /// Registers everything.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bloginfer_labeler");
        let m = Self {
            registry: Registry::default(),
            llm_requests: Family::default(),
            labels: Family::default(),
            duplicates: Counter::default(),
            failed: Counter::default(),
            pending: Gauge::default(),
        };
        registry.register(
            "llm_requests",
            "LLM requests by outcome",
            m.llm_requests.clone(),
        );
        registry.register(
            "labels",
            "Training samples labelled, by source and status",
            m.labels.clone(),
        );
        registry.register(
            "duplicates",
            "Comments whose normalised text was already a sample",
            m.duplicates.clone(),
        );
        registry.register(
            "failed",
            "Comments given up on after the last labelling attempt",
            m.failed.clone(),
        );
        registry.register("pending", "Comments waiting for a label", m.pending.clone());
        Self { registry, ..m }
    }

    /// The registry, for the page of the process the labeler runs in.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
