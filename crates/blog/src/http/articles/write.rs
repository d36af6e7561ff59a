//! Writing articles: create (idempotent with an `Idempotency-Key`), update
//! and delete, with their validation. An update keeps the slug unless the
//! title really changes (old links keep working when an editor sends the
//! whole form back), and applies `tagList` when it is sent.

use std::collections::BTreeSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use bloginfer_service::common::{now_millis, random_hex};
use serde::Deserialize;
use sqlx::{Any, Row, Transaction};

use super::idempotency::{Claim, IdempotencyKey, Recorded, REPLAYED};
use super::read::{self, TAG_SEPARATOR};
use super::{own, ArticleBody};
use crate::error::{unique_violation, ApiError, Problems};
use crate::extract::{AuthUser, JsonBody};
use crate::AppState;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct NewArticle {
    title: String,
    description: String,
    body: String,
    #[serde(default)]
    tag_list: Vec<String>,
}

/// The fields an update may change; a field left out stays as it is.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
pub(super) struct ArticleUpdate {
    title: Option<String>,
    description: Option<String>,
    body: Option<String>,
    /// The article's new tags, all of them (`[]` removes every tag).
    tag_list: Option<Vec<String>>,
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

/// The ids of `tags`, creating the missing ones.
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

/// Links a new `article` to `tags` (in `article_tags`, the filter's source;
/// the caller writes the row's `tag_list` column).
async fn link_tags(
    tx: &mut Transaction<'_, Any>,
    article: i64,
    tags: &[String],
) -> Result<(), ApiError> {
    for tag in tag_ids(tx, tags).await? {
        sqlx::query("INSERT INTO article_tags (article_id, tag_id) VALUES (?, ?)")
            .bind(article)
            .bind(tag)
            .execute(&mut **tx)
            .await?;
    }
    Ok(())
}

fn joined(tags: &[String]) -> String {
    tags.join(&TAG_SEPARATOR.to_string())
}

pub(super) async fn create(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    IdempotencyKey(key): IdempotencyKey,
    JsonBody(body): JsonBody<ArticleBody<NewArticle>>,
) -> Result<Response, ApiError> {
    let a = body.article;
    let mut p = Problems::default();
    check_title(&mut p, &a.title);
    check_description(&mut p, &a.description);
    check_body(&mut p, &a.body);
    let tags = clean_tags(&mut p, &a.tag_list);
    p.into_result()?;
    let claim = key.as_deref().map(|key| Claim {
        user: me.user_id,
        scope: "article",
        key,
    });
    if let Some(claim) = &claim {
        claim.forget_expired(&state).await?;
    }
    let slug = slugify(&a.title);
    let now = now_millis();
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
        .bind(joined(&tags))
        .bind(now)
        .bind(now);
    let id = state
        .db
        .insert(query, &mut *tx)
        .await
        .map_err(|e| unique_violation(e, &[("slug", "title")]))?;
    link_tags(&mut tx, id, &tags).await?;
    let recorded = match &claim {
        Some(claim) => claim.commit(&state, tx, id).await?,
        None => {
            tx.commit().await?;
            Recorded::New(id)
        }
    };
    if let Recorded::Taken(original) = recorded {
        let slug: String = sqlx::query("SELECT slug FROM articles WHERE id = ?")
            .bind(original)
            .fetch_optional(state.db.read())
            .await?
            .ok_or(ApiError::NotFound("article"))?
            .try_get("slug")?;
        let article = read::by_slug(&state, &slug, Some(me.user_id))
            .await?
            .article;
        let replayed = [(REPLAYED, "true")];
        return Ok((StatusCode::CREATED, replayed, Json(ArticleBody { article })).into_response());
    }
    state.pages.bump(&state.metrics).await;
    state
        .cache
        .invalidate(crate::cache::TAGS_KEY, &state.metrics)
        .await;
    let article = read::by_slug(&state, &slug, Some(me.user_id))
        .await?
        .article;
    Ok((StatusCode::CREATED, Json(ArticleBody { article })).into_response())
}

pub(super) async fn update(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    Path(slug): Path<String>,
    JsonBody(body): JsonBody<ArticleBody<ArticleUpdate>>,
) -> Result<Json<ArticleBody<read::Article>>, ApiError> {
    let found = own(&state, &slug, me.user_id).await?;
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
    let tags = u.tag_list.as_deref().map(|t| clean_tags(&mut p, t));
    p.into_result()?;
    // Only a title that really changes makes a new slug: editors send the
    // whole form back, and an edit must not break the article's links.
    let title = u
        .title
        .map(|t| t.trim().to_string())
        .filter(|t| *t != found.article.title);
    let new_slug = title.as_deref().map(slugify);
    let mut tx = state.db.write().begin().await?;
    sqlx::query(
        "UPDATE articles SET slug = COALESCE(?, slug), title = COALESCE(?, title), \
         description = COALESCE(?, description), body = COALESCE(?, body), \
         tag_list = COALESCE(?, tag_list), updated_at = ? WHERE id = ?",
    )
    .bind(new_slug.clone())
    .bind(title)
    .bind(u.description)
    .bind(u.body)
    .bind(tags.as_deref().map(joined))
    .bind(now_millis())
    .bind(found.id)
    .execute(&mut *tx)
    .await
    .map_err(|e| unique_violation(e, &[("slug", "title")]))?;
    if let Some(tags) = &tags {
        sqlx::query("DELETE FROM article_tags WHERE article_id = ?")
            .bind(found.id)
            .execute(&mut *tx)
            .await?;
        link_tags(&mut tx, found.id, tags).await?;
    }
    tx.commit().await?;
    state.pages.bump(&state.metrics).await;
    if tags.is_some() {
        state
            .cache
            .invalidate(crate::cache::TAGS_KEY, &state.metrics)
            .await;
    }
    let slug = new_slug.unwrap_or(slug);
    let article = read::by_slug(&state, &slug, Some(me.user_id))
        .await?
        .article;
    Ok(Json(ArticleBody { article }))
}

pub(super) async fn remove(
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
