//! HTTP routes of the aggregator. Handlers parse, ask the coordinator, and
//! map the answer; every error is an [`ErrorBody`] with a fitting status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{DefaultBodyLimit, Path, Query, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;

use super::coordinator::{Phase, Received, Refusal};
use super::Shared;
use crate::protocol::{
    ErrorBody, ErrorDetail, RegisterRequest, RunPlan, Task, UpdateAccepted, UpdateHeader,
    UPDATE_KIND,
};
use crate::wire::{self, WireSet};

/// How long a task request waits for something to do before answering
/// `wait`: at most 20 s, and short enough that a waiting worker asks again
/// well within its availability lease.
fn long_poll(lease: Duration) -> Duration {
    (lease / 3).clamp(Duration::from_millis(500), Duration::from_secs(20))
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: String,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &str, message: impl Into<String>) -> Self {
        Self {
            status,
            code: code.to_string(),
            message: message.into(),
        }
    }
}

impl From<Refusal> for ApiError {
    fn from(r: Refusal) -> Self {
        Self::new(
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::CONFLICT),
            r.code,
            r.message,
        )
    }
}

impl From<JsonRejection> for ApiError {
    fn from(r: JsonRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_json", r.body_text())
    }
}

impl From<QueryRejection> for ApiError {
    fn from(r: QueryRejection) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "invalid_query", r.body_text())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            error: ErrorDetail {
                code: self.code,
                message: self.message,
            },
        };
        (self.status, Json(body)).into_response()
    }
}

type ApiResult<T> = Result<T, ApiError>;

/// The aggregator's router.
pub fn app(shared: Arc<Shared>) -> Router {
    let limit = shared.config.max_body_bytes;
    let protected = Router::new()
        .route("/v1/register", post(register))
        .route("/v1/task", get(task))
        .route("/v1/rounds/{round}/weights", get(weights))
        .route("/v1/rounds/{round}/update", post(update))
        .route("/v1/status", get(status))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ));
    Router::new()
        .merge(protected)
        .route(
            "/healthz",
            get(|| async { Json(serde_json::json!({"status": "ok"})) }),
        )
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(|| async {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
        })
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

async fn require_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    request: Request,
    next: Next,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    if !constant_time_eq(presented.as_bytes(), shared.config.token.as_bytes()) {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong run token",
        )
        .into_response();
    }
    next.run(request).await
}

fn valid_worker_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 64
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
}

async fn register(
    State(shared): State<Arc<Shared>>,
    body: Result<Json<RegisterRequest>, JsonRejection>,
) -> ApiResult<Json<RunPlan>> {
    let Json(req) = body?;
    if !valid_worker_id(&req.worker_id) {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_worker_id",
            "worker_id must be 1-64 of [A-Za-z0-9._-]",
        ));
    }
    if req.samples == 0 {
        return Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "empty_shard",
            "a worker needs at least one sample",
        ));
    }
    let current_round = {
        let mut c = shared.lock();
        c.register(&req.worker_id, req.samples, Instant::now());
        c.round
    };
    tracing::info!(worker = %req.worker_id, samples = req.samples, "worker registered");
    shared.notify();
    let cfg = &shared.config;
    Ok(Json(RunPlan {
        run_id: cfg.run_id.clone(),
        model: cfg.model.clone(),
        vocab: cfg.vocab.clone(),
        strategy: cfg.strategy,
        local: cfg.local.clone(),
        upload_dtype: cfg.upload_dtype,
        rounds: cfg.rules.rounds,
        current_round,
    }))
}

#[derive(Deserialize)]
struct TaskQuery {
    worker_id: String,
}

async fn task(
    State(shared): State<Arc<Shared>>,
    query: Result<Query<TaskQuery>, QueryRejection>,
) -> ApiResult<Json<Task>> {
    let Query(q) = query?;
    let mut changed = shared.subscribe();
    let give_up = tokio::time::Instant::now() + long_poll(shared.config.rules.lease);
    loop {
        let task = {
            let mut c = shared.lock();
            if !c.clients.contains_key(&q.worker_id) {
                return Err(ApiError::new(
                    StatusCode::NOT_FOUND,
                    "unknown_worker",
                    "register first",
                ));
            }
            c.task_for(&q.worker_id, Instant::now())
        };
        if !matches!(task, Task::Wait { .. }) {
            return Ok(Json(task));
        }
        tokio::select! {
            _ = changed.changed() => {}
            _ = tokio::time::sleep_until(give_up) => return Ok(Json(task)),
        }
    }
}

async fn weights(State(shared): State<Arc<Shared>>, Path(round): Path<u32>) -> ApiResult<Response> {
    let body = {
        let c = shared.lock();
        if round != c.round {
            let code = if round < c.round {
                "stale_round"
            } else {
                "future_round"
            };
            return Err(ApiError::new(
                StatusCode::CONFLICT,
                code,
                format!("the current round is {}, not {round}", c.round),
            ));
        }
        c.weights_body.clone()
    };
    shared.metrics.download_bytes.inc_by(body.len() as u64);
    Ok(([(header::CONTENT_TYPE, "application/octet-stream")], body).into_response())
}

async fn update(
    State(shared): State<Arc<Shared>>,
    Path(round): Path<u32>,
    body: Bytes,
) -> ApiResult<Json<UpdateAccepted>> {
    let bytes = body.len();
    shared.metrics.upload_bytes.inc_by(bytes as u64);
    let reject = |worker: Option<&str>, code: &'static str, message: String| -> ApiError {
        shared.metrics.rejected(code);
        let mut c = shared.lock();
        match worker {
            Some(w) => c.refuse(w),
            None => c.rejected += 1,
        }
        drop(c);
        shared.notify();
        tracing::warn!(round, worker, code, "update refused: {message}");
        ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, code, message)
    };
    let decoded =
        tokio::task::spawn_blocking(move || wire::decode::<UpdateHeader>(&body, UPDATE_KIND))
            .await
            .map_err(|e| {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string())
            })?;
    let (header, set): (UpdateHeader, WireSet) =
        decoded.map_err(|e| reject(None, "malformed_update", e.to_string()))?;
    if header.round != round {
        return Err(reject(
            None,
            "round_mismatch",
            format!("path says round {round}, body says {}", header.round),
        ));
    }
    shared
        .lock()
        .admissible(&header.run_id, round, &header.worker_id)
        .map_err(|r| {
            shared.metrics.rejected(r.code);
            ApiError::from(r)
        })?;
    let w = Some(header.worker_id.as_str());
    if header.samples == 0 {
        return Err(reject(
            w,
            "no_samples",
            "an update must carry at least one sample".into(),
        ));
    }
    let expected = shared.config.model.parameter_shapes();
    set.check_shapes(&expected)
        .map_err(|e| reject(w, "wrong_shape", e.to_string()))?;
    if let Some(name) = set.first_non_finite() {
        return Err(reject(
            w,
            "non_finite",
            format!("parameter {name} holds NaN or infinity"),
        ));
    }
    let norm = set.norm();
    let bound = shared.config.max_update_norm;
    if bound > 0.0 && norm > bound {
        return Err(reject(
            w,
            "norm_exceeded",
            format!("update norm {norm:.3} exceeds the bound {bound}"),
        ));
    }
    let update = tokio::task::spawn_blocking(move || set.to_params())
        .await
        .map_err(|e| ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", e.to_string()))?;
    let worker = header.worker_id.clone();
    let received = shared
        .lock()
        .accept(Received {
            header,
            update,
            bytes,
        })
        .map_err(|r| {
            shared.metrics.rejected(r.code);
            ApiError::from(r)
        })?;
    shared.metrics.updates_accepted.inc();
    tracing::info!(round, %worker, norm, bytes, "update accepted");
    shared.notify();
    Ok(Json(UpdateAccepted { round, received }))
}

async fn status(State(shared): State<Arc<Shared>>) -> Json<crate::protocol::RunStatus> {
    Json(shared.lock().status(Instant::now()))
}

async fn readyz(State(shared): State<Arc<Shared>>) -> Response {
    let phase_ok = !matches!(shared.lock().phase, Phase::Failed);
    let status = if phase_ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (status, Json(serde_json::json!({ "ready": phase_ok }))).into_response()
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
