//! The login rate limit: failed attempts per account, attempts per client
//! address (`X-Forwarded-For` behind a proxy), 429 with `Retry-After`, and the
//! same counts seen by every replica through Redis.

use std::time::Duration;

use bloginfer_blog::limit::{Limit, LoginLimits};
use serde_json::{json, Value};

use crate::{local_redis, spawn_app, App, Options, TestDb};

fn limits(per_ip: u32, per_account: u32) -> LoginLimits {
    let window = Duration::from_secs(60);
    LoginLimits {
        per_ip: Limit {
            attempts: per_ip,
            window,
        },
        per_account: Limit {
            attempts: per_account,
            window,
        },
        per_ip_writes: Limit {
            attempts: 10_000,
            window,
        },
    }
}

/// A login attempt: status, `Retry-After` and body.
async fn login(
    app: &App,
    email: &str,
    password: &str,
    from: Option<&str>,
) -> (u16, Option<u64>, Value) {
    let mut req = app
        .http
        .post(format!("{}/api/users/login", app.url))
        .json(&json!({"user": {"email": email, "password": password}}));
    if let Some(ip) = from {
        req = req.header("X-Forwarded-For", format!("203.0.113.250, {ip}"));
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    let retry = resp
        .headers()
        .get("retry-after")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse().ok());
    (status, retry, resp.json().await.expect("JSON"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_lock_the_account_until_the_window_ends_and_success_forgives() {
    let db = TestDb::sqlite();
    let options = Options {
        login_limits: limits(100, 3),
        ..Options::default()
    };
    let app = spawn_app(&db, options).await;
    app.register("alice", "alice@example.com").await;
    app.register("bob", "bob@example.com").await;

    // Two failures, then a success forgives them.
    for _ in 0..2 {
        assert_eq!(login(&app, "alice@example.com", "wrong", None).await.0, 422);
    }
    assert_eq!(
        login(&app, "alice@example.com", "correct horse", None)
            .await
            .0,
        200
    );
    for _ in 0..3 {
        assert_eq!(login(&app, "alice@example.com", "wrong", None).await.0, 422);
    }
    let (status, retry, body) = login(&app, "alice@example.com", "correct horse", None).await;
    assert_eq!(status, 429, "locked even with the right password: {body}");
    assert_eq!(body["error"]["code"], "too_many_requests");
    let retry = retry.expect("Retry-After");
    assert!((1..=60).contains(&retry), "{retry}");
    // Another account from the same address is not affected.
    assert_eq!(
        login(&app, "bob@example.com", "correct horse", None)
            .await
            .0,
        200
    );
    // Unknown accounts are counted too (no way to tell them apart by the limit).
    for _ in 0..3 {
        assert_eq!(login(&app, "nobody@example.com", "x", None).await.0, 422);
    }
    assert_eq!(login(&app, "nobody@example.com", "x", None).await.0, 429);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_address_is_limited_and_behind_a_proxy_each_client_counts_alone() {
    let db = TestDb::sqlite();
    let options = Options {
        login_limits: limits(3, 100),
        behind_proxy: true,
        ..Options::default()
    };
    let app = spawn_app(&db, options).await;
    app.register("alice", "alice@example.com").await;
    for _ in 0..3 {
        let (status, ..) = login(
            &app,
            "alice@example.com",
            "correct horse",
            Some("198.51.100.7"),
        )
        .await;
        assert_eq!(status, 200);
    }
    let (status, retry, _) = login(
        &app,
        "alice@example.com",
        "correct horse",
        Some("198.51.100.7"),
    )
    .await;
    assert_eq!((status, retry.is_some()), (429, true));
    // The proxy's own entry is the last one: a forged first entry changes nothing,
    // and another client behind the same proxy still gets in.
    let (status, ..) = login(
        &app,
        "alice@example.com",
        "correct horse",
        Some("198.51.100.8"),
    )
    .await;
    assert_eq!(status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_limit_holds_across_replicas_sharing_redis() {
    let db = TestDb::sqlite();
    let (url, prefix) = local_redis();
    let options = || Options {
        redis: Some((url.clone(), prefix.clone())),
        login_limits: limits(100, 2),
        ..Options::default()
    };
    let one = spawn_app(&db, options()).await;
    let two = spawn_app(&db, options()).await;
    one.register("alice", "alice@example.com").await;
    assert_eq!(login(&one, "alice@example.com", "wrong", None).await.0, 422);
    assert_eq!(login(&two, "alice@example.com", "wrong", None).await.0, 422);
    let (status, retry, _) = login(&one, "alice@example.com", "correct horse", None).await;
    assert_eq!((status, retry.is_some()), (429, true));
    assert_eq!(
        login(&two, "alice@example.com", "correct horse", None)
            .await
            .0,
        429
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guesser_locks_only_herself_out_never_the_owner() {
    let db = TestDb::sqlite();
    let options = Options {
        login_limits: limits(1000, 10),
        behind_proxy: true,
        ..Options::default()
    };
    let app = spawn_app(&db, options).await;
    app.register("alice", "alice@example.com").await;
    let attacker = Some("198.51.100.66");
    for _ in 0..10 {
        let (status, ..) = login(&app, "alice@example.com", "guess", attacker).await;
        assert_eq!(status, 422);
    }
    let (status, ..) = login(&app, "alice@example.com", "correct horse", attacker).await;
    assert_eq!(status, 429, "the guesser is locked out");
    let (status, _, body) = login(
        &app,
        "alice@example.com",
        "correct horse",
        Some("192.0.2.10"),
    )
    .await;
    assert_eq!(
        status, 200,
        "the owner signs in from her own address: {body}"
    );
    // A huge e-mail never becomes a limiter key or reaches argon2.
    let (status, _, body) = login(&app, &"a".repeat(100_000), "x", attacker).await;
    assert_eq!(status, 422, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn registrations_are_limited_per_address() {
    let db = TestDb::sqlite();
    let mut login_limits = limits(1000, 10);
    login_limits.per_ip_writes.attempts = 3;
    let app = spawn_app(
        &db,
        Options {
            login_limits,
            ..Options::default()
        },
    )
    .await;
    for i in 0..3 {
        app.register(&format!("user{i}"), &format!("user{i}@example.com"))
            .await;
    }
    let resp = app
        .http
        .post(format!("{}/api/users", app.url))
        .json(&json!({"user": {"username": "user9", "email": "user9@example.com", "password": "long enough"}}))
        .send()
        .await
        .expect("send");
    assert_eq!(resp.status().as_u16(), 429);
    assert!(resp.headers().contains_key("retry-after"));
}

/// Peak resident memory of this process so far (`VmHWM`), in MiB.
fn peak_rss_mib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").expect("/proc/self/status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .expect("VmHWM")
        / 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forty_concurrent_registrations_hash_a_few_at_a_time() {
    let db = TestDb::sqlite();
    let app = std::sync::Arc::new(spawn_app(&db, Options::default()).await);
    // Warm up (the first hash allocates argon2's pool once).
    app.register("warm", "warm@example.com").await;
    let before = peak_rss_mib();
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..40 {
        let app = app.clone();
        tasks.spawn(async move {
            app.register(&format!("burst{i}"), &format!("burst{i}@example.com"))
                .await
        });
    }
    while let Some(done) = tasks.join_next().await {
        done.expect("registration task");
    }
    let grown = peak_rss_mib().saturating_sub(before);
    // Each argon2id run holds 19 MiB: 40 at once were 760 MiB; one per core, with
    // the freed blocks given back, is a few dozen (the bound leaves room for tests
    // running beside this one).
    assert!(grown < 200, "peak memory grew by {grown} MiB");
}
