//! What the orchestrator's domain code fails with.

/// A failure of the orchestrator.
#[derive(Debug, thiserror::Error)]
pub enum OrchestratorError {
    /// A query or transaction failed, or the database could not be reached.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
    /// The model registry or a model failed.
    #[error("model: {0}")]
    Model(#[from] bloginfer_model::ModelError),
    /// Preparing or reading federated-run files failed.
    #[error("federated run: {0}")]
    Fl(#[from] bloginfer_fl::FlError),
    /// The feedback loop's store failed.
    #[error("feedback: {0}")]
    Feedback(#[from] bloginfer_labeler::LabelerError),
    /// A launcher could not start, follow or stop a run.
    #[error("launcher: {0}")]
    Launch(String),
    /// The Kubernetes API refused or failed.
    #[error("kubernetes: {0}")]
    Kubernetes(String),
    /// A file could not be read or written.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error itself.
        source: std::io::Error,
    },
    /// Stored data is not what it should be.
    #[error("corrupt record: {0}")]
    Corrupt(String),
    /// A setting is unusable.
    #[error("configuration: {0}")]
    Config(String),
    /// The admin token is too weak to use.
    #[error("configuration: {0}")]
    AdminToken(#[from] crate::http::AdminTokenError),
}

impl OrchestratorError {
    /// An I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// The orchestrator's result type.
pub type Result<T, E = OrchestratorError> = std::result::Result<T, E>;
