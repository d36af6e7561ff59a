//! `GET /api/articles/:slug/comments`, a page at a time: oldest first (so a
//! new comment never shifts the pages before it), `limit` (1-100, default 20)
//! and `offset`, with the article's `commentsCount`. Without paging
//! parameters it is RealWorld's `{"comments": [...]}` (plus the count), so
//! existing clients work and see the first page. That default page is what
//! almost every reader asks for, and the one kept in the cache.

use std::collections::HashSet;
use std::sync::Arc;

use axum::extract::{Path, State};
use axum::Json;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use super::{article_of, comment, Comment, SELECT};
use crate::error::{ApiError, Problems};
use crate::extract::{MaybeAuthUser, Query};
use crate::AppState;

/// Comments on a page unless the client asks for another size.
const DEFAULT_LIMIT: i64 = 20;
/// The largest page: 100 comments of at most 10 KB (about 1 MB).
const MAX_LIMIT: i64 = 100;

/// The paging parameters as sent (parsed here, so a bad one is a 422 on its field).
#[derive(Deserialize)]
pub(super) struct PageQuery {
    limit: Option<String>,
    offset: Option<String>,
}

/// Which comments a page holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Page {
    limit: i64,
    offset: i64,
}

impl Page {
    const FIRST: Self = Self {
        limit: DEFAULT_LIMIT,
        offset: 0,
    };

    fn parse(q: &PageQuery) -> Result<Self, ApiError> {
        let mut p = Problems::default();
        let number = |value: &Option<String>, default: i64| match value {
            None => Some(default),
            Some(text) => text.trim().parse::<i64>().ok(),
        };
        let limit = number(&q.limit, DEFAULT_LIMIT).filter(|l| (1..=MAX_LIMIT).contains(l));
        let offset = number(&q.offset, 0).filter(|o| *o >= 0);
        p.check(
            limit.is_none(),
            "limit",
            "must be a whole number from 1 to 100",
        );
        p.check(
            offset.is_none(),
            "offset",
            "must be a whole number, 0 or more",
        );
        p.into_result()?;
        Ok(Self {
            limit: limit.unwrap_or(DEFAULT_LIMIT),
            offset: offset.unwrap_or(0),
        })
    }
}

/// A page of comments and how many the article has.
#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Comments {
    comments: Vec<Comment>,
    comments_count: i64,
}

/// A comment as cached: the same for every viewer (`following` is filled per request).
#[derive(Serialize, Deserialize)]
struct Cached {
    author_id: i64,
    comment: Comment,
}

/// A page as cached (only the first page is).
#[derive(Serialize, Deserialize)]
struct CachedPage {
    count: i64,
    comments: Vec<Cached>,
}

pub(super) async fn list(
    State(state): State<Arc<AppState>>,
    MaybeAuthUser(viewer): MaybeAuthUser,
    Path(slug): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Json<Comments>, ApiError> {
    let page = Page::parse(&query)?;
    let (article, _) = article_of(&state, &slug).await?;
    let found = if page == Page::FIRST {
        first_page(&state, article).await?
    } else {
        read_page(&state, article, page).await?
    };
    let followed = match viewer {
        Some(me) => followed_among(&state, me.user_id, &found.comments).await?,
        None => HashSet::new(),
    };
    let comments = found
        .comments
        .into_iter()
        .map(
            |Cached {
                 author_id,
                 mut comment,
             }| {
                comment.author.following = followed.contains(&author_id);
                comment
            },
        )
        .collect();
    Ok(Json(Comments {
        comments,
        comments_count: found.count,
    }))
}

/// The first page from the cache, or from the database into the cache. Every
/// write to the article's comments drops the entry (`cache::comments_key`).
async fn first_page(state: &AppState, article: i64) -> Result<CachedPage, ApiError> {
    let key = crate::cache::comments_key(article);
    if let Some(cached) = state.cache.get::<CachedPage>(&key, &state.metrics).await {
        return Ok(cached);
    }
    let page = read_page(state, article, Page::FIRST).await?;
    state.cache.put(&key, &page, &state.metrics).await;
    Ok(page)
}

async fn read_page(state: &AppState, article: i64, page: Page) -> Result<CachedPage, ApiError> {
    let count: i64 = sqlx::query("SELECT COUNT(*) AS n FROM comments WHERE article_id = ?")
        .bind(article)
        .fetch_one(state.db.read())
        .await?
        .try_get("n")?;
    if page.offset >= count {
        return Ok(CachedPage {
            count,
            comments: Vec::new(),
        });
    }
    let sql =
        format!("{SELECT} WHERE c.article_id = ? ORDER BY c.created_at, c.id LIMIT ? OFFSET ?");
    let rows = sqlx::query(&sql)
        .bind(-1i64)
        .bind(article)
        .bind(page.limit)
        .bind(page.offset)
        .fetch_all(state.db.read())
        .await?;
    let comments = rows
        .iter()
        .map(|row| {
            Ok(Cached {
                author_id: row.try_get("author_id")?,
                comment: comment(row)?,
            })
        })
        .collect::<Result<Vec<_>, ApiError>>()?;
    Ok(CachedPage { count, comments })
}

/// Which of the page's authors `viewer` follows (at most a page's worth of ids).
async fn followed_among(
    state: &AppState,
    viewer: i64,
    page: &[Cached],
) -> Result<HashSet<i64>, ApiError> {
    let authors: Vec<i64> = page
        .iter()
        .map(|c| c.author_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    if authors.is_empty() {
        return Ok(HashSet::new());
    }
    let marks = vec!["?"; authors.len()].join(", ");
    let sql = format!(
        "SELECT followed_id FROM follows WHERE follower_id = ? AND followed_id IN ({marks})"
    );
    let mut query = sqlx::query(&sql).bind(viewer);
    for author in &authors {
        query = query.bind(*author);
    }
    let rows = query.fetch_all(state.db.read()).await?;
    rows.iter()
        .map(|r| r.try_get("followed_id").map_err(ApiError::from))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(limit: Option<&str>, offset: Option<&str>) -> Result<Page, ApiError> {
        Page::parse(&PageQuery {
            limit: limit.map(str::to_string),
            offset: offset.map(str::to_string),
        })
    }

    #[test]
    fn pages_are_bounded_and_bad_values_refused() {
        assert_eq!(parse(None, None).ok(), Some(Page::FIRST));
        assert_eq!(
            parse(Some("100"), Some("40")).ok(),
            Some(Page {
                limit: 100,
                offset: 40
            })
        );
        for (limit, offset) in [
            (Some("0"), None),
            (Some("101"), None),
            (Some("x"), None),
            (Some(""), None),
            (None, Some("-1")),
            (None, Some("99999999999999999999")),
        ] {
            assert!(parse(limit, offset).is_err(), "{limit:?} {offset:?}");
        }
    }
}
