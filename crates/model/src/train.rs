//! Training: encoding, length-bucketed batches, the epoch loop with early
//! stopping on the validation split, and evaluation.

use std::collections::HashMap;
use std::time::Instant;

use bloginfer_text::{Encoder, Granularity, Tokenizer, Vocab, VocabBuilder, UNK_ID};
use candle_core::backprop::GradStore;
use candle_core::{Device, Tensor};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};
use serde::{Deserialize, Serialize};

use crate::classifier::{Batch, SentimentModel};
use crate::config::{ModelConfig, TrainConfig};
use crate::data::{Example, LABELS};
use crate::error::{ModelError, Result};
use crate::metrics::Metrics;
use crate::optim::{Adam, AdamConfig};

/// A text encoded for the model.
#[derive(Debug, Clone)]
pub struct Encoded {
    /// Token ids, truncated to the model's maximum length.
    pub ids: Vec<u32>,
    /// The class: 0 negative, 1 positive.
    pub label: u32,
}

/// Builds the vocabulary from training texts.
pub fn build_vocab(
    examples: &[Example],
    granularity: Granularity,
    min_count: u64,
    max_size: usize,
) -> Vocab {
    let tokenizer = Tokenizer::shared();
    let mut builder = VocabBuilder::new();
    for e in examples {
        let normalized = bloginfer_text::normalize(&e.text);
        tokenizer.for_each_token(&normalized, granularity, |w| builder.add(w));
    }
    builder.build(min_count, max_size)
}

/// Encodes labelled examples for training or evaluation, keeping their labels.
pub fn encode_all(encoder: &Encoder, examples: &[Example]) -> Vec<Encoded> {
    examples
        .iter()
        .map(|e| Encoded {
            ids: encoder.encode(&e.text),
            label: e.label,
        })
        .collect()
}

/// Groups example indices into batches of similar length: shuffle, cut into
/// pools of 50 batches, sort each pool by length, batch, shuffle the batches.
/// Short reviews then do not pay for padding up to long ones, and batches still
/// differ from epoch to epoch.
pub fn bucketed_batches(lengths: &[usize], batch_size: usize, rng: &mut StdRng) -> Vec<Vec<usize>> {
    let batch_size = batch_size.max(1);
    let mut indices: Vec<usize> = (0..lengths.len()).collect();
    indices.shuffle(rng);
    let mut batches = Vec::with_capacity(lengths.len().div_ceil(batch_size));
    for pool in indices.chunks_mut(batch_size * 50) {
        pool.sort_by_key(|&i| lengths[i]);
        batches.extend(pool.chunks(batch_size).map(<[usize]>::to_vec));
    }
    batches.shuffle(rng);
    batches
}

/// Per-epoch record kept in the checkpoint's training metadata. JSON has no
/// NaN: serde_json writes it as `null`, so `null` reads back as NaN.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EpochRecord {
    /// 1-based epoch.
    pub epoch: usize,
    /// Mean training loss over the epoch's batches.
    #[serde(deserialize_with = "nan_if_null")]
    pub train_loss: f64,
    /// Mean loss on the validation split after the epoch.
    #[serde(deserialize_with = "nan_if_null")]
    pub val_loss: f64,
    /// Accuracy on the validation split after the epoch.
    #[serde(deserialize_with = "nan_if_null")]
    pub val_accuracy: f64,
    /// Macro-F1 (both classes' F1, averaged) on the validation split after the epoch.
    #[serde(deserialize_with = "nan_if_null")]
    pub val_macro_f1: f64,
    /// Training examples per second in the epoch's training part.
    #[serde(deserialize_with = "nan_if_null")]
    pub samples_per_sec: f64,
    /// Wall time of the epoch's training part.
    #[serde(deserialize_with = "nan_if_null")]
    pub seconds: f64,
}

fn nan_if_null<'de, D: serde::Deserializer<'de>>(d: D) -> std::result::Result<f64, D::Error> {
    Ok(Option::<f64>::deserialize(d)?.unwrap_or(f64::NAN))
}

/// Hooks for progress display; every method has a no-op default.
pub trait Progress {
    /// An epoch with `batches` batches over `samples` examples starts.
    fn epoch_start(&mut self, _epoch: usize, _batches: usize, _samples: usize) {}
    /// A batch finished with this loss.
    fn batch_done(&mut self, _loss: f32, _samples: usize) {}
    /// An epoch finished and was evaluated.
    fn epoch_end(&mut self, _record: &EpochRecord) {}
}

/// Progress that shows nothing.
pub struct Silent;
impl Progress for Silent {}

/// A model and its optimiser, trained batch by batch.
pub struct Trainer {
    model: SentimentModel,
    optimizer: Adam,
    rng: StdRng,
    batch_size: usize,
    token_dropout: f64,
    proximal: Option<(f64, HashMap<String, Tensor>)>,
}

impl Trainer {
    /// Wraps `model` with a fresh Adam.
    pub fn new(model: SentimentModel, config: &TrainConfig) -> Result<Self> {
        let vars = model.vars()?.into_iter().map(|(_, v)| v).collect();
        Ok(Self {
            optimizer: Adam::new(
                vars,
                AdamConfig::new(config.learning_rate, config.clip_norm),
            ),
            rng: StdRng::seed_from_u64(config.seed ^ 0x5EED),
            model,
            batch_size: config.batch_size.max(1),
            token_dropout: config.token_dropout.clamp(0.0, 0.9),
            proximal: None,
        })
    }

    /// The model being trained.
    pub fn model(&self) -> &SentimentModel {
        &self.model
    }

    /// Gives the model back.
    pub fn into_model(self) -> SentimentModel {
        self.model
    }

    /// Adds FedProx's proximal term `mu/2 * ||w - anchor||^2` to every later
    /// step, pulling local training towards `anchor` (the round's global weights).
    pub fn set_proximal(&mut self, mu: f64, anchor: HashMap<String, Tensor>) {
        self.proximal = (mu > 0.0).then_some((mu, anchor));
    }

    /// The mean loss of `examples` and its gradients, without changing the model.
    pub fn loss_and_gradients(&mut self, examples: &[&Encoded]) -> Result<(f32, GradStore)> {
        let dropped: Vec<Vec<u32>>;
        let seqs: Vec<&[u32]> = if self.token_dropout > 0.0 {
            let rng = &mut self.rng;
            let p = self.token_dropout;
            dropped = examples
                .iter()
                .map(|e| {
                    e.ids
                        .iter()
                        .map(|&id| if rng.random_bool(p) { UNK_ID } else { id })
                        .collect()
                })
                .collect();
            dropped.iter().map(Vec::as_slice).collect()
        } else {
            examples.iter().map(|e| e.ids.as_slice()).collect()
        };
        let labels: Vec<u32> = examples.iter().map(|e| e.label).collect();
        let batch = Batch::new(&seqs, Some(&labels), &Device::Cpu)?;
        let logits = self.model.forward(&batch, Some(&mut self.rng), None)?;
        let targets = batch
            .labels
            .as_ref()
            .ok_or_else(|| ModelError::Config("batch without labels".into()))?;
        let loss = candle_nn::loss::cross_entropy(&logits, targets)?;
        let value = loss.to_scalar::<f32>()?;
        if !value.is_finite() {
            return Err(ModelError::Config(format!(
                "training diverged (loss {value})"
            )));
        }
        Ok((value, loss.backward()?))
    }

    /// One optimisation step on `examples`; returns the batch's mean loss.
    pub fn step(&mut self, examples: &[&Encoded]) -> Result<f32> {
        let (value, mut grads) = self.loss_and_gradients(examples)?;
        if let Some((mu, anchor)) = &self.proximal {
            for (name, var) in self.model.vars()? {
                let (Some(g), Some(a)) = (grads.get(var.as_tensor()), anchor.get(&name)) else {
                    continue;
                };
                let pulled = (g + ((var.as_tensor() - a)? * *mu)?)?;
                grads.insert(var.as_tensor(), pulled);
            }
        }
        self.optimizer.step(&grads)?;
        Ok(value)
    }

    /// One pass over `data` in length-bucketed batches; returns (mean loss, seconds).
    pub fn epoch(
        &mut self,
        data: &[Encoded],
        epoch: usize,
        progress: &mut dyn Progress,
    ) -> Result<(f64, f64)> {
        let lengths: Vec<usize> = data.iter().map(|e| e.ids.len()).collect();
        let batches = bucketed_batches(&lengths, self.batch_size, &mut self.rng);
        progress.epoch_start(epoch, batches.len(), data.len());
        let start = Instant::now();
        let (mut loss_sum, mut seen) = (0f64, 0usize);
        for batch in &batches {
            let examples: Vec<&Encoded> = batch.iter().map(|&i| &data[i]).collect();
            let loss = self.step(&examples)?;
            loss_sum += f64::from(loss) * examples.len() as f64;
            seen += examples.len();
            progress.batch_done(loss, examples.len());
        }
        Ok((loss_sum / seen.max(1) as f64, start.elapsed().as_secs_f64()))
    }
}

/// Class probabilities `[N, C]` for encoded sequences, in input order, computed
/// in length-sorted batches of `batch_size`.
pub fn predict_probs(
    model: &SentimentModel,
    seqs: &[&[u32]],
    batch_size: usize,
) -> Result<Vec<Vec<f32>>> {
    let mut order: Vec<usize> = (0..seqs.len()).collect();
    order.sort_by_key(|&i| seqs[i].len());
    let packed = model.pack_for_inference()?;
    let mut out = vec![Vec::new(); seqs.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let chunk_seqs: Vec<&[u32]> = chunk.iter().map(|&i| seqs[i]).collect();
        for (&i, p) in chunk.iter().zip(model.probabilities(&chunk_seqs, &packed)?) {
            out[i] = p;
        }
    }
    Ok(out)
}

/// Accuracy, F1, confusion matrix and mean loss of `model` on `data`.
pub fn evaluate(model: &SentimentModel, data: &[Encoded]) -> Result<Metrics> {
    let seqs: Vec<&[u32]> = data.iter().map(|e| e.ids.as_slice()).collect();
    let probs = predict_probs(model, &seqs, 256)?;
    let mut loss = 0f64;
    let pairs: Vec<(u32, u32)> = data
        .iter()
        .zip(&probs)
        .map(|(e, p)| {
            loss -= f64::from(p.get(e.label as usize).copied().unwrap_or(0.0).max(1e-12)).ln();
            (e.label, argmax(p))
        })
        .collect();
    let mut metrics = Metrics::from_pairs(&LABELS, pairs);
    metrics.loss = Some(loss / data.len().max(1) as f64);
    Ok(metrics)
}

pub(crate) fn argmax(p: &[f32]) -> u32 {
    let mut best = 0;
    for (i, v) in p.iter().enumerate() {
        if *v > p[best] {
            best = i;
        }
    }
    // p holds one probability per class: a handful, never 2^32.
    u32::try_from(best).unwrap_or(u32::MAX)
}

/// What [`fit`] produced.
pub struct Fitted {
    /// The model at its best validation epoch.
    pub model: SentimentModel,
    /// The vocabulary it was trained with.
    pub vocab: Vocab,
    /// One record per epoch run.
    pub history: Vec<EpochRecord>,
    /// The epoch whose weights were kept.
    pub best_epoch: usize,
    /// Validation metrics of the kept weights.
    pub metrics: Metrics,
}

/// Trains a model from scratch: vocabulary from `train`, up to
/// `config.epochs` epochs, early stopping on validation accuracy with
/// `config.patience`, keeping the best epoch's weights.
pub fn fit(
    train: &[Example],
    val: &[Example],
    mut model_config: ModelConfig,
    config: &TrainConfig,
    threads: usize,
    progress: &mut dyn Progress,
) -> Result<Fitted> {
    if train.is_empty() || val.is_empty() {
        return Err(ModelError::Config(
            "training and validation data must not be empty".into(),
        ));
    }
    let vocab = build_vocab(
        train,
        model_config.granularity,
        config.min_count,
        model_config.vocab_size,
    );
    model_config.vocab_size = vocab.len();
    model_config.validate().map_err(ModelError::Config)?;
    let encoder = Encoder::new(vocab.clone(), model_config.max_len)
        .with_granularity(model_config.granularity);
    let train_data = encode_all(&encoder, train);
    let val_data = encode_all(&encoder, val);

    let mut rng = StdRng::seed_from_u64(config.seed);
    let model = SentimentModel::with_embedding_std(model_config, config.embed_init_std, &mut rng)?
        .with_threads(threads);
    let mut trainer = Trainer::new(model, config)?;
    let mut history = Vec::new();
    let mut best: Option<(f64, usize, HashMap<String, Tensor>, Metrics)> = None;
    for epoch in 1..=config.epochs.max(1) {
        let (train_loss, seconds) = trainer.epoch(&train_data, epoch, progress)?;
        let metrics = evaluate(trainer.model(), &val_data)?;
        let record = EpochRecord {
            epoch,
            train_loss,
            val_loss: metrics.loss.unwrap_or(f64::NAN),
            val_accuracy: metrics.accuracy,
            val_macro_f1: metrics.macro_f1,
            samples_per_sec: train_data.len() as f64 / seconds.max(1e-9),
            seconds,
        };
        progress.epoch_end(&record);
        history.push(record);
        let improved = best
            .as_ref()
            .is_none_or(|(acc, ..)| metrics.accuracy > *acc);
        if improved {
            best = Some((
                metrics.accuracy,
                epoch,
                trainer.model().snapshot()?,
                metrics,
            ));
        } else if config.patience > 0
            && best
                .as_ref()
                .is_some_and(|(_, e, ..)| epoch - e >= config.patience)
        {
            break;
        }
    }
    let (_, best_epoch, weights, metrics) =
        best.ok_or_else(|| ModelError::Config("no epoch ran".into()))?;
    let model = trainer.into_model();
    model.restore(&weights)?;
    Ok(Fitted {
        model,
        vocab,
        history,
        best_epoch,
        metrics,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bucketed_batches_cover_every_example_once_with_little_padding() {
        let lengths: Vec<usize> = (0..1000).map(|i| (i * 37) % 200 + 1).collect();
        let batches = bucketed_batches(&lengths, 64, &mut StdRng::seed_from_u64(1));
        let mut seen: Vec<usize> = batches.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..1000).collect::<Vec<_>>());
        assert!(batches.iter().all(|b| !b.is_empty() && b.len() <= 64));
        let padded: usize = batches
            .iter()
            .map(|b| b.len() * b.iter().map(|&i| lengths[i]).max().unwrap_or(0))
            .sum();
        let real: usize = lengths.iter().sum();
        // Random batches of 64 would pad nearly every text to ~200 tokens (about 2x).
        assert!(
            padded * 10 < real * 11,
            "padded {padded} tokens for {real} real ones"
        );
    }

    #[test]
    fn epoch_records_with_nan_survive_json() {
        let record = EpochRecord {
            epoch: 1,
            train_loss: 0.5,
            val_loss: f64::NAN,
            val_accuracy: f64::NAN,
            val_macro_f1: 0.7,
            samples_per_sec: 10.0,
            seconds: 1.0,
        };
        let json = serde_json::to_string(&record).unwrap();
        assert!(json.contains("null"), "{json}");
        let back: EpochRecord = serde_json::from_str(&json).unwrap();
        assert!(back.val_loss.is_nan() && back.val_accuracy.is_nan());
        assert_eq!(back.val_macro_f1, 0.7);
    }

    #[test]
    fn batches_differ_between_epochs() {
        let lengths = vec![5usize; 256];
        let mut rng = StdRng::seed_from_u64(2);
        let first = bucketed_batches(&lengths, 32, &mut rng);
        let second = bucketed_batches(&lengths, 32, &mut rng);
        assert_ne!(first, second);
    }
}
