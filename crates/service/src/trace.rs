//! What wraps every request of a host, once and outside the router (a layer
//! per route would be cloned and boxed for every request): a request id, a
//! tracing span that carries it to every log line of the request, the logging
//! of error causes inside that span, and the request deadline.

use std::convert::Infallible;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::extract::Request;
use axum::http::{HeaderName, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Router;
use tower::Service;
use tracing::Instrument;

use crate::error::{ErrorCause, ServiceError};
use crate::BoxFuture;

static X_REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");

/// Makes request ids: a counter starting at a random point, so that ids are
/// unique across a process's life and, in practice, across replicas, at the
/// cost of an integer formatting (no allocation of a formatted string).
#[derive(Clone)]
struct RequestIds {
    next: Arc<AtomicU64>,
}

impl RequestIds {
    fn new() -> Self {
        // 48 random bits leave room for 2^64 - 2^48 requests before wrapping.
        let start = u64::from_str_radix(&bloginfer_common::random_hex(6), 16).unwrap_or(0);
        Self {
            next: Arc::new(AtomicU64::new(start)),
        }
    }

    fn make(&self) -> HeaderValue {
        HeaderValue::from(self.next.fetch_add(1, Ordering::Relaxed))
    }
}

/// Whether a client's request id may be kept: 1-64 of `[A-Za-z0-9._-]` (it
/// goes into logs).
fn acceptable_id(value: &HeaderValue) -> bool {
    let b = value.as_bytes();
    !b.is_empty()
        && b.len() <= 64
        && b.iter()
            .all(|c| c.is_ascii_alphanumeric() || b"._-".contains(c))
}

/// What every request of a host goes through, once and outside the router:
/// it gets an id (the client's `x-request-id` when acceptable, else a fresh
/// one, echoed in the response) and a DEBUG span carrying the id; it runs
/// under the request deadline; and the cause a [`ServiceError`] attached is
/// logged with the id (errors for 5xx, debug lines for 4xx) and taken off the
/// response. One service and one boxed future per request: tower-http's
/// `TraceLayer` and request-id layers, stacked, cost a tenth of a cached page's
/// throughput (a second span entry on every body poll, a future per layer).
#[derive(Clone)]
pub struct RequestContext {
    inner: Router,
    ids: RequestIds,
    limit: Duration,
}

/// What a host serves: its router inside the [`RequestContext`].
pub type HostService = RequestContext;

impl Service<Request> for RequestContext {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Service::<Request>::poll_ready(&mut self.inner, cx)
    }

    fn call(&mut self, request: Request) -> Self::Future {
        // Only this context reads the id (no handler does), so a fresh one
        // goes on the response alone.
        let id = match request.headers().get(&X_REQUEST_ID) {
            Some(given) if acceptable_id(given) => given.clone(),
            _ => self.ids.make(),
        };
        // A DEBUG span, as tower-http's `TraceLayer` makes by default: an
        // enabled span costs about a tenth of a cached page's throughput, so
        // it ties every line of a request to its id only when asked for
        // (`bloginfer::http=debug`); the errors' own lines always carry the id.
        let span = tracing::debug_span!(
            target: "bloginfer::http",
            "request",
            id = id.to_str().unwrap_or("-"),
        );
        let (method, uri) = (request.method().clone(), request.uri().clone());
        let answer = self.inner.call(request);
        let limit = self.limit;
        Box::pin(
            async move {
                let mut response = match (Deadline {
                    answer,
                    limit,
                    timer: None,
                })
                .await
                {
                    Ok(response) => response?,
                    Err(Elapsed) => ServiceError::unavailable(
                        "timeout",
                        format!("the request took longer than {} s", limit.as_secs_f64()),
                    )
                    .with_cause("request deadline passed")
                    .into_response(),
                };
                if let Some(ErrorCause(cause)) = response.extensions_mut().remove::<ErrorCause>()
                {
                    let status = response.status().as_u16();
                    let request_id = id.to_str().unwrap_or("-");
                    if response.status().is_server_error() {
                        tracing::error!(status, %method, path = uri.path(), request_id, "request failed: {cause}");
                    } else {
                        tracing::debug!(status, %method, path = uri.path(), request_id, "request refused: {cause}");
                    }
                }
                response.headers_mut().insert(X_REQUEST_ID.clone(), id);
                Ok(response)
            }
            .instrument(span),
        )
    }
}

/// The request deadline passed.
struct Elapsed;

/// A request's answer under its deadline. The timer starts only when the
/// answer is not ready at the first poll: most answers are (a cached page, a
/// validation error), and a timer per request (a timer-wheel insertion under a
/// lock) was a measurable part of their cost. The deadline then counts from
/// the first poll, a moment after the request arrived.
struct Deadline<F> {
    answer: F,
    limit: Duration,
    timer: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl<F: Future + Unpin> Future for Deadline<F> {
    type Output = Result<F::Output, Elapsed>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        if let Poll::Ready(answer) = Pin::new(&mut self.answer).poll(cx) {
            return Poll::Ready(Ok(answer));
        }
        let limit = self.limit;
        let timer = self
            .timer
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match timer.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(Elapsed)),
            Poll::Pending => Poll::Pending,
        }
    }
}

/// The host's service: `router` inside the [`RequestContext`].
pub(crate) fn wrap(router: Router, request_timeout: Duration) -> HostService {
    RequestContext {
        inner: router,
        ids: RequestIds::new(),
        limit: request_timeout,
    }
}
