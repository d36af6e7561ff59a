//! Comments come in pages of bounded size (a hostile or merely popular
//! article cannot make one answer megabytes long), and bodies are bounded
//! and cleaned of control characters.

use serde_json::{json, Value};

use crate::{spawn_app, Method, Options, TestDb};

/// The largest default page: 20 comments of at most 10 KB each, plus their
/// authors and the envelope.
const DEFAULT_PAGE_MAX_BYTES: usize = 20 * 11 * 1024;

fn ids(page: &Value) -> Vec<i64> {
    page["comments"]
        .as_array()
        .expect("comments")
        .iter()
        .filter_map(|c| c["id"].as_i64())
        .collect()
}

async fn comments_come_in_pages_of_bounded_size(db: &TestDb) {
    // With Redis, so that the cached first page is what is measured too.
    let app = spawn_app(db, Options::local_redis()).await;
    let token = app.token("alice").await;
    let slug = app.article(&token, "popular", &[]).await;
    let comments = format!("/api/articles/{slug}/comments");

    // 200 comments of 10 KB each (Chinese text: 3 bytes a character).
    let long = "好".repeat(10 * 1024 / 3);
    let mut posted = Vec::new();
    for _ in 0..200 {
        let (status, body) = app
            .call(
                Method::POST,
                &comments,
                Some(&token),
                Some(json!({"comment": {"body": long}})),
            )
            .await;
        assert_eq!(status, 201, "{body}");
        posted.push(body["comment"]["id"].as_i64().expect("id"));
    }

    // The default page keeps RealWorld's shape, oldest first, with the total.
    for round in 0..2 {
        let (status, text) = app.call_text(&comments).await;
        assert_eq!(status, 200);
        assert!(
            text.len() <= DEFAULT_PAGE_MAX_BYTES,
            "round {round}: the default page is {} bytes",
            text.len()
        );
        let page: Value = serde_json::from_str(&text).expect("json");
        assert_eq!(page["commentsCount"], 200, "round {round}");
        assert_eq!(ids(&page), posted[..20].to_vec(), "round {round}");
    }

    // Later pages, the largest page, and past the end.
    let (status, page) = app
        .call(
            Method::GET,
            &format!("{comments}?limit=5&offset=195"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200, "{page}");
    assert_eq!(ids(&page), posted[195..].to_vec());
    assert_eq!(page["commentsCount"], 200);
    let (status, page) = app
        .call(
            Method::GET,
            &format!("{comments}?limit=100&offset=20"),
            None,
            None,
        )
        .await;
    assert_eq!(status, 200);
    assert_eq!(ids(&page), posted[20..120].to_vec());
    let (_, page) = app
        .call(Method::GET, &format!("{comments}?offset=500"), None, None)
        .await;
    assert_eq!((ids(&page).len(), &page["commentsCount"]), (0, &json!(200)));

    // Bad paging values: 422 in RealWorld's shape, naming the field.
    for (query, field) in [
        ("limit=0", "limit"),
        ("limit=101", "limit"),
        ("limit=abc", "limit"),
        ("limit=-1", "limit"),
        ("offset=-1", "offset"),
        ("offset=1e3", "offset"),
    ] {
        let (status, body) = app
            .call(Method::GET, &format!("{comments}?{query}"), None, None)
            .await;
        assert_eq!(status, 422, "{query}: {body}");
        assert!(body["errors"][field].is_array(), "{query}: {body}");
    }

    // A new comment shows in the count of a cached first page at once.
    let (status, _) = app
        .call(
            Method::POST,
            &comments,
            Some(&token),
            Some(json!({"comment": {"body": "one more"}})),
        )
        .await;
    assert_eq!(status, 201);
    let (_, page) = app.call(Method::GET, &comments, None, None).await;
    assert_eq!(page["commentsCount"], 201);
    let (_, last) = app
        .call(Method::GET, &format!("{comments}?offset=200"), None, None)
        .await;
    assert_eq!(last["comments"][0]["body"], "one more");
}

crate::on_both_databases!(comments_come_in_pages_of_bounded_size);

async fn comment_bodies_are_bounded_and_cleaned_of_control_characters(db: &TestDb) {
    let app = spawn_app(db, Options::default()).await;
    let token = app.token("alice").await;
    let slug = app.article(&token, "hostile", &[]).await;
    let comments = format!("/api/articles/{slug}/comments");
    let post = |body: String| {
        let (app, token, comments) = (&app, &token, &comments);
        async move {
            app.call(
                Method::POST,
                comments,
                Some(token),
                Some(json!({"comment": {"body": body}})),
            )
            .await
        }
    };

    // Nothing but control characters (or them and whitespace) is blank.
    for blank in ["\u{1}\u{2}\u{7f}", "\u{0}", " \u{1b}\u{85} \u{9f}\n"] {
        let (status, body) = post(blank.to_string()).await;
        assert_eq!(status, 422, "{blank:?}: {body}");
        assert!(body["errors"]["body"].is_array(), "{body}");
    }
    // Over 10 KB as sent is refused.
    let (status, body) = post("a".repeat(10 * 1024 + 1)).await;
    assert_eq!((status, body["errors"]["body"].is_array()), (422, true));

    // Control characters are dropped (newlines and tabs stay), so a stored
    // body never inflates six-fold when JSON escapes it.
    let (status, body) = post(format!("a{}\tb\r\nc", "\u{1}".repeat(10 * 1024 - 10))).await;
    assert_eq!(status, 201, "{body}");
    assert_eq!(body["comment"]["body"], "a\tb\nc");
    let (_, text) = app.call_text(&comments).await;
    assert!(text.len() < 1024, "{} bytes: {text}", text.len());
}

crate::on_both_databases!(comment_bodies_are_bounded_and_cleaned_of_control_characters);
