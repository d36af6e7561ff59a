//! The feedback loop end to end, in one `bloginfer up` process with a Chat
//! Completions server on loopback: comments posted through the blog API get
//! the model's sentiment, the labeler turns them into weak labels (and an
//! author's correction into a human one) in the database, and the next
//! training run's snapshot contains every selected sample in exactly one
//! worker shard, with the count recorded in the run and in the model.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::Path;
use std::time::Duration;

use crate::support::{eventually, request, spawn_listening_with, Answer};
use bloginfer_testkit::ChatServer;
use serde_json::{json, Value};

const LIMIT: Duration = Duration::from_secs(300);

struct Client {
    addr: SocketAddr,
}

impl Client {
    fn call(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Answer {
        let auth = token.map(|t| format!("Token {t}"));
        let body = body.map(|b| b.to_string());
        request(self.addr, method, path, auth.as_deref(), body.as_deref()).expect("request")
    }

    fn ok(&self, method: &str, path: &str, token: Option<&str>, body: Option<Value>) -> Value {
        let answer = self.call(method, path, token, body);
        assert!(
            (200..300).contains(&answer.status),
            "{method} {path}: {} {}",
            answer.status,
            answer.body
        );
        answer.json()
    }

    fn register(&self, name: &str) -> String {
        let user = json!({"user": {"username": name, "email": format!("{name}@example.com"), "password": "correct horse battery"}});
        self.ok("POST", "/api/users", None, Some(user))["user"]["token"]
            .as_str()
            .expect("token")
            .to_string()
    }

    fn login(&self, email: &str, password: &str) -> String {
        let body = json!({"user": {"email": email, "password": password}});
        self.ok("POST", "/api/users/login", None, Some(body))["user"]["token"]
            .as_str()
            .expect("token")
            .to_string()
    }
}

fn admin_login(data: &Path) -> (String, String) {
    let text = std::fs::read_to_string(data.join("admin-login.txt")).expect("admin login");
    let field = |name: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_string())
            .expect("field")
    };
    (field("email:"), field("password:"))
}

#[test]
fn comments_become_training_data_for_the_next_run() {
    let llm = ChatServer::start_in_background();
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("data");
    let path = |p: &Path| p.display().to_string();
    let args: Vec<String> = vec![
        "up".into(),
        "--listen=127.0.0.1:0".into(),
        format!("--addr-file={}", path(&dir.path().join("up.addr"))),
        format!("--data-dir={}", path(&data)),
        format!("--web-dir={}", path(&dir.path().join("no-web"))),
        "--workers=2".into(),
        "--rounds=2".into(),
        "--train-limit=2000".into(),
        "--embed-dim=16".into(),
        "--hidden-dim=16".into(),
        "--vocab-size=3000".into(),
        "--local-lr=0.01".into(),
        "--min-train-interval=0".into(),
        "--train-poll-interval=100ms".into(),
        "--labeler-poll-interval=100ms".into(),
        // Every weak label trains in this test: no review holds, no balancing.
        "--feedback-hold-disagreements=false".into(),
        "--feedback-max-class-ratio=0".into(),
    ];
    let envs = [
        ("LLM_BASE_URL", llm.base_url()),
        ("LLM_MODEL", "mock-llm".to_string()),
        ("LLM_API_KEY", "test-llm-key".to_string()),
        ("LLM_REQUESTS_PER_MINUTE", "0".to_string()),
    ];
    let (_up, addr) = spawn_listening_with(
        &args,
        &envs,
        &dir.path().join("up.addr"),
        &dir.path().join("up.log"),
    );
    let api = Client { addr };

    // A writer, an article, and readers' comments through the blog API.
    let writer = api.register("writer");
    let article = api.ok(
        "POST",
        "/api/articles",
        Some(&writer),
        Some(json!({"article": {"title": "新店开张", "description": "欢迎评论", "body": "说说你的体验", "tagList": []}})),
    );
    let slug = article["article"]["slug"]
        .as_str()
        .expect("slug")
        .to_string();
    let comments: [(&str, &str); 6] = [
        ("reader1", "这家店服务很热情，东西也很好，推荐！"),
        ("reader1", "质量太差了，用了两天就坏了，非常失望"),
        ("reader1", "物流很快，包装完好，好评"),
        ("reader2", "客服态度糟糕，再也不来了，有事打13812345678"),
        (
            "reader2",
            "环境干净，味道不错，满意，详情见 https://example.com/review/1",
        ),
        ("reader2", "今天是星期三"),
    ];
    let mut tokens = HashMap::new();
    let mut ids = Vec::new();
    for (who, body) in comments {
        let token = tokens
            .entry(who)
            .or_insert_with(|| api.register(who))
            .clone();
        let answer = api.ok(
            "POST",
            &format!("/api/articles/{slug}/comments"),
            Some(&token),
            Some(json!({"comment": {"body": body}})),
        );
        ids.push(answer["comment"]["id"].as_i64().expect("id"));
    }
    // Every comment shows the model's sentiment (at once, or after the back-fill).
    eventually("sentiment on every comment", LIMIT, || {
        let list = api.ok("GET", &format!("/api/articles/{slug}/comments"), None, None);
        let all = list["comments"].as_array().cloned().unwrap_or_default();
        (all.len() == 6 && all.iter().all(|c| c["sentiment"]["source"] == "model")).then_some(())
    });
    // An admin corrects the model on the second comment's neighbour: a trusted
    // human label (an article author's correction would wait for review).
    let (email, password) = admin_login(&data);
    let admin = api.login(&email, &password);
    let corrected = api.ok(
        "PUT",
        &format!("/api/articles/{slug}/comments/{}/sentiment", ids[2]),
        Some(&admin),
        Some(json!({"label": "negative"})),
    );
    assert_eq!(corrected["comment"]["sentiment"]["source"], "human");

    // Weak labels land in the database; the admin API shows them.
    let stats = eventually("every comment labelled", LIMIT, || {
        let stats = api.ok("GET", "/v1/feedback/stats", Some(&admin), None);
        (stats["comments"]["pending"] == 0 && stats["total"] == 6).then_some(stats)
    });
    assert_eq!(stats["by_source"]["llm"], 5, "{stats}");
    assert_eq!(stats["by_source"]["human"], 1, "{stats}");
    assert_eq!(stats["by_label"]["neutral"], 1, "{stats}");
    assert_eq!(stats["by_status"]["accepted"], 5, "{stats}");
    assert_eq!(stats["labeler"]["model"], "mock-llm");
    assert_eq!(stats["next_run"]["selected"], 5, "{stats}");
    let listed = api.ok(
        "GET",
        "/v1/feedback/samples?status=accepted&limit=50",
        Some(&admin),
        None,
    );
    assert_eq!(listed["total"], 5);
    let accepted: Vec<Value> = listed["samples"].as_array().cloned().unwrap_or_default();
    let texts: Vec<String> = accepted
        .iter()
        .map(|s| s["text"].as_str().expect("text").to_string())
        .collect();
    assert!(texts.iter().any(|t| t.contains("<phone>")), "{texts:?}");
    assert!(texts.iter().any(|t| t.contains("<url>")), "{texts:?}");
    assert!(texts
        .iter()
        .all(|t| !t.contains("13812345678") && !t.contains("example.com")));
    let human = accepted
        .iter()
        .find(|s| s["source"] == "human")
        .expect("the correction");
    assert_eq!(human["label"], "negative");
    assert_eq!(human["comment_id"], ids[2]);
    let reviewer_only = api.call("GET", "/v1/feedback/stats", Some(&writer), None);
    assert_eq!(reviewer_only.status, 403, "{}", reviewer_only.body);
    let bad = api.call(
        "GET",
        "/v1/feedback/samples?status=maybe",
        Some(&admin),
        None,
    );
    assert_eq!(bad.status, 422, "{}", bad.body);
    assert!(bad.json()["error"]["message"].is_string());

    // The next run trains on them: each in exactly one worker's shard.
    let run = api.ok(
        "POST",
        "/v1/trainings",
        Some(&admin),
        Some(json!({"workers": 2, "rounds": 2})),
    );
    let run_id = run["id"].as_str().expect("run id").to_string();
    let run = eventually("the run to end", LIMIT, || {
        let run = api.ok(
            "GET",
            &format!("/v1/trainings/{run_id}"),
            Some(&admin),
            None,
        );
        matches!(
            run["status"].as_str(),
            Some("succeeded" | "failed" | "cancelled")
        )
        .then_some(run)
    });
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["feedback_samples"], 5, "{run}");
    let run_dir = data.join("runs").join(&run_id);
    let shards: Vec<String> = (0..2)
        .map(|i| {
            std::fs::read_to_string(run_dir.join(format!("worker-{i}")).join("shard.tsv"))
                .expect("shard")
        })
        .collect();
    let mut shard_of_author: HashMap<String, usize> = HashMap::new();
    for sample in &accepted {
        let text = sample["text"].as_str().expect("text");
        let label = if sample["label"] == "positive" { 1 } else { 0 };
        let row = format!("{label}\t{text}");
        let holders: Vec<usize> = (0..2)
            .filter(|&i| shards[i].lines().any(|l| l == row))
            .collect();
        assert_eq!(holders.len(), 1, "{row:?} is in shards {holders:?}");
        let author = sample["shard_key"].as_str().expect("shard key").to_string();
        let shard = *shard_of_author.entry(author).or_insert(holders[0]);
        assert_eq!(shard, holders[0], "one author's samples stay on one worker");
        assert_eq!(sample["used_by_run"], Value::Null, "listed before the run");
    }
    let neutral = "今天是星期三";
    assert!(
        shards.iter().all(|s| !s.contains(neutral)),
        "neutral is never trained on"
    );

    // The samples know the run, and the model knows how much feedback it saw.
    let after = api.ok(
        "GET",
        "/v1/feedback/samples?status=accepted",
        Some(&admin),
        None,
    );
    for sample in after["samples"].as_array().expect("samples") {
        assert_eq!(sample["used_by_run"], run_id.as_str(), "{sample}");
    }
    let version = run["candidate_version"].as_str().expect("candidate");
    let registry = bloginfer_model::Registry::open(data.join("models")).expect("registry");
    let header =
        bloginfer_model::Checkpoint::read_header(&registry.path_of(version).expect("path"))
            .expect("header");
    let recorded = &header.metadata.settings["extra"];
    assert_eq!(recorded["feedback_samples"], 5, "{recorded}");
    assert_eq!(recorded["run_id"], run_id.as_str());

    // An admin reviews the neutral one: it becomes a human label for the next run.
    let rejected = api.ok(
        "GET",
        "/v1/feedback/samples?status=rejected",
        Some(&admin),
        None,
    );
    let neutral_id = rejected["samples"][0]["id"]
        .as_i64()
        .expect("neutral sample");
    let path = format!("/v1/feedback/samples/{neutral_id}");
    let reviewed = api.ok(
        "PUT",
        &path,
        Some(&admin),
        Some(json!({"status": "accepted", "label": "positive"})),
    );
    assert_eq!(reviewed["sample"]["source"], "human");
    assert_eq!(reviewed["sample"]["status"], "accepted");
    assert_eq!(
        api.ok("GET", "/v1/feedback/stats", Some(&admin), None)["next_run"]["selected"],
        6
    );
    let bad = api.call("PUT", &path, Some(&admin), Some(json!({"status": "maybe"})));
    assert_eq!(bad.status, 422, "{}", bad.body);
    let missing = api.call(
        "PUT",
        "/v1/feedback/samples/999999",
        Some(&admin),
        Some(json!({"status": "rejected"})),
    );
    assert_eq!(missing.status, 404, "{}", missing.body);

    // The labeler's calls carried the key, and nothing personal.
    let seen = llm.seen();
    assert!(!seen.is_empty());
    assert!(seen
        .iter()
        .all(|r| r.authorization.as_deref() == Some("Bearer test-llm-key")));
    assert!(seen
        .iter()
        .flat_map(|r| r.comments())
        .all(|t| !t.contains("13812345678")));
    let metrics = api.call("GET", "/metrics", None, None).body;
    assert!(
        metrics.contains("bloginfer_labeler_llm_requests_total{outcome=\"ok\"}"),
        "{metrics}"
    );
}
