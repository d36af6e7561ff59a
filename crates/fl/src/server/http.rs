//! HTTP routes of the aggregator. Handlers parse, ask the coordinator, and
//! map the answer; errors are the chassis's envelope with a fitting status.

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{header, HeaderMap, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Json, Router};
use bloginfer_service::{
    BodyBytes, JsonBody, PathParams, QueryParams, ServiceError, ServiceResult,
};
use secrecy::ExposeSecret;
use serde::Deserialize;

use super::coordinator::{Received, Refusal};
use super::Shared;
use crate::credentials::{self, Caller};
use crate::protocol::{
    MaskedHeader, RegisterRequest, RunPlan, SecureKeys, SecureShares, SecureUnmask, StageAccepted,
    Task, UpdateAccepted, UpdateHeader, MASKED_KIND, UPDATE_KIND,
};
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

/// The aggregator's routes; every one needs a worker credential or the run key.
pub fn routes(shared: Arc<Shared>) -> Router {
    let limit = shared.config.max_body_bytes;
    Router::new()
        .route("/v1/register", post(register))
        .route("/v1/task", get(task))
        .route("/v1/rounds/{round}/weights", get(weights))
        .route("/v1/rounds/{round}/update", post(update))
        .route("/v1/rounds/{round}/secure/keys", post(secure_keys))
        .route("/v1/rounds/{round}/secure/shares", post(secure_shares))
        .route("/v1/rounds/{round}/secure/masked", post(secure_masked))
        .route("/v1/rounds/{round}/secure/unmask", post(secure_unmask))
        .route("/v1/status", get(status))
        .route_layer(middleware::from_fn_with_state(
            shared.clone(),
            require_token,
        ))
        .layer(DefaultBodyLimit::max(limit))
        .with_state(shared)
}

/// Finds out who the bearer token proves the caller to be (a worker of the
/// roster, or the operator holding the run key) and hands it to the handler.
async fn require_token(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    mut request: Request,
    next: Next,
) -> Response {
    let presented = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or("");
    let config = &shared.config;
    let Some(caller) =
        credentials::authenticate(presented, config.run_key.expose_secret(), &config.run_id)
    else {
        shared.metrics.rejected("unauthorized");
        return ServiceError::unauthorized("missing or wrong credential").into_response();
    };
    request.extensions_mut().insert(caller);
    next.run(request).await
}

/// The roster id the caller proved, when it is the one it claims to act for.
fn worker_acting_as(shared: &Shared, caller: &Caller, claimed: &str) -> ServiceResult<()> {
    let refuse = |code: &'static str, message: String| {
        shared.metrics.rejected(code);
        tracing::warn!(claimed, ?caller, code, "request refused: {message}");
        Err(ServiceError::new(StatusCode::FORBIDDEN, code, message))
    };
    match caller {
        Caller::Operator => refuse(
            "not_a_worker",
            "the run key reads the status; workers use their own credential".into(),
        ),
        Caller::Worker(id) if id != claimed => refuse(
            "impersonation",
            format!("this credential belongs to worker {id}, not {claimed}"),
        ),
        Caller::Worker(id) if !shared.config.roster.contains_key(id) => refuse(
            "not_in_roster",
            format!("worker {id} is not in this run's roster"),
        ),
        Caller::Worker(_) => Ok(()),
    }
}

async fn register(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    JsonBody(req): JsonBody<RegisterRequest>,
) -> ServiceResult<Json<RunPlan>> {
    if !crate::spec::valid_id(&req.worker_id) {
        return Err(ServiceError::unprocessable(
            "invalid_worker_id",
            "worker_id must be 1-64 of [A-Za-z0-9._-]",
        ));
    }
    worker_acting_as(&shared, &caller, &req.worker_id)?;
    let samples = shared
        .config
        .roster
        .get(&req.worker_id)
        .copied()
        .unwrap_or(0);
    if req.samples != samples {
        // The roster, written by whoever cut the shards, says what an update
        // weighs; a worker that claims otherwise is misconfigured or lying.
        shared.metrics.rejected("samples_mismatch");
        tracing::warn!(worker = %req.worker_id, claimed = req.samples, roster = samples, "registration refused: sample count disagrees with the roster");
        return Err(ServiceError::unprocessable(
            "samples_mismatch",
            format!(
                "worker {} claims {} samples; the run's roster says {samples}",
                req.worker_id, req.samples
            ),
        ));
    }
    let current_round = {
        let mut c = shared.lock();
        let now = Instant::now();
        if let Some(remaining) = c.live_registration(&req.worker_id, now) {
            drop(c);
            shared.metrics.rejected("already_registered");
            return Err(ServiceError::conflict(
                "already_registered",
                format!(
                    "worker {} is registered and was heard from recently; a second \
                     registration is refused until its lease ends",
                    req.worker_id
                ),
            )
            .with_retry_after(remaining));
        }
        c.register(&req.worker_id, samples, now);
        c.round
    };
    tracing::info!(worker = %req.worker_id, samples, "worker registered");
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
        privacy: cfg.privacy.clone(),
        min_clients: cfg.rules.min_clients,
    }))
}

#[derive(Deserialize)]
struct TaskQuery {
    worker_id: String,
}

async fn task(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    QueryParams(q): QueryParams<TaskQuery>,
) -> ServiceResult<Json<Task>> {
    worker_acting_as(&shared, &caller, &q.worker_id)?;
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
    Extension(caller): Extension<Caller>,
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
    worker_acting_as(&shared, &caller, &header.worker_id)?;
    if shared.config.privacy.secure_aggregation {
        return Err(ServiceError::conflict(
            "secure_aggregation",
            "this run aggregates securely: send a masked input, not a plain update",
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
    let roster_samples = shared.config.roster.get(&header.worker_id).copied();
    if roster_samples != Some(header.samples) {
        return Err(reject(
            w,
            "samples_mismatch",
            format!(
                "the update claims {} samples; the run's roster says {}",
                header.samples,
                roster_samples.unwrap_or(0)
            ),
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

/// Takes a secure-aggregation message of `worker` for `round` into the
/// round's stages through `take`, and wakes whoever waits for the stage.
fn secure_stage(
    shared: &Shared,
    caller: &Caller,
    worker: &str,
    round: u32,
    take: impl FnOnce(&mut super::secure::SecureRound) -> Result<usize, Refusal>,
) -> ServiceResult<Json<StageAccepted>> {
    worker_acting_as(shared, caller, worker)?;
    let received = {
        let mut c = shared.lock();
        let run_id = shared.config.run_id.clone();
        c.secure_round(&run_id, round).and_then(take)
    }
    .map_err(|r| {
        shared.metrics.rejected(r.code);
        tracing::warn!(
            round,
            worker,
            code = r.code,
            "secure message refused: {}",
            r.message
        );
        ServiceError::from(r)
    })?;
    shared.notify();
    Ok(Json(StageAccepted { round, received }))
}

async fn secure_keys(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    PathParams(round): PathParams<u32>,
    JsonBody(message): JsonBody<SecureKeys>,
) -> ServiceResult<Json<StageAccepted>> {
    let worker = message.worker_id.clone();
    secure_stage(&shared, &caller, &worker, round, |s| {
        s.accept_keys(&worker, message.keys)
    })
}

async fn secure_shares(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    PathParams(round): PathParams<u32>,
    JsonBody(message): JsonBody<SecureShares>,
) -> ServiceResult<Json<StageAccepted>> {
    let worker = message.worker_id.clone();
    secure_stage(&shared, &caller, &worker, round, |s| {
        s.accept_shares(&worker, message.shares)
    })
}

async fn secure_masked(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    PathParams(round): PathParams<u32>,
    BodyBytes(body): BodyBytes,
) -> ServiceResult<Json<StageAccepted>> {
    let bytes = body.len();
    shared.metrics.upload_bytes.inc_by(bytes as u64);
    let decoded = tokio::task::spawn_blocking(move || {
        wire::decode_masked::<MaskedHeader>(&body, MASKED_KIND)
    })
    .await
    .map_err(ServiceError::internal)?;
    let (header, masked) = decoded.map_err(|e| {
        shared.metrics.rejected("malformed_update");
        ServiceError::unprocessable("malformed_update", e.to_string())
    })?;
    if header.round != round || header.run_id != shared.config.run_id {
        return Err(ServiceError::unprocessable(
            "round_mismatch",
            format!("the path says round {round} of {}", shared.config.run_id),
        ));
    }
    let worker = header.worker_id.clone();
    let accepted = secure_stage(&shared, &caller, &worker, round, |s| {
        s.accept_masked(&header, &masked, bytes)
    })?;
    shared.metrics.updates_accepted.inc();
    // The masked input is the only thing logged of it: its size.
    tracing::info!(round, %worker, bytes, "masked input added to the round's sum");
    Ok(accepted)
}

async fn secure_unmask(
    State(shared): State<Arc<Shared>>,
    Extension(caller): Extension<Caller>,
    PathParams(round): PathParams<u32>,
    JsonBody(message): JsonBody<SecureUnmask>,
) -> ServiceResult<Json<StageAccepted>> {
    let worker = message.worker_id.clone();
    secure_stage(&shared, &caller, &worker, round, |s| {
        s.accept_unmask(message)
    })
}
