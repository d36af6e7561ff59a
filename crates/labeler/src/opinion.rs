//! What the current model thinks of a text. The model is a
//! [`ModelFollower`] of the registry: in `bloginfer up` the one inference
//! serves with (so a comment's shown sentiment and its sample's model opinion
//! come from the same version), elsewhere the labeler's own, which it
//! refreshes before each look. The fallback labeler takes confident
//! predictions as pseudo labels; with an LLM, a confident contrary prediction
//! holds the LLM's label for review.

use std::sync::Arc;

use bloginfer_model::{ModelFollower, Reload};

use crate::error::LabelerError;
use crate::sample::ModelView;

/// The current model's view of texts.
pub struct CurrentModel {
    follower: Arc<ModelFollower>,
    refresh: bool,
}

impl CurrentModel {
    /// Views from `follower`; `refresh` makes this labeler move it to the
    /// registry's current version itself (when nobody else drives it).
    pub fn new(follower: Arc<ModelFollower>, refresh: bool) -> Self {
        Self { follower, refresh }
    }

    /// The model's view of each text, or `None` while there is no model.
    pub async fn predict(
        &self,
        texts: Vec<String>,
    ) -> Result<Option<Vec<ModelView>>, LabelerError> {
        if self.refresh {
            let follower = self.follower.clone();
            match tokio::task::spawn_blocking(move || follower.reload())
                .await
                .map_err(|e| LabelerError::Task(e.to_string()))?
            {
                Reload::Loaded(version) => {
                    tracing::info!(%version, "labeler loaded the current model");
                }
                Reload::Failed(why) => tracing::warn!("labeler keeps its model: {why}"),
                Reload::Unchanged => {}
            }
        }
        let Some(model) = self.follower.get() else {
            return Ok(None);
        };
        let predictions = tokio::task::spawn_blocking({
            let model = model.clone();
            move || {
                let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
                model.predictor.predict(&refs)
            }
        })
        .await
        .map_err(|e| LabelerError::Task(e.to_string()))??;
        Ok(Some(
            predictions
                .into_iter()
                .map(|p| ModelView {
                    p_positive: f64::from(p.score),
                    version: model.version.clone(),
                })
                .collect(),
        ))
    }
}
