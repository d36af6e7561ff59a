//! The public inference endpoints (`/v1/sentiment...`) forwarded to the
//! inference service, so that a browser behind the gateway reaches inference
//! only through the blog (in a cluster only the blog and the orchestrator may
//! talk to it). Bodies, status, content type and `Retry-After` pass through.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{header, HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::Router;

use crate::error::ApiError;
use crate::AppState;

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/v1/sentiment", post(forward))
        .route("/v1/sentiment/batch", post(forward))
        .route("/v1/sentiment/model", get(forward))
        .route("/v1/sentiment/stats", get(forward))
}

const UNREACHABLE: &str = "the inference service is unreachable; retry shortly";

/// The inference service's base URL and a client for forwarding.
pub struct InferenceProxy {
    http: reqwest::Client,
    base: String,
}

impl InferenceProxy {
    /// Forwards to the service at `base_url`.
    pub fn new(base_url: &str) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .pool_idle_timeout(bloginfer_service::CLIENT_POOL_IDLE_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            http,
            base: base_url.trim_end_matches('/').to_string(),
        })
    }
}

async fn forward(
    State(state): State<Arc<AppState>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Result<Response, ApiError> {
    let Some(proxy) = &state.inference_proxy else {
        return Err(ApiError::NotFound("endpoint"));
    };
    let mut request = proxy
        .http
        .request(method, format!("{}{}", proxy.base, uri.path()))
        .body(body);
    if let Some(kind) = headers.get(header::CONTENT_TYPE) {
        request = request.header(header::CONTENT_TYPE, kind);
    }
    let answer = request
        .send()
        .await
        .map_err(|e| ApiError::unavailable(UNREACHABLE, format_args!("inference: {e}")))?;
    let status = StatusCode::from_u16(answer.status().as_u16())
        .map_err(|e| ApiError::Internal(e.to_string()))?;
    let mut response = Response::builder().status(status);
    for name in [header::CONTENT_TYPE, header::RETRY_AFTER] {
        if let Some(value) = answer.headers().get(name.as_str()) {
            response = response.header(name, value.as_bytes());
        }
    }
    let bytes = answer.bytes().await.map_err(|e| {
        ApiError::unavailable(UNREACHABLE, format_args!("inference answer cut short: {e}"))
    })?;
    response
        .body(Body::from(bytes))
        .map(IntoResponse::into_response)
        .map_err(|e| ApiError::Internal(e.to_string()))
}
