//! The anonymous page cache: a signed-out reader's article listing is served
//! from memory, yet every write that changes a listing shows at once, on this
//! replica and (through the generation in Redis) on every other; without
//! Redis the database answers.

use serde_json::{json, Value};

use crate::redis::PrivateRedis;
use crate::{metric, spawn_app, App, Method, Options, TestDb};

async fn listing(app: &App) -> Value {
    let (status, body) = app
        .call(Method::GET, "/api/articles?limit=5", None, None)
        .await;
    assert_eq!(status, 200, "{body}");
    body
}

fn titles(list: &Value) -> Vec<String> {
    list["articles"]
        .as_array()
        .expect("articles")
        .iter()
        .map(|a| a["title"].as_str().expect("title").to_string())
        .collect()
}

async fn hits(app: &App) -> f64 {
    let (_, metrics) = app.call_text("/metrics").await;
    metric(&metrics, "bloginfer_blog_page_cache_total{outcome=\"hit\"}")
}

/// Writes through `writer`, reads signed out through `reader`.
async fn every_write_shows_at_once(writer: &App, reader: &App) {
    let alice = writer.token("alice").await;
    let bob = writer.token("bob").await;
    let first = writer.article(&alice, "first", &["x"]).await;
    assert_eq!(titles(&listing(reader).await), ["first"]);
    let before = hits(reader).await;
    let cached = listing(reader).await;
    assert_eq!(titles(&cached), ["first"]);
    assert!(hits(reader).await > before, "the second read is a hit");

    writer.article(&alice, "second", &[]).await;
    assert_eq!(titles(&listing(reader).await), ["second", "first"]);

    let (status, _) = writer
        .call(
            Method::POST,
            &format!("/api/articles/{first}/favorite"),
            Some(&bob),
            None,
        )
        .await;
    assert_eq!(status, 200);
    let list = listing(reader).await;
    assert_eq!(list["articles"][1]["favoritesCount"], 1);
    assert_eq!(list["articles"][1]["favorited"], false, "signed out");

    let (status, _) = writer
        .call(
            Method::PUT,
            "/api/user",
            Some(&alice),
            Some(json!({"user": {"bio": "新简介"}})),
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        listing(reader).await["articles"][0]["author"]["bio"],
        "新简介"
    );

    let (status, renamed) = writer
        .call(
            Method::PUT,
            &format!("/api/articles/{first}"),
            Some(&alice),
            Some(json!({"article": {"title": "renamed"}})),
        )
        .await;
    assert_eq!(status, 200, "{renamed}");
    assert_eq!(titles(&listing(reader).await), ["second", "renamed"]);
    let slug = renamed["article"]["slug"].as_str().expect("slug");
    assert_eq!(
        writer
            .call(
                Method::DELETE,
                &format!("/api/articles/{slug}"),
                Some(&alice),
                None
            )
            .await
            .0,
        204
    );
    let list = listing(reader).await;
    assert_eq!(
        (titles(&list), list["articlesCount"].clone()),
        (vec!["second".to_string()], json!(1))
    );

    // A signed-in reader gets the shared page with their own state filled in,
    // which no write has to invalidate.
    writer.article(&bob, "by bob", &[]).await;
    let carol = writer.token("carol").await;
    let bobs = writer.article(&bob, "liked", &[]).await;
    let path = format!("/api/articles/{bobs}/favorite");
    assert_eq!(
        writer.call(Method::POST, &path, Some(&carol), None).await.0,
        200
    );
    let seen_by = |token: Option<String>| async move {
        let (status, body) = reader
            .call(Method::GET, "/api/articles?limit=5", token.as_deref(), None)
            .await;
        assert_eq!(status, 200, "{body}");
        let first = &body["articles"][0];
        (
            first["favorited"].clone(),
            first["author"]["following"].clone(),
        )
    };
    assert_eq!(
        seen_by(Some(carol.clone())).await,
        (json!(true), json!(false))
    );
    assert_eq!(seen_by(None).await, (json!(false), json!(false)));
    let follow = "/api/profiles/bob/follow";
    assert_eq!(
        writer
            .call(Method::POST, follow, Some(&carol), None)
            .await
            .0,
        200
    );
    assert_eq!(
        seen_by(Some(carol.clone())).await,
        (json!(true), json!(true))
    );
    assert_eq!(
        seen_by(Some(alice.clone())).await,
        (json!(false), json!(false))
    );
    assert_eq!(seen_by(None).await, (json!(false), json!(false)));
}

async fn one_process(db: &TestDb) {
    let app = spawn_app(db, Options::default()).await;
    every_write_shows_at_once(&app, &app).await;
}

crate::on_both_databases!(one_process);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicas_sharing_redis_never_serve_a_page_older_than_the_last_write() {
    let redis = PrivateRedis::start();
    let db = TestDb::sqlite();
    let options = || Options {
        redis: Some((format!("redis://127.0.0.1:{}/", redis.port), "p:".into())),
        ..Options::default()
    };
    let one = spawn_app(&db, options()).await;
    let two = spawn_app(&db, options()).await;
    every_write_shows_at_once(&one, &two).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_redis_the_database_answers_every_listing() {
    let mut redis = PrivateRedis::start();
    let db = TestDb::sqlite();
    let options = Options {
        redis: Some((format!("redis://127.0.0.1:{}/", redis.port), "p:".into())),
        ..Options::default()
    };
    let app = spawn_app(&db, options).await;
    let alice = app.token("alice").await;
    app.article(&alice, "first", &[]).await;
    assert_eq!(titles(&listing(&app).await), ["first"]);
    assert_eq!(titles(&listing(&app).await), ["first"]);
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    // Sessions live in Redis too, so nobody can write now; reads stay right.
    assert_eq!(titles(&listing(&app).await), ["first"]);
    let (_, metrics) = app.call_text("/metrics").await;
    assert!(
        metric(
            &metrics,
            "bloginfer_blog_page_cache_total{outcome=\"error\"}"
        ) >= 1.0,
        "{metrics}"
    );
}
