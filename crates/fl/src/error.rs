//! The crate's error type.

/// What can go wrong in federated training.
#[derive(Debug, thiserror::Error)]
pub enum FlError {
    /// A message or update is malformed or fails validation.
    #[error("invalid: {0}")]
    Invalid(String),
    /// A setting is out of range or inconsistent.
    #[error("configuration: {0}")]
    Config(String),
    /// Model code failed.
    #[error(transparent)]
    Model(#[from] bloginfer_model::ModelError),
    /// Tensor code failed.
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    /// Reading data failed.
    #[error(transparent)]
    Data(#[from] bloginfer_model::data::DataError),
    /// File-system or socket I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The aggregator answered with an error status.
    #[error("aggregator refused the request ({status}): {message}")]
    Refused {
        /// HTTP status.
        status: u16,
        /// Machine-readable code.
        code: String,
        /// Its explanation.
        message: String,
    },
    /// A child process of the launcher failed or did not start.
    #[error("{0}")]
    Process(String),
    /// Stopped by Ctrl-C or SIGTERM.
    #[error("interrupted: stopped the aggregator and all workers")]
    Interrupted,
    /// The aggregator could not be reached.
    #[error("aggregator unreachable: {0}")]
    Unreachable(String),
}

impl FlError {
    /// Wraps an I/O error with what was being done.
    pub fn io(context: impl Into<String>, source: std::io::Error) -> Self {
        Self::Io {
            context: context.into(),
            source,
        }
    }
}

/// Shorthand for results of this crate.
pub type Result<T, E = FlError> = std::result::Result<T, E>;
