//! Admins are made explicitly, never by registering: `bloginfer admin` (a CLI
//! command, or a one-shot Kubernetes Job reading a Secret) creates or promotes
//! one, and `bloginfer up` makes sure of its own generated login at start. The
//! public API has no way to become an admin.

use bloginfer_db::Db;
use bloginfer_service::common::now_millis;
use secrecy::{ExposeSecret, SecretString};
use sqlx::Row;

use crate::auth::hash_password;
use crate::{names, Blog, StartError};

/// The admin account to create or promote.
#[derive(Debug, Clone)]
pub struct AdminLogin {
    /// The account's email (how it logs in, and how an existing account is found).
    pub email: String,
    /// The name it gets when it is created (an existing account keeps its own).
    pub username: String,
    /// The password it gets when it is created (required then).
    pub password: Option<SecretString>,
    /// Whether an existing account's password is replaced by `password` too.
    pub reset_password: bool,
}

/// What [`ensure_admin`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AdminOutcome {
    /// A new account was created with the admin flag.
    Created,
    /// An existing account got (or kept) the admin flag, and its password if one was given.
    Promoted {
        /// Whether the password was replaced (and the account's sessions ended).
        password_reset: bool,
    },
}

/// Why an admin could not be made.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    /// The e-mail, username or password is unusable.
    #[error("{0}")]
    Invalid(String),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

impl From<AdminError> for StartError {
    fn from(e: AdminError) -> Self {
        match e {
            AdminError::Database(e) => Self::Database(e),
            AdminError::Invalid(why) => Self::Config(format!("admin account: {why}")),
        }
    }
}

/// Shortest admin password accepted.
pub const MIN_ADMIN_PASSWORD_CHARS: usize = 12;

/// Creates the admin `login` describes, or gives an existing account with that
/// e-mail the admin flag; with `reset_password`, an existing account's
/// password is replaced and its sessions end (a regenerated login must work,
/// and the old one must stop working).
pub async fn ensure_admin(db: &Db, login: &AdminLogin) -> Result<AdminOutcome, AdminError> {
    let email = login.email.trim().to_lowercase();
    if !email
        .split_once('@')
        .is_some_and(|(user, domain)| !user.is_empty() && !domain.is_empty() && email.len() <= 255)
    {
        return Err(AdminError::Invalid(format!(
            "`{email}` is not an e-mail address"
        )));
    }
    let hash = match &login.password {
        Some(password) => {
            let password = password.expose_secret().to_string();
            if password.chars().count() < MIN_ADMIN_PASSWORD_CHARS {
                return Err(AdminError::Invalid(format!(
                    "the password must have at least {MIN_ADMIN_PASSWORD_CHARS} characters"
                )));
            }
            let hashed = tokio::task::spawn_blocking(move || hash_password(&password))
                .await
                .map_err(|e| AdminError::Invalid(format!("hashing failed: {e}")))?;
            Some(hashed.map_err(|e| AdminError::Invalid(format!("hashing failed: {e}")))?)
        }
        None => None,
    };
    let existing = sqlx::query("SELECT id FROM users WHERE email = ?")
        .bind(&email)
        .fetch_optional(db.write())
        .await?;
    if let Some(row) = existing {
        let id: i64 = row.try_get("id")?;
        sqlx::query("UPDATE users SET admin = 1, updated_at = ? WHERE id = ?")
            .bind(now_millis())
            .bind(id)
            .execute(db.write())
            .await?;
        let reset = hash.as_ref().filter(|_| login.reset_password);
        if let Some(hash) = reset {
            sqlx::query("UPDATE users SET password_hash = ? WHERE id = ?")
                .bind(hash)
                .bind(id)
                .execute(db.write())
                .await?;
            sqlx::query("DELETE FROM sessions WHERE user_id = ?")
                .bind(id)
                .execute(db.write())
                .await?;
        }
        return Ok(AdminOutcome::Promoted {
            password_reset: reset.is_some(),
        });
    }
    let Some(hash) = hash else {
        return Err(AdminError::Invalid(format!(
            "no account has the e-mail {email}; give a password to create one"
        )));
    };
    if let Some(problem) = names::problem(&login.username) {
        return Err(AdminError::Invalid(format!("username {problem}")));
    }
    let now = now_millis();
    sqlx::query(
        "INSERT INTO users (username, username_skeleton, email, password_hash, admin, created_at, updated_at) \
         VALUES (?, ?, ?, ?, 1, ?, ?)",
    )
    .bind(&login.username)
    .bind(names::skeleton(&login.username))
    .bind(&email)
    .bind(&hash)
    .bind(now)
    .bind(now)
    .execute(db.write())
    .await?;
    Ok(AdminOutcome::Created)
}

/// Gives accounts made before usernames had skeletons theirs. Two old names
/// that look alike keep working; the later one simply has none (and is logged).
pub async fn fill_username_skeletons(db: &Db) -> Result<(), sqlx::Error> {
    let rows = sqlx::query("SELECT id, username FROM users WHERE username_skeleton IS NULL")
        .fetch_all(db.write())
        .await?;
    for row in rows {
        let (id, username): (i64, String) = (row.try_get("id")?, row.try_get("username")?);
        let filled = sqlx::query("UPDATE users SET username_skeleton = ? WHERE id = ?")
            .bind(names::skeleton(&username))
            .bind(id)
            .execute(db.write())
            .await;
        match filled {
            Ok(_) => {}
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                tracing::warn!(
                    user = id,
                    "username looks like an older one; left without a skeleton"
                );
            }
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

impl Blog {
    /// [`ensure_admin`] on this blog's database; a reset also drops the
    /// account's sessions from this process's session cache at once.
    pub async fn ensure_admin(&self, login: &AdminLogin) -> Result<AdminOutcome, StartError> {
        let outcome = ensure_admin(&self.state.db, login).await?;
        if outcome
            == (AdminOutcome::Promoted {
                password_reset: true,
            })
        {
            let row = sqlx::query("SELECT id FROM users WHERE email = ?")
                .bind(login.email.trim().to_lowercase())
                .fetch_one(self.state.db.read())
                .await?;
            self.state.auth.forget_cached_user(row.try_get("id")?);
        }
        Ok(outcome)
    }

    /// The database the blog uses (other services in the same process share it).
    pub fn db(&self) -> Db {
        self.state.db.clone()
    }
}
