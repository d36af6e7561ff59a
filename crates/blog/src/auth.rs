//! Authentication: argon2id password hashes (computed off the async runtime),
//! HS256 JWTs that carry a session id, and the session store that makes
//! logout real (a revoked session's token stops working at once).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::Argon2;
use bloginfer_service::common::{lock, random_hex};
use jsonwebtoken::{decode, encode, Algorithm, DecodingKey, EncodingKey, Header, Validation};
use rand::Rng;
use secrecy::{ExposeSecret, SecretSlice};
use serde::{Deserialize, Serialize};

use crate::error::ApiError;

/// How long a session (and its token) lives.
pub const SESSION_TTL: Duration = Duration::from_secs(7 * 24 * 3600);

/// Hashes a password with argon2id and a random salt (blocking: call it on a
/// blocking thread).
pub fn hash_password(password: &str) -> Result<String, ApiError> {
    let salt_bytes: [u8; 16] = rand::rng().random();
    let salt =
        SaltString::encode_b64(&salt_bytes).map_err(|e| ApiError::Internal(e.to_string()))?;
    Argon2::default()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| ApiError::Internal(e.to_string()))
}

/// Checks a password against a stored hash (blocking).
pub fn verify_password(password: &str, hash: &str) -> bool {
    PasswordHash::new(hash)
        .map(|parsed| {
            Argon2::default()
                .verify_password(password.as_bytes(), &parsed)
                .is_ok()
        })
        .unwrap_or(false)
}

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

/// Sessions in process memory (single-process mode).
#[derive(Default)]
pub struct MemorySessions(Mutex<HashMap<String, (i64, SystemTime)>>);

/// Sessions in Redis (any number of replicas share them): `SET <prefix><id> <user> EX <ttl>`.
pub struct RedisSessions {
    redis: redis::aio::ConnectionManager,
    prefix: String,
}

/// Where sessions live: Redis in a cluster, memory in one process.
pub enum Sessions {
    /// In this process: lost on restart, unknown to other replicas.
    Memory(MemorySessions),
    /// In Redis: shared by every replica, surviving restarts.
    Redis(RedisSessions),
}

fn redis_down(e: redis::RedisError) -> ApiError {
    ApiError::unavailable(
        "the session store is unreachable; retry shortly",
        format_args!("session store: {e}"),
    )
}

impl Sessions {
    /// Sessions in Redis at `url`, under keys starting with `prefix`.
    pub async fn redis(url: &str, prefix: &str) -> Result<Self, redis::RedisError> {
        let client = redis::Client::open(url)?;
        let redis = redis::aio::ConnectionManager::new(client).await?;
        Ok(Self::Redis(RedisSessions {
            redis,
            prefix: prefix.to_string(),
        }))
    }

    async fn create(&self, session: &str, user_id: i64, ttl: Duration) -> Result<(), ApiError> {
        match self {
            Self::Memory(m) => {
                let mut map = lock(&m.0);
                let now = SystemTime::now();
                map.retain(|_, (_, expires)| *expires > now);
                map.insert(session.to_string(), (user_id, now + ttl));
                Ok(())
            }
            Self::Redis(r) => {
                let mut conn = r.redis.clone();
                redis::cmd("SET")
                    .arg(format!("{}{session}", r.prefix))
                    .arg(user_id)
                    .arg("EX")
                    .arg(ttl.as_secs())
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(redis_down)
            }
        }
    }

    async fn user_of(&self, session: &str) -> Result<Option<i64>, ApiError> {
        match self {
            Self::Memory(m) => {
                let map = lock(&m.0);
                Ok(map
                    .get(session)
                    .filter(|(_, expires)| *expires > SystemTime::now())
                    .map(|(user, _)| *user))
            }
            Self::Redis(r) => {
                let mut conn = r.redis.clone();
                redis::cmd("GET")
                    .arg(format!("{}{session}", r.prefix))
                    .query_async::<Option<i64>>(&mut conn)
                    .await
                    .map_err(redis_down)
            }
        }
    }

    async fn revoke(&self, session: &str) -> Result<(), ApiError> {
        match self {
            Self::Memory(m) => {
                lock(&m.0).remove(session);
                Ok(())
            }
            Self::Redis(r) => {
                let mut conn = r.redis.clone();
                redis::cmd("DEL")
                    .arg(format!("{}{session}", r.prefix))
                    .query_async::<()>(&mut conn)
                    .await
                    .map_err(redis_down)
            }
        }
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
}
