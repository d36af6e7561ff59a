//! Federated training as real processes on loopback: the launcher, aggregator
//! restarts, dying workers, hostile workers, and what crosses the wire.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bloginfer_fl::launcher::{prepare, RunData, Sharding};
use bloginfer_fl::partition::Partition;
use bloginfer_fl::protocol::LocalSettings;
use bloginfer_fl::spec::{RunDir, RunShape, RunSpec, Tuning};
use bloginfer_fl::strategy::{Aggregation, StrategyKind, StrategyOptions};
use bloginfer_fl::wire::WireDtype;
use bloginfer_model::data::{self, Example};
use bloginfer_model::train::build_vocab;
use bloginfer_model::{ModelConfig, Registry, TrainConfig};
use bloginfer_text::{Encoder, Granularity};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_bloginfer");
/// Guards against hangs; never a performance assertion.
const PATIENCE: Duration = Duration::from_secs(240);

/// A child process killed when dropped.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Proc {
    fn wait_exit(&mut self) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status;
            }
            assert!(start.elapsed() < PATIENCE, "process did not exit");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn spawn(args: &[String], log: &Path) -> Proc {
    let out = std::fs::File::create(log).expect("log file");
    let err = out.try_clone().expect("log handle");
    let child = Command::new(BIN)
        .args(args)
        .env_remove("MODEL_DIR")
        .env_remove("LISTEN_ADDR")
        .env("RUST_LOG", "info")
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .spawn()
        .expect("start bloginfer");
    Proc(child)
}

/// A prepared run directory: shards, validation data, vocabulary, model
/// config, tokens and `run.json`.
struct Fed {
    dir: tempfile::TempDir,
    run: RunDir,
    token: String,
}

fn corpus_split(train_n: usize) -> (Vec<Example>, Vec<Example>) {
    let (train, val) = data::split(
        data::bundled_corpus(),
        data::VALIDATION_FRACTION,
        data::VALIDATION_SEED,
    );
    (train.into_iter().take(train_n).collect(), val)
}

fn small_model() -> ModelConfig {
    ModelConfig {
        vocab_size: 3000,
        embed_dim: 32,
        hidden_dim: 32,
        max_len: 128,
        ..ModelConfig::default()
    }
}

/// What the process tests train with: two local epochs at a brisk rate,
/// short leases and lingering.
fn tuning() -> Tuning {
    Tuning {
        options: StrategyOptions {
            local_epochs: Some(2),
            local_lr: Some(0.01),
            ..StrategyOptions::default()
        },
        local: LocalSettings {
            batch_size: 32,
            clip_norm: TrainConfig::default().clip_norm,
            token_dropout: TrainConfig::default().token_dropout,
            seed: TrainConfig::default().seed,
        },
        min_clients: None,
        min_available: None,
        fraction: 1.0,
        round_deadline: Duration::from_secs(600),
        client_lease: Duration::from_secs(5),
        max_update_norm: 0.0,
        adaptive_norm_multiple: 3.0,
        privacy: Default::default(),
        upload_dtype: WireDtype::F32,
        embed_init_std: TrainConfig::default().embed_init_std,
    }
}

impl Fed {
    /// A run of `workers` over the first `train_n` training examples; `edit`
    /// adjusts its description (rounds, deadlines, aggregation, ...).
    fn new(workers: usize, train_n: usize, edit: impl FnOnce(&mut RunSpec)) -> Self {
        let dir = tempfile::tempdir().expect("tempdir");
        let (train, validation) = corpus_split(train_n);
        let model = small_model();
        let vocab = build_vocab(&train, Granularity::Word, 2, model.vocab_size);
        let run = RunDir::new(dir.path().join("run"));
        let mut spec = tuning()
            .spec(RunShape {
                run_id: "process-test".into(),
                strategy: StrategyKind::FedAvg,
                rounds: 3,
                workers,
                promote: true,
                linger: Duration::from_secs(5),
                data_fingerprint: None,
                settings: Value::Null,
            })
            .expect("spec");
        edit(&mut spec);
        let data = RunData {
            train: &train,
            validation: &validation,
            vocab: &vocab,
            model: &model,
        };
        let sharding = Sharding {
            workers,
            partition: Partition::Iid,
            seed: 42,
        };
        prepare(&run, &data, sharding, spec).expect("prepare the run");
        let token = run.read_token().expect("token");
        Self { dir, run, token }
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn aggregator(&self, listen: &str, log: &str) -> (Proc, SocketAddr) {
        let addr_file = self.path("aggregator.addr");
        let _ = std::fs::remove_file(&addr_file);
        let s = |p: &Path| p.display().to_string();
        let args: Vec<String> = vec![
            "--models-dir".into(),
            s(&self.path("models")),
            "aggregator".into(),
            format!("--run-dir={}", s(self.run.path())),
            format!("--listen={listen}"),
            format!("--addr-file={}", s(&addr_file)),
        ];
        let mut proc = spawn(&args, &self.path(log));
        let start = Instant::now();
        let addr = loop {
            if let Ok(text) = std::fs::read_to_string(&addr_file) {
                if let Ok(addr) = text.trim().parse() {
                    break addr;
                }
            }
            if let Some(status) = proc.0.try_wait().expect("try_wait") {
                panic!("aggregator exited at start ({status}):\n{}", self.log(log));
            }
            assert!(start.elapsed() < PATIENCE, "aggregator did not start");
            std::thread::sleep(Duration::from_millis(20));
        };
        (proc, addr)
    }

    fn worker(&self, url: &str, i: usize, fault: &str) -> Proc {
        let args: Vec<String> = vec![
            "worker".into(),
            format!("--aggregator={url}"),
            format!("--worker-dir={}", self.run.worker(&i.to_string()).display()),
            format!("--fault={fault}"),
            "--max-unreachable=60s".into(),
        ];
        spawn(&args, &self.path(&format!("worker-{i}.log")))
    }

    fn log(&self, name: &str) -> String {
        std::fs::read_to_string(self.path(name)).unwrap_or_default()
    }

    fn result(&self) -> Value {
        let raw = std::fs::read_to_string(self.run.result()).expect("result file");
        serde_json::from_str(&raw).expect("result JSON")
    }

    fn status(&self, addr: SocketAddr) -> Option<Value> {
        let (code, body) = http_get(addr, "/v1/status", &self.token)?;
        (code == 200)
            .then(|| serde_json::from_str(&body).ok())
            .flatten()
    }

    fn wait_for_status(
        &self,
        addr: SocketAddr,
        what: &str,
        pred: impl Fn(&Value) -> bool,
    ) -> Value {
        let start = Instant::now();
        loop {
            if let Some(s) = self.status(addr) {
                if pred(&s) {
                    return s;
                }
            }
            assert!(start.elapsed() < PATIENCE, "never saw {what}");
            std::thread::sleep(Duration::from_millis(25));
        }
    }
}

/// A GET over plain HTTP/1.1 (the aggregator speaks HTTP/1.1 and h2c).
fn http_get(addr: SocketAddr, path: &str, token: &str) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

fn finished_rounds(status: &Value) -> Vec<u64> {
    status["history"]
        .as_array()
        .map(|h| h.iter().filter_map(|r| r["round"].as_u64()).collect())
        .unwrap_or_default()
}

fn accuracy(record: &Value) -> f64 {
    record["val_accuracy"]
        .as_f64()
        .expect("validation accuracy")
}

fn history(result: &Value) -> Vec<Value> {
    result["history"].as_array().cloned().unwrap_or_default()
}

#[test]
fn fl_run_trains_two_workers_for_three_rounds_and_stores_the_model() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    let work = dir.path().join("work");
    let out = Command::new(BIN)
        .args(["--models-dir", models.to_str().expect("utf-8")])
        .args([
            "fl",
            "run",
            "--workers",
            "2",
            "--rounds",
            "3",
            "--partition",
            "iid",
            "--strategy",
            "fedavg",
        ])
        .args([
            "--limit",
            "2000",
            "--embed-dim",
            "32",
            "--hidden-dim",
            "32",
            "--vocab-size",
            "3000",
        ])
        .args([
            "--local-epochs",
            "2",
            "--local-lr",
            "0.01",
            "--work-dir",
            work.to_str().expect("utf-8"),
        ])
        .env_remove("MODEL_DIR")
        .output()
        .expect("run bloginfer fl run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fl run failed: {stderr}");
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let registry = Registry::open(&models).expect("registry");
    assert_eq!(
        registry.current().expect("current").as_deref(),
        Some(version.as_str())
    );
    let checkpoint = registry.load(&version).expect("load the new version");
    assert_eq!(checkpoint.metadata.method, "federated");
    let records = checkpoint.metadata.settings["federated"]["round_records"]
        .as_array()
        .cloned()
        .expect("round records");
    let rounds: Vec<u64> = records.iter().filter_map(|r| r["round"].as_u64()).collect();
    assert_eq!(rounds, vec![0, 1, 2, 3]);
    assert!(records[1..].iter().all(|r| r["clients"] == 2));
    let (first, last) = (accuracy(&records[0]), accuracy(&records[3]));
    assert!(last > first + 0.05, "validation accuracy {first} -> {last}");
    let metrics = checkpoint.metadata.metrics.expect("final metrics");
    assert!((metrics.accuracy - last).abs() < 1e-9);
    assert_eq!(checkpoint.metadata.history.len(), 3);
    assert!(
        !work.join("worker-0").join("shard.tsv").exists(),
        "shards are removed after a successful run"
    );
    assert!(
        work.join("run.json").is_file(),
        "the run is described as data"
    );
    assert!(work.join("aggregator.log").exists() && work.join("worker-1.log").exists());
}

#[test]
fn a_killed_aggregator_resumes_without_redoing_finished_rounds() {
    let fed = Fed::new(2, 2000, |s| s.rounds.rounds = 6);
    let (mut aggregator, addr) = fed.aggregator("127.0.0.1:0", "aggregator-1.log");
    let url = format!("http://{addr}");
    let mut workers: Vec<Proc> = (0..2).map(|i| fed.worker(&url, i, "none")).collect();
    let seen = fed.wait_for_status(addr, "round 2 finished", |s| {
        finished_rounds(s).contains(&2)
    });
    aggregator.0.kill().expect("SIGKILL the aggregator");
    aggregator.0.wait().expect("reap");
    let before: Vec<Value> = history(&seen);

    let (mut restarted, _) = fed.aggregator(&addr.to_string(), "aggregator-2.log");
    assert!(
        restarted.wait_exit().success(),
        "restarted aggregator failed:\n{}",
        fed.log("aggregator-2.log")
    );
    for (i, w) in workers.iter_mut().enumerate() {
        assert!(
            w.wait_exit().success(),
            "worker {i} failed:\n{}",
            fed.log(&format!("worker-{i}.log"))
        );
    }
    assert!(fed
        .log("aggregator-2.log")
        .contains("resuming from saved state"));
    let result = fed.result();
    let after = history(&result);
    let rounds: Vec<u64> = after.iter().filter_map(|r| r["round"].as_u64()).collect();
    assert_eq!(
        rounds,
        vec![0, 1, 2, 3, 4, 5, 6],
        "every round exactly once"
    );
    for record in &before {
        let round = usize::try_from(record["round"].as_u64().expect("round")).unwrap();
        assert_eq!(
            &after[round], record,
            "round {round} was redone after the restart"
        );
    }
    assert!(result["version"].is_string());
}

#[test]
fn the_run_completes_when_a_worker_dies_mid_round() {
    let fed = Fed::new(3, 2400, |s| {
        s.rounds.rounds = 4;
        s.rounds.min_clients = 2;
        s.rounds.min_available = 2;
        s.rounds.deadline_seconds = 3.0;
    });
    let (mut aggregator, addr) = fed.aggregator("127.0.0.1:0", "aggregator.log");
    let url = format!("http://{addr}");
    let mut workers: Vec<Proc> = (0..3).map(|i| fed.worker(&url, i, "none")).collect();
    fed.wait_for_status(addr, "round 2 training", |s| {
        s["round"] == 2 && s["phase"] == "training"
    });
    workers[2].0.kill().expect("kill worker 2");
    assert!(
        aggregator.wait_exit().success(),
        "aggregator failed:\n{}",
        fed.log("aggregator.log")
    );
    for (i, worker) in workers.iter_mut().take(2).enumerate() {
        assert!(worker.wait_exit().success(), "worker {i} failed");
    }
    let after = history(&fed.result());
    let rounds: Vec<u64> = after.iter().filter_map(|r| r["round"].as_u64()).collect();
    assert_eq!(rounds, vec![0, 1, 2, 3, 4]);
    assert_eq!(
        after[4]["clients"], 2,
        "the last round aggregates the two survivors"
    );
    assert!(accuracy(&after[4]) > accuracy(&after[0]));
}

#[test]
fn a_worker_that_crashes_and_restarts_rejoins_the_current_round() {
    let fed = Fed::new(3, 2400, |s| s.rounds.deadline_seconds = 60.0);
    let (mut aggregator, addr) = fed.aggregator("127.0.0.1:0", "aggregator.log");
    let url = format!("http://{addr}");
    let mut workers: Vec<Proc> = (0..3).map(|i| fed.worker(&url, i, "none")).collect();
    fed.wait_for_status(addr, "round 2 training", |s| {
        s["round"] == 2 && s["phase"] == "training"
    });
    workers[2].0.kill().expect("kill worker 2");
    workers[2].0.wait().expect("reap");
    workers[2] = fed.worker(&url, 2, "none");
    assert!(
        aggregator.wait_exit().success(),
        "aggregator failed:\n{}",
        fed.log("aggregator.log")
    );
    for (i, worker) in workers.iter_mut().enumerate() {
        assert!(worker.wait_exit().success(), "worker {i} failed");
    }
    let after = history(&fed.result());
    // min-clients 3 and a long deadline: every round needed the restarted worker.
    assert!(after[1..].iter().all(|r| r["clients"] == 3), "{after:?}");
    assert!(fed.log("worker-2.log").contains("update accepted round=3"));
}

#[test]
fn nan_and_oversized_updates_are_refused_and_counted() {
    let fed = Fed::new(4, 2000, |s| {
        s.rounds.min_clients = 2;
        s.rounds.min_available = 4;
        s.max_update_norm = 200.0;
    });
    let (mut aggregator, addr) = fed.aggregator("127.0.0.1:0", "aggregator.log");
    let url = format!("http://{addr}");
    let faults = ["none", "none", "nan", "scale:1000"];
    let _workers: Vec<Proc> = faults
        .iter()
        .enumerate()
        .map(|(i, f)| fed.worker(&url, i, f))
        .collect();
    fed.wait_for_status(addr, "round 1 finished", |s| {
        finished_rounds(s).contains(&1)
    });
    let (_, metrics) = http_get(addr, "/metrics", &fed.token).expect("metrics");
    for reason in ["non_finite", "norm_exceeded"] {
        let line = metrics
            .lines()
            .find(|l| {
                l.starts_with(&format!(
                    "bloginfer_fl_updates_rejected_total{{reason=\"{reason}\"}}"
                ))
            })
            .unwrap_or_else(|| panic!("no {reason} counter in\n{metrics}"));
        let count: f64 = line
            .rsplit(' ')
            .next()
            .and_then(|v| v.parse().ok())
            .expect("count");
        assert!(count >= 1.0, "{line}");
    }
    assert!(
        aggregator.wait_exit().success(),
        "aggregator failed:\n{}",
        fed.log("aggregator.log")
    );
    let after = history(&fed.result());
    for record in &after[1..] {
        assert_eq!(
            record["clients"], 2,
            "only the honest workers are averaged: {record}"
        );
        assert_eq!(record["rejected"], 2, "{record}");
    }
    assert!(accuracy(&after[3]) > accuracy(&after[0]) + 0.05);
}

/// Eight honest workers and one attacker: coordinate-wise robust statistics
/// are biased by one order statistic under attack, which matters less the
/// more honest updates there are.
const WORKERS: usize = 9;

fn run_nine(aggregation: &str, attacker: bool, norm_multiple: f64) -> f64 {
    let aggregation: Aggregation = aggregation.parse().expect("aggregation");
    let fed = Fed::new(WORKERS, 5400, |s| {
        s.strategy.aggregation = aggregation;
        s.rounds.rounds = 10;
        s.adaptive_norm_multiple = norm_multiple;
    });
    let (mut aggregator, addr) = fed.aggregator("127.0.0.1:0", "aggregator.log");
    let url = format!("http://{addr}");
    // The attacker sends its update negated and magnified: enough to cancel
    // the eight honest updates under a plain mean.
    let _workers: Vec<Proc> = (0..WORKERS)
        .map(|i| {
            fed.worker(
                &url,
                i,
                if attacker && i == 0 {
                    "sign-flip:8"
                } else {
                    "none"
                },
            )
        })
        .collect();
    assert!(
        aggregator.wait_exit().success(),
        "aggregator failed:\n{}",
        fed.log("aggregator.log")
    );
    let after = history(&fed.result());
    accuracy(after.last().expect("rounds"))
}

#[test]
fn median_and_trimmed_mean_resist_a_sign_flipping_worker() {
    let off = 0.0;
    let default = bloginfer_fl::bounds::DEFAULT_MULTIPLE;
    let clean_mean = run_nine("mean", false, off);
    let attacked_mean = run_nine("mean", true, off);
    let mut report = format!("mean: clean {clean_mean:.4}, attacked {attacked_mean:.4}");
    // The attack is real: it wrecks the plain mean when nothing bounds norms.
    assert!(attacked_mean < clean_mean - 0.05, "{report}");
    // The default adaptive bound takes most of its force away.
    let bounded_mean = run_nine("mean", true, default);
    report += &format!(", attacked with the default norm bound {bounded_mean:.4}");
    assert!(bounded_mean > attacked_mean + 0.02, "{report}");
    for robust in ["median", "trimmed-mean:0.3"] {
        let clean = run_nine(robust, false, default);
        let attacked = run_nine(robust, true, default);
        report += &format!("; {robust}: clean {clean:.4}, attacked {attacked:.4}");
        assert!(attacked >= clean - 0.01, "{report}");
    }
    eprintln!("{report}");
}

/// Forwards loopback connections to `upstream`, recording what clients send.
fn recording_proxy(upstream: SocketAddr) -> (SocketAddr, Arc<Mutex<Vec<Vec<u8>>>>) {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
    let addr = listener.local_addr().expect("proxy address");
    let captured = Arc::new(Mutex::new(Vec::new()));
    let sink = captured.clone();
    std::thread::spawn(move || {
        for client in listener.incoming().flatten() {
            let Ok(server) = TcpStream::connect(upstream) else {
                continue;
            };
            let (mut c_read, mut s_write) = (
                client.try_clone().expect("clone"),
                server.try_clone().expect("clone"),
            );
            let (mut s_read, mut c_write) = (server, client);
            let sink = sink.clone();
            std::thread::spawn(move || {
                let mut buf = [0u8; 65536];
                let mut seen = Vec::new();
                while let Ok(n) = c_read.read(&mut buf) {
                    if n == 0 || s_write.write_all(&buf[..n]).is_err() {
                        break;
                    }
                    seen.extend_from_slice(&buf[..n]);
                }
                sink.lock().expect("lock").push(seen);
                let _ = s_write.shutdown(std::net::Shutdown::Write);
            });
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut s_read, &mut c_write);
                let _ = c_write.shutdown(std::net::Shutdown::Write);
            });
        }
    });
    (addr, captured)
}

fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    !needle.is_empty() && haystack.windows(needle.len()).any(|w| w == needle)
}

#[test]
fn nothing_a_worker_sends_contains_its_texts_or_token_ids() {
    let fed = Fed::new(2, 1200, |s| s.rounds.rounds = 2);
    let (mut aggregator, addr) = fed.aggregator("127.0.0.1:0", "aggregator.log");
    let (proxy, captured) = recording_proxy(addr);
    let mut spy = fed.worker(&format!("http://{proxy}"), 0, "none");
    let _other = fed.worker(&format!("http://{addr}"), 1, "none");
    assert!(
        aggregator.wait_exit().success(),
        "aggregator failed:\n{}",
        fed.log("aggregator.log")
    );
    assert!(spy.wait_exit().success());
    let sent: Vec<u8> = captured.lock().expect("lock").concat();
    assert!(
        contains(&sent, b"bloginfer-fl/update"),
        "the capture must hold the update bodies"
    );
    let shard = data::read_tsv(&fed.run.worker("0").join("shard.tsv")).expect("shard");
    let vocab: bloginfer_text::Vocab =
        serde_json::from_str(&std::fs::read_to_string(fed.run.vocab()).expect("vocab"))
            .expect("vocab JSON");
    let encoder = Encoder::new(vocab, small_model().max_len);
    let mut checked = 0;
    for e in shard.iter().filter(|e| e.text.chars().count() >= 4) {
        assert!(
            !contains(&sent, e.text.as_bytes()),
            "shard text leaked: {}",
            e.text
        );
        let ids = encoder.encode(&e.text);
        if ids.len() >= 4 {
            let bytes: Vec<u8> = ids[..4].iter().flat_map(|id| id.to_le_bytes()).collect();
            assert!(!contains(&sent, &bytes), "token ids of {:?} leaked", e.text);
        }
        checked += 1;
    }
    assert!(checked > 500, "checked only {checked} texts");
}

#[test]
fn ctrl_c_on_fl_run_stops_the_aggregator_and_every_worker() {
    let dir = tempfile::tempdir().expect("tempdir");
    let work = dir.path().join("interrupted-run");
    let mut launcher = Command::new(BIN)
        .args([
            "--models-dir",
            dir.path().join("models").to_str().expect("utf-8"),
        ])
        .args([
            "fl",
            "run",
            "--workers",
            "2",
            "--rounds",
            "50",
            "--limit",
            "2000",
        ])
        .args([
            "--embed-dim",
            "32",
            "--hidden-dim",
            "32",
            "--vocab-size",
            "3000",
        ])
        .arg("--work-dir")
        .arg(&work)
        .env_remove("MODEL_DIR")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start fl run");
    // Our children are the processes whose command line names this run's files.
    let launcher_pid = launcher.id().to_string();
    let children = || -> Vec<String> {
        let out = Command::new("pgrep")
            .args(["-f", work.to_str().expect("utf-8")])
            .output()
            .expect("pgrep");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter(|p| *p != launcher_pid)
            .map(str::to_string)
            .collect()
    };
    let start = Instant::now();
    while children().len() < 3 {
        assert!(
            start.elapsed() < PATIENCE,
            "aggregator and workers never all started"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let sent = Command::new("kill")
        .args(["-INT", &launcher.id().to_string()])
        .status()
        .expect("kill");
    assert!(sent.success());
    let status = launcher.wait().expect("wait");
    assert!(!status.success(), "an interrupted run is a failure");
    let mut stderr = String::new();
    if let Some(mut e) = launcher.stderr.take() {
        let _ = e.read_to_string(&mut stderr);
    }
    assert!(stderr.contains("interrupted"), "{stderr}");
    let start = Instant::now();
    while !children().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "children left behind: {:?}",
            children()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `fl run` with secure aggregation and differential privacy, as an ML engineer
/// types it: every round is aggregated from masked inputs, and the stored
/// model and the run's result carry the privacy spent.
#[test]
fn fl_run_with_secure_aggregation_and_dp_reports_epsilon_and_delta() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    let work = dir.path().join("work");
    let out = Command::new(BIN)
        .args(["--models-dir", models.to_str().expect("utf-8")])
        .args([
            "fl",
            "run",
            "--workers",
            "3",
            "--rounds",
            "2",
            "--limit",
            "900",
        ])
        .args([
            "--embed-dim",
            "16",
            "--hidden-dim",
            "16",
            "--vocab-size",
            "1500",
        ])
        .args([
            "--secure-aggregation",
            "--dp-noise-multiplier",
            "0.8",
            "--dp-clip",
            "1.0",
        ])
        .args(["--work-dir", work.to_str().expect("utf-8")])
        .env_remove("MODEL_DIR")
        .output()
        .expect("run bloginfer fl run");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "fl run failed: {stderr}");
    let result: Value =
        serde_json::from_slice(&std::fs::read(work.join("result.json")).expect("result.json"))
            .expect("result JSON");
    assert_eq!(result["secure_aggregation"], true);
    let epsilon = result["epsilon"].as_f64().expect("epsilon");
    assert!(epsilon.is_finite() && epsilon > 0.0, "{result}");
    assert_eq!(result["delta"].as_f64(), Some(1e-5));
    let rounds = history(&result);
    assert!(
        rounds[1..]
            .iter()
            .all(|r| r["secure"] == true && r["clients"] == 3),
        "{rounds:?}"
    );
    let version = String::from_utf8_lossy(&out.stdout).trim().to_string();
    let show = Command::new(BIN)
        .args(["--models-dir", models.to_str().expect("utf-8")])
        .args(["models", "show", &version])
        .output()
        .expect("models show");
    let shown: Value = serde_json::from_slice(&show.stdout).expect("models show JSON");
    assert_eq!(shown["epsilon"].as_f64(), Some(epsilon));
    assert_eq!(shown["delta"].as_f64(), Some(1e-5));
}

#[test]
fn secure_aggregation_with_a_robust_aggregate_is_refused_with_a_clear_message() {
    let out = Command::new(BIN)
        .args([
            "fl",
            "run",
            "--secure-aggregation",
            "--aggregation",
            "median",
        ])
        .env_remove("MODEL_DIR")
        .output()
        .expect("run bloginfer fl run");
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--aggregation mean only"), "{stderr}");
}

/// A POST of JSON over plain HTTP/1.1.
fn http_post_json(
    addr: SocketAddr,
    path: &str,
    token: &str,
    body: &Value,
) -> Option<(u16, String)> {
    let mut stream = TcpStream::connect(addr).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let body = body.to_string();
    let request = format!(
        "POST {path} HTTP/1.1\r\nHost: {addr}\r\nAuthorization: Bearer {token}\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).ok()?;
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).ok()?;
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n")?;
    let status = head.split_whitespace().nth(1)?.parse().ok()?;
    Some((status, body.to_string()))
}

/// With per-worker credentials, a worker's credential (say, of a compromised
/// pod) cannot register Sybils or speak for the other worker, and the run key
/// is no worker at all; the real workers then finish the run undisturbed.
#[test]
fn a_stolen_worker_credential_cannot_add_sybils_or_impersonate() {
    let fed = Fed::new(2, 600, |s| s.rounds.rounds = 1);
    let (mut aggregator, addr) = fed.aggregator("127.0.0.1:0", "aggregator.log");
    let stolen = std::fs::read_to_string(fed.run.worker("0").join("token")).expect("credential");
    let stolen = stolen.trim();
    let samples = |id: &str| {
        let spec: Value = serde_json::from_slice(&std::fs::read(fed.run.spec()).expect("run.json"))
            .expect("spec");
        spec["workers"]
            .as_array()
            .and_then(|w| w.iter().find(|w| w["id"] == id))
            .map_or(1, |w| w["samples"].as_u64().unwrap_or(1))
    };
    let register = |token: &str, id: &str| {
        let body = serde_json::json!({"worker_id": id, "samples": samples(id)});
        let (code, body) = http_post_json(addr, "/v1/register", token, &body).expect("answer");
        let body: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        (
            code,
            body["error"]["code"]
                .as_str()
                .unwrap_or_default()
                .to_string(),
        )
    };
    for i in 0..300 {
        assert_eq!(
            register(stolen, &format!("sybil-{i}")),
            (403, "impersonation".into())
        );
    }
    assert_eq!(register(stolen, "1"), (403, "impersonation".into()));
    assert_eq!(register(&fed.token, "0"), (403, "not_a_worker".into()));
    let url = format!("http://{addr}");
    let mut workers: Vec<Proc> = (0..2).map(|i| fed.worker(&url, i, "none")).collect();
    assert!(
        aggregator.wait_exit().success(),
        "{}",
        fed.log("aggregator.log")
    );
    for worker in &mut workers {
        assert!(worker.wait_exit().success());
    }
    let rounds = history(&fed.result());
    let ids: Vec<&str> = rounds[1]["worker_samples"]
        .as_array()
        .expect("worker samples")
        .iter()
        .filter_map(|w| w[0].as_str())
        .collect();
    assert_eq!(ids, vec!["0", "1"]);
}

/// Secure aggregation with real processes: a worker killed (SIGKILL) right
/// after its share exchange, before its masked input, does not lose the round:
/// the survivors reveal its masking key's shares and the round is unmasked.
#[test]
fn a_worker_killed_after_the_share_exchange_does_not_lose_a_secure_round() {
    let fed = Fed::new(3, 2400, |s| {
        s.rounds.rounds = 1;
        s.rounds.min_clients = 2;
        s.rounds.min_available = 3;
        s.rounds.deadline_seconds = 20.0;
        s.privacy.secure_aggregation = true;
    });
    let (mut aggregator, addr) = fed.aggregator("127.0.0.1:0", "aggregator.log");
    let url = format!("http://{addr}");
    let mut workers: Vec<Proc> = (0..3).map(|i| fed.worker(&url, i, "none")).collect();
    let start = Instant::now();
    while !fed
        .log("worker-2.log")
        .contains("secure shares sent round=1")
    {
        assert!(start.elapsed() < PATIENCE, "worker 2 never sent its shares");
        std::thread::sleep(Duration::from_millis(5));
    }
    workers[2].0.kill().expect("kill worker 2");
    workers[2].0.wait().expect("reap");
    assert!(
        aggregator.wait_exit().success(),
        "aggregator failed:\n{}",
        fed.log("aggregator.log")
    );
    let rounds = history(&fed.result());
    assert_eq!(rounds.len(), 2, "{rounds:?}");
    // Round 1 went on with the two survivors (worker 2 sent shares, then no masked input).
    assert_eq!(rounds[1]["clients"], 2, "{rounds:?}");
    assert_eq!(rounds[1]["secure"], true);
    assert!(!fed
        .log("worker-2.log")
        .contains("masked update accepted round=1"));
    for worker in workers.iter_mut().take(2) {
        assert!(worker.wait_exit().success());
    }
}
