//! The admin API (`/v1/trainings`, `/v1/models`, `/v1/feedback`) and the probes. Every `/v1`
//! call needs an admin: the admin token (`Authorization: Bearer <token>`), or a
//! blog session of an admin user (`Authorization: Token <jwt>`, checked by
//! asking the blog's `GET /api/user`, so sessions and roles stay the blog's).
//!
//! The token is checked at start-up ([`check_admin_token`]: at least 32
//! bytes, not the example value) and compared in constant time; failed
//! attempts are limited per client address ([`limit`]).

use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::{FromRequestParts, State};
use axum::http::request::Parts;
use axum::http::{header, HeaderValue, StatusCode};
use axum::routing::{get, post};
use axum::{Json, Router};
use bloginfer_service::common::{constant_time_eq, iso_millis};
use bloginfer_service::{JsonBody, PathParams, ServiceError, ServiceResult};
use secrecy::{ExposeSecret, SecretString};
use serde::Serialize;
use serde_json::json;

mod feedback;
pub mod limit;

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

/// Shortest admin token accepted: 32 bytes, the length of `openssl rand -hex 16`
/// (the docs generate 64 hex characters).
pub const MIN_ADMIN_TOKEN_BYTES: usize = 32;

/// Placeholder values shipped in the manifests' and docs' examples
/// (`deploy/k8s/overlays/*/secrets.env.example`), compared without case and
/// punctuation: a deployment that kept one is open to anyone who read them.
pub const EXAMPLE_ADMIN_TOKENS: &[&str] = &["change-me"];

/// Why an admin token is refused at start-up. The messages never quote the token.
#[derive(Debug, thiserror::Error)]
pub enum AdminTokenError {
    /// Shorter than [`MIN_ADMIN_TOKEN_BYTES`].
    #[error(
        "ADMIN_TOKEN is {0} bytes long; it must be at least {MIN_ADMIN_TOKEN_BYTES} \
         (generate one with `openssl rand -hex 32`)"
    )]
    TooShort(usize),
    /// One of [`EXAMPLE_ADMIN_TOKENS`], or built around one.
    #[error(
        "ADMIN_TOKEN is the example value from the manifests; \
         set a random one (`openssl rand -hex 32`)"
    )]
    Example,
}

/// Refuses an admin token that is too short to resist guessing or that is
/// (or contains) a published example value. An empty token means none.
pub fn check_admin_token(token: &str) -> Result<(), AdminTokenError> {
    if token.is_empty() {
        return Ok(());
    }
    let fold = |s: &str| -> String {
        s.chars()
            .filter(char::is_ascii_alphanumeric)
            .map(|c| c.to_ascii_lowercase())
            .collect()
    };
    let folded = fold(token);
    if EXAMPLE_ADMIN_TOKENS
        .iter()
        .any(|example| folded.contains(&fold(example)))
    {
        return Err(AdminTokenError::Example);
    }
    if token.len() < MIN_ADMIN_TOKEN_BYTES {
        return Err(AdminTokenError::TooShort(token.len()));
    }
    Ok(())
}

/// How admins are recognised.
pub struct AdminAuth {
    token: Option<SecretString>,
    blog_url: Option<String>,
    http: reqwest::Client,
    failures: limit::FailureLimit,
}

impl AdminAuth {
    /// Admins by the configured token and by blog sessions; refuses a weak
    /// token ([`check_admin_token`]).
    pub fn new(config: &AdminAuthConfig) -> Result<Self, OrchestratorError> {
        if let Some(token) = &config.token {
            check_admin_token(token.expose_secret())?;
        }
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
            failures: limit::FailureLimit::default(),
        })
    }
}

/// What the API shares.
pub struct ApiState {
    /// The orchestrator the handlers act on.
    pub orchestrator: Orchestrator,
    /// Recognises admins, by the admin token or a blog session.
    pub auth: Arc<AdminAuth>,
    /// Behind a reverse proxy: a client's address is the last entry of
    /// `X-Forwarded-For` (the one the proxy appended), not the peer's.
    pub behind_proxy: bool,
}

/// The address failed attempts are counted against: the peer's, or behind a
/// proxy the last `X-Forwarded-For` entry (a client can prepend entries but
/// not replace the one the proxy appends).
fn client_of(parts: &Parts, behind_proxy: bool) -> limit::Client {
    limit::Client::of(bloginfer_service::client_addr(parts, behind_proxy))
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
        let Some(header) = parts.headers.get(header::AUTHORIZATION) else {
            // Nothing was guessed: not a failure to count.
            return Err(unauthorized());
        };
        let failures = &state.auth.failures;
        let client = client_of(parts, state.behind_proxy);
        let too_many = |wait| {
            ServiceError::too_many_requests(
                "too_many_failures",
                "too many failed admin authentications from this address",
                wait,
            )
        };
        let is_session = header
            .to_str()
            .ok()
            .and_then(|v| v.split_once(' '))
            .is_some_and(|(_, credential)| credential.trim().split('.').count() == 3);
        if !is_session {
            // A guess of the admin token: counted and compared in one step (no
            // await in between), so concurrent guesses cannot overtake the count.
            // A locked-out client is not checked at all, so that a right guess
            // cannot be told from a wrong one while the lock lasts.
            let counted = failures.attempt(client, Instant::now()).map_err(too_many)?;
            let checked = admin_token(header, state);
            if checked.is_ok() {
                failures.forgive(counted);
            }
            return checked;
        }
        // A session: the blog checks it (which takes a while); only a refusal counts.
        failures.locked(client, Instant::now()).map_err(too_many)?;
        let checked = check(header, state).await;
        if matches!(&checked, Err(e) if e.status() == StatusCode::UNAUTHORIZED) {
            failures.fail(client, Instant::now());
        }
        checked
    }
}

/// The admin, if `header` carries the admin token (`Bearer` or `Token`).
fn admin_token(header: &HeaderValue, state: &Arc<ApiState>) -> Result<Admin, ServiceError> {
    let unauthorized =
        || ServiceError::unauthorized("an admin token or an admin session is required");
    let value = header.to_str().map_err(|_| unauthorized())?;
    let (scheme, credential) = value.split_once(' ').ok_or_else(unauthorized)?;
    if !(scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer")) {
        return Err(unauthorized());
    }
    match &state.auth.token {
        Some(token)
            if constant_time_eq(
                token.expose_secret().as_bytes(),
                credential.trim().as_bytes(),
            ) =>
        {
            Ok(Admin("admin-token".into()))
        }
        _ => Err(unauthorized()),
    }
}

/// Who the credential in `header` belongs to, if an admin.
async fn check(header: &HeaderValue, state: &Arc<ApiState>) -> Result<Admin, ServiceError> {
    let unauthorized =
        || ServiceError::unauthorized("an admin token or an admin session is required");
    let value = header.to_str().map_err(|_| unauthorized())?;
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
            ServiceError::unavailable("unavailable", "cannot check the session now; retry shortly")
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
    /// The last finished round's metrics (privacy spent, secure or not), so
    /// that a list shows them without every run's whole history.
    last_round: Option<RoundMetric>,
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
        last_round: run.round_metrics.iter().max_by_key(|m| m.round).cloned(),
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
