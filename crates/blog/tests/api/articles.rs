//! Articles, favourites, the feed and tags: create, read, update with a new
//! slug, delete, listing filters and pagination, 401/403/404/422.

use serde_json::json;

use crate::{spawn_app, Method, Options, TestDb};

async fn articles_favorites_and_feed(db: &TestDb) {
    let app = &spawn_app(db, Options::default()).await;
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

crate::on_both_databases!(articles_favorites_and_feed);
