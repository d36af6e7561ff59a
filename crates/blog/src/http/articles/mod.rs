//! `/api/articles`: create, read, update, delete, list, feed, favourites.

mod read;

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use bloginfer_service::common::{now_millis, random_hex};
use serde::{Deserialize, Serialize};
use sqlx::{Any, Row, Transaction};

use crate::error::{unique_violation, ApiError, Problems};
use crate::extract::{AuthUser, JsonBody, MaybeAuthUser};
use crate::pages::Lookup;
use crate::AppState;
pub(crate) use read::Listing;
use read::{Article, ArticleList, Filter, Found, TAG_SEPARATOR};

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/articles", get(list).post(create))
        .route("/api/articles/feed", get(feed))
        .route("/api/articles/{slug}", get(show).put(update).delete(remove))
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
#[serde(rename_all = "camelCase")]
struct NewArticle {
    title: String,
    description: String,
    body: String,
    #[serde(default)]
    tag_list: Vec<String>,
}

#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct ArticleUpdate {
    title: Option<String>,
    description: Option<String>,
    body: Option<String>,
}

#[derive(Deserialize)]
struct ListQuery {
    tag: Option<String>,
    author: Option<String>,
    favorited: Option<String>,
    limit: Option<i64>,
    offset: Option<i64>,
}

const TITLE_MAX: usize = 200;
const DESCRIPTION_MAX: usize = 1000;
const BODY_MAX_BYTES: usize = 100 * 1024;
const TAGS_MAX: usize = 10;
const TAG_MAX: usize = 40;

fn check_title(p: &mut Problems, title: &str) {
    p.check(title.trim().is_empty(), "title", "can't be blank");
    p.check(
        title.chars().count() > TITLE_MAX,
        "title",
        "is too long (maximum is 200 characters)",
    );
}

fn check_description(p: &mut Problems, description: &str) {
    p.check(
        description.chars().count() > DESCRIPTION_MAX,
        "description",
        "is too long (maximum is 1000 characters)",
    );
}

fn check_body(p: &mut Problems, body: &str) {
    p.check(body.trim().is_empty(), "body", "can't be blank");
    p.check(
        body.len() > BODY_MAX_BYTES,
        "body",
        "is too long (maximum is 100 KB)",
    );
}

/// Trimmed, de-duplicated, sorted tags; problems recorded.
fn clean_tags(p: &mut Problems, tags: &[String]) -> Vec<String> {
    let set: BTreeSet<String> = tags
        .iter()
        .map(|t| t.trim().to_string())
        .filter(|t| !t.is_empty())
        .collect();
    p.check(
        set.len() > TAGS_MAX,
        "tagList",
        "has too many tags (maximum is 10)",
    );
    p.check(
        set.iter().any(|t| t.chars().count() > TAG_MAX),
        "tagList",
        "has a tag over 40 characters",
    );
    p.check(
        set.iter().any(|t| t.chars().any(char::is_control)),
        "tagList",
        "has a tag with control characters",
    );
    set.into_iter().collect()
}

/// A URL-safe slug from a title (letters and digits of any script are kept),
/// made unique by a random suffix.
fn slugify(title: &str) -> String {
    let mut slug = String::new();
    for c in title.to_lowercase().chars() {
        if c.is_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let base: String = slug.trim_end_matches('-').chars().take(80).collect();
    let suffix = random_hex(4);
    if base.is_empty() {
        suffix
    } else {
        format!("{base}-{suffix}")
    }
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

async fn tag_ids(tx: &mut Transaction<'_, Any>, tags: &[String]) -> Result<Vec<i64>, ApiError> {
    let mut ids = Vec::with_capacity(tags.len());
    for name in tags {
        let found = sqlx::query("SELECT id FROM tags WHERE name = ?")
            .bind(name)
            .fetch_optional(&mut **tx)
            .await?;
        let id = match found {
            Some(row) => row.try_get("id")?,
            None => {
                sqlx::query("INSERT INTO tags (name) VALUES (?)")
                    .bind(name)
                    .execute(&mut **tx)
                    .await?;
                sqlx::query("SELECT id FROM tags WHERE name = ?")
                    .bind(name)
                    .fetch_one(&mut **tx)
                    .await?
                    .try_get("id")?
            }
        };
        ids.push(id);
    }
    Ok(ids)
}

async fn create(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    JsonBody(body): JsonBody<ArticleBody<NewArticle>>,
) -> Result<(StatusCode, Json<ArticleBody<Article>>), ApiError> {
    let a = body.article;
    let mut p = Problems::default();
    check_title(&mut p, &a.title);
    check_description(&mut p, &a.description);
    check_body(&mut p, &a.body);
    let tags = clean_tags(&mut p, &a.tag_list);
    p.into_result()?;
    let slug = slugify(&a.title);
    let now = now_millis();
    let tag_list = tags.join(&TAG_SEPARATOR.to_string());
    let mut tx = state.db.write().begin().await?;
    let sql = state.db.returning_id(
        "INSERT INTO articles (slug, author_id, title, description, body, tag_list, created_at, updated_at) \
         VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
    );
    let query = sqlx::query(&sql)
        .bind(&slug)
        .bind(me.user_id)
        .bind(a.title.trim())
        .bind(&a.description)
        .bind(&a.body)
        .bind(&tag_list)
        .bind(now)
        .bind(now);
    let id = state
        .db
        .insert(query, &mut *tx)
        .await
        .map_err(|e| unique_violation(e, &[("slug", "title")]))?;
    for tag in tag_ids(&mut tx, &tags).await? {
        sqlx::query("INSERT INTO article_tags (article_id, tag_id) VALUES (?, ?)")
            .bind(id)
            .bind(tag)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    state.pages.bump(&state.metrics).await;
    state
        .cache
        .invalidate(crate::cache::TAGS_KEY, &state.metrics)
        .await;
    let article = read::by_slug(&state, &slug, Some(me.user_id))
        .await?
        .article;
    Ok((StatusCode::CREATED, Json(ArticleBody { article })))
}

/// The article `slug` if `me` wrote it: 404 when missing, 403 when not theirs.
async fn own(state: &AppState, slug: &str, me: i64) -> Result<Found, ApiError> {
    let found = read::by_slug(state, slug, Some(me)).await?;
    if found.author_id != me {
        return Err(ApiError::Forbidden);
    }
    Ok(found)
}

async fn update(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    Path(slug): Path<String>,
    JsonBody(body): JsonBody<ArticleBody<ArticleUpdate>>,
) -> Result<Json<ArticleBody<Article>>, ApiError> {
    let id = own(&state, &slug, me.user_id).await?.id;
    let u = body.article;
    let mut p = Problems::default();
    if let Some(t) = &u.title {
        check_title(&mut p, t);
    }
    if let Some(d) = &u.description {
        check_description(&mut p, d);
    }
    if let Some(b) = &u.body {
        check_body(&mut p, b);
    }
    p.into_result()?;
    let new_slug = u.title.as_deref().map(slugify);
    sqlx::query(
        "UPDATE articles SET slug = COALESCE(?, slug), title = COALESCE(?, title), \
         description = COALESCE(?, description), body = COALESCE(?, body), updated_at = ? WHERE id = ?",
    )
    .bind(new_slug.clone())
    .bind(u.title.map(|t| t.trim().to_string()))
    .bind(u.description)
    .bind(u.body)
    .bind(now_millis())
    .bind(id)
    .execute(state.db.write())
    .await
    .map_err(|e| unique_violation(e, &[("slug", "title")]))?;
    state.pages.bump(&state.metrics).await;
    let slug = new_slug.unwrap_or(slug);
    let article = read::by_slug(&state, &slug, Some(me.user_id))
        .await?
        .article;
    Ok(Json(ArticleBody { article }))
}

async fn remove(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = own(&state, &slug, me.user_id).await?.id;
    sqlx::query("DELETE FROM articles WHERE id = ?")
        .bind(id)
        .execute(state.db.write())
        .await?;
    state.pages.bump(&state.metrics).await;
    state
        .cache
        .invalidate(crate::cache::TAGS_KEY, &state.metrics)
        .await;
    state
        .cache
        .invalidate(&crate::cache::comments_key(id), &state.metrics)
        .await;
    Ok(StatusCode::NO_CONTENT)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slugs_keep_letters_of_any_script_and_are_unique() {
        let a = slugify("How to Train Your Dragon!");
        assert!(a.starts_with("how-to-train-your-dragon-"), "{a}");
        let b = slugify("How to Train Your Dragon!");
        assert_ne!(a, b);
        assert!(slugify("联邦学习 入门").starts_with("联邦学习-入门-"));
        assert_eq!(slugify("!!!").len(), 8);
    }
}
