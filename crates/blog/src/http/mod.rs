//! One module and router per resource, merged here.

mod articles;
mod comments;
pub mod inference;
mod profiles;
mod tags;
mod users;

use std::sync::Arc;

use axum::http::{header, Method};
use axum::Router;
use tower_http::cors::{Any, CorsLayer};

use crate::AppState;

pub(crate) use articles::Listing;

/// The blog API's routes with CORS for browsers on other origins. The host
/// adds the probes, `/metrics`, request metrics and the JSON 404.
pub fn routes(state: Arc<AppState>) -> Router {
    let cors = CorsLayer::new()
        .allow_origin(Any)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            header::ACCEPT,
            header::HeaderName::from_static("x-requested-with"),
            header::HeaderName::from_static("idempotency-key"),
        ])
        // Browsers may reuse a preflight for ten minutes instead of asking before every call.
        .max_age(std::time::Duration::from_secs(600))
        // Every answer is the same for every origin and preflight (`*`, fixed
        // lists), so no `Vary`; and axum clones this layer for every request,
        // where the default `Vary` list was an allocation each time.
        .vary(Vec::<header::HeaderName>::new());
    let mut router = Router::new()
        .merge(users::router())
        .merge(articles::router())
        .merge(comments::router())
        .merge(profiles::router())
        .merge(tags::router());
    if state.inference_proxy.is_some() {
        router = router.merge(inference::router());
    }
    router
        .method_not_allowed_fallback(bloginfer_service::error::method_not_allowed)
        .layer(cors)
        .with_state(state)
}
