//! `bloginfer infer`: the online inference service.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bloginfer_infer::{BatchConfig, InferConfig, Inference};
use bloginfer_service::ServeConfig;
use clap::Args;

use crate::args::{duration, listen_default, ListenArgs};
use crate::serve;

/// Flags of `bloginfer infer`.
#[derive(Args)]
#[command(mut_arg("listen", |a| listen_default(a, "127.0.0.1:8000")))]
pub struct InferArgs {
    #[command(flatten)]
    listen: ListenArgs,
    /// Serve this version instead of following the registry's current pointer.
    #[arg(long, env = "MODEL_VERSION")]
    model_version: Option<String>,
    /// Texts per forward pass.
    #[arg(long, env = "INFER_MAX_BATCH", default_value_t = 64)]
    max_batch: usize,
    /// How long a request may wait for others to share its forward pass (e.g. 1ms, 500us).
    #[arg(long, env = "INFER_MAX_WAIT", default_value = "1ms", value_parser = duration)]
    max_wait: Duration,
    /// Requests that may wait; beyond this the service answers 503 with Retry-After.
    #[arg(long, env = "INFER_QUEUE_CAPACITY", default_value_t = 1024)]
    queue_capacity: usize,
    /// MiB of text that requests may hold while they wait or run; beyond this
    /// the service answers 503 with Retry-After.
    #[arg(long, env = "INFER_QUEUE_MIB", default_value_t = BatchConfig::DEFAULT_QUEUE_BYTES >> 20)]
    queue_mib: usize,
    /// Forward passes running at once [default: the number of cores].
    #[arg(long, env = "INFER_COMPUTE_WORKERS")]
    compute_workers: Option<usize>,
    /// How often the registry's current pointer is checked.
    #[arg(long, env = "INFER_RELOAD_INTERVAL", default_value = "1s", value_parser = duration)]
    reload_interval: Duration,
    /// Largest accepted request body, in KiB.
    #[arg(long, env = "INFER_MAX_BODY_KIB", default_value_t = 1024)]
    max_body_kib: usize,
}

/// Runs `bloginfer infer`.
pub fn run(models_dir: &Path, args: InferArgs) -> Result<()> {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let config = InferConfig {
        models_dir: models_dir.to_path_buf(),
        pinned_version: args.model_version.clone(),
        batching: BatchConfig {
            max_batch: args.max_batch.max(1),
            max_wait: args.max_wait,
            queue_capacity: args.queue_capacity.max(1),
            queue_bytes: args.queue_mib.max(1).saturating_mul(1 << 20),
            compute_workers: args.compute_workers.unwrap_or(cores).max(1),
        },
        reload_interval: args.reload_interval,
        max_body_bytes: args.max_body_kib.saturating_mul(1024),
    };
    // Forward passes run on blocking threads; a few async threads route requests.
    serve::runtime(Some(cores.clamp(1, 4)))?.block_on(async {
        let (listener, _) = serve::bind(&args.listen).await?;
        let inference = Inference::build(config)?;
        inference.reload_now().await;
        serve::host(
            listener,
            &args.listen,
            ServeConfig::default(),
            vec![Arc::new(inference)],
            None,
        )
        .await
    })
}
