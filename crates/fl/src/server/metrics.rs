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

/// Every metric the aggregator exports.
pub struct Metrics {
    registry: Registry,
    /// Round now running.
    pub round: Gauge,
    /// Rounds aggregated.
    pub rounds_completed: Counter,
    /// Updates averaged in.
    pub updates_accepted: Counter,
    /// Updates refused, by reason.
    pub updates_rejected: Family<Reason, Counter>,
    /// Workers seen recently.
    pub clients_available: Gauge,
    /// Update body bytes received.
    pub upload_bytes: Counter,
    /// Weight body bytes sent.
    pub download_bytes: Counter,
    /// Round wall time.
    pub round_seconds: Histogram,
    /// Validation accuracy after the last round.
    pub validation_accuracy: Gauge<f64, AtomicU64>,
}

impl Metrics {
    /// Registers all metrics.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("bloginfer_fl");
        let m = Self {
            round: Gauge::default(),
            rounds_completed: Counter::default(),
            updates_accepted: Counter::default(),
            updates_rejected: Family::default(),
            clients_available: Gauge::default(),
            upload_bytes: Counter::default(),
            download_bytes: Counter::default(),
            round_seconds: Histogram::new(exponential_buckets(0.25, 2.0, 12)),
            validation_accuracy: Gauge::default(),
            registry: Registry::default(),
        };
        registry.register("round", "Round now running", m.round.clone());
        registry.register(
            "rounds_completed",
            "Rounds aggregated",
            m.rounds_completed.clone(),
        );
        registry.register(
            "updates_accepted",
            "Client updates averaged in",
            m.updates_accepted.clone(),
        );
        registry.register(
            "updates_rejected",
            "Client updates refused, by reason",
            m.updates_rejected.clone(),
        );
        registry.register(
            "clients_available",
            "Workers seen recently",
            m.clients_available.clone(),
        );
        registry.register(
            "upload_bytes",
            "Update body bytes received",
            m.upload_bytes.clone(),
        );
        registry.register(
            "download_bytes",
            "Weight body bytes sent",
            m.download_bytes.clone(),
        );
        registry.register(
            "round_seconds",
            "Wall time of a round",
            m.round_seconds.clone(),
        );
        registry.register(
            "validation_accuracy",
            "Server-side validation accuracy after the last round",
            m.validation_accuracy.clone(),
        );
        Self { registry, ..m }
    }

    /// Counts a refused update.
    pub fn rejected(&self, reason: &str) {
        self.updates_rejected
            .get_or_create(&Reason {
                reason: reason.to_string(),
            })
            .inc();
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
