//! `bloginfer worker`: a federated client training on its own shard only.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::{Context, Result};
use bloginfer_fl::client::{run_worker, Fault, WorkerConfig};
use clap::Args;

/// Flags of `bloginfer worker`.
#[derive(Args)]
pub struct WorkerArgs {
    /// Aggregator base URL.
    #[arg(long, env = "FL_AGGREGATOR_URL")]
    aggregator: String,
    #[command(flatten)]
    token: super::aggregator::RunToken,
    /// The run this worker belongs to; an aggregator of another run is refused.
    #[arg(long, env = "FL_RUN_ID")]
    run_id: Option<String>,
    /// This worker's id (a Kubernetes Indexed Job sets JOB_COMPLETION_INDEX).
    #[arg(long, env = "JOB_COMPLETION_INDEX")]
    worker_id: String,
    /// This worker's own data (`label<TAB>text` TSV); `{id}` is replaced by the worker id.
    #[arg(long, env = "FL_SHARD")]
    shard: String,
    /// Give up after the aggregator has been unreachable this long.
    #[arg(long, env = "FL_MAX_UNREACHABLE", default_value = "2m", value_parser = humantime::parse_duration)]
    max_unreachable: Duration,
    /// Misbehave on purpose, to test the aggregator's defences: nan, scale:FACTOR or sign-flip[:FACTOR].
    #[arg(long, default_value = "none")]
    fault: Fault,
}

/// Runs `bloginfer worker`.
pub fn run(threads: usize, args: WorkerArgs) -> Result<()> {
    let config = WorkerConfig {
        aggregator: args.aggregator,
        token: args.token.resolve()?,
        shard: PathBuf::from(args.shard.replace("{id}", &args.worker_id)),
        worker_id: args.worker_id,
        threads,
        max_unreachable: args.max_unreachable,
        fault: args.fault,
        expected_run: args.run_id,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let summary = runtime.block_on(async {
        tokio::select! {
            result = run_worker(config) => result.map_err(anyhow::Error::from),
            _ = super::aggregator::shutdown_signal() => Err(anyhow::anyhow!("interrupted")),
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
