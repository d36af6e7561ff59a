//! The service chassis: everything an HTTP service of bloginfer needs that is
//! not its own domain, written once.
//!
//! - [`error`]: the one error envelope `{"error": {"code", "message"}}`, with
//!   `Retry-After`, and the cause of a 5xx kept out of the body and logged;
//! - [`json`]: the [`JsonBody`] extractor (400 for broken JSON, 413 for a body
//!   over the limit, 422 for JSON of the wrong shape), and [`extract`]: the raw
//!   body, path and query extractors with the same JSON errors;
//! - [`metrics`]: request counts and latency by service, route and status, and
//!   the one OpenMetrics page;
//! - [`host`]: the [`Service`] facade every service implements, and the
//!   [`Host`] that mounts one or several of them on one listener with probes
//!   (`/healthz`, `/readyz`, `/metrics`), a JSON 404, request tracing and
//!   timeouts;
//! - [`tasks`]: supervised background loops that see shutdown and show in
//!   `/readyz`;
//! - [`serve`]: binding, the address file, and the HTTP server with header and
//!   request timeouts, a connection limit and a bounded graceful drain;
//! - [`shutdown`]: SIGTERM and Ctrl-C as a cancellation token.
//!
//! The small helpers below it (clock, files, tokens, locks) live in
//! `bloginfer-common`, re-exported here as [`common`], because the model crate
//! needs them too and must not depend on a web framework.

#![warn(missing_docs)]

pub mod error;
pub mod extract;
pub mod host;
pub mod json;
pub mod metrics;
pub mod serve;
pub mod shutdown;
pub mod tasks;
pub mod trace;

pub use trace::{HostService, RequestContext};

pub use bloginfer_common as common;
pub use error::ServiceError;
pub use extract::{client_addr, BodyBytes, PathParams, QueryParams};
pub use host::{Host, Readiness, Service};
pub use json::JsonBody;
pub use serve::{bind, write_addr_file, ServeConfig, ServeError, Server, CLIENT_POOL_IDLE_TIMEOUT};
pub use tasks::{Supervisor, TaskState};
pub use tokio_util::sync::CancellationToken;

/// A boxed future, so that a [`Service`] can be a trait object.
pub type BoxFuture<'a, T> = std::pin::Pin<Box<dyn std::future::Future<Output = T> + Send + 'a>>;

/// A handler's result: its answer, or a [`ServiceError`] rendered in the envelope.
pub type ServiceResult<T> = Result<T, ServiceError>;
