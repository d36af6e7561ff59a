//! Federated training for the sentiment model.
//!
//! Workers hold their own data and send only model updates; the aggregator
//! combines them round by round. One mechanism covers every strategy
//! (FedAvg, FedSGD, FedProx, FedAvgM, FedAdam, with robust median or trimmed
//! mean): clients send pseudo-gradients, the server combines them and applies
//! a server optimiser.
//!
//! - [`params`]: parameters as named `f32` vectors;
//! - [`wire`]: compact binary messages (safetensors; sparse embedding rows, f32 or f16);
//! - [`protocol`]: the JSON messages and routes;
//! - [`strategy`]: aggregation and server optimisers;
//! - [`local`]: a worker's local training for one round;
//! - [`spec`]: a run described as data (`run.json`) and its directory's layout;
//! - [`server`]: the aggregator service (round state machine, persistence, metrics);
//! - [`client`]: the worker loop, with retries;
//! - [`partition`]: IID and Dirichlet shards;
//! - [`launcher`]: preparing a run directory, and running it as local
//!   processes (`bloginfer fl run` and the orchestrator's local launcher).

#![warn(missing_docs)]

pub mod bounds;
pub mod client;
pub mod credentials;
mod error;
pub mod launcher;
pub mod local;
pub mod params;
pub mod partition;
pub mod privacy;
pub mod protocol;
pub mod secagg;
pub mod server;
pub mod spec;
pub mod strategy;
pub mod wire;

pub use error::{FlError, Result};
