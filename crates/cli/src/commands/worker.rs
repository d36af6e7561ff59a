//! `bloginfer worker`: a federated client training on its own shard only.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Result;
use bloginfer_fl::client::{run_worker, Fault, WorkerConfig};
use bloginfer_fl::spec::WorkerDir;
use clap::Args;

use crate::args::duration;

/// Flags of `bloginfer worker`.
#[derive(Args)]
pub struct WorkerArgs {
    /// The aggregator's base URL.
    #[arg(long, env = "FL_AGGREGATOR_URL")]
    aggregator: String,
    /// This worker's folder: who it is, its own data and its token, nothing else.
    #[arg(long, env = "FL_WORKER_DIR")]
    worker_dir: PathBuf,
    /// The run this worker must belong to (checked against its folder).
    #[arg(long, env = "FL_RUN_ID")]
    run_id: Option<String>,
    /// Give up after the aggregator has been unreachable this long.
    #[arg(long, env = "FL_MAX_UNREACHABLE", default_value = "2m", value_parser = duration)]
    max_unreachable: Duration,
    /// Misbehave on purpose, to test the aggregator's defences (tests only).
    #[arg(long, default_value = "none", hide = true)]
    fault: Fault,
}

/// Runs `bloginfer worker`.
pub fn run(threads: usize, args: WorkerArgs) -> Result<()> {
    let config = WorkerConfig::from_dir(
        args.aggregator,
        &WorkerDir::new(&args.worker_dir),
        threads,
        args.max_unreachable,
        args.fault,
    )?;
    if let (Some(expected), Some(actual)) = (&args.run_id, &config.expected_run) {
        anyhow::ensure!(
            expected == actual,
            "{} belongs to run {actual}, not {expected}",
            args.worker_dir.display()
        );
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let summary = runtime.block_on(async {
        tokio::select! {
            result = run_worker(config) => result.map_err(anyhow::Error::from),
            () = bloginfer_service::shutdown::signal() => Err(anyhow::anyhow!("interrupted")),
        }
    })?;
    tracing::info!(
        accepted = summary.rounds_accepted,
        refused = summary.rounds_refused,
        bytes_up = summary.bytes_up,
        bytes_down = summary.bytes_down,
        "worker done"
    );
    Ok(())
}
