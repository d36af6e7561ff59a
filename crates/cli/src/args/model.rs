//! The model's architecture and vocabulary flags (`train`, `fl run`, the
//! orchestrator and `up`).

use bloginfer_model::config::{ModelConfig, Pooling, TrainConfig};
use bloginfer_text::Granularity;
use clap::Args;

/// Model architecture and vocabulary flags.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Tokens seen fewer times than this in the training data stay out of the vocabulary.
    #[arg(long, default_value_t = TrainConfig::default().min_count)]
    pub min_count: u64,
    /// Largest vocabulary (the most frequent tokens are kept).
    #[arg(long, default_value_t = ModelConfig::default().vocab_size)]
    pub vocab_size: usize,
    /// Width of a token's embedding.
    #[arg(long, default_value_t = ModelConfig::default().embed_dim)]
    pub embed_dim: usize,
    /// Width of the LSTM's state.
    #[arg(long, default_value_t = ModelConfig::default().hidden_dim)]
    pub hidden_dim: usize,
    /// How the LSTM's states become one vector: last, mean or max.
    #[arg(long, default_value_t = ModelConfig::default().pooling)]
    pub pooling: Pooling,
    /// Add a second LSTM reading backwards.
    #[arg(long)]
    pub bidirectional: bool,
    /// Share of the pooled vector dropped before the output layer (training only).
    #[arg(long, default_value_t = ModelConfig::default().dropout)]
    pub dropout: f32,
    /// Share of embedding channels dropped (training only).
    #[arg(long, default_value_t = ModelConfig::default().embed_dropout)]
    pub embed_dropout: f32,
    /// What a token is: word, char or mixed.
    #[arg(long, default_value_t = ModelConfig::default().granularity)]
    pub granularity: Granularity,
    /// Longer texts are cut to this many tokens.
    #[arg(long, default_value_t = ModelConfig::default().max_len)]
    pub max_len: usize,
}

impl ModelArgs {
    /// The architecture these flags describe (vocabulary size as an upper bound).
    pub fn config(&self) -> anyhow::Result<ModelConfig> {
        let config = ModelConfig {
            vocab_size: self.vocab_size,
            embed_dim: self.embed_dim,
            hidden_dim: self.hidden_dim,
            num_classes: 2,
            pooling: self.pooling,
            bidirectional: self.bidirectional,
            dropout: self.dropout,
            embed_dropout: self.embed_dropout,
            max_len: self.max_len,
            granularity: self.granularity,
        };
        config.validate().map_err(anyhow::Error::msg)?;
        Ok(config)
    }
}
