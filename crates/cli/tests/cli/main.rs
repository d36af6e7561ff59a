//! The `bloginfer` binary as its users run it: real processes on loopback
//! (services, federated runs, the orchestrator, `up`), and the Kubernetes
//! manifests checked against what the binary reads.

mod commands;
mod federated;
mod feedback;
mod infer;
mod manifests;
mod orchestrator;
mod support;
