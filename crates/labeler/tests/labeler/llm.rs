//! The Chat Completions client over real HTTP against a loopback server:
//! proper answers, batches, malformed and off-schema answers, 429 with
//! Retry-After, 5xx, timeouts, refusals and an unreachable server.

use std::time::Duration;

use bloginfer_labeler::{LlmClient, LlmConfig, LlmError, Sentiment};
use bloginfer_testkit::{Behaviour, ChatServer};
use prometheus_client::metrics::family::Family;

fn config(server: &ChatServer) -> LlmConfig {
    LlmConfig {
        api_key: Some("test-key".to_string().into()),
        backoff: Duration::from_millis(20),
        requests_per_minute: 0.0,
        timeout: Duration::from_secs(10),
        ..LlmConfig::new(server.base_url(), "qwen-test")
    }
}

fn client(config: LlmConfig) -> LlmClient {
    LlmClient::new(config, Family::default()).expect("client")
}

fn texts(items: &[&str]) -> Vec<String> {
    items.iter().map(|s| s.to_string()).collect()
}

#[tokio::test]
async fn a_proper_answer_is_a_label() {
    let server = ChatServer::start().await;
    let llm = client(config(&server));
    let verdicts = llm
        .label(&texts(&["这家酒店干净整洁，服务也很热情"]))
        .await
        .expect("labels");
    assert_eq!(verdicts.len(), 1);
    assert_eq!(verdicts[0].sentiment, Sentiment::Positive);
    assert_eq!(verdicts[0].confidence, 0.9);
    assert!(verdicts[0].topics.contains(&"干净".to_string()));
    assert_eq!(verdicts[0].reason.as_deref(), Some("lexicon: positive"));
    let seen = server.seen();
    assert_eq!(seen.len(), 1);
    let request = &seen[0];
    assert_eq!(request.authorization.as_deref(), Some("Bearer test-key"));
    assert_eq!(request.body["model"], "qwen-test");
    assert_eq!(request.body["temperature"], 0);
    assert_eq!(request.body["response_format"]["type"], "json_object");
    assert_eq!(
        request.comments(),
        texts(&["这家酒店干净整洁，服务也很热情"])
    );
    let system = request.body["messages"][0]["content"]
        .as_str()
        .unwrap_or_default();
    assert!(system.contains("\"sentiment\""), "{system}");
}

#[tokio::test]
async fn several_comments_go_in_one_request() {
    let server = ChatServer::start().await;
    let llm = client(LlmConfig {
        api_key: None,
        json_mode: false,
        ..config(&server)
    });
    let batch = texts(&["质量太差了，非常失望", "今天星期三", "物流很快，好评"]);
    let verdicts = llm.label(&batch).await.expect("labels");
    assert_eq!(
        verdicts.iter().map(|v| v.sentiment).collect::<Vec<_>>(),
        [Sentiment::Negative, Sentiment::Neutral, Sentiment::Positive]
    );
    let seen = server.seen();
    assert_eq!(seen.len(), 1, "one request for three comments");
    assert_eq!(seen[0].comments(), batch);
    assert_eq!(seen[0].authorization, None);
    assert!(seen[0].body.get("response_format").is_none());
}

#[tokio::test]
async fn malformed_json_is_an_error_and_not_retried() {
    let server = ChatServer::start().await;
    server.script([Behaviour::Content(
        "I think it is positive: {\"sentiment\": \"positive\"".into(),
    )]);
    let llm = client(config(&server));
    let err = llm.label(&texts(&["很好"])).await.expect_err("malformed");
    assert!(matches!(err, LlmError::Malformed(_)), "{err}");
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn a_wrong_schema_is_an_error() {
    let server = ChatServer::start().await;
    let llm = client(config(&server));
    for content in [
        r#"{"sentiment": "happy", "confidence": 0.9, "topics": [], "reason": "x"}"#,
        r#"{"sentiment": "positive", "confidence": 0.9}"#,
        r#"{"label": "positive"}"#,
        r#"{"sentiment": "positive", "confidence": 2, "topics": [], "reason": "x"}"#,
    ] {
        server.script([Behaviour::Content(content.into())]);
        let err = llm.label(&texts(&["很好"])).await.expect_err(content);
        assert!(matches!(err, LlmError::Schema(_)), "{content}: {err}");
    }
    // A batch answer missing one comment is off-schema too.
    server.script([Behaviour::Content(
        r#"{"labels": [{"id": 1, "sentiment": "positive", "confidence": 0.9, "topics": [], "reason": "x"}]}"#
            .into(),
    )]);
    let err = llm
        .label(&texts(&["很好", "很差"]))
        .await
        .expect_err("one missing");
    assert!(matches!(err, LlmError::Schema(_)), "{err}");
}

#[tokio::test]
async fn a_429_waits_as_long_as_retry_after_says() {
    let server = ChatServer::start().await;
    server.script([Behaviour::Status(429, Some("1".into()))]);
    let llm = client(config(&server));
    let verdicts = llm
        .label(&texts(&["很好"]))
        .await
        .expect("labels after the wait");
    assert_eq!(verdicts[0].sentiment, Sentiment::Positive);
    let seen = server.seen();
    assert_eq!(seen.len(), 2);
    let waited = seen[1].at - seen[0].at;
    assert!(
        waited >= Duration::from_millis(950),
        "retried after {waited:?}"
    );
}

#[tokio::test]
async fn a_long_retry_after_ends_the_call_and_holds_every_later_one() {
    let server = ChatServer::start().await;
    server.script([Behaviour::Status(429, Some("3600".into()))]);
    let llm = client(config(&server));
    let err = llm
        .label(&texts(&["很好"]))
        .await
        .expect_err("rate limited");
    assert_eq!(
        err,
        LlmError::RateLimited {
            retry_after: Some(Duration::from_secs(3600))
        }
    );
    assert_eq!(server.seen().len(), 1);
    let hold = llm.ready_at() - tokio::time::Instant::now();
    assert!(hold > Duration::from_secs(3500), "held for {hold:?}");
}

#[tokio::test]
async fn server_errors_are_retried_with_backoff() {
    let server = ChatServer::start().await;
    server.script([Behaviour::Status(500, None), Behaviour::Status(503, None)]);
    let llm = client(config(&server));
    let verdicts = llm
        .label(&texts(&["很差"]))
        .await
        .expect("third time lucky");
    assert_eq!(verdicts[0].sentiment, Sentiment::Negative);
    assert_eq!(server.seen().len(), 3);

    let broken = ChatServer::start().await;
    broken.always(Behaviour::Status(502, None));
    let llm = client(LlmConfig {
        max_retries: 2,
        ..config(&broken)
    });
    let err = llm
        .label(&texts(&["很差"]))
        .await
        .expect_err("always failing");
    assert!(matches!(err, LlmError::Server { status: 502, .. }), "{err}");
    assert_eq!(broken.seen().len(), 3, "the first attempt and two retries");
}

#[tokio::test]
async fn a_slow_answer_times_out() {
    let server = ChatServer::start().await;
    server.always(Behaviour::Slow(Duration::from_secs(5)));
    let llm = client(LlmConfig {
        timeout: Duration::from_millis(300),
        max_retries: 1,
        ..config(&server)
    });
    let err = llm.label(&texts(&["很好"])).await.expect_err("timeout");
    assert_eq!(err, LlmError::Timeout);
    assert_eq!(server.seen().len(), 2);
}

#[tokio::test]
async fn refusals_are_not_retried() {
    let server = ChatServer::start().await;
    server.always(Behaviour::Status(401, None));
    let llm = client(config(&server));
    let err = llm.label(&texts(&["很好"])).await.expect_err("refused");
    assert!(
        matches!(err, LlmError::Refused { status: 401, .. }),
        "{err}"
    );
    assert_eq!(server.seen().len(), 1);
}

#[tokio::test]
async fn an_unreachable_server_is_reported() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("port");
    let addr = listener.local_addr().expect("addr");
    drop(listener);
    let llm = client(LlmConfig {
        max_retries: 1,
        backoff: Duration::from_millis(10),
        ..LlmConfig::new(format!("http://{addr}/v1"), "m")
    });
    let err = llm.label(&texts(&["很好"])).await.expect_err("unreachable");
    assert!(matches!(err, LlmError::Unreachable(_)), "{err}");
}

#[test]
fn bad_settings_are_refused() {
    for (url, model) in [("ftp://x/v1", "m"), ("http://127.0.0.1:1/v1", " ")] {
        assert!(LlmClient::new(LlmConfig::new(url, model), Family::default()).is_err());
    }
}

#[tokio::test]
async fn a_huge_or_endless_retry_after_is_clamped_and_never_panics() {
    // 1e20 seconds overflows a Duration; 31536000000 is a thousand years.
    for value in ["1e20", "31536000000", "inf"] {
        let server = ChatServer::start().await;
        server.script([Behaviour::Status(429, Some(value.into()))]);
        let llm = client(LlmConfig {
            max_pause: Duration::from_secs(2),
            ..config(&server)
        });
        let call = tokio::spawn(async move {
            let result = llm.label(&texts(&["很好"])).await;
            (result, llm.ready_at() - tokio::time::Instant::now())
        });
        let (result, hold) = tokio::time::timeout(Duration::from_secs(5), call)
            .await
            .expect("does not hang")
            .expect("does not panic");
        let err = result.expect_err("rate limited");
        assert!(
            matches!(err, LlmError::RateLimited { .. }),
            "{value}: {err}"
        );
        assert!(hold <= Duration::from_secs(2), "{value}: held for {hold:?}");
    }
}
