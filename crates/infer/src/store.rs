//! The model being served and its hot reload: watch the registry's current
//! pointer (or serve a pinned version), load new versions off the async
//! runtime, swap atomically, and keep serving the old model when a new one
//! is broken.

use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use bloginfer_model::checkpoint::Checkpoint;
use bloginfer_model::{Predictor, Registry};
use serde::Serialize;

use crate::error::InferError;

/// A model ready to serve.
pub struct LoadedModel {
    /// Registry version.
    pub version: String,
    /// The predictor (weights packed once).
    pub predictor: Predictor,
    /// Public description: config, metrics, provenance.
    pub info: ModelInfo,
}

/// What `GET /v1/sentiment/model` shows.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// Registry version.
    pub version: String,
    /// Architecture.
    pub config: bloginfer_model::ModelConfig,
    /// Validation metrics recorded at training time.
    pub metrics: Option<bloginfer_model::Metrics>,
    /// `central` or `federated`.
    pub method: String,
    /// When training finished.
    pub trained_at: String,
    /// When this process loaded it (RFC 3339).
    pub loaded_at: String,
}

/// What a reload check did.
#[derive(Debug, Clone, PartialEq)]
pub enum Reload {
    /// Nothing to do.
    Unchanged,
    /// A new version is now served.
    Loaded(String),
    /// The version could not be loaded; the old model keeps serving.
    Failed(String),
}

/// The served model and where it comes from.
pub struct ModelStore {
    registry: Registry,
    pinned: Option<String>,
    current: RwLock<Option<Arc<LoadedModel>>>,
    /// The last version that failed to load (not retried until the pointer moves).
    failed: Mutex<Option<String>>,
}

impl ModelStore {
    /// A store over the registry at `registry`; `pinned` fixes the version.
    pub fn new(registry: Registry, pinned: Option<String>) -> Self {
        Self {
            registry,
            pinned,
            current: RwLock::new(None),
            failed: Mutex::new(None),
        }
    }

    /// The model serving now, if any. Callers keep the `Arc` for the whole
    /// request, so a swap never affects a request in flight.
    pub fn get(&self) -> Option<Arc<LoadedModel>> {
        self.current
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn wanted(&self) -> Result<Option<String>, InferError> {
        match &self.pinned {
            Some(v) => Ok(Some(v.clone())),
            None => Ok(self.registry.current()?),
        }
    }

    /// Loads the wanted version if it is not the one serving. Blocking: call
    /// it from a blocking thread.
    pub fn reload(&self) -> Reload {
        let wanted = match self.wanted() {
            Ok(Some(v)) => v,
            Ok(None) => return Reload::Unchanged,
            Err(e) => return Reload::Failed(format!("cannot read the registry: {e}")),
        };
        if self.get().is_some_and(|m| m.version == wanted) {
            return Reload::Unchanged;
        }
        let mut failed = self.failed.lock().unwrap_or_else(|p| p.into_inner());
        if failed.as_deref() == Some(wanted.as_str()) {
            return Reload::Unchanged;
        }
        match self.load(&wanted) {
            Ok(model) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Some(Arc::new(model));
                *failed = None;
                Reload::Loaded(wanted)
            }
            Err(e) => {
                *failed = Some(wanted.clone());
                Reload::Failed(format!("version {wanted}: {e}"))
            }
        }
    }

    fn load(&self, version: &str) -> Result<LoadedModel, InferError> {
        let path = self.registry.path_of(version)?;
        let checkpoint = Checkpoint::load(&path)?;
        let predictor = Predictor::new(&checkpoint)?;
        let info = ModelInfo {
            version: version.to_string(),
            config: checkpoint.config.clone(),
            metrics: checkpoint.metadata.metrics.clone(),
            method: checkpoint.metadata.method.clone(),
            trained_at: checkpoint.metadata.finished_at.clone(),
            loaded_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
        };
        Ok(LoadedModel {
            version: version.to_string(),
            predictor,
            info,
        })
    }
}
