//! The one error envelope of every bloginfer API:
//! `{"error": {"code": "...", "message": "..."}}` with a fitting status, and
//! `Retry-After` when waiting helps. A 5xx that is our fault says only
//! "something went wrong on our side"; its cause travels as a response
//! extension to the request's tracing span, where it is logged once
//! (the pattern of axum's `error-handling` example), and never reaches the
//! client.

use std::borrow::Cow;
use std::fmt;
use std::sync::Arc;
use std::time::Duration;

use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::Json;
use serde::Serialize;

/// What went wrong behind a response, for the log only.
#[derive(Debug, Clone)]
pub struct ErrorCause(pub Arc<str>);

/// An API error: status, a stable machine-readable code, a message for people,
/// and optionally how long to wait before retrying.
#[derive(Debug)]
pub struct ServiceError {
    status: StatusCode,
    code: Cow<'static, str>,
    message: String,
    retry_after: Option<Duration>,
    cause: Option<String>,
}

/// The body's shape, shared with clients that parse it (the federated worker).
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ErrorEnvelope {
    /// The error's code and message, under the one key `error`.
    pub error: ErrorDetail,
}

/// The inside of [`ErrorEnvelope`].
#[derive(Debug, Serialize, serde::Deserialize)]
pub struct ErrorDetail {
    /// Stable, machine-readable (`not_found`, `overloaded`, ...).
    pub code: String,
    /// A sentence for people; clients act on `code`, not on this.
    pub message: String,
}

const INTERNAL_MESSAGE: &str = "something went wrong on our side";

impl ServiceError {
    /// An error with `status`, `code` and `message`.
    pub fn new(
        status: StatusCode,
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
    ) -> Self {
        Self {
            status,
            code: code.into(),
            message: message.into(),
            retry_after: None,
            cause: None,
        }
    }

    /// 400: the request cannot be read at all.
    pub fn bad_request(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, code, message)
    }

    /// 401 `unauthorized`: no valid credential.
    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "unauthorized", message)
    }

    /// 403 `forbidden`: a valid credential that may not do this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "forbidden", message)
    }

    /// 404 `not_found`.
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 409: the request conflicts with the current state.
    pub fn conflict(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, code, message)
    }

    /// 413 `body_too_large`.
    pub fn payload_too_large(message: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "body_too_large", message)
    }

    /// 422: well-formed, but not acceptable.
    pub fn unprocessable(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    }

    /// 429 with `Retry-After`.
    pub fn too_many_requests(
        code: impl Into<Cow<'static, str>>,
        message: impl Into<String>,
        retry_after: Duration,
    ) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, code, message).with_retry_after(retry_after)
    }

    /// 503 with `Retry-After: 1`: a dependency or capacity is missing for now.
    pub fn unavailable(code: impl Into<Cow<'static, str>>, message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, code, message)
            .with_retry_after(Duration::from_secs(1))
    }

    /// 500 `internal`: our fault. The client reads a generic message; `cause`
    /// goes to the log.
    pub fn internal(cause: impl fmt::Display) -> Self {
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            INTERNAL_MESSAGE,
        )
        .with_cause(cause)
    }

    /// Sets `Retry-After` (whole seconds, at least 1).
    pub fn with_retry_after(mut self, wait: Duration) -> Self {
        self.retry_after = Some(wait);
        self
    }

    /// Attaches what went wrong, for the log (never the body).
    pub fn with_cause(mut self, cause: impl fmt::Display) -> Self {
        self.cause = Some(cause.to_string());
        self
    }

    /// The HTTP status the response gets.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code the body carries, e.g. `not_found`.
    pub fn code(&self) -> &str {
        &self.code
    }

    /// The message clients read.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ServiceError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} ({}): {}", self.code, self.status, self.message)?;
        if let Some(cause) = &self.cause {
            write!(f, ": {cause}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ServiceError {}

impl IntoResponse for ServiceError {
    fn into_response(self) -> Response {
        let body = ErrorEnvelope {
            error: ErrorDetail {
                code: self.code.into_owned(),
                message: self.message,
            },
        };
        let mut response = (self.status, Json(body)).into_response();
        if let Some(wait) = self.retry_after {
            let seconds = wait.as_secs() + u64::from(wait.subsec_nanos() > 0);
            if let Ok(value) = HeaderValue::from_str(&seconds.max(1).to_string()) {
                response.headers_mut().insert(header::RETRY_AFTER, value);
            }
        }
        if let Some(cause) = self.cause {
            response
                .extensions_mut()
                .insert(ErrorCause(Arc::from(cause)));
        }
        response
    }
}

/// The JSON 404 for paths no service serves.
pub async fn not_found() -> ServiceError {
    ServiceError::not_found("no such endpoint")
}

/// The JSON 405 for a known path with another method.
pub async fn method_not_allowed() -> ServiceError {
    ServiceError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "method not allowed on this endpoint",
    )
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
    async fn internal_errors_keep_their_cause_out_of_the_body() {
        let response = ServiceError::internal("password=hunter2 in a stack trace").into_response();
        assert_eq!(response.status(), 500);
        let cause = response
            .extensions()
            .get::<ErrorCause>()
            .expect("cause attached")
            .0
            .to_string();
        assert!(cause.contains("hunter2"));
        let body = body_of(response).await;
        assert_eq!(body["error"]["code"], "internal");
        assert!(!body.to_string().contains("hunter2"), "{body}");
    }

    #[tokio::test]
    async fn waits_round_up_to_whole_seconds() {
        let response =
            ServiceError::too_many_requests("cooldown", "later", Duration::from_millis(1500))
                .into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "2");
        let response = ServiceError::unavailable("busy", "later").into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let response = ServiceError::too_many_requests("x", "y", Duration::ZERO).into_response();
        assert_eq!(response.headers()[header::RETRY_AFTER], "1");
        let body = body_of(response).await;
        assert_eq!(
            body,
            serde_json::json!({"error": {"code": "x", "message": "y"}})
        );
    }
}
