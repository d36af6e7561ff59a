//! Updating an article as a standard RealWorld editor does: it sends the
//! whole form back, title and tags included.

use serde_json::{json, Value};

use crate::{spawn_app, Method, Options, TestDb};

fn slug_of(body: &Value) -> String {
    body["article"]["slug"].as_str().expect("slug").to_string()
}

async fn article_updates_keep_links_and_apply_tags(db: &TestDb) {
    let app = spawn_app(db, Options::local_redis()).await;
    let a = app.token("alice").await;
    let slug = app.article(&a, "Stable Title", &["old", "kept"]).await;
    let path = format!("/api/articles/{slug}");
    // Warm the cached tag list, so its invalidation is tested too.
    let (_, tags) = app.call(Method::GET, "/api/tags", None, None).await;
    assert_eq!(tags, json!({"tags": ["kept", "old"]}));

    // The whole form with an unchanged title (whitespace around it is not a change).
    let form = json!({"article": {"title": " Stable Title ", "description": "d2", "body": "new body", "tagList": ["kept", "new"]}});
    let (status, updated) = app.call(Method::PUT, &path, Some(&a), Some(form)).await;
    assert_eq!(status, 200, "{updated}");
    assert_eq!(slug_of(&updated), slug, "an unchanged title keeps the slug");
    assert_eq!(updated["article"]["body"], "new body");
    assert_eq!(
        updated["article"]["tagList"],
        json!(["kept", "new"]),
        "tags in an update are applied"
    );
    let (status, read) = app.call(Method::GET, &path, None, None).await;
    assert_eq!(status, 200, "the old link still works");
    assert_eq!(read["article"]["tagList"], json!(["kept", "new"]));
    let (_, by_new) = app
        .call(Method::GET, "/api/articles?tag=new", None, None)
        .await;
    assert_eq!(by_new["articlesCount"], 1, "{by_new}");
    let (_, by_old) = app
        .call(Method::GET, "/api/articles?tag=old", None, None)
        .await;
    assert_eq!(by_old["articlesCount"], 0, "{by_old}");
    let (_, listed) = app.call(Method::GET, "/api/articles", None, None).await;
    assert_eq!(listed["articles"][0]["tagList"], json!(["kept", "new"]));
    let (_, tags) = app.call(Method::GET, "/api/tags", None, None).await;
    assert_eq!(tags, json!({"tags": ["kept", "new"]}));

    // Without `tagList` the tags stay; an empty list clears them.
    let (_, same) = app
        .call(
            Method::PUT,
            &path,
            Some(&a),
            Some(json!({"article": {"body": "again"}})),
        )
        .await;
    assert_eq!(same["article"]["tagList"], json!(["kept", "new"]));
    assert_eq!(slug_of(&same), slug);
    let (_, cleared) = app
        .call(
            Method::PUT,
            &path,
            Some(&a),
            Some(json!({"article": {"tagList": []}})),
        )
        .await;
    assert_eq!(cleared["article"]["tagList"], json!([]));

    // Bad tags are refused, not dropped.
    let too_many: Vec<String> = (0..11).map(|i| format!("t{i}")).collect();
    for bad in [json!(too_many), json!(["a".repeat(41)]), json!(["x\u{1}y"])] {
        let (status, body) = app
            .call(
                Method::PUT,
                &path,
                Some(&a),
                Some(json!({"article": {"tagList": bad}})),
            )
            .await;
        assert_eq!(status, 422, "{body}");
        assert!(body["errors"]["tagList"].is_array(), "{body}");
    }

    // A changed title may change the slug; the old one is then gone.
    let (status, renamed) = app
        .call(
            Method::PUT,
            &path,
            Some(&a),
            Some(json!({"article": {"title": "New Title"}})),
        )
        .await;
    assert_eq!(status, 200, "{renamed}");
    let new_slug = slug_of(&renamed);
    assert!(new_slug.starts_with("new-title-"), "{new_slug}");
    assert_eq!(app.call(Method::GET, &path, None, None).await.0, 404);
}

crate::on_both_databases!(article_updates_keep_links_and_apply_tags);
