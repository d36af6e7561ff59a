//! The labeler as a supervised background task: a server's absurd
//! `Retry-After` neither kills nor freezes it, and `/readyz` tells when it is
//! stuck.

use std::sync::Arc;
use std::time::{Duration, Instant};

use bloginfer_labeler::policy::FeedbackPolicy;
use bloginfer_labeler::{LabelerConfig, LabelerService, LlmConfig};
use bloginfer_service::{CancellationToken, Host, ServeConfig};
use bloginfer_testkit::{on_both_databases, Behaviour, ChatServer, TestDb};
use serde_json::Value;

use crate::feedback::{comment, config, label_state, labeler_with, llm, trained_registry};

const DOES_NOT_HANG: Duration = Duration::from_secs(5);

async fn a_thousand_year_retry_after_does_not_freeze_the_labeler(test_db: &TestDb) {
    let server = ChatServer::start().await;
    server.script([Behaviour::Status(429, Some("31536000000".into()))]);
    let (db, labeler) = labeler_with(
        test_db,
        trained_registry(),
        Some(LlmConfig {
            max_pause: Duration::from_millis(500),
            ..llm(&server, 8)
        }),
        LabelerConfig {
            poll_interval: Duration::from_millis(50),
            ..config(FeedbackPolicy::default())
        },
    )
    .await;
    let id = comment(&db, 2, "物流很快，好评").await;
    let token = CancellationToken::new();
    let task = tokio::spawn(Arc::new(labeler).run(token.clone()));
    let start = Instant::now();
    while label_state(&db, id).await.0.is_none() {
        assert!(
            start.elapsed() < DOES_NOT_HANG,
            "the labeler is frozen by the Retry-After"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(label_state(&db, id).await.0.as_deref(), Some("labeled"));
    assert!(!task.is_finished(), "the loop is still running");
    token.cancel();
    tokio::time::timeout(DOES_NOT_HANG, task)
        .await
        .expect("stops")
        .expect("no panic");
}
on_both_databases!(a_thousand_year_retry_after_does_not_freeze_the_labeler);

/// `/readyz` of `url`: its status and body.
async fn readyz(http: &reqwest::Client, url: &str) -> (u16, Value) {
    let response = http
        .get(format!("{url}/readyz"))
        .send()
        .await
        .expect("readyz");
    let status = response.status().as_u16();
    (status, response.json().await.expect("JSON"))
}

/// Polls `/readyz` until its status is `want`.
async fn until_ready_is(http: &reqwest::Client, url: &str, want: u16) -> Value {
    let start = Instant::now();
    loop {
        let (status, body) = readyz(http, url).await;
        if status == want {
            return body;
        }
        assert!(
            start.elapsed() < DOES_NOT_HANG,
            "readyz stayed {status}: {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn readyz_reports_a_stuck_labeler(test_db: &TestDb) {
    let server = ChatServer::start().await;
    // An LLM that takes two seconds: longer than the labeler may stay silent.
    server.always(Behaviour::Slow(Duration::from_secs(2)));
    let (db, labeler) = labeler_with(
        test_db,
        trained_registry(),
        Some(llm(&server, 8)),
        LabelerConfig {
            poll_interval: Duration::from_millis(50),
            stall_after: Duration::from_millis(600),
            ..config(FeedbackPolicy::default())
        },
    )
    .await;
    let mut host = Host::new(ServeConfig::default(), CancellationToken::new());
    host.mount(Arc::new(LabelerService(Arc::new(labeler))));
    let (router, handle) = host.into_router();
    let listener = bloginfer_service::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind");
    let serving = handle.start(listener, router).expect("serve");
    let url = serving.url();
    let http = reqwest::Client::new();

    let idle = until_ready_is(&http, &url, 200).await;
    let task = idle["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["service"] == "labeler"))
        .cloned()
        .expect("the labeler's task");
    assert_eq!(task["critical"], true, "{task}");

    comment(&db, 2, "物流很快，好评").await;
    let stuck = until_ready_is(&http, &url, 503).await;
    assert_eq!(stuck["services"]["labeler"]["ready"], false, "{stuck}");
    // Once the answer comes, it is ready again.
    until_ready_is(&http, &url, 200).await;
    handle.shutdown().await;
}
on_both_databases!(readyz_reports_a_stuck_labeler);
