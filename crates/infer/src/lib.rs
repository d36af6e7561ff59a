//! Online sentiment inference as an HTTP service.
//!
//! - [`batcher`]: micro-batching with a bounded queue and a bounded compute pool;
//! - [`http`]: the routes;
//! - [`metrics`]: Prometheus metrics and rolling statistics;
//! - [`openapi`]: the OpenAPI document.
//!
//! [`Inference`] is the service facade: built from an [`InferConfig`], hosted
//! alone (`bloginfer infer`) or beside the blog and the orchestrator
//! (`bloginfer up`). The model itself is a [`ModelFollower`] of the registry,
//! which the labeler of the same process shares.

#![warn(missing_docs)]

pub mod batcher;
mod error;
pub mod http;
pub mod metrics;
pub mod openapi;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use bloginfer_model::{ModelFollower, Registry, Reload};
use bloginfer_service::tasks::sleep_or_cancelled;
use bloginfer_service::{BoxFuture, Readiness, Service, Supervisor};
use prometheus_client::registry::Registry as MetricsRegistry;

pub use batcher::BatchConfig;
pub use error::InferError;

use crate::batcher::{Batcher, Collector};
use crate::metrics::Metrics;

/// Settings of the inference service.
#[derive(Debug, Clone)]
pub struct InferConfig {
    /// The model registry to serve from and follow.
    pub models_dir: PathBuf,
    /// Serve this version instead of following the current pointer.
    pub pinned_version: Option<String>,
    /// How requests are gathered into batches, and how many may wait.
    pub batching: BatchConfig,
    /// How often the registry's pointer is checked.
    pub reload_interval: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
}

/// State shared by the handlers.
pub struct Shared {
    /// Follows the registry and holds the model being served.
    pub follower: Arc<ModelFollower>,
    /// Queues texts for the batch worker and hands back their answers.
    pub batcher: Batcher,
    /// The service's own metrics and the window behind `/v1/sentiment/stats`.
    pub metrics: Arc<Metrics>,
    /// Largest accepted request body, in bytes (a larger one gets 413).
    pub max_body_bytes: usize,
}

/// The inference service as mounted on a host: its API, the batch worker
/// and the registry follower.
#[derive(Clone)]
pub struct Inference {
    shared: Arc<Shared>,
    collector: Collector,
    reload_interval: Duration,
}

impl Inference {
    /// Opens the registry. No model needs to exist yet: readiness waits for
    /// one. Nothing runs until the host spawns the background tasks.
    pub fn build(config: InferConfig) -> Result<Self, InferError> {
        let registry = Registry::open(&config.models_dir)?;
        let follower = Arc::new(ModelFollower::new(registry, config.pinned_version.clone()));
        let metrics = Arc::new(Metrics::new());
        let (batcher, collector) =
            Batcher::new(config.batching.clone(), follower.clone(), metrics.clone());
        Ok(Self {
            shared: Arc::new(Shared {
                follower,
                batcher,
                metrics,
                max_body_bytes: config.max_body_bytes,
            }),
            collector,
            reload_interval: config.reload_interval,
        })
    }

    /// The model follower, to share with the labeler of the same process.
    pub fn follower(&self) -> Arc<ModelFollower> {
        self.shared.follower.clone()
    }

    /// Loads the wanted model now (if there is one); returns what happened.
    pub async fn reload_now(&self) -> Reload {
        reload_once(&self.shared).await
    }
}

impl Service for Inference {
    fn name(&self) -> &'static str {
        "infer"
    }

    fn routes(&self) -> Router {
        http::router(self.shared.clone())
    }

    fn register_metrics(&self, registry: &mut MetricsRegistry) {
        self.shared.metrics.register(registry);
    }

    fn ready(&self) -> BoxFuture<'_, Readiness> {
        let readiness = match self.shared.follower.get() {
            Some(m) => Readiness::ready().with("model_version", m.version.clone()),
            None => Readiness::not_ready("no model is loaded yet"),
        };
        Box::pin(async move { readiness })
    }

    fn spawn_background(&self, tasks: &Supervisor) {
        let collector = self.collector.clone();
        tasks.spawn("infer", "batcher", true, move |token| {
            collector.clone().run(token)
        });
        let (shared, every) = (self.shared.clone(), self.reload_interval);
        tasks.spawn("infer", "reloader", false, move |token| {
            let shared = shared.clone();
            async move {
                loop {
                    reload_once(&shared).await;
                    if sleep_or_cancelled(&token, every).await {
                        return;
                    }
                }
            }
        });
    }
}

async fn reload_once(shared: &Arc<Shared>) -> Reload {
    let previous = shared.follower.get().map(|m| m.version.clone());
    let follower = shared.follower.clone();
    let outcome = tokio::task::spawn_blocking(move || follower.reload())
        .await
        .unwrap_or_else(|e| Reload::Failed(format!("reload task failed: {e}")));
    match &outcome {
        Reload::Unchanged => {}
        Reload::Loaded(version) => {
            tracing::info!(%version, ?previous, "serving model");
            shared.metrics.reload(true);
            shared.metrics.serving(version, previous.as_deref());
        }
        Reload::Failed(reason) => {
            tracing::error!(
                ?previous,
                "model reload refused, the previous model keeps serving: {reason}"
            );
            shared.metrics.reload(false);
        }
    }
    outcome
}
