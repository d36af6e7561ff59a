//! Reading articles. What a listing shows lives on the article row (favourite
//! count, tag names), so one article is one statement and a page is a count,
//! the page from the article index, and its authors by primary key; the
//! viewer's own state (favourited, following) is read only for a signed-in
//! viewer.

use std::collections::{BTreeSet, HashMap, HashSet};

use axum::body::Bytes;
use bloginfer_service::common::iso_millis;
use serde::Serialize;
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::ApiError;
use crate::http::profiles::Profile;
use crate::AppState;

/// Separates tag names in `articles.tag_list`; tags may not contain it.
pub(super) const TAG_SEPARATOR: char = '\u{1f}';

/// The article object of the API.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct Article {
    pub slug: String,
    pub title: String,
    pub description: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub body: Option<String>,
    pub tag_list: Vec<String>,
    pub created_at: String,
    pub updated_at: String,
    pub favorited: bool,
    pub favorites_count: i64,
    pub author: Profile,
}

/// A page of articles and the number of all matches.
#[derive(Clone, Serialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct ArticleList {
    pub articles: Vec<Article>,
    pub articles_count: i64,
}

/// An article with the ids handlers need for checks and writes.
pub(super) struct Found {
    pub id: i64,
    pub author_id: i64,
    pub article: Article,
}

/// Which rows a listing takes: SQL over `articles a` and its binds. Only the
/// filters given go into the SQL (`(? IS NULL OR ...)` keeps MySQL off its indexes).
#[derive(Default)]
pub(super) struct Filter {
    clauses: Vec<&'static str>,
    binds: Vec<Bind>,
}

enum Bind {
    Text(String),
    Int(i64),
}

impl Filter {
    /// Articles by `username`.
    pub fn author(mut self, username: String) -> Self {
        self.clauses
            .push("a.author_id = (SELECT id FROM users WHERE username = ?)");
        self.binds.push(Bind::Text(username));
        self
    }

    /// Articles tagged `tag`.
    pub fn tag(mut self, tag: String) -> Self {
        self.clauses.push(
            "a.id IN (SELECT at.article_id FROM article_tags at JOIN tags t ON t.id = at.tag_id WHERE t.name = ?)",
        );
        self.binds.push(Bind::Text(tag));
        self
    }

    /// Articles `username` favourited.
    pub fn favorited_by(mut self, username: String) -> Self {
        self.clauses.push(
            "a.id IN (SELECT f.article_id FROM favorites f JOIN users fu ON fu.id = f.user_id WHERE fu.username = ?)",
        );
        self.binds.push(Bind::Text(username));
        self
    }

    /// Articles by authors `user` follows.
    pub fn followed_by(mut self, user: i64) -> Self {
        self.clauses
            .push("a.author_id IN (SELECT followed_id FROM follows WHERE follower_id = ?)");
        self.binds.push(Bind::Int(user));
        self
    }

    fn sql(&self) -> String {
        if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        }
    }

    fn bind<'q>(
        &'q self,
        mut query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    ) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
        for b in &self.binds {
            query = match b {
                Bind::Text(s) => query.bind(s.as_str()),
                Bind::Int(i) => query.bind(*i),
            };
        }
        query
    }
}

/// The columns of an article read (`body` only when asked for) and the joins
/// after `articles a`; the viewer's joins, with their two `?`, only when there
/// is a viewer.
fn columns_and_joins(with_body: bool, viewer: Option<i64>) -> (String, &'static str) {
    let body = if with_body { ", a.body" } else { "" };
    let (mine, joins) = if viewer.is_some() {
        (
            ", mf.user_id AS favorited_by, mfo.follower_id AS followed_by",
            " JOIN users u ON u.id = a.author_id \
             LEFT JOIN favorites mf ON mf.article_id = a.id AND mf.user_id = ? \
             LEFT JOIN follows mfo ON mfo.followed_id = a.author_id AND mfo.follower_id = ?",
        )
    } else {
        ("", " JOIN users u ON u.id = a.author_id")
    };
    let columns = format!(
        "a.id, a.author_id, a.slug, a.title, a.description, a.created_at, a.updated_at, \
         a.favorites_count, a.tag_list, u.username, u.bio, u.image{body}{mine}"
    );
    (columns, joins)
}

/// The article's own columns; `favorited` and `author` are filled by the caller.
fn found(row: &AnyRow, with_body: bool, author: Profile) -> Result<Found, ApiError> {
    let mut tag_list: Vec<String> = crate::db::text(row, "tag_list")?
        .unwrap_or_default()
        .split(TAG_SEPARATOR)
        .filter(|t| !t.is_empty())
        .map(str::to_string)
        .collect();
    tag_list.sort();
    let article = Article {
        slug: row.try_get("slug")?,
        title: row.try_get("title")?,
        description: crate::db::text(row, "description")?.unwrap_or_default(),
        body: if with_body {
            crate::db::text(row, "body")?
        } else {
            None
        },
        tag_list,
        created_at: iso_millis(row.try_get("created_at")?),
        updated_at: iso_millis(row.try_get("updated_at")?),
        favorited: false,
        favorites_count: row.try_get("favorites_count")?,
        author,
    };
    Ok(Found {
        id: row.try_get("id")?,
        author_id: row.try_get("author_id")?,
        article,
    })
}

/// The author columns of a row (`following` from a `followed_by` column, if any).
fn profile(row: &AnyRow, viewer: Option<i64>) -> Result<Profile, ApiError> {
    Ok(Profile {
        username: row.try_get("username")?,
        bio: crate::db::text(row, "bio")?,
        image: crate::db::text(row, "image")?,
        following: viewer.is_some() && row.try_get::<Option<i64>, _>("followed_by")?.is_some(),
    })
}

/// `?, ?, ...` for `n` values.
fn marks(n: usize) -> String {
    vec!["?"; n].join(", ")
}

fn bind_viewer<'q>(
    query: sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>,
    viewer: Option<i64>,
) -> sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>> {
    match viewer {
        Some(v) => query.bind(v).bind(v),
        None => query,
    }
}

/// The article `slug` as `viewer` sees it, with its body.
pub(super) async fn by_slug(
    state: &AppState,
    slug: &str,
    viewer: Option<i64>,
) -> Result<Found, ApiError> {
    let (columns, joins) = columns_and_joins(true, viewer);
    let sql = format!("SELECT {columns} FROM articles a{joins} WHERE a.slug = ?");
    let row = bind_viewer(sqlx::query(&sql), viewer)
        .bind(slug)
        .fetch_optional(state.db.read())
        .await?
        .ok_or(ApiError::NotFound("article"))?;
    let mut found = found(&row, true, profile(&row, viewer)?)?;
    found.article.favorited =
        viewer.is_some() && row.try_get::<Option<i64>, _>("favorited_by")?.is_some();
    Ok(found)
}

/// A page of articles as a signed-out reader sees it, with the ids that
/// [`personalise`] needs; the same for every viewer, so it can be cached.
pub(crate) struct Listing {
    list: ArticleList,
    /// Article id and author id of each article, in page order.
    ids: Vec<(i64, i64)>,
    /// `list` as JSON, rendered once and served as is to signed-out readers.
    pub body: Bytes,
}

/// A page of matching articles, newest first, without bodies, and the total.
pub(super) async fn listing(
    state: &AppState,
    filter: &Filter,
    (limit, offset): (i64, i64),
) -> Result<Listing, ApiError> {
    let where_sql = filter.sql();
    let count_sql = format!("SELECT COUNT(*) AS n FROM articles a{where_sql}");
    let total: i64 = filter
        .bind(sqlx::query(&count_sql))
        .fetch_one(state.db.read())
        .await?
        .try_get("n")?;
    let mut page = Vec::new();
    if total > offset {
        // The page from the article index alone, then its authors by primary
        // key: joined, MySQL's planner starts from the small `users` table and
        // sorts every article through a temporary table.
        let sql = format!(
            "SELECT a.id, a.author_id, a.slug, a.title, a.description, a.created_at, a.updated_at, \
             a.favorites_count, a.tag_list FROM articles a{where_sql} \
             ORDER BY a.id DESC LIMIT ? OFFSET ?"
        );
        let rows = filter
            .bind(sqlx::query(&sql))
            .bind(limit)
            .bind(offset)
            .fetch_all(state.db.read())
            .await?;
        let nobody = Profile {
            username: String::new(),
            bio: None,
            image: None,
            following: false,
        };
        page = rows
            .iter()
            .map(|row| found(row, false, nobody.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let authors: BTreeSet<i64> = page.iter().map(|f| f.author_id).collect();
        let profiles = authors_of(state, &authors).await?;
        // An author deleted between the two reads takes their articles along.
        page.retain(|f| profiles.contains_key(&f.author_id));
        for f in &mut page {
            if let Some(p) = profiles.get(&f.author_id) {
                f.article.author = p.clone();
            }
        }
    }
    let ids = page.iter().map(|f| (f.id, f.author_id)).collect();
    let list = ArticleList {
        articles: page.into_iter().map(|f| f.article).collect(),
        articles_count: total,
    };
    let body = serde_json::to_vec(&list)
        .map_err(|e| ApiError::Internal(e.to_string()))?
        .into();
    Ok(Listing { list, ids, body })
}

/// `listing` as `viewer` sees it: their favourites and follows among its articles.
pub(super) async fn personalise(
    state: &AppState,
    listing: &Listing,
    viewer: i64,
) -> Result<ArticleList, ApiError> {
    if listing.ids.is_empty() {
        return Ok(listing.list.clone());
    }
    let articles: Vec<i64> = listing.ids.iter().map(|(a, _)| *a).collect();
    let authors: BTreeSet<i64> = listing.ids.iter().map(|(_, u)| *u).collect();
    let favorited = among(
        state,
        "SELECT article_id AS id FROM favorites WHERE user_id = ? AND article_id IN",
        viewer,
        articles.iter(),
    )
    .await?;
    let followed = among(
        state,
        "SELECT followed_id AS id FROM follows WHERE follower_id = ? AND followed_id IN",
        viewer,
        authors.iter(),
    )
    .await?;
    let mut list = listing.list.clone();
    for (article, (id, author)) in list.articles.iter_mut().zip(&listing.ids) {
        article.favorited = favorited.contains(id);
        article.author.following = followed.contains(author);
    }
    Ok(list)
}

/// Profiles of `ids` as a signed-out reader sees them.
async fn authors_of(
    state: &AppState,
    ids: &BTreeSet<i64>,
) -> Result<HashMap<i64, Profile>, ApiError> {
    let sql = format!(
        "SELECT u.id, u.username, u.bio, u.image FROM users u WHERE u.id IN ({})",
        marks(ids.len())
    );
    let mut query = sqlx::query(&sql);
    for id in ids {
        query = query.bind(*id);
    }
    let mut out = HashMap::with_capacity(ids.len());
    for row in query.fetch_all(state.db.read()).await? {
        out.insert(row.try_get::<i64, _>("id")?, profile(&row, None)?);
    }
    Ok(out)
}

/// The `id`s that `sql` (ending in `IN`, one `?` for `viewer`) returns among `ids`.
async fn among<'a>(
    state: &AppState,
    sql: &str,
    viewer: i64,
    ids: impl ExactSizeIterator<Item = &'a i64>,
) -> Result<HashSet<i64>, ApiError> {
    let sql = format!("{sql} ({})", marks(ids.len()));
    let mut query = sqlx::query(&sql).bind(viewer);
    for id in ids {
        query = query.bind(*id);
    }
    query
        .fetch_all(state.db.read())
        .await?
        .iter()
        .map(|row| row.try_get::<i64, _>("id").map_err(ApiError::from))
        .collect()
}
