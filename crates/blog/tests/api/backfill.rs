//! The sentiment back-fill against a real inference service: comments that
//! inference refuses (together over its body limit, or alone) do not stop the
//! others from being labelled; and a comment that is stored is never a 500,
//! whatever happens to its sentiment afterwards.

use std::time::Duration;

use serde_json::{json, Value};
use sqlx::{Executor, Row};

use crate::comments::{model_registry, start_inference};
use crate::{free_port, metric, spawn_app, Method, Options, TestDb};

/// The article's id and author.
async fn article_ids(db: &bloginfer_blog::db::Db, slug: &str) -> (i64, i64) {
    let row = sqlx::query("SELECT id, author_id FROM articles WHERE slug = ?")
        .bind(slug)
        .fetch_one(db.read())
        .await
        .expect("article");
    (row.get("id"), row.get("author_id"))
}

/// Comments stored as an older release stored them (pending, no checks), in
/// one transaction so the back-fill sees all of them at once; their ids.
async fn insert_pending(db: &bloginfer_blog::db::Db, slug: &str, bodies: &[String]) -> Vec<i64> {
    let (article, author) = article_ids(db, slug).await;
    let mut tx = db.write().begin().await.expect("begin");
    let mut ids = Vec::new();
    for body in bodies {
        let sql = db.returning_id(
            "INSERT INTO comments (article_id, author_id, body, created_at, updated_at) VALUES (?, ?, ?, 1, 1)",
        );
        let query = sqlx::query(&sql).bind(article).bind(author).bind(body);
        ids.push(db.insert(query, &mut *tx).await.expect("insert"));
    }
    tx.commit().await.expect("commit");
    ids
}

/// Waits (at most 15 s: "does not hang") until the comment `id` has a sentiment.
async fn labelled(app: &crate::App, slug: &str, id: i64) -> Value {
    let path = format!("/api/articles/{slug}/comments?limit=100");
    for _ in 0..300 {
        let (_, page) = app.call(Method::GET, &path, None, None).await;
        let found = page["comments"]
            .as_array()
            .and_then(|list| list.iter().find(|c| c["id"] == id).cloned());
        if let Some(comment) = found {
            if !comment["sentiment"].is_null() {
                return comment["sentiment"].clone();
            }
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    panic!("comment {id} was never labelled");
}

async fn the_backfill_gets_past_comments_inference_refuses(db: &TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let inference = start_inference(model_registry(dir.path()), free_port().await).await;
    let options = Options {
        inference_url: Some(inference.url()),
        ..Options::default()
    };
    let app = spawn_app(db, options).await;
    let token = app.token("alice").await;
    let slug = app.article(&token, "poisoned", &[]).await;
    let store = bloginfer_blog::db::connect(&db.url).await.expect("db");

    // 18 comments of 10 KB of control characters: 60 KB each once JSON
    // escapes them, over inference's 1 MiB body limit together; then one
    // that inference refuses alone (only whitespace), then a good one.
    let mut bodies = vec!["\u{1}".repeat(10 * 1024); 18];
    bodies.push("\u{b}\u{c}".to_string());
    bodies.push("这家酒店干净整洁，服务也很热情".to_string());
    let ids = insert_pending(&store, &slug, &bodies).await;
    let good = labelled(&app, &slug, ids[19]).await;
    assert_eq!(good["source"], "model", "{good}");

    // The refused comment stays pending, and is not asked about again and again.
    let refused_at = |metrics: &str| {
        metric(
            metrics,
            "bloginfer_http_requests_total{service=\"infer\",route=\"/v1/sentiment/batch\",status=\"422\"}",
        )
    };
    let inference_metrics = || async {
        reqwest::get(format!("{}/metrics", inference.url()))
            .await
            .expect("metrics")
            .text()
            .await
            .expect("text")
    };
    let before = refused_at(&inference_metrics().await);
    assert!(before >= 1.0, "inference refused the blank comment");
    let later = insert_pending(&store, &slug, &["质量太差了，非常失望".to_string()]).await;
    labelled(&app, &slug, later[0]).await;
    tokio::time::sleep(Duration::from_millis(500)).await; // five more rounds
    assert_eq!(refused_at(&inference_metrics().await), before);
    let (_, page) = app
        .call(
            Method::GET,
            &format!("/api/articles/{slug}/comments?offset=18&limit=1"),
            None,
            None,
        )
        .await;
    assert_eq!(page["comments"][0]["id"], ids[18]);
    assert_eq!(page["comments"][0]["sentiment"], Value::Null);
}

crate::on_both_databases!(the_backfill_gets_past_comments_inference_refuses);

/// Makes every model sentiment written to `comments` fail, as a database
/// that breaks between the insert and the update would.
async fn break_sentiment_updates(db: &bloginfer_blog::db::Db) {
    let sql = match db.backend() {
        bloginfer_blog::db::Backend::Sqlite => {
            "CREATE TRIGGER refuse_sentiment BEFORE UPDATE ON comments \
             WHEN NEW.sentiment_source = 'model' BEGIN SELECT RAISE(ABORT, 'injected'); END"
        }
        bloginfer_blog::db::Backend::MySql => {
            "CREATE TRIGGER refuse_sentiment BEFORE UPDATE ON comments FOR EACH ROW BEGIN \
             IF NEW.sentiment_source = 'model' THEN \
             SIGNAL SQLSTATE '45000' SET MESSAGE_TEXT = 'injected'; END IF; END"
        }
    };
    // Not a prepared statement: MySQL does not prepare CREATE TRIGGER.
    db.write().execute(sql).await.expect("trigger");
}

async fn a_stored_comment_is_never_a_500(db: &TestDb) {
    let dir = tempfile::tempdir().expect("tempdir");
    let inference = start_inference(model_registry(dir.path()), free_port().await).await;
    let options = Options {
        inference_url: Some(inference.url()),
        ..Options::default()
    };
    let app = spawn_app(db, options).await;
    let token = app.token("alice").await;
    let slug = app.article(&token, "fragile", &[]).await;
    let comments = format!("/api/articles/{slug}/comments");
    let store = bloginfer_blog::db::connect(&db.url).await.expect("db");
    break_sentiment_updates(&store).await;

    let (status, body) = app
        .call(
            Method::POST,
            &comments,
            Some(&token),
            Some(json!({"comment": {"body": "这家酒店干净整洁"}})),
        )
        .await;
    assert_eq!(status, 201, "stored, so created: {body}");
    assert_eq!(body["comment"]["sentiment"], Value::Null, "and pending");
    assert_eq!(body["comment"]["body"], "这家酒店干净整洁");
    assert_eq!(body["comment"]["author"]["username"], "alice");
    let (_, page) = app.call(Method::GET, &comments, None, None).await;
    assert_eq!(page["comments"][0]["id"], body["comment"]["id"]);
    assert_eq!(page["comments"].as_array().map(Vec::len), Some(1));
}

crate::on_both_databases!(a_stored_comment_is_never_a_500);
