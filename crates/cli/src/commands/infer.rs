//! `bloginfer infer`: the online inference service.

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use bloginfer_infer::{BatchConfig, InferConfig, InferService};
use clap::Args;

/// Flags of `bloginfer infer`.
#[derive(Args)]
pub struct InferArgs {
    /// Address to listen on (0.0.0.0 in a container).
    #[arg(long, env = "HOST", default_value = "127.0.0.1")]
    host: IpAddr,
    /// Port to listen on (0: any free port).
    #[arg(long, env = "PORT", default_value_t = 8000)]
    port: u16,
    /// Write the bound address here once listening (useful with port 0).
    #[arg(long)]
    addr_file: Option<PathBuf>,
    /// Serve this version instead of following the registry's current pointer.
    #[arg(long, env = "MODEL_VERSION")]
    model_version: Option<String>,
    /// Texts per forward pass.
    #[arg(long, env = "INFER_MAX_BATCH", default_value_t = 64)]
    max_batch: usize,
    /// How long a request may wait for others to share its forward pass (e.g. 1ms, 500us).
    #[arg(long, env = "INFER_MAX_WAIT", default_value = "1ms", value_parser = humantime::parse_duration)]
    max_wait: Duration,
    /// Requests that may wait; beyond this the service answers 503 with Retry-After.
    #[arg(long, env = "INFER_QUEUE_CAPACITY", default_value_t = 1024)]
    queue_capacity: usize,
    /// Forward passes running at once [default: the number of cores].
    #[arg(long, env = "INFER_COMPUTE_WORKERS")]
    compute_workers: Option<usize>,
    /// How often the registry's current pointer is checked.
    #[arg(long, env = "INFER_RELOAD_INTERVAL", default_value = "1s", value_parser = humantime::parse_duration)]
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
            compute_workers: args.compute_workers.unwrap_or(cores).max(1),
        },
        reload_interval: args.reload_interval,
        max_body_bytes: args.max_body_kib.saturating_mul(1024),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(cores.clamp(1, 4))
        .max_blocking_threads(config.batching.compute_workers + 4)
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        let service = InferService::start(config)?;
        service.reload_now().await;
        let _reloader = service.spawn_reloader();
        let addr = SocketAddr::new(args.host, args.port);
        let listener = tokio::net::TcpListener::bind(addr)
            .await
            .with_context(|| format!("cannot listen on {addr}"))?;
        let bound = listener.local_addr()?;
        if let Some(path) = &args.addr_file {
            bloginfer_model::registry::write_atomic(path, bound.to_string().as_bytes())?;
        }
        tracing::info!(%bound, ready = service.shared().store.get().is_some(), "inference service listening");
        axum::serve(listener, service.router())
            .with_graceful_shutdown(super::aggregator::shutdown_signal())
            .await
            .context("server failed")?;
        tracing::info!("drained; bye");
        Ok(())
    })
}
