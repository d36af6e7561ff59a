//! Sentiment corrections record who made them: the labeler trusts an admin's
//! correction as a training label and holds an article author's for review,
//! so the corrector must be known (docs/feedback.md, "Corrections").

use serde_json::json;
use sqlx::Row;

use crate::{spawn_app, Method, Options, TestDb};

async fn user_id(db: &bloginfer_blog::db::Db, name: &str) -> i64 {
    sqlx::query("SELECT id FROM users WHERE username = ?")
        .bind(name)
        .fetch_one(db.read())
        .await
        .expect("user")
        .get("id")
}

async fn corrector(db: &bloginfer_blog::db::Db, comment: i64) -> Option<i64> {
    sqlx::query("SELECT sentiment_corrected_by FROM comments WHERE id = ?")
        .bind(comment)
        .fetch_one(db.read())
        .await
        .expect("comment")
        .get("sentiment_corrected_by")
}

async fn a_correction_records_its_corrector(test_db: &TestDb) {
    let app = spawn_app(test_db, Options::default()).await;
    let db = app.blog.db();
    let writer = app.token("writer").await;
    let reader = app.token("reader").await;
    let root = app.token("root").await;
    sqlx::query("UPDATE users SET admin = 1 WHERE username = 'root'")
        .execute(db.write())
        .await
        .expect("make root an admin");
    sqlx::query("UPDATE users SET admin = 0 WHERE username <> 'root'")
        .execute(db.write())
        .await
        .expect("only root is an admin");
    let slug = app.article(&writer, "Corrections", &[]).await;
    let comments = format!("/api/articles/{slug}/comments");
    let mut ids = Vec::new();
    for body in ["物流很快，好评", "质量很好，推荐"] {
        let (status, created) = app
            .call(
                Method::POST,
                &comments,
                Some(&reader),
                Some(json!({"comment": {"body": body}})),
            )
            .await;
        assert_eq!(status, 201, "{created}");
        ids.push(created["comment"]["id"].as_i64().expect("id"));
    }
    for (id, token, who) in [(ids[0], &writer, "writer"), (ids[1], &root, "root")] {
        let (status, corrected) = app
            .call(
                Method::PUT,
                &format!("{comments}/{id}/sentiment"),
                Some(token),
                Some(json!({"label": "negative"})),
            )
            .await;
        assert_eq!(status, 200, "{corrected}");
        // Shown at once, whoever corrected it.
        assert_eq!(corrected["comment"]["sentiment"]["source"], "human");
        assert_eq!(corrected["comment"]["sentiment"]["label"], "negative");
        assert_eq!(
            corrector(&db, id).await,
            Some(user_id(&db, who).await),
            "{who}'s correction"
        );
    }
}
crate::on_both_databases!(a_correction_records_its_corrector);
