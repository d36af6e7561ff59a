//! Request extractors: the signed-in user (required or optional) and JSON
//! bodies whose errors come back in the API's format.

use std::sync::Arc;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::header::AUTHORIZATION;
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::auth::Session;
use crate::error::ApiError;
use crate::AppState;

/// A request from a signed-in user (`Authorization: Token <jwt>`, the scheme
/// `Token` or `Bearer` in any case); 401 otherwise.
pub struct AuthUser(pub Session);

/// A request that may carry a token; a token that is present but invalid is
/// still 401.
pub struct MaybeAuthUser(pub Option<Session>);

fn token(parts: &Parts) -> Result<Option<&str>, ApiError> {
    let Some(value) = parts.headers.get(AUTHORIZATION) else {
        return Ok(None);
    };
    let value = value.to_str().map_err(|_| ApiError::Unauthorized)?;
    let (scheme, token) = value
        .trim_start()
        .split_once(' ')
        .ok_or(ApiError::Unauthorized)?;
    if scheme.eq_ignore_ascii_case("token") || scheme.eq_ignore_ascii_case("bearer") {
        Ok(Some(token.trim()))
    } else {
        Err(ApiError::Unauthorized)
    }
}

impl FromRequestParts<Arc<AppState>> for AuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let token = token(parts)?.ok_or(ApiError::Unauthorized)?;
        state.auth.verify(token).await.map(AuthUser)
    }
}

impl FromRequestParts<Arc<AppState>> for MaybeAuthUser {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        match token(parts)? {
            None => Ok(MaybeAuthUser(None)),
            Some(token) => state
                .auth
                .verify(token)
                .await
                .map(|s| MaybeAuthUser(Some(s))),
        }
    }
}

/// The client's address (what the login limit counts): the connection's peer
/// (set by the chassis's server), or, behind a reverse proxy
/// (`BlogConfig::behind_proxy`), the last address in `X-Forwarded-For`, the one
/// the proxy itself saw.
pub struct ClientIp(pub String);

impl FromRequestParts<Arc<AppState>> for ClientIp {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, ApiError> {
        let peer = bloginfer_service::client_addr(parts, state.behind_proxy)
            .map_or_else(|| "unknown".to_string(), |ip| ip.to_string());
        Ok(ClientIp(peer))
    }
}

/// A JSON body, parsed by the chassis's [`bloginfer_service::JsonBody`]
/// (one JSON object, no content type required), whose refusals keep
/// RealWorld's shape: a 422 with the reason under the `body` field. Only a
/// body over the size limit stays the chassis's 413.
pub struct JsonBody<T>(pub T);

impl<T, S> FromRequest<S> for JsonBody<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ApiError> {
        match bloginfer_service::JsonBody::<T>::from_request(req, state).await {
            Ok(bloginfer_service::JsonBody(value)) => Ok(JsonBody(value)),
            Err(e) if e.status() == StatusCode::PAYLOAD_TOO_LARGE => Err(e.into()),
            Err(e) => Err(ApiError::field("body", e.message())),
        }
    }
}

/// A query string parsed as `T`, refused in RealWorld's shape: a 422 with the
/// reason under the `query` field (`?limit=abc`), never a plain-text 400.
pub struct Query<T>(pub T);

impl<T, S> FromRequestParts<S> for Query<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match bloginfer_service::QueryParams::<T>::from_request_parts(parts, state).await {
            Ok(bloginfer_service::QueryParams(value)) => Ok(Query(value)),
            Err(e) => Err(ApiError::field("query", e.message())),
        }
    }
}
