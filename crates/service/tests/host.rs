//! The chassis as a client sees it: a host with one small service, served on
//! a free loopback port.

// Helpers may unwrap too (clippy.toml allows it only in #[test] fns): a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::io::{Read, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::routing::{get, post};
use axum::{Json, Router};
use bloginfer_service::{
    BoxFuture, CancellationToken, Host, JsonBody, Readiness, ServeConfig, Server, Service,
    ServiceError, Supervisor,
};
use prometheus_client::metrics::counter::Counter;
use prometheus_client::registry::Registry;

/// Bytes of `/v1/large`: more than loopback's socket buffers hold, so a
/// client that reads slowly keeps the server writing for seconds.
const LARGE_BODY: usize = 16 << 20;

/// A service with one route of each kind the chassis must handle.
struct Echo {
    ready: Arc<AtomicBool>,
    echoes: Counter,
}

#[derive(serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct Say {
    text: String,
}

impl Service for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }

    fn routes(&self) -> Router {
        let echoes = self.echoes.clone();
        Router::new()
            .route(
                "/v1/echo",
                post(move |JsonBody(say): JsonBody<Say>| async move {
                    echoes.inc();
                    Json(serde_json::json!({"text": say.text}))
                }),
            )
            .route(
                "/v1/fail",
                get(|| async { ServiceError::internal("the disk said EIO at /secret/path") }),
            )
            .route("/v1/large", get(|| async { vec![b'x'; LARGE_BODY] }))
            .route(
                "/v1/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_secs(30)).await;
                    "late"
                }),
            )
    }

    fn register_metrics(&self, registry: &mut Registry) {
        registry.register("echoes", "Echoes answered", self.echoes.clone());
    }

    fn ready(&self) -> BoxFuture<'_, Readiness> {
        let ready = self.ready.load(Ordering::SeqCst);
        Box::pin(async move {
            if ready {
                Readiness::ready().with("mood", "fine")
            } else {
                Readiness::not_ready("warming up")
            }
        })
    }

    fn spawn_background(&self, tasks: &Supervisor) {
        tasks.spawn("echo", "ticker", true, |token| async move {
            token.cancelled().await;
        });
    }
}

struct Running {
    server: Server,
    ready: Arc<AtomicBool>,
    http: reqwest::Client,
    token: CancellationToken,
}

async fn spawn_app(config: ServeConfig) -> Running {
    let ready = Arc::new(AtomicBool::new(false));
    let token = CancellationToken::new();
    let mut host = Host::new(config, token.clone());
    host.mount(Arc::new(Echo {
        ready: ready.clone(),
        echoes: Counter::default(),
    }));
    let (router, handle) = host.into_router();
    let listener = bloginfer_service::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let server = handle.start(listener, router).expect("start");
    Running {
        server,
        ready,
        http: reqwest::Client::new(),
        token,
    }
}

impl Running {
    async fn get(&self, path: &str) -> reqwest::Response {
        self.http
            .get(format!("{}{path}", self.server.url()))
            .send()
            .await
            .expect("request")
    }

    async fn post(&self, path: &str, body: &str) -> reqwest::Response {
        self.http
            .post(format!("{}{path}", self.server.url()))
            .body(body.to_string())
            .send()
            .await
            .expect("request")
    }
}

async fn error_of(response: reqwest::Response) -> (u16, String, String) {
    let status = response.status().as_u16();
    let body: serde_json::Value = response.json().await.expect("a JSON body");
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
        body["error"]["message"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test]
async fn errors_are_json_envelopes_and_causes_stay_inside() {
    let app = spawn_app(ServeConfig::default()).await;
    let (status, code, _) = error_of(app.get("/nowhere").await).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let (status, code, message) = error_of(app.get("/v1/fail").await).await;
    assert_eq!((status, code.as_str()), (500, "internal"));
    assert!(
        !message.contains("EIO") && !message.contains("/secret"),
        "{message}"
    );
    let (status, code, _) = error_of(app.post("/v1/echo", "{\"text\": ").await).await;
    assert_eq!((status, code.as_str()), (400, "invalid_json"));
    let (status, code, _) = error_of(app.post("/v1/echo", "{\"text\": 1}").await).await;
    assert_eq!((status, code.as_str()), (422, "invalid_request"));
    let ok = app.post("/v1/echo", "{\"text\": \"好\"}").await;
    assert_eq!(ok.status(), 200);
}

#[tokio::test]
async fn probes_report_services_and_tasks() {
    let app = spawn_app(ServeConfig::default()).await;
    assert_eq!(app.get("/healthz").await.status(), 200);
    let not_ready = app.get("/readyz").await;
    assert_eq!(not_ready.status(), 503);
    let body: serde_json::Value = not_ready.json().await.expect("json");
    assert_eq!(body["services"]["echo"]["reason"], "warming up");
    app.ready.store(true, Ordering::SeqCst);
    let ready = app.get("/readyz").await;
    assert_eq!(ready.status(), 200);
    let body: serde_json::Value = ready.json().await.expect("json");
    assert_eq!(body["services"]["echo"]["mood"], "fine");
    assert_eq!(body["tasks"][0]["name"], "ticker");
    assert_eq!(body["tasks"][0]["state"], "running");
}

#[tokio::test]
async fn metrics_count_requests_by_service_route_and_status() {
    let app = spawn_app(ServeConfig::default()).await;
    app.post("/v1/echo", "{\"text\": \"a\"}").await;
    app.post("/v1/echo", "{}").await;
    let page = app.get("/metrics").await;
    assert!(page.headers()["content-type"]
        .to_str()
        .expect("ascii")
        .starts_with("application/openmetrics-text"));
    let page = page.text().await.expect("text");
    for line in [
        "bloginfer_http_requests_total{service=\"echo\",route=\"/v1/echo\",status=\"200\"} 1",
        "bloginfer_http_requests_total{service=\"echo\",route=\"/v1/echo\",status=\"422\"} 1",
        "bloginfer_echo_echoes_total 1",
        "bloginfer_build_info{version=",
    ] {
        assert!(page.contains(line), "no {line} in\n{page}");
    }
    assert!(page.trim_end().ends_with("# EOF"));
}

#[tokio::test]
async fn request_ids_are_echoed_and_only_plain_ones_kept() {
    let app = spawn_app(ServeConfig::default()).await;
    let mine = app
        .http
        .get(format!("{}/healthz", app.server.url()))
        .header("x-request-id", "abc-123")
        .send()
        .await
        .expect("request");
    assert_eq!(mine.headers()["x-request-id"], "abc-123");
    let odd = app
        .http
        .get(format!("{}/healthz", app.server.url()))
        .header("x-request-id", "a b c")
        .send()
        .await
        .expect("request");
    let given = odd.headers()["x-request-id"].to_str().expect("ascii");
    assert_ne!(given, "a b c");
    assert!(!given.is_empty());
}

#[tokio::test]
async fn slow_requests_time_out_with_a_503() {
    let app = spawn_app(ServeConfig {
        request_timeout: Duration::from_millis(300),
        ..ServeConfig::default()
    })
    .await;
    let started = Instant::now();
    let response = app.get("/v1/slow").await;
    assert!(started.elapsed() < Duration::from_secs(20), "does not hang");
    let (status, code, _) = error_of(response).await;
    assert_eq!((status, code.as_str()), (503, "timeout"));
}

#[tokio::test]
async fn a_client_that_never_finishes_its_headers_is_disconnected() {
    let app = spawn_app(ServeConfig {
        header_read_timeout: Duration::from_millis(500),
        ..ServeConfig::default()
    })
    .await;
    let addr = app.server.addr();
    let closed = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
            .expect("write");
        let mut buf = Vec::new();
        // The server answers 408 or just closes; either way the read ends.
        let started = Instant::now();
        let _ = stream.read_to_end(&mut buf);
        started.elapsed()
    })
    .await
    .expect("join");
    assert!(
        closed < Duration::from_secs(15),
        "the connection was held for {closed:?}"
    );
}

#[tokio::test]
async fn a_slow_download_is_not_taken_for_an_idle_connection() {
    // The idle limit is far shorter than the download: the connection is
    // busy while the answer's body is being written, not only until the
    // handler returns.
    let app = spawn_app(ServeConfig {
        header_read_timeout: Duration::from_millis(300),
        ..ServeConfig::default()
    })
    .await;
    let addr = app.server.addr();
    let received = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream
            .write_all(b"GET /v1/large HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            .expect("write");
        let mut received = Vec::new();
        let mut chunk = vec![0; 64 << 10];
        loop {
            match stream.read(&mut chunk) {
                Ok(0) | Err(_) => break,
                Ok(n) => received.extend_from_slice(&chunk[..n]),
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        received
    })
    .await
    .expect("join");
    let body_start = received
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .expect("a response head")
        + 4;
    assert!(received.starts_with(b"HTTP/1.1 200"));
    assert_eq!(
        received.len() - body_start,
        LARGE_BODY,
        "the body was cut off"
    );
}

#[tokio::test]
async fn a_client_that_takes_none_of_an_answer_is_disconnected() {
    let app = spawn_app(ServeConfig {
        header_read_timeout: Duration::from_millis(300),
        request_timeout: Duration::from_secs(1),
        ..ServeConfig::default()
    })
    .await;
    let addr = app.server.addr();
    let received = tokio::task::spawn_blocking(move || {
        let mut stream = std::net::TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .expect("timeout");
        stream
            .write_all(b"GET /v1/large HTTP/1.1\r\nHost: x\r\n\r\n")
            .expect("write");
        // Far longer than the request timeout without reading a byte.
        std::thread::sleep(Duration::from_secs(4));
        let mut received = Vec::new();
        let _ = stream.read_to_end(&mut received);
        received.len()
    })
    .await
    .expect("join");
    assert!(
        received < LARGE_BODY,
        "the server kept writing to a client that read nothing ({received} bytes)"
    );
}

#[tokio::test]
async fn shutdown_drains_within_the_limit_and_stops_tasks() {
    let app = spawn_app(ServeConfig {
        drain_timeout: Duration::from_millis(500),
        ..ServeConfig::default()
    })
    .await;
    let url = app.server.url();
    let slow = tokio::spawn(async move { reqwest::get(format!("{url}/v1/slow")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let started = Instant::now();
    app.token.cancel();
    app.server.stopped().await;
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "stopped after the drain limit"
    );
    assert!(
        slow.await.expect("join").is_err(),
        "the slow request was cut off"
    );
}

/// Log lines written by this thread's subscriber.
#[derive(Clone, Default)]
struct Captured(Arc<std::sync::Mutex<Vec<u8>>>);

impl Write for Captured {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        bloginfer_service::common::lock(&self.0).extend_from_slice(bytes);
        Ok(bytes.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// The request span is off by default (it costs throughput), so the line
/// that logs a 5xx's cause carries the request's id itself.
#[tokio::test]
async fn a_failed_request_is_logged_with_its_id_and_cause() {
    let captured = Captured::default();
    let writer = captured.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::INFO)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    // A current-thread runtime: the server's tasks run on this thread too.
    let _guard = tracing::subscriber::set_default(subscriber);
    let app = spawn_app(ServeConfig::default()).await;
    let failed = app
        .http
        .get(format!("{}/v1/fail", app.server.url()))
        .header("x-request-id", "trace-me-7")
        .send()
        .await
        .expect("request");
    assert_eq!(failed.status(), 500);
    let log = String::from_utf8_lossy(&bloginfer_service::common::lock(&captured.0)).to_string();
    let line = log
        .lines()
        .find(|l| l.contains("request failed"))
        .unwrap_or_else(|| panic!("no error line in {log:?}"));
    assert!(line.contains("trace-me-7"), "{line}");
    assert!(line.contains("EIO"), "the cause is logged: {line}");
}
