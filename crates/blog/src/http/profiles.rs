//! `/api/profiles/:username` and following.

use std::sync::Arc;

use axum::extract::{Path, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use bloginfer_service::common::now_millis;
use serde::Serialize;
use sqlx::Row;

use crate::error::ApiError;
use crate::extract::{AuthUser, MaybeAuthUser};
use crate::AppState;

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/profiles/{username}", get(show))
        .route(
            "/api/profiles/{username}/follow",
            post(follow).delete(unfollow),
        )
}

/// The profile object of the API.
#[derive(Clone, Serialize, serde::Deserialize)]
pub struct Profile {
    /// The name in the profile's URL (`/api/profiles/{username}`).
    pub username: String,
    /// What the user wrote about themselves, if anything.
    pub bio: Option<String>,
    /// Where the user's picture is, if they gave one.
    pub image: Option<String>,
    /// Whether the viewer follows this user.
    pub following: bool,
}

#[derive(Serialize)]
struct ProfileBody {
    profile: Profile,
}

/// Loads `username`'s profile as seen by `viewer`; returns its user id too.
pub async fn load(
    state: &AppState,
    username: &str,
    viewer: Option<i64>,
) -> Result<(i64, Profile), ApiError> {
    let row = sqlx::query(
        "SELECT u.id, u.username, u.bio, u.image, \
         (SELECT COUNT(*) FROM follows f WHERE f.follower_id = ? AND f.followed_id = u.id) AS following \
         FROM users u WHERE u.username = ?",
    )
    .bind(viewer.unwrap_or(-1))
    .bind(username)
    .fetch_optional(state.db.read())
    .await?
    .ok_or(ApiError::NotFound("profile"))?;
    Ok((
        row.try_get("id")?,
        Profile {
            username: row.try_get("username")?,
            bio: crate::db::text(&row, "bio")?,
            image: crate::db::text(&row, "image")?,
            following: row.try_get::<i64, _>("following")? != 0,
        },
    ))
}

async fn show(
    State(state): State<Arc<AppState>>,
    MaybeAuthUser(viewer): MaybeAuthUser,
    Path(username): Path<String>,
) -> Result<Json<ProfileBody>, ApiError> {
    let (_, profile) = load(&state, &username, viewer.map(|s| s.user_id)).await?;
    Ok(Json(ProfileBody { profile }))
}

async fn follow(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    Path(username): Path<String>,
) -> Result<Json<ProfileBody>, ApiError> {
    let (id, mut profile) = load(&state, &username, Some(me.user_id)).await?;
    if id == me.user_id {
        return Err(ApiError::field("profile", "cannot follow yourself"));
    }
    if !profile.following {
        let inserted = sqlx::query(
            "INSERT INTO follows (follower_id, followed_id, created_at) VALUES (?, ?, ?)",
        )
        .bind(me.user_id)
        .bind(id)
        .bind(now_millis())
        .execute(state.db.write())
        .await;
        match inserted {
            Ok(_) => {}
            // A concurrent follow got there first: the outcome is the same.
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {}
            Err(e) => return Err(e.into()),
        }
    }
    profile.following = true;
    Ok(Json(ProfileBody { profile }))
}

async fn unfollow(
    State(state): State<Arc<AppState>>,
    AuthUser(me): AuthUser,
    Path(username): Path<String>,
) -> Result<Json<ProfileBody>, ApiError> {
    let (id, mut profile) = load(&state, &username, Some(me.user_id)).await?;
    sqlx::query("DELETE FROM follows WHERE follower_id = ? AND followed_id = ?")
        .bind(me.user_id)
        .bind(id)
        .execute(state.db.write())
        .await?;
    profile.following = false;
    Ok(Json(ProfileBody { profile }))
}
