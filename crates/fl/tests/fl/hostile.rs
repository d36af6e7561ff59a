//! Hostile participants: Sybil registrations beyond the roster, a worker
//! speaking for another, lying sample counts, and a boosted update.

use bloginfer_fl::params::ParamSet;
use bloginfer_fl::protocol::{UpdateHeader, SPARSE_PARAMS, UPDATE_KIND};
use bloginfer_fl::wire::{encode, WireDtype, WireSet};
use serde_json::{json, Value};

fn update(model: &bloginfer_model::ModelConfig, worker: &str, samples: u64, value: f32) -> Vec<u8> {
    let mut delta = ParamSet::zeros(model);
    if let Some(p) = delta.0.get_mut("fc.bias") {
        p.values.fill(value);
    }
    let header = UpdateHeader {
        run_id: "test-run".into(),
        round: 1,
        worker_id: worker.into(),
        samples,
        train_loss: 0.5,
        steps: 1,
        train_seconds: 0.1,
    };
    encode(
        UPDATE_KIND,
        &header,
        &WireSet::from_params(delta, &SPARSE_PARAMS),
        WireDtype::F32,
    )
    .expect("encode")
}

async fn code(resp: reqwest::Response) -> (u16, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("JSON error body");
    (
        status,
        body["error"]["code"].as_str().unwrap_or_default().into(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn only_the_roster_joins_each_worker_as_itself_with_the_rosters_weight() {
    let dir = tempfile::tempdir().expect("tempdir");
    let examples = crate::common::corpus(50);
    let (model, vocab) = crate::common::small_model(&examples, 0.0);
    let strategy = crate::common::fedavg();
    let mut config = crate::common::config(
        model.clone(),
        vocab,
        strategy,
        crate::common::quick_local(),
        1,
        2,
        dir.path(),
    );
    config.roster = crate::common::roster(&[("a", 10), ("b", 30)]);
    let (url, server) = crate::common::start(config).await;
    let http = reqwest::Client::new();
    let register = |token: String, worker: &str, samples: u64| {
        http.post(format!("{url}/v1/register"))
            .bearer_auth(token)
            .json(&json!({"worker_id": worker, "samples": samples}))
            .send()
    };
    let cred = crate::common::credential;

    // 300 Sybils with well-formed credentials for ids outside the roster: none joins.
    for i in 0..300 {
        let id = format!("sybil-{i}");
        let resp = register(cred(&id), &id, 10).await.expect("send");
        assert_eq!(code(resp).await, (403, "not_in_roster".into()), "{id}");
    }
    // a's credential does not speak for b; the run key speaks for nobody.
    let resp = register(cred("a"), "b", 30).await.expect("send");
    assert_eq!(code(resp).await, (403, "impersonation".into()));
    let resp = register(crate::common::RUN_KEY.into(), "a", 10)
        .await
        .expect("send");
    assert_eq!(code(resp).await, (403, "not_a_worker".into()));
    // A forged credential (b's MAC under a's name) proves nothing.
    let forged = cred("b").replacen("w1.b.", "w1.a.", 1);
    let resp = register(forged, "a", 10).await.expect("send");
    assert_eq!(code(resp).await, (401, "unauthorized".into()));
    // A sample count other than the roster's is refused.
    let resp = register(cred("a"), "a", 1_000_000_000_000_000)
        .await
        .expect("send");
    assert_eq!(code(resp).await, (422, "samples_mismatch".into()));

    for (id, n) in [("a", 10), ("b", 30)] {
        let resp = register(cred(id), id, n).await.expect("send");
        assert_eq!(resp.status().as_u16(), 200, "{id}");
    }
    // A second registration while the first is live is refused.
    let resp = register(cred("a"), "a", 10).await.expect("send");
    assert!(resp.headers().contains_key("retry-after"));
    assert_eq!(code(resp).await, (409, "already_registered".into()));

    let post = |token: String, body: Vec<u8>| {
        http.post(format!("{url}/v1/rounds/1/update"))
            .bearer_auth(token)
            .body(body)
            .send()
    };
    // Wait for the round to open.
    let task: Value = http
        .get(format!("{url}/v1/task?worker_id=a"))
        .bearer_auth(cred("a"))
        .send()
        .await
        .expect("send")
        .json()
        .await
        .expect("task");
    assert_eq!(task["action"], "train");
    let resp = post(cred("a"), update(&model, "b", 30, 5.0))
        .await
        .expect("send");
    assert_eq!(code(resp).await, (403, "impersonation".into()));
    let resp = post(cred("a"), update(&model, "a", 10, 1.0))
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200);
    let resp = post(cred("b"), update(&model, "b", 1_000_000_000_000_000, 5.0))
        .await
        .expect("send");
    assert_eq!(code(resp).await, (422, "samples_mismatch".into()));
    // With b refused the attempt has too few updates: the round starts over,
    // and both send again.
    for (id, n, value) in [("a", 10, 1.0), ("b", 30, 2.0)] {
        wait_for_train(&http, &url, id).await;
        let resp = post(cred(id), update(&model, id, n, value))
            .await
            .expect("send");
        assert_eq!(resp.status().as_u16(), 200, "{id}");
    }
    let status = server.await.expect("join").expect("run succeeds");
    let round = &status.history[0];
    assert_eq!(
        round.worker_samples,
        vec![("a".into(), 10), ("b".into(), 30)]
    );
    assert_eq!(round.samples, 40);
    assert_eq!(round.attempts, 2);
}

/// Long-polls `id`'s tasks until it is told to train.
async fn wait_for_train(http: &reqwest::Client, url: &str, id: &str) {
    loop {
        let task: Value = http
            .get(format!("{url}/v1/task?worker_id={id}"))
            .bearer_auth(crate::common::credential(id))
            .send()
            .await
            .expect("send")
            .json()
            .await
            .expect("task");
        if task["action"] == "train" {
            return;
        }
    }
}

/// Registers `id`, waits until it is told to train, and sends `body`.
async fn join_and_send(http: &reqwest::Client, url: &str, id: &str, samples: u64, body: Vec<u8>) {
    let cred = crate::common::credential(id);
    let resp = http
        .post(format!("{url}/v1/register"))
        .bearer_auth(&cred)
        .json(&json!({"worker_id": id, "samples": samples}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200, "{id} registers");
    wait_for_train(http, url, id).await;
    let resp = http
        .post(format!("{url}/v1/rounds/1/update"))
        .bearer_auth(&cred)
        .body(body)
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 200, "{id}'s update is taken");
}

/// The final `fc.bias` of a one-round run where a and b send 0.1 and c sends
/// 100 (a ×1000 boost), with the adaptive bound at `multiple`.
async fn bias_after_a_boosted_update(multiple: f64) -> (Vec<f32>, Vec<f32>, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let examples = crate::common::corpus(50);
    let (model, vocab) = crate::common::small_model(&examples, 0.0);
    let strategy = crate::common::fedavg();
    let mut config = crate::common::config(
        model.clone(),
        vocab,
        strategy,
        crate::common::quick_local(),
        1,
        3,
        dir.path(),
    );
    config.roster = crate::common::roster(&[("a", 10), ("b", 10), ("c", 10)]);
    config.adaptive_norm_multiple = multiple;
    let aggregator = bloginfer_fl::server::Aggregator::build(config.clone()).expect("build");
    let initial = aggregator.shared().lock().global.0["fc.bias"]
        .values
        .clone();
    drop(aggregator);
    let (url, server) = crate::common::start(config).await;
    let http = reqwest::Client::new();
    let sends = [("a", 0.1), ("b", 0.1), ("c", 100.0)].map(|(id, value)| {
        let (http, url, body) = (http.clone(), url.clone(), update(&model, id, 10, value));
        tokio::spawn(async move { join_and_send(&http, &url, id, 10, body).await })
    });
    for send in sends {
        send.await.expect("join");
    }
    let status = server.await.expect("join").expect("run succeeds");
    let checkpoint = bloginfer_model::Registry::open(dir.path().join("models"))
        .and_then(|r| r.load(status.version.as_deref().expect("version")))
        .expect("final model");
    let params = ParamSet::from_tensors(&checkpoint.weights).expect("weights");
    (
        initial,
        params.0["fc.bias"].values.clone(),
        status.history[0].clipped,
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_boosted_update_is_bounded_by_default() {
    // Unbounded, the mean of (0.1, 0.1, 100) moves the bias by about 33.
    let (initial, unbounded, clipped) = bias_after_a_boosted_update(0.0).await;
    assert_eq!(clipped, 0);
    assert!(
        (initial[0] - unbounded[0] - 33.4).abs() < 0.1,
        "{initial:?} -> {unbounded:?}"
    );
    // With the default bound (3x the median norm) c counts as 0.3 at most.
    let default = bloginfer_fl::bounds::DEFAULT_MULTIPLE;
    let (initial, bounded, clipped) = bias_after_a_boosted_update(default).await;
    assert_eq!(clipped, 1);
    let moved = (initial[0] - bounded[0]).abs();
    assert!(moved < 0.17 + 1e-4, "moved by {moved}");
}
