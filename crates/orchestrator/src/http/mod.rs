//! The admin API (`/v1/trainings`, `/v1/models`, `/v1/feedback`) and the probes. Every `/v1`
//! call needs an admin: the admin token (`Authorization: Bearer <token>`), or a
//! blog session of an admin user (`Authorization: Token <jwt>`, checked by
//! asking the blog's `GET /api/user`, so sessions and roles stay the blog's).

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use bloginfer_service::common::{constant_time_eq, iso_millis};
use bloginfer_service::{JsonBody, PathParams, ServiceError, ServiceResult};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::json;

mod feedback;

use crate::store::{RoundMetric, Run, WorkerSamples};
use crate::{CancelError, Orchestrator, OrchestratorError, TrainingRequest, TriggerError};

/// Who may use the admin API.
#[derive(Debug, Clone, Default)]
pub struct AdminAuthConfig {
    /// The admin token (`Authorization: Bearer <token>`), when configured.
    pub token: Option<SecretString>,
    /// The blog's base URL: admin users' sessions are checked there.
    pub blog_url: Option<String>,
}

/// How admins are recognised.
pub struct AdminAuth {
    token: Option<SecretString>,
    blog_url: Option<String>,
    http: reqwest::Client,
}

impl AdminAuth {
    /// Admins by the configured token and by blog sessions.
    pub fn new(config: &AdminAuthConfig) -> Result<Self, OrchestratorError> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .pool_idle_timeout(bloginfer_service::CLIENT_POOL_IDLE_TIMEOUT)
            .build()
            .map_err(|e| OrchestratorError::Config(format!("cannot build the HTTP client: {e}")))?;
        Ok(Self {
            token: config
                .token
                .clone()
                .filter(|t| !t.expose_secret().is_empty()),
            blog_url: config
                .blog_url
                .as_ref()
                .map(|u| u.trim_end_matches('/').to_string()),
            http,
        })
    }
}

/// What the API shares.
pub struct ApiState {
    /// The orchestrator the handlers act on.
    pub orchestrator: Orchestrator,
    /// Recognises admins, by the admin token or a blog session.
    pub auth: Arc<AdminAuth>,
}

impl From<OrchestratorError> for ServiceError {
    fn from(e: OrchestratorError) -> Self {
        ServiceError::internal(e)
    }
}

/// A request by an admin; carries who it is.
pub struct Admin(pub String);

impl FromRequestParts<Arc<ApiState>> for Admin {
    type Rejection = ServiceError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<ApiState>,
    ) -> Result<Self, ServiceError> {
        let unauthorized =
            || ServiceError::unauthorized("an admin token or an admin session is required");
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
            if constant_time_eq(token.expose_secret().as_bytes(), credential.as_bytes()) {
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
                ServiceError::unavailable(
                    "unavailable",
                    "cannot check the session now; retry shortly",
                )
                .with_cause(format!("cannot reach the blog to check a session: {e}"))
            })?;
        match answer.status().as_u16() {
            200 => {}
            401 => return Err(unauthorized()),
            code => {
                return Err(ServiceError::unavailable(
                    "unavailable",
                    "cannot check the session now; retry shortly",
                )
                .with_cause(format!("the blog answered a session check with {code}")));
            }
        }
        let user: serde_json::Value = answer.json().await.map_err(ServiceError::internal)?;
        if user["user"]["admin"] != json!(true) {
            return Err(ServiceError::forbidden("admins only"));
        }
        Ok(Admin(
            user["user"]["username"]
                .as_str()
                .unwrap_or("admin")
                .to_string(),
        ))
    }
}

/// The admin API's routes.
pub fn routes(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/v1/trainings", post(trigger).get(list))
        .route("/v1/trainings/{id}", get(show))
        .route("/v1/trainings/{id}/cancel", post(cancel))
        .route("/v1/models", get(models))
        .route("/v1/models/{version}/promote", post(promote))
        .merge(feedback::router())
        .method_not_allowed_fallback(bloginfer_service::error::method_not_allowed)
        .with_state(state)
}

fn iso(millis: Option<i64>) -> Option<String> {
    millis.map(iso_millis)
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
    JsonBody(request): JsonBody<TrainingRequest>,
) -> ServiceResult<(StatusCode, Json<serde_json::Value>)> {
    match state.orchestrator.trigger(request, &who).await {
        Ok(id) => Ok((StatusCode::ACCEPTED, Json(json!({"id": id})))),
        Err(TriggerError::Active(id)) => Err(ServiceError::conflict(
            "run_active",
            format!("run {id} is still active"),
        )),
        Err(e @ TriggerError::Cooldown(wait)) => Err(ServiceError::too_many_requests(
            "cooldown",
            e.to_string(),
            wait,
        )),
        Err(e @ TriggerError::Invalid { .. }) => Err(ServiceError::unprocessable(
            "invalid_request",
            e.to_string(),
        )),
        Err(TriggerError::Failed(e)) => Err(e.into()),
    }
}

async fn list(
    State(state): State<Arc<ApiState>>,
    _admin: Admin,
) -> ServiceResult<Json<serde_json::Value>> {
    let o = &state.orchestrator;
    let runs = o.runs(100).await?;
    let cooldown = o.cooldown().await?;
    Ok(Json(json!({
        "trainings": runs.iter().map(summary).collect::<Vec<_>>(),
        "active_id": o.active_id(),
        "cooldown_seconds": cooldown.as_secs() + u64::from(cooldown.subsec_nanos() > 0),
    })))
}

async fn show(
    State(state): State<Arc<ApiState>>,
    _admin: Admin,
    PathParams(id): PathParams<String>,
) -> ServiceResult<Json<Detail>> {
    let run = state
        .orchestrator
        .run(&id)
        .await?
        .ok_or_else(|| ServiceError::not_found(format!("no run {id}")))?;
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
    PathParams(id): PathParams<String>,
) -> ServiceResult<(StatusCode, Json<serde_json::Value>)> {
    match state.orchestrator.cancel(&id).await {
        Ok(()) => Ok((
            StatusCode::ACCEPTED,
            Json(json!({"id": id, "status": "cancelling"})),
        )),
        Err(CancelError::NotFound(_)) => Err(ServiceError::not_found(format!("no run {id}"))),
        Err(e @ CancelError::Finished(_)) => {
            Err(ServiceError::conflict("run_finished", e.to_string()))
        }
        Err(CancelError::Failed(e)) => Err(e.into()),
    }
}

async fn models(
    State(state): State<Arc<ApiState>>,
    _admin: Admin,
) -> ServiceResult<Json<serde_json::Value>> {
    let registry = state.orchestrator.registry().clone();
    let (current, list) = tokio::task::spawn_blocking(move || {
        Ok::<_, bloginfer_model::ModelError>((registry.current()?, registry.list()?))
    })
    .await
    .map_err(ServiceError::internal)?
    .map_err(ServiceError::internal)?;
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
    PathParams(version): PathParams<String>,
) -> ServiceResult<Json<serde_json::Value>> {
    let registry = state.orchestrator.registry();
    let known = registry
        .path_of(&version)
        .map(|p| p.is_file())
        .unwrap_or(false);
    if !known {
        return Err(ServiceError::not_found(format!(
            "no model version {version}"
        )));
    }
    tracing::info!(%version, by = %who, "promotion requested");
    state.orchestrator.promote(&version).await?;
    Ok(Json(json!({"current": version})))
}
