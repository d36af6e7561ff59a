//! The inference service over real HTTP on loopback: answers, batching,
//! hot reload under load, broken checkpoints, readiness, load shedding and
//! every bad input's status and JSON body.

// Helpers may unwrap too (clippy.toml allows it only in #[test] fns): a panic fails the test.
#![allow(clippy::unwrap_used)]

use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use bloginfer_infer::{BatchConfig, InferConfig, Inference};
use bloginfer_model::checkpoint::Checkpoint;
use bloginfer_model::{ModelConfig, Predictor, Registry, Reload, SentimentModel, TrainingMetadata};
use bloginfer_service::{CancellationToken, Host, ServeConfig, Server};
use bloginfer_text::VocabBuilder;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::{json, Value};

const TEXTS: [&str; 6] = [
    "这家酒店干净整洁，服务也很热情，下次还会再来",
    "质量太差了，用了两天就坏了，非常失望",
    "还行吧",
    "物流很快，包装完好，好评",
    "客服态度恶劣，再也不买了",
    "一般般，没有想象中好",
];

/// Publishes a randomly initialised model (seeded) and returns its version.
fn publish(registry: &Registry, seed: u64, hidden: usize, make_current: bool) -> String {
    let mut builder = VocabBuilder::new();
    for text in TEXTS {
        for c in text.chars() {
            builder.add(&c.to_string());
        }
    }
    let vocab = builder.build(1, 1000);
    let config = ModelConfig {
        vocab_size: vocab.len(),
        embed_dim: 32,
        hidden_dim: hidden,
        max_len: 64,
        granularity: bloginfer_text::Granularity::Char,
        ..ModelConfig::default()
    };
    let model = SentimentModel::new(config, &mut StdRng::seed_from_u64(seed)).expect("model");
    let metadata = TrainingMetadata {
        method: "central".into(),
        seed,
        ..TrainingMetadata::default()
    };
    let checkpoint = Checkpoint::from_model(&model, vocab, metadata).expect("checkpoint");
    let version = registry.publish(&checkpoint).expect("publish");
    if make_current {
        registry.set_current(&version).expect("promote");
    }
    version
}

fn config(dir: &Path) -> InferConfig {
    InferConfig {
        models_dir: dir.to_path_buf(),
        pinned_version: None,
        batching: BatchConfig {
            max_batch: 32,
            max_wait: Duration::from_millis(2),
            queue_capacity: 256,
            queue_bytes: 64 << 20,
            compute_workers: 2,
        },
        // Tests reload by hand; the one about reloading under load sets its own.
        reload_interval: Duration::from_secs(3600),
        max_body_bytes: 64 * 1024,
    }
}

struct App {
    url: String,
    service: Inference,
    http: reqwest::Client,
    _server: Server,
}

/// The service as `bloginfer infer` hosts it, on a free loopback port.
async fn spawn_app(config: InferConfig) -> App {
    let service = Inference::build(config).expect("service");
    service.reload_now().await;
    let mut host = Host::new(ServeConfig::default(), CancellationToken::new());
    host.mount(Arc::new(service.clone()));
    let (router, handle) = host.into_router();
    let listener = bloginfer_service::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let server = handle.start(listener, router).expect("serve");
    App {
        url: server.url(),
        service,
        http: reqwest::Client::new(),
        _server: server,
    }
}

impl App {
    async fn post(
        &self,
        path: &str,
        body: impl Into<reqwest::Body>,
    ) -> (u16, Value, Option<String>) {
        let resp = self
            .http
            .post(format!("{}{path}", self.url))
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .expect("send");
        let status = resp.status().as_u16();
        let retry = resp
            .headers()
            .get("retry-after")
            .and_then(|v| v.to_str().ok())
            .map(String::from);
        (status, resp.json().await.expect("JSON body"), retry)
    }

    async fn get(&self, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("send");
        (resp.status().as_u16(), resp.text().await.expect("body"))
    }

    async fn sentiment(&self, text: &str) -> Value {
        let (status, body, _) = self
            .post("/v1/sentiment", json!({ "text": text }).to_string())
            .await;
        assert_eq!(status, 200, "{body}");
        body
    }
}

fn close(a: &Value, b: &Value) -> bool {
    a["label"] == b["label"]
        && (a["score"].as_f64().unwrap_or(-1.0) - b["score"].as_f64().unwrap_or(-2.0)).abs() < 1e-5
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn answers_match_the_predictor_and_batch_equals_single_calls() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::open(dir.path()).expect("registry");
    let version = publish(&registry, 1, 32, true);
    let app = spawn_app(config(dir.path())).await;

    let checkpoint = registry.load(&version).expect("load");
    let predictor = Predictor::new(&checkpoint).expect("predictor");
    let expected = predictor.predict(&TEXTS).expect("predict");

    let (status, batch, _) = app
        .post("/v1/sentiment/batch", json!({ "texts": TEXTS }).to_string())
        .await;
    assert_eq!(status, 200, "{batch}");
    assert_eq!(batch["model_version"], version.as_str());
    let results = batch["results"].as_array().expect("results");
    assert_eq!(results.len(), TEXTS.len());
    for ((text, from_batch), p) in TEXTS.iter().zip(results).zip(&expected) {
        let single = app.sentiment(text).await;
        assert!(close(&single, from_batch), "{single} vs {from_batch}");
        assert_eq!(single["label"], p.label);
        assert!((single["score"].as_f64().expect("score") - f64::from(p.score)).abs() < 1e-5);
        let probs = &single["probabilities"];
        let sum = probs["negative"].as_f64().expect("p") + probs["positive"].as_f64().expect("p");
        assert!((sum - 1.0).abs() < 1e-5);
        assert_eq!(single["model_version"], version.as_str());
    }
    let (status, model) = app.get("/v1/sentiment/model").await;
    assert_eq!(status, 200);
    let model: Value = serde_json::from_str(&model).expect("JSON");
    assert_eq!(model["version"], version.as_str());
    assert_eq!(model["config"]["max_len"], 64);
    assert!(model["loaded_at"]
        .as_str()
        .is_some_and(|s| s.ends_with('Z')));
    let (status, openapi) = app.get("/openapi.json").await;
    assert_eq!(status, 200);
    assert!(
        openapi.contains("truncated"),
        "the OpenAPI document explains truncation"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_promoted_version_takes_over_under_load_without_a_failed_request() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::open(dir.path()).expect("registry");
    let old = publish(&registry, 1, 32, true);
    let app = Arc::new(
        spawn_app(InferConfig {
            reload_interval: Duration::from_millis(50),
            ..config(dir.path())
        })
        .await,
    );
    let stop = Arc::new(AtomicBool::new(false));
    let (failures, served_new) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
    let mut loops = Vec::new();
    for i in 0..4 {
        let (app, stop, failures, served_new) = (
            app.clone(),
            stop.clone(),
            failures.clone(),
            served_new.clone(),
        );
        let old = old.clone();
        loops.push(tokio::spawn(async move {
            let mut seen = Vec::new();
            while !stop.load(Ordering::Relaxed) {
                let (status, body, _) = app
                    .post(
                        "/v1/sentiment",
                        json!({"text": TEXTS[i % TEXTS.len()]}).to_string(),
                    )
                    .await;
                if status != 200 {
                    failures.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                let version = body["model_version"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string();
                if version != old {
                    served_new.fetch_add(1, Ordering::Relaxed);
                }
                seen.push(version);
            }
            seen
        }));
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let new = publish(&registry, 2, 32, true);
    for _ in 0..400 {
        if served_new.load(Ordering::Relaxed) >= 50 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    stop.store(true, Ordering::Relaxed);
    let mut per_loop = Vec::new();
    for l in loops {
        per_loop.push(l.await.expect("load loop"));
    }
    assert_eq!(
        failures.load(Ordering::Relaxed),
        0,
        "no request may fail during the swap"
    );
    let all: Vec<&String> = per_loop.iter().flatten().collect();
    assert!(
        all.iter().any(|v| **v == old) && all.iter().any(|v| **v == new),
        "both versions served"
    );
    for seen in &per_loop {
        // Within one client's sequence, once the new version answered the old one never returns.
        if let Some(first_new) = seen.iter().position(|v| *v == new) {
            assert!(
                seen[first_new..].iter().all(|v| *v == new),
                "the old model came back"
            );
        }
    }
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains(&format!(
            "bloginfer_infer_model_version{{version=\"{new}\"}} 1"
        )),
        "{metrics}"
    );
    assert!(metrics.contains(&format!(
        "bloginfer_infer_model_version{{version=\"{old}\"}} 0"
    )));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_checkpoint_is_refused_and_the_old_model_keeps_serving() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::open(dir.path()).expect("registry");
    let good = publish(&registry, 1, 32, true);
    let app = spawn_app(config(dir.path())).await;

    let broken = "20990101T000000000Z-deadbeef";
    std::fs::write(
        registry.path_of(broken).expect("path"),
        b"not a checkpoint at all",
    )
    .expect("write");
    registry
        .set_current(broken)
        .expect("point at the broken version");
    assert!(matches!(app.service.reload_now().await, Reload::Failed(_)));
    assert_eq!(
        app.service.reload_now().await,
        Reload::Unchanged,
        "a broken version is not retried in a loop"
    );
    let body = app.sentiment(TEXTS[0]).await;
    assert_eq!(body["model_version"], good.as_str());
    let (_, metrics) = app.get("/metrics").await;
    assert!(
        metrics.contains("bloginfer_infer_model_reloads_total{result=\"failure\"} 1"),
        "{metrics}"
    );
    let (status, _) = app.get("/readyz").await;
    assert_eq!(status, 200);

    let fixed = publish(&registry, 3, 32, true);
    assert_eq!(
        app.service.reload_now().await,
        Reload::Loaded(fixed.clone())
    );
    assert_eq!(
        app.sentiment(TEXTS[0]).await["model_version"],
        fixed.as_str()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn not_ready_until_a_model_exists_then_ready() {
    let dir = tempfile::tempdir().expect("tempdir");
    let app = spawn_app(config(dir.path())).await;
    let (status, body) = app.get("/readyz").await;
    assert_eq!(status, 503, "{body}");
    let (status, body, retry) = app
        .post("/v1/sentiment", json!({"text": "很好"}).to_string())
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("model_not_ready"))
    );
    assert_eq!(retry.as_deref(), Some("1"));
    let (status, _) = app.get("/healthz").await;
    assert_eq!(status, 200, "alive even without a model");

    let registry = Registry::open(dir.path()).expect("registry");
    let version = publish(&registry, 1, 32, true);
    assert_eq!(app.service.reload_now().await, Reload::Loaded(version));
    let (status, _) = app.get("/readyz").await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_bad_input_gets_its_status_and_a_json_error() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::open(dir.path()).expect("registry");
    publish(&registry, 1, 32, true);
    let app = spawn_app(config(dir.path())).await;
    let too_many: Vec<&str> = std::iter::repeat_n("好", 257).collect();
    let huge = json!({ "text": "好".repeat(30_000) }).to_string();
    let cases: Vec<(&str, String, u16, &str)> = vec![
        (
            "/v1/sentiment",
            json!({"text": ""}).to_string(),
            422,
            "empty_text",
        ),
        (
            "/v1/sentiment",
            json!({"text": " \t\n "}).to_string(),
            422,
            "empty_text",
        ),
        ("/v1/sentiment", "{\"text\": ".into(), 400, "invalid_json"),
        ("/v1/sentiment", "not json".into(), 400, "invalid_json"),
        (
            "/v1/sentiment",
            json!({"text": 42}).to_string(),
            422,
            "invalid_request",
        ),
        (
            "/v1/sentiment",
            json!({"texts": ["a"]}).to_string(),
            422,
            "invalid_request",
        ),
        (
            "/v1/sentiment",
            json!(["好"]).to_string(),
            422,
            "invalid_request",
        ),
        ("/v1/sentiment", huge, 413, "body_too_large"),
        (
            "/v1/sentiment/batch",
            json!({"texts": []}).to_string(),
            422,
            "invalid_batch_size",
        ),
        (
            "/v1/sentiment/batch",
            json!({"texts": too_many}).to_string(),
            422,
            "invalid_batch_size",
        ),
        (
            "/v1/sentiment/batch",
            json!({"texts": ["好", "  "]}).to_string(),
            422,
            "empty_text",
        ),
        (
            "/v1/sentiment/batch",
            json!({"texts": "好"}).to_string(),
            422,
            "invalid_request",
        ),
        ("/v1/nothing", "{}".into(), 404, "not_found"),
    ];
    for (path, body, status, code) in cases {
        let (got, json, _) = app.post(path, body.clone()).await;
        assert_eq!(got, status, "{path} {body:.60} -> {json}");
        assert_eq!(json["error"]["code"], code, "{path} {body:.60}");
        assert!(json["error"]["message"]
            .as_str()
            .is_some_and(|m| !m.is_empty()));
    }
    let resp = app
        .http
        .get(format!("{}/v1/sentiment", app.url))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 405);
    let body: Value = resp.json().await.expect("JSON");
    assert_eq!(body["error"]["code"], "method_not_allowed");
    // A text longer than the model's max_len is truncated, not refused.
    let long = "服务很好".repeat(200);
    assert_eq!(
        app.sentiment(&long).await["model_version"]
            .as_str()
            .map(str::len),
        Some(28)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_queue_sheds_load_with_503_and_retry_after() {
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::open(dir.path()).expect("registry");
    publish(&registry, 1, 256, true);
    let mut cfg = config(dir.path());
    cfg.batching = BatchConfig {
        max_batch: 1,
        max_wait: Duration::ZERO,
        queue_capacity: 1,
        queue_bytes: 64 << 20,
        compute_workers: 1,
    };
    let app = Arc::new(spawn_app(cfg).await);
    let long = "这家酒店干净整洁，服务也很热情，下次还会再来".repeat(3);
    let mut calls = Vec::new();
    for _ in 0..64 {
        let (app, long) = (app.clone(), long.clone());
        calls.push(tokio::spawn(async move {
            app.post("/v1/sentiment", json!({ "text": long }).to_string())
                .await
        }));
    }
    let (mut ok, mut shed) = (0, 0);
    for call in calls {
        let (status, body, retry) = call.await.expect("call");
        match status {
            200 => ok += 1,
            503 => {
                assert_eq!(body["error"]["code"], "overloaded");
                assert_eq!(retry.as_deref(), Some("1"));
                shed += 1;
            }
            other => panic!("unexpected status {other}: {body}"),
        }
    }
    assert!(ok >= 1 && shed >= 1, "ok {ok}, shed {shed}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_queue_is_bounded_in_bytes_too() {
    use bloginfer_service::Service;
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::open(dir.path()).expect("registry");
    publish(&registry, 1, 32, true);
    let mut cfg = config(dir.path());
    cfg.max_body_bytes = 1 << 20;
    cfg.batching.queue_bytes = 256 * 1024;
    let service = Inference::build(cfg).expect("service");
    service.reload_now().await;
    // Served without its background tasks: nothing takes requests off the
    // queue, so what is admitted stays admitted (as behind a slow model).
    let host = Host::new(ServeConfig::default(), CancellationToken::new());
    let (_, handle) = host.into_router();
    let listener = bloginfer_service::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let server = handle.start(listener, service.routes()).expect("serve");
    let url = format!("{}/v1/sentiment/batch", server.url());

    // Three requests of 100 KiB of text each: far below the request bound
    // (256 may wait), but over the byte budget (256 KiB) together.
    let texts = vec!["好".repeat(25 * 1024 / 3); 4];
    let body = json!({ "texts": texts }).to_string();
    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()
        .expect("client");
    let calls: Vec<_> = (0..3)
        .map(|_| {
            let (client, url, body) = (client.clone(), url.clone(), body.clone());
            tokio::spawn(async move {
                let resp = client
                    .post(url)
                    .header("content-type", "application/json")
                    .body(body)
                    .send()
                    .await
                    .ok()?;
                let retry = resp.headers().get("retry-after").cloned();
                let status = resp.status().as_u16();
                let body: Value = resp.json().await.ok()?;
                Some((status, body, retry))
            })
        })
        .collect();
    let mut shed = 0;
    for call in calls {
        // `None`: still waiting after 5 s (admitted, and nothing serves the queue).
        if let Some((status, body, retry)) = call.await.expect("call") {
            assert_eq!(status, 503, "{body}");
            assert_eq!(body["error"]["code"], "overloaded");
            assert_eq!(
                retry
                    .and_then(|v| v.to_str().ok().map(String::from))
                    .as_deref(),
                Some("1")
            );
            shed += 1;
        }
    }
    assert_eq!(
        shed, 1,
        "the request over the byte budget is refused at once"
    );
}
