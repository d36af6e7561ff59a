//! Launchers start a run's aggregator and workers, tell how they are doing,
//! stop them, and roll inference out to a newly promoted model. Two stand
//! behind the one trait: [`local::LocalLauncher`] (child processes of this
//! binary on loopback) and [`kubernetes::KubernetesLauncher`] (Jobs and a
//! Service through the Kubernetes API). Per-round progress does not come from
//! the launcher but from the aggregator's status file in the run directory,
//! which both share with the orchestrator.

pub mod kubernetes;
pub mod local;

use std::future::Future;
use std::path::PathBuf;
use std::pin::Pin;

use crate::error::Result;

/// A boxed future, so that launchers can be trait objects.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// What a launcher needs to start a run whose directory (with its
/// `run.json`) is written.
#[derive(Debug, Clone)]
pub struct RunPlan {
    /// The run's id, which names its processes (or Kubernetes objects) and directory.
    pub run_id: String,
    /// The run directory (see [`bloginfer_fl::spec`]).
    pub dir: PathBuf,
    /// Workers (one shard each).
    pub workers: usize,
    /// The model registry the aggregator publishes the candidate to.
    pub models_dir: PathBuf,
}

/// How a run's processes are doing.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// The aggregator has not finished yet.
    Running,
    /// The aggregator finished successfully (its result file holds the outcome).
    Finished,
    /// It failed, and why.
    Failed(String),
}

/// Starts, follows and stops runs; rolls inference out.
pub trait Launcher: Send + Sync {
    /// `local` or `kubernetes`.
    fn name(&self) -> &'static str;

    /// Starts `plan`; returns the handle (JSON) to store with the run.
    fn start<'a>(&'a self, plan: &'a RunPlan) -> BoxFuture<'a, Result<serde_json::Value>>;

    /// How the run behind `handle` is doing; may replace the handle (a local run
    /// relaunched after a restart). Called every poll interval.
    fn observe<'a>(
        &'a self,
        plan: &'a RunPlan,
        handle: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<(Observed, Option<serde_json::Value>)>>;

    /// Stops everything behind `handle`; stopping what is gone is not an error.
    fn stop<'a>(
        &'a self,
        plan: &'a RunPlan,
        handle: &'a serde_json::Value,
    ) -> BoxFuture<'a, Result<()>>;

    /// Makes inference serve `version`, now current in the registry.
    fn roll_out<'a>(&'a self, version: &'a str) -> BoxFuture<'a, Result<()>>;
}
