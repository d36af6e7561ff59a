//! What the labeler fails with.

/// A failure of the labeler.
#[derive(Debug, thiserror::Error)]
pub enum LabelerError {
    /// A query or transaction failed, or the database could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The model could not be loaded or run.
    #[error("model: {0}")]
    Model(#[from] bloginfer_model::ModelError),
    /// A blocking task died.
    #[error("background task failed: {0}")]
    Task(String),
    /// A setting is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// Stored data is not what it should be.
    #[error("corrupt record: {0}")]
    Corrupt(String),
}
