//! The blog API over real HTTP on loopback, hosted as `bloginfer blog` hosts
//! it (the chassis adds probes, `/metrics` and the JSON 404). Suites that do
//! not depend on the database run on SQLite and on MariaDB (127.0.0.1:3306, a
//! fresh database per test, dropped afterwards); Redis tests use the local
//! Redis or a private `redis-server`.

// Helpers may unwrap too (clippy.toml allows it only in #[test] fns): a panic fails the test.
#![allow(clippy::unwrap_used)]

mod accounts;
mod article_updates;
mod articles;
mod backfill;
mod comment_pages;
mod comments;
mod corrections;
mod host;
mod idempotency;
mod limits;
mod pages;
mod redis;
mod users;

use std::sync::Arc;
use std::time::Duration;

use bloginfer_blog::limit::LoginLimits;
use bloginfer_blog::{Blog, BlogConfig};
use bloginfer_service::{CancellationToken, Host, ServeConfig, Server, Service};
pub use reqwest::Method;
use serde_json::{json, Value};
use tokio::net::TcpListener;

pub use bloginfer_testkit::{unique, TestDb};

/// How a test app is configured beyond its database.
pub struct Options {
    pub inference_url: Option<String>,
    /// Redis URL and key prefix.
    pub redis: Option<(String, String)>,
    pub login_limits: LoginLimits,
    pub behind_proxy: bool,
    pub forward_inference: bool,
}

impl Default for Options {
    /// The default limits, except that registrations per address are plenty
    /// (every test user comes from 127.0.0.1).
    fn default() -> Self {
        let mut login_limits = LoginLimits::default();
        login_limits.per_ip_writes.attempts = 10_000;
        Self {
            inference_url: None,
            redis: None,
            login_limits,
            behind_proxy: false,
            forward_inference: false,
        }
    }
}

impl Options {
    /// Sessions and caches in the local Redis under a fresh prefix.
    pub fn local_redis() -> Self {
        Self {
            redis: Some(local_redis()),
            ..Self::default()
        }
    }
}

/// The local Redis and a key prefix no other test uses.
pub fn local_redis() -> (String, String) {
    (
        "redis://127.0.0.1:6379/".to_string(),
        format!("bloginfer-test-{}-{}:", std::process::id(), unique()),
    )
}

/// A running blog service.
pub struct App {
    pub url: String,
    pub http: reqwest::Client,
    pub blog: Blog,
    /// The server, which runs until the test's runtime ends.
    _server: Server,
}

/// Starts the blog on `db` and a free loopback port.
pub async fn spawn_app(db: &TestDb, options: Options) -> App {
    let (redis_url, redis_prefix) = match options.redis {
        Some((url, prefix)) => (Some(url), prefix),
        None => (None, String::new()),
    };
    let blog = Blog::build(BlogConfig {
        database: bloginfer_blog::db::DbOptions::new(&db.url).expect("database url"),
        jwt_secret: b"a test secret that is long enough for HS256"
            .to_vec()
            .into(),
        redis_url,
        redis_prefix,
        inference_url: options.inference_url,
        inference_timeout: Duration::from_millis(500),
        backfill_interval: Duration::from_millis(100),
        page_cache: true,
        forward_inference: options.forward_inference,
        login_limits: options.login_limits,
        behind_proxy: options.behind_proxy,
    })
    .await
    .expect("blog builds");
    let server = serve(blog.clone(), free_port().await).await;
    App {
        url: server.url(),
        http: reqwest::Client::new(),
        blog,
        _server: server,
    }
}

/// A listener on a free loopback port.
pub async fn free_port() -> TcpListener {
    bloginfer_service::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind")
}

/// Mounts `service` alone on a host and serves it on `listener`.
pub async fn serve(service: impl Service, listener: TcpListener) -> Server {
    let mut host = Host::new(ServeConfig::default(), CancellationToken::new());
    host.mount(Arc::new(service));
    let (router, handle) = host.into_router();
    handle.start(listener, router).expect("serve")
}

impl App {
    /// A request; the status and the JSON body (`null` when empty).
    pub async fn call(
        &self,
        method: Method,
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

    /// A GET whose body is not JSON.
    pub async fn call_text(&self, path: &str) -> (u16, String) {
        let resp = self
            .http
            .get(format!("{}{path}", self.url))
            .send()
            .await
            .expect("send");
        (resp.status().as_u16(), resp.text().await.expect("body"))
    }

    /// Registers a user (password "correct horse") and returns the user object.
    pub async fn register(&self, name: &str, email: &str) -> Value {
        let (status, body) = self
            .call(
                Method::POST,
                "/api/users",
                None,
                Some(json!({"user": {"username": name, "email": email, "password": "correct horse"}})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        body["user"].clone()
    }

    /// Registers a user and returns their token.
    pub async fn token(&self, name: &str) -> String {
        let user = self.register(name, &format!("{name}@example.com")).await;
        user["token"].as_str().expect("token").to_string()
    }

    /// Creates an article and returns its slug.
    pub async fn article(&self, token: &str, title: &str, tags: &[&str]) -> String {
        let (status, created) = self
            .call(
                Method::POST,
                "/api/articles",
                Some(token),
                Some(json!({"article": {"title": title, "description": "d", "body": "b", "tagList": tags}})),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        created["article"]["slug"]
            .as_str()
            .expect("slug")
            .to_string()
    }
}

/// The value of a metric line that starts with `series` in a `/metrics` page.
pub fn metric(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find(|l| l.starts_with(series))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0.0)
}

/// Runs a suite on SQLite and on MariaDB as two tests.
pub(crate) use bloginfer_testkit::on_both_databases;
