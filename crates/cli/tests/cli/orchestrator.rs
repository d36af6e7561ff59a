//! `bloginfer orchestrator` with the local launcher, as processes on loopback:
//! runs are triggered over HTTP, trained by real aggregator and worker
//! processes, judged, promoted or refused; inference (`bloginfer infer`)
//! follows the registry pointer; an orchestrator killed mid-run picks its run
//! up again; the interval, the single active run and admin access hold.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::support::{eventually, request, spawn_listening, Answer, Proc};
use serde_json::{json, Value};

const TOKEN: &str = "orchestrator-test-admin-token-of-32-bytes-or-more";
const ADMIN: &str = "Bearer orchestrator-test-admin-token-of-32-bytes-or-more";
/// Long enough for a small run on a loaded 2-core machine.
const RUN_LIMIT: Duration = Duration::from_secs(300);

struct Orchestrator {
    proc: Option<Proc>,
    addr: SocketAddr,
    dir: PathBuf,
    flags: Vec<String>,
}

impl Orchestrator {
    /// An orchestrator on a small model and part of the corpus, in `dir`.
    fn start(dir: &Path, flags: &[&str]) -> Self {
        let flags: Vec<String> = flags.iter().map(|s| s.to_string()).collect();
        let (proc, addr) = Self::spawn(dir, &flags);
        Self {
            proc: Some(proc),
            addr,
            dir: dir.to_path_buf(),
            flags,
        }
    }

    fn spawn(dir: &Path, flags: &[String]) -> (Proc, SocketAddr) {
        let path = |name: &str| dir.join(name).display().to_string();
        let mut args = vec![
            "--models-dir".to_string(),
            path("models"),
            "orchestrator".into(),
            "--listen=127.0.0.1:0".into(),
            format!("--addr-file={}", path("orchestrator.addr")),
            format!("--database-url=sqlite:{}", path("runs.db")),
            format!("--runs-dir={}", path("runs")),
            format!("--admin-token={TOKEN}"),
            "--train-poll-interval=100ms".into(),
            "--train-limit=2000".into(),
            "--embed-dim=16".into(),
            "--hidden-dim=16".into(),
            "--vocab-size=3000".into(),
            "--local-lr=0.01".into(),
            "--local-epochs=2".into(),
        ];
        args.extend(flags.iter().cloned());
        spawn_listening(
            &args,
            &dir.join("orchestrator.addr"),
            &dir.join("orchestrator.log"),
        )
    }

    fn restart(&mut self, how: Restart) {
        let proc = self.proc.take().expect("running");
        match how {
            Restart::Kill => drop(proc),
            Restart::Terminate => {
                proc.terminate();
            }
        }
        let (proc, addr) = Self::spawn(&self.dir, &self.flags);
        self.proc = Some(proc);
        self.addr = addr;
    }

    fn call(&self, method: &str, path: &str, body: Option<Value>) -> Answer {
        let body = body.map(|b| b.to_string());
        request(self.addr, method, path, Some(ADMIN), body.as_deref()).expect("request")
    }

    fn trigger(&self, body: Value) -> String {
        let answer = self.call("POST", "/v1/trainings", Some(body));
        assert_eq!(answer.status, 202, "{}", answer.body);
        answer.json()["id"].as_str().expect("id").to_string()
    }

    fn run(&self, id: &str) -> Value {
        let answer = self.call("GET", &format!("/v1/trainings/{id}"), None);
        assert_eq!(answer.status, 200, "{}", answer.body);
        answer.json()
    }

    /// Waits for run `id` to end; returns its record.
    fn finished(&self, id: &str) -> Value {
        let start = std::time::Instant::now();
        loop {
            let run = self.run(id);
            let status = run["status"].as_str().unwrap_or_default();
            if matches!(status, "succeeded" | "failed" | "cancelled") {
                return run;
            }
            // The logs live in a tempdir that goes with the test: show them now.
            assert!(
                start.elapsed() < RUN_LIMIT,
                "gave up waiting: run {id} to end: {run}\n--- orchestrator.log\n{}\n--- aggregator.log\n{}",
                tail(&self.log()),
                tail(&std::fs::read_to_string(self.dir.join("runs").join(id).join("aggregator.log")).unwrap_or_default()),
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("orchestrator.log")).unwrap_or_default()
    }
}

enum Restart {
    Kill,
    Terminate,
}

/// The last 60 lines of a log.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines[lines.len().saturating_sub(60)..].join("\n")
}

fn current_version(dir: &Path) -> Option<String> {
    bloginfer_model::Registry::open(dir.join("models"))
        .expect("registry")
        .current()
        .expect("current")
}

/// `bloginfer infer` on the orchestrator's registry, checking it often.
fn start_inference(dir: &Path) -> (Proc, SocketAddr) {
    let path = |name: &str| dir.join(name).display().to_string();
    let args = vec![
        "--models-dir".to_string(),
        path("models"),
        "infer".into(),
        "--listen=127.0.0.1:0".into(),
        format!("--addr-file={}", path("infer.addr")),
        "--reload-interval=100ms".into(),
    ];
    spawn_listening(&args, &dir.join("infer.addr"), &dir.join("infer.log"))
}

fn served_version(addr: SocketAddr) -> Option<String> {
    let answer = request(addr, "GET", "/v1/sentiment/model", None, None).ok()?;
    (answer.status == 200).then(|| answer.json()["version"].as_str().map(String::from))?
}

fn wait_served(addr: SocketAddr, version: &str) {
    eventually(&format!("inference to serve {version}"), RUN_LIMIT, || {
        (served_version(addr).as_deref() == Some(version)).then_some(())
    });
}

#[test]
fn runs_are_judged_then_promoted_or_refused_and_inference_follows_the_pointer() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = Orchestrator::start(dir.path(), &["--min-train-interval=0", "--train-rounds=4"]);
    let (_inference, infer_addr) = start_inference(dir.path());

    // No admin, no API.
    let anonymous = request(o.addr, "POST", "/v1/trainings", None, Some("{}")).expect("request");
    assert_eq!(anonymous.status, 401, "{}", anonymous.body);
    let wrong =
        request(o.addr, "GET", "/v1/trainings", Some("Bearer nope"), None).expect("request");
    assert_eq!(wrong.status, 401);

    // Requests are checked before anything starts.
    for (body, field) in [
        (json!({"workers": 0}), "workers"),
        (json!({"rounds": 100000}), "rounds"),
        (json!({"strategy": "sgd"}), "strategy"),
    ] {
        let answer = o.call("POST", "/v1/trainings", Some(body));
        assert_eq!(answer.status, 422, "{}", answer.body);
        assert!(answer.body.contains(field), "{}", answer.body);
    }
    let unknown = o.call("POST", "/v1/trainings", Some(json!({"epochs": 3})));
    assert_eq!(unknown.status, 422, "{}", unknown.body);

    // 1. A weak first model (one step of FedSGD): nothing to compare with, promoted.
    let first = o.trigger(json!({"strategy": "fedsgd", "rounds": 1}));
    let busy = o.call("POST", "/v1/trainings", Some(json!({})));
    assert_eq!(busy.status, 409, "{}", busy.body);
    let run = o.finished(&first);
    assert_eq!(run["phase"], "promoted", "{run}");
    assert_eq!(run["status"], "succeeded");
    let weak = run["candidate_version"]
        .as_str()
        .expect("candidate")
        .to_string();
    assert_eq!(current_version(dir.path()).as_deref(), Some(weak.as_str()));
    wait_served(infer_addr, &weak);

    // 2. A real run: judged against the weak model, better, promoted.
    let second = o.trigger(json!({}));
    let run = o.finished(&second);
    assert_eq!(run["phase"], "promoted", "{run}");
    assert_eq!(run["previous_version"], weak.as_str());
    let good = run["candidate_version"]
        .as_str()
        .expect("candidate")
        .to_string();
    let (good_acc, weak_acc) = (
        run["candidate_accuracy"].as_f64().expect("accuracy"),
        run["previous_accuracy"].as_f64().expect("accuracy"),
    );
    assert!(good_acc > weak_acc + 0.005, "{run}");
    // Per-round metrics (round 0 is the initial model) and per-worker counts.
    let rounds = run["round_metrics"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 5, "{run}");
    assert_eq!(run["rounds_done"], 4);
    assert!(
        rounds.iter().skip(1).all(|r| r["train_loss"].is_f64()),
        "{run}"
    );
    let shards = run["worker_samples"].as_array().expect("workers");
    assert_eq!(shards.len(), 2, "{run}");
    let total: u64 = shards
        .iter()
        .map(|w| w["samples"].as_u64().unwrap_or(0))
        .sum();
    assert_eq!(total, run["train_samples"].as_u64().expect("samples"));
    assert!(
        shards.iter().all(|w| w["samples"].as_u64() > Some(0)),
        "{run}"
    );
    assert_eq!(current_version(dir.path()).as_deref(), Some(good.as_str()));
    wait_served(infer_addr, &good);

    // 3. A deliberately bad candidate (the weak recipe again): refused.
    let third = o.trigger(json!({"strategy": "fedsgd", "rounds": 1}));
    let run = o.finished(&third);
    assert_eq!(run["phase"], "rejected", "{run}");
    assert_eq!(run["promoted"], false);
    assert!(
        run["decision"]
            .as_str()
            .unwrap_or_default()
            .contains("worse"),
        "{run}"
    );
    assert_eq!(current_version(dir.path()).as_deref(), Some(good.as_str()));
    assert_eq!(served_version(infer_addr).as_deref(), Some(good.as_str()));

    // History, newest first, and the model list.
    let list = o.call("GET", "/v1/trainings", None).json();
    let ids: Vec<&str> = list["trainings"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|t| t["id"].as_str())
        .collect();
    assert_eq!(ids, [third.as_str(), second.as_str(), first.as_str()]);
    assert_eq!(list["active_id"], Value::Null);
    let models = o.call("GET", "/v1/models", None).json();
    assert_eq!(models["current"], good.as_str());
    assert_eq!(
        models["versions"].as_array().map(Vec::len),
        Some(3),
        "{models}"
    );

    // Roll back by promoting the older version; inference follows.
    let back = o.call("POST", &format!("/v1/models/{weak}/promote"), None);
    assert_eq!(back.status, 200, "{}", back.body);
    assert_eq!(current_version(dir.path()).as_deref(), Some(weak.as_str()));
    wait_served(infer_addr, &weak);
    let missing = o.call(
        "POST",
        "/v1/models/19990101T000000000Z-00000000/promote",
        None,
    );
    assert_eq!(missing.status, 404, "{}", missing.body);
    let unknown_run = o.call("GET", "/v1/trainings/run-nope", None);
    assert_eq!(unknown_run.status, 404);
    let over = o.call("POST", &format!("/v1/trainings/{third}/cancel"), None);
    assert_eq!(over.status, 409, "{}", over.body);
}

#[test]
fn an_orchestrator_that_dies_mid_run_picks_the_run_up_again() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut o = Orchestrator::start(dir.path(), &["--min-train-interval=0", "--train-rounds=40"]);
    let id = o.trigger(json!({}));
    let progress = |o: &Orchestrator, past: u64| {
        eventually("rounds to pass", RUN_LIMIT, || {
            let run = o.run(&id);
            assert_ne!(run["status"], "failed", "{run}");
            (run["phase"] == "training" && run["rounds_done"].as_u64() > Some(past))
                .then_some(run["rounds_done"].as_u64().unwrap_or(0))
        })
    };
    let done = progress(&o, 0);

    // Stopped cleanly: its processes stop too, and the new one relaunches the
    // run, whose aggregator resumes from its saved round.
    o.restart(Restart::Terminate);
    let done = progress(&o, done);
    // Killed: its aggregator and workers live on, and the new one follows them.
    o.restart(Restart::Kill);
    let run = o.finished(&id);
    assert_eq!(run["phase"], "promoted", "{run}");
    assert_eq!(run["rounds_done"], 40, "{run}");
    assert!(done >= 2);
    let log = o.log();
    assert_eq!(
        log.matches("resuming a run left unfinished").count(),
        2,
        "{log}"
    );
    assert!(log.contains("relaunching the run"), "{log}");
    let aggregator_log =
        std::fs::read_to_string(dir.path().join("runs").join(&id).join("aggregator.log"))
            .unwrap_or_default();
    assert!(aggregator_log.contains("resum"), "{aggregator_log}");
}

#[test]
fn one_run_at_a_time_and_not_before_the_interval() {
    let dir = tempfile::tempdir().expect("tempdir");
    let o = Orchestrator::start(
        dir.path(),
        &["--min-train-interval=1h", "--train-rounds=200"],
    );
    let id = o.trigger(json!({}));
    let busy = o.call("POST", "/v1/trainings", Some(json!({})));
    assert_eq!(busy.status, 409, "{}", busy.body);
    eventually("the run to train", RUN_LIMIT, || {
        (o.run(&id)["phase"] == "training").then_some(())
    });

    let cancel = o.call("POST", &format!("/v1/trainings/{id}/cancel"), None);
    assert_eq!(cancel.status, 202, "{}", cancel.body);
    let run = o.finished(&id);
    assert_eq!(run["status"], "cancelled", "{run}");
    // Its processes are gone.
    eventually(
        "the run's processes to exit",
        Duration::from_secs(30),
        || (!processes_of(&id)).then_some(()),
    );

    let early = o.call("POST", "/v1/trainings", Some(json!({})));
    assert_eq!(early.status, 429, "{}", early.body);
    let wait: u64 = early
        .header("retry-after")
        .and_then(|v| v.parse().ok())
        .expect("Retry-After");
    assert!(wait > 3000 && wait <= 3600, "Retry-After {wait}");
    let list = o.call("GET", "/v1/trainings", None).json();
    assert!(list["cooldown_seconds"].as_u64() > Some(3000), "{list}");
}

/// Whether a live process has `run_id` on its command line.
fn processes_of(run_id: &str) -> bool {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return false;
    };
    entries.flatten().any(|e| {
        let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
        let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
        !stat.contains(") Z ")
            && cmdline
                .windows(run_id.len())
                .any(|w| w == run_id.as_bytes())
    })
}

#[test]
fn admin_users_of_the_blog_may_use_the_api_and_others_may_not() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).display().to_string();
    std::fs::write(
        dir.path().join("jwt"),
        "a-test-secret-of-at-least-32-bytes-long",
    )
    .expect("secret");
    let (_blog, blog_addr) = spawn_listening(
        &[
            "blog".to_string(),
            "--listen=127.0.0.1:0".into(),
            format!("--addr-file={}", path("blog.addr")),
            format!("--database-url=sqlite:{}", path("runs.db")),
            format!("--jwt-secret-file={}", path("jwt")),
        ],
        &dir.path().join("blog.addr"),
        &dir.path().join("blog.log"),
    );
    let register = |name: &str| {
        let body = json!({"user": {"username": name, "email": format!("{name}@example.test"), "password": "a-long-password"}});
        let answer = request(
            blog_addr,
            "POST",
            "/api/users",
            None,
            Some(&body.to_string()),
        )
        .expect("register");
        assert_eq!(answer.status, 201, "{}", answer.body);
        format!(
            "Token {}",
            answer.json()["user"]["token"].as_str().expect("token")
        )
    };
    // Nobody is an admin by registering; `bloginfer admin` makes one.
    let admin = register("first");
    let reader = register("second");
    let promoted = std::process::Command::new(crate::support::BIN)
        .args([
            "admin",
            &format!("--database-url=sqlite:{}", path("runs.db")),
            "--email=FIRST@example.test",
        ])
        .env_remove("ADMIN_PASSWORD")
        .output()
        .expect("run bloginfer admin");
    assert!(
        promoted.status.success(),
        "{}",
        String::from_utf8_lossy(&promoted.stderr)
    );
    assert!(String::from_utf8_lossy(&promoted.stdout).contains("first@example.test is an admin"));
    let o = Orchestrator::start(dir.path(), &[&format!("--blog-url=http://{blog_addr}")]);

    let as_admin = request(o.addr, "GET", "/v1/trainings", Some(&admin), None).expect("request");
    assert_eq!(as_admin.status, 200, "{}", as_admin.body);
    let as_reader = request(o.addr, "GET", "/v1/models", Some(&reader), None).expect("request");
    assert_eq!(as_reader.status, 403, "{}", as_reader.body);
    let forged = request(
        o.addr,
        "GET",
        "/v1/models",
        Some("Token forged.jwt.value"),
        None,
    )
    .expect("request");
    assert_eq!(forged.status, 401, "{}", forged.body);
    // The probes need nobody.
    let health = request(o.addr, "GET", "/healthz", None, None).expect("request");
    assert_eq!(health.status, 200);
    let ready = request(o.addr, "GET", "/readyz", None, None).expect("request");
    assert_eq!(ready.status, 200, "{}", ready.body);
    let metrics = request(o.addr, "GET", "/metrics", None, None).expect("request");
    assert!(
        metrics.body.contains(
            "bloginfer_http_requests_total{service=\"orchestrator\",route=\"/v1/models\""
        ),
        "{}",
        metrics.body
    );
}

/// A short admin token, or the example value of the manifests, stops the
/// orchestrator at start-up with a message naming the rule, never the token.
#[test]
fn a_weak_admin_token_stops_the_start() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = |name: &str| dir.path().join(name).display().to_string();
    for token in ["change-me", "a-token-of-31-bytes-is-too-shrt"] {
        let started = std::process::Command::new(crate::support::BIN)
            .args([
                "--models-dir",
                &path("models"),
                "orchestrator",
                "--listen=127.0.0.1:0",
                &format!("--database-url=sqlite:{}", path("runs.db")),
                &format!("--runs-dir={}", path("runs")),
            ])
            .env("ADMIN_TOKEN", token)
            .output()
            .expect("run bloginfer orchestrator");
        let stderr = String::from_utf8_lossy(&started.stderr);
        assert!(!started.status.success(), "{token:?} was accepted");
        assert!(stderr.contains("ADMIN_TOKEN"), "{stderr}");
        assert!(!stderr.contains(token), "the token leaks: {stderr}");
    }
}
