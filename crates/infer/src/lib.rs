//! Online sentiment inference as an HTTP service.
//!
//! - [`store`]: the served model, hot reload from the registry's current pointer
//!   (or a pinned version), broken versions refused;
//! - [`batcher`]: micro-batching with a bounded queue and a bounded compute pool;
//! - [`http`]: the routes and the one JSON error format;
//! - [`metrics`]: Prometheus metrics and rolling statistics;
//! - [`openapi`]: the OpenAPI document.
//!
//! [`InferService`] wires them; its [`InferService::router`] can be served
//! alone (`bloginfer infer`) or merged into the all-in-one process.

#![warn(missing_docs)]

pub mod batcher;
mod error;
pub mod http;
pub mod metrics;
pub mod openapi;
pub mod store;

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use bloginfer_model::Registry;

pub use batcher::BatchConfig;
pub use error::InferError;

use crate::batcher::Batcher;
use crate::metrics::Metrics;
use crate::store::{ModelStore, Reload};

/// Settings of the inference service.
#[derive(Debug, Clone)]
pub struct InferConfig {
    /// Model registry.
    pub models_dir: PathBuf,
    /// Serve this version instead of following the current pointer.
    pub pinned_version: Option<String>,
    /// Batching and queueing.
    pub batching: BatchConfig,
    /// How often the registry's pointer is checked.
    pub reload_interval: Duration,
    /// Largest accepted request body.
    pub max_body_bytes: usize,
}

/// State shared by the handlers.
pub struct Shared {
    /// The served model.
    pub store: Arc<ModelStore>,
    /// The batching pipeline.
    pub batcher: Batcher,
    /// Metrics.
    pub metrics: Arc<Metrics>,
    /// Body limit.
    pub max_body_bytes: usize,
}

/// The inference service: model store, batcher, reloader.
#[derive(Clone)]
pub struct InferService {
    shared: Arc<Shared>,
    reload_interval: Duration,
}

impl InferService {
    /// Opens the registry and starts the batcher (needs a Tokio runtime).
    /// No model needs to exist yet: readiness waits for one.
    pub fn start(config: InferConfig) -> Result<Self, InferError> {
        let registry = Registry::open(&config.models_dir)?;
        let store = Arc::new(ModelStore::new(registry, config.pinned_version.clone()));
        let metrics = Arc::new(Metrics::new());
        let batcher = Batcher::start(config.batching.clone(), store.clone(), metrics.clone());
        Ok(Self {
            shared: Arc::new(Shared {
                store,
                batcher,
                metrics,
                max_body_bytes: config.max_body_bytes,
            }),
            reload_interval: config.reload_interval,
        })
    }

    /// The routes, with no fallback (for merging into a larger app).
    pub fn routes(&self) -> Router {
        http::router(self.shared.clone(), true)
    }

    /// The routes without `/healthz`, `/readyz` and `/metrics` (the host app
    /// has its own; see [`InferService::render_metrics`]).
    pub fn routes_without_probes(&self) -> Router {
        http::router(self.shared.clone(), false)
    }

    /// The routes with a JSON 404 for anything else (the standalone service).
    pub fn router(&self) -> Router {
        self.routes().fallback(http::not_found)
    }

    /// The metrics page (OpenMetrics text).
    pub fn render_metrics(&self) -> String {
        self.shared.metrics.render()
    }

    /// The shared state.
    pub fn shared(&self) -> Arc<Shared> {
        self.shared.clone()
    }

    /// Loads the wanted model now (if there is one); returns what happened.
    pub async fn reload_now(&self) -> Reload {
        reload_once(&self.shared).await
    }

    /// Keeps checking the registry in the background.
    pub fn spawn_reloader(&self) -> tokio::task::JoinHandle<()> {
        let shared = self.shared.clone();
        let every = self.reload_interval;
        tokio::spawn(async move {
            loop {
                reload_once(&shared).await;
                tokio::time::sleep(every).await;
            }
        })
    }
}

async fn reload_once(shared: &Arc<Shared>) -> Reload {
    let previous = shared.store.get().map(|m| m.version.clone());
    let store = shared.store.clone();
    let outcome = tokio::task::spawn_blocking(move || store.reload())
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
