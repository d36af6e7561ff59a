//! The one error type of the blog API and its JSON rendering: 422
//! `{"errors": {field: [messages]}}` (RealWorld), everything else
//! `{"error": {"code", "message"}}`.

use std::collections::BTreeMap;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;

/// What a request can fail with.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// No valid session (missing, malformed, expired or revoked token).
    #[error("authentication required")]
    Unauthorized,
    /// Signed in, but not allowed.
    #[error("not allowed")]
    Forbidden,
    /// The named thing does not exist.
    #[error("{0} not found")]
    NotFound(&'static str),
    /// Validation or uniqueness failed, per field.
    #[error("unprocessable entity")]
    Unprocessable(BTreeMap<String, Vec<String>>),
    /// Too many attempts; retry after this long.
    #[error("too many attempts; retry in {} s", .0.as_secs().max(1))]
    TooManyRequests(std::time::Duration),
    /// A backing service (the session store) is unreachable.
    #[error("{0}")]
    Unavailable(&'static str),
    /// The database failed.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Anything else that is our fault.
    #[error("internal error: {0}")]
    Internal(String),
}

impl ApiError {
    /// A 422 with one message for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Unprocessable(BTreeMap::from([(field.to_string(), vec![message.into()])]))
    }
}

/// Collects validation messages per field.
#[derive(Debug, Default)]
pub struct Problems(BTreeMap<String, Vec<String>>);

impl Problems {
    /// Adds `message` for `field` when `failed`.
    pub fn check(&mut self, failed: bool, field: &str, message: &str) {
        if failed {
            self.0
                .entry(field.to_string())
                .or_default()
                .push(message.to_string());
        }
    }

    /// `Ok` when nothing was added, else the 422.
    pub fn into_result(self) -> Result<(), ApiError> {
        if self.0.is_empty() {
            Ok(())
        } else {
            Err(ApiError::Unprocessable(self.0))
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let (status, code) = match &self {
            Self::Unprocessable(errors) => {
                return (
                    StatusCode::UNPROCESSABLE_ENTITY,
                    Json(serde_json::json!({ "errors": errors })),
                )
                    .into_response()
            }
            Self::TooManyRequests(retry) => {
                let body = Json(serde_json::json!({"error": {
                    "code": "too_many_requests",
                    "message": self.to_string(),
                }}));
                let seconds = retry.as_secs().max(1).to_string();
                return (
                    StatusCode::TOO_MANY_REQUESTS,
                    [(axum::http::header::RETRY_AFTER, seconds)],
                    body,
                )
                    .into_response();
            }
            Self::Unauthorized => (StatusCode::UNAUTHORIZED, "unauthorized"),
            Self::Forbidden => (StatusCode::FORBIDDEN, "forbidden"),
            Self::NotFound(_) => (StatusCode::NOT_FOUND, "not_found"),
            Self::Unavailable(_) => (StatusCode::SERVICE_UNAVAILABLE, "unavailable"),
            Self::Database(e) => {
                tracing::error!("database error: {e}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
            Self::Internal(e) => {
                tracing::error!("internal error: {e}");
                (StatusCode::INTERNAL_SERVER_ERROR, "internal")
            }
        };
        let message = match &self {
            Self::Database(_) | Self::Internal(_) => "something went wrong on our side".to_string(),
            other => other.to_string(),
        };
        (
            status,
            Json(serde_json::json!({"error": {"code": code, "message": message}})),
        )
            .into_response()
    }
}

/// Maps a unique-constraint violation on insert or update to a 422 on the
/// field the constraint guards; other errors pass through.
pub fn unique_violation(e: sqlx::Error, fields: &[(&str, &str)]) -> ApiError {
    if let sqlx::Error::Database(db) = &e {
        if db.is_unique_violation() {
            let message = db.message().to_lowercase();
            for (needle, field) in fields {
                if message.contains(needle) {
                    return ApiError::field(field, "has already been taken");
                }
            }
        }
    }
    ApiError::Database(e)
}
