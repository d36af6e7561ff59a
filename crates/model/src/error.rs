//! The crate's error type.

/// Everything that can go wrong training, saving, loading or running a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    /// A tensor operation failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    /// Labelled data could not be read.
    #[error(transparent)]
    Data(#[from] crate::data::DataError),
    /// A configuration value is invalid.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// A checkpoint file is unreadable, corrupt, foreign or of another version.
    #[error("checkpoint {path}: {reason}")]
    Checkpoint {
        /// The checkpoint's path.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
    /// A registry operation failed.
    #[error("model registry: {0}")]
    Registry(String),
    /// A file-system operation failed.
    #[error("{context}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error itself.
        source: std::io::Error,
    },
}

impl ModelError {
    pub(crate) fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Result alias for this crate.
pub type Result<T, E = ModelError> = std::result::Result<T, E>;
