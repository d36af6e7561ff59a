//! Authentication: argon2id password hashes (computed off the async runtime),
//! HS256 JWTs that carry a session id, and the session store that makes
//! logout real (a revoked session's token stops working at once).

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use bloginfer_db::Db;
use bloginfer_service::common::{lock, now_millis, random_hex};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};
use sqlx::Row;

use crate::error::ApiError;
use crate::redis_link::{RedisDown, RedisLink};

/// How long a session (and its token) lives.
pub const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Hashes a password with argon2id and a random salt (blocking, and 19 MiB
/// while it runs: requests go through [`Passwords`]).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| ApiError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Checks a password against a stored hash (blocking, like [`hash_password`]).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

/// How long a request waits for a free hashing slot before it is told to retry.
const HASHING_QUEUE_WAIT: Duration = Duration::from_secs(10);

/// Password hashing and checking off the async runtime, on a few threads of
/// its own (one per core), one run per thread at a time: each argon2id run
/// holds 19 MiB, so unbounded concurrency turns a burst of registrations or
/// logins into an out-of-memory kill, and runs spread over the shared blocking
/// pool would leave 19 MiB in the allocator arena of every thread they touched.
/// Requests wait for a free thread up to [`HASHING_QUEUE_WAIT`], then get 503.
pub struct Passwords {
    slots: tokio::sync::Semaphore,
    jobs: std::sync::mpsc::Sender<Job>,
}

type Job = Box<dyn FnOnce() + Send>;

impl Default for Passwords {
    fn default() -> Self {
        let threads = std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
        let (jobs, queue) = std::sync::mpsc::channel::<Job>();
        let queue = Arc::new(Mutex::new(queue));
        for i in 0..threads {
            let queue = queue.clone();
            let spawned = std::thread::Builder::new()
                .name(format!("passwords-{i}"))
                .spawn(move || loop {
                    // Ends when the `Passwords` (the only sender) is dropped.
                    let Ok(job) = lock(&queue).recv() else {
                        return;
                    };
                    job();
                    give_back_freed_memory();
                });
            if let Err(e) = spawned {
                tracing::error!("cannot start a password thread: {e}");
            }
        }
        Self {
            slots: tokio::sync::Semaphore::new(threads),
            jobs,
        }
    }
}

impl Passwords {
    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce() -> T + Send + 'static,
    ) -> Result<T, ApiError> {
        let _slot = tokio::time::timeout(HASHING_QUEUE_WAIT, self.slots.acquire())
            .await
            .map_err(|_| {
                ApiError::unavailable(
                    "the server is busy checking passwords; retry shortly",
                    "password hashing queue full",
                )
            })?
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        let (done, answer) = tokio::sync::oneshot::channel();
        self.jobs
            .send(Box::new(move || {
                let _ = done.send(work());
            }))
            .map_err(|_| ApiError::Internal("no password thread is running".into()))?;
        answer
            .await
            .map_err(|_| ApiError::Internal("a password thread failed".into()))
    }

    /// An argon2id hash of `password`.
    pub async fn hash(&self, password: String) -> Result<String, ApiError> {
        self.run(move || hash_password(&password)).await?
    }

    /// Whether `password` matches `hash`. An empty `hash` stands for an
    /// account that does not exist: the password is checked against a hash
    /// nobody knows the password of, so that both take as long.
    pub async fn verify(&self, password: String, hash: String) -> Result<bool, ApiError> {
        self.run(move || {
            if hash.is_empty() {
                let _ = verify_password(&password, &UNKNOWN_ACCOUNT_HASH);
                return false;
            }
            verify_password(&password, &hash)
        })
        .await
    }
}

/// Returns the memory an argon2 run freed to the system. Measured: without
/// this, glibc keeps the freed 19 MiB blocks of successive runs (40 hashes, one
/// after another on one thread, raised the peak by 340 MiB); with it, the
/// process holds what the running hashes need. It costs well under a
/// millisecond beside a 25 ms hash.
fn give_back_freed_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only releases free memory of the allocator's arenas;
    // it takes no pointers and touches no live allocation.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// An argon2id hash of a random password nobody knows (made once, on a blocking thread).
static UNKNOWN_ACCOUNT_HASH: std::sync::LazyLock<String> =
    std::sync::LazyLock::new(|| hash_password(&random_hex(16)).unwrap_or_default());

/// What a token says.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Claims {
    /// The signed-in user's id.
    sub: i64,
    /// The session, which must still exist for the token to count.
    sid: String,
    /// When the token stops counting even if the session lives (seconds since the epoch).
    exp: u64,
}

/// How long a cache may keep a session: bounds how long a session revoked
/// where this cache cannot see it (another replica whose revocation did not
/// reach Redis, `bloginfer admin` run beside a live process) is still accepted.
const CACHED_SESSION_TTL: Duration = Duration::from_secs(60);

/// Entries the in-process session cache keeps before it drops expired ones.
const LOCAL_SESSIONS: usize = 100_000;

/// Sessions: rows in the database (their only home, so restarts and Redis
/// outages log nobody out), with a cache in front that saves a query per
/// request: Redis when replicas share one, this process's memory otherwise.
pub struct Sessions {
    db: Db,
    cache: SessionCache,
}

enum SessionCache {
    /// One process: every sign-in and revocation goes through it, so the copy
    /// is exact. Session id → (user, expiry in ms since the epoch).
    Local(Mutex<HashMap<String, (i64, i64)>>),
    /// Replicas: a short-lived copy in Redis, which every replica's revocation deletes.
    Redis {
        link: Arc<RedisLink>,
        prefix: String,
    },
}

fn cache_miss(e: &RedisDown) {
    match e {
        RedisDown::Open => tracing::debug!("session cache skipped: {e}"),
        _ => tracing::warn!("session cache unreachable, reading the database: {e}"),
    }
}

impl Sessions {
    /// Sessions in `db`, cached in this process (one replica).
    pub fn local(db: Db) -> Self {
        Self {
            db,
            cache: SessionCache::Local(Mutex::new(HashMap::new())),
        }
    }

    /// Sessions in `db`, cached in Redis under keys starting with `prefix`.
    pub fn redis(db: Db, link: Arc<RedisLink>, prefix: String) -> Self {
        Self {
            db,
            cache: SessionCache::Redis { link, prefix },
        }
    }

    async fn remember(&self, session: &str, user_id: i64, expires: i64) {
        match &self.cache {
            SessionCache::Local(map) => {
                let mut map = lock(map);
                if map.len() >= LOCAL_SESSIONS {
                    let now = now_millis();
                    map.retain(|_, (_, until)| *until > now);
                    if map.len() >= LOCAL_SESSIONS {
                        map.clear();
                    }
                }
                let ttl = i64::try_from(CACHED_SESSION_TTL.as_millis()).unwrap_or(i64::MAX);
                let until = expires.min(now_millis().saturating_add(ttl));
                map.insert(session.to_string(), (user_id, until));
            }
            SessionCache::Redis { link, prefix } => {
                let left = u64::try_from(expires - now_millis()).unwrap_or(0) / 1000;
                let ttl = left.min(CACHED_SESSION_TTL.as_secs());
                if ttl == 0 {
                    return;
                }
                let set = link
                    .query::<()>(
                        redis::cmd("SET")
                            .arg(format!("{prefix}{session}"))
                            .arg(user_id)
                            .arg("EX")
                            .arg(ttl),
                    )
                    .await;
                if let Err(e) = set {
                    cache_miss(&e);
                }
            }
        }
    }

    async fn forget(&self, sessions: &[String]) {
        match &self.cache {
            SessionCache::Local(map) => {
                let mut map = lock(map);
                for session in sessions {
                    map.remove(session);
                }
            }
            SessionCache::Redis { link, prefix } => {
                if sessions.is_empty() {
                    return;
                }
                let mut del = redis::cmd("DEL");
                for session in sessions {
                    del.arg(format!("{prefix}{session}"));
                }
                if let Err(e) = link.query::<()>(&del).await {
                    // Other replicas may accept it until CACHED_SESSION_TTL runs out.
                    tracing::warn!("revoked session(s) still cached in redis: {e}");
                }
            }
        }
    }

    async fn cached(&self, session: &str) -> Option<i64> {
        match &self.cache {
            SessionCache::Local(map) => lock(map)
                .get(session)
                .filter(|(_, until)| *until > now_millis())
                .map(|(user, _)| *user),
            SessionCache::Redis { link, prefix } => {
                match link
                    .query::<Option<i64>>(redis::cmd("GET").arg(format!("{prefix}{session}")))
                    .await
                {
                    Ok(user) => user,
                    Err(e) => {
                        cache_miss(&e);
                        None
                    }
                }
            }
        }
    }

    /// Drops every cached session of `user_id` this process holds (Redis
    /// copies expire within [`CACHED_SESSION_TTL`]).
    fn forget_user(&self, user_id: i64) {
        if let SessionCache::Local(map) = &self.cache {
            lock(map).retain(|_, (user, _)| *user != user_id);
        }
    }

    async fn create(&self, session: &str, user_id: i64, ttl: Duration) -> Result<(), ApiError> {
        let now = now_millis();
        let expires = now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX));
        if rand::rng().random_ratio(1, 64) {
            // Expired rows are never read again; sweep them now and then.
            sqlx::query("DELETE FROM sessions WHERE expires_at < ?")
                .bind(now)
                .execute(self.db.write())
                .await?;
        }
        sqlx::query(
            "INSERT INTO sessions (id, user_id, created_at, expires_at) VALUES (?, ?, ?, ?)",
        )
        .bind(session)
        .bind(user_id)
        .bind(now)
        .bind(expires)
        .execute(self.db.write())
        .await?;
        self.remember(session, user_id, expires).await;
        Ok(())
    }

    async fn user_of(&self, session: &str) -> Result<Option<i64>, ApiError> {
        if let Some(user) = self.cached(session).await {
            return Ok(Some(user));
        }
        let row = sqlx::query("SELECT user_id, expires_at FROM sessions WHERE id = ?")
            .bind(session)
            .fetch_optional(self.db.read())
            .await?;
        let Some(row) = row else {
            return Ok(None);
        };
        let (user, expires): (i64, i64) = (row.try_get("user_id")?, row.try_get("expires_at")?);
        if expires <= now_millis() {
            return Ok(None);
        }
        self.remember(session, user, expires).await;
        Ok(Some(user))
    }

    async fn revoke(&self, session: &str) -> Result<(), ApiError> {
        sqlx::query("DELETE FROM sessions WHERE id = ?")
            .bind(session)
            .execute(self.db.write())
            .await?;
        self.forget(&[session.to_string()]).await;
        Ok(())
    }

    /// Ends every session of `user_id` but `keep` (after a password or e-mail change).
    async fn revoke_others(&self, user_id: i64, keep: &str) -> Result<(), ApiError> {
        let rows = sqlx::query("SELECT id FROM sessions WHERE user_id = ? AND id <> ?")
            .bind(user_id)
            .bind(keep)
            .fetch_all(self.db.write())
            .await?;
        let ids = rows
            .iter()
            .map(|row| row.try_get::<String, _>("id"))
            .collect::<Result<Vec<_>, _>>()?;
        sqlx::query("DELETE FROM sessions WHERE user_id = ? AND id <> ?")
            .bind(user_id)
            .bind(keep)
            .execute(self.db.write())
            .await?;
        self.forget(&ids).await;
        Ok(())
    }
}

/// The shortest JWT secret accepted: HS256 wants a key as long as its hash.
pub const MIN_SECRET_BYTES: usize = 32;

/// The HS256 keys, made from the configured secret: the one place the secret
/// is read.
pub struct JwtKeys {
    encoding: EncodingKey,
    decoding: DecodingKey,
}

impl JwtKeys {
    /// Keys from `secret`, refused when it is shorter than [`MIN_SECRET_BYTES`].
    pub fn from_secret(secret: &SecretSlice<u8>) -> Result<Self, String> {
        let secret = secret.expose_secret();
        if secret.len() < MIN_SECRET_BYTES {
            return Err(format!(
                "the JWT secret must be at least {MIN_SECRET_BYTES} bytes"
            ));
        }
        Ok(Self {
            encoding: EncodingKey::from_secret(secret),
            decoding: DecodingKey::from_secret(secret),
        })
    }
}

/// Issues and checks tokens.
pub struct Auth {
    keys: JwtKeys,
    sessions: Sessions,
}

/// A verified token: who is signed in, and the session to end on logout.
#[derive(Debug, Clone)]
pub struct Session {
    /// The signed-in user's id.
    pub user_id: i64,
    /// The session the token belongs to (what logout revokes).
    pub session_id: String,
    /// The token itself (echoed in user objects).
    pub token: String,
}

impl Auth {
    /// Tokens signed with `keys`, sessions in `sessions`.
    pub fn new(keys: JwtKeys, sessions: Sessions) -> Self {
        Self { keys, sessions }
    }

    /// Starts a session for `user_id` and returns its token.
    pub async fn sign_in(&self, user_id: i64) -> Result<Session, ApiError> {
        let session_id = random_hex(16);
        self.sessions
            .create(&session_id, user_id, SESSION_TTL)
            .await?;
        let exp = (SystemTime::now() + SESSION_TTL)
            .duration_since(UNIX_EPOCH)
            .map_err(|e| ApiError::Internal(e.to_string()))?
            .as_secs();
        let claims = Claims {
            sub: user_id,
            sid: session_id.clone(),
            exp,
        };
        let token = encode(&Header::new(Algorithm::HS256), &claims, &self.keys.encoding)
            .map_err(|e| ApiError::Internal(e.to_string()))?;
        Ok(Session {
            user_id,
            session_id,
            token,
        })
    }

    /// Checks a token's signature, expiry and session.
    pub async fn verify(&self, token: &str) -> Result<Session, ApiError> {
        let data = decode::<Claims>(
            token,
            &self.keys.decoding,
            &Validation::new(Algorithm::HS256),
        )
        .map_err(|_| ApiError::Unauthorized)?;
        match self.sessions.user_of(&data.claims.sid).await? {
            Some(user) if user == data.claims.sub => Ok(Session {
                user_id: user,
                session_id: data.claims.sid,
                token: token.to_string(),
            }),
            _ => Err(ApiError::Unauthorized),
        }
    }

    /// Ends the session of a token.
    pub async fn sign_out(&self, session: &Session) -> Result<(), ApiError> {
        self.sessions.revoke(&session.session_id).await
    }

    /// Forgets the cached sessions of `user_id` (their rows were deleted elsewhere).
    pub fn forget_cached_user(&self, user_id: i64) {
        self.sessions.forget_user(user_id);
    }

    /// Ends every other session of the signed-in user (the credentials changed).
    pub async fn sign_out_elsewhere(&self, session: &Session) -> Result<(), ApiError> {
        self.sessions
            .revoke_others(session.user_id, &session.session_id)
            .await
    }
}
