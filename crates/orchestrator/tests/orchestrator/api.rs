//! The admin API as a client sees it: the orchestrator hosted on a free
//! loopback port exactly as `bloginfer orchestrator` hosts it, over a real
//! SQLite database, with a launcher whose runs never end on their own (the
//! runs' processes are the process tests' business).

use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bloginfer_fl::protocol::LocalSettings;
use bloginfer_fl::spec::Tuning;
use bloginfer_fl::strategy::StrategyOptions;
use bloginfer_fl::wire::WireDtype;
use bloginfer_model::data::Example;
use bloginfer_model::ModelConfig;
use bloginfer_orchestrator::http::AdminAuthConfig;
use bloginfer_orchestrator::launcher::{BoxFuture, Launcher, Observed, RunPlan};
use bloginfer_orchestrator::{Orchestrator, OrchestratorConfig, RunDefaults};
use bloginfer_service::{CancellationToken, Host, ServeConfig, Server};
use bloginfer_testkit::TestDb;
use serde_json::{json, Value};

/// Long enough for the token rules (at least 32 bytes, not the example value).
pub(crate) const TOKEN: &str = "an-admin-token-for-the-orchestrator-tests";

/// Starts runs that keep running until stopped, and counts the calls.
#[derive(Default)]
pub(crate) struct Forever {
    started: AtomicUsize,
    stopped: AtomicUsize,
}

impl Launcher for Forever {
    fn name(&self) -> &'static str {
        "forever"
    }

    fn start<'a>(
        &'a self,
        _plan: &'a RunPlan,
    ) -> BoxFuture<'a, bloginfer_orchestrator::Result<Value>> {
        self.started.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(json!({})) })
    }

    fn observe<'a>(
        &'a self,
        _plan: &'a RunPlan,
        _handle: &'a Value,
    ) -> BoxFuture<'a, bloginfer_orchestrator::Result<(Observed, Option<Value>)>> {
        Box::pin(async { Ok((Observed::Running, None)) })
    }

    fn stop<'a>(
        &'a self,
        _plan: &'a RunPlan,
        _handle: &'a Value,
    ) -> BoxFuture<'a, bloginfer_orchestrator::Result<()>> {
        self.stopped.fetch_add(1, Ordering::SeqCst);
        Box::pin(async { Ok(()) })
    }

    fn roll_out<'a>(
        &'a self,
        _version: &'a str,
    ) -> BoxFuture<'a, bloginfer_orchestrator::Result<()>> {
        Box::pin(async { Ok(()) })
    }
}

pub(crate) fn corpus(n: usize) -> Vec<Example> {
    (0..n)
        .map(|i| Example {
            text: format!("第{i}条评论，很好"),
            label: u32::from(i % 2 == 0),
        })
        .collect()
}

pub(crate) fn config(dir: &Path) -> OrchestratorConfig {
    OrchestratorConfig {
        models_dir: dir.join("models"),
        runs_dir: dir.join("runs"),
        min_interval: Duration::from_secs(3600),
        poll_interval: Duration::from_millis(50),
        clean_interval: Duration::from_secs(3600),
        max_run_age: Duration::from_secs(3600),
        keep_models: 3,
        promotion_margin: 0.005,
        defaults: RunDefaults::default(),
        model: ModelConfig {
            embed_dim: 8,
            hidden_dim: 8,
            ..ModelConfig::default()
        },
        min_count: 1,
        tuning: Tuning {
            options: StrategyOptions::default(),
            local: LocalSettings {
                batch_size: 8,
                clip_norm: 1.0,
                token_dropout: 0.0,
                seed: 7,
            },
            min_clients: None,
            min_available: None,
            fraction: 1.0,
            round_deadline: Duration::from_secs(60),
            client_lease: Duration::from_secs(30),
            max_update_norm: 0.0,
            adaptive_norm_multiple: 3.0,
            privacy: Default::default(),
            upload_dtype: WireDtype::F32,
            embed_init_std: 0.1,
        },
        corpus: Arc::new(corpus(40)),
        evaluation: Arc::new(corpus(6)),
        threads: 1,
        admin: AdminAuthConfig {
            token: Some(TOKEN.to_string().into()),
            blog_url: None,
        },
    }
}

pub(crate) struct App {
    pub(crate) server: Server,
    pub(crate) http: reqwest::Client,
    launcher: Arc<Forever>,
    _db: TestDb,
    _dir: tempfile::TempDir,
}

pub(crate) async fn spawn_app() -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let test_db = TestDb::sqlite();
    let db = bloginfer_db::connect(&test_db.url).await.expect("database");
    let launcher = Arc::new(Forever::default());
    let orchestrator =
        Orchestrator::build(config(dir.path()), db, launcher.clone(), None).expect("orchestrator");
    let mut host = Host::new(ServeConfig::default(), CancellationToken::new());
    host.mount(Arc::new(orchestrator));
    let (router, handle) = host.into_router();
    let listener = bloginfer_service::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let server = handle.start(listener, router).expect("serve");
    App {
        server,
        http: reqwest::Client::new(),
        launcher,
        _db: test_db,
        _dir: dir,
    }
}

impl App {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<&str>,
    ) -> (u16, Value, Option<String>) {
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.server.url()))
            .bearer_auth(TOKEN);
        if let Some(body) = body {
            request = request.body(body.to_string());
        }
        let response = request.send().await.expect("request");
        let status = response.status().as_u16();
        let retry = response
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        let text = response.text().await.expect("body");
        (
            status,
            serde_json::from_str(&text).unwrap_or(Value::Null),
            retry,
        )
    }

    async fn run_status(&self, id: &str) -> String {
        let (_, run, _) = self
            .call(reqwest::Method::GET, &format!("/v1/trainings/{id}"), None)
            .await;
        run["status"].as_str().unwrap_or_default().to_string()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_api_needs_an_admin_and_answers_in_json() {
    let app = spawn_app().await;
    let anonymous = app
        .http
        .get(format!("{}/v1/trainings", app.server.url()))
        .send()
        .await
        .expect("request");
    assert_eq!(anonymous.status(), 401);
    let body: Value = anonymous.json().await.expect("json");
    assert_eq!(body["error"]["code"], "unauthorized");
    let (status, body, _) = app.call(reqwest::Method::GET, "/v1/trainings", None).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["trainings"], json!([]));
    for (body, status, code) in [
        ("{\"workers\": ", 400, "invalid_json"),
        ("{\"workers\": \"two\"}", 422, "invalid_request"),
        ("{\"surprise\": 1}", 422, "invalid_request"),
        ("{\"workers\": 0}", 422, "invalid_request"),
        ("{\"strategy\": \"magic\"}", 422, "invalid_request"),
    ] {
        let (got, answer, _) = app
            .call(reqwest::Method::POST, "/v1/trainings", Some(body))
            .await;
        assert_eq!(
            (got, answer["error"]["code"].as_str()),
            (status, Some(code)),
            "{body}: {answer}"
        );
    }
    let (status, body, _) = app
        .call(reqwest::Method::GET, "/v1/trainings/run-nope", None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, body, _) = app
        .call(reqwest::Method::GET, "/v1/feedback/stats", None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("feedback_disabled"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_run_at_a_time_cancel_stops_it_and_the_cooldown_holds() {
    let app = spawn_app().await;
    let (status, body, _) = app
        .call(
            reqwest::Method::POST,
            "/v1/trainings",
            Some("{\"rounds\": 3}"),
        )
        .await;
    assert_eq!(status, 202, "{body}");
    let id = body["id"].as_str().expect("id").to_string();
    let (status, body, _) = app
        .call(reqwest::Method::POST, "/v1/trainings", Some("{}"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("run_active"))
    );
    let started = Instant::now();
    while app.launcher.started.load(Ordering::SeqCst) == 0 {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never reached its launcher"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (ready, body, _) = app.call(reqwest::Method::GET, "/readyz", None).await;
    assert_eq!(ready, 200, "{body}");
    assert_eq!(body["services"]["orchestrator"]["active_run"], id.as_str());
    assert!(
        body["tasks"].as_array().is_some_and(|t| t
            .iter()
            .any(|t| t["name"] == format!("run {id}") && t["state"] == "running")),
        "the run's driver is a supervised task: {body}"
    );
    let (status, _, _) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/trainings/{id}/cancel"),
            None,
        )
        .await;
    assert_eq!(status, 202);
    while app.run_status(&id).await != "cancelled" {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run was never cancelled"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        app.launcher.stopped.load(Ordering::SeqCst),
        1,
        "its processes were stopped"
    );
    let (status, body, retry) = app
        .call(reqwest::Method::POST, "/v1/trainings", Some("{}"))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (429, Some("cooldown")),
        "{body}"
    );
    let wait: u64 = retry.expect("Retry-After").parse().expect("seconds");
    assert!(wait > 3000, "{wait}");
    let (status, body, _) = app
        .call(
            reqwest::Method::POST,
            &format!("/v1/trainings/{id}/cancel"),
            None,
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("run_finished"))
    );
    let page = app
        .http
        .get(format!("{}/metrics", app.server.url()))
        .send()
        .await
        .expect("metrics")
        .text()
        .await
        .expect("text");
    for line in [
        "bloginfer_orchestrator_runs_started_total 1",
        "bloginfer_orchestrator_runs_finished_total{kind=\"cancelled\"} 1",
        "bloginfer_http_requests_total{service=\"orchestrator\",route=\"/v1/trainings\",status=\"202\"} 1",
    ] {
        assert!(page.contains(line), "no {line} in\n{page}");
    }
}

async fn until_started(launcher: &Forever, count: usize) {
    let started = Instant::now();
    while launcher.started.load(Ordering::SeqCst) < count {
        assert!(
            started.elapsed() < Duration::from_secs(60),
            "the run never reached its launcher"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn host_of(orchestrator: &Orchestrator) -> bloginfer_service::host::HostHandle {
    let mut host = Host::new(ServeConfig::default(), CancellationToken::new());
    host.mount(Arc::new(orchestrator.clone()));
    host.into_router().1
}

/// `bloginfer up` asks for its first model as soon as the orchestrator is
/// hosted; the pick-up of unfinished runs that starts with the host must not
/// take that run for one left over and drive it a second time.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_asked_for_at_start_up_is_driven_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let test_db = TestDb::sqlite();
    let db = bloginfer_db::connect(&test_db.url).await.expect("database");
    let launcher = Arc::new(Forever::default());
    let orchestrator =
        Orchestrator::build(config(dir.path()), db, launcher.clone(), None).expect("orchestrator");
    let id = orchestrator
        .trigger(bloginfer_orchestrator::TrainingRequest::default(), "tests")
        .await
        .expect("trigger");
    let host = host_of(&orchestrator);
    until_started(&launcher, 1).await;
    // A second driver would reach the launcher within a snapshot of 40 texts.
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(
        launcher.started.load(Ordering::SeqCst),
        1,
        "run {id} was started twice"
    );
    host.shutdown().await;
}

/// A run an earlier orchestrator left unfinished goes on, and a run asked
/// for before it was picked up is refused as a second active run.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_run_left_unfinished_goes_on_before_a_new_one_may_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let test_db = TestDb::sqlite();
    let launcher = Arc::new(Forever::default());
    let build = || async {
        let db = bloginfer_db::connect(&test_db.url).await.expect("database");
        Orchestrator::build(config(dir.path()), db, launcher.clone(), None).expect("orchestrator")
    };
    let first = build().await;
    let host = host_of(&first);
    let id = first
        .trigger(bloginfer_orchestrator::TrainingRequest::default(), "tests")
        .await
        .expect("trigger");
    until_started(&launcher, 1).await;
    host.shutdown().await;
    drop(first);

    let second = build().await;
    match second
        .trigger(bloginfer_orchestrator::TrainingRequest::default(), "tests")
        .await
    {
        Err(bloginfer_orchestrator::TriggerError::Active(active)) => assert_eq!(active, id),
        other => panic!("a new run was accepted over the unfinished {id}: {other:?}"),
    }
    let host = host_of(&second);
    assert_eq!(second.active_id().as_deref(), Some(id.as_str()));
    host.shutdown().await;
}
