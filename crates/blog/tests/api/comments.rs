//! Comments with sentiment from a real inference service: pending while it is
//! down, back-filled when it returns, human corrections that stick, deletes.

use serde_json::{json, Value};

use bloginfer_service::Server;

use crate::{serve, spawn_app, Method, Options, TestDb};

/// Publishes a small random model and returns the registry directory.
pub(crate) fn model_registry(dir: &std::path::Path) -> std::path::PathBuf {
    use bloginfer_model::checkpoint::Checkpoint;
    use bloginfer_model::{ModelConfig, Registry, SentimentModel, TrainingMetadata};
    use rand::SeedableRng;
    let mut builder = bloginfer_text::VocabBuilder::new();
    for c in "这家酒店干净整洁服务也很热情质量太差了非常失望".chars() {
        builder.add(&c.to_string());
    }
    let vocab = builder.build(1, 100);
    let config = ModelConfig {
        vocab_size: vocab.len(),
        embed_dim: 16,
        hidden_dim: 16,
        granularity: bloginfer_text::Granularity::Char,
        ..ModelConfig::default()
    };
    let model =
        SentimentModel::new(config, &mut rand::rngs::StdRng::seed_from_u64(1)).expect("model");
    let checkpoint =
        Checkpoint::from_model(&model, vocab, TrainingMetadata::default()).expect("checkpoint");
    let root = dir.join("models");
    let registry = Registry::open(&root).expect("registry");
    let version = registry.publish(&checkpoint).expect("publish");
    registry.set_current(&version).expect("promote");
    root
}

/// Starts the inference service on `listener`, with its model loaded.
pub(crate) async fn start_inference(
    models: std::path::PathBuf,
    listener: tokio::net::TcpListener,
) -> Server {
    let service = bloginfer_infer::Inference::build(bloginfer_infer::InferConfig {
        models_dir: models,
        pinned_version: None,
        batching: bloginfer_infer::BatchConfig {
            max_batch: 16,
            max_wait: std::time::Duration::from_millis(1),
            queue_capacity: 64,
            queue_bytes: bloginfer_infer::BatchConfig::DEFAULT_QUEUE_BYTES,
            compute_workers: 1,
        },
        reload_interval: std::time::Duration::from_secs(60),
        max_body_bytes: 1 << 20,
    })
    .expect("inference");
    service.reload_now().await;
    serve(service, listener).await
}

async fn comments_get_sentiment_late_when_inference_was_down_and_humans_correct_it(db: &TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = model_registry(dir.path());
    // Inference is down: its port is reserved but nothing answers yet.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
    let inference_addr = probe.local_addr().expect("addr");
    drop(probe);
    let options = Options {
        inference_url: Some(format!("http://{inference_addr}")),
        forward_inference: true,
        ..Options::default()
    };
    let app = spawn_app(db, options).await;
    let alice = app.register("alice", "alice@example.com").await;
    let bob = app.register("bob", "bob@example.com").await;
    let carol = app.register("carol", "carol@example.com").await;
    let (a, b, c) = (
        alice["token"].as_str().expect("token").to_string(),
        bob["token"].as_str().expect("token").to_string(),
        carol["token"].as_str().expect("token").to_string(),
    );
    let (_, created) = app
        .call(
            Method::POST,
            "/api/articles",
            Some(&a),
            Some(json!({"article": {"title": "t", "description": "d", "body": "b"}})),
        )
        .await;
    let slug = created["article"]["slug"]
        .as_str()
        .expect("slug")
        .to_string();
    let comments = format!("/api/articles/{slug}/comments");

    let (status, pending) = app
        .call(
            Method::POST,
            &comments,
            Some(&b),
            Some(json!({"comment": {"body": "这家酒店干净整洁，服务也很热情"}})),
        )
        .await;
    assert_eq!(
        status, 201,
        "a comment is stored even when inference is down: {pending}"
    );
    assert_eq!(pending["comment"]["sentiment"], Value::Null);
    let id = pending["comment"]["id"].as_i64().expect("id");
    let (status, body) = app
        .call(
            Method::POST,
            &comments,
            Some(&b),
            Some(json!({"comment": {"body": "  "}})),
        )
        .await;
    assert_eq!((status, body["errors"]["body"].is_array()), (422, true));

    // The public inference endpoints go through the blog: down is a JSON 503.
    let sentence = json!({"text": "这家酒店干净整洁"});
    let (status, body) = app
        .call(Method::POST, "/v1/sentiment", None, Some(sentence.clone()))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("unavailable"))
    );

    // Inference comes back: the back-fill scores the pending comment.
    let listener = tokio::net::TcpListener::bind(inference_addr)
        .await
        .expect("rebind the inference port");
    let _inference = start_inference(models, listener).await;
    let (status, body) = app
        .call(Method::POST, "/v1/sentiment", None, Some(sentence))
        .await;
    assert_eq!(status, 200, "{body}");
    assert!(
        body["label"].is_string() && body["model_version"].is_string(),
        "{body}"
    );
    let (status, body) = app
        .call(
            Method::POST,
            "/v1/sentiment",
            None,
            Some(json!({"text": "  "})),
        )
        .await;
    assert_eq!(
        (status, body["error"]["code"].is_string()),
        (422, true),
        "inference's own errors pass through"
    );
    let mut filled = Value::Null;
    for _ in 0..100 {
        let (_, list) = app.call(Method::GET, &comments, None, None).await;
        filled = list["comments"][0]["sentiment"].clone();
        if !filled.is_null() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(filled["source"], "model", "{filled}");
    assert!(filled["modelVersion"].is_string());
    let model_label = filled["label"].as_str().expect("label").to_string();

    // New comments get their sentiment at once now.
    let (_, live) = app
        .call(
            Method::POST,
            &comments,
            Some(&c),
            Some(json!({"comment": {"body": "质量太差了，非常失望"}})),
        )
        .await;
    assert_eq!(live["comment"]["sentiment"]["source"], "model");

    // Corrections: the article's author may, others may not; humans win over the model.
    let flipped = if model_label == "positive" {
        "negative"
    } else {
        "positive"
    };
    let correction = format!("{comments}/{id}/sentiment");
    let (status, _) = app
        .call(
            Method::PUT,
            &correction,
            Some(&c),
            Some(json!({"label": flipped})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, body) = app
        .call(
            Method::PUT,
            &correction,
            Some(&a),
            Some(json!({"label": "meh"})),
        )
        .await;
    assert_eq!((status, body["errors"]["label"].is_array()), (422, true));
    let (status, corrected) = app
        .call(
            Method::PUT,
            &correction,
            Some(&a),
            Some(json!({"label": flipped})),
        )
        .await;
    assert_eq!(status, 200, "{corrected}");
    assert_eq!(corrected["comment"]["sentiment"]["source"], "human");
    assert_eq!(corrected["comment"]["sentiment"]["label"], flipped);
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    let (_, list) = app.call(Method::GET, &comments, None, None).await;
    assert_eq!(
        list["comments"][0]["sentiment"]["label"], flipped,
        "the back-fill never overwrites a human label"
    );
    assert_eq!(list["comments"].as_array().map(Vec::len), Some(2));

    // Deleting: only the comment's author.
    let path = format!("{comments}/{id}");
    assert_eq!(app.call(Method::DELETE, &path, Some(&a), None).await.0, 403);
    assert_eq!(app.call(Method::DELETE, &path, Some(&b), None).await.0, 204);
    assert_eq!(app.call(Method::DELETE, &path, Some(&b), None).await.0, 404);
    assert_eq!(
        app.call(Method::GET, "/api/articles/nope/comments", None, None)
            .await
            .0,
        404
    );
}

crate::on_both_databases!(
    comments_get_sentiment_late_when_inference_was_down_and_humans_correct_it
);
