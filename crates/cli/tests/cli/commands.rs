//! The `bloginfer` binary end to end: train, predict, eval, models, bad input.

use std::path::Path;
use std::process::{Command, Output};

fn bloginfer(models: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_bloginfer"))
        .arg("--models-dir")
        .arg(models)
        .args(args)
        .env_remove("MODEL_DIR")
        .output()
        .expect("run bloginfer")
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// A 600-row TSV from the bundled corpus, so training takes seconds.
fn small_tsv(dir: &Path) -> std::path::PathBuf {
    let corpus_path =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("../../data/corpus/sentiment_zh.tsv");
    let corpus = std::fs::read_to_string(corpus_path).unwrap();
    let path = dir.join("small.tsv");
    let rows: Vec<&str> = corpus.lines().take(601).collect();
    std::fs::write(&path, rows.join("\n")).unwrap();
    path
}

fn train(models: &Path, data: &Path) -> String {
    let args = [
        "train",
        "--data",
        data.to_str().unwrap(),
        "--epochs",
        "2",
        "--embed-dim",
        "16",
        "--hidden-dim",
        "16",
        "--min-count",
        "1",
    ];
    let out = bloginfer(models, &args);
    assert!(out.status.success(), "train failed: {}", stderr(&out));
    let version = stdout(&out).trim().to_string();
    assert!(!version.is_empty());
    version
}

#[test]
fn train_predict_eval_and_manage_versions() {
    let dir = tempfile::tempdir().unwrap();
    let models = dir.path().join("models");
    let data = small_tsv(dir.path());
    let first = train(&models, &data);

    let out = bloginfer(&models, &["predict", "--json", "服务很好", "太差了"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let lines: Vec<serde_json::Value> = stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 2);
    for line in &lines {
        assert!(["positive", "negative"].contains(&line["label"].as_str().unwrap()));
        let score = line["score"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&score));
        assert_eq!(line["model_version"], first.as_str());
    }

    let out = bloginfer(
        &models,
        &["eval", "--data", data.to_str().unwrap(), "--json"],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    let metrics: serde_json::Value = serde_json::from_str(&stdout(&out)).unwrap();
    let accuracy = metrics["accuracy"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&accuracy));
    assert!(metrics["macro_f1"].is_number());
    assert_eq!(metrics["total"], 600);
    let table = stdout(&bloginfer(
        &models,
        &["eval", "--data", data.to_str().unwrap()],
    ));
    assert!(
        table.contains("confusion") && table.contains("macro-F1"),
        "{table}"
    );

    let second = train(&models, &data);
    let list = stdout(&bloginfer(&models, &["models", "list"]));
    assert!(list.contains(&format!("* {second}")), "{list}");
    let out = bloginfer(&models, &["models", "promote", &first]);
    assert!(out.status.success());
    let show = stdout(&bloginfer(&models, &["models", "show", &first]));
    let show: serde_json::Value = serde_json::from_str(&show).unwrap();
    assert_eq!(show["current"], true);
    assert_eq!(show["metadata"]["method"], "central");

    let out = bloginfer(&models, &["models", "prune", "--keep", "0"]);
    assert!(out.status.success());
    assert_eq!(stdout(&out).trim(), format!("removed {second}"));
    let out = bloginfer(&models, &["predict", "--version", &second, "好"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no version"), "{}", stderr(&out));
}

#[test]
fn malformed_tsv_reports_its_line_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("bad.tsv");
    std::fs::write(&bad, "label\ttext\n1\t很好\n0\t很差\nx\t坏标签\n").unwrap();
    let out = bloginfer(
        &dir.path().join("m"),
        &["train", "--data", bad.to_str().unwrap()],
    );
    assert!(!out.status.success());
    assert!(stderr(&out).contains("line 4"), "{}", stderr(&out));
}

#[test]
fn predicting_without_a_model_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let out = bloginfer(dir.path(), &["predict", "你好"]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("no current model"),
        "{}",
        stderr(&out)
    );
    let out = bloginfer(dir.path(), &["models", "promote", "../../etc/passwd"]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("invalid version"), "{}", stderr(&out));
}

#[test]
fn bad_flags_exit_with_usage_errors() {
    let dir = tempfile::tempdir().unwrap();
    let out = bloginfer(dir.path(), &["train", "--pooling", "median"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("unknown pooling"), "{}", stderr(&out));
}

#[test]
fn admin_creates_or_promotes_and_refuses_what_it_cannot_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = format!(
        "--database-url=sqlite:{}",
        dir.path().join("blog.db").display()
    );
    let admin = |args: &[&str], password: Option<&str>| {
        let mut command = Command::new(env!("CARGO_BIN_EXE_bloginfer"));
        command
            .arg("admin")
            .arg(&db)
            .args(args)
            .env_remove("ADMIN_PASSWORD");
        if let Some(p) = password {
            command.env("ADMIN_PASSWORD", p);
        }
        command.output().expect("run bloginfer admin")
    };
    let missing = admin(&["--email=boss@example.com"], None);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("give a password"),
        "{}",
        stderr(&missing)
    );
    let short = admin(&["--email=boss@example.com"], Some("short"));
    assert!(!short.status.success());
    assert!(stderr(&short).contains("at least 12"), "{}", stderr(&short));
    let created = admin(&["--email=boss@example.com"], Some("a long admin password"));
    assert!(created.status.success(), "{}", stderr(&created));
    assert!(stdout(&created).contains("created admin boss@example.com"));
    let reset = admin(&["--email=Boss@Example.com"], Some("another long password"));
    assert!(reset.status.success(), "{}", stderr(&reset));
    assert!(
        stdout(&reset).contains("password reset"),
        "{}",
        stdout(&reset)
    );
    let mode = std::os::unix::fs::PermissionsExt::mode(
        &std::fs::metadata(dir.path().join("blog.db"))
            .unwrap()
            .permissions(),
    );
    assert_eq!(
        mode & 0o077,
        0,
        "the database file is the owner's only: {mode:o}"
    );
}
