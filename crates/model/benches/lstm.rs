//! Training-step and inference speed of the model on synthetic data, in the
//! shape of the PyTorch reference (`bench/pytorch/lstm_bench.py`): vocab 20,000,
//! embedding 128, hidden 128, batch 64, last-state pooling, dropout 0.5, Adam,
//! clip 5, one thread. Prints one JSON object (and writes it to
//! `bench/results/rust_step.json` when that folder exists).
//!
//! `cargo bench -p bloginfer-model --bench lstm`

// A bench fails loudly on a broken setup; unwrapping is how it reports it.
#![allow(clippy::unwrap_used)]

use std::time::{Duration, Instant};

use bloginfer_model::config::{ModelConfig, TrainConfig};
use bloginfer_model::train::{Encoded, Trainer};
use bloginfer_model::{runtime, Batch, SentimentModel};
use candle_core::Device;
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};

fn model(seed: u64) -> SentimentModel {
    SentimentModel::new(ModelConfig::original(), &mut StdRng::seed_from_u64(seed)).expect("model")
}

fn synthetic(rng: &mut StdRng, batch: usize, steps: usize) -> Vec<Encoded> {
    (0..batch)
        .map(|_| Encoded {
            ids: (0..steps).map(|_| rng.random_range(2..20_000u32)).collect(),
            label: rng.random_range(0..2),
        })
        .collect()
}

/// Runs `f` after 5 warm-up calls for at least 30 calls and 5 seconds; returns seconds per call.
fn time_it(mut f: impl FnMut()) -> (f64, usize) {
    for _ in 0..5 {
        f();
    }
    let start = Instant::now();
    let mut n = 0;
    while n < 30 || start.elapsed() < Duration::from_secs(5) {
        f();
        n += 1;
    }
    (start.elapsed().as_secs_f64() / n as f64, n)
}

fn median_ms(mut f: impl FnMut(), calls: usize) -> (f64, f64) {
    for _ in 0..10 {
        f();
    }
    let mut samples: Vec<f64> = (0..calls)
        .map(|_| {
            let s = Instant::now();
            f();
            s.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    samples.sort_by(f64::total_cmp);
    (samples[calls / 2], samples[calls * 99 / 100])
}

fn main() {
    runtime::configure_threads(1);
    runtime::tune_allocator();
    let mut rng = StdRng::seed_from_u64(1);
    let mut step_results = serde_json::Map::new();
    // BENCH_ONLY=infer skips the training steps (for profiling inference).
    let only_infer = std::env::var("BENCH_ONLY").is_ok_and(|v| v == "infer");
    for steps in [128usize, 64, 32].into_iter().filter(|_| !only_infer) {
        let data = synthetic(&mut rng, 64, steps);
        let refs: Vec<&Encoded> = data.iter().collect();
        let mut trainer = Trainer::new(model(7), &TrainConfig::default()).expect("trainer");
        let (secs, n) = time_it(|| {
            trainer.step(&refs).expect("step");
        });
        eprintln!(
            "T={steps}: {:.2} ms/step, {:.0} samples/s ({n} steps)",
            secs * 1e3,
            64.0 / secs
        );
        step_results.insert(
            format!("T{steps}"),
            serde_json::json!({"ms_per_step": secs * 1e3, "samples_per_s": 64.0 / secs, "steps": n}),
        );
    }

    let m = model(7);
    let packed = m.pack().expect("pack");
    let single = synthetic(&mut rng, 1, 64);
    let (single_ms, single_p99) = median_ms(
        || {
            let batch = Batch::new(&[single[0].ids.as_slice()], None, &Device::Cpu).expect("batch");
            m.forward(&batch, None, Some(&packed))
                .expect("forward")
                .to_vec2::<f32>()
                .expect("logits");
        },
        300,
    );
    let many = synthetic(&mut rng, 64, 64);
    let seqs: Vec<&[u32]> = many.iter().map(|e| e.ids.as_slice()).collect();
    let (batch_ms, _) = median_ms(
        || {
            let batch = Batch::new(&seqs, None, &Device::Cpu).expect("batch");
            m.forward(&batch, None, Some(&packed))
                .expect("forward")
                .to_vec2::<f32>()
                .expect("logits");
        },
        100,
    );
    eprintln!(
        "infer T=64: single {single_ms:.3} ms (p99 {single_p99:.3}), batch-64 {batch_ms:.2} ms"
    );
    let result = serde_json::json!({
        "impl": "bloginfer (candle + fused LSTM)",
        "threads": 1,
        "step": step_results,
        "infer": {
            "single_ms_median": single_ms,
            "single_ms_p99": single_p99,
            "batch64_ms_median": batch_ms,
            "batch64_texts_per_s": 64.0 / batch_ms * 1e3,
        }
    });
    println!("{}", serde_json::to_string_pretty(&result).expect("json"));
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../bench/results");
    if dir.is_dir() && !only_infer {
        let _ = std::fs::write(
            dir.join("rust_step.json"),
            serde_json::to_string_pretty(&result).expect("json"),
        );
    }
}
