//! Every strategy, and f16 uploads, train a real model over the real protocol:
//! two workers, a few rounds, validation accuracy above the initial model's.

use bloginfer_fl::client::run_worker;
use bloginfer_fl::protocol::LocalSettings;
use bloginfer_fl::strategy::{Strategy, StrategyKind, StrategyOptions};
use bloginfer_fl::wire::WireDtype;
use bloginfer_model::data;

async fn run(
    kind: StrategyKind,
    options: StrategyOptions,
    dtype: WireDtype,
    rounds: u32,
) -> (f64, f64) {
    let dir = tempfile::tempdir().expect("tempdir");
    let (train, validation) = data::split(data::bundled_corpus(), 0.1, data::VALIDATION_SEED);
    let train: Vec<_> = train.into_iter().take(1600).collect();
    let validation: Vec<_> = validation.into_iter().take(600).collect();
    let (model, vocab) = crate::common::small_model(&train, 0.2);
    let local = LocalSettings {
        batch_size: 32,
        clip_norm: 5.0,
        token_dropout: 0.0,
        seed: 3,
    };
    let strategy = Strategy::new(kind, &options).expect("strategy");
    let mut config = crate::common::config(model, vocab, strategy, local, rounds, 2, dir.path());
    config.validation = validation;
    config.upload_dtype = dtype;
    let (left, right) = train.split_at(800);
    config.roster = crate::common::roster(&[("a", left.len()), ("b", right.len())]);
    let (url, server) = crate::common::start(config).await;
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
    let accuracy = |i: usize| status.history[i].val_accuracy.expect("validated");
    assert_eq!(status.history.len(), rounds as usize + 1);
    assert!(status.history[1..].iter().all(|r| r.clients == 2));
    (accuracy(0), accuracy(rounds as usize))
}

fn local(epochs: usize, lr: f64) -> StrategyOptions {
    StrategyOptions {
        local_epochs: Some(epochs),
        local_lr: Some(lr),
        ..Default::default()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_strategy_improves_on_the_initial_model() {
    let cases = [
        (StrategyKind::FedAvg, local(2, 0.01), WireDtype::F32, 3),
        (StrategyKind::FedAvg, local(2, 0.01), WireDtype::F16, 3),
        (
            StrategyKind::FedProx,
            StrategyOptions {
                prox_mu: Some(0.01),
                ..local(2, 0.01)
            },
            WireDtype::F32,
            3,
        ),
        (StrategyKind::FedAvgM, local(2, 0.01), WireDtype::F32, 3),
        (StrategyKind::FedAdam, local(2, 0.01), WireDtype::F32, 3),
        (
            StrategyKind::FedSgd,
            StrategyOptions {
                local_lr: Some(0.01),
                ..Default::default()
            },
            WireDtype::F32,
            25,
        ),
    ];
    for (kind, options, dtype, rounds) in cases {
        let (before, after) = run(kind, options, dtype, rounds).await;
        assert!(
            after > before + 0.03,
            "{kind} ({dtype:?}): accuracy {before:.3} -> {after:.3}"
        );
    }
}
