//! HTTP routes. Handlers parse, validate, hand texts to the batcher and map
//! the result; errors are the chassis's envelope.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use bloginfer_model::Prediction;
use bloginfer_service::{JsonBody, ServiceError, ServiceResult};
use serde::{Deserialize, Serialize};

use crate::error::InferError;
use crate::Shared;

/// Most texts in one batch request.
pub const MAX_BATCH_TEXTS: usize = 256;

/// The inference routes (the host adds probes, metrics and the fallback).
pub fn router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route("/v1/sentiment", post(single))
        .route("/v1/sentiment/batch", post(batch))
        .route("/v1/sentiment/model", get(model))
        .route("/v1/sentiment/stats", get(stats))
        .route(
            "/openapi.json",
            get(|| async { Json(crate::openapi::document()) }),
        )
        .method_not_allowed_fallback(bloginfer_service::error::method_not_allowed)
        .layer(DefaultBodyLimit::max(shared.max_body_bytes))
        .with_state(shared)
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

/// The answer for one text, with the model version that gave it.
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

fn check_text(text: &str, what: &str) -> ServiceResult<()> {
    if text.trim().is_empty() {
        return Err(ServiceError::unprocessable(
            "empty_text",
            format!("{what} is empty or only whitespace"),
        ));
    }
    Ok(())
}

async fn single(
    State(shared): State<Arc<Shared>>,
    JsonBody(request): JsonBody<SingleRequest>,
) -> ServiceResult<Json<SentimentResponse>> {
    let started = Instant::now();
    let answer = async {
        check_text(&request.text, "text")?;
        let scored = shared.batcher.predict(vec![request.text]).await?;
        let p = scored
            .predictions
            .first()
            .ok_or_else(|| InferError::Prediction("no prediction returned".into()))?;
        Ok(Json(SentimentResponse::new(p, &scored.version)))
    }
    .await;
    shared.metrics.record_prediction(started.elapsed());
    answer
}

async fn batch(
    State(shared): State<Arc<Shared>>,
    JsonBody(request): JsonBody<BatchRequest>,
) -> ServiceResult<Json<BatchResponse>> {
    let started = Instant::now();
    let answer = async {
        if request.texts.is_empty() || request.texts.len() > MAX_BATCH_TEXTS {
            return Err(ServiceError::unprocessable(
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
    .await;
    shared.metrics.record_prediction(started.elapsed());
    answer
}

async fn model(
    State(shared): State<Arc<Shared>>,
) -> ServiceResult<Json<bloginfer_model::follow::ModelInfo>> {
    let loaded = shared.follower.get().ok_or(InferError::NotReady)?;
    Ok(Json(loaded.info.clone()))
}

async fn stats(State(shared): State<Arc<Shared>>) -> Json<crate::metrics::Stats> {
    Json(
        shared
            .metrics
            .stats(shared.follower.get().map(|m| m.version.clone())),
    )
}
