//! One module and router per resource, merged here.

mod articles;
mod comments;
pub mod inference;
mod profiles;
mod tags;
mod users;

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, Method, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::{Json, Router};
use tower_http::cors::{Any, CorsLayer};

use crate::error::ApiError;
use crate::AppState;

pub(crate) use articles::Listing;

/// The blog API's routes (no fallback, so the all-in-one app can add its own);
/// `with_metrics` adds `/metrics` (the all-in-one app serves inference's there).
pub fn routes(state: Arc<AppState>, with_metrics: bool) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE]);
    let mut router = Router::new()
        .merge(users::router())
        .merge(articles::router())
        .merge(comments::router())
        .merge(profiles::router())
        .merge(tags::router())
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz));
    if state.inference_proxy.is_some() {
        router = router.merge(inference::router());
    }
    if with_metrics {
        router = router.route("/metrics", get(metrics));
    }
    router
        .layer(axum::middleware::from_fn_with_state(state.clone(), record))
        .layer(cors)
        .with_state(state)
}

/// The JSON 404.
pub async fn not_found() -> ApiError {
    ApiError::NotFound("endpoint")
}

async fn readyz(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    match sqlx::query("SELECT 1").execute(state.db.read()).await {
        Ok(_) => (StatusCode::OK, Json(serde_json::json!({"ready": true}))),
        Err(e) => {
            tracing::warn!("database not reachable: {e}");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                Json(serde_json::json!({"ready": false})),
            )
        }
    }
}

async fn record(
    State(state): State<Arc<AppState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", axum::extract::MatchedPath::as_str)
        .to_string();
    let start = std::time::Instant::now();
    let response = next.run(request).await;
    state.metrics.observe(
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

async fn metrics(State(state): State<Arc<AppState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.metrics.render(),
    )
}
