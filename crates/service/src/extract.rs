//! Extractors whose rejections are the chassis's JSON errors, not axum's
//! plain-text ones: the raw body, path parameters and the query string.

use axum::body::Bytes;
use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::StatusCode;
use serde::de::DeserializeOwned;

use crate::error::ServiceError;

/// The request body as bytes, within the route's size limit (413
/// `body_too_large` beyond it).
#[derive(Debug, Clone)]
pub struct BodyBytes(pub Bytes);

impl<S: Send + Sync> FromRequest<S> for BodyBytes {
    type Rejection = ServiceError;

    async fn from_request(req: Request, state: &S) -> Result<Self, ServiceError> {
        Bytes::from_request(req, state)
            .await
            .map(BodyBytes)
            .map_err(|rejection| {
                if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
                    ServiceError::payload_too_large("the request body is too large")
                } else {
                    ServiceError::bad_request("unreadable_body", rejection.body_text())
                }
            })
    }
}

/// Path parameters parsed as `T` (400 `invalid_path` when they do not parse).
#[derive(Debug, Clone)]
pub struct PathParams<T>(pub T);

impl<T, S> FromRequestParts<S> for PathParams<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ServiceError> {
        axum::extract::Path::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Path(value)| PathParams(value))
            .map_err(|r| ServiceError::bad_request("invalid_path", r.body_text()))
    }
}

/// The query string parsed as `T` (400 `invalid_query` when it does not parse).
#[derive(Debug, Clone)]
pub struct QueryParams<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryParams<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ServiceError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ServiceError> {
        axum::extract::Query::<T>::from_request_parts(parts, state)
            .await
            .map(|axum::extract::Query(value)| QueryParams(value))
            .map_err(|r| ServiceError::bad_request("invalid_query", r.body_text()))
    }
}

/// The client's address: the connection's peer, or, behind a reverse proxy,
/// the last `X-Forwarded-For` entry (a client can prepend entries but cannot
/// replace the one the proxy appends); `None` when neither is known.
pub fn client_addr(parts: &Parts, behind_proxy: bool) -> Option<std::net::IpAddr> {
    let forwarded = || {
        parts
            .headers
            .get_all("x-forwarded-for")
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .rfind(|v| !v.is_empty())
            .and_then(|v| v.parse().ok())
    };
    let peer = || {
        parts
            .extensions
            .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
            .map(|c| c.0.ip())
    };
    if behind_proxy {
        forwarded().or_else(peer)
    } else {
        peer()
    }
}
