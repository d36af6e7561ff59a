//! `/api/users`, `/api/users/login`, `/api/user`, `/api/users/logout`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::StatusCode;
use axum::routing::{get, post};
use axum::{Json, Router};
use bloginfer_service::common::{now_millis, random_hex};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::auth::{hash_password, verify_password};
use crate::error::{unique_violation, ApiError, Problems};
use crate::extract::{AuthUser, ClientIp, JsonBody};
use crate::limit::Limited;
use crate::AppState;

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

#[derive(Deserialize, Default)]
#[serde(default)]
struct UpdateUser {
    email: Option<String>,
    username: Option<String>,
    password: Option<String>,
    bio: Option<String>,
    image: Option<String>,
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

const USER_FIELDS: [(&str, &str); 2] = [("username", "username"), ("email", "email")];

fn check_username(p: &mut Problems, username: &str) {
    p.check(username.trim().is_empty(), "username", "can't be blank");
    p.check(
        username.chars().count() > 64,
        "username",
        "is too long (maximum is 64 characters)",
    );
    p.check(
        username.chars().any(|c| c.is_whitespace() || c == '/'),
        "username",
        "may not contain spaces or slashes",
    );
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

async fn hashed(password: String) -> Result<String, ApiError> {
    tokio::task::spawn_blocking(move || hash_password(&password))
        .await
        .map_err(|e| ApiError::Internal(e.to_string()))?
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
    let hash = hashed(password).await?;
    let now = now_millis();
    let mut tx = state.db.write().begin().await?;
    let existing: i64 = sqlx::query("SELECT COUNT(*) AS n FROM users")
        .fetch_one(&mut *tx)
        .await?
        .try_get("n")?;
    let admin = existing == 0 || state.admin_email.as_deref() == Some(email.as_str());
    let sql = state.db.returning_id(
        "INSERT INTO users (username, email, password_hash, admin, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
    );
    let query = sqlx::query(&sql)
        .bind(&username)
        .bind(&email)
        .bind(&hash)
        .bind(i64::from(admin))
        .bind(now)
        .bind(now);
    let id = state
        .db
        .insert(query, &mut *tx)
        .await
        .map_err(|e| unique_violation(e, &USER_FIELDS))?;
    tx.commit().await?;
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
    state
        .login_limiter
        .attempt(&ip, &email)
        .await
        .map_err(|Limited(retry)| ApiError::TooManyRequests(retry))?;
    let row = sqlx::query("SELECT id, password_hash FROM users WHERE email = ?")
        .bind(&email)
        .fetch_optional(state.db.read())
        .await?;
    let (id, hash): (Option<i64>, String) = match row {
        Some(row) => (Some(row.try_get("id")?), row.try_get("password_hash")?),
        // Hash anyway, so that a missing account takes as long as a wrong password.
        None => (None, String::new()),
    };
    let password = body.user.password;
    let ok = tokio::task::spawn_blocking(move || {
        let hash = if hash.is_empty() {
            UNKNOWN_ACCOUNT_HASH.as_str()
        } else {
            hash.as_str()
        };
        verify_password(&password, hash)
    })
    .await
    .map_err(|e| ApiError::Internal(e.to_string()))?;
    let Some(id) = id.filter(|_| ok) else {
        state.login_limiter.failed(&email).await;
        return Err(ApiError::field("email or password", "is invalid"));
    };
    state.login_limiter.succeeded(&email).await;
    let session = state.auth.sign_in(id).await?;
    Ok(Json(UserBody {
        user: load_user(&state, id, session.token).await?,
    }))
}

/// An argon2id hash of a random password nobody knows, verified when the
/// account does not exist (made once, on the first such login).
static UNKNOWN_ACCOUNT_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password(&random_hex(16)).unwrap_or_default());

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
    JsonBody(body): JsonBody<UserBody<UpdateUser>>,
) -> Result<Json<UserBody<User>>, ApiError> {
    let u = body.user;
    let email = u.email.map(|e| e.trim().to_lowercase());
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
        u.bio.as_ref().is_some_and(|b| b.chars().count() > 2000),
        "bio",
        "is too long (maximum is 2000 characters)",
    );
    p.check(
        u.image.as_ref().is_some_and(|i| i.len() > 2000),
        "image",
        "is too long",
    );
    p.into_result()?;
    let hash = match u.password {
        Some(pw) => Some(hashed(pw).await?),
        None => None,
    };
    sqlx::query(
        "UPDATE users SET email = COALESCE(?, email), username = COALESCE(?, username), \
         password_hash = COALESCE(?, password_hash), bio = COALESCE(?, bio), image = COALESCE(?, image), \
         updated_at = ? WHERE id = ?",
    )
    .bind(email)
    .bind(u.username)
    .bind(hash)
    .bind(u.bio)
    .bind(u.image)
    .bind(now_millis())
    .bind(session.user_id)
    .execute(state.db.write())
    .await
    .map_err(|e| unique_violation(e, &USER_FIELDS))?;
    // Listings show their authors' names and images.
    state.pages.bump(&state.metrics).await;
    Ok(Json(UserBody {
        user: load_user(&state, session.user_id, session.token).await?,
    }))
}
