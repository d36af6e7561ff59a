//! What can go wrong serving predictions, and how each answers.

use bloginfer_service::ServiceError;

/// What can go wrong serving predictions.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// Model code or the registry failed.
    #[error(transparent)]
    Model(#[from] bloginfer_model::ModelError),
    /// No model is loaded yet.
    #[error("no model is loaded yet")]
    NotReady,
    /// The request queue is full.
    #[error("the server is busy; retry shortly")]
    Overloaded,
    /// The service is shutting down.
    #[error("the service is shutting down")]
    ShuttingDown,
    /// The prediction itself failed.
    #[error("prediction failed: {0}")]
    Prediction(String),
}

impl From<InferError> for ServiceError {
    fn from(e: InferError) -> Self {
        match e {
            InferError::NotReady => Self::unavailable("model_not_ready", e.to_string()),
            InferError::Overloaded => Self::unavailable("overloaded", e.to_string()),
            InferError::ShuttingDown => Self::unavailable("shutting_down", e.to_string()),
            InferError::Model(_) | InferError::Prediction(_) => Self::internal(e),
        }
    }
}
