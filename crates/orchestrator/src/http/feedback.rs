//! `/v1/feedback`: what the feedback loop has labelled, for the dashboard
//! and for review (admins only).

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::get;
use axum::{Json, Router};
use bloginfer_labeler::{Review, Sentiment, Status, StoredSample};
use bloginfer_service::{JsonBody, PathParams, QueryParams, ServiceError, ServiceResult};
use serde::Deserialize;
use serde_json::{json, Value};

use super::{iso, Admin, ApiState};

pub(super) fn router() -> Router<Arc<ApiState>> {
    Router::new()
        .route("/v1/feedback/stats", get(stats))
        .route("/v1/feedback/samples", get(samples))
        .route("/v1/feedback/samples/{id}", get(one).put(review))
}

fn unprocessable(message: impl Into<String>) -> ServiceError {
    ServiceError::unprocessable("invalid_request", message)
}

fn labeler(state: &ApiState) -> ServiceResult<&bloginfer_labeler::Labeler> {
    state
        .orchestrator
        .labeler()
        .map(|l| l.as_ref())
        .ok_or_else(|| {
            ServiceError::new(
                StatusCode::NOT_FOUND,
                "feedback_disabled",
                "the feedback loop does not run in this orchestrator",
            )
        })
}

fn sample_json(s: &StoredSample) -> Value {
    let mut value = serde_json::to_value(s).unwrap_or(Value::Null);
    value["created_at"] = json!(iso(Some(s.created_at)));
    value["updated_at"] = json!(iso(Some(s.updated_at)));
    value["used_at"] = json!(iso(s.used_at));
    value
}

async fn stats(State(state): State<Arc<ApiState>>, _admin: Admin) -> ServiceResult<Json<Value>> {
    let labeler = labeler(&state)?;
    let stats = labeler
        .store()
        .stats()
        .await
        .map_err(ServiceError::internal)?;
    let preview = state
        .orchestrator
        .feedback_preview()
        .await?
        .unwrap_or_default();
    let policy = labeler.policy();
    let mut body = serde_json::to_value(&stats).map_err(ServiceError::internal)?;
    body["labeler"] = json!({
        "source": labeler.source(),
        "model": labeler.llm_model(),
    });
    body["policy"] = json!({
        "min_confidence": {
            "llm": policy.min_confidence.llm,
            "pseudo": policy.min_confidence.pseudo,
            "human": policy.min_confidence.human,
        },
        "hold_disagreements": policy.hold_disagreements,
        "disagreement_confidence": policy.disagreement_confidence,
        "max_per_author": policy.max_per_author,
        "max_class_ratio": policy.max_class_ratio,
    });
    body["next_run"] = json!({
        "selected": preview.chosen.len(),
        "dropped": preview.dropped,
    });
    Ok(Json(body))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ListParams {
    status: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

async fn samples(
    State(state): State<Arc<ApiState>>,
    _admin: Admin,
    QueryParams(params): QueryParams<ListParams>,
) -> ServiceResult<Json<Value>> {
    let status = match params.status.as_deref().filter(|s| !s.is_empty()) {
        None => None,
        Some(s) => Some(
            Status::parse(s)
                .ok_or_else(|| unprocessable("status must be accepted, review or rejected"))?,
        ),
    };
    let limit = params.limit.unwrap_or(50);
    if !(1..=500).contains(&limit) {
        return Err(unprocessable("limit must be between 1 and 500"));
    }
    let offset = params.offset.unwrap_or(0);
    if offset < 0 {
        return Err(unprocessable("offset must be at least 0"));
    }
    let (total, samples) = labeler(&state)?
        .store()
        .list(status, limit, offset)
        .await
        .map_err(ServiceError::internal)?;
    Ok(Json(json!({
        "samples": samples.iter().map(sample_json).collect::<Vec<_>>(),
        "total": total,
        "limit": limit,
        "offset": offset,
    })))
}

fn not_found(id: &str) -> ServiceError {
    ServiceError::not_found(format!("no sample {id}"))
}

async fn one(
    State(state): State<Arc<ApiState>>,
    _admin: Admin,
    PathParams(id): PathParams<String>,
) -> ServiceResult<Json<Value>> {
    let number: i64 = id.parse().map_err(|_| not_found(&id))?;
    let sample = labeler(&state)?
        .store()
        .get(number)
        .await
        .map_err(ServiceError::internal)?
        .ok_or_else(|| not_found(&id))?;
    Ok(Json(json!({"sample": sample_json(&sample)})))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ReviewBody {
    status: String,
    label: Option<String>,
}

async fn review(
    State(state): State<Arc<ApiState>>,
    Admin(who): Admin,
    PathParams(id): PathParams<String>,
    JsonBody(body): JsonBody<ReviewBody>,
) -> ServiceResult<Json<Value>> {
    let number: i64 = id.parse().map_err(|_| not_found(&id))?;
    let label = match body.label.as_deref() {
        None => None,
        Some(l) => match Sentiment::parse(l) {
            Some(s @ (Sentiment::Positive | Sentiment::Negative)) => Some(s),
            _ => return Err(unprocessable("label must be positive or negative")),
        },
    };
    let decision = match (body.status.as_str(), label) {
        ("accepted", None) => Review::Accept,
        ("accepted", Some(label)) => Review::Relabel(label),
        ("rejected", None) => Review::Reject,
        ("rejected", Some(_)) => return Err(unprocessable("a rejected sample takes no label")),
        _ => return Err(unprocessable("status must be accepted or rejected")),
    };
    let sample = labeler(&state)?
        .store()
        .review(number, decision, &who)
        .await
        .map_err(ServiceError::internal)?
        .ok_or_else(|| not_found(&id))?;
    tracing::info!(sample = number, by = %who, ?decision, "feedback sample reviewed");
    Ok(Json(json!({"sample": sample_json(&sample)})))
}
