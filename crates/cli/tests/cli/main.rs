//! The `bloginfer` binary as its users run it: real processes on loopback
//! (services, federated runs, the orchestrator, `up`), and the Kubernetes
//! manifests checked against what the binary reads.

// Helpers may unwrap too (clippy.toml allows it only in #[test] fns): a panic fails the test.
#![allow(clippy::unwrap_used)]

mod commands;
mod federated;
mod feedback;
mod infer;
mod manifests;
mod orchestrator;
mod support;
