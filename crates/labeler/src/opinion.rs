//! What the current model thinks of a text: the registry's current version,
//! loaded in this process and reloaded when the pointer moves. The fallback
//! labeler takes its confident predictions as pseudo labels; with an LLM, a
//! confident contrary prediction holds the LLM's label for review.

use std::sync::{Arc, Mutex};

use bloginfer_model::{Predictor, Registry};

use crate::error::LabelerError;
use crate::sample::ModelView;

/// The current model, loaded on demand.
pub struct CurrentModel {
    registry: Registry,
    loaded: Mutex<Option<(String, Arc<Predictor>)>>,
}

impl CurrentModel {
    /// Follows the current version of `registry`.
    pub fn new(registry: Registry) -> Self {
        Self {
            registry,
            loaded: Mutex::new(None),
        }
    }

    /// The model's view of each text, or `None` while the registry has no current model.
    pub async fn predict(
        &self,
        texts: Vec<String>,
    ) -> Result<Option<Vec<ModelView>>, LabelerError> {
        let registry = self.registry.clone();
        let Some(version) = tokio::task::spawn_blocking(move || registry.current())
            .await
            .map_err(|e| LabelerError::Task(e.to_string()))??
        else {
            return Ok(None);
        };
        let cached = self
            .loaded
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .as_ref()
            .filter(|(v, _)| *v == version)
            .map(|(_, p)| p.clone());
        let predictor = match cached {
            Some(p) => p,
            None => {
                let (registry, v) = (self.registry.clone(), version.clone());
                let predictor = tokio::task::spawn_blocking(move || {
                    registry.load(&v).and_then(|c| Predictor::new(&c))
                })
                .await
                .map_err(|e| LabelerError::Task(e.to_string()))??;
                let predictor = Arc::new(predictor);
                tracing::info!(%version, "labeler loaded the current model");
                *self.loaded.lock().unwrap_or_else(|p| p.into_inner()) =
                    Some((version.clone(), predictor.clone()));
                predictor
            }
        };
        let predictions = tokio::task::spawn_blocking(move || {
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            predictor.predict(&refs)
        })
        .await
        .map_err(|e| LabelerError::Task(e.to_string()))??;
        Ok(Some(
            predictions
                .into_iter()
                .map(|p| ModelView {
                    p_positive: f64::from(p.score),
                    version: version.clone(),
                })
                .collect(),
        ))
    }
}
