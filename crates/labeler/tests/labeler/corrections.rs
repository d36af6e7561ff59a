//! Who may turn a correction into training data: an admin's correction is a
//! trusted human label; an article author's only reaches the review queue,
//! capped per corrector, and never replaces a label an admin set or reviewed.

use bloginfer_labeler::policy::FeedbackPolicy;
use bloginfer_labeler::{Review, Sentiment, Source, Status};
use bloginfer_testkit::{on_both_databases, ChatServer, TestDb};

use crate::feedback::{
    comment, correct_as, label_state, labeler, llm, samples, trained_registry, ADMIN,
};

/// Alice (user 1) writes articles; bob (user 2) comments.
const ALICE: i64 = 1;
const BOB: i64 = 2;

async fn an_authors_correction_cannot_flip_a_reviewed_label(test_db: &TestDb) {
    let server = ChatServer::start().await;
    let (db, labeler) = labeler(
        test_db,
        trained_registry(),
        Some(llm(&server, 8)),
        FeedbackPolicy::default(),
    )
    .await;
    // Bob's sarcasm: the LLM says positive, an admin reviews it as negative.
    comment(&db, BOB, "好评？呵呵").await;
    labeler.pass().await.expect("pass");
    let weak = samples(&labeler).await.remove(0);
    assert_eq!(weak.label, Sentiment::Positive);
    labeler
        .store()
        .review(weak.id, Review::Relabel(Sentiment::Negative), "root")
        .await
        .expect("review");

    // The attack: alice posts the same words (plus a space) under her own
    // article and "corrects" them as the article's author.
    let own = comment(&db, ALICE, "好评？ 呵呵").await;
    labeler.pass().await.expect("pass");
    correct_as(&db, own, "positive", ALICE).await;
    labeler.pass().await.expect("pass");
    let all = samples(&labeler).await;
    assert_eq!(all.len(), 1, "{all:?}");
    assert_eq!(
        (all[0].label, all[0].source, all[0].status),
        (Sentiment::Negative, Source::Human, Status::Accepted),
        "the reviewed label stands: {:?}",
        all[0]
    );
    assert_eq!(all[0].labeler, "review:root");
    assert_eq!(label_state(&db, own).await.0.as_deref(), Some("duplicate"));
}
on_both_databases!(an_authors_correction_cannot_flip_a_reviewed_label);

async fn an_authors_correction_waits_for_review_and_an_admins_does_not(test_db: &TestDb) {
    let server = ChatServer::start().await;
    let (db, labeler) = labeler(
        test_db,
        trained_registry(),
        Some(llm(&server, 8)),
        FeedbackPolicy::default(),
    )
    .await;
    let by_author = comment(&db, BOB, "物流很快，好评").await;
    let by_admin = comment(&db, BOB, "质量很好，推荐").await;
    labeler.pass().await.expect("pass");
    correct_as(&db, by_author, "negative", ALICE).await;
    correct_as(&db, by_admin, "negative", ADMIN).await;
    labeler.pass().await.expect("pass");
    let all = samples(&labeler).await;
    let of = |id: i64| {
        all.iter()
            .find(|s| s.comment_id == Some(id))
            .cloned()
            .expect("a sample")
    };
    let proposal = of(by_author);
    assert_eq!(
        (proposal.label, proposal.source, proposal.status),
        (Sentiment::Negative, Source::Human, Status::Review),
        "{proposal:?}"
    );
    assert_eq!(proposal.status_reason.as_deref(), Some("author_correction"));
    assert_eq!(proposal.labeler, format!("author:{ALICE}"));
    let trusted = of(by_admin);
    assert_eq!(
        (trusted.label, trusted.source, trusted.status),
        (Sentiment::Negative, Source::Human, Status::Accepted),
        "{trusted:?}"
    );
    assert_eq!(trusted.labeler, format!("admin:{ADMIN}"));
    // Only the admin's correction is trained on until an admin accepts the other.
    let accepted = labeler.store().accepted().await.expect("accepted");
    let ids: Vec<i64> = accepted.iter().map(|a| a.candidate.id).collect();
    assert_eq!(ids, vec![trusted.id]);
    labeler
        .store()
        .review(proposal.id, Review::Accept, "root")
        .await
        .expect("review");
    assert_eq!(labeler.store().accepted().await.expect("accepted").len(), 2);
}
on_both_databases!(an_authors_correction_waits_for_review_and_an_admins_does_not);

async fn author_corrections_are_capped_per_corrector(test_db: &TestDb) {
    let server = ChatServer::start().await;
    let policy = FeedbackPolicy {
        max_author_corrections_per_day: 2,
        ..FeedbackPolicy::default()
    };
    let (db, labeler) = labeler(test_db, trained_registry(), Some(llm(&server, 8)), policy).await;
    let mut alices = Vec::new();
    for i in 0..3 {
        alices.push(comment(&db, BOB, &format!("第{i}次来，物流很快，好评")).await);
    }
    // Bob corrects on his own article: his cap is his own.
    let bobs = comment(&db, ALICE, "东西不错，满意").await;
    labeler.pass().await.expect("pass");
    for id in &alices {
        correct_as(&db, *id, "negative", ALICE).await;
    }
    correct_as(&db, bobs, "negative", BOB).await;
    labeler.pass().await.expect("pass");
    let (in_review, held) = labeler
        .store()
        .list(Some(Status::Review), 50, 0)
        .await
        .expect("list");
    assert_eq!(in_review, 3, "{held:?}");
    let from_alice = held
        .iter()
        .filter(|s| s.labeler == format!("author:{ALICE}"))
        .count();
    assert_eq!(from_alice, 2, "{held:?}");
    assert!(held.iter().any(|s| s.comment_id == Some(bobs)));
    // The third is shown on the comment but becomes no sample; its weak label stays.
    assert_eq!(
        label_state(&db, alices[2]).await.0.as_deref(),
        Some("capped")
    );
    let third = samples(&labeler)
        .await
        .into_iter()
        .find(|s| s.comment_id == Some(alices[2]))
        .expect("the weak label");
    assert_eq!(
        (third.source, third.label),
        (Source::Llm, Sentiment::Positive)
    );
    let stats = labeler.store().stats().await.expect("stats");
    assert_eq!(stats.comments["capped"], 1, "{:?}", stats.comments);
}
on_both_databases!(author_corrections_are_capped_per_corrector);
