//! `Idempotency-Key` on comment and article creation: a client that retries
//! (after a timeout, a dropped connection, a double click) never creates twice.

use serde_json::{json, Value};

use crate::{spawn_app, App, Method, Options, TestDb};

/// A POST with an optional `Idempotency-Key` (raw bytes, to send bad ones too).
async fn post_with_key(
    app: &App,
    path: &str,
    token: &str,
    key: Option<&[u8]>,
    body: Value,
) -> (u16, Value) {
    let mut req = app
        .http
        .post(format!("{}{path}", app.url))
        .header("Authorization", format!("Token {token}"))
        .json(&body);
    if let Some(key) = key {
        req = req.header(
            "Idempotency-Key",
            reqwest::header::HeaderValue::from_bytes(key).expect("header value"),
        );
    }
    let resp = req.send().await.expect("send");
    let status = resp.status().as_u16();
    (status, resp.json().await.expect("json"))
}

async fn retries_with_an_idempotency_key_create_nothing_twice(db: &TestDb) {
    let app = &spawn_app(db, Options::default()).await;
    let a = app.token("alice").await;
    let b = app.token("bob").await;

    // Articles: the retry answers the original article.
    let article =
        json!({"article": {"title": "Once", "description": "d", "body": "b", "tagList": ["x"]}});
    let (status, first) = post_with_key(
        app,
        "/api/articles",
        &a,
        Some(b"article-1"),
        article.clone(),
    )
    .await;
    assert_eq!(status, 201, "{first}");
    let (status, again) = post_with_key(
        app,
        "/api/articles",
        &a,
        Some(b"article-1"),
        article.clone(),
    )
    .await;
    assert_eq!(status, 201, "{again}");
    assert_eq!(again, first);
    let (_, listed) = app
        .call(Method::GET, "/api/articles?author=alice", None, None)
        .await;
    assert_eq!(listed["articlesCount"], 1);
    let slug = first["article"]["slug"].as_str().expect("slug").to_string();
    let comments = format!("/api/articles/{slug}/comments");

    // Comments: sequential and concurrent retries give one comment.
    let say = json!({"comment": {"body": "只说一次"}});
    let (status, one) = post_with_key(app, &comments, &b, Some(b"c-1"), say.clone()).await;
    assert_eq!(status, 201, "{one}");
    let (status, replay) = post_with_key(app, &comments, &b, Some(b"c-1"), say.clone()).await;
    assert_eq!((status, &replay), (201, &one));
    let race = || post_with_key(app, &comments, &b, Some(b"c-2"), say.clone());
    let (r1, r2, r3, r4, r5, r6) = tokio::join!(race(), race(), race(), race(), race(), race());
    let answers = [r1, r2, r3, r4, r5, r6];
    let ids: Vec<&Value> = answers
        .iter()
        .map(|(_, body)| &body["comment"]["id"])
        .collect();
    assert!(
        answers.iter().all(|(status, _)| *status == 201),
        "{answers:?}"
    );
    assert!(ids.iter().all(|id| *id == ids[0]), "{ids:?}");
    assert_ne!(ids[0], &one["comment"]["id"]);
    // Keys are per user: alice's "c-1" is hers, not bob's.
    let (status, hers) = post_with_key(app, &comments, &a, Some(b"c-1"), say.clone()).await;
    assert_eq!(status, 201);
    assert_ne!(hers["comment"]["id"], one["comment"]["id"]);
    // Without a key, a repeat is a new comment (as before).
    post_with_key(app, &comments, &b, None, say.clone()).await;
    let (_, page) = app.call(Method::GET, &comments, None, None).await;
    assert_eq!(page["comments"].as_array().map(Vec::len), Some(4), "{page}");

    // Keys are bounded printable ASCII.
    let long = [b'k'; 129];
    for bad in [&long[..], b"", b"two words", b"caf\xc3\xa9"] {
        let (status, body) = post_with_key(app, &comments, &b, Some(bad), say.clone()).await;
        assert_eq!(status, 422, "{:?}: {body}", String::from_utf8_lossy(bad));
        assert!(body["errors"]["Idempotency-Key"].is_array(), "{body}");
        let (status, _) = post_with_key(app, "/api/articles", &a, Some(bad), article.clone()).await;
        assert_eq!(status, 422);
    }
    let (status, _) = post_with_key(app, &comments, &b, Some(&long[..128]), say).await;
    assert_eq!(status, 201, "128 bytes is allowed");
}

crate::on_both_databases!(retries_with_an_idempotency_key_create_nothing_twice);
