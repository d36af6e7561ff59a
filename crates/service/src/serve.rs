//! Binding and serving. The server is hyper's (HTTP/1.1 and HTTP/2, as
//! `axum::serve` sets it up) with what `axum::serve` leaves out: a deadline
//! for a request's headers (a client that trickles bytes cannot hold a
//! connection), a cap on open connections, `TCP_NODELAY`, the peer address
//! for every request (`ConnectInfo`), and a graceful drain that ends after a
//! bounded time.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::Request;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto::Builder;
use hyper_util::server::graceful::GracefulShutdown;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tower::ServiceExt;

use crate::trace::HostService;

/// How long the services' HTTP clients keep an idle pooled connection to
/// one another: well under the default `header_read_timeout` after which a
/// server closes an idle connection, so that a client does not send a
/// request on a connection its server is closing at that very moment (a
/// POST lost that way is not retried by the client library).
pub const CLIENT_POOL_IDLE_TIMEOUT: Duration = Duration::from_secs(4);

/// Limits and deadlines of a server.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    /// How long a connection may go without a request in flight: a client
    /// must send a request's headers within this time of connecting or of its
    /// last answer, and an idle keep-alive connection is closed after it.
    pub header_read_timeout: Duration,
    /// How long a request may take, reading its body and answering it; after
    /// that the client gets a 503 `timeout`. Also how long an answer may wait
    /// for a client that takes none of its bytes before the connection is
    /// closed (a slow reader cannot hold a connection forever).
    pub request_timeout: Duration,
    /// Connections open at once; more are closed at once.
    pub max_connections: usize,
    /// After shutdown starts, how long requests in flight may finish.
    pub drain_timeout: Duration,
}

impl Default for ServeConfig {
    fn default() -> Self {
        Self {
            header_read_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            max_connections: 4096,
            drain_timeout: Duration::from_secs(10),
        }
    }
}

/// Why a server could not start.
#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    /// The address is taken or not ours.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address asked for.
        addr: SocketAddr,
        /// The OS error: in use, not permitted, not a local address, ...
        source: std::io::Error,
    },
    /// The address file could not be written.
    #[error("cannot write the address file {}: {source}", path.display())]
    AddrFile {
        /// The address file it was asked to write.
        path: PathBuf,
        /// The I/O error itself.
        source: std::io::Error,
    },
}

/// Binds `addr` (port 0 picks a free port; [`TcpListener::local_addr`] tells which).
pub async fn bind(addr: SocketAddr) -> Result<TcpListener, ServeError> {
    TcpListener::bind(addr)
        .await
        .map_err(|source| ServeError::Bind { addr, source })
}

/// Writes `addr` to `path` atomically, so that a process waiting for the file
/// (a test, a launcher) never reads half an address.
pub fn write_addr_file(path: &Path, addr: SocketAddr) -> Result<(), ServeError> {
    bloginfer_common::write_atomic(path, addr.to_string().as_bytes()).map_err(|source| {
        ServeError::AddrFile {
            path: path.to_path_buf(),
            source,
        }
    })
}

/// A server running in the background.
pub struct Server {
    addr: SocketAddr,
    token: CancellationToken,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// Serves `router` on `listener` until `token` is cancelled.
    pub fn start(
        listener: TcpListener,
        service: HostService,
        config: ServeConfig,
        token: CancellationToken,
    ) -> std::io::Result<Self> {
        let addr = listener.local_addr()?;
        let stop = token.clone();
        let task = tokio::spawn(async move { serve(listener, service, &config, stop).await });
        Ok(Self { addr, token, task })
    }

    /// The address it listens on, with the real port when port 0 was asked for.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://<addr>`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting, drains, and waits until the server has stopped.
    pub async fn stop(self) {
        self.token.cancel();
        let _ = self.task.await;
    }

    /// Waits until the server stops (its token was cancelled elsewhere).
    pub async fn stopped(self) {
        let _ = self.task.await;
    }
}

/// Serves `service` on `listener` until `shutdown` is cancelled, then lets
/// open requests finish for at most `config.drain_timeout`.
pub async fn serve(
    listener: TcpListener,
    service: HostService,
    config: &ServeConfig,
    shutdown: CancellationToken,
) {
    let graceful = GracefulShutdown::new();
    let mut connections = tokio::task::JoinSet::new();
    let slots = Arc::new(Semaphore::new(config.max_connections.max(1)));
    let mut refused: u64 = 0;
    loop {
        let (stream, peer) = tokio::select! {
            biased;
            () = shutdown.cancelled() => break,
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(e) => {
                    if !is_connection_error(&e) {
                        // Out of file descriptors and the like: give the system a moment.
                        tracing::error!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                    continue;
                }
            },
        };
        while connections.try_join_next().is_some() {}
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            refused += 1;
            if refused.is_power_of_two() {
                tracing::warn!(refused, "connection limit reached; closing new connections");
            }
            continue;
        };
        let _ = stream.set_nodelay(true);
        let activity = Arc::new(Activity::default());
        let service = ConnectionService {
            inner: service.clone(),
            peer,
            activity: activity.clone(),
        };
        let watcher = graceful.watcher();
        let idle_limit = config.header_read_timeout;
        let stall_limit = config.request_timeout.max(idle_limit);
        connections.spawn(async move {
            let mut builder = Builder::new(TokioExecutor::new());
            builder
                .http2()
                .timer(TokioTimer::new())
                .keep_alive_interval(Some(Duration::from_secs(30)));
            let io = WatchedIo {
                io: TokioIo::new(stream),
                activity: activity.clone(),
            };
            let connection = builder.serve_connection_with_upgrades(io, service);
            tokio::select! {
                ended = watcher.watch(connection) => {
                    if let Err(e) = ended {
                        tracing::trace!(%peer, "connection ended: {e}");
                    }
                }
                why = activity.watch(idle_limit, stall_limit) => {
                    tracing::debug!(%peer, "closing a connection: {why}");
                }
            }
            drop(slot);
        });
    }
    drop(listener);
    tokio::select! {
        () = graceful.shutdown() => tracing::debug!("every connection drained"),
        () = tokio::time::sleep(config.drain_timeout) => {
            tracing::warn!(
                open = connections.len(),
                "requests still open after the drain timeout of {:?}; closing them",
                config.drain_timeout
            );
        }
    }
    connections.shutdown().await;
}

/// Whether a connection is doing something: requests in flight, answers
/// waiting for the client to take them, and whether it made progress.
/// hyper's own header-read timeout re-arms a timer for every request (a Tokio
/// timer-wheel insertion under a lock, 9% of the throughput of a cached
/// page); this costs a few atomics per request and write, and one timer and
/// one clock reading per connection and period instead.
#[derive(Debug, Default)]
struct Activity {
    in_flight: AtomicUsize,
    /// The last write found the socket full: the client has not yet taken
    /// an answer that hyper holds (it hands a whole body to its write buffer
    /// and drops the body, so only the socket knows).
    write_blocked: AtomicBool,
    /// Counts requests that ended and writes that sent bytes; the watchdog
    /// sees progress when it changed since its last look.
    progress: AtomicU64,
}

/// Marks a request in flight until it is answered (or dropped).
struct InFlight(Arc<Activity>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.progress.fetch_add(1, Ordering::Relaxed);
        self.0.in_flight.fetch_sub(1, Ordering::Relaxed);
    }
}

impl Activity {
    fn begin(self: &Arc<Self>) -> InFlight {
        self.in_flight.fetch_add(1, Ordering::Relaxed);
        InFlight(self.clone())
    }

    /// Resolves, with the reason, once the connection has had nothing in
    /// flight and nothing to write for `idle` (a client that opened it or
    /// finished a request and sent no complete request since), or once an
    /// answer has waited `stall` for the client to take any of it. Both are
    /// noticed within half of `idle` after they pass.
    async fn watch(&self, idle: Duration, stall: Duration) -> &'static str {
        let period = (idle / 2).max(Duration::from_millis(10));
        let mut seen = self.progress.load(Ordering::Relaxed);
        let mut quiet_since = tokio::time::Instant::now();
        loop {
            tokio::time::sleep(period).await;
            let now = tokio::time::Instant::now();
            let progress = self.progress.load(Ordering::Relaxed);
            if progress != seen {
                seen = progress;
                quiet_since = now;
                continue;
            }
            let quiet = now.saturating_duration_since(quiet_since);
            if self.write_blocked.load(Ordering::Relaxed) {
                if quiet >= stall {
                    return "the client took no bytes of an answer within the request timeout";
                }
            } else if self.in_flight.load(Ordering::Relaxed) == 0 && quiet >= idle {
                return "no complete request within the header read timeout";
            }
        }
    }

    /// Notes a write's outcome.
    fn wrote(&self, written: &Poll<std::io::Result<usize>>) {
        match written {
            Poll::Pending => self.write_blocked.store(true, Ordering::Relaxed),
            Poll::Ready(Ok(n)) if *n > 0 => {
                self.write_blocked.store(false, Ordering::Relaxed);
                self.progress.fetch_add(1, Ordering::Relaxed);
            }
            Poll::Ready(_) => {}
        }
    }
}

/// One connection's view of the host: puts the peer address into every
/// request and counts it in flight until its answer has been written.
struct ConnectionService {
    inner: HostService,
    peer: SocketAddr,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<Incoming>> for ConnectionService {
    type Response = axum::http::Response<CountedBody>;
    type Error = std::convert::Infallible;
    type Future = Answer;

    fn call(&self, mut request: Request<Incoming>) -> Answer {
        request.extensions_mut().insert(ConnectInfo(self.peer));
        Answer {
            answer: self.inner.clone().oneshot(request.map(Body::new)),
            in_flight: Some(self.activity.begin()),
        }
    }
}

/// A request's answer, counted in flight until it is ready; the count then
/// moves into the answer's body.
struct Answer {
    answer: tower::util::Oneshot<HostService, Request<Body>>,
    in_flight: Option<InFlight>,
}

impl std::future::Future for Answer {
    type Output = Result<axum::http::Response<CountedBody>, std::convert::Infallible>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let Poll::Ready(Ok(response)) = Pin::new(&mut self.answer).poll(cx) else {
            return Poll::Pending;
        };
        let in_flight = self.in_flight.take();
        Poll::Ready(Ok(response.map(|body| CountedBody {
            body,
            _in_flight: in_flight,
        })))
    }
}

/// An answer's body, which keeps its request in flight until hyper has
/// written it all (or dropped it): a client downloading a large answer over a
/// slow link is busy, not idle.
struct CountedBody {
    body: Body,
    _in_flight: Option<InFlight>,
}

impl http_body::Body for CountedBody {
    type Data = axum::body::Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Self::Data>, Self::Error>>> {
        Pin::new(&mut self.body).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.body.size_hint()
    }
}

/// A connection's socket that notes its writes for [`Activity`], so that a
/// download over a slow link is told from an idle connection.
struct WatchedIo {
    io: TokioIo<tokio::net::TcpStream>,
    activity: Arc<Activity>,
}

impl hyper::rt::Read for WatchedIo {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: hyper::rt::ReadBufCursor<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_read(cx, buf)
    }
}

impl hyper::rt::Write for WatchedIo {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write(cx, buf);
        self.activity.wrote(&written);
        written
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[std::io::IoSlice<'_>],
    ) -> Poll<std::io::Result<usize>> {
        let written = Pin::new(&mut self.io).poll_write_vectored(cx, bufs);
        self.activity.wrote(&written);
        written
    }

    fn is_write_vectored(&self) -> bool {
        hyper::rt::Write::is_write_vectored(&self.io)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.io).poll_shutdown(cx)
    }
}

fn is_connection_error(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::ConnectionReset
    )
}
