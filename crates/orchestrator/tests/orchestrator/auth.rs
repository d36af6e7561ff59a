//! The admin token against guessing: weak or example tokens are refused at
//! start-up, and failed attempts are limited per client address.

use std::sync::Arc;

use axum::http::StatusCode;

use bloginfer_orchestrator::http::AdminAuthConfig;
use bloginfer_orchestrator::{Orchestrator, OrchestratorError};
use bloginfer_service::{CancellationToken, Host, ServeConfig};
use bloginfer_testkit::TestDb;

use crate::api::{spawn_app, Forever, TOKEN};

async fn build_with(token: &str) -> Result<Orchestrator, OrchestratorError> {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::sqlite();
    let db = bloginfer_db::connect(&test_db.url).await.unwrap();
    let mut config = crate::api::config(dir.path());
    config.admin = AdminAuthConfig {
        token: Some(token.to_string().into()),
        blog_url: None,
    };
    Orchestrator::build(config, db, Arc::new(Forever::default()), None)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn short_or_example_admin_tokens_are_refused_at_start() {
    for weak in ["change-me", "0123456789abcdef0123456789abcde", "CHANGE-ME"] {
        match build_with(weak).await {
            Err(e) => {
                let message = e.to_string();
                assert!(message.contains("ADMIN_TOKEN"), "{message}");
                assert!(!message.contains(weak), "the token leaks: {message}");
            }
            Ok(_) => panic!("the admin token {weak:?} was accepted"),
        }
    }
    build_with("0123456789abcdef0123456789abcdef")
        .await
        .expect("32 random bytes are a token");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_admin_auth_is_rate_limited_per_client() {
    let app = spawn_app().await;
    let attempt = |token: &'static str| {
        app.http
            .get(format!("{}/v1/trainings", app.server.url()))
            .bearer_auth(token)
            .send()
    };
    for i in 0..10 {
        // Not behind a proxy, a forged X-Forwarded-For changes nothing.
        let answer = app
            .http
            .get(format!("{}/v1/trainings", app.server.url()))
            .bearer_auth("a-wrong-guess-at-the-orchestrator-admin-token")
            .header("x-forwarded-for", format!("203.0.113.{i}"))
            .send()
            .await
            .unwrap();
        assert_eq!(answer.status(), 401, "attempt {i}");
    }
    let answer = attempt("another-wrong-guess-at-the-admin-token")
        .await
        .unwrap();
    assert_eq!(answer.status(), 429);
    let wait: u64 = answer
        .headers()
        .get("retry-after")
        .expect("Retry-After")
        .to_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!((1..=60).contains(&wait), "{wait}");
    let body: serde_json::Value = answer.json().await.unwrap();
    assert_eq!(body["error"]["code"], "too_many_failures", "{body}");
    // Locked out, even the right token is not checked: a guess must not be
    // told apart from a hit while the lock lasts.
    let answer = attempt(TOKEN).await.unwrap();
    assert_eq!(answer.status(), 429);
    // Probes stay open.
    let health = app
        .http
        .get(format!("{}/healthz", app.server.url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
}

/// Behind the proxy every request comes from the proxy's address: clients are
/// told apart by the entry the proxy appends to `X-Forwarded-For`, and an
/// entry the client prepends itself does not help it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn behind_a_proxy_the_limit_is_per_forwarded_address() {
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::sqlite();
    let db = bloginfer_db::connect(&test_db.url).await.unwrap();
    let orchestrator = Orchestrator::build(
        crate::api::config(dir.path()),
        db,
        Arc::new(Forever::default()),
        None,
    )
    .unwrap()
    .behind_proxy(true);
    let mut host = Host::new(ServeConfig::default(), CancellationToken::new());
    host.mount(Arc::new(orchestrator));
    let (router, handle) = host.into_router();
    let listener = bloginfer_service::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    let server = handle.start(listener, router).unwrap();
    let http = reqwest::Client::new();
    let attempt = |forwarded: String, token: &'static str| {
        http.get(format!("{}/v1/trainings", server.url()))
            .bearer_auth(token)
            .header("x-forwarded-for", forwarded)
            .send()
    };
    for i in 0..10 {
        let forged = format!("198.51.100.{i}, 203.0.113.7");
        let answer = attempt(forged, "a-wrong-guess-at-the-admin-token")
            .await
            .unwrap();
        assert_eq!(answer.status(), 401);
    }
    let answer = attempt("203.0.113.7".into(), TOKEN).await.unwrap();
    assert_eq!(answer.status(), 429, "the guesser is locked out");
    let answer = attempt("203.0.113.8".into(), TOKEN).await.unwrap();
    assert_eq!(answer.status(), 200, "another client is not");
}

/// Guesses of the admin token sent all at once are counted as they are
/// compared: no more than ten of them are checked.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_concurrent_guesses_is_cut_off_too() {
    let (server, _blog) = orchestrator_with_a_slow_blog(StatusCode::UNAUTHORIZED).await;
    let statuses = concurrently(&server, 30, |i| format!("Bearer guessed-admin-token-{i}")).await;
    let checked = statuses.iter().filter(|s| **s == 401).count();
    let refused = statuses.iter().filter(|s| **s == 429).count();
    assert_eq!((checked, refused), (10, 20), "{statuses:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_admins_dashboard_may_have_many_session_checks_in_flight() {
    // The dashboard loads several lists at once; on a loaded machine the blog
    // answers slowly, and none of those checks is a failure.
    let (server, _blog) = orchestrator_with_a_slow_blog(StatusCode::OK).await;
    let statuses = concurrently(&server, 30, |_| "Token a.valid.session".to_string()).await;
    assert!(statuses.iter().all(|s| *s == 200), "{statuses:?}");
    // Refused sessions count once they are refused.
    let (server, _blog) = orchestrator_with_a_slow_blog(StatusCode::UNAUTHORIZED).await;
    let first = concurrently(&server, 12, |i| format!("Token forged.session.{i}")).await;
    assert!(first.iter().all(|s| *s == 401), "{first:?}");
    let after = concurrently(&server, 1, |_| "Token forged.session.x".to_string()).await;
    assert_eq!(after, [429]);
}

/// `n` concurrent `GET /v1/models` with the `Authorization` values `credential(i)` gives.
async fn concurrently(
    server: &bloginfer_service::Server,
    n: usize,
    credential: impl Fn(usize) -> String,
) -> Vec<u16> {
    let http = reqwest::Client::new();
    let calls: Vec<_> = (0..n)
        .map(|i| {
            let request = http
                .get(format!("{}/v1/models", server.url()))
                .header("authorization", credential(i));
            tokio::spawn(async move { request.send().await.unwrap().status().as_u16() })
        })
        .collect();
    let mut statuses = Vec::new();
    for call in calls {
        statuses.push(call.await.unwrap());
    }
    statuses
}

/// An orchestrator whose blog takes 300 ms to answer every session check with
/// `answer` (an admin user when it is 200).
async fn orchestrator_with_a_slow_blog(
    answer: StatusCode,
) -> (bloginfer_service::Server, (tempfile::TempDir, TestDb)) {
    let blog = axum::Router::new().route(
        "/api/user",
        axum::routing::get(move || async move {
            tokio::time::sleep(std::time::Duration::from_millis(300)).await;
            (
                answer,
                axum::Json(serde_json::json!({"user": {"username": "boss", "admin": true}})),
            )
        }),
    );
    let blog_listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let blog_addr = blog_listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(blog_listener, blog).await });
    let dir = tempfile::tempdir().unwrap();
    let test_db = TestDb::sqlite();
    let db = bloginfer_db::connect(&test_db.url).await.unwrap();
    let mut config = crate::api::config(dir.path());
    config.admin.blog_url = Some(format!("http://{blog_addr}"));
    let orchestrator = Orchestrator::build(config, db, Arc::new(Forever::default()), None).unwrap();
    let mut host = Host::new(ServeConfig::default(), CancellationToken::new());
    host.mount(Arc::new(orchestrator));
    let (router, handle) = host.into_router();
    let listener = bloginfer_service::bind("127.0.0.1:0".parse().unwrap())
        .await
        .unwrap();
    (handle.start(listener, router).unwrap(), (dir, test_db))
}
