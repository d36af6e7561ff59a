//! The labeler's own costs, apart from the LLM's thinking: masking personal
//! data, and passes over 2,000 comments on SQLite, (a) the fallback with a
//! default-size model and (b) the LLM path against the loopback Chat
//! Completions server (batches of 8, no rate limit), which answers at once,
//! so what is timed is prompting, parsing, judging and the database.
//! Prints one JSON object and writes `bench/results/labeler.json`.
//!
//! `cargo bench -p bloginfer-labeler --bench labeler`

// A bench fails loudly on a broken setup; unwrapping is how it reports it.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bloginfer_db::Db;
use bloginfer_labeler::{pii, FeedbackPolicy, Labeler, LabelerConfig, LlmConfig};
use bloginfer_model::checkpoint::{Checkpoint, TrainingMetadata};
use bloginfer_model::data::bundled_corpus;
use bloginfer_model::train::build_vocab;
use bloginfer_model::{ModelConfig, Registry, SentimentModel, TrainConfig};
use bloginfer_testkit::ChatServer;
use rand::rngs::StdRng;
use rand::SeedableRng;

const COMMENTS: usize = 2000;
const AUTHORS: i64 = 50;

async fn database(dir: &std::path::Path, texts: &[String]) -> Db {
    let db = bloginfer_db::connect(&format!("sqlite://{}", dir.join("blog.db").display()))
        .await
        .expect("database");
    for i in 1..=AUTHORS {
        sqlx::query(
            "INSERT INTO users (username, email, password_hash, created_at, updated_at) VALUES (?, ?, 'x', 0, 0)",
        )
        .bind(format!("u{i}"))
        .bind(format!("u{i}@example.com"))
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
    for (i, text) in texts.iter().enumerate() {
        sqlx::query(
            "INSERT INTO comments (article_id, author_id, body, created_at, updated_at) VALUES (1, ?, ?, 0, 0)",
        )
        .bind(i64::try_from(i).unwrap() % AUTHORS + 1)
        .bind(text)
        .execute(db.write())
        .await
        .expect("comment");
    }
    db
}

/// Passes until the queue is empty; comments a second.
async fn drain(labeler: &Labeler) -> f64 {
    let start = Instant::now();
    let mut done = 0;
    loop {
        let pass = labeler.pass().await.expect("pass");
        if pass.seen == 0 {
            break;
        }
        done += pass.labelled + pass.duplicates;
    }
    assert_eq!(done, COMMENTS, "every comment labelled once");
    COMMENTS as f64 / start.elapsed().as_secs_f64()
}

/// A model follower of `registry` that the labeler moves itself.
fn follow(registry: Registry) -> std::sync::Arc<bloginfer_model::ModelFollower> {
    std::sync::Arc::new(bloginfer_model::ModelFollower::new(registry, None))
}

fn registry(dir: &std::path::Path) -> Registry {
    let corpus = bundled_corpus();
    let mut config = ModelConfig::default();
    let vocab = build_vocab(
        &corpus,
        config.granularity,
        TrainConfig::default().min_count,
        config.vocab_size,
    );
    config.vocab_size = vocab.len();
    let model = SentimentModel::new(config, &mut StdRng::seed_from_u64(1)).expect("model");
    let checkpoint =
        Checkpoint::from_model(&model, vocab, TrainingMetadata::default()).expect("checkpoint");
    let registry = Registry::open(dir).expect("registry");
    let version = registry.publish(&checkpoint).expect("publish");
    registry.set_current(&version).expect("current");
    registry
}

fn main() {
    bloginfer_model::runtime::configure_threads(1);
    let corpus = bundled_corpus();
    let texts: Vec<String> = corpus.iter().map(|e| e.text.clone()).collect();

    let start = Instant::now();
    let mut masked = 0usize;
    for _ in 0..5 {
        for t in &texts {
            masked += pii::mask(t).len();
        }
    }
    let mask_per_s = (5 * texts.len()) as f64 / start.elapsed().as_secs_f64();
    std::hint::black_box(masked);

    // Distinct texts, so that every comment is labelled (no duplicates).
    let mut unique = texts.clone();
    unique.sort();
    unique.dedup();
    unique.truncate(COMMENTS);

    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (pseudo_per_s, llm_per_s) = runtime.block_on(async {
        let config = LabelerConfig {
            policy: FeedbackPolicy::default(),
            poll_interval: Duration::from_millis(1),
            ..LabelerConfig::default()
        };
        let dir = tempfile::tempdir().expect("tempdir");
        let models = dir.path().join("models");
        let db = database(dir.path(), &unique).await;
        let labeler =
            Labeler::new(db, follow(registry(&models)), None, config.clone()).expect("labeler");
        let pseudo = drain(&labeler).await;

        let server = ChatServer::start().await;
        let dir2 = tempfile::tempdir().expect("tempdir");
        let db = database(dir2.path(), &unique).await;
        let llm = LlmConfig {
            requests_per_minute: 0.0,
            batch_size: 8,
            ..LlmConfig::new(server.base_url(), "mock")
        };
        let labeler = Labeler::new(
            db,
            follow(Registry::open(&models).expect("registry")),
            Some(llm),
            config,
        )
        .expect("labeler");
        (pseudo, drain(&labeler).await)
    });
    let result = serde_json::json!({
        "mask_texts_per_s": mask_per_s.round(),
        "comments": COMMENTS,
        "pseudo_comments_per_s": pseudo_per_s.round(),
        "llm_mock_comments_per_s": llm_per_s.round(),
        "llm_batch_size": 8,
        "database": "sqlite",
        "model": "default size (vocab from the corpus, embed 128, hidden 128), 1 thread",
    });
    println!("{result}");
    let out =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results/labeler.json");
    if let Err(e) = std::fs::write(&out, format!("{result:#}\n")) {
        eprintln!("cannot write {}: {e}", out.display());
    }
}
