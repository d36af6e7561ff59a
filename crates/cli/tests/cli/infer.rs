//! `bloginfer infer` as a process: its answers equal `bloginfer predict` for
//! the same checkpoint, and SIGTERM drains requests in flight.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Proc, BIN};
use bloginfer_model::checkpoint::Checkpoint;
use bloginfer_model::{ModelConfig, Registry, SentimentModel, TrainingMetadata};
use bloginfer_text::VocabBuilder;
use rand::rngs::StdRng;
use rand::SeedableRng;
use serde_json::Value;

const TEXTS: [&str; 4] = [
    "这家酒店干净整洁，服务也很热情，下次还会再来",
    "质量太差了，用了两天就坏了，非常失望",
    "物流很快，包装完好，好评",
    "一般般",
];

fn publish(models: &Path) -> String {
    let corpus = bloginfer_model::data::bundled_corpus();
    let mut builder = VocabBuilder::new();
    for e in corpus.iter().take(500) {
        for w in bloginfer_text::Tokenizer::shared().tokenize(&bloginfer_text::normalize(&e.text)) {
            builder.add(&w);
        }
    }
    let vocab = builder.build(1, 5000);
    let config = ModelConfig {
        vocab_size: vocab.len(),
        embed_dim: 32,
        hidden_dim: 32,
        ..ModelConfig::default()
    };
    let model = SentimentModel::new(config, &mut StdRng::seed_from_u64(9)).expect("model");
    let checkpoint =
        Checkpoint::from_model(&model, vocab, TrainingMetadata::default()).expect("checkpoint");
    let registry = Registry::open(models).expect("registry");
    let version = registry.publish(&checkpoint).expect("publish");
    registry.set_current(&version).expect("promote");
    version
}

fn start(models: &Path, dir: &Path) -> (Proc, SocketAddr) {
    let addr_file = dir.join("infer.addr");
    let log = std::fs::File::create(dir.join("infer.log")).expect("log");
    let child = Command::new(BIN)
        .args([
            "--models-dir",
            models.to_str().expect("utf-8"),
            "infer",
            "--listen",
            "127.0.0.1:0",
        ])
        .arg("--addr-file")
        .arg(&addr_file)
        .env_remove("LISTEN_ADDR")
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start bloginfer infer");
    let proc = Proc(child);
    let start = Instant::now();
    loop {
        if let Some(addr) = std::fs::read_to_string(&addr_file)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return (proc, addr);
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "infer did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn post(addr: SocketAddr, path: &str, body: &str) -> std::io::Result<(u16, String)> {
    let answer = crate::support::request(addr, "POST", path, None, Some(body))?;
    Ok((answer.status, answer.body))
}

#[test]
fn http_answers_equal_bloginfer_predict_for_the_same_checkpoint() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    let version = publish(&models);
    let (_infer, addr) = start(&models, dir.path());

    let out = Command::new(BIN)
        .args([
            "--models-dir",
            models.to_str().expect("utf-8"),
            "predict",
            "--json",
        ])
        .args(TEXTS)
        .output()
        .expect("run predict");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let cli: Vec<Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("JSON line"))
        .collect();
    assert_eq!(cli.len(), TEXTS.len());
    for (text, expected) in TEXTS.iter().zip(&cli) {
        let (status, body) = post(
            addr,
            "/v1/sentiment",
            &serde_json::json!({ "text": text }).to_string(),
        )
        .expect("request");
        assert_eq!(status, 200, "{body}");
        let got: Value = serde_json::from_str(&body).expect("JSON");
        assert_eq!(got["label"], expected["label"], "{text}");
        assert_eq!(got["model_version"], version.as_str());
        let (a, b) = (
            got["score"].as_f64().expect("score"),
            expected["score"].as_f64().expect("score"),
        );
        assert!((a - b).abs() < 1e-5, "{text}: http {a} vs predict {b}");
    }
}

#[test]
fn sigterm_drains_requests_in_flight_and_exits_cleanly() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = dir.path().join("models");
    publish(&models);
    let (mut infer, addr) = start(&models, dir.path());
    let body = serde_json::json!({ "texts": vec![TEXTS[0].repeat(8); 256] }).to_string();
    let calls: Vec<_> = (0..8)
        .map(|_| {
            let body = body.clone();
            std::thread::spawn(move || post(addr, "/v1/sentiment/batch", &body))
        })
        .collect();
    std::thread::sleep(Duration::from_millis(30));
    let killed = Command::new("kill")
        .args(["-TERM", &infer.0.id().to_string()])
        .status()
        .expect("kill");
    assert!(killed.success());
    let mut answered = 0;
    for call in calls {
        match call.join().expect("thread") {
            Ok((status, body)) => {
                assert_eq!(
                    status, 200,
                    "an accepted request must complete: {body:.200}"
                );
                answered += 1;
            }
            Err(e) => assert!(
                matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionRefused | std::io::ErrorKind::ConnectionReset
                ),
                "{e}"
            ),
        }
    }
    assert!(answered >= 1, "at least the first requests were in flight");
    let status = infer.0.wait().expect("wait");
    assert!(status.success(), "infer exits 0 after draining: {status}");
}

fn get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).expect("connect");
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    stream.write_all(request.as_bytes()).expect("write");
    let mut raw = String::new();
    stream.read_to_string(&mut raw).expect("read");
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    (status, body.to_string())
}

#[test]
fn up_serves_inference_and_the_web_app_on_one_listener() {
    let dir = tempfile::tempdir().expect("tempdir");
    let data = dir.path().join("var");
    let version = publish(&data.join("models"));
    let web = dir.path().join("dist");
    std::fs::create_dir_all(web.join("assets")).expect("web dir");
    std::fs::write(
        web.join("index.html"),
        "<!doctype html><title>bloginfer</title>",
    )
    .expect("index");
    std::fs::write(web.join("assets/app.js"), "console.log(1)").expect("asset");
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .expect("probe")
        .local_addr()
        .expect("addr")
        .port();
    let log = std::fs::File::create(dir.path().join("up.log")).expect("log");
    let child = Command::new(BIN)
        .args(["up", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(&data)
        .arg("--web-dir")
        .arg(&web)
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start bloginfer up");
    let _up = Proc(child);
    let addr: SocketAddr = format!("127.0.0.1:{port}").parse().expect("addr");
    let start = Instant::now();
    while TcpStream::connect(addr).is_err() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "up did not start"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
    let (status, body) = get(addr, "/");
    assert_eq!(status, 200);
    assert!(body.contains("<title>bloginfer</title>"));
    assert_eq!(get(addr, "/assets/app.js").1, "console.log(1)");
    let (status, body) = get(addr, "/article/some-slug");
    assert_eq!(status, 200, "client-side routes get the app");
    assert!(body.contains("<title>bloginfer</title>"));
    let (status, body) = get(addr, "/api/no-such-endpoint");
    assert_eq!(status, 404, "unknown API paths are not the web app: {body}");
    let (status, body) = post(
        addr,
        "/api/users",
        "{\"user\": {\"username\": \"ann\", \"email\": \"ann@example.com\", \"password\": \"password123\"}}",
    )
    .expect("register");
    assert_eq!(status, 201, "the blog API is served too: {body}");
    let secret = data.join("jwt-secret");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&secret)
            .expect("secret stored")
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600, "the generated JWT secret is private");
    }
    let (status, body) = post(addr, "/v1/sentiment", "{\"text\": \"很好\"}").expect("request");
    assert_eq!(status, 200, "{body}");
    let answer: Value = serde_json::from_str(&body).expect("JSON");
    assert_eq!(answer["model_version"], version.as_str());
}
