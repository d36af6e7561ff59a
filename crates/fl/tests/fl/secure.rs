//! Secure aggregation end to end: real workers' protocol code with known
//! updates, through a recording proxy in front of a real aggregator.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::response::{IntoResponse, Response};
use bloginfer_fl::client::{run_participant, Trained, Trainer};
use bloginfer_fl::params::ParamSet;
use bloginfer_fl::protocol::{MaskedHeader, RunPlan, MASKED_KIND};
use bloginfer_fl::secagg::FixedPoint;
use bloginfer_fl::FlError;
use rand::{Rng, SeedableRng};

/// A participant whose update is fixed in advance; `drop_out` makes it fail
/// (end its task, as a killed process would) when asked to train, that is
/// after its keys and shares were exchanged.
struct Fixed {
    update: ParamSet,
    drop_out: bool,
}

impl Trainer for Fixed {
    fn train(&self, _: &RunPlan, _: u32, _: &ParamSet) -> bloginfer_fl::Result<Trained> {
        if self.drop_out {
            return Err(FlError::Process("killed after the share exchange".into()));
        }
        Ok(Trained {
            update: self.update.clone(),
            train_loss: 0.5,
            steps: 1,
            train_seconds: 0.01,
        })
    }
}

fn random_update(like: &ParamSet, seed: u64) -> ParamSet {
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let mut out = like.clone();
    for p in out.0.values_mut() {
        p.values
            .iter_mut()
            .for_each(|v| *v = rng.random_range(-0.5..0.5));
    }
    out
}

/// Masked inputs seen on their way to the aggregator, by worker id.
type Seen = Arc<Mutex<Vec<(String, Vec<u32>)>>>;

/// A reverse proxy that records masked inputs and forwards everything.
async fn recording_proxy(upstream: String, seen: Seen) -> String {
    async fn forward(
        State((upstream, seen, http)): State<(String, Seen, reqwest::Client)>,
        request: Request,
    ) -> Response {
        let (parts, body) = request.into_parts();
        let body: Bytes = axum::body::to_bytes(body, 64 << 20)
            .await
            .unwrap_or_default();
        if parts.uri.path().ends_with("/secure/masked") {
            if let Ok((header, masked)) =
                bloginfer_fl::wire::decode_masked::<MaskedHeader>(&body, MASKED_KIND)
            {
                seen.lock().unwrap().push((header.worker_id, masked));
            }
        }
        let path = parts
            .uri
            .path_and_query()
            .map(|p| p.as_str())
            .unwrap_or("/");
        let mut forwarded = http.request(parts.method, format!("{upstream}{path}"));
        for (name, value) in &parts.headers {
            if name != "host" {
                forwarded = forwarded.header(name, value);
            }
        }
        let resp = forwarded.body(body).send().await.expect("upstream answers");
        let status = resp.status();
        let bytes = resp.bytes().await.unwrap_or_default();
        (status, bytes).into_response()
    }
    let http = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .expect("client");
    let app = axum::Router::new()
        .fallback(forward)
        .with_state((upstream, seen, http));
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    tokio::spawn(async move { axum::serve(listener, app).await });
    url
}

fn pearson(a: &[f64], b: &[f64]) -> f64 {
    let n = a.len() as f64;
    let (ma, mb) = (a.iter().sum::<f64>() / n, b.iter().sum::<f64>() / n);
    let cov: f64 = a.iter().zip(b).map(|(x, y)| (x - ma) * (y - mb)).sum();
    let va: f64 = a.iter().map(|x| (x - ma).powi(2)).sum();
    let vb: f64 = b.iter().map(|y| (y - mb).powi(2)).sum();
    cov / (va.sqrt() * vb.sqrt())
}

/// Runs one securely aggregated round among a (10 samples), b (30) and c (20,
/// dropping out after the share exchange when `c_drops`); returns the initial
/// and final weights, the plain updates, and what the proxy saw.
async fn secure_round(
    c_drops: bool,
) -> (
    ParamSet,
    ParamSet,
    Vec<(String, u64, ParamSet)>,
    Vec<(String, Vec<u32>)>,
) {
    let dir = tempfile::tempdir().expect("tempdir");
    let examples = crate::common::corpus(50);
    let (model, vocab) = crate::common::small_model(&examples, 0.0);
    let local = crate::common::quick_local();
    let strategy = crate::common::fedavg();
    let min_clients = if c_drops { 2 } else { 3 };
    let mut config =
        crate::common::config(model, vocab, strategy, local, 1, min_clients, dir.path());
    config.rules.min_available = 3;
    config.rules.deadline = Duration::from_secs(6);
    config.rules.lease = Duration::from_secs(5);
    config.roster = crate::common::roster(&[("a", 10), ("b", 30), ("c", 20)]);
    config.privacy.secure_aggregation = true;
    let aggregator = bloginfer_fl::server::Aggregator::build(config.clone()).expect("build");
    let initial = (*aggregator.shared().lock().global).clone();
    drop(aggregator);
    let (url, server) = crate::common::start(config).await;
    let seen: Seen = Arc::default();
    let proxy = recording_proxy(url, seen.clone()).await;
    let mut updates = Vec::new();
    let mut tasks = Vec::new();
    for (i, (id, samples)) in [("a", 10u64), ("b", 30), ("c", 20)].into_iter().enumerate() {
        let update = random_update(&initial, 100 + i as u64);
        let drop_out = c_drops && id == "c";
        if !drop_out {
            updates.push((id.to_string(), samples, update.clone()));
        }
        let worker = crate::common::worker(&proxy, id, &examples[..1], dir.path());
        let trainer = Arc::new(Fixed { update, drop_out });
        tasks.push((
            drop_out,
            tokio::spawn(run_participant(worker, samples, trainer)),
        ));
    }
    for (drop_out, task) in tasks {
        let outcome = tokio::time::timeout(Duration::from_secs(60), task)
            .await
            .expect("the participant does not hang")
            .expect("join");
        assert_eq!(outcome.is_err(), drop_out, "{outcome:?}");
    }
    let status = tokio::time::timeout(Duration::from_secs(60), server)
        .await
        .expect("the run does not hang")
        .expect("join")
        .expect("the run succeeds");
    let round = &status.history[0];
    assert!(round.secure && status.secure_aggregation);
    assert_eq!(round.clients, if c_drops { 2 } else { 3 });
    let checkpoint = bloginfer_model::Registry::open(dir.path().join("models"))
        .and_then(|r| r.load(status.version.as_deref().expect("version")))
        .expect("final model");
    let last = ParamSet::from_tensors(&checkpoint.weights).expect("weights");
    // What the aggregator keeps holds no individual update: its state is the
    // global weights and the server optimiser's (plus its lock), nothing per worker.
    let mut kept: Vec<String> = std::fs::read_dir(dir.path().join("state"))
        .expect("state dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    kept.sort();
    assert!(
        kept.iter()
            .all(|f| ["aggregator.lock", "aggregator-state.safetensors"].contains(&f.as_str())),
        "{kept:?}"
    );
    let seen = seen.lock().unwrap().clone();
    (initial, last, updates, seen)
}

/// The expected global after one FedAvg round (server SGD, rate 1) of `updates`.
// Computed in f64 and narrowed to the model's f32, as the aggregator does.
#[allow(clippy::cast_possible_truncation)]
fn fedavg(initial: &ParamSet, updates: &[(String, u64, ParamSet)]) -> ParamSet {
    let total: f64 = updates.iter().map(|(_, n, _)| *n as f64).sum();
    let mut out = initial.clone();
    for (name, p) in out.0.iter_mut() {
        for (j, v) in p.values.iter_mut().enumerate() {
            let mean: f64 = updates
                .iter()
                .map(|(_, n, u)| *n as f64 / total * f64::from(u.0[name].values[j]))
                .sum();
            *v = (f64::from(*v) - mean) as f32;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_securely_aggregated_model_is_fedavg_and_the_aggregator_sees_only_masks() {
    let (initial, last, updates, seen) = secure_round(false).await;
    let expected = fedavg(&initial, &updates);
    // Per coordinate, each of the 3 weighted terms is off by less than one
    // fixed-point step (stochastic rounding), and the sum is divided by the
    // surviving weight (1 here): bound = 3 steps plus f32 rounding.
    let bound = FixedPoint::default().error_bound(3);
    let diff = f64::from(last.max_abs_diff(&expected));
    assert!(
        diff <= bound + 1e-6,
        "secure FedAvg differs by {diff}, bound {bound}"
    );
    assert!(
        last.max_abs_diff(&initial) > 0.01,
        "the round moved the model"
    );
    // Every masked input the aggregator received is uncorrelated with the
    // plain (weighted) update it hides.
    assert_eq!(seen.len(), 3);
    let fixed = FixedPoint::default();
    for (worker, masked) in &seen {
        let (_, _, plain) = updates
            .iter()
            .find(|(id, _, _)| id == worker)
            .expect("known");
        let plain: Vec<f64> = plain.flatten().iter().map(|&v| f64::from(v)).collect();
        let as_values: Vec<f64> = masked
            .iter()
            .map(|&q| f64::from(q) * fixed.step() - f64::from(fixed.clip))
            .collect();
        let r = pearson(&plain, &as_values);
        assert!(
            r.abs() < 0.05,
            "{worker}'s masked input correlates with its update: r = {r}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_participant_dying_after_the_share_exchange_does_not_lose_the_round() {
    let (initial, last, updates, seen) = secure_round(true).await;
    assert_eq!(seen.len(), 2, "c sent no masked input");
    let expected = fedavg(&initial, &updates);
    // Two terms, divided by the survivors' weight 40/60.
    let bound = FixedPoint::default().error_bound(2) * 60.0 / 40.0;
    let diff = f64::from(last.max_abs_diff(&expected));
    assert!(
        diff <= bound + 1e-6,
        "recovered sum differs by {diff}, bound {bound}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dp_run_clips_adds_noise_and_reports_the_privacy_it_spent() {
    let dir = tempfile::tempdir().expect("tempdir");
    let examples = crate::common::corpus(50);
    let (model, vocab) = crate::common::small_model(&examples, 0.0);
    let local = crate::common::quick_local();
    let strategy = crate::common::fedavg();
    let mut config = crate::common::config(model, vocab, strategy, local, 2, 2, dir.path());
    config.roster = crate::common::roster(&[("a", 10), ("b", 30)]);
    let dp = bloginfer_fl::privacy::DpSettings {
        noise_multiplier: 1.0,
        clip: 0.1,
        delta: 1e-5,
    };
    config.privacy.dp = Some(dp);
    let aggregator = bloginfer_fl::server::Aggregator::build(config.clone()).expect("build");
    let initial = (*aggregator.shared().lock().global).clone();
    drop(aggregator);
    let (url, server) = crate::common::start(config).await;
    let mut tasks = Vec::new();
    for (i, (id, samples)) in [("a", 10u64), ("b", 30)].into_iter().enumerate() {
        let update = random_update(&initial, 200 + i as u64);
        let worker = crate::common::worker(&url, id, &examples[..1], dir.path());
        let trainer = Arc::new(Fixed {
            update,
            drop_out: false,
        });
        tasks.push(tokio::spawn(run_participant(worker, samples, trainer)));
    }
    for task in tasks {
        task.await.expect("join").expect("participant");
    }
    let status = server.await.expect("join").expect("run succeeds");
    for record in &status.history {
        assert_eq!(
            (record.clipped, record.norm_bound),
            (2, Some(0.1)),
            "{record:?}"
        );
        assert_eq!(record.dp_sample_rate, Some(1.0));
        assert_eq!(record.selected, 2);
    }
    // Both workers take part in both rounds: the Gaussian mechanism composed
    // twice, at sampling rate 1.
    let expected = bloginfer_fl::privacy::epsilon_for(1.0, 1.0, 2, 1e-5);
    let epsilon = status.epsilon.expect("epsilon reported");
    assert!((epsilon - expected).abs() < 1e-9, "{epsilon} vs {expected}");
    assert!(status.history[0].epsilon < status.history[1].epsilon);
    assert_eq!(status.delta, Some(1e-5));
    let json = serde_json::to_value(&status).expect("json");
    assert!(
        json["epsilon"].is_number() && json["delta"].is_number(),
        "{json}"
    );
}

/// Bytes a one-worker, one-round run uploads, with or without dense embedding updates.
async fn upload_bytes(dense: bool) -> (u64, usize) {
    let dir = tempfile::tempdir().expect("tempdir");
    let examples = crate::common::corpus(40);
    let (model, vocab) = crate::common::small_model(&crate::common::corpus(2000), 0.0);
    let local = crate::common::quick_local();
    let strategy = crate::common::fedavg();
    let embedding = model.vocab_size * model.embed_dim * 4;
    let mut config = crate::common::config(model, vocab, strategy, local, 1, 1, dir.path());
    config.roster = crate::common::roster(&[("0", examples.len())]);
    config.privacy.dense_embedding_updates = dense;
    let (url, server) = crate::common::start(config).await;
    let worker = crate::common::worker(&url, "0", &examples, dir.path());
    bloginfer_fl::client::run_worker(worker)
        .await
        .expect("worker");
    let status = server.await.expect("join").expect("run");
    (status.history[0].upload_bytes_mean, embedding)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dense_embedding_updates_do_not_reveal_which_rows_a_silo_touched() {
    // 40 texts touch a small part of a 2,000-text vocabulary: sparse rows name them.
    let (sparse, embedding) = upload_bytes(false).await;
    let (dense, _) = upload_bytes(true).await;
    assert!(
        sparse < embedding as u64,
        "sparse {sparse}, embedding {embedding}"
    );
    assert!(
        dense > embedding as u64,
        "dense {dense}, embedding {embedding}"
    );
}
