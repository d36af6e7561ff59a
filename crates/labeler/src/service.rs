//! The labeler as a service of its host (the orchestrator's process, or
//! `up`): no routes, its metrics, its readiness and its supervised loop.

use std::sync::Arc;

use bloginfer_service::{BoxFuture, Readiness, Service, Supervisor};

use crate::labeler::Labeler;

/// The labeler as a service of its host (the orchestrator's process, or `up`):
/// no routes of its own (its API is the orchestrator's `/v1/feedback`), its
/// metrics under `bloginfer_labeler_`, and its loop as a supervised
/// background task whose heartbeat `/readyz` reads.
pub struct LabelerService(pub Arc<Labeler>);

impl Service for LabelerService {
    fn name(&self) -> &'static str {
        "labeler"
    }

    fn routes(&self) -> axum::Router {
        axum::Router::new()
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.0.metrics().register(registry);
    }

    fn ready(&self) -> BoxFuture<'_, Readiness> {
        let labeler = &self.0;
        let age = labeler.heartbeat().age();
        let stall_after = labeler.stall_after();
        // A loop that shows no sign of life for this long is hung (or its task
        // is dead): say so, rather than stay green while nothing is labelled.
        let readiness = if age > stall_after {
            Readiness::not_ready(format!(
                "the labeler has shown no sign of life for {}s (stall limit {}s)",
                age.as_secs(),
                stall_after.as_secs()
            ))
        } else {
            Readiness::ready()
        };
        let readiness = readiness
            .with("source", labeler.source().as_str())
            .with("llm_model", labeler.llm_model().map(str::to_string))
            .with(
                "last_beat_ms_ago",
                u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
            )
            .with("llm_paused_for_s", labeler.llm_paused_for().as_secs());
        Box::pin(async move { readiness })
    }

    fn spawn_background(&self, tasks: &Supervisor) {
        let labeler = self.0.clone();
        // Critical: while it restarts after a panic (with the supervisor's
        // growing delay), `/readyz` says so.
        tasks.spawn("labeler", "labelling", true, move |token| {
            labeler.clone().run(token)
        });
    }
}
