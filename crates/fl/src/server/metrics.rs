//! The aggregator's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use std::sync::atomic::AtomicU64;

/// Label of a refused update.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Reason {
    /// Why it was refused (the error code).
    pub reason: String,
}

/// The aggregator's own metrics (request counts and latency are the chassis's).
pub struct Metrics {
    /// `round`: the round now running (1-based).
    pub round: Gauge,
    /// `rounds_completed`: rounds aggregated and evaluated so far.
    pub rounds_completed: Counter,
    /// `updates_accepted`: client updates taken for their round's aggregate.
    pub updates_accepted: Counter,
    /// Updates refused, by reason.
    pub updates_rejected: Family<Reason, Counter>,
    /// `clients_available`: workers heard from within their availability lease.
    pub clients_available: Gauge,
    /// Update body bytes received.
    pub upload_bytes: Counter,
    /// Weight body bytes sent.
    pub download_bytes: Counter,
    /// `round_seconds`: from selecting clients to the new global weights, per round.
    pub round_seconds: Histogram,
    /// Validation accuracy after the last round.
    pub validation_accuracy: Gauge<f64, AtomicU64>,
}

impl Metrics {
    /// Metrics, registered nowhere yet.
    pub fn new() -> Self {
        Self {
            round: Gauge::default(),
            rounds_completed: Counter::default(),
            updates_accepted: Counter::default(),
            updates_rejected: Family::default(),
            clients_available: Gauge::default(),
            upload_bytes: Counter::default(),
            download_bytes: Counter::default(),
            round_seconds: Histogram::new(exponential_buckets(0.25, 2.0, 12)),
            validation_accuracy: Gauge::default(),
        }
    }

    /// Registers them in `registry` (the host prefixes `bloginfer_fl_`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register("round", "Round now running", self.round.clone());
        registry.register(
            "rounds_completed",
            "Rounds aggregated",
            self.rounds_completed.clone(),
        );
        registry.register(
            "updates_accepted",
            "Client updates averaged in",
            self.updates_accepted.clone(),
        );
        registry.register(
            "updates_rejected",
            "Client updates refused, by reason",
            self.updates_rejected.clone(),
        );
        registry.register(
            "clients_available",
            "Workers seen recently",
            self.clients_available.clone(),
        );
        registry.register(
            "upload_bytes",
            "Update body bytes received",
            self.upload_bytes.clone(),
        );
        registry.register(
            "download_bytes",
            "Weight body bytes sent",
            self.download_bytes.clone(),
        );
        registry.register(
            "round_seconds",
            "Wall time of a round",
            self.round_seconds.clone(),
        );
        registry.register(
            "validation_accuracy",
            "Server-side validation accuracy after the last round",
            self.validation_accuracy.clone(),
        );
    }

    /// Counts a refused update.
    pub fn rejected(&self, reason: &str) {
        self.updates_rejected
            .get_or_create(&Reason {
                reason: reason.to_string(),
            })
            .inc();
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
