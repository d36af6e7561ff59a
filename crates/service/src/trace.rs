//! What wraps every request of every service: a request id (the client's
//! `x-request-id` when it is short and plain, else a fresh one, echoed in the
//! response), a tracing span that carries it to every log line of the
//! request, the logging of error causes inside that span, and the request
//! deadline.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower_http::request_id::{MakeRequestId, PropagateRequestIdLayer, RequestId};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use tracing::Level;

use crate::error::{ErrorCause, ServiceError};

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Makes request ids: a per-process random prefix and a counter, cheaper than
/// a random id per request and still unique across replicas.
#[derive(Clone)]
struct RequestIds {
    prefix: Arc<str>,
    next: Arc<AtomicU64>,
}

impl MakeRequestId for RequestIds {
    fn make_request_id<B>(&mut self, _request: &Request<B>) -> Option<RequestId> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        HeaderValue::from_str(&format!("{}-{n}", self.prefix))
            .ok()
            .map(RequestId::new)
    }
}

/// Middleware: keeps a client's request id only when it is 1-64 of
/// `[A-Za-z0-9._-]` (it goes into logs), so the id layer makes a fresh one
/// otherwise.
async fn sanitise_request_id(mut request: Request, next: Next) -> Response {
    let acceptable = request.headers().get(&X_REQUEST_ID).is_some_and(|v| {
        let b = v.as_bytes();
        !b.is_empty()
            && b.len() <= 64
            && b.iter()
                .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
    });
    if !acceptable {
        request.headers_mut().remove(&X_REQUEST_ID);
    }
    next.run(request).await
}

/// Middleware: logs the cause a [`ServiceError`] attached, inside the
/// request's span (errors for 5xx, debug lines for 4xx), and takes it off
/// the response.
async fn log_error_causes(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if let Some(ErrorCause(cause)) = response.extensions_mut().remove::<ErrorCause>() {
        let status = response.status().as_u16();
        if response.status().is_server_error() {
            tracing::error!(status, "request failed: {cause}");
        } else {
            tracing::debug!(status, "request refused: {cause}");
        }
    }
    response
}

/// Middleware: answers 503 `timeout` when a request takes longer than its deadline.
async fn deadline(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ServiceError::unavailable(
            "timeout",
            format!("the request took longer than {} s", limit.as_secs_f64()),
        )
        .with_cause("request deadline passed")
        .into_response(),
    }
}

/// Wraps `router` in the layers above.
pub(crate) fn wrap(router: Router, request_timeout: Duration) -> Router {
    let ids = RequestIds {
        prefix: Arc::from(bloginfer_common::random_hex(4)),
        next: Arc::new(AtomicU64::new(1)),
    };
    let trace = TraceLayer::new_for_http()
        .make_span_with(|request: &Request| {
            let id = request
                .headers()
                .get(&X_REQUEST_ID)
                .and_then(|v| v.to_str().ok())
                .unwrap_or("-");
            tracing::info_span!(
                target: "bloginfer::http",
                "request",
                method = %request.method(),
                path = %request.uri().path(),
                id,
            )
        })
        .on_request(())
        .on_response(DefaultOnResponse::new().level(Level::DEBUG))
        .on_failure(());
    // Layers run outside in, the last added first.
    router
        .layer(axum::middleware::from_fn_with_state(
            request_timeout,
            deadline,
        ))
        .layer(axum::middleware::from_fn(log_error_causes))
        .layer(PropagateRequestIdLayer::new(X_REQUEST_ID.clone()))
        .layer(trace)
        .layer(tower_http::request_id::SetRequestIdLayer::new(
            X_REQUEST_ID.clone(),
            ids,
        ))
        .layer(axum::middleware::from_fn(sanitise_request_id))
}
