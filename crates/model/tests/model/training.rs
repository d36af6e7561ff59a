//! Training, checkpoints and the registry, end to end on small data.

use std::path::Path;

use bloginfer_model::checkpoint::{Checkpoint, TrainingMetadata};
use bloginfer_model::config::{ModelConfig, Pooling, TrainConfig};
use bloginfer_model::data::{bundled_corpus, Example};
use bloginfer_model::registry::Registry;
use bloginfer_model::train::{build_vocab, encode_all, evaluate, fit, Silent};
use bloginfer_model::{ModelError, Predictor};
use bloginfer_text::Encoder;

fn small_config() -> ModelConfig {
    ModelConfig {
        vocab_size: 5_000,
        embed_dim: 32,
        hidden_dim: 32,
        num_classes: 2,
        pooling: Pooling::Max,
        bidirectional: false,
        dropout: 0.0,
        embed_dropout: 0.0,
        granularity: Default::default(),
        max_len: 64,
    }
}

/// Batches of 16 and every token in the vocabulary: the 64-example setting.
fn small_training(epochs: usize) -> TrainConfig {
    TrainConfig {
        epochs,
        batch_size: 16,
        min_count: 1,
        ..TrainConfig::default()
    }
}

fn sixty_four() -> Vec<Example> {
    let corpus = bundled_corpus();
    let mut out: Vec<Example> = corpus
        .iter()
        .filter(|e| e.label == 0)
        .take(32)
        .cloned()
        .collect();
    out.extend(corpus.iter().filter(|e| e.label == 1).take(32).cloned());
    out
}

#[test]
fn overfits_sixty_four_examples_to_full_accuracy() {
    let data = sixty_four();
    let config = TrainConfig {
        learning_rate: 1e-2,
        patience: 0,
        ..small_training(40)
    };
    let fitted = fit(&data, &data, small_config(), &config, 1, &mut Silent).unwrap();
    assert_eq!(
        fitted.metrics.accuracy,
        1.0,
        "history: {:?}",
        fitted.history.last()
    );
}

fn trained_checkpoint() -> Checkpoint {
    let data = sixty_four();
    let config = small_training(3);
    let fitted = fit(&data, &data, small_config(), &config, 1, &mut Silent).unwrap();
    let metadata = TrainingMetadata {
        method: "central".into(),
        data_fingerprint: bloginfer_model::data::fingerprint(&data),
        train_samples: 64,
        val_samples: 64,
        epochs: 3,
        best_epoch: fitted.best_epoch,
        metrics: Some(fitted.metrics.clone()),
        history: fitted.history.clone(),
        ..TrainingMetadata::default()
    };
    Checkpoint::from_model(&fitted.model, fitted.vocab, metadata).unwrap()
}

const TEXTS: [&str; 4] = [
    "这家酒店的服务非常好，下次还来",
    "质量太差了，非常失望",
    "",
    "ok 😀",
];

#[test]
fn checkpoint_round_trip_gives_identical_predictions() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let original = trained_checkpoint();
    let hash = original.save(&path).unwrap();
    assert_eq!(hash.len(), 64);
    let loaded = Checkpoint::load(&path).unwrap();
    assert_eq!(loaded.config, original.config);
    assert_eq!(loaded.vocab, original.vocab);
    assert_eq!(loaded.metadata, original.metadata);
    let a = Predictor::new(&original).unwrap().predict(&TEXTS).unwrap();
    let b = Predictor::new(&loaded).unwrap().predict(&TEXTS).unwrap();
    assert_eq!(a, b);
}

#[test]
fn batch_prediction_equals_single_predictions() {
    let predictor = Predictor::new(&trained_checkpoint()).unwrap();
    let batch = predictor.predict(&TEXTS).unwrap();
    for (text, from_batch) in TEXTS.iter().zip(&batch) {
        let single = &predictor.predict(&[text]).unwrap()[0];
        assert_eq!(single.label, from_batch.label);
        assert!((single.score - from_batch.score).abs() < 1e-6);
    }
}

fn expect_checkpoint_error(path: &Path, needle: &str) {
    match Checkpoint::load(path) {
        Err(ModelError::Checkpoint { reason, .. }) => assert!(reason.contains(needle), "{reason}"),
        other => panic!("expected a checkpoint error containing {needle:?}, got {other:?}"),
    }
}

#[test]
fn corrupted_truncated_foreign_and_future_files_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.safetensors");
    let checkpoint = trained_checkpoint();
    checkpoint.save(&path).unwrap();
    let bytes = std::fs::read(&path).unwrap();

    let mut flipped = bytes.clone();
    let last = flipped.len() - 10;
    flipped[last] ^= 0x40;
    let corrupt = dir.path().join("corrupt.safetensors");
    std::fs::write(&corrupt, &flipped).unwrap();
    expect_checkpoint_error(&corrupt, "hash mismatch");

    let truncated = dir.path().join("truncated.safetensors");
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();
    assert!(matches!(
        Checkpoint::load(&truncated),
        Err(ModelError::Checkpoint { .. })
    ));
    std::fs::write(&truncated, &bytes[..5]).unwrap();
    expect_checkpoint_error(&truncated, "not a safetensors file");

    let foreign = dir.path().join("foreign.safetensors");
    let fixture =
        Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/pytorch_tiny.safetensors");
    std::fs::copy(fixture, &foreign).unwrap();
    expect_checkpoint_error(&foreign, "not a bloginfer checkpoint");

    let text = dir.path().join("notes.txt");
    std::fs::write(&text, "hello").unwrap();
    expect_checkpoint_error(&text, "not a safetensors file");

    let needle = br#""format_version":"1""#;
    let at = bytes
        .windows(needle.len())
        .position(|w| w == needle)
        .expect("version in header");
    let mut future = bytes.clone();
    future[at + needle.len() - 2] = b'9';
    let future_path = dir.path().join("future.safetensors");
    std::fs::write(&future_path, &future).unwrap();
    expect_checkpoint_error(&future_path, "format version \"9\"");

    expect_checkpoint_error(&dir.path().join("missing.safetensors"), "cannot read");
}

#[test]
fn registry_switches_pointer_and_prunes_old_versions_but_never_current() {
    let dir = tempfile::tempdir().unwrap();
    let registry = Registry::open(dir.path()).unwrap();
    assert_eq!(registry.current().unwrap(), None);
    let checkpoint = trained_checkpoint();
    let mut versions = Vec::new();
    for _ in 0..4 {
        versions.push(registry.publish(&checkpoint).unwrap());
        std::thread::sleep(std::time::Duration::from_millis(5));
    }
    assert_eq!(registry.versions().unwrap(), versions, "ids sort by age");
    assert!(registry.set_current("does-not-exist").is_err());
    assert!(registry.set_current("../escape").is_err());
    registry.set_current(&versions[0]).unwrap();
    assert_eq!(
        registry.current().unwrap().as_deref(),
        Some(versions[0].as_str())
    );
    let listed = registry.list().unwrap();
    assert_eq!(listed.iter().filter(|v| v.current).count(), 1);

    let removed = registry.prune(2).unwrap();
    assert_eq!(
        removed,
        vec![versions[1].clone()],
        "the oldest is current and stays"
    );
    assert_eq!(
        registry.versions().unwrap(),
        vec![
            versions[0].clone(),
            versions[2].clone(),
            versions[3].clone()
        ]
    );

    registry.set_current(&versions[3]).unwrap();
    let removed = registry.prune(1).unwrap();
    assert_eq!(removed, vec![versions[0].clone(), versions[2].clone()]);
    assert_eq!(registry.versions().unwrap(), vec![versions[3].clone()]);
    let (v, loaded) = registry.load_version_or_current(None).unwrap();
    assert_eq!(v, versions[3]);
    assert_eq!(loaded.vocab, checkpoint.vocab);
}

#[test]
fn training_is_reproducible_for_a_seed() {
    let data = sixty_four();
    let config = small_training(2);
    let a = fit(&data, &data, small_config(), &config, 1, &mut Silent).unwrap();
    let b = fit(&data, &data, small_config(), &config, 1, &mut Silent).unwrap();
    assert_eq!(
        a.history.iter().map(|r| r.train_loss).collect::<Vec<_>>(),
        b.history.iter().map(|r| r.train_loss).collect::<Vec<_>>()
    );
    let vocab = build_vocab(&data, Default::default(), 1, 5_000);
    let encoded = encode_all(&Encoder::new(vocab, 64), &data);
    assert_eq!(
        evaluate(&a.model, &encoded).unwrap(),
        evaluate(&b.model, &encoded).unwrap()
    );
}

#[test]
fn folded_inference_equals_the_fused_op_for_every_pooling_and_direction() {
    use bloginfer_model::{Batch, SentimentModel};
    use candle_core::Device;
    use rand::SeedableRng;
    let examples = sixty_four();
    for pooling in [Pooling::Last, Pooling::Mean, Pooling::Max] {
        for bidirectional in [false, true] {
            let vocab = build_vocab(&examples, Default::default(), 1, 5_000);
            let config = ModelConfig {
                vocab_size: vocab.len(),
                pooling,
                bidirectional,
                ..small_config()
            };
            let encoder = Encoder::new(vocab, config.max_len);
            let model =
                SentimentModel::new(config, &mut rand::rngs::StdRng::seed_from_u64(3)).unwrap();
            let mut encoded: Vec<Vec<u32>> = examples
                .iter()
                .take(20)
                .map(|e| encoder.encode(&e.text))
                .collect();
            encoded.push(vec![5, 1, 0]); // <unk> and <pad> ids inside a text
            let seqs: Vec<&[u32]> = encoded.iter().map(Vec::as_slice).collect();
            let batch = Batch::new(&seqs, None, &Device::Cpu).unwrap();
            let plain = model.pack().unwrap();
            let folded = model.pack_for_inference().unwrap();
            assert!(folded.folded.is_some());
            let a = model.forward(&batch, None, Some(&plain)).unwrap();
            let b = model.forward(&batch, None, Some(&folded)).unwrap();
            let diff = (a - b)
                .unwrap()
                .abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_scalar::<f32>()
                .unwrap();
            assert!(
                diff < 1e-5,
                "{pooling:?} bidirectional={bidirectional}: logits differ by {diff}"
            );
        }
    }
}

#[test]
fn a_registry_whose_folder_is_not_there_yet_reads_as_empty() {
    // A reader (inference) may open the registry before the writer made it.
    let dir = tempfile::tempdir().expect("tempdir");
    let registry = Registry::open(dir.path().join("models")).expect("open");
    std::fs::remove_dir_all(dir.path().join("models")).expect("remove");
    assert_eq!(registry.versions().expect("versions"), Vec::<String>::new());
    assert!(registry.list().expect("list").is_empty());
    assert_eq!(registry.current().expect("current"), None);
}
