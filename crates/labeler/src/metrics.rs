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

/// The labeler's metrics: LLM requests, labels stored, and the comments still waiting.
pub struct Metrics {
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
    /// Metrics, registered nowhere yet.
    pub fn new() -> Self {
        Self {
            llm_requests: Family::default(),
            labels: Family::default(),
            duplicates: Counter::default(),
            failed: Counter::default(),
            pending: Gauge::default(),
        }
    }

    /// Registers them in `registry` (the host prefixes `bloginfer_labeler_`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "llm_requests",
            "LLM requests by outcome",
            self.llm_requests.clone(),
        );
        registry.register(
            "labels",
            "Training samples labelled, by source and status",
            self.labels.clone(),
        );
        registry.register(
            "duplicates",
            "Comments whose normalised text was already a sample",
            self.duplicates.clone(),
        );
        registry.register(
            "failed",
            "Comments given up on after the last labelling attempt",
            self.failed.clone(),
        );
        registry.register(
            "pending",
            "Comments waiting for a label",
            self.pending.clone(),
        );
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
