//! The blog as the chassis hosts it: readiness from the database, the
//! comment back-fill as a supervised task in `/readyz`, request metrics by
//! service and route, and a database failure that stays out of the response.

use std::sync::Arc;
use std::time::Duration;

use bloginfer_blog::{Blog, BlogConfig};
use bloginfer_service::{CancellationToken, Host, ServeConfig, Service};
use serde_json::Value;

use crate::{free_port, metric, spawn_app, Method, Options, TestDb};

async fn readyz(url: &str) -> (u16, Value) {
    let resp = reqwest::get(format!("{url}/readyz")).await.expect("send");
    (
        resp.status().as_u16(),
        resp.json().await.expect("JSON body"),
    )
}

/// An address where nothing answers.
fn dead_address() -> String {
    let probe = std::net::TcpListener::bind("127.0.0.1:0").expect("probe");
    format!("http://{}", probe.local_addr().expect("addr"))
}

async fn ready_while_the_database_answers(db: &TestDb) {
    let app = spawn_app(db, Options::default()).await;
    let (status, body) = readyz(&app.url).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["services"]["blog"]["ready"], true, "{body}");
    assert_eq!(
        body["tasks"],
        serde_json::json!([]),
        "no back-fill without inference"
    );

    app.blog.db().read().close().await;
    let (status, body) = readyz(&app.url).await;
    assert_eq!(status, 503, "{body}");
    assert_eq!(body["services"]["blog"]["ready"], false, "{body}");
    assert_eq!(
        body["services"]["blog"]["reason"],
        "the database does not answer"
    );
}

crate::on_both_databases!(ready_while_the_database_answers);

async fn a_database_failure_is_a_500_without_its_cause(db: &TestDb) {
    let app = spawn_app(db, Options::default()).await;
    sqlx::query("DROP TABLE article_tags")
        .execute(app.blog.db().write())
        .await
        .expect("drop a table the tag list reads");
    let (status, body) = app.call(Method::GET, "/api/tags", None, None).await;
    assert_eq!(status, 500, "{body}");
    assert_eq!(
        body,
        serde_json::json!({"error": {"code": "internal", "message": "something went wrong on our side"}})
    );
    let (_, page) = app.call_text("/metrics").await;
    let series =
        "bloginfer_http_requests_total{service=\"blog\",route=\"/api/tags\",status=\"500\"}";
    assert_eq!(metric(&page, series), 1.0, "{page}");
}

crate::on_both_databases!(a_database_failure_is_a_500_without_its_cause);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_are_counted_by_the_host_under_the_route_template() {
    let db = TestDb::sqlite();
    let app = spawn_app(&db, Options::default()).await;
    for _ in 0..2 {
        let (status, _) = app
            .call(Method::GET, "/api/articles/nope", None, None)
            .await;
        assert_eq!(status, 404);
    }
    let (status, body) = app.call(Method::DELETE, "/api/tags", None, None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (405, Some("method_not_allowed"))
    );
    let (status, page) = app.call_text("/metrics").await;
    assert_eq!(status, 200);
    for (series, value) in [
        ("bloginfer_http_requests_total{service=\"blog\",route=\"/api/articles/{slug}\",status=\"404\"}", 2.0),
        ("bloginfer_http_requests_total{service=\"blog\",route=\"/api/tags\",status=\"405\"}", 1.0),
    ] {
        assert_eq!(metric(&page, series), value, "{series} in\n{page}");
    }
    assert!(
        !page.contains("bloginfer_blog_http_requests"),
        "the blog keeps no request families of its own:\n{page}"
    );
}

/// The blog with an inference URL, on a host whose shutdown the test controls.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_back_fill_is_a_supervised_task_that_stops_with_the_host() {
    let db = TestDb::sqlite();
    let blog = Blog::build(BlogConfig {
        database: bloginfer_blog::db::DbOptions::new(&db.url).expect("database url"),
        jwt_secret: vec![7; 32].into(),
        redis_url: None,
        redis_prefix: String::new(),
        inference_url: Some(dead_address()),
        inference_timeout: Duration::from_millis(200),
        backfill_interval: Duration::from_secs(3600),
        forward_inference: false,
        page_cache: true,
        login_limits: Default::default(),
        behind_proxy: false,
    })
    .await
    .expect("blog builds");
    assert_eq!(blog.name(), "blog");
    let token = CancellationToken::new();
    let mut host = Host::new(ServeConfig::default(), token.clone());
    host.mount(Arc::new(blog));
    let (router, handle) = host.into_router();
    let server = handle.start(free_port().await, router).expect("serve");

    let (status, body) = readyz(&server.url()).await;
    assert_eq!(
        status, 200,
        "inference being down does not make the blog unready: {body}"
    );
    let tasks = body["tasks"].as_array().expect("tasks");
    assert_eq!(tasks.len(), 1, "{body}");
    assert_eq!(
        (&tasks[0]["service"], &tasks[0]["name"], &tasks[0]["state"]),
        (&"blog".into(), &"backfill".into(), &"running".into()),
        "{body}"
    );

    // Shutdown does not wait out the hour-long back-fill interval.
    token.cancel();
    server.stopped().await;
    let stopped = tokio::time::timeout(Duration::from_secs(5), handle.shutdown()).await;
    assert!(stopped.is_ok(), "the back-fill watches its token");
    let report = handle.tasks().report();
    assert_eq!(
        report[0].state,
        bloginfer_service::TaskState::Stopped,
        "{report:?}"
    );
}

#[tokio::test]
async fn a_short_jwt_secret_is_refused_before_connecting() {
    let config = BlogConfig {
        database: bloginfer_blog::db::DbOptions::new("mysql://nobody@127.0.0.1:1/none")
            .expect("database url"),
        jwt_secret: b"short".to_vec().into(),
        redis_url: None,
        redis_prefix: String::new(),
        inference_url: None,
        inference_timeout: Duration::from_secs(1),
        backfill_interval: Duration::from_secs(1),
        forward_inference: false,
        page_cache: false,
        login_limits: Default::default(),
        behind_proxy: false,
    };
    let shown = format!("{config:?}");
    assert!(
        !shown.contains("short"),
        "the secret stays out of Debug: {shown}"
    );
    let Err(e) = Blog::build(config).await else {
        panic!("a 5-byte secret is accepted");
    };
    assert!(e.to_string().contains("at least 32 bytes"), "{e}");
}
