//! `/api/articles/:slug/comments` with sentiment, and the correction endpoint:
//! listing a page at a time in [`list`], creating in [`create`].

mod create;
mod list;

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::routing::{delete, get, put};
use axum::{Json, Router};
use bloginfer_service::common::{iso_millis, now_millis};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use super::profiles::Profile;
use crate::error::ApiError;
use crate::extract::{AuthUser, JsonBody};
use crate::AppState;

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route(
            "/api/articles/{slug}/comments",
            get(list::list).post(create::create),
        )
        .route("/api/articles/{slug}/comments/{id}", delete(remove))
        .route("/api/articles/{slug}/comments/{id}/sentiment", put(correct))
}

#[derive(Deserialize, Serialize)]
struct CommentBody<T> {
    comment: T,
}

#[derive(Deserialize)]
struct Correction {
    label: String,
}

/// A comment's sentiment chip as the API shows it: label, score, model
/// version and who set it.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Sentiment {
    label: String,
    score: f64,
    model_version: Option<String>,
    source: String,
}

/// The comment object of the API.
#[derive(Serialize, Deserialize)]
#[serde(rename_all = "camelCase")]
struct Comment {
    id: i64,
    created_at: String,
    updated_at: String,
    body: String,
    author: Profile,
    sentiment: Option<Sentiment>,
}

const SELECT: &str = "SELECT c.id, c.author_id, c.body, c.created_at, c.updated_at, c.sentiment_label, c.sentiment_score, \
     c.sentiment_model_version, c.sentiment_source, u.username, u.bio, u.image, \
     (SELECT COUNT(*) FROM follows fo WHERE fo.follower_id = ? AND fo.followed_id = c.author_id) AS following \
     FROM comments c JOIN users u ON u.id = c.author_id";

fn comment(row: &AnyRow) -> Result<Comment, ApiError> {
    let source: Option<String> = row.try_get("sentiment_source")?;
    let sentiment = match (source, row.try_get::<Option<String>, _>("sentiment_label")?) {
        (Some(source), Some(label)) => Some(Sentiment {
            label,
            score: row
                .try_get::<Option<f64>, _>("sentiment_score")?
                .unwrap_or(0.0),
            model_version: row.try_get("sentiment_model_version")?,
            source,
        }),
        _ => None,
    };
    Ok(Comment {
        id: row.try_get("id")?,
        created_at: iso_millis(row.try_get("created_at")?),
        updated_at: iso_millis(row.try_get("updated_at")?),
        body: crate::db::text(row, "body")?.unwrap_or_default(),
        author: Profile {
            username: row.try_get("username")?,
            bio: crate::db::text(row, "bio")?,
            image: crate::db::text(row, "image")?,
            following: row.try_get::<i64, _>("following")? != 0,
        },
        sentiment,
    })
}

/// The article's id and author.
async fn article_of(state: &AppState, slug: &str) -> Result<(i64, i64), ApiError> {
    let row = sqlx::query("SELECT id, author_id FROM articles WHERE slug = ?")
        .bind(slug)
        .fetch_optional(state.db.read())
        .await?
        .ok_or(ApiError::NotFound("article"))?;
    Ok((row.try_get("id")?, row.try_get("author_id")?))
}

async fn one(
    state: &AppState,
    article: i64,
    id: i64,
    viewer: Option<i64>,
) -> Result<(i64, Comment), ApiError> {
    let sql = format!("{SELECT} WHERE c.id = ? AND c.article_id = ?");
    let row = sqlx::query(&sql)
        .bind(viewer.unwrap_or(-1))
        .bind(id)
        .bind(article)
        .fetch_optional(state.db.read())
        .await?
        .ok_or(ApiError::NotFound("comment"))?;
    let author: i64 = row.try_get("author_id")?;
    Ok((author, comment(&row)?))
}

async fn remove(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    Path((slug, id)): Path<(String, i64)>,
) -> Result<StatusCode, ApiError> {
    let (article, _) = article_of(&state, &slug).await?;
    let (author, _) = one(&state, article, id, Some(me.user_id)).await?;
    if author != me.user_id {
        return Err(ApiError::Forbidden);
    }
    sqlx::query("DELETE FROM comments WHERE id = ?")
        .bind(id)
        .execute(state.db.write())
        .await?;
    state
        .cache
        .invalidate(&crate::cache::comments_key(article), &state.metrics)
        .await;
    Ok(StatusCode::NO_CONTENT)
}

async fn correct(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    Path((slug, id)): Path<(String, i64)>,
    JsonBody(body): JsonBody<Correction>,
) -> Result<Json<CommentBody<Comment>>, ApiError> {
    let label = body.label;
    if label != "positive" && label != "negative" {
        return Err(ApiError::field("label", "must be positive or negative"));
    }
    let (article, article_author) = article_of(&state, &slug).await?;
    one(&state, article, id, Some(me.user_id)).await?;
    let admin: i64 = sqlx::query("SELECT admin FROM users WHERE id = ?")
        .bind(me.user_id)
        .fetch_one(state.db.read())
        .await?
        .try_get("admin")?;
    if article_author != me.user_id && admin == 0 {
        return Err(ApiError::Forbidden);
    }
    let score = if label == "positive" { 1.0 } else { 0.0 };
    // Shown on the comment at once, whoever corrected it. `label_state = NULL`
    // hands the comment back to the labeler, which reads the corrector: an
    // admin's correction is a trusted human label, an author's only a proposal
    // for the review queue (docs/feedback.md, "Corrections").
    sqlx::query(
        "UPDATE comments SET sentiment_label = ?, sentiment_score = ?, sentiment_model_version = NULL, \
         sentiment_source = 'human', sentiment_corrected_by = ?, updated_at = ?, label_state = NULL, \
         label_attempts = 0, label_after = NULL WHERE id = ?",
    )
    .bind(&label)
    .bind(score)
    .bind(me.user_id)
    .bind(now_millis())
    .bind(id)
    .execute(state.db.write())
    .await?;
    state
        .cache
        .invalidate(&crate::cache::comments_key(article), &state.metrics)
        .await;
    let (_, comment) = one(&state, article, id, Some(me.user_id)).await?;
    Ok(Json(CommentBody { comment }))
}
