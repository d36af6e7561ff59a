//! The admin API (`/v1/trainings`, `/v1/models`, `/v1/feedback`) and the probes. Every `/v1`
//! call needs an admin: the admin token (`Authorization: Bearer <token>`), or a
//! blog session of an admin user (`Authorization: Token <jwt>`, checked by
//! asking the blog's `GET /api/user`, so sessions and roles stay the blog's).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::rejection::JsonRejection;
use axum::extract::{FromRequestParts, Path, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Serialize;
use serde_json::json;

mod feedback;

use crate::store::{RoundMetric, Run, WorkerSamples};
use crate::{CancelError, Orchestrator, TrainingRequest, TriggerError};

/// How admins are recognised.
pub struct AdminAuth {
    /// The admin token, when configured.
    pub token: Option<String>,
    /// The blog's base URL, for admin users' sessions.
    pub blog_url: Option<String>,
    http: reqwest::Client,
}

impl AdminAuth {
    /// Admins by `token` and by blog sessions at `blog_url`.
    pub fn new(token: Option<String>, blog_url: Option<String>) -> Self {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .unwrap_or_default();
        Self {
            token: token.filter(|t| !t.is_empty()),
            blog_url: blog_url.map(|u| u.trim_end_matches('/').to_string()),
            http,
        }
    }
}

/// What the API shares.
pub struct ApiState {
    /// The orchestrator.
    pub orchestrator: Orchestrator,
    /// Admin recognition.
    pub auth: AdminAuth,
}

/// An API error: `{"error": {"code", "message"}}` with a status.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
    retry_after: Option<Duration>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            retry_after: None,
        }
    }

    fn internal(e: impl std::fmt::Display) -> Self {
        tracing::error!("{e}");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            "something went wrong on our side",
        )
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = Json(json!({"error": {"code": self.code, "message": self.message}}));
        match self.retry_after {
            Some(wait) => (
                self.status,
                [(header::RETRY_AFTER, wait.as_secs().max(1).to_string())],
                body,
            )
                .into_response(),
            None => (self.status, body).into_response(),
        }
    }
}

impl From<crate::OrchestratorError> for ApiError {
    fn from(e: crate::OrchestratorError) -> Self {
        Self::internal(e)
    }
}

/// A request by an admin; carries who it is.
pub struct Admin(pub String);

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl FromRequestParts<Arc<ApiState>> for Admin {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Self, ApiError> {
        let unauthorized = || {
            ApiError::new(
                StatusCode::UNAUTHORIZED,
                "unauthorized",
                "an admin token or an admin session is required",
            )
        };
        let value = parts
            .headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .ok_or_else(unauthorized)?;
        let (scheme, credential) = value.split_once(' ').ok_or_else(unauthorized)?;
        let credential = credential.trim();
        let auth = &state.auth;
        if !(scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer")) {
            return Err(unauthorized());
        }
        if let Some(token) = &auth.token {
            if constant_time_eq(token.as_bytes(), credential.as_bytes()) {
                return Ok(Admin("admin-token".into()));
            }
        }
        let Some(blog) = &auth.blog_url else {
            return Err(unauthorized());
        };
        let answer = auth
            .http
            .get(format!("{blog}/api/user"))
            .header(header::AUTHORIZATION, format!("Token {credential}"))
            .send()
            .await
            .map_err(|e| {
                tracing::warn!("cannot reach the blog to check a session: {e}");
                ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "cannot check the session now; retry shortly",
                )
            })?;
        match answer.status().as_u16() {
            200 => {}
            401 => return Err(unauthorized()),
            code => {
                tracing::warn!(code, "the blog answered a session check unexpectedly");
                return Err(ApiError::new(
                    StatusCode::SERVICE_UNAVAILABLE,
                    "unavailable",
                    "cannot check the session now; retry shortly",
                ));
            }
        }
        let user: serde_json::Value = answer.json().await.map_err(ApiError::internal)?;
        if user["user"]["admin"] != json!(true) {
            return Err(ApiError::new(
                StatusCode::FORBIDDEN,
                "forbidden",
                "admins only",
            ));
        }
        Ok(Admin(
            user["user"]["username"]
                .as_str()
                .unwrap_or("admin")
                .to_string(),
        ))
    }
}

/// The routes: the admin API and the probes.
pub fn routes(state: Arc<ApiState>, with_probes: bool) -> Router {
    let mut router = Router::new()
        .route("/v1/trainings", post(trigger).get(list))
        .route("/v1/trainings/{id}", get(show))
        .route("/v1/trainings/{id}/cancel", post(cancel))
        .route("/v1/models", get(models))
        .route("/v1/models/{version}/promote", post(promote))
        .merge(feedback::router());
    if with_probes {
        router = router
            .route("/healthz", get(|| async { Json(json!({"status": "ok"})) }))
            .route("/readyz", get(readyz))
            .route("/metrics", get(metrics));
    }
    router
        .layer(axum::middleware::from_fn_with_state(state.clone(), record))
        .with_state(state)
}

async fn record(
    State(state): State<Arc<ApiState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .map_or("unmatched", axum::extract::MatchedPath::as_str)
        .to_string();
    let response = next.run(request).await;
    state
        .orchestrator
        .count_request(route, response.status().as_u16());
    response
}

/// The JSON 404 for unknown paths.
pub async fn not_found() -> ApiError {
    ApiError::new(StatusCode::NOT_FOUND, "not_found", "no such endpoint")
}

fn iso(millis: Option<i64>) -> Option<String> {
    millis.map(|m| {
        let at = std::time::UNIX_EPOCH + Duration::from_millis(m.max(0) as u64);
        humantime::format_rfc3339_millis(at).to_string()
    })
}

#[derive(Serialize)]
struct Summary {
    id: String,
    status: &'static str,
    phase: String,
    requested_by: String,
    created_at: Option<String>,
    started_at: Option<String>,
    finished_at: Option<String>,
    launcher: String,
    strategy: String,
    workers: u32,
    rounds: u32,
    rounds_done: u32,
    train_samples: u64,
    feedback_samples: u64,
    candidate_version: Option<String>,
    candidate_accuracy: Option<f64>,
    previous_version: Option<String>,
    previous_accuracy: Option<f64>,
    promoted: bool,
    decision: Option<String>,
    error: Option<String>,
}

#[derive(Serialize)]
struct Detail {
    #[serde(flatten)]
    summary: Summary,
    round_metrics: Vec<RoundMetric>,
    worker_samples: Vec<WorkerSamples>,
    data_fingerprint: Option<String>,
}

fn summary(run: &Run) -> Summary {
    Summary {
        id: run.id.clone(),
        status: run.status.as_str(),
        phase: run.phase.clone(),
        requested_by: run.requested_by.clone(),
        created_at: iso(Some(run.created_at)),
        started_at: iso(run.started_at),
        finished_at: iso(run.finished_at),
        launcher: run.launcher.clone(),
        strategy: run.strategy.clone(),
        workers: run.workers,
        rounds: run.rounds,
        rounds_done: run.rounds_done,
        train_samples: run.train_samples,
        feedback_samples: run.feedback_samples,
        candidate_version: run.candidate_version.clone(),
        candidate_accuracy: run.candidate_accuracy,
        previous_version: run.previous_version.clone(),
        previous_accuracy: run.previous_accuracy,
        promoted: run.promoted,
        decision: run.decision.clone(),
        error: run.error.clone(),
    }
}

async fn trigger(
    State(state): State<Arc<ApiState>>,
    Admin(who): Admin,
    body: Result<Json<TrainingRequest>, JsonRejection>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    let Json(request) = body.map_err(|e| {
        ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            e.body_text(),
        )
    })?;
    match state.orchestrator.trigger(request, &who).await {
        Ok(id) => Ok((StatusCode::ACCEPTED, Json(json!({"id": id})))),
        Err(TriggerError::Active(id)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_active",
            format!("run {id} is still active"),
        )),
        Err(e @ TriggerError::Cooldown(wait)) => Err(ApiError {
            retry_after: Some(wait),
            ..ApiError::new(StatusCode::TOO_MANY_REQUESTS, "cooldown", e.to_string())
        }),
        Err(e @ TriggerError::Invalid { .. }) => Err(ApiError::new(
            StatusCode::UNPROCESSABLE_ENTITY,
            "invalid_request",
            e.to_string(),
        )),
        Err(TriggerError::Failed(e)) => Err(e.into()),
    }
}

async fn list(
    State(state): State<Arc<ApiState>>,
    _admin: Admin,
) -> Result<Json<serde_json::Value>, ApiError> {
    let o = &state.orchestrator;
    let runs = o.runs(100).await?;
    let cooldown = o.cooldown().await?;
    Ok(Json(json!({
        "trainings": runs.iter().map(summary).collect::<Vec<_>>(),
        "active_id": o.active_id(),
        "cooldown_seconds": cooldown.as_secs_f64().ceil() as u64,
    })))
}

async fn show(
    State(state): State<Arc<ApiState>>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<Json<Detail>, ApiError> {
    let run =
        state.orchestrator.run(&id).await?.ok_or_else(|| {
            ApiError::new(StatusCode::NOT_FOUND, "not_found", format!("no run {id}"))
        })?;
    Ok(Json(Detail {
        summary: summary(&run),
        round_metrics: run.round_metrics.clone(),
        worker_samples: run.worker_samples.clone(),
        data_fingerprint: run.data_fingerprint.clone(),
    }))
}

async fn cancel(
    State(state): State<Arc<ApiState>>,
    _admin: Admin,
    Path(id): Path<String>,
) -> Result<(StatusCode, Json<serde_json::Value>), ApiError> {
    match state.orchestrator.cancel(&id).await {
        Ok(()) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "status": "cancelling"})),
        )),
        Err(CancelError::NotFound(_)) => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no run {id}"),
        )),
        Err(e @ CancelError::Finished(_)) => Err(ApiError::new(
            StatusCode::CONFLICT,
            "run_finished",
            e.to_string(),
        )),
        Err(CancelError::Failed(e)) => Err(e.into()),
    }
}

async fn models(
    State(state): State<Arc<ApiState>>,
    _admin: Admin,
) -> Result<Json<serde_json::Value>, ApiError> {
    let registry = state.orchestrator.registry().clone();
    let (current, list) = tokio::task::spawn_blocking(move || {
        Ok::<_, bloginfer_model::ModelError>((registry.current()?, registry.list()?))
    })
    .await
    .map_err(ApiError::internal)?
    .map_err(ApiError::internal)?;
    let versions: Vec<serde_json::Value> = list
        .iter()
        .rev()
        .map(|v| {
            let m = &v.header.metadata;
            json!({
                "version": v.version,
                "created_at": m.finished_at,
                "method": m.method,
                "run_id": m.run_id,
                "accuracy": m.metrics.as_ref().map(|x| x.accuracy),
                "macro_f1": m.metrics.as_ref().map(|x| x.macro_f1),
                "train_samples": m.train_samples,
                "current": v.current,
            })
        })
        .collect();
    Ok(Json(json!({"current": current, "versions": versions})))
}

async fn promote(
    State(state): State<Arc<ApiState>>,
    Admin(who): Admin,
    Path(version): Path<String>,
) -> Result<Json<serde_json::Value>, ApiError> {
    let registry = state.orchestrator.registry();
    let known = registry
        .path_of(&version)
        .map(|p| p.is_file())
        .unwrap_or(false);
    if !known {
        return Err(ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no model version {version}"),
        ));
    }
    tracing::info!(%version, by = %who, "promotion requested");
    state.orchestrator.promote(&version).await?;
    Ok(Json(json!({"current": version})))
}

async fn readyz(State(state): State<Arc<ApiState>>) -> (StatusCode, Json<serde_json::Value>) {
    if state.orchestrator.ready().await {
        (StatusCode::OK, Json(json!({"ready": true})))
    } else {
        (
            StatusCode::SERVICE_UNAVAILABLE,
            Json(json!({"ready": false})),
        )
    }
}

async fn metrics(State(state): State<Arc<ApiState>>) -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            "application/openmetrics-text; version=1.0.0; charset=utf-8",
        )],
        state.orchestrator.render_metrics(),
    )
}
