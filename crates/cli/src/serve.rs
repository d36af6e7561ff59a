//! The one start-up sequence of every service subcommand: the services
//! mounted on a host, the server started on the bound listener, the address
//! file written once it serves, then, on SIGTERM or Ctrl-C (or when a service
//! asks, as the aggregator does at the end of its run), the requests drained
//! and the background tasks stopped.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::{Context, Result};
use axum::Router;
use bloginfer_service::{CancellationToken, Host, ServeConfig, Service};
use tokio::net::TcpListener;

use crate::args::ListenArgs;

/// A multi-threaded Tokio runtime with `workers` threads (the default: one per core).
pub fn runtime(workers: Option<usize>) -> Result<tokio::runtime::Runtime> {
    let mut builder = tokio::runtime::Builder::new_multi_thread();
    if let Some(n) = workers {
        builder.worker_threads(n.max(1));
    }
    builder
        .enable_all()
        .build()
        .context("cannot start the async runtime")
}

/// Binds the `--listen` address; returns the listener and the address bound (the real
/// port when port 0 was asked for).
pub async fn bind(listen: &ListenArgs) -> Result<(TcpListener, SocketAddr)> {
    let listener = bloginfer_service::bind(listen.listen).await?;
    let bound = listener.local_addr()?;
    Ok((listener, bound))
}

/// Hosts `services` on `listener` until shutdown; `fallback` (the web app)
/// answers what no service does, else a JSON 404.
pub async fn host(
    listener: TcpListener,
    listen: &ListenArgs,
    config: ServeConfig,
    services: Vec<Arc<dyn Service>>,
    fallback: Option<Router>,
) -> Result<()> {
    let shutdown = CancellationToken::new();
    let mut host = Host::new(config, shutdown.clone());
    for service in services {
        host.mount(service);
    }
    serve(listener, listen, host, fallback).await
}

/// Serves an assembled `host` (see [`host`]).
pub async fn serve(
    listener: TcpListener,
    listen: &ListenArgs,
    host: Host,
    fallback: Option<Router>,
) -> Result<()> {
    serve_while(listener, listen, host, fallback, async { Ok(()) }).await
}

/// Serves `host` and, once it serves, runs `alongside` (what `up` does while the
/// site is up: train the first model). If `alongside` fails, the host shuts
/// down and the error is returned.
pub async fn serve_while(
    listener: TcpListener,
    listen: &ListenArgs,
    host: Host,
    fallback: Option<Router>,
    alongside: impl Future<Output = Result<()>>,
) -> Result<()> {
    let shutdown = host.token().clone();
    bloginfer_service::shutdown::cancel_on_signal(&shutdown);
    let (router, handle) = match fallback {
        Some(web) => host.into_router_with(web),
        None => host.into_router(),
    };
    let server = handle.start(listener, router)?;
    tracing::info!(addr = %server.addr(), "listening");
    if let Some(path) = &listen.addr_file {
        bloginfer_service::write_addr_file(path, server.addr())?;
    }
    let outcome = tokio::select! {
        outcome = alongside => outcome,
        () = shutdown.cancelled() => Ok(()),
    };
    if outcome.is_err() {
        shutdown.cancel();
    }
    server.stopped().await;
    handle.shutdown().await;
    tracing::info!("stopped");
    outcome
}
