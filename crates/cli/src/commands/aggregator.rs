//! `bloginfer aggregator`: one federated run's aggregator, as a network
//! service, described by the `run.json` of its run directory.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use bloginfer_fl::server::{Aggregator, AggregatorConfig, HostSettings};
use bloginfer_fl::spec::{write_json, RunDir};
use bloginfer_service::ServeConfig;
use clap::Args;

use crate::args::{listen_default, ListenArgs};
use crate::serve;

/// Flags of `bloginfer aggregator`.
#[derive(Args)]
#[command(mut_arg("listen", |a| listen_default(a, "127.0.0.1:7000")))]
pub struct AggregatorArgs {
    /// The run directory: its `run.json` says everything about the run; state,
    /// status and result files go there too.
    #[arg(long, env = "FL_RUN_DIR")]
    run_dir: PathBuf,
    #[command(flatten)]
    listen: ListenArgs,
    /// Largest accepted request body, in MiB.
    #[arg(long, env = "FL_MAX_BODY_MIB", default_value_t = 256)]
    max_body_mib: usize,
}

/// Runs `bloginfer aggregator`.
pub fn run(models_dir: &Path, threads: usize, args: AggregatorArgs) -> Result<()> {
    let dir = RunDir::new(&args.run_dir);
    let host = HostSettings {
        models_dir: Some(models_dir.to_path_buf()),
        threads,
        max_body_bytes: args.max_body_mib.saturating_mul(1 << 20),
    };
    let config = AggregatorConfig::from_run_dir(&dir, &host)?;
    // Uploads on slow links and long polls take a while; the run's own
    // deadlines bound them.
    let serving = ServeConfig {
        request_timeout: Duration::from_secs(600),
        drain_timeout: Duration::from_secs(30),
        ..ServeConfig::default()
    };
    let aggregator = serve::runtime(Some(2))?.block_on(async {
        let (listener, _) = serve::bind(&args.listen).await?;
        let aggregator = tokio::task::spawn_blocking(move || Aggregator::build(config))
            .await
            .context("the aggregator's start-up task failed")??;
        serve::host(
            listener,
            &args.listen,
            serving,
            vec![Arc::new(aggregator.clone())],
            None,
        )
        .await?;
        Ok::<_, anyhow::Error>(aggregator)
    })?;
    let status = aggregator.outcome()?;
    write_json(&dir.result(), &status)?;
    if let Some(version) = &status.version {
        println!("{version}");
    }
    Ok(())
}
