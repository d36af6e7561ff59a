//! The orchestrator from the outside: its admin API hosted as `bloginfer
//! orchestrator` hosts it, and the Kubernetes launcher against a mock API server.

mod api;
mod kubernetes;
