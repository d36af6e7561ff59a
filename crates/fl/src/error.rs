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
    /// Building, training, evaluating or storing a model failed.
    #[error(transparent)]
    Model(#[from] bloginfer_model::ModelError),
    /// A tensor operation failed (a shape, dtype or device mismatch).
    #[error(transparent)]
    Tensor(#[from] candle_core::Error),
    /// A TSV data file could not be read or has a malformed row.
    #[error(transparent)]
    Data(#[from] bloginfer_model::data::DataError),
    /// File-system or socket I/O failed.
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: String,
        /// The I/O error itself.
        source: std::io::Error,
    },
    /// The aggregator answered with an error status.
    #[error("aggregator refused the request ({status}): {message}")]
    Refused {
        /// The HTTP status of the refusal (401 bad token, 409 wrong round, ...).
        status: u16,
        /// The code from the error's JSON body, e.g. `stale_round`.
        code: String,
        /// The aggregator's message, for people.
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
