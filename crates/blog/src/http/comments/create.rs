//! `POST /api/articles/:slug/comments`. The comment is stored first; once it
//! is, the answer is 201 whatever happens next: its sentiment is a best
//! effort (a failure leaves it pending for the back-fill), and the answer is
//! built from what was stored rather than read back. An `Idempotency-Key`
//! makes a retry answer the comment it created instead of storing another.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bloginfer_service::common::{iso_millis, now_millis};
use serde::Deserialize;
use sqlx::Row;

use super::{article_of, one, Comment, CommentBody, Sentiment};
use crate::error::{ApiError, Problems};
use crate::extract::{AuthUser, JsonBody};
use crate::http::articles::idempotency::{Claim, IdempotencyKey, Recorded, REPLAYED};
use crate::http::profiles::Profile;
use crate::AppState;

/// Largest comment body as sent, in bytes.
const COMMENT_MAX_BYTES: usize = 10 * 1024;

#[derive(Deserialize)]
pub(super) struct NewComment {
    body: String,
}

/// `text` without control characters other than newline and tab (`\r\n`
/// becomes `\n`): they show nothing, and JSON spells each of them in six
/// bytes, which made ten kilobytes of them sixty in every answer.
fn clean(text: &str) -> String {
    text.chars()
        .filter(|c| !c.is_control() || matches!(c, '\n' | '\t'))
        .collect()
}

/// The comment's text, cleaned, or the 422.
fn checked(text: &str) -> Result<String, ApiError> {
    let cleaned = clean(text);
    let mut p = Problems::default();
    p.check(cleaned.trim().is_empty(), "body", "can't be blank");
    p.check(
        text.len() > COMMENT_MAX_BYTES,
        "body",
        "is too long (maximum is 10 KB)",
    );
    p.into_result()?;
    Ok(cleaned)
}

pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    Path(slug): Path<String>,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<CommentBody<NewComment>>,
) -> Result<Response, ApiError> {
    let text = checked(&body.comment.body)?;
    let (article, _) = article_of(&state, &slug).await?;
    let author = profile(&state, me.user_id).await?;
    let scope = format!("comment:{article}");
    let claim = key.as_deref().map(|key| Claim {
        user: me.user_id,
        scope: &scope,
        key,
    });
    let now = now_millis();
    let id = match insert(&state, claim.as_ref(), article, me.user_id, &text, now).await? {
        Recorded::New(id) => id,
        Recorded::Taken(id) => {
            let (_, comment) = one(&state, article, id, Some(me.user_id)).await?;
            let replayed = [(REPLAYED, "true")];
            return Ok(
                (StatusCode::CREATED, replayed, Json(CommentBody { comment })).into_response(),
            );
        }
    };
    state
        .cache
        .invalidate(&crate::cache::comments_key(article), &state.metrics)
        .await;
    let sentiment = sentiment_now(&state, id, &text).await;
    let comment = Comment {
        id,
        created_at: iso_millis(now),
        updated_at: iso_millis(now),
        body: text,
        author,
        sentiment,
    };
    Ok((StatusCode::CREATED, Json(CommentBody { comment })).into_response())
}

/// Stores the comment (with its key, if any, in one transaction).
async fn insert(
    state: &AppState,
    claim: Option<&Claim<'_>>,
    article: i64,
    author: i64,
    text: &str,
    now: i64,
) -> Result<Recorded, ApiError> {
    let sql = state.db.returning_id(
        "INSERT INTO comments (article_id, author_id, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?)",
    );
    let query = sqlx::query(&sql)
        .bind(article)
        .bind(author)
        .bind(text)
        .bind(now)
        .bind(now);
    let Some(claim) = claim else {
        // No key, no transaction: the common case stays one statement.
        return Ok(Recorded::New(
            state.db.insert(query, state.db.write()).await?,
        ));
    };
    claim.forget_expired(state).await?;
    let mut tx = state.db.write().begin().await?;
    let id = state.db.insert(query, &mut *tx).await?;
    claim.commit(state, tx, id).await
}

/// The author as their new comment shows them (read before the insert, so
/// nothing after it can fail the request).
async fn profile(state: &AppState, user: i64) -> Result<Profile, ApiError> {
    let row = sqlx::query(
        "SELECT username, bio, image, \
         (SELECT COUNT(*) FROM follows WHERE follower_id = u.id AND followed_id = u.id) AS following \
         FROM users u WHERE u.id = ?",
    )
    .bind(user)
    .fetch_optional(state.db.read())
    .await?
    .ok_or(ApiError::Unauthorized)?;
    Ok(Profile {
        username: row.try_get("username")?,
        bio: crate::db::text(&row, "bio")?,
        image: crate::db::text(&row, "image")?,
        following: row.try_get::<i64, _>("following")? != 0,
    })
}

/// The stored comment's sentiment if inference answers within its short
/// timeout and the answer is stored; otherwise `None` (pending: the back-fill
/// will score it), logged, and never an error of the request.
async fn sentiment_now(state: &AppState, id: i64, text: &str) -> Option<Sentiment> {
    let client = state.sentiment.as_ref()?;
    let scored = match client.score(&[text.to_string()]).await {
        Ok(mut scored) => scored.pop()?,
        Err(e) => {
            tracing::warn!(comment = id, "sentiment pending: {e}");
            return None;
        }
    };
    if let Err(e) = crate::sentiment::store(state, id, &scored).await {
        tracing::warn!(comment = id, "sentiment pending, storing it failed: {e}");
        return None;
    }
    Some(Sentiment {
        label: scored.label,
        score: scored.score,
        model_version: Some(scored.model_version),
        source: "model".to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_characters_are_dropped_and_blank_is_refused() {
        assert_eq!(clean("a\u{1}b\r\nc\td\u{85}\u{7f}"), "ab\nc\td");
        assert!(checked("\u{1}\u{2}").is_err());
        assert!(checked(" \u{1b}\u{85} \n").is_err());
        assert!(checked(&"a".repeat(COMMENT_MAX_BYTES + 1)).is_err());
        assert_eq!(checked(" 好 ").ok().as_deref(), Some(" 好 "));
    }
}
