//! The orchestrator's Prometheus metrics.

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// The one label of the counters below: a run's status, a decision, or what
/// retention deleted.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct Kind {
    /// The label's value: a run status, a decision, or what retention deleted.
    pub kind: String,
}

/// The orchestrator's own metrics (request counts and latency are the chassis's).
#[derive(Default)]
pub struct Metrics {
    /// Training runs started, whoever asked for them.
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
}

impl Metrics {
    /// Registers them in `registry` (the host prefixes `bloginfer_orchestrator_`).
    pub fn register(&self, registry: &mut Registry) {
        let m = self;
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
    }

    /// Counts one of `family` with label `kind`.
    pub fn count(family: &Family<Kind, Counter>, kind: &str) {
        family
            .get_or_create(&Kind {
                kind: kind.to_string(),
            })
            .inc();
    }
}
