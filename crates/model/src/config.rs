//! Model and training configuration: data, saved next to the weights.

use std::fmt;
use std::str::FromStr;

use bloginfer_text::Granularity;
use serde::{Deserialize, Serialize};

/// How the LSTM's per-step hidden states become one vector per text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Pooling {
    /// The state at the last real token (what the original system used).
    Last,
    /// The mean over real tokens.
    Mean,
    /// The element-wise maximum over real tokens.
    Max,
}

impl fmt::Display for Pooling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Pooling::Last => "last",
            Pooling::Mean => "mean",
            Pooling::Max => "max",
        })
    }
}

impl FromStr for Pooling {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "last" => Ok(Pooling::Last),
            "mean" => Ok(Pooling::Mean),
            "max" => Ok(Pooling::Max),
            other => Err(format!(
                "unknown pooling {other:?} (expected last, mean or max)"
            )),
        }
    }
}

/// Architecture of the classifier; stored in every checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelConfig {
    /// Vocabulary size, `<pad>` and `<unk>` included.
    pub vocab_size: usize,
    /// Width of each token's embedding vector (E).
    pub embed_dim: usize,
    /// Width of the LSTM's state (H), per direction.
    pub hidden_dim: usize,
    /// Output classes (2: negative, positive).
    pub num_classes: usize,
    /// How the states over time become the one vector the output layer reads.
    pub pooling: Pooling,
    /// A second LSTM reads each text backwards; their states are concatenated.
    #[serde(default)]
    pub bidirectional: bool,
    /// Dropout before the output layer, during training only.
    pub dropout: f32,
    /// Spatial dropout on the embeddings (whole channels of a text), training only.
    #[serde(default)]
    pub embed_dropout: f32,
    /// Tokens kept per text; longer texts are truncated.
    pub max_len: usize,
    /// What a token is (words, characters or both).
    #[serde(default)]
    pub granularity: Granularity,
}

impl Default for ModelConfig {
    fn default() -> Self {
        Self {
            vocab_size: 20_000,
            embed_dim: 128,
            hidden_dim: 128,
            num_classes: 2,
            pooling: Pooling::Max,
            bidirectional: false,
            dropout: 0.5,
            embed_dropout: 0.3,
            max_len: 256,
            granularity: Granularity::Word,
        }
    }
}

impl ModelConfig {
    /// The original system's architecture, which the PyTorch reference benchmark
    /// (`bench/pytorch/`) builds: 20,000 words, embedding and hidden 128, the last
    /// state, dropout 0.5, texts padded or cut to 128 tokens.
    pub fn original() -> Self {
        Self {
            vocab_size: 20_000,
            embed_dim: 128,
            hidden_dim: 128,
            num_classes: 2,
            pooling: Pooling::Last,
            bidirectional: false,
            dropout: 0.5,
            embed_dropout: 0.0,
            max_len: 128,
            granularity: Granularity::Word,
        }
    }

    /// Width of the pooled features: H, or 2H when bidirectional.
    pub fn feature_dim(&self) -> usize {
        if self.bidirectional {
            2 * self.hidden_dim
        } else {
            self.hidden_dim
        }
    }

    /// Parameter names and shapes this config implies, in a fixed order.
    pub fn parameter_shapes(&self) -> Vec<(&'static str, Vec<usize>)> {
        use crate::classifier::names;
        let (v, e, h, c) = (
            self.vocab_size,
            self.embed_dim,
            self.hidden_dim,
            self.num_classes,
        );
        let mut out = vec![
            (names::EMBEDDING, vec![v, e]),
            (names::W_IH, vec![4 * h, e]),
            (names::W_HH, vec![4 * h, h]),
            (names::B_IH, vec![4 * h]),
            (names::B_HH, vec![4 * h]),
        ];
        if self.bidirectional {
            out.extend([
                (names::W_IH_REV, vec![4 * h, e]),
                (names::W_HH_REV, vec![4 * h, h]),
                (names::B_IH_REV, vec![4 * h]),
                (names::B_HH_REV, vec![4 * h]),
            ]);
        }
        out.push((names::FC_W, vec![c, self.feature_dim()]));
        out.push((names::FC_B, vec![c]));
        out
    }

    /// Checks sizes a checkpoint or a user could get wrong.
    pub fn validate(&self) -> Result<(), String> {
        if self.vocab_size < 2 || self.embed_dim == 0 || self.hidden_dim == 0 || self.max_len == 0 {
            return Err(
                "vocab_size >= 2 and non-zero embed_dim, hidden_dim and max_len are required"
                    .into(),
            );
        }
        if self.num_classes < 2 {
            return Err("num_classes must be at least 2".into());
        }
        if !(0.0..1.0).contains(&self.dropout) || !(0.0..1.0).contains(&self.embed_dropout) {
            return Err(format!(
                "dropouts must be in [0, 1), got {} and {}",
                self.dropout, self.embed_dropout
            ));
        }
        Ok(())
    }
}

/// Optimisation settings for centralised training (and a worker's local training).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainConfig {
    /// Maximum passes over the training data.
    pub epochs: usize,
    /// Examples per training batch (default 64).
    pub batch_size: usize,
    /// Adam's learning rate (default 2e-3), the same for every epoch.
    pub learning_rate: f64,
    /// Global gradient-norm clip; 0 disables it.
    pub clip_norm: f64,
    /// Epochs without validation improvement before stopping; 0 disables early stopping.
    pub patience: usize,
    /// Seed for initialisation, shuffling and dropout.
    pub seed: u64,
    /// Minimum token count to enter the vocabulary.
    pub min_count: u64,
    /// Share of tokens replaced by `<unk>` in each training batch (word dropout).
    #[serde(default)]
    pub token_dropout: f64,
    /// Standard deviation of the initial embeddings (PyTorch uses 1).
    #[serde(default = "default_embed_init_std")]
    pub embed_init_std: f32,
}

fn default_embed_init_std() -> f32 {
    TrainConfig::default().embed_init_std
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            epochs: 8,
            batch_size: 64,
            learning_rate: 2e-3,
            clip_norm: 5.0,
            patience: 2,
            seed: 42,
            min_count: 2,
            embed_init_std: 1.0,
            token_dropout: 0.0,
        }
    }
}
