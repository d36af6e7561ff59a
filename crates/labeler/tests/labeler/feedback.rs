//! The labeler over a real database (SQLite and MariaDB), a real (small)
//! model and a Chat Completions server on loopback: comments in, masked and
//! judged training samples out; failures retried, then given up on; the
//! no-LLM fallback; human corrections; deduplication; review holds.

use std::path::{Path, PathBuf};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use bloginfer_db::Db;
use bloginfer_labeler::policy::FeedbackPolicy;
use bloginfer_labeler::{
    Labeler, LabelerConfig, LlmConfig, Pass, Review, Sentiment, Source, Status, StoredSample,
};
use bloginfer_model::checkpoint::{Checkpoint, TrainingMetadata};
use bloginfer_model::config::{ModelConfig, Pooling, TrainConfig};
use bloginfer_model::data::{bundled_corpus, split, VALIDATION_FRACTION, VALIDATION_SEED};
use bloginfer_model::train::{fit, Silent};
use bloginfer_model::{ModelFollower, Registry};
use bloginfer_testkit::{on_both_databases, Behaviour, ChatServer, TestDb};
use sqlx::Row;

pub(crate) const POSITIVE: &str = "这家酒店干净整洁，服务也很热情，下次还会再来";
pub(crate) const NEGATIVE: &str = "质量太差了，用了两天就坏了，非常失望";

/// A registry whose current model is small and trained on part of the corpus.
/// A model follower of `registry`, moved by the labeler itself.
pub(crate) fn follow(registry: Registry) -> Arc<ModelFollower> {
    Arc::new(ModelFollower::new(registry, None))
}

pub(crate) fn trained_registry() -> &'static Path {
    static DIR: OnceLock<PathBuf> = OnceLock::new();
    DIR.get_or_init(|| {
        let dir = tempfile::tempdir().expect("tempdir").keep();
        let (mut train, val) = split(bundled_corpus(), VALIDATION_FRACTION, VALIDATION_SEED);
        train.truncate(4000);
        let model = ModelConfig {
            vocab_size: 5000,
            embed_dim: 32,
            hidden_dim: 32,
            pooling: Pooling::Max,
            dropout: 0.0,
            embed_dropout: 0.0,
            ..ModelConfig::default()
        };
        let config = TrainConfig {
            epochs: 3,
            patience: 0,
            ..TrainConfig::default()
        };
        let fitted = fit(&train, &val[..300], model, &config, 1, &mut Silent).expect("training");
        let metadata = TrainingMetadata {
            method: "central".into(),
            metrics: Some(fitted.metrics.clone()),
            ..TrainingMetadata::default()
        };
        let checkpoint =
            Checkpoint::from_model(&fitted.model, fitted.vocab, metadata).expect("checkpoint");
        let registry = Registry::open(&dir).expect("registry");
        let version = registry.publish(&checkpoint).expect("publish");
        registry.set_current(&version).expect("current");
        dir
    })
}

fn empty_registry() -> PathBuf {
    tempfile::tempdir().expect("tempdir").keep()
}

/// Users 1 and 2, the admin 3, and an article by user 1.
pub(crate) async fn seed(db: &Db) -> i64 {
    for (name, admin) in [("alice", 0), ("bob", 0), ("root", 1)] {
        sqlx::query(
            "INSERT INTO users (username, email, password_hash, admin, created_at, updated_at) VALUES (?, ?, 'x', ?, 0, 0)",
        )
        .bind(name)
        .bind(format!("{name}@example.com"))
        .bind(admin)
        .execute(db.write())
        .await
        .expect("user");
    }
    sqlx::query(
        "INSERT INTO articles (slug, author_id, title, description, body, created_at, updated_at) \
         VALUES ('a', 1, 'A', 'a', 'a', 0, 0)",
    )
    .execute(db.write())
    .await
    .expect("article");
    1
}

/// A comment as the blog stores it; returns its id.
pub(crate) async fn comment(db: &Db, author: i64, body: &str) -> i64 {
    let now = bloginfer_service::common::now_millis();
    let sql = db.returning_id(
        "INSERT INTO comments (article_id, author_id, body, created_at, updated_at) VALUES (1, ?, ?, ?, ?)",
    );
    let query = sqlx::query(&sql)
        .bind(author)
        .bind(body)
        .bind(now)
        .bind(now);
    db.insert(query, db.write()).await.expect("comment")
}

/// The admin's correction, as the blog's sentiment endpoint makes it.
async fn correct(db: &Db, comment: i64, label: &str) {
    correct_as(db, comment, label, ADMIN).await;
}

/// The admin seeded by [`seed`].
pub(crate) const ADMIN: i64 = 3;

/// A correction by user `by`, as the blog's sentiment endpoint makes it.
pub(crate) async fn correct_as(db: &Db, comment: i64, label: &str, by: i64) {
    sqlx::query(
        "UPDATE comments SET sentiment_label = ?, sentiment_score = 1.0, sentiment_source = 'human', \
         sentiment_corrected_by = ?, updated_at = updated_at + 1, label_state = NULL, label_attempts = 0, \
         label_after = NULL WHERE id = ?",
    )
    .bind(label)
    .bind(by)
    .bind(comment)
    .execute(db.write())
    .await
    .expect("correction");
}

pub(crate) async fn label_state(db: &Db, comment: i64) -> (Option<String>, i64) {
    let row = sqlx::query("SELECT label_state, label_attempts FROM comments WHERE id = ?")
        .bind(comment)
        .fetch_one(db.read())
        .await
        .expect("comment");
    (row.get("label_state"), row.get("label_attempts"))
}

pub(crate) async fn samples(labeler: &Labeler) -> Vec<StoredSample> {
    let (_, mut all) = labeler.store().list(None, 500, 0).await.expect("list");
    all.reverse();
    all
}

pub(crate) fn config(policy: FeedbackPolicy) -> LabelerConfig {
    LabelerConfig {
        policy,
        retry_delay: Duration::from_millis(1),
        ..LabelerConfig::default()
    }
}

pub(crate) fn llm(server: &ChatServer, batch_size: usize) -> LlmConfig {
    LlmConfig {
        batch_size,
        requests_per_minute: 0.0,
        backoff: Duration::from_millis(5),
        max_retries: 0,
        ..LlmConfig::new(server.base_url(), "mock-llm")
    }
}

/// A labeler with the trained model, the default policy and a fresh LLM server (batches of 8).
async fn with_llm(test_db: &TestDb) -> (ChatServer, Db, Labeler) {
    let server = ChatServer::start().await;
    let (db, labeler) = labeler(
        test_db,
        trained_registry(),
        Some(llm(&server, 8)),
        FeedbackPolicy::default(),
    )
    .await;
    (server, db, labeler)
}

pub(crate) async fn labeler(
    db: &TestDb,
    registry: &Path,
    llm: Option<LlmConfig>,
    policy: FeedbackPolicy,
) -> (Db, Labeler) {
    labeler_with(db, registry, llm, config(policy)).await
}

/// A labeler over a seeded `db` with every setting given.
pub(crate) async fn labeler_with(
    db: &TestDb,
    registry: &Path,
    llm: Option<LlmConfig>,
    config: LabelerConfig,
) -> (Db, Labeler) {
    let db = bloginfer_db::connect(&db.url).await.expect("database");
    seed(&db).await;
    let registry = Registry::open(registry).expect("registry");
    let labeler = Labeler::new(db.clone(), follow(registry), llm, config).expect("labeler");
    (db, labeler)
}

async fn llm_labels_are_masked_judged_and_stored(test_db: &TestDb) {
    let (server, db, labeler) = with_llm(test_db).await;
    let first = comment(
        &db,
        2,
        "东西很好，推荐！有问题发邮件 bob@example.com 或打13812345678",
    )
    .await;
    let second = comment(&db, 2, "今天去了趟超市").await;
    let pass = labeler.pass().await.expect("pass");
    assert_eq!((pass.seen, pass.labelled), (2, 2), "{pass:?}");

    let stored = samples(&labeler).await;
    assert_eq!(stored.len(), 2);
    let s = &stored[0];
    assert_eq!(s.text, "东西很好，推荐！有问题发邮件 <email> 或打<phone>");
    assert_eq!(
        (s.label, s.source, s.status),
        (Sentiment::Positive, Source::Llm, Status::Accepted)
    );
    assert_eq!(s.labeler, "mock-llm");
    assert_eq!(s.confidence, 0.9);
    assert!(s.topics.contains(&"推荐".to_string()), "{:?}", s.topics);
    assert_eq!(s.comment_id, Some(first));
    assert_eq!((s.author_id, s.shard_key.as_str()), (Some(2), "user:2"));
    assert!(
        s.model_version.is_some() && s.model_score.is_some(),
        "the model's view is kept"
    );
    // Nothing personal ever reached the LLM either.
    let sent: Vec<String> = server.seen().iter().flat_map(|r| r.comments()).collect();
    assert!(
        sent.iter()
            .all(|t| !t.contains("bob@") && !t.contains("13812345678")),
        "{sent:?}"
    );

    let neutral = &stored[1];
    assert_eq!(neutral.comment_id, Some(second));
    assert_eq!(
        (neutral.label, neutral.status),
        (Sentiment::Neutral, Status::Rejected)
    );
    assert_eq!(neutral.status_reason.as_deref(), Some("neutral"));
    assert_eq!(label_state(&db, first).await.0.as_deref(), Some("labeled"));

    let stats = labeler.store().stats().await.expect("stats");
    assert_eq!(stats.total, 2);
    assert_eq!(stats.by_source["llm"], 2);
    assert_eq!(stats.by_status["accepted"], 1);
    assert_eq!(stats.by_label["neutral"], 1);
    assert_eq!(stats.comments["labeled"], 2);
    assert_eq!(stats.comments["pending"], 0);
    assert_eq!(
        labeler.pass().await.expect("pass"),
        Pass::default(),
        "nothing left"
    );
}
on_both_databases!(llm_labels_are_masked_judged_and_stored);

async fn comments_are_labelled_in_batches(test_db: &TestDb) {
    let server = ChatServer::start().await;
    let (db, labeler) = labeler(
        test_db,
        trained_registry(),
        Some(llm(&server, 4)),
        FeedbackPolicy::default(),
    )
    .await;
    for i in 0..6 {
        comment(&db, 2, &format!("第{i}次买了，质量很好，满意")).await;
    }
    let pass = labeler.pass().await.expect("pass");
    assert_eq!(pass.labelled, 6);
    let sizes: Vec<usize> = server.seen().iter().map(|r| r.comments().len()).collect();
    assert_eq!(sizes, vec![4, 2]);
}
on_both_databases!(comments_are_labelled_in_batches);

async fn failures_are_retried_later_then_given_up(test_db: &TestDb) {
    let server = ChatServer::start().await;
    let policy = FeedbackPolicy::default();
    let (db, labeler) = labeler(test_db, trained_registry(), Some(llm(&server, 4)), policy).await;
    let id = comment(&db, 2, "很好很好").await;
    let bad_answers = [
        Behaviour::Content("not json".into()),
        Behaviour::Status(500, None),
        Behaviour::Content(r#"{"sentiment": "great"}"#.into()),
        Behaviour::Status(429, Some("0".into())),
    ];
    for (attempt, behaviour) in bad_answers.into_iter().enumerate() {
        server.script([behaviour]);
        tokio::time::sleep(Duration::from_millis(20)).await;
        let pass = labeler.pass().await.expect("pass");
        assert_eq!(
            (pass.retried, pass.labelled),
            (1, 0),
            "attempt {attempt}: {pass:?}"
        );
        assert_eq!(
            label_state(&db, id).await,
            (None, i64::try_from(attempt).unwrap() + 1)
        );
    }
    // The fifth failure is the last (max_attempts = 5).
    server.script([Behaviour::Status(503, None)]);
    tokio::time::sleep(Duration::from_millis(50)).await;
    let pass = labeler.pass().await.expect("pass");
    assert_eq!(pass.failed, 1, "{pass:?}");
    assert_eq!(label_state(&db, id).await.0.as_deref(), Some("failed"));
    assert!(samples(&labeler).await.is_empty());
    assert_eq!(
        labeler.store().stats().await.expect("stats").comments["failed"],
        1
    );
}
on_both_databases!(failures_are_retried_later_then_given_up);

async fn without_an_llm_the_model_labels_what_it_is_sure_of(test_db: &TestDb) {
    let (db, labeler) = labeler(test_db, trained_registry(), None, FeedbackPolicy::default()).await;
    assert_eq!(labeler.source(), Source::Pseudo);
    let positive = comment(&db, 2, POSITIVE).await;
    let negative = comment(&db, 2, NEGATIVE).await;
    let pass = labeler.pass().await.expect("pass");
    assert_eq!(pass.labelled, 2, "{pass:?}");
    for s in samples(&labeler).await {
        assert_eq!(s.source, Source::Pseudo);
        assert!(s.labeler.starts_with("model:"), "{}", s.labeler);
        let want = if s.comment_id == Some(positive) {
            Sentiment::Positive
        } else {
            assert_eq!(s.comment_id, Some(negative));
            Sentiment::Negative
        };
        assert_eq!(s.label, want, "{s:?}");
        // Accepted exactly when the model was at least 0.9 sure.
        let sure = s.confidence >= 0.9;
        assert_eq!(s.status == Status::Accepted, sure, "{s:?}");
        if !sure {
            assert_eq!(s.status_reason.as_deref(), Some("low_confidence"));
        }
    }
    // A threshold of 0.5 accepts whatever the model says.
    let lenient = FeedbackPolicy {
        min_confidence: bloginfer_labeler::Thresholds {
            pseudo: 0.5,
            ..FeedbackPolicy::default().min_confidence
        },
        ..FeedbackPolicy::default()
    };
    let registry = Registry::open(trained_registry()).expect("registry");
    let lenient =
        Labeler::new(db.clone(), follow(registry), None, config(lenient)).expect("labeler");
    comment(&db, 2, "还行吧，价格便宜，就是物流有点慢").await;
    assert_eq!(lenient.pass().await.expect("pass").labelled, 1);
    let newest = samples(&lenient).await.pop().expect("sample");
    assert_eq!(
        (newest.source, newest.status),
        (Source::Pseudo, Status::Accepted)
    );
}
on_both_databases!(without_an_llm_the_model_labels_what_it_is_sure_of);

async fn without_any_model_the_fallback_waits(test_db: &TestDb) {
    let (db, labeler) = labeler(test_db, &empty_registry(), None, FeedbackPolicy::default()).await;
    let id = comment(&db, 2, POSITIVE).await;
    let pass = labeler.pass().await.expect("pass");
    assert_eq!((pass.retried, pass.labelled), (1, 0));
    assert_eq!(
        label_state(&db, id).await,
        (None, 0),
        "waiting is not an attempt"
    );
    assert!(samples(&labeler).await.is_empty());
}
on_both_databases!(without_any_model_the_fallback_waits);

async fn a_human_correction_overrides_the_weak_label(test_db: &TestDb) {
    let (server, db, labeler) = with_llm(test_db).await;
    let id = comment(&db, 2, "好评？呵呵").await;
    assert_eq!(labeler.pass().await.expect("pass").labelled, 1);
    let weak = samples(&labeler).await.remove(0);
    assert_eq!(
        (weak.label, weak.source),
        (Sentiment::Positive, Source::Llm)
    );

    correct(&db, id, "negative").await;
    assert_eq!(labeler.pass().await.expect("pass").labelled, 1);
    let corrected = samples(&labeler).await.remove(0);
    assert_eq!(corrected.id, weak.id, "the same sample, relabelled");
    assert_eq!(
        (corrected.label, corrected.source, corrected.status),
        (Sentiment::Negative, Source::Human, Status::Accepted)
    );
    assert_eq!(corrected.confidence, 1.0);
    assert_eq!(server.seen().len(), 1, "a correction needs no LLM call");

    // The same words from someone else later: the LLM's label does not replace the human one.
    comment(&db, 1, "好评？ 呵呵").await;
    let pass = labeler.pass().await.expect("pass");
    assert_eq!((pass.duplicates, pass.labelled), (1, 0), "{pass:?}");
    let all = samples(&labeler).await;
    assert_eq!(all.len(), 1);
    assert_eq!(
        (all[0].label, all[0].source),
        (Sentiment::Negative, Source::Human)
    );
}
on_both_databases!(a_human_correction_overrides_the_weak_label);

async fn the_same_text_is_one_sample(test_db: &TestDb) {
    let (server, db, labeler) = with_llm(test_db).await;
    let first = comment(&db, 2, "物流很快，好评").await;
    // Half-width punctuation and spaces normalise to the same text.
    let second = comment(&db, 1, "物流很快,  好评").await;
    let third = comment(&db, 2, "物流很快，好评").await;
    labeler.pass().await.expect("pass");
    labeler.pass().await.expect("pass");
    assert_eq!(samples(&labeler).await.len(), 1);
    assert_eq!(label_state(&db, first).await.0.as_deref(), Some("labeled"));
    for id in [second, third] {
        assert_eq!(label_state(&db, id).await.0.as_deref(), Some("duplicate"));
    }
    let sent: usize = server.seen().iter().map(|r| r.comments().len()).sum();
    assert_eq!(sent, 1, "the LLM saw the text once");
}
on_both_databases!(the_same_text_is_one_sample);

async fn disagreements_are_held_for_review(test_db: &TestDb) {
    let server = ChatServer::start().await;
    // What the model thinks of the test text, to set the bar just below it.
    let registry = Registry::open(trained_registry()).expect("registry");
    let model = bloginfer_labeler::opinion::CurrentModel::new(follow(registry), true);
    let view = model
        .predict(vec![NEGATIVE.to_string()])
        .await
        .expect("predict")
        .expect("a model")
        .remove(0);
    assert_eq!(view.sentiment(), Sentiment::Negative, "{view:?}");
    assert!(view.confidence() > 0.6, "{view:?}");
    let policy = FeedbackPolicy {
        disagreement_confidence: view.confidence() - 0.01,
        ..FeedbackPolicy::default()
    };
    let (db, labeler) = labeler(
        test_db,
        trained_registry(),
        Some(llm(&server, 8)),
        policy.clone(),
    )
    .await;
    server.always(Behaviour::Label("positive", 0.95));
    comment(&db, 2, NEGATIVE).await;
    labeler.pass().await.expect("pass");
    let held = samples(&labeler).await.remove(0);
    assert_eq!(
        (held.label, held.status),
        (Sentiment::Positive, Status::Review)
    );
    assert_eq!(held.status_reason.as_deref(), Some("disagreement"));
    assert_eq!(held.model_label.as_deref(), Some("negative"));
    let (total, in_review) = labeler
        .store()
        .list(Some(Status::Review), 10, 0)
        .await
        .expect("list");
    assert_eq!((total, in_review.len()), (1, 1));
    assert!(labeler
        .store()
        .accepted()
        .await
        .expect("accepted")
        .is_empty());

    // An admin decides: the model was right.
    let reviewed = labeler
        .store()
        .review(held.id, Review::Relabel(Sentiment::Negative), "root")
        .await
        .expect("review")
        .expect("sample");
    assert_eq!(
        (reviewed.label, reviewed.source, reviewed.status),
        (Sentiment::Negative, Source::Human, Status::Accepted)
    );
    assert_eq!(reviewed.labeler, "review:root");
    assert_eq!(labeler.store().accepted().await.expect("accepted").len(), 1);
    assert!(labeler
        .store()
        .review(999_999, Review::Reject, "root")
        .await
        .expect("review")
        .is_none());

    // Without holding, the LLM's label is accepted as is.
    let lenient = FeedbackPolicy {
        hold_disagreements: false,
        ..policy
    };
    let registry = Registry::open(trained_registry()).expect("registry");
    let lenient = Labeler::new(
        db.clone(),
        follow(registry),
        Some(llm(&server, 8)),
        config(lenient),
    )
    .expect("labeler");
    comment(&db, 2, "质量太差了，用了三天就坏了，非常失望").await;
    lenient.pass().await.expect("pass");
    let newest = samples(&lenient).await.pop().expect("sample");
    assert_eq!(
        (newest.label, newest.status),
        (Sentiment::Positive, Status::Accepted)
    );
}
on_both_databases!(disagreements_are_held_for_review);

async fn a_deleted_comment_takes_its_sample_along(test_db: &TestDb) {
    let (_server, db, labeler) = with_llm(test_db).await;
    let id = comment(&db, 2, "很好，推荐").await;
    labeler.pass().await.expect("pass");
    assert_eq!(samples(&labeler).await.len(), 1);
    sqlx::query("DELETE FROM comments WHERE id = ?")
        .bind(id)
        .execute(db.write())
        .await
        .expect("delete");
    assert!(samples(&labeler).await.is_empty());
}
on_both_databases!(a_deleted_comment_takes_its_sample_along);

async fn used_samples_record_their_run(test_db: &TestDb) {
    let (_server, db, labeler) = with_llm(test_db).await;
    comment(&db, 2, "很好，推荐").await;
    comment(&db, 2, "太差了，失望").await;
    labeler.pass().await.expect("pass");
    let accepted = labeler.store().accepted().await.expect("accepted");
    let ids: Vec<i64> = accepted.iter().map(|a| a.candidate.id).collect();
    assert_eq!(ids.len(), 2);
    labeler
        .store()
        .mark_used("run-x", &ids)
        .await
        .expect("mark");
    for s in samples(&labeler).await {
        assert_eq!(s.used_by_run.as_deref(), Some("run-x"));
        assert!(s.used_at.is_some());
    }
    assert_eq!(labeler.store().stats().await.expect("stats").used, 2);
}
on_both_databases!(used_samples_record_their_run);
