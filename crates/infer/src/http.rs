//! HTTP routes. Handlers parse, validate, hand texts to the batcher and map
//! the result; every error is `{"error": {"code", "message"}}`.

use std::sync::Arc;
use std::time::Instant;

use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, MatchedPath, Request, State};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bloginfer_model::Prediction;
use serde::{Deserialize, Serialize};

use crate::error::InferError;
use crate::Shared;

/// Most texts in one batch request.
pub const MAX_BATCH_TEXTS: usize = 256;

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }
}

impl From<InferError> for ApiError {
    fn from(e: InferError) -> Self {
        let status = match e {
            InferError::NotReady | InferError::Overloaded | InferError::ShuttingDown => {
                StatusCode::SERVICE_UNAVAILABLE
            }
            InferError::Model(_) | InferError::Prediction(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        let code = match e {
            InferError::NotReady => "model_not_ready",
            InferError::Overloaded => "overloaded",
            InferError::ShuttingDown => "shutting_down",
            _ => "internal",
        };
        Self::new(status, code, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({"error": {"code": self.code, "message": self.message}});
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
        }
        response
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The JSON 404 answer (for routers that serve nothing else).
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

/// The inference routes, without a fallback, so they can be merged into a
/// larger app (which brings its own). `probes` adds `/healthz` and `/readyz`.
pub fn router(shared: Arc<Shared>, probes: bool) -> Router {
    let mut routes = Router::new()
        .route("/v1/sentiment", post(single))
        .route("/v1/sentiment/batch", post(batch))
        .route("/v1/sentiment/model", get(model))
        .route("/v1/sentiment/stats", get(stats))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        );
    if probes {
        routes = routes
            .route("/metrics", get(metrics))
            .route(
                "/healthz",
                get(|| async { Json(serde_json::json!({"status": "ok"})) }),
            )
            .route("/readyz", get(readyz));
    }
    routes
        .method_not_allowed_fallback(|| async {
            ApiError::new(
                StatusCode::METHOD_NOT_ALLOWED,
                "method_not_allowed",
                "method not allowed on this endpoint",
            )
        })
        .layer(middleware::from_fn_with_state(shared.clone(), record))
        .layer(DefaultBodyLimit::max(shared.max_body_bytes))
        .with_state(shared)
}

async fn record(State(shared): State<Arc<Shared>>, request: Request, next: Next) -> Response {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", MatchedPath::as_str)
        .to_string();
    let start = Instant::now();
    let response = next.run(request).await;
    shared.metrics.observe(
        &route,
        response.status().as_u16(),
        start.elapsed().as_secs_f64(),
    );
    response
}

/// `POST /v1/sentiment` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct SingleRequest {
    text: String,
}

/// `POST /v1/sentiment/batch` body.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct BatchRequest {
    texts: Vec<String>,
}

/// Probabilities by class.
#[derive(Serialize)]
struct Probabilities {
    negative: f32,
    positive: f32,
}

/// One answer.
#[derive(Serialize)]
struct SentimentResponse {
    label: &'static str,
    score: f32,
    probabilities: Probabilities,
    model_version: String,
}

impl SentimentResponse {
    fn new(p: &Prediction, version: &str) -> Self {
        Self {
            label: p.label,
            score: p.score,
            probabilities: Probabilities {
                negative: p.probabilities[0],
                positive: p.probabilities[1],
            },
            model_version: version.to_string(),
        }
    }
}

#[derive(Serialize)]
struct BatchResponse {
    results: Vec<SentimentResponse>,
    model_version: String,
}

fn parse<T: serde::de::DeserializeOwned>(body: Result<Bytes, BytesRejection>) -> ApiResult<T> {
    let bytes = body.map_err(|r| {
        if r.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "body_too_large",
                "the request body is too large",
            )
        } else {
            ApiError::new(StatusCode::BAD_REQUEST, "unreadable_body", r.body_text())
        }
    })?;
    let invalid = |e: serde_json::Error| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            format!("invalid request body: {e}"),
        )
    };
    // Parse to a value first: serde would otherwise accept `["text"]` for `{"text": ...}`.
    let value: serde_json::Value = serde_json::from_slice(&bytes).map_err(invalid)?;
    if !value.is_object() {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "invalid_json",
            "the request body must be a JSON object",
        ));
    }
    serde_json::from_value(value).map_err(invalid)
}

fn check_text(text: &str, what: &str) -> ApiResult<()> {
    if text.trim().is_empty() {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_text",
            format!("{what} is empty or only whitespace"),
        ));
    }
    Ok(())
}

async fn single(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<SentimentResponse>> {
    let request: SingleRequest = parse(body)?;
    check_text(&request.text, "text")?;
    let scored = shared.batcher.predict(vec![request.text]).await?;
    let p = scored
        .predictions
        .first()
        .ok_or_else(|| ApiError::from(InferError::Prediction("no prediction returned".into())))?;
    Ok(Json(SentimentResponse::new(p, &scored.version)))
}

async fn batch(
    State(shared): State<Arc<Shared>>,
    body: Result<Bytes, BytesRejection>,
) -> ApiResult<Json<BatchResponse>> {
    let request: BatchRequest = parse(body)?;
    if request.texts.is_empty() || request.texts.len() > MAX_BATCH_TEXTS {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_batch_size",
            format!(
                "texts must hold 1 to {MAX_BATCH_TEXTS} items, got {}",
                request.texts.len()
            ),
        ));
    }
    for (i, text) in request.texts.iter().enumerate() {
        check_text(text, &format!("texts[{i}]"))?;
    }
    let scored = shared.batcher.predict(request.texts).await?;
    Ok(Json(BatchResponse {
        results: scored
            .predictions
            .iter()
            .map(|p| SentimentResponse::new(p, &scored.version))
            .collect(),
        model_version: scored.version,
    }))
}

async fn model(State(shared): State<Arc<Shared>>) -> ApiResult<Json<crate::store::ModelInfo>> {
    let loaded = shared.store.get().ok_or(InferError::NotReady)?;
    Ok(Json(loaded.info.clone()))
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<crate::metrics::Stats> {
    Json(
        shared
            .metrics
            .stats(shared.store.get().map(|m| m.version.clone())),
    )
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    match shared.store.get() {
        Some(m) => {
            Json(serde_json::json!({"ready": true, "model_version": m.version})).into_response()
        }
        None => ApiError::from(InferError::NotReady).into_response(),
    }
}

async fn metrics(State(shared): State<Arc<Shared>>) -> Response {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        shared.metrics.render(),
    )
        .into_response()
}
