//! The operator's own admin account, for single-process installs: created
//! (or given the admin flag back) at start-up, so that a fresh `bloginfer up`
//! has someone who may use the ML dashboard before anyone registers.

use bloginfer_service::common::now_millis;
use sqlx::Row;

use crate::auth::hash_password;
use crate::{Blog, StartError};

/// The admin account to make sure of at start-up.
#[derive(Debug, Clone)]
pub struct AdminLogin {
    /// The account's email (how it logs in, and how an existing account is found).
    pub email: String,
    /// The name it gets when it is created (an existing account keeps its own).
    pub username: String,
    /// The password it gets when it is created (an existing account keeps its own).
    pub password: secrecy::SecretString,
}

impl Blog {
    /// Makes sure an admin account with `login.email` exists: creates it with
    /// this password, or, when the address is registered already, gives it the
    /// admin flag and keeps its password (the operator may have changed it).
    /// Returns whether the account was created.
    pub async fn ensure_admin(&self, login: &AdminLogin) -> Result<bool, StartError> {
        let db = &self.state.db;
        let email = login.email.trim().to_lowercase();
        let existing = sqlx::query("SELECT id FROM users WHERE email = ?")
            .bind(&email)
            .fetch_optional(db.write())
            .await?;
        if let Some(row) = existing {
            let id: i64 = row.try_get("id")?;
            sqlx::query("UPDATE users SET admin = 1 WHERE id = ?")
                .bind(id)
                .execute(db.write())
                .await?;
            return Ok(false);
        }
        let password = login.password.clone();
        let hash = tokio::task::spawn_blocking(move || {
            hash_password(secrecy::ExposeSecret::expose_secret(&password))
        })
        .await
        .map_err(|e| StartError::Config(format!("hashing task failed: {e}")))?
        .map_err(|e| StartError::Config(format!("cannot hash the admin password: {e:?}")))?;
        let now = now_millis();
        sqlx::query(
            "INSERT INTO users (username, email, password_hash, admin, created_at, updated_at) VALUES (?, ?, ?, 1, ?, ?)",
        )
        .bind(&login.username)
        .bind(&email)
        .bind(&hash)
        .bind(now)
        .bind(now)
        .execute(db.write())
        .await?;
        Ok(true)
    }

    /// The database the blog uses (other services in the same process share it).
    pub fn db(&self) -> bloginfer_db::Db {
        self.state.db.clone()
    }
}
