//! Serving-side model: text in, label and probabilities out.

use bloginfer_text::Encoder;
use serde::Serialize;

use crate::checkpoint::Checkpoint;
use crate::classifier::{PackedWeights, SentimentModel};
use crate::data::LABELS;
use crate::error::Result;
use crate::train::argmax;

/// The model's answer for one text: its label and both classes' probabilities.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Prediction {
    /// `negative` or `positive`.
    pub label: &'static str,
    /// Probability of `positive`.
    pub score: f32,
    /// Probability of each class, in label order.
    pub probabilities: [f32; 2],
}

/// A loaded model ready to predict, with its LSTM weights packed once and the
/// embedding folded into the input projection.
pub struct Predictor {
    model: SentimentModel,
    encoder: Encoder,
    packed: PackedWeights,
}

impl Predictor {
    /// Builds a predictor from a checkpoint.
    pub fn new(checkpoint: &Checkpoint) -> Result<Self> {
        let model = checkpoint.model()?;
        let packed = model.pack_for_inference()?;
        let encoder = checkpoint.encoder();
        Ok(Self {
            model,
            encoder,
            packed,
        })
    }

    /// The encoder (tokenizer, vocabulary, truncation).
    pub fn encoder(&self) -> &Encoder {
        &self.encoder
    }

    /// Predicts every text in one batch; results are in input order.
    pub fn predict(&self, texts: &[&str]) -> Result<Vec<Prediction>> {
        if texts.is_empty() {
            return Ok(Vec::new());
        }
        let encoded: Vec<Vec<u32>> = texts.iter().map(|t| self.encoder.encode(t)).collect();
        let seqs: Vec<&[u32]> = encoded.iter().map(Vec::as_slice).collect();
        self.predict_encoded(&seqs)
    }

    /// Predicts already-encoded texts in one batch.
    pub fn predict_encoded(&self, seqs: &[&[u32]]) -> Result<Vec<Prediction>> {
        let probs = self.model.probabilities(seqs, &self.packed)?;
        Ok(probs
            .into_iter()
            .map(|p| Prediction {
                label: LABELS[argmax(&p) as usize],
                score: p[1],
                probabilities: [p[0], p[1]],
            })
            .collect())
    }
}
