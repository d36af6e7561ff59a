//! The model a process serves, following the registry: the version the
//! `current` pointer names (or a pinned one), loaded once, swapped atomically,
//! and a version that fails to load refused and not retried until the pointer
//! moves. Inference and the labeler of one process share one follower, so a
//! comment's shown sentiment and the model opinion stored with its training
//! sample come from the same version.
//!
//! Loading is blocking (file reads, hashing, packing weights): callers on an
//! async runtime run [`ModelFollower::reload`] on a blocking thread.

use std::sync::{Arc, Mutex, RwLock};
use std::time::SystemTime;

use bloginfer_common::{lock, read, write};
use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::error::Result;
use crate::predict::Predictor;
use crate::registry::Registry;

/// A model ready to serve.
pub struct LoadedModel {
    /// The registry version these weights were loaded from.
    pub version: String,
    /// The predictor (weights packed once).
    pub predictor: Predictor,
    /// What the model API shows about it.
    pub info: ModelInfo,
}

/// What `GET /v1/sentiment/model` shows.
#[derive(Debug, Clone, Serialize)]
pub struct ModelInfo {
    /// The registry version being served.
    pub version: String,
    /// The architecture, as stored with the model.
    pub config: crate::ModelConfig,
    /// Validation metrics recorded at training time.
    pub metrics: Option<crate::Metrics>,
    /// `central` or `federated`.
    pub method: String,
    /// When training finished (RFC 3339), from the model's metadata.
    pub trained_at: String,
    /// When this process loaded it (RFC 3339).
    pub loaded_at: String,
}

/// What a reload check did.
#[derive(Debug, Clone, PartialEq)]
pub enum Reload {
    /// Nothing to load: the wanted version is served already, failed before, or
    /// there is none yet.
    Unchanged,
    /// A new version is now served.
    Loaded(String),
    /// The version could not be loaded; the previous model keeps serving.
    Failed(String),
}

/// The served model and where it comes from.
pub struct ModelFollower {
    registry: Registry,
    pinned: Option<String>,
    current: RwLock<Option<Arc<LoadedModel>>>,
    /// The last version that failed to load (not retried until the pointer moves).
    failed: Mutex<Option<String>>,
}

impl ModelFollower {
    /// Follows `registry`'s current pointer, or serves `pinned` when given.
    pub fn new(registry: Registry, pinned: Option<String>) -> Self {
        Self {
            registry,
            pinned,
            current: RwLock::new(None),
            failed: Mutex::new(None),
        }
    }

    /// The registry whose current version (or a pinned one) is served.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The model serving now, if any. Callers keep the `Arc` for the whole
    /// request, so a swap never affects a request in flight.
    pub fn get(&self) -> Option<Arc<LoadedModel>> {
        read(&self.current).clone()
    }

    fn wanted(&self) -> Result<Option<String>> {
        match &self.pinned {
            Some(v) => Ok(Some(v.clone())),
            None => self.registry.current(),
        }
    }

    /// Loads the wanted version if it is not the one serving (blocking).
    pub fn reload(&self) -> Reload {
        let wanted = match self.wanted() {
            Ok(Some(v)) => v,
            Ok(None) => return Reload::Unchanged,
            Err(e) => return Reload::Failed(format!("cannot read the registry: {e}")),
        };
        if self.get().is_some_and(|m| m.version == wanted) {
            return Reload::Unchanged;
        }
        let mut failed = lock(&self.failed);
        if failed.as_deref() == Some(wanted.as_str()) {
            return Reload::Unchanged;
        }
        match self.load(&wanted) {
            Ok(model) => {
                *write(&self.current) = Some(Arc::new(model));
                *failed = None;
                Reload::Loaded(wanted)
            }
            Err(e) => {
                *failed = Some(wanted.clone());
                Reload::Failed(format!("version {wanted}: {e}"))
            }
        }
    }

    fn load(&self, version: &str) -> Result<LoadedModel> {
        let checkpoint = Checkpoint::load(&self.registry.path_of(version)?)?;
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
