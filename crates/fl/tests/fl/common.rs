//! Shared set-up for the in-process aggregator tests.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use bloginfer_fl::client::{Fault, WorkerConfig};
use bloginfer_fl::protocol::{LocalSettings, RunStatus};
use bloginfer_fl::server::{Aggregator, AggregatorConfig, RoundRules};
use bloginfer_fl::strategy::Strategy;
use bloginfer_model::data::{self, Example};
use bloginfer_model::train::build_vocab;
use bloginfer_model::ModelConfig;
use bloginfer_service::{CancellationToken, Host, ServeConfig};
use bloginfer_text::{Granularity, Vocab};

/// A slice of the bundled corpus.
pub fn corpus(n: usize) -> Vec<Example> {
    data::bundled_corpus().into_iter().take(n).collect()
}

/// A small model over `examples`' vocabulary.
pub fn small_model(examples: &[Example], dropout: f32) -> (ModelConfig, Vocab) {
    let vocab = build_vocab(examples, Granularity::Word, 1, 2000);
    let config = ModelConfig {
        vocab_size: vocab.len(),
        embed_dim: 16,
        hidden_dim: 16,
        dropout,
        embed_dropout: dropout,
        max_len: 64,
        ..ModelConfig::default()
    };
    (config, vocab)
}

/// An aggregator configuration for tests (no validation data).
pub fn config(
    model: ModelConfig,
    vocab: Vocab,
    strategy: Strategy,
    local: LocalSettings,
    rounds: u32,
    min_clients: usize,
    dir: &Path,
) -> AggregatorConfig {
    AggregatorConfig {
        run_id: "test-run".into(),
        run_key: RUN_KEY.to_string().into(),
        roster: Default::default(),
        model,
        vocab,
        initial: None,
        embed_init_std: 1.0,
        strategy,
        local,
        rules: RoundRules {
            rounds,
            min_clients,
            min_available: min_clients,
            fraction: 1.0,
            deadline: Duration::from_secs(60),
            lease: Duration::from_secs(30),
            seed: 7,
        },
        max_update_norm: 0.0,
        // Off here, so that runs can be compared with central training exactly;
        // the tests of the bound turn it on.
        adaptive_norm_multiple: 0.0,
        privacy: Default::default(),
        upload_dtype: bloginfer_fl::wire::WireDtype::F32,
        validation: Vec::new(),
        state_dir: dir.join("state"),
        models_dir: Some(dir.join("models")),
        promote: true,
        linger: Duration::from_secs(5),
        max_body_bytes: 64 << 20,
        threads: 1,
        data_fingerprint: None,
        settings: serde_json::Value::Null,
        status_file: None,
    }
}

/// Hosts `config`'s aggregator on a loopback port as `bloginfer aggregator`
/// does; returns its base URL and a task that ends with the run's outcome.
pub async fn start(
    config: AggregatorConfig,
) -> (
    String,
    tokio::task::JoinHandle<bloginfer_fl::Result<RunStatus>>,
) {
    let aggregator = Aggregator::build(config).expect("aggregator builds");
    let mut host = Host::new(ServeConfig::default(), CancellationToken::new());
    host.mount(Arc::new(aggregator.clone()));
    let (router, handle) = host.into_router();
    let listener = bloginfer_service::bind("127.0.0.1:0".parse().expect("addr"))
        .await
        .expect("bind loopback");
    let server = handle.start(listener, router).expect("serve");
    let url = server.url();
    let task = tokio::spawn(async move {
        server.stopped().await;
        handle.shutdown().await;
        aggregator.outcome()
    });
    (url, task)
}

/// Local settings for protocol tests (no training to speak of).
pub fn quick_local() -> LocalSettings {
    LocalSettings {
        batch_size: 8,
        clip_norm: 0.0,
        token_dropout: 0.0,
        seed: 1,
    }
}

/// FedAvg with its defaults.
pub fn fedavg() -> Strategy {
    use bloginfer_fl::strategy::{StrategyKind, StrategyOptions};
    Strategy::new(StrategyKind::FedAvg, &StrategyOptions::default()).expect("strategy")
}

/// The run key of the test aggregators.
pub const RUN_KEY: &str = "test-run-key-0123456789abcdef0123456789abcdef";

/// Worker `id`'s credential for the test run.
pub fn credential(id: &str) -> String {
    bloginfer_fl::credentials::worker_credential(RUN_KEY, "test-run", id).expect("credential")
}

/// A roster of `(id, samples)`.
pub fn roster(workers: &[(&str, usize)]) -> std::collections::BTreeMap<String, u64> {
    workers
        .iter()
        .map(|(id, n)| (id.to_string(), *n as u64))
        .collect()
}

/// A worker over `shard` (written to `dir`).
pub fn worker(url: &str, id: &str, shard: &[Example], dir: &Path) -> WorkerConfig {
    let path = dir.join(format!("shard-{id}.tsv"));
    bloginfer_fl::partition::write_tsv(&path, shard).expect("write shard");
    WorkerConfig {
        aggregator: url.to_string(),
        token: credential(id).into(),
        worker_id: id.to_string(),
        shard: path,
        threads: 1,
        max_unreachable: Duration::from_secs(10),
        fault: Fault::None,
        expected_run: Some("test-run".into()),
    }
}
