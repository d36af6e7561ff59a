//! `/api/articles`: create, read, update, delete, list, feed, favourites
//! (reading in [`read`], writing in [`write`]); and [`idempotency`], which
//! comment creation shares.

pub(crate) mod idempotency;
mod read;
mod write;

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;
use crate::extract::{AuthUser, MaybeAuthUser, Query};
use crate::pages::Lookup;
use crate::AppState;
pub(crate) use read::Listing;
use read::{Article, ArticleList, Filter, Found};

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/articles", get(list).post(write::create))
        .route("/api/articles/feed", get(feed))
        .route(
            "/api/articles/{slug}",
            get(show).put(write::update).delete(write::remove),
        )
        .route(
            "/api/articles/{slug}/favorite",
            post(favorite).delete(unfavorite),
        )
}

#[derive(Deserialize, Serialize)]
struct ArticleBody<T> {
    article: T,
}

#[derive(Deserialize)]
struct ListQuery {
    tag: Option<String>,
    author: Option<String>,
    favorited: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

fn page(limit: Option<i64>, offset: Option<i64>) -> (i64, i64) {
    (
        limit.unwrap_or(20).clamp(1, 100),
        offset.unwrap_or(0).max(0),
    )
}

async fn list(
    State(state): State<Arc<AppState>>,
    MaybeAuthUser(viewer): MaybeAuthUser,
    Query(q): Query<ListQuery>,
) -> Result<Response, ApiError> {
    let (limit, offset) = page(q.limit, q.offset);
    let key = format!(
        "articles?author={:?}&tag={:?}&favorited={:?}&limit={limit}&offset={offset}",
        q.author, q.tag, q.favorited
    );
    let lookup = state.pages.lookup(&key, &state.metrics).await;
    let listing = match lookup {
        Lookup::Hit(listing) => listing,
        lookup => {
            let mut filter = Filter::default();
            if let Some(author) = q.author {
                filter = filter.author(author);
            }
            if let Some(tag) = q.tag {
                filter = filter.tag(tag);
            }
            if let Some(username) = q.favorited {
                filter = filter.favorited_by(username);
            }
            let listing = Arc::new(read::listing(&state, &filter, (limit, offset)).await?);
            if let Lookup::Miss(generation) = lookup {
                state.pages.store(key, generation, listing.clone());
            }
            listing
        }
    };
    match viewer {
        None => Ok(json_response(listing.body.clone())),
        Some(me) => {
            Ok(Json(read::personalise(&state, &listing, me.user_id).await?).into_response())
        }
    }
}

fn json_response(body: Bytes) -> Response {
    ([(header::CONTENT_TYPE, "application/json")], body).into_response()
}

async fn feed(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    Query(q): Query<ListQuery>,
) -> Result<Json<ArticleList>, ApiError> {
    let filter = Filter::default().followed_by(me.user_id);
    let listing = read::listing(&state, &filter, page(q.limit, q.offset)).await?;
    Ok(Json(read::personalise(&state, &listing, me.user_id).await?))
}

async fn show(
    State(state): State<Arc<AppState>>,
    MaybeAuthUser(viewer): MaybeAuthUser,
    Path(slug): Path<String>,
) -> Result<Json<ArticleBody<Article>>, ApiError> {
    let article = read::by_slug(&state, &slug, viewer.map(|s| s.user_id))
        .await?
        .article;
    Ok(Json(ArticleBody { article }))
}

/// The article `slug` if `me` wrote it: 404 when missing, 403 when not theirs.
async fn own(state: &AppState, slug: &str, me: i64) -> Result<Found, ApiError> {
    let found = read::by_slug(state, slug, Some(me)).await?;
    if found.author_id != me {
        return Err(ApiError::Forbidden);
    }
    Ok(found)
}

/// Adds or removes `user`'s favourite of `article` and keeps the article's
/// count in step, in one transaction; doing what is already done changes nothing.
async fn set_favorite(state: &AppState, user: i64, article: i64, on: bool) -> Result<(), ApiError> {
    let mut tx = state.db.write().begin().await?;
    let changed = if on {
        let inserted = sqlx::query("INSERT INTO favorites (user_id, article_id) VALUES (?, ?)")
            .bind(user)
            .bind(article)
            .execute(&mut *tx)
            .await;
        match inserted {
            Ok(_) => true,
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => false,
            Err(e) => return Err(e.into()),
        }
    } else {
        sqlx::query("DELETE FROM favorites WHERE user_id = ? AND article_id = ?")
            .bind(user)
            .bind(article)
            .execute(&mut *tx)
            .await?
            .rows_affected()
            > 0
    };
    if changed {
        let delta: i64 = if on { 1 } else { -1 };
        sqlx::query("UPDATE articles SET favorites_count = favorites_count + ? WHERE id = ?")
            .bind(delta)
            .bind(article)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    if changed {
        state.pages.bump(&state.metrics).await;
    }
    Ok(())
}

async fn favorite(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    Path(slug): Path<String>,
) -> Result<Json<ArticleBody<Article>>, ApiError> {
    let found = read::by_slug(&state, &slug, Some(me.user_id)).await?;
    if !found.article.favorited {
        set_favorite(&state, me.user_id, found.id, true).await?;
    }
    let article = read::by_slug(&state, &slug, Some(me.user_id))
        .await?
        .article;
    Ok(Json(ArticleBody { article }))
}

async fn unfavorite(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    Path(slug): Path<String>,
) -> Result<Json<ArticleBody<Article>>, ApiError> {
    let found = read::by_slug(&state, &slug, Some(me.user_id)).await?;
    if found.article.favorited {
        set_favorite(&state, me.user_id, found.id, false).await?;
    }
    let article = read::by_slug(&state, &slug, Some(me.user_id))
        .await?
        .article;
    Ok(Json(ArticleBody { article }))
}
