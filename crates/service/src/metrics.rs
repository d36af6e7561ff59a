//! Prometheus metrics: the request families every service reports (requests
//! and latency by service, route and status), and the one OpenMetrics page a
//! process serves, whatever services it hosts.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;

/// The content type of the metrics page.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// Labels of one request.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RequestLabels {
    /// The service that answered (`blog`, `infer`, `fl`, `orchestrator`).
    pub service: &'static str,
    /// The matched route template (`/api/articles/{slug}`), never the raw path,
    /// so a client cannot grow the label set.
    pub route: String,
    /// The HTTP status.
    pub status: u16,
}

/// Request counts and latency, shared by every service of a process.
#[derive(Clone)]
pub struct HttpMetrics {
    requests: Family<RequestLabels, Counter>,
    latency: Family<RequestLabels, Histogram>,
}

impl HttpMetrics {
    /// Registers the request families (`http_requests`,
    /// `http_request_duration_seconds`) in `registry`.
    pub fn register(registry: &mut Registry) -> Self {
        let metrics = Self {
            requests: Family::default(),
            latency: Family::new_with_constructor(|| {
                Histogram::new(exponential_buckets(0.0002, 2.0, 16))
            }),
        };
        registry.register(
            "http_requests",
            "HTTP requests by service, route and status",
            metrics.requests.clone(),
        );
        registry.register(
            "http_request_duration_seconds",
            "HTTP latency by service, route and status",
            metrics.latency.clone(),
        );
        metrics
    }

    /// Records one finished request.
    pub fn observe(&self, service: &'static str, route: String, status: u16, seconds: f64) {
        let labels = RequestLabels {
            service,
            route,
            status,
        };
        self.requests.get_or_create(&labels).inc();
        self.latency.get_or_create(&labels).observe(seconds);
    }
}

/// What the tracking middleware of one service needs.
#[derive(Clone)]
pub(crate) struct Tracked {
    pub metrics: HttpMetrics,
    pub service: &'static str,
}

/// Middleware: counts and times every request a service's routes answer.
pub(crate) async fn track(
    State(tracked): State<Tracked>,
    request: Request,
    next: Next,
) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    tracked.metrics.observe(
        tracked.service,
        route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

/// Registers `bloginfer_build_info{version} 1`, so dashboards can tell
/// versions apart during a rollout.
pub(crate) fn register_build_info(registry: &mut Registry) {
    #[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
    struct Build {
        version: &'static str,
    }
    let info = Family::<Build, Gauge>::default();
    info.get_or_create(&Build {
        version: env!("CARGO_PKG_VERSION"),
    })
    .set(1);
    registry.register("build_info", "The running build (always 1)", info);
}

/// The OpenMetrics text of `registry` (an empty page if encoding fails, which
/// only a broken label encoder could cause).
pub fn encode(registry: &Registry) -> String {
    let mut out = String::new();
    if prometheus_client::encoding::text::encode(&mut out, registry).is_err() {
        tracing::error!("cannot encode the metrics page");
        out.clear();
    }
    out
}

/// The `/metrics` answer for `registry`.
pub(crate) fn page(registry: &Arc<Registry>) -> Response {
    (
        [(header::CONTENT_TYPE, OPENMETRICS_CONTENT_TYPE)],
        encode(registry),
    )
        .into_response()
}
