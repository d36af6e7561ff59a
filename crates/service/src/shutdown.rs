//! Shutdown on SIGTERM (how Kubernetes stops a pod) or Ctrl-C, as a
//! cancellation token that the server and every background task watch.

use tokio_util::sync::CancellationToken;

/// Resolves on Ctrl-C or SIGTERM.
pub async fn signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {}
        () = term => {}
    }
}

/// Cancels `token` on the first Ctrl-C or SIGTERM (needs a Tokio runtime).
pub fn cancel_on_signal(token: &CancellationToken) {
    let token = token.clone();
    tokio::spawn(async move {
        tokio::select! {
            () = signal() => {
                tracing::info!("shutdown requested; draining");
                token.cancel();
            }
            () = token.cancelled() => {}
        }
    });
}
