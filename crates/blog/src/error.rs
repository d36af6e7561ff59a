//! The blog API's errors. A validation failure is RealWorld's 422
//! `{"errors": {field: [messages]}}`; everything else is rendered by the
//! chassis ([`ServiceError`]): the `{"error": {"code", "message"}}` envelope,
//! `Retry-After`, and a 5xx whose cause goes to the request's log, never to
//! the client.

use std::collections::BTreeMap;
use std::time::Duration;

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bloginfer_service::ServiceError;

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
    TooManyRequests(Duration),
    /// A backing service (the session store, inference) is unreachable.
    #[error("{message}")]
    Unavailable {
        /// What the client reads.
        message: &'static str,
        /// What went wrong, for the log.
        cause: String,
    },
    /// A query or transaction failed, or the database could not be reached.
    #[error("database error: {0}")]
    Database(#[from] sqlx::Error),
    /// Anything else that is our fault.
    #[error("internal error: {0}")]
    Internal(String),
    /// An error the chassis already shaped (a body over the size limit).
    #[error(transparent)]
    Service(#[from] ServiceError),
}

impl ApiError {
    /// A 422 with one message for one field.
    pub fn field(field: &str, message: impl Into<String>) -> Self {
        Self::Unprocessable(BTreeMap::from([(field.to_string(), vec![message.into()])]))
    }

    /// A 503 for an unreachable backing service: the client reads `message`,
    /// the log gets `cause`.
    pub fn unavailable(message: &'static str, cause: impl std::fmt::Display) -> Self {
        Self::Unavailable {
            message,
            cause: cause.to_string(),
        }
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

impl From<ApiError> for ServiceError {
    fn from(e: ApiError) -> Self {
        match e {
            ApiError::Unauthorized => Self::unauthorized(e.to_string()),
            ApiError::Forbidden => Self::forbidden(e.to_string()),
            ApiError::NotFound(_) => Self::not_found(e.to_string()),
            // Only for callers outside HTTP: a response carries the fields
            // (see `IntoResponse for ApiError`).
            ApiError::Unprocessable(ref errors) => {
                let fields: Vec<&str> = errors.keys().map(String::as_str).collect();
                Self::unprocessable(
                    "invalid_request",
                    format!("invalid fields: {}", fields.join(", ")),
                )
            }
            ApiError::TooManyRequests(wait) => {
                Self::too_many_requests("too_many_requests", e.to_string(), wait)
            }
            ApiError::Unavailable { message, cause } => {
                Self::unavailable("unavailable", message).with_cause(cause)
            }
            ApiError::Database(_) | ApiError::Internal(_) => Self::internal(e),
            ApiError::Service(e) => e,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        match self {
            Self::Unprocessable(errors) => (
                StatusCode::UNPROCESSABLE_ENTITY,
                Json(serde_json::json!({ "errors": errors })),
            )
                .into_response(),
            other => ServiceError::from(other).into_response(),
        }
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

#[cfg(test)]
mod tests {
    use super::*;

    async fn body_of(response: Response) -> serde_json::Value {
        let bytes = axum::body::to_bytes(response.into_body(), 1 << 16)
            .await
            .expect("body");
        serde_json::from_slice(&bytes).expect("json")
    }

    #[tokio::test]
    async fn validation_is_realworld_and_the_rest_is_the_envelope() {
        let response = ApiError::field("email", "is invalid").into_response();
        assert_eq!(response.status(), 422);
        assert_eq!(
            body_of(response).await,
            serde_json::json!({"errors": {"email": ["is invalid"]}})
        );
        let response = ApiError::NotFound("article").into_response();
        assert_eq!(response.status(), 404);
        assert_eq!(
            body_of(response).await,
            serde_json::json!({"error": {"code": "not_found", "message": "article not found"}})
        );
        let response = ApiError::TooManyRequests(Duration::from_millis(2500)).into_response();
        assert_eq!(response.status(), 429);
        assert_eq!(response.headers()["retry-after"], "3");
    }

    #[tokio::test]
    async fn internal_causes_stay_out_of_the_body() {
        let response = ApiError::Internal("disk full at /var/secret".into()).into_response();
        assert_eq!(response.status(), 500);
        let body = body_of(response).await;
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("secret"), "{body}");
        let response =
            ApiError::unavailable("retry shortly", "redis at 10.0.0.7 refused").into_response();
        assert_eq!(response.status(), 503);
        assert_eq!(response.headers()["retry-after"], "1");
        let body = body_of(response).await;
        assert_eq!(body["error"]["message"], "retry shortly");
        assert!(!body.to_string().contains("10.0.0.7"), "{body}");
    }
}
