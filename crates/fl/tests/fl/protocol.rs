//! The aggregator's HTTP contract: authentication, validation of requests
//! and updates, late and duplicate updates, metrics.

use bloginfer_fl::params::ParamSet;
use bloginfer_fl::protocol::{LocalSettings, UpdateHeader, SPARSE_PARAMS, UPDATE_KIND};
use bloginfer_fl::strategy::{Strategy, StrategyKind, StrategyOptions};
use bloginfer_fl::wire::{encode, WireDtype, WireSet};
use serde_json::{json, Value};

fn update_body(
    model: &bloginfer_model::ModelConfig,
    worker: &str,
    round: u32,
    value: f32,
) -> Vec<u8> {
    let mut delta = ParamSet::zeros(model);
    if let Some(p) = delta.0.get_mut("fc.bias") {
        p.values.fill(value);
    }
    let header = update_header(worker, round);
    encode(
        UPDATE_KIND,
        &header,
        &WireSet::from_params(delta, &SPARSE_PARAMS),
        WireDtype::F32,
    )
    .expect("encode")
}

fn update_header(worker: &str, round: u32) -> UpdateHeader {
    UpdateHeader {
        run_id: "test-run".into(),
        round,
        worker_id: worker.into(),
        samples: 10,
        train_loss: 0.5,
        steps: 1,
        train_seconds: 0.1,
    }
}

async fn error_code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("JSON error body");
    (
        status,
        body["error"]["code"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_aggregator_refuses_bad_requests_with_clear_statuses() {
    let dir = tempfile::tempdir().expect("tempdir");
    let examples = crate::common::corpus(50);
    let (model, vocab) = crate::common::small_model(&examples, 0.0);
    let local = LocalSettings {
        batch_size: 8,
        clip_norm: 0.0,
        token_dropout: 0.0,
        seed: 1,
    };
    let strategy =
        Strategy::new(StrategyKind::FedAvg, &StrategyOptions::default()).expect("strategy");
    let mut config = crate::common::config(model.clone(), vocab, strategy, local, 2, 1, dir.path());
    config.rules.min_available = 2;
    config.max_update_norm = 100.0;
    config.roster = crate::common::roster(&[("a", 10), ("b", 10)]);
    let (url, _server) = crate::common::start(config).await;
    let http = reqwest::Client::new();
    let as_worker = |worker: &str, req: reqwest::RequestBuilder| {
        req.bearer_auth(crate::common::credential(worker))
    };
    let authed = |req: reqwest::RequestBuilder| as_worker("a", req);

    let resp = http
        .post(format!("{url}/v1/register"))
        .json(&json!({"worker_id": "a", "samples": 5}))
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(resp).await, (401, "unauthorized".into()));
    let resp = http
        .get(format!("{url}/v1/status"))
        .bearer_auth("wrong")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 401);

    let resp = authed(http.post(format!("{url}/v1/register")))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(resp).await.0, 400);
    let resp = authed(http.post(format!("{url}/v1/register")))
        .json(&json!({"worker_id": "a b/c", "samples": 5}))
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(resp).await, (422, "invalid_worker_id".into()));
    let resp = authed(http.post(format!("{url}/v1/register")))
        .json(&json!({"worker_id": "a", "samples": 0}))
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(resp).await, (422, "samples_mismatch".into()));

    for worker in ["a", "b"] {
        let resp = as_worker(worker, http.post(format!("{url}/v1/register")))
            .json(&json!({"worker_id": worker, "samples": 10}))
            .send()
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 200);
        let plan: Value = resp.json().await.expect("plan");
        assert_eq!(plan["run_id"], "test-run");
        assert!(plan.get("vocab").is_some());
    }
    let task: Value = authed(http.get(format!("{url}/v1/task?worker_id=a")))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("task");
    assert_eq!(task, json!({"action": "train", "round": 1}));
    let resp = authed(http.get(format!("{url}/v1/rounds/2/weights")))
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(resp).await, (409, "future_round".into()));
    let resp = authed(http.get(format!("{url}/v1/rounds/1/weights")))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);

    let post = |body: Vec<u8>, round: u32| {
        // The update's sender acts as the worker its body names.
        let (header, _): (UpdateHeader, _) = bloginfer_fl::wire::decode(&body, UPDATE_KIND)
            .unwrap_or((update_header("a", round), Default::default()));
        let worker = if header.worker_id == "z" {
            "a".to_string()
        } else {
            header.worker_id
        };
        as_worker(
            &worker,
            http.post(format!("{url}/v1/rounds/{round}/update")),
        )
        .body(body)
        .send()
    };
    let resp = post(b"garbage".to_vec(), 1).await.expect("send");
    assert_eq!(error_code(resp).await, (422, "malformed_update".into()));
    let resp = post(update_body(&model, "a", 1, f32::NAN), 1)
        .await
        .expect("send");
    assert_eq!(error_code(resp).await, (422, "non_finite".into()));
    let resp = post(update_body(&model, "a", 1, 0.1), 1)
        .await
        .expect("send");
    assert_eq!(
        error_code(resp).await,
        (409, "duplicate_update".into()),
        "a refused worker is done for the round"
    );
    let resp = post(update_body(&model, "z", 1, 0.1), 1)
        .await
        .expect("send");
    assert_eq!(
        error_code(resp).await,
        (403, "impersonation".into()),
        "worker a's credential cannot send z's update"
    );
    let resp = post(update_body(&model, "b", 1, 1000.0), 1)
        .await
        .expect("send");
    assert_eq!(error_code(resp).await, (422, "norm_exceeded".into()));

    // Both selected workers were refused: the round starts over with a new
    // selection, and only then are they told to train again.
    for worker in ["b", "a"] {
        let task: Value = as_worker(
            worker,
            http.get(format!("{url}/v1/task?worker_id={worker}")),
        )
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("task");
        assert_eq!(task, json!({"action": "train", "round": 1}), "{worker}");
    }
    let resp = post(update_body(&model, "b", 1, 0.1), 1)
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    let resp = post(update_body(&model, "a", 1, 0.1), 1)
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    // Wait for round 2 to open, then a round-1 update is late.
    let task: Value = authed(http.get(format!("{url}/v1/task?worker_id=a")))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("task");
    assert_eq!(task, json!({"action": "train", "round": 2}));
    let resp = post(update_body(&model, "b", 1, 0.1), 1)
        .await
        .expect("send");
    assert_eq!(error_code(resp).await, (409, "stale_round".into()));

    let status: Value = http
        .get(format!("{url}/v1/status"))
        .bearer_auth(crate::common::RUN_KEY)
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("status");
    let round1 = &status["history"][0];
    assert_eq!(round1["round"], 1);
    assert_eq!(round1["clients"], 2);
    assert_eq!(round1["attempts"], 2);
    let metrics = http
        .get(format!("{url}/metrics"))
        .send()
        .await
        .expect("send")
        .text()
        .await
        .expect("text");
    for line in [
        "bloginfer_fl_updates_rejected_total{reason=\"non_finite\"} 1",
        "bloginfer_fl_updates_rejected_total{reason=\"norm_exceeded\"} 1",
        "bloginfer_fl_updates_rejected_total{reason=\"stale_round\"} 1",
        "bloginfer_fl_updates_accepted_total 2",
    ] {
        assert!(metrics.contains(line), "missing {line:?} in\n{metrics}");
    }
    let resp = http
        .get(format!("{url}/healthz"))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    let resp = http
        .get(format!("{url}/nowhere"))
        .send()
        .await
        .expect("send");
    assert_eq!(error_code(resp).await, (404, "not_found".into()));
}

/// Two aggregators on one run would overwrite each other's state and split
/// its workers between them: the second one refuses to start until the
/// first is gone.
#[test]
fn a_second_aggregator_on_the_same_state_refuses_to_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let examples = crate::common::corpus(50);
    let (model, vocab) = crate::common::small_model(&examples, 0.0);
    let local = LocalSettings {
        batch_size: 8,
        clip_norm: 0.0,
        token_dropout: 0.0,
        seed: 1,
    };
    let config = || {
        let strategy =
            Strategy::new(StrategyKind::FedAvg, &StrategyOptions::default()).expect("strategy");
        crate::common::config(
            model.clone(),
            vocab.clone(),
            strategy,
            local.clone(),
            2,
            1,
            dir.path(),
        )
    };
    let first = bloginfer_fl::server::Aggregator::build(config()).expect("the first starts");
    let Err(refused) = bloginfer_fl::server::Aggregator::build(config()) else {
        panic!("a second aggregator started on the same state");
    };
    assert!(
        refused
            .to_string()
            .contains("another aggregator is running"),
        "{refused}"
    );
    let state_dir = config().state_dir;
    assert_eq!(
        bloginfer_fl::server::aggregator_holding(&state_dir),
        Some(std::process::id()),
        "the lock names its holder, so a launcher can find it"
    );
    drop(first);
    assert_eq!(bloginfer_fl::server::aggregator_holding(&state_dir), None);
    bloginfer_fl::server::Aggregator::build(config()).expect("it starts once the first is gone");
}
