//! One training epoch over the bundled corpus, in the reference's shape
//! (vocab 20,000, embedding 128, hidden 128, last-state pooling, batch 64,
//! 1 thread, max length 128): with our length-bucketed batches, and with every
//! text padded to 128 as the original system did. Also times tokenisation.
//! Prints one JSON object (and writes `bench/results/rust_epoch.json`).
//!
//! `cargo bench -p bloginfer-model --bench epoch`

// A bench fails loudly on a broken setup; unwrapping is how it reports it.
#![allow(clippy::unwrap_used)]

use std::time::Instant;

use bloginfer_model::config::{ModelConfig, TrainConfig};
use bloginfer_model::data::bundled_corpus;
use bloginfer_model::train::{build_vocab, encode_all, Encoded, Silent, Trainer};
use bloginfer_model::{runtime, SentimentModel};
use bloginfer_text::{Encoder, Granularity, Tokenizer};
use rand::rngs::StdRng;
use rand::SeedableRng;

fn epoch_seconds(data: &[Encoded]) -> f64 {
    let model =
        SentimentModel::new(ModelConfig::original(), &mut StdRng::seed_from_u64(3)).expect("model");
    let mut trainer = Trainer::new(model, &TrainConfig::default()).expect("trainer");
    let start = Instant::now();
    trainer.epoch(data, 1, &mut Silent).expect("epoch");
    start.elapsed().as_secs_f64()
}

fn main() {
    runtime::configure_threads(1);
    runtime::tune_allocator();
    let corpus = bundled_corpus();
    let tokenizer = Tokenizer::shared();
    let start = Instant::now();
    let mut tokens = 0usize;
    for e in &corpus {
        tokens += tokenizer.tokenize(&e.text).len();
    }
    let tokenize_s = start.elapsed().as_secs_f64();
    eprintln!(
        "tokenise: {:.2} s, {:.0} texts/s, {:.0} tokens/s",
        tokenize_s,
        corpus.len() as f64 / tokenize_s,
        tokens as f64 / tokenize_s
    );

    let vocab = build_vocab(&corpus, Granularity::Word, 1, 20_000);
    let data = encode_all(&Encoder::new(vocab, 128), &corpus);
    let mean_len = data.iter().map(|e| e.ids.len()).sum::<usize>() as f64 / data.len() as f64;
    let bucketed = epoch_seconds(&data);
    eprintln!(
        "epoch, bucketed: {bucketed:.1} s ({:.0} samples/s), mean length {mean_len:.1}",
        data.len() as f64 / bucketed
    );
    let padded: Vec<Encoded> = data
        .iter()
        .map(|e| {
            let mut ids = e.ids.clone();
            ids.resize(128, 0);
            Encoded {
                ids,
                label: e.label,
            }
        })
        .collect();
    let padded_s = epoch_seconds(&padded);
    eprintln!(
        "epoch, padded to 128: {padded_s:.1} s ({:.0} samples/s)",
        data.len() as f64 / padded_s
    );
    let result = serde_json::json!({
        "impl": "bloginfer (candle + fused LSTM)",
        "texts": corpus.len(),
        "tokenize": {"seconds": tokenize_s, "texts_per_s": corpus.len() as f64 / tokenize_s, "tokens_per_s": tokens as f64 / tokenize_s},
        "mean_tokens_after_truncation": mean_len,
        "epoch_bucketed": {"seconds": bucketed, "samples_per_s": data.len() as f64 / bucketed},
        "epoch_padded_128": {"seconds": padded_s, "samples_per_s": data.len() as f64 / padded_s},
    });
    println!("{}", serde_json::to_string_pretty(&result).expect("json"));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results");
    if dir.is_dir() {
        let _ = std::fs::write(
            dir.join("rust_epoch.json"),
            serde_json::to_string_pretty(&result).expect("json"),
        );
    }
}
