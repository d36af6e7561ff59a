//! `Idempotency-Key` on creation (`POST /api/articles`, `POST
//! /api/articles/:slug/comments`): a client that retries a create it never
//! saw answered (a timeout, a dropped connection, a double click) gets the
//! original back instead of a duplicate.
//!
//! What a key created is a row of `idempotency_keys`, written in the same
//! transaction as the resource, under the primary key (user, scope, key): of
//! two racing requests with one key the second's insert conflicts (MySQL makes
//! it wait for the first's commit; SQLite has one writer), its transaction
//! rolls back with its copy of the resource, and it answers the first's.
//! Entries live a day; an expired one frees its key, and all are pruned.

use std::sync::atomic::{AtomicI64, Ordering};

use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue};
use bloginfer_service::common::now_millis;
use sqlx::{Any, Row, Transaction};

use crate::error::ApiError;
use crate::AppState;

/// How long a key is remembered: longer than any client retries.
const TTL_MILLIS: i64 = 24 * 60 * 60 * 1000;
/// How often a process deletes expired keys (at most).
const PRUNE_EVERY_MILLIS: i64 = 60 * 1000;
/// Longest accepted key, in bytes (a UUID is 36).
pub(crate) const KEY_MAX_BYTES: usize = 128;

/// Set on an answer that replays what an earlier request with the same key
/// created (the convention of Stripe's API), so a client can tell.
pub(crate) const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");

/// The request's `Idempotency-Key`, if it sent one: 1 to [`KEY_MAX_BYTES`]
/// bytes of visible ASCII (`!` to `~`), else 422 on the field `Idempotency-Key`.
pub(crate) struct IdempotencyKey(pub Option<String>);

impl<S: Send + Sync> FromRequestParts<S> for IdempotencyKey {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        match parts.headers.get("idempotency-key") {
            None => Ok(Self(None)),
            Some(value) => parse(value).map(|key| Self(Some(key))),
        }
    }
}

fn parse(value: &HeaderValue) -> Result<String, ApiError> {
    let bytes = value.as_bytes();
    let printable = bytes.iter().all(|b| (b'!'..=b'~').contains(b));
    if bytes.is_empty() || bytes.len() > KEY_MAX_BYTES || !printable {
        return Err(ApiError::field(
            "Idempotency-Key",
            "must be 1 to 128 visible ASCII characters",
        ));
    }
    // Visible ASCII is UTF-8.
    Ok(String::from_utf8_lossy(bytes).into_owned())
}

/// Whether a key was new.
pub(crate) enum Recorded {
    /// The key (if any) now names the resource just created, which is committed.
    New(i64),
    /// An earlier request with this key created this resource; this one's
    /// was rolled back, and the earlier one is the answer.
    Taken(i64),
}

/// A key with what it applies to: `user`'s creations in `scope`.
pub(crate) struct Claim<'a> {
    /// The signed-in user who sent the key.
    pub user: i64,
    /// `article`, or `comment:<article id>`: a key is the client's per endpoint.
    pub scope: &'a str,
    /// The key as sent.
    pub key: &'a str,
}

impl Claim<'_> {
    /// Frees the key if its entry has expired. Called before the creating
    /// transaction begins, in a statement of its own: inside it, MySQL would
    /// gap-lock the missing row and two racing requests would deadlock.
    pub(crate) async fn forget_expired(&self, state: &AppState) -> Result<(), ApiError> {
        sqlx::query(
            "DELETE FROM idempotency_keys WHERE user_id = ? AND scope = ? AND idem_key = ? AND created_at < ?",
        )
        .bind(self.user)
        .bind(self.scope)
        .bind(self.key)
        .bind(now_millis() - TTL_MILLIS)
        .execute(state.db.write())
        .await?;
        Ok(())
    }

    /// Records, inside the transaction `tx` that created `resource`, that this
    /// key created it, and commits; or, when an earlier request with this key
    /// created something already, rolls `tx` back and names what that was.
    pub(crate) async fn commit(
        &self,
        state: &AppState,
        mut tx: Transaction<'_, Any>,
        resource: i64,
    ) -> Result<Recorded, ApiError> {
        let now = now_millis();
        let inserted = sqlx::query(
            "INSERT INTO idempotency_keys (user_id, scope, idem_key, resource_id, created_at) VALUES (?, ?, ?, ?, ?)",
        )
        .bind(self.user)
        .bind(self.scope)
        .bind(self.key)
        .bind(resource)
        .bind(now)
        .execute(&mut *tx)
        .await;
        match inserted {
            Ok(_) => {
                tx.commit().await?;
                prune(state).await;
                Ok(Recorded::New(resource))
            }
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                // Rolled back first: SQLite's one writer connection is this
                // transaction's, and MySQL's snapshot might not show the other
                // request's commit.
                tx.rollback().await?;
                let row = sqlx::query(
                    "SELECT resource_id FROM idempotency_keys WHERE user_id = ? AND scope = ? AND idem_key = ?",
                )
                .bind(self.user)
                .bind(self.scope)
                .bind(self.key)
                .fetch_one(state.db.read())
                .await?;
                Ok(Recorded::Taken(row.try_get("resource_id")?))
            }
            Err(e) => Err(e.into()),
        }
    }
}

/// Deletes expired keys, at most once a minute per process (best effort: an
/// expired key is ignored anyway, this only bounds the table).
async fn prune(state: &AppState) {
    static LAST: AtomicI64 = AtomicI64::new(0);
    let now = now_millis();
    let last = LAST.load(Ordering::Relaxed);
    if now - last < PRUNE_EVERY_MILLIS
        || LAST
            .compare_exchange(last, now, Ordering::Relaxed, Ordering::Relaxed)
            .is_err()
    {
        return;
    }
    let pruned = sqlx::query("DELETE FROM idempotency_keys WHERE created_at < ?")
        .bind(now - TTL_MILLIS)
        .execute(state.db.write())
        .await;
    if let Err(e) = pruned {
        tracing::warn!("could not prune expired idempotency keys: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_bounded_visible_ascii() {
        let ok = |v: &[u8]| parse(&HeaderValue::from_bytes(v).expect("value")).is_ok();
        assert!(ok(b"0f8fad5b-d9cb-469f-a165-70867728950e"));
        assert!(ok(&[b'~'; KEY_MAX_BYTES]));
        assert!(!ok(&[b'a'; KEY_MAX_BYTES + 1]));
        assert!(!ok(b""));
        assert!(!ok(b"a b"));
        assert!(!ok(b"caf\xc3\xa9"));
        assert!(!ok(b"tab\there"));
    }
}
