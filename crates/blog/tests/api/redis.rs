//! Redis: sessions shared by replicas, logout revoking everywhere, the
//! hot-data cache invalidated on writes, and Redis dying mid-test.

use serde_json::json;

use crate::{local_redis, metric, spawn_app, Method, Options, TestDb};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sessions_in_redis_are_shared_by_replicas_and_logout_revokes_everywhere() {
    let db = TestDb::sqlite();
    let (url, prefix) = local_redis();
    let redis = || Options {
        redis: Some((url.clone(), prefix.clone())),
        ..Options::default()
    };
    let one = spawn_app(&db, redis()).await;
    let two = spawn_app(&db, redis()).await;
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
        .arg(format!("{prefix}session:*"))
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
        .arg(format!("{prefix}session:*"))
        .query_async(&mut conn)
        .await
        .expect("keys");
    assert!(keys.is_empty(), "{keys:?}");
}

/// A private redis-server on a free loopback port, killed when dropped.
pub(crate) struct PrivateRedis {
    pub child: std::process::Child,
    pub port: u16,
}

impl PrivateRedis {
    pub fn start() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .expect("probe")
            .local_addr()
            .expect("addr")
            .port();
        Self::restart_on(port)
    }

    /// A redis-server on `port` (a free one, or that of a killed one).
    pub fn restart_on(port: u16) -> Self {
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
    metric(
        metrics,
        &format!("bloginfer_blog_cache_total{{outcome=\"{outcome}\"}}"),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redis_cache_is_invalidated_on_writes_and_redis_going_away_changes_no_answer() {
    let mut redis = PrivateRedis::start();
    let db = TestDb::sqlite();
    let options = Options {
        redis: Some((format!("redis://127.0.0.1:{}/", redis.port), "t:".into())),
        ..Options::default()
    };
    let app = spawn_app(&db, options).await;

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

/// Does not hang: every call of an outage must answer well within this.
const ANSWERS_WITHIN: std::time::Duration = std::time::Duration::from_secs(5);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_redis_down_nobody_is_logged_out_writes_go_on_and_logins_stay_limited() {
    let mut redis = PrivateRedis::start();
    let port = redis.port;
    let db = TestDb::sqlite();
    let mut login_limits = bloginfer_blog::limit::LoginLimits::default();
    login_limits.per_ip_writes.attempts = 1000;
    login_limits.per_account.attempts = 3;
    let options = Options {
        redis: Some((format!("redis://127.0.0.1:{port}/"), "t:".into())),
        login_limits,
        ..Options::default()
    };
    let app = spawn_app(&db, options).await;
    let token = app.token("alice").await;
    let slug = app.article(&token, "t", &[]).await;
    let comments = format!("/api/articles/{slug}/comments");

    let _ = redis.child.kill();
    let _ = redis.child.wait();
    for i in 0..20 {
        let post = app.call(
            Method::POST,
            &comments,
            Some(&token),
            Some(json!({"comment": {"body": format!("comment {i}")}})),
        );
        let (status, body) = tokio::time::timeout(ANSWERS_WITHIN, post)
            .await
            .expect("a comment post does not hang while Redis is down");
        assert_eq!(status, 201, "{body}");
    }
    let fresh = tokio::time::timeout(ANSWERS_WITHIN, async {
        app.call(
            Method::POST,
            "/api/users/login",
            None,
            Some(json!({"user": {"email": "alice@example.com", "password": "correct horse"}})),
        )
        .await
    })
    .await
    .expect("login does not hang while Redis is down");
    assert_eq!(fresh.0, 200, "{}", fresh.1);
    // The login limit falls back to this process instead of failing open.
    let mut statuses = Vec::new();
    for _ in 0..5 {
        let attempt = app.call(
            Method::POST,
            "/api/users/login",
            None,
            Some(json!({"user": {"email": "alice@example.com", "password": "wrong"}})),
        );
        statuses.push(
            tokio::time::timeout(ANSWERS_WITHIN, attempt)
                .await
                .expect("no hang")
                .0,
        );
    }
    assert_eq!(statuses, [422, 422, 422, 429, 429]);
    let (status, ready) = app.call(Method::GET, "/readyz", None, None).await;
    assert_eq!(status, 200, "Redis is not needed for an answer: {ready}");
    assert_eq!(
        ready["services"]["blog"]["redis"], "unreachable; serving from the database",
        "{ready}"
    );

    // Redis comes back empty: sessions were never only there.
    let _redis = PrivateRedis::restart_on(port);
    let (status, me) = app.call(Method::GET, "/api/user", Some(&token), None).await;
    assert_eq!((status, &me["user"]["username"]), (200, &json!("alice")));
    let (status, list) = app.call(Method::GET, &comments, None, None).await;
    assert_eq!(status, 200);
    assert!(list["comments"].as_array().is_some_and(|c| !c.is_empty()));
}
