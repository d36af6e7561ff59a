//! `/api/articles`: create, read, update, delete, list, feed, favourites.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::{Any, Row, Transaction};

use super::profiles::Profile;
use crate::error::{unique_violation, ApiError, Problems};
use crate::extract::{AuthUser, JsonBody, MaybeAuthUser};
use crate::{iso_millis, now_millis, AppState};

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

/// The article object of the API.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Article {
    slug: String,
    title: String,
    description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    body: Option<String>,
    tag_list: Vec<String>,
    created_at: String,
    updated_at: String,
    favorited: bool,
    favorites_count: i64,
    author: Profile,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct ArticleList {
    articles: Vec<Article>,
    articles_count: i64,
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
    let suffix: u32 = rand::random();
    if base.is_empty() {
        format!("{suffix:08x}")
    } else {
        format!("{base}-{suffix:08x}")
    }
}

const SELECT: &str = "SELECT a.id, a.author_id, a.slug, a.title, a.description, a.body, a.created_at, a.updated_at, \
     u.username, u.bio, u.image, \
     (SELECT COUNT(*) FROM favorites f WHERE f.article_id = a.id) AS favorites_count, \
     (SELECT COUNT(*) FROM favorites f WHERE f.article_id = a.id AND f.user_id = ?) AS favorited, \
     (SELECT COUNT(*) FROM follows fo WHERE fo.follower_id = ? AND fo.followed_id = a.author_id) AS following \
     FROM articles a JOIN users u ON u.id = a.author_id";

fn article(row: &AnyRow, tags: Vec<String>, with_body: bool) -> Result<Article, ApiError> {
    Ok(Article {
        slug: row.try_get("slug")?,
        title: row.try_get("title")?,
        description: crate::db::text(row, "description")?.unwrap_or_default(),
        body: if with_body {
            crate::db::text(row, "body")?
        } else {
            None
        },
        tag_list: tags,
        created_at: iso_millis(row.try_get("created_at")?),
        updated_at: iso_millis(row.try_get("updated_at")?),
        favorited: row.try_get::<i64, _>("favorited")? != 0,
        favorites_count: row.try_get("favorites_count")?,
        author: Profile {
            username: row.try_get("username")?,
            bio: crate::db::text(row, "bio")?,
            image: crate::db::text(row, "image")?,
            following: row.try_get::<i64, _>("following")? != 0,
        },
    })
}

/// Sorted tag names per article id.
async fn tags_of(state: &AppState, ids: &[i64]) -> Result<BTreeMap<i64, Vec<String>>, ApiError> {
    let mut out: BTreeMap<i64, Vec<String>> = BTreeMap::new();
    if ids.is_empty() {
        return Ok(out);
    }
    let marks = vec!["?"; ids.len()].join(", ");
    let sql = format!(
        "SELECT at.article_id, t.name FROM article_tags at JOIN tags t ON t.id = at.tag_id \
         WHERE at.article_id IN ({marks}) ORDER BY t.name"
    );
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    for row in query.fetch_all(&state.db).await? {
        out.entry(row.try_get("article_id")?)
            .or_default()
            .push(row.try_get("name")?);
    }
    Ok(out)
}

async fn one(
    state: &AppState,
    slug: &str,
    viewer: Option<i64>,
) -> Result<(i64, i64, Article), ApiError> {
    let sql = format!("{SELECT} WHERE a.slug = ?");
    let row = sqlx::query(&sql)
        .bind(viewer.unwrap_or(-1))
        .bind(viewer.unwrap_or(-1))
        .bind(slug)
        .fetch_optional(&state.db)
        .await?
        .ok_or(ApiError::NotFound("article"))?;
    let id: i64 = row.try_get("id")?;
    let author: i64 = row.try_get("author_id")?;
    let tags = tags_of(state, &[id]).await?.remove(&id).unwrap_or_default();
    Ok((id, author, article(&row, tags, true)?))
}

fn page(limit: Option<i64>, offset: Option<i64>) -> (i64, i64) {
    (
        limit.unwrap_or(20).clamp(1, 100),
        offset.unwrap_or(0).max(0),
    )
}

async fn listing(
    state: &AppState,
    filter: &str,
    binds: Vec<Option<String>>,
    viewer: Option<i64>,
    (limit, offset): (i64, i64),
) -> Result<ArticleList, ApiError> {
    let count_sql = format!(
        "SELECT COUNT(*) AS n FROM articles a JOIN users u ON u.id = a.author_id WHERE {filter}"
    );
    let mut count = sqlx::query(&count_sql);
    for b in &binds {
        count = count.bind(b.clone());
    }
    let total: i64 = count.fetch_one(&state.db).await?.try_get("n")?;
    // The page's ids first, then the details of just those rows: with the
    // per-row subqueries in one statement, MySQL computes them for every
    // matching article before sorting and cutting the page.
    let page_sql = format!(
        "SELECT a.id FROM articles a JOIN users u ON u.id = a.author_id WHERE {filter} \
         ORDER BY a.created_at DESC, a.id DESC LIMIT ? OFFSET ?"
    );
    let mut page = sqlx::query(&page_sql);
    for b in binds {
        page = page.bind(b);
    }
    let ids = page
        .bind(limit)
        .bind(offset)
        .fetch_all(&state.db)
        .await?
        .iter()
        .map(|r| r.try_get("id"))
        .collect::<Result<Vec<i64>, _>>()?;
    if ids.is_empty() {
        return Ok(ArticleList {
            articles: Vec::new(),
            articles_count: total,
        });
    }
    let marks = vec!["?"; ids.len()].join(", ");
    let sql = format!("{SELECT} WHERE a.id IN ({marks})");
    let mut query = sqlx::query(&sql)
        .bind(viewer.unwrap_or(-1))
        .bind(viewer.unwrap_or(-1));
    for id in &ids {
        query = query.bind(*id);
    }
    let mut by_id = std::collections::HashMap::new();
    for row in query.fetch_all(&state.db).await? {
        by_id.insert(row.try_get::<i64, _>("id")?, row);
    }
    // In page order; an article deleted between the two queries just drops out.
    let rows: Vec<(i64, AnyRow)> = ids
        .iter()
        .filter_map(|id| by_id.remove(id).map(|r| (*id, r)))
        .collect();
    let mut tags = tags_of(state, &ids).await?;
    let articles = rows
        .iter()
        .map(|(id, row)| article(row, tags.remove(id).unwrap_or_default(), false))
        .collect::<Result<_, _>>()?;
    Ok(ArticleList {
        articles,
        articles_count: total,
    })
}

async fn list(
    State(state): State<Arc<AppState>>,
    MaybeAuthUser(viewer): MaybeAuthUser,
    Query(q): Query<ListQuery>,
) -> Result<Json<ArticleList>, ApiError> {
    // Only the filters given go into the SQL: `(? IS NULL OR ...)` would keep
    // MySQL from using its indexes.
    let mut clauses = vec!["1 = 1"];
    let mut binds = Vec::new();
    if let Some(author) = q.author {
        clauses.push("u.username = ?");
        binds.push(Some(author));
    }
    if let Some(tag) = q.tag {
        clauses.push(
            "a.id IN (SELECT at.article_id FROM article_tags at JOIN tags t ON t.id = at.tag_id WHERE t.name = ?)",
        );
        binds.push(Some(tag));
    }
    if let Some(favorited) = q.favorited {
        clauses.push(
            "a.id IN (SELECT f.article_id FROM favorites f JOIN users fu ON fu.id = f.user_id WHERE fu.username = ?)",
        );
        binds.push(Some(favorited));
    }
    let filter = clauses.join(" AND ");
    let result = listing(
        &state,
        &filter,
        binds,
        viewer.map(|s| s.user_id),
        page(q.limit, q.offset),
    )
    .await?;
    Ok(Json(result))
}

async fn feed(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    Query(q): Query<ListQuery>,
) -> Result<Json<ArticleList>, ApiError> {
    let filter = "a.author_id IN (SELECT followed_id FROM follows WHERE follower_id = ?)";
    let binds = vec![Some(me.user_id.to_string())];
    let result = listing(
        &state,
        filter,
        binds,
        Some(me.user_id),
        page(q.limit, q.offset),
    )
    .await?;
    Ok(Json(result))
}

async fn show(
    State(state): State<Arc<AppState>>,
    MaybeAuthUser(viewer): MaybeAuthUser,
    Path(slug): Path<String>,
) -> Result<Json<ArticleBody<Article>>, ApiError> {
    let (_, _, article) = one(&state, &slug, viewer.map(|s| s.user_id)).await?;
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
    let mut tx = state.db.begin().await?;
    sqlx::query(
        "INSERT INTO articles (slug, author_id, title, description, body, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)",
    )
    .bind(&slug)
    .bind(me.user_id)
    .bind(a.title.trim())
    .bind(&a.description)
    .bind(&a.body)
    .bind(now)
    .bind(now)
    .execute(&mut *tx)
    .await
    .map_err(|e| unique_violation(e, &[("slug", "title")]))?;
    let id: i64 = sqlx::query("SELECT id FROM articles WHERE slug = ?")
        .bind(&slug)
        .fetch_one(&mut *tx)
        .await?
        .try_get("id")?;
    for tag in tag_ids(&mut tx, &tags).await? {
        sqlx::query("INSERT INTO article_tags (article_id, tag_id) VALUES (?, ?)")
            .bind(id)
            .bind(tag)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    state
        .cache
        .invalidate(crate::cache::TAGS_KEY, &state.metrics)
        .await;
    let (_, _, article) = one(&state, &slug, Some(me.user_id)).await?;
    Ok((StatusCode::CREATED, Json(ArticleBody { article })))
}

async fn update(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    Path(slug): Path<String>,
    JsonBody(body): JsonBody<ArticleBody<ArticleUpdate>>,
) -> Result<Json<ArticleBody<Article>>, ApiError> {
    let (id, author, _) = one(&state, &slug, Some(me.user_id)).await?;
    if author != me.user_id {
        return Err(ApiError::Forbidden);
    }
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
    .execute(&state.db)
    .await
    .map_err(|e| unique_violation(e, &[("slug", "title")]))?;
    let slug = new_slug.unwrap_or(slug);
    let (_, _, article) = one(&state, &slug, Some(me.user_id)).await?;
    Ok(Json(ArticleBody { article }))
}

async fn remove(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    Path(slug): Path<String>,
) -> Result<StatusCode, ApiError> {
    let (id, author, _) = one(&state, &slug, Some(me.user_id)).await?;
    if author != me.user_id {
        return Err(ApiError::Forbidden);
    }
    sqlx::query("DELETE FROM articles WHERE id = ?")
        .bind(id)
        .execute(&state.db)
        .await?;
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

async fn favorite(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    Path(slug): Path<String>,
) -> Result<Json<ArticleBody<Article>>, ApiError> {
    let (id, _, article) = one(&state, &slug, Some(me.user_id)).await?;
    if !article.favorited {
        let inserted = sqlx::query("INSERT INTO favorites (user_id, article_id) VALUES (?, ?)")
            .bind(me.user_id)
            .bind(id)
            .execute(&state.db)
            .await;
        match inserted {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
            Err(e) => return Err(e.into()),
        }
    }
    let (_, _, article) = one(&state, &slug, Some(me.user_id)).await?;
    Ok(Json(ArticleBody { article }))
}

async fn unfavorite(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    Path(slug): Path<String>,
) -> Result<Json<ArticleBody<Article>>, ApiError> {
    let (id, _, _) = one(&state, &slug, Some(me.user_id)).await?;
    sqlx::query("DELETE FROM favorites WHERE user_id = ? AND article_id = ?")
        .bind(me.user_id)
        .bind(id)
        .execute(&state.db)
        .await?;
    let (_, _, article) = one(&state, &slug, Some(me.user_id)).await?;
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
