//! `/api/users`, `/api/users/login`, `/api/user`, `/api/users/logout`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bloginfer_service::common::now_millis;
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::error::{unique_violation, ApiError, Problems};
use crate::extract::{AuthUser, ClientIp, JsonBody};
use crate::limit::Limited;
use crate::{names, AppState};

pub(crate) fn router() -> Router<Arc<AppState>> {
    Router::new()
        .route("/api/users", post(register))
        .route("/api/users/login", post(login))
        .route("/api/users/logout", post(logout))
        .route("/api/user", get(current).put(update))
}

#[derive(Deserialize, Serialize)]
struct UserBody<T> {
    user: T,
}

#[derive(Deserialize)]
struct NewUser {
    username: String,
    email: String,
    password: String,
}

#[derive(Deserialize)]
struct Login {
    email: String,
    password: String,
}

/// A settings change. `bio` and `image` distinguish "not sent" (keep) from
/// `null` or `""` (clear); changing the e-mail or password needs the current one.
#[derive(Deserialize, Default)]
#[serde(default, rename_all = "camelCase")]
struct UpdateUser {
    email: Option<String>,
    username: Option<String>,
    password: Option<String>,
    current_password: Option<String>,
    #[serde(deserialize_with = "present")]
    bio: Option<Option<String>>,
    #[serde(deserialize_with = "present")]
    image: Option<Option<String>>,
}

/// A field that is present (even as `null`) becomes `Some`.
fn present<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(d).map(Some)
}

/// The user object of the API.
#[derive(Serialize)]
struct User {
    email: String,
    token: String,
    username: String,
    bio: Option<String>,
    image: Option<String>,
    admin: bool,
}

// `username` also matches the skeleton's constraint (`user_username_skeleton_key`).
const USER_FIELDS: [(&str, &str); 2] = [("username", "username"), ("email", "email")];

fn check_username(p: &mut Problems, username: &str) {
    if let Some(problem) = names::problem(username) {
        p.check(true, "username", problem);
    }
}

fn check_email(p: &mut Problems, email: &str) {
    let valid = email.len() <= 255
        && email.split_once('@').is_some_and(|(user, domain)| {
            !user.is_empty() && domain.contains('.') && !domain.starts_with('.')
        });
    p.check(!valid, "email", "is invalid");
}

fn check_password(p: &mut Problems, password: &str) {
    p.check(
        password.chars().count() < 8,
        "password",
        "is too short (minimum is 8 characters)",
    );
    p.check(password.len() > 1024, "password", "is too long");
}

/// 422 when `username` (or a look-alike) or `email` belongs to someone other
/// than `me`; checked before any password is hashed. The unique constraints
/// still decide races.
async fn check_taken(
    state: &AppState,
    me: Option<i64>,
    username: Option<&str>,
    email: Option<&str>,
) -> Result<(), ApiError> {
    let mut p = Problems::default();
    if let Some(username) = username {
        let owner =
            sqlx::query("SELECT id FROM users WHERE username = ? OR username_skeleton = ? LIMIT 1")
                .bind(username)
                .bind(names::skeleton(username))
                .fetch_optional(state.db.read())
                .await?;
        let taken = match owner {
            Some(row) => Some(row.try_get::<i64, _>("id")?) != me,
            None => false,
        };
        p.check(taken, "username", "has already been taken");
    }
    if let Some(email) = email {
        let owner = sqlx::query("SELECT id FROM users WHERE email = ?")
            .bind(email)
            .fetch_optional(state.db.read())
            .await?;
        let taken = match owner {
            Some(row) => Some(row.try_get::<i64, _>("id")?) != me,
            None => false,
        };
        p.check(taken, "email", "has already been taken");
    }
    p.into_result()
}

fn limited(Limited(retry): Limited) -> ApiError {
    ApiError::TooManyRequests(retry)
}

async fn load_user(state: &AppState, id: i64, token: String) -> Result<User, ApiError> {
    let row = sqlx::query("SELECT email, username, bio, image, admin FROM users WHERE id = ?")
        .bind(id)
        .fetch_optional(state.db.read())
        .await?
        .ok_or(ApiError::Unauthorized)?;
    Ok(User {
        email: row.try_get("email")?,
        token,
        username: row.try_get("username")?,
        bio: crate::db::text(&row, "bio")?,
        image: crate::db::text(&row, "image")?,
        admin: row.try_get::<i64, _>("admin")? != 0,
    })
}

async fn register(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<UserBody<NewUser>>,
) -> Result<(StatusCode, Json<UserBody<User>>), ApiError> {
    let NewUser {
        username,
        email,
        password,
    } = body.user;
    let email = email.trim().to_lowercase();
    let mut p = Problems::default();
    check_username(&mut p, &username);
    check_email(&mut p, &email);
    check_password(&mut p, &password);
    p.into_result()?;
    state.login_limiter.write(&ip).await.map_err(limited)?;
    check_taken(&state, None, Some(&username), Some(&email)).await?;
    let hash = state.passwords.hash(password).await?;
    let now = now_millis();
    // Nobody becomes an admin by registering (see `crate::admin`).
    let sql = state.db.returning_id(
        "INSERT INTO users (username, username_skeleton, email, password_hash, admin, created_at, updated_at) \
         VALUES (?, ?, ?, ?, 0, ?, ?)",
    );
    let query = sqlx::query(&sql)
        .bind(&username)
        .bind(names::skeleton(&username))
        .bind(&email)
        .bind(&hash)
        .bind(now)
        .bind(now);
    let mut conn = state.db.write().acquire().await?;
    let id = state
        .db
        .insert(query, &mut *conn)
        .await
        .map_err(|e| unique_violation(e, &USER_FIELDS))?;
    drop(conn);
    let session = state.auth.sign_in(id).await?;
    let user = load_user(&state, id, session.token).await?;
    Ok((StatusCode::CREATED, Json(UserBody { user })))
}

async fn login(
    State(state): State<Arc<AppState>>,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<UserBody<Login>>,
) -> Result<Json<UserBody<User>>, ApiError> {
    let email = body.user.email.trim().to_lowercase();
    let mut p = Problems::default();
    // Bounds what becomes a limiter key and what argon2 is fed.
    p.check(email.len() > 255, "email", "is too long");
    p.check(body.user.password.len() > 1024, "password", "is too long");
    p.into_result()?;
    state
        .login_limiter
        .attempt(&ip, &email)
        .await
        .map_err(limited)?;
    let row = sqlx::query("SELECT id, password_hash FROM users WHERE email = ?")
        .bind(&email)
        .fetch_optional(state.db.read())
        .await?;
    let (id, hash): (Option<i64>, String) = match row {
        Some(row) => (Some(row.try_get("id")?), row.try_get("password_hash")?),
        // Checked anyway (see `Passwords::verify`), so that a missing account
        // takes as long as a wrong password.
        None => (None, String::new()),
    };
    let ok = state.passwords.verify(body.user.password, hash).await?;
    let Some(id) = id.filter(|_| ok) else {
        state.login_limiter.failed(&ip, &email).await;
        return Err(ApiError::field("email or password", "is invalid"));
    };
    state.login_limiter.succeeded(&ip, &email).await;
    let session = state.auth.sign_in(id).await?;
    Ok(Json(UserBody {
        user: load_user(&state, id, session.token).await?,
    }))
}

async fn logout(
    State(state): State<Arc<AppState>>,
    AuthUser(session): AuthUser,
) -> Result<StatusCode, ApiError> {
    state.auth.sign_out(&session).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn current(
    State(state): State<Arc<AppState>>,
    AuthUser(session): AuthUser,
) -> Result<Json<UserBody<User>>, ApiError> {
    Ok(Json(UserBody {
        user: load_user(&state, session.user_id, session.token).await?,
    }))
}

async fn update(
    State(state): State<Arc<AppState>>,
    AuthUser(session): AuthUser,
    ClientIp(ip): ClientIp,
    JsonBody(body): JsonBody<UserBody<UpdateUser>>,
) -> Result<Json<UserBody<User>>, ApiError> {
    let u = body.user;
    let email = u.email.map(|e| e.trim().to_lowercase());
    // `""` is stored as "none", like `null`.
    let clear_empty = |v: Option<Option<String>>| v.map(|v| v.filter(|s| !s.is_empty()));
    let (bio, image) = (clear_empty(u.bio), clear_empty(u.image));
    let mut p = Problems::default();
    if let Some(name) = &u.username {
        check_username(&mut p, name);
    }
    if let Some(e) = &email {
        check_email(&mut p, e);
    }
    if let Some(pw) = &u.password {
        check_password(&mut p, pw);
    }
    p.check(
        bio.as_ref()
            .and_then(Option::as_ref)
            .is_some_and(|b| b.chars().count() > 2000),
        "bio",
        "is too long (maximum is 2000 characters)",
    );
    p.check(
        image
            .as_ref()
            .and_then(Option::as_ref)
            .is_some_and(|i| i.len() > 2000),
        "image",
        "is too long",
    );
    p.into_result()?;
    let row = sqlx::query("SELECT email, password_hash FROM users WHERE id = ?")
        .bind(session.user_id)
        .fetch_optional(state.db.read())
        .await?
        .ok_or(ApiError::Unauthorized)?;
    let (current_email, current_hash): (String, String) =
        (row.try_get("email")?, row.try_get("password_hash")?);
    let email = email.filter(|e| *e != current_email);
    let credentials_change = email.is_some() || u.password.is_some();
    if credentials_change {
        state.login_limiter.write(&ip).await.map_err(limited)?;
        let Some(current) = u.current_password.filter(|c| c.len() <= 1024) else {
            return Err(ApiError::field(
                "currentPassword",
                "is required to change the e-mail or password",
            ));
        };
        if !state.passwords.verify(current, current_hash).await? {
            state.login_limiter.failed(&ip, &current_email).await;
            return Err(ApiError::field("currentPassword", "is invalid"));
        }
    }
    check_taken(
        &state,
        Some(session.user_id),
        u.username.as_deref(),
        email.as_deref(),
    )
    .await?;
    let hash = match u.password {
        Some(pw) => Some(state.passwords.hash(pw).await?),
        None => None,
    };
    sqlx::query(
        "UPDATE users SET email = COALESCE(?, email), username = COALESCE(?, username), \
         username_skeleton = COALESCE(?, username_skeleton), password_hash = COALESCE(?, password_hash), \
         bio = CASE WHEN ? THEN ? ELSE bio END, image = CASE WHEN ? THEN ? ELSE image END, \
         updated_at = ? WHERE id = ?",
    )
    .bind(email)
    .bind(u.username.as_deref())
    .bind(u.username.as_deref().map(names::skeleton))
    .bind(hash)
    .bind(bio.is_some())
    .bind(bio.flatten())
    .bind(image.is_some())
    .bind(image.flatten())
    .bind(now_millis())
    .bind(session.user_id)
    .execute(state.db.write())
    .await
    .map_err(|e| unique_violation(e, &USER_FIELDS))?;
    if credentials_change {
        // Whoever else held a session (perhaps the reason for the change) is out.
        state.auth.sign_out_elsewhere(&session).await?;
    }
    // Listings show their authors' names and images.
    state.pages.bump(&state.metrics).await;
    Ok(Json(UserBody {
        user: load_user(&state, session.user_id, session.token).await?,
    }))
}
