//! Federated training over the real protocol equals centralized training
//! where the maths says it must: FedAvg with one client is that client's local
//! training; FedSGD with two equal clients is one step on the union batch.

use bloginfer_fl::client::run_worker;
use bloginfer_fl::local::round_seed;
use bloginfer_fl::params::ParamSet;
use bloginfer_fl::protocol::LocalSettings;
use bloginfer_fl::strategy::{Strategy, StrategyKind, StrategyOptions};
use bloginfer_model::data::{read_tsv, Example};
use bloginfer_model::train::{encode_all, Encoded, Silent, Trainer};
use bloginfer_model::{ModelConfig, Registry, SentimentModel, TrainConfig};
use bloginfer_text::{Encoder, Vocab};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn encode(model: &ModelConfig, vocab: &Vocab, examples: &[Example]) -> Vec<Encoded> {
    let encoder = Encoder::new(vocab.clone(), model.max_len).with_granularity(model.granularity);
    encode_all(&encoder, examples)
}

fn initial_model(config: &ModelConfig, seed: u64) -> SentimentModel {
    SentimentModel::with_embedding_std(config.clone(), 1.0, &mut StdRng::seed_from_u64(seed))
        .expect("model")
}

fn final_weights(dir: &std::path::Path, version: &str) -> ParamSet {
    let checkpoint = Registry::open(dir.join("models"))
        .and_then(|r| r.load(version))
        .expect("final model in the registry");
    ParamSet::from_tensors(&checkpoint.weights).expect("weights")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedavg_with_one_client_equals_centralized_training() {
    let dir = tempfile::tempdir().expect("tempdir");
    let examples = crate::common::corpus(300);
    let (model, vocab) = crate::common::small_model(&examples, 0.3);
    let local = LocalSettings {
        batch_size: 32,
        clip_norm: 5.0,
        token_dropout: 0.1,
        seed: 11,
    };
    let options = StrategyOptions {
        local_epochs: Some(2),
        local_lr: Some(0.01),
        ..Default::default()
    };
    let strategy = Strategy::new(StrategyKind::FedAvg, &options).expect("strategy");
    let mut config = crate::common::config(
        model.clone(),
        vocab.clone(),
        strategy,
        local,
        1,
        1,
        dir.path(),
    );
    config.roster = crate::common::roster(&[("0", examples.len())]);
    let (url, server) = crate::common::start(config).await;
    let worker = crate::common::worker(&url, "0", &examples, dir.path());
    let shard = worker.shard.clone();
    run_worker(worker).await.expect("worker finishes");
    let status = server.await.expect("join").expect("run succeeds");
    let federated = final_weights(dir.path(), status.version.as_deref().expect("version"));

    // The same two epochs, trained centrally from the same start with the same seed.
    let data = encode(&model, &vocab, &read_tsv(&shard).expect("shard"));
    let train = TrainConfig {
        epochs: 2,
        batch_size: 32,
        learning_rate: 0.01,
        clip_norm: 5.0,
        token_dropout: 0.1,
        seed: round_seed(11, "0", 1),
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(initial_model(&model, 11), &train).expect("trainer");
    for epoch in 1..=2 {
        trainer.epoch(&data, epoch, &mut Silent).expect("epoch");
    }
    let central = ParamSet::from_model(trainer.model()).expect("weights");
    let initial = ParamSet::from_model(&initial_model(&model, 11)).expect("weights");
    assert!(
        central.max_abs_diff(&initial) > 1e-3,
        "training must move the weights"
    );
    let diff = federated.max_abs_diff(&central);
    assert!(
        diff < 1e-5,
        "federated and central weights differ by {diff}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fedsgd_with_two_equal_clients_equals_one_step_on_the_union_batch() {
    let dir = tempfile::tempdir().expect("tempdir");
    let examples = crate::common::corpus(64);
    // No dropout: the two halves and the union must see the same network.
    let (model, vocab) = crate::common::small_model(&examples, 0.0);
    let local = LocalSettings {
        batch_size: 32,
        clip_norm: 0.0,
        token_dropout: 0.0,
        seed: 5,
    };
    let strategy =
        Strategy::new(StrategyKind::FedSgd, &StrategyOptions::default()).expect("strategy");
    let mut config = crate::common::config(
        model.clone(),
        vocab.clone(),
        strategy,
        local,
        1,
        2,
        dir.path(),
    );
    config.roster = crate::common::roster(&[("a", 32), ("b", 32)]);
    let (url, server) = crate::common::start(config).await;
    let (left, right) = examples.split_at(32);
    let a = tokio::spawn(run_worker(crate::common::worker(
        &url,
        "a",
        left,
        dir.path(),
    )));
    let b = tokio::spawn(run_worker(crate::common::worker(
        &url,
        "b",
        right,
        dir.path(),
    )));
    a.await.expect("join").expect("worker a");
    b.await.expect("join").expect("worker b");
    let status = server.await.expect("join").expect("run succeeds");
    let federated = final_weights(dir.path(), status.version.as_deref().expect("version"));

    let data = encode(&model, &vocab, &examples);
    let union: Vec<&Encoded> = data.iter().collect();
    let train = TrainConfig {
        batch_size: 64,
        learning_rate: 2e-3,
        clip_norm: 0.0,
        token_dropout: 0.0,
        ..TrainConfig::default()
    };
    let mut trainer = Trainer::new(initial_model(&model, 5), &train).expect("trainer");
    trainer.step(&union).expect("step");
    let central = ParamSet::from_model(trainer.model()).expect("weights");
    let initial = ParamSet::from_model(&initial_model(&model, 5)).expect("weights");
    assert!(
        central.max_abs_diff(&initial) > 1e-4,
        "the step must move the weights"
    );
    let diff = federated.max_abs_diff(&central);
    assert!(
        diff < 1e-5,
        "federated and central weights differ by {diff}"
    );
}
