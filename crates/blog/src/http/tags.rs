//! `GET /api/tags`: tags in use, most used first.

use std::sync::Arc;

use axum::extract::State;
use axum::routing::get;
use axum::{Json, Router};
use serde::Serialize;
use sqlx::Row;

use crate::error::ApiError;
use crate::AppState;

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new().route("/api/tags", get(list))
}

#[derive(Serialize, serde::Deserialize)]
struct Tags {
    tags: Vec<String>,
}

async fn list(State(state): State<Arc<AppState>>) -> Result<Json<Tags>, ApiError> {
    if let Some(tags) = state
        .cache
        .get::<Tags>(crate::cache::TAGS_KEY, &state.metrics)
        .await
    {
        return Ok(Json(tags));
    }
    let rows = sqlx::query(
        "SELECT t.name, COUNT(*) AS uses FROM tags t JOIN article_tags a ON a.tag_id = t.id \
         GROUP BY t.id, t.name ORDER BY uses DESC, t.name LIMIT 100",
    )
    .fetch_all(state.db.read())
    .await?;
    let tags = rows
        .iter()
        .map(|r| r.try_get("name"))
        .collect::<Result<_, _>>()?;
    Ok(Json(Tags { tags }))
}
