//! HTTP routes of the aggregator. Handlers parse, ask the coordinator, and
//! map the answer; errors are the chassis's envelope with a fitting status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bloginfer_service::{
    BodyBytes, JsonBody, PathParams, QueryParams, ServiceError, ServiceResult,
};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::coordinator::{Received, Refusal};
use super::Shared;
use crate::protocol::{RegisterRequest, RunPlan, Task, UpdateAccepted, UpdateHeader, UPDATE_KIND};
use crate::wire::{self, WireSet};

/// How long a task request waits for something to do before answering
/// `wait`: at most 20 s, and short enough that a waiting worker asks again
/// well within its availability lease.
fn long_poll(lease: Duration) -> Duration {
    (lease / 3).clamp(Duration::from_millis(500), Duration::from_secs(20))
}

impl From<Refusal> for ServiceError {
    fn from(r: Refusal) -> Self {
        ServiceError::new(
            StatusCode::from_u16(r.status).unwrap_or(StatusCode::CONFLICT),
            r.code,
            r.message,
        )
    }
}

/// The aggregator's routes; every one needs the run token.
pub fn routes(shared: Arc<Shared>) -> Router {
    let limit = shared.config.max_body_bytes;
    Router::new()
        .route("/v1/register", post(register))
        .route("/v1/task", get(task))
        .route("/v1/rounds/{round}/weights", get(weights))
        .route("/v1/rounds/{round}/update", post(update))
        .route("/v1/status", get(status))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
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
    let expected = shared.config.token.expose_secret();
    if !bloginfer_common::constant_time_eq(presented.as_bytes(), expected.as_bytes()) {
        return ServiceError::unauthorized("missing or wrong run token").into_response();
    }
    next.run(request).await
}

async fn register(
    State(shared): State<Arc<Shared>>,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> ServiceResult<Json<RunPlan>> {
    if !crate::spec::valid_id(&req.worker_id) {
        return Err(ServiceError::unprocessable(
            "invalid_worker_id",
            "worker_id must be 1-64 of [A-Za-z0-9._-]",
        ));
    }
    if req.samples == 0 {
        return Err(ServiceError::unprocessable(
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
    QueryParams(q): QueryParams<TaskQuery>,
) -> ServiceResult<Json<Task>> {
    let mut changed = shared.subscribe();
    let give_up = tokio::time::Instant::now() + long_poll(shared.config.rules.lease);
    loop {
        let task = {
            let mut c = shared.lock();
            if !c.clients.contains_key(&q.worker_id) {
                return Err(ServiceError::new(
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

async fn weights(
    State(shared): State<Arc<Shared>>,
    PathParams(round): PathParams<u32>,
) -> ServiceResult<Response> {
    let body = {
        let c = shared.lock();
        if round != c.round {
            let code = if round < c.round {
                "stale_round"
            } else {
                "future_round"
            };
            return Err(ServiceError::conflict(
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
    PathParams(round): PathParams<u32>,
    BodyBytes(body): BodyBytes,
) -> ServiceResult<Json<UpdateAccepted>> {
    let bytes = body.len();
    shared.metrics.upload_bytes.inc_by(bytes as u64);
    let reject = |worker: Option<&str>, code: &'static str, message: String| -> ServiceError {
        shared.metrics.rejected(code);
        let mut c = shared.lock();
        match worker {
            Some(w) => c.refuse(w),
            None => c.rejected += 1,
        }
        drop(c);
        shared.notify();
        tracing::warn!(round, worker, code, "update refused: {message}");
        ServiceError::unprocessable(code, message)
    };
    let decoded =
        tokio::task::spawn_blocking(move || wire::decode::<UpdateHeader>(&body, UPDATE_KIND))
            .await
            .map_err(ServiceError::internal)?;
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
            ServiceError::from(r)
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
        .map_err(ServiceError::internal)?;
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
            ServiceError::from(r)
        })?;
    shared.metrics.updates_accepted.inc();
    tracing::info!(round, %worker, norm, bytes, "update accepted");
    shared.notify();
    Ok(Json(UpdateAccepted { round, received }))
}

async fn status(State(shared): State<Arc<Shared>>) -> Json<crate::protocol::RunStatus> {
    Json(shared.lock().status(Instant::now()))
}
