//! The blog API over real HTTP on loopback, the same suite on SQLite and on
//! MariaDB (127.0.0.1:3306, a fresh database per test).

use bloginfer_blog::{Blog, BlogConfig};
use serde_json::{json, Value};

struct App {
    url: String,
    http: reqwest::Client,
    _dir: Option<tempfile::TempDir>,
    database: Option<String>,
}

async fn start(database_url: String, dir: Option<tempfile::TempDir>) -> App {
    start_with(database_url, dir, None).await
}

async fn start_with(
    database_url: String,
    dir: Option<tempfile::TempDir>,
    inference_url: Option<String>,
) -> App {
    start_full(database_url, dir, inference_url, None).await
}

/// Starts the app; `redis_prefix` puts sessions in the local Redis under that prefix.
async fn start_full(
    database_url: String,
    dir: Option<tempfile::TempDir>,
    inference_url: Option<String>,
    redis_prefix: Option<String>,
) -> App {
    let blog = Blog::start(BlogConfig {
        database_url,
        jwt_secret: b"a test secret that is long enough for HS256".to_vec(),
        admin_email: Some("boss@example.com".into()),
        redis_url: redis_prefix
            .as_ref()
            .map(|_| "redis://127.0.0.1:6379/".to_string()),
        redis_prefix: redis_prefix.unwrap_or_default(),
        inference_url,
        inference_timeout: std::time::Duration::from_millis(500),
        backfill_interval: std::time::Duration::from_millis(100),
    })
    .await
    .expect("blog starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let router = blog.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
    App {
        url,
        http: reqwest::Client::new(),
        _dir: dir,
        database: None,
    }
}

async fn sqlite() -> App {
    let dir = tempfile::tempdir().expect("tempdir");
    let url = format!("sqlite://{}", dir.path().join("blog.db").display());
    start(url, Some(dir)).await
}

/// A fresh MariaDB database for one test.
async fn mariadb() -> App {
    use sqlx::Connection;
    let name = format!("bloginfer_test_{}_{}", std::process::id(), rand_suffix());
    let mut admin = sqlx::MySqlConnection::connect("mysql://root@127.0.0.1:3306/")
        .await
        .expect("MariaDB on 127.0.0.1:3306 (root, no password)");
    sqlx::query(&format!("CREATE DATABASE {name} CHARACTER SET utf8mb4"))
        .execute(&mut admin)
        .await
        .expect("create database");
    let mut app = start(format!("mysql://root@127.0.0.1:3306/{name}"), None).await;
    app.database = Some(name);
    app
}

/// Drops the test's MariaDB database.
async fn drop_database(name: &str) {
    use sqlx::Connection;
    if let Ok(mut admin) = sqlx::MySqlConnection::connect("mysql://root@127.0.0.1:3306/").await {
        let _ = sqlx::query(&format!("DROP DATABASE IF EXISTS {name}"))
            .execute(&mut admin)
            .await;
    }
}

fn rand_suffix() -> u64 {
    use std::time::{SystemTime, UNIX_EPOCH};
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64 % 1_000_000_007)
}

impl App {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut req = self.http.request(method, format!("{}{path}", self.url));
        if let Some(t) = token {
            req = req.header("Authorization", format!("Token {t}"));
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.expect("send");
        let status = resp.status().as_u16();
        let text = resp.text().await.expect("body");
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).expect("JSON body")
            },
        )
    }

    async fn call_text(&self, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("send");
        (resp.status().as_u16(), resp.text().await.expect("body"))
    }

    async fn register(&self, name: &str, email: &str) -> Value {
        let (status, body) = self
            .call(reqwest::Method::POST, "/api/users", None, Some(json!({"user": {"username": name, "email": email, "password": "correct horse"}})))
            .await;
        assert_eq!(status, 201, "{body}");
        body["user"].clone()
    }
}

use reqwest::Method;

async fn users_profiles_and_sessions(app: &App) {
    // Registration, roles, validation and uniqueness.
    let alice = app.register("alice", "Alice@Example.com").await;
    assert_eq!(alice["email"], "alice@example.com");
    assert_eq!(alice["admin"], true, "the first user is an admin");
    assert_eq!(alice["bio"], Value::Null);
    let bob = app.register("bob", "bob@example.com").await;
    assert_eq!(bob["admin"], false);
    assert_eq!(
        app.register("boss", "boss@example.com").await["admin"],
        true,
        "--admin-email"
    );
    let (status, body) = app
        .call(Method::POST, "/api/users", None, Some(json!({"user": {"username": "alice", "email": "x@example.com", "password": "long enough"}})))
        .await;
    assert_eq!(
        (status, &body),
        (
            422,
            &json!({"errors": {"username": ["has already been taken"]}})
        )
    );
    let (status, body) = app
        .call(Method::POST, "/api/users", None, Some(json!({"user": {"username": "alice2", "email": "BOB@example.com", "password": "long enough"}})))
        .await;
    assert_eq!(
        (status, &body),
        (
            422,
            &json!({"errors": {"email": ["has already been taken"]}})
        )
    );
    let (status, body) = app
        .call(
            Method::POST,
            "/api/users",
            None,
            Some(json!({"user": {"username": " ", "email": "nope", "password": "short"}})),
        )
        .await;
    assert_eq!(status, 422);
    for field in ["username", "email", "password"] {
        assert!(body["errors"][field].is_array(), "{field} in {body}");
    }
    let resp = app
        .http
        .post(format!("{}/api/users", app.url))
        .header("content-type", "application/json")
        .body("{oops")
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 422);
    let body: Value = resp.json().await.expect("JSON");
    assert!(body["errors"]["body"].is_array(), "{body}");

    // Login and the current user.
    let (status, body) = app
        .call(
            Method::POST,
            "/api/users/login",
            None,
            Some(json!({"user": {"email": "alice@example.com", "password": "wrong password"}})),
        )
        .await;
    assert_eq!(
        (status, &body),
        (
            422,
            &json!({"errors": {"email or password": ["is invalid"]}})
        )
    );
    let (status, login) = app
        .call(
            Method::POST,
            "/api/users/login",
            None,
            Some(json!({"user": {"email": "ALICE@example.com", "password": "correct horse"}})),
        )
        .await;
    assert_eq!(status, 200, "{login}");
    let token = login["user"]["token"].as_str().expect("token").to_string();
    let (status, me) = app.call(Method::GET, "/api/user", Some(&token), None).await;
    assert_eq!(
        (status, me["user"]["username"].as_str()),
        (200, Some("alice"))
    );
    assert_eq!(me["user"]["token"], token.as_str());
    let (status, body) = app.call(Method::GET, "/api/user", None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );
    let (status, _) = app
        .call(Method::GET, "/api/user", Some("not.a.jwt"), None)
        .await;
    assert_eq!(status, 401);

    // Updates.
    let (status, updated) = app
        .call(
            Method::PUT,
            "/api/user",
            Some(&token),
            Some(json!({"user": {"bio": "我喜欢写作", "image": "https://example.com/a.png"}})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(updated["user"]["bio"], "我喜欢写作");
    assert_eq!(
        updated["user"]["username"], "alice",
        "untouched fields stay"
    );
    let (status, body) = app
        .call(
            Method::PUT,
            "/api/user",
            Some(&token),
            Some(json!({"user": {"email": "bob@example.com"}})),
        )
        .await;
    assert_eq!(
        (status, &body),
        (
            422,
            &json!({"errors": {"email": ["has already been taken"]}})
        )
    );

    // Profiles and following.
    let bob_token = bob["token"].as_str().expect("token").to_string();
    let (status, body) = app
        .call(Method::GET, "/api/profiles/nobody", None, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
    let (status, profile) = app
        .call(Method::GET, "/api/profiles/alice", None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(
        profile,
        json!({"profile": {"username": "alice", "bio": "我喜欢写作", "image": "https://example.com/a.png", "following": false}})
    );
    let (status, followed) = app
        .call(
            Method::POST,
            "/api/profiles/alice/follow",
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(
        (status, followed["profile"]["following"].as_bool()),
        (200, Some(true))
    );
    let (_, again) = app
        .call(
            Method::POST,
            "/api/profiles/alice/follow",
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(
        again["profile"]["following"], true,
        "following twice is fine"
    );
    let (_, seen) = app
        .call(Method::GET, "/api/profiles/alice", Some(&bob_token), None)
        .await;
    assert_eq!(seen["profile"]["following"], true);
    let (status, _) = app
        .call(Method::GET, "/api/profiles/alice", Some("garbage"), None)
        .await;
    assert_eq!(
        status, 401,
        "a present but invalid token is 401 even where auth is optional"
    );
    let (status, _) = app
        .call(Method::POST, "/api/profiles/alice/follow", None, None)
        .await;
    assert_eq!(status, 401);
    let (status, body) = app
        .call(
            Method::POST,
            "/api/profiles/bob/follow",
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!((status, body["errors"]["profile"].is_array()), (422, true));
    let (status, unfollowed) = app
        .call(
            Method::DELETE,
            "/api/profiles/alice/follow",
            Some(&bob_token),
            None,
        )
        .await;
    assert_eq!(
        (status, unfollowed["profile"]["following"].as_bool()),
        (200, Some(false))
    );

    // Tags, health, CORS.
    let (status, tags) = app.call(Method::GET, "/api/tags", None, None).await;
    assert_eq!((status, tags), (200, json!({"tags": []})));
    let (status, _) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 200);
    let preflight = app
        .http
        .request(Method::OPTIONS, format!("{}/api/user", app.url))
        .header("Origin", "http://localhost:5173")
        .header("Access-Control-Request-Method", "PUT")
        .header(
            "Access-Control-Request-Headers",
            "authorization,content-type",
        )
        .send()
        .await
        .expect("preflight");
    assert_eq!(
        preflight
            .headers()
            .get("access-control-allow-origin")
            .and_then(|v| v.to_str().ok()),
        Some("*")
    );
    let allowed = preflight
        .headers()
        .get("access-control-allow-headers")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_lowercase();
    assert!(
        allowed.contains("authorization") && allowed.contains("content-type"),
        "{allowed}"
    );

    // Logout revokes the session; other sessions live on.
    let (status, _) = app
        .call(Method::POST, "/api/users/logout", Some(&token), None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = app.call(Method::GET, "/api/user", Some(&token), None).await;
    assert_eq!(status, 401, "a revoked token no longer works");
    let (status, _) = app
        .call(Method::GET, "/api/user", Some(&bob_token), None)
        .await;
    assert_eq!(status, 200);
    let (status, body) = app.call(Method::GET, "/api/nowhere", None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_profiles_and_sessions_on_sqlite() {
    users_profiles_and_sessions(&sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn users_profiles_and_sessions_on_mariadb() {
    let app = mariadb().await;
    users_profiles_and_sessions(&app).await;
    if let Some(name) = &app.database {
        drop_database(name).await;
    }
}

async fn articles_favorites_and_feed(app: &App) {
    let alice = app.register("alice", "alice@example.com").await;
    let bob = app.register("bob", "bob@example.com").await;
    let (a, b) = (
        alice["token"].as_str().expect("token"),
        bob["token"].as_str().expect("token"),
    );

    let new = json!({"article": {"title": "联邦学习 入门", "description": "第一篇", "body": "# 你好\n正文", "tagList": ["rust", "fl", "rust", " "]}});
    let (status, created) = app
        .call(Method::POST, "/api/articles", Some(a), Some(new))
        .await;
    assert_eq!(status, 201, "{created}");
    let article = &created["article"];
    let slug = article["slug"].as_str().expect("slug").to_string();
    assert!(slug.starts_with("联邦学习-入门-"), "{slug}");
    assert_eq!(
        article["tagList"],
        json!(["fl", "rust"]),
        "tags deduplicated and sorted"
    );
    assert_eq!(article["body"], "# 你好\n正文");
    assert_eq!(article["favorited"], false);
    assert_eq!(article["favoritesCount"], 0);
    assert_eq!(article["author"]["username"], "alice");
    let created_at = article["createdAt"].as_str().expect("createdAt");
    assert!(
        created_at.len() == 24 && created_at.ends_with('Z') && &created_at[19..20] == ".",
        "{created_at}"
    );

    for i in 0..4 {
        let body = json!({"article": {"title": format!("Post {i}"), "description": "d", "body": "b", "tagList": if i % 2 == 0 { json!(["even"]) } else { json!([]) }}});
        let author = if i < 2 { b } else { a };
        assert_eq!(
            app.call(Method::POST, "/api/articles", Some(author), Some(body))
                .await
                .0,
            201
        );
        tokio::time::sleep(std::time::Duration::from_millis(3)).await;
    }
    // Listing: newest first, no body, totals for pagination, filters.
    let (status, all) = app
        .call(Method::GET, "/api/articles?limit=2&offset=1", None, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(all["articlesCount"], 5);
    let titles: Vec<&str> = all["articles"]
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|x| x["title"].as_str())
        .collect();
    assert_eq!(titles, vec!["Post 2", "Post 1"]);
    assert!(
        all["articles"][0].get("body").is_none(),
        "list items have no body"
    );
    let (_, by_tag) = app
        .call(Method::GET, "/api/articles?tag=even", None, None)
        .await;
    assert_eq!(by_tag["articlesCount"], 2);
    let (_, by_author) = app
        .call(Method::GET, "/api/articles?author=bob", None, None)
        .await;
    assert_eq!(by_author["articlesCount"], 2);
    let (_, nothing) = app
        .call(Method::GET, "/api/articles?author=nobody", None, None)
        .await;
    assert_eq!(nothing, json!({"articles": [], "articlesCount": 0}));

    // Favourites.
    let path = format!("/api/articles/{slug}");
    let (status, fav) = app
        .call(Method::POST, &format!("{path}/favorite"), Some(b), None)
        .await;
    assert_eq!(
        (
            status,
            &fav["article"]["favorited"],
            &fav["article"]["favoritesCount"]
        ),
        (200, &json!(true), &json!(1))
    );
    let (_, fav_list) = app
        .call(Method::GET, "/api/articles?favorited=bob", None, None)
        .await;
    assert_eq!(fav_list["articlesCount"], 1);
    let (_, seen_by_alice) = app.call(Method::GET, &path, Some(a), None).await;
    assert_eq!(
        (
            &seen_by_alice["article"]["favorited"],
            &seen_by_alice["article"]["favoritesCount"]
        ),
        (&json!(false), &json!(1))
    );
    let (_, unfav) = app
        .call(Method::DELETE, &format!("{path}/favorite"), Some(b), None)
        .await;
    assert_eq!(unfav["article"]["favoritesCount"], 0);

    // Feed: articles of followed authors.
    let (status, empty) = app
        .call(Method::GET, "/api/articles/feed", Some(a), None)
        .await;
    assert_eq!((status, &empty["articlesCount"]), (200, &json!(0)));
    app.call(Method::POST, "/api/profiles/bob/follow", Some(a), None)
        .await;
    let (_, feed) = app
        .call(Method::GET, "/api/articles/feed", Some(a), None)
        .await;
    assert_eq!(feed["articlesCount"], 2);
    assert_eq!(feed["articles"][0]["author"]["following"], true);
    assert_eq!(
        app.call(Method::GET, "/api/articles/feed", None, None)
            .await
            .0,
        401
    );

    // Update: only the author; a new title gives a new slug.
    let (status, _) = app
        .call(
            Method::PUT,
            &path,
            Some(b),
            Some(json!({"article": {"title": "hijack"}})),
        )
        .await;
    assert_eq!(status, 403);
    let (status, updated) = app
        .call(
            Method::PUT,
            &path,
            Some(a),
            Some(json!({"article": {"title": "Federated learning 101"}})),
        )
        .await;
    assert_eq!(status, 200, "{updated}");
    let new_slug = updated["article"]["slug"]
        .as_str()
        .expect("slug")
        .to_string();
    assert!(new_slug.starts_with("federated-learning-101-"));
    assert_eq!(
        updated["article"]["body"], "# 你好\n正文",
        "untouched fields stay"
    );
    assert_eq!(
        app.call(Method::GET, &path, None, None).await.0,
        404,
        "the old slug is gone"
    );

    // Validation and auth.
    let (status, body) = app
        .call(Method::POST, "/api/articles", Some(a), Some(json!({"article": {"title": "", "description": "x", "body": " ", "tagList": ["a".repeat(41)]}})))
        .await;
    assert_eq!(status, 422);
    for field in ["title", "body", "tagList"] {
        assert!(body["errors"][field].is_array(), "{field}: {body}");
    }
    assert_eq!(
        app.call(
            Method::POST,
            "/api/articles",
            None,
            Some(json!({"article": {}}))
        )
        .await
        .0,
        401
    );
    let (_, tags) = app.call(Method::GET, "/api/tags", None, None).await;
    assert_eq!(tags, json!({"tags": ["even", "fl", "rust"]}));

    // Delete: only the author; then 404.
    let new_path = format!("/api/articles/{new_slug}");
    assert_eq!(
        app.call(Method::DELETE, &new_path, Some(b), None).await.0,
        403
    );
    assert_eq!(
        app.call(Method::DELETE, &new_path, Some(a), None).await.0,
        204
    );
    let (status, body) = app.call(Method::GET, &new_path, None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("not_found"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn articles_favorites_and_feed_on_sqlite() {
    articles_favorites_and_feed(&sqlite().await).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn articles_favorites_and_feed_on_mariadb() {
    let app = mariadb().await;
    articles_favorites_and_feed(&app).await;
    if let Some(name) = &app.database {
        drop_database(name).await;
    }
}

/// Publishes a small random model and returns the registry directory.
fn model_registry(dir: &std::path::Path) -> std::path::PathBuf {
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

/// Starts the inference service on `listener`.
async fn start_inference(models: std::path::PathBuf, listener: tokio::net::TcpListener) {
    let service = bloginfer_infer::InferService::start(bloginfer_infer::InferConfig {
        models_dir: models,
        pinned_version: None,
        batching: bloginfer_infer::BatchConfig {
            max_batch: 16,
            max_wait: std::time::Duration::from_millis(1),
            queue_capacity: 64,
            compute_workers: 1,
        },
        reload_interval: std::time::Duration::from_secs(60),
        max_body_bytes: 1 << 20,
    })
    .expect("inference");
    service.reload_now().await;
    let router = service.router();
    tokio::spawn(async move { axum::serve(listener, router).await });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn comments_get_sentiment_late_when_inference_was_down_and_humans_correct_it() {
    let dir = tempfile::tempdir().expect("tempdir");
    let models = model_registry(dir.path());
    // Inference is down: its port is reserved but nothing answers yet.
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
    let inference_addr = probe.local_addr().expect("addr");
    drop(probe);
    let db = format!("sqlite://{}", dir.path().join("blog.db").display());
    let app = start_with(db, None, Some(format!("http://{inference_addr}"))).await;
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

    // Inference comes back: the back-fill scores the pending comment.
    let listener = tokio::net::TcpListener::bind(inference_addr)
        .await
        .expect("rebind the inference port");
    start_inference(models, listener).await;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_in_redis_are_shared_by_replicas_and_logout_revokes_everywhere() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = format!("sqlite://{}", dir.path().join("blog.db").display());
    let prefix = format!("bloginfer-test-{}-{}:", std::process::id(), rand_suffix());
    let one = start_full(db.clone(), None, None, Some(prefix.clone())).await;
    let two = start_full(db, None, None, Some(prefix.clone())).await;
    let user = one.register("alice", "alice@example.com").await;
    let token = user["token"].as_str().expect("token").to_string();
    let (status, me) = two.call(Method::GET, "/api/user", Some(&token), None).await;
    assert_eq!(
        (status, me["user"]["username"].as_str()),
        (200, Some("alice")),
        "another replica knows the session"
    );

    let client = redis::Client::open("redis://127.0.0.1:6379/").expect("redis client");
    let mut conn = client
        .get_multiplexed_async_connection()
        .await
        .expect("Redis on 127.0.0.1:6379");
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    assert_eq!(keys.len(), 1, "one session key: {keys:?}");
    let ttl: i64 = redis::cmd("TTL")
        .arg(&keys[0])
        .query_async(&mut conn)
        .await
        .expect("ttl");
    assert!(ttl > 0, "sessions expire");

    assert_eq!(
        two.call(Method::POST, "/api/users/logout", Some(&token), None)
            .await
            .0,
        204
    );
    assert_eq!(
        one.call(Method::GET, "/api/user", Some(&token), None)
            .await
            .0,
        401,
        "revoked on every replica"
    );
    let keys: Vec<String> = redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    assert!(keys.is_empty(), "{keys:?}");
}

/// A private redis-server on a free loopback port, killed when dropped.
struct PrivateRedis {
    child: std::process::Child,
    port: u16,
}

impl PrivateRedis {
    fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("probe")
            .local_addr()
            .expect("addr")
            .port();
        let child = std::process::Command::new("redis-server")
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(std::process::Stdio::null())
            .spawn()
            .expect("redis-server is installed");
        let start = std::time::Instant::now();
        while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
            assert!(
                start.elapsed() < std::time::Duration::from_secs(10),
                "redis-server did not start"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
        Self { child, port }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn counter(metrics: &str, outcome: &str) -> f64 {
    metrics
        .lines()
        .find(|l| {
            l.starts_with(&format!(
                "bloginfer_blog_cache_total{{outcome=\"{outcome}\"}}"
            ))
        })
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_cache_is_invalidated_on_writes_and_redis_going_away_changes_no_answer() {
    let mut redis = PrivateRedis::start();
    let dir = tempfile::tempdir().expect("tempdir");
    let blog = Blog::start(BlogConfig {
        database_url: format!("sqlite://{}", dir.path().join("blog.db").display()),
        jwt_secret: b"a test secret that is long enough for HS256".to_vec(),
        admin_email: None,
        redis_url: Some(format!("redis://127.0.0.1:{}/", redis.port)),
        redis_prefix: "t:".into(),
        inference_url: None,
        inference_timeout: std::time::Duration::from_millis(100),
        backfill_interval: std::time::Duration::from_secs(60),
    })
    .await
    .expect("blog starts");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let app = App {
        url: format!("http://{}", listener.local_addr().expect("addr")),
        http: reqwest::Client::new(),
        _dir: None,
        database: None,
    };
    let router = blog.router();
    tokio::spawn(async move { axum::serve(listener, router).await });

    let user = app.register("alice", "alice@example.com").await;
    let token = user["token"].as_str().expect("token").to_string();
    let (_, created) = app
        .call(Method::POST, "/api/articles", Some(&token), Some(json!({"article": {"title": "t", "description": "d", "body": "b", "tagList": ["one"]}})))
        .await;
    let slug = created["article"]["slug"]
        .as_str()
        .expect("slug")
        .to_string();
    let comments = format!("/api/articles/{slug}/comments");
    let say = |text: &str| json!({"comment": {"body": text}});

    assert_eq!(
        app.call(Method::POST, &comments, Some(&token), Some(say("first")))
            .await
            .0,
        201
    );
    let (_, first) = app.call(Method::GET, &comments, None, None).await; // miss, fills
    let (_, again) = app.call(Method::GET, &comments, None, None).await; // hit
    assert_eq!(first, again);
    let (_, metrics) = app.call_text("/metrics").await;
    assert!(counter(&metrics, "hit") >= 1.0, "{metrics}");

    // A write invalidates: the new comment shows at once.
    assert_eq!(
        app.call(Method::POST, &comments, Some(&token), Some(say("second")))
            .await
            .0,
        201
    );
    let (_, after) = app.call(Method::GET, &comments, None, None).await;
    assert_eq!(after["comments"].as_array().map(Vec::len), Some(2));
    let (_, tags) = app.call(Method::GET, "/api/tags", None, None).await;
    assert_eq!(tags, json!({"tags": ["one"]}));
    app.call(
        Method::POST,
        "/api/articles",
        Some(&token),
        Some(
            json!({"article": {"title": "u", "description": "d", "body": "b", "tagList": ["two"]}}),
        ),
    )
    .await;
    let (_, tags) = app.call(Method::GET, "/api/tags", None, None).await;
    assert_eq!(
        tags,
        json!({"tags": ["one", "two"]}),
        "a new article's tags show at once"
    );

    // Redis goes away: reads are still right, served from the database.
    let _ = redis.child.kill();
    let _ = redis.child.wait();
    let (status, without) = app.call(Method::GET, &comments, None, None).await;
    assert_eq!((status, &without), (200, &after));
    let (status, tags) = app.call(Method::GET, "/api/tags", None, None).await;
    assert_eq!((status, tags), (200, json!({"tags": ["one", "two"]})));
    let (_, metrics) = app.call_text("/metrics").await;
    assert!(
        counter(&metrics, "error") >= 1.0,
        "cache failures are counted: {metrics}"
    );
}
