//! The orchestrator from the outside: its admin API hosted as `bloginfer
//! orchestrator` hosts it, and the Kubernetes launcher against a mock API server.

// Helpers may unwrap too (clippy.toml allows it only in #[test] fns): a panic fails the test.
#![allow(clippy::unwrap_used)]

mod api;
mod auth;
mod gate;
mod kubernetes;
