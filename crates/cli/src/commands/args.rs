//! Flag groups shared by several subcommands.

use std::time::Duration;

use bloginfer_fl::strategy::{Aggregation, StrategyKind, StrategyOptions};
use bloginfer_fl::wire::WireDtype;
use bloginfer_model::config::{ModelConfig, Pooling, TrainConfig};
use bloginfer_text::Granularity;
use clap::Args;

/// Model architecture and vocabulary flags.
#[derive(Args, Clone)]
pub struct ModelArgs {
    /// Minimum token count for the vocabulary.
    #[arg(long, default_value_t = TrainConfig::default().min_count)]
    pub min_count: u64,
    /// Maximum vocabulary size.
    #[arg(long, default_value_t = ModelConfig::default().vocab_size)]
    pub vocab_size: usize,
    /// Embedding width.
    #[arg(long, default_value_t = ModelConfig::default().embed_dim)]
    pub embed_dim: usize,
    /// LSTM hidden size.
    #[arg(long, default_value_t = ModelConfig::default().hidden_dim)]
    pub hidden_dim: usize,
    /// Pooling over time: last, mean or max.
    #[arg(long, default_value_t = ModelConfig::default().pooling)]
    pub pooling: Pooling,
    /// Add a second LSTM reading backwards.
    #[arg(long)]
    pub bidirectional: bool,
    /// Dropout before the output layer.
    #[arg(long, default_value_t = ModelConfig::default().dropout)]
    pub dropout: f32,
    /// Spatial dropout on the embeddings.
    #[arg(long, default_value_t = ModelConfig::default().embed_dropout)]
    pub embed_dropout: f32,
    /// Token granularity: word, char or mixed.
    #[arg(long, default_value_t = ModelConfig::default().granularity)]
    pub granularity: Granularity,
    /// Tokens kept per text.
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

    /// The flags again, for a child `bloginfer fl run`.
    pub fn to_flags(&self) -> Vec<String> {
        let mut flags = vec![
            format!("--min-count={}", self.min_count),
            format!("--vocab-size={}", self.vocab_size),
            format!("--embed-dim={}", self.embed_dim),
            format!("--hidden-dim={}", self.hidden_dim),
            format!("--pooling={}", self.pooling),
            format!("--dropout={}", self.dropout),
            format!("--embed-dropout={}", self.embed_dropout),
            format!("--granularity={}", self.granularity),
            format!("--max-len={}", self.max_len),
        ];
        if self.bidirectional {
            flags.push("--bidirectional".into());
        }
        flags
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    humantime::parse_duration(s).map_err(|e| format!("{e} (examples: 30s, 10m)"))
}

/// How a federated run trains: strategy, local work, client sampling, limits.
/// The aggregator reads these; `fl run` passes them on to it.
#[derive(Args, Clone)]
pub struct RunArgs {
    /// Rounds to run.
    #[arg(long, env = "FL_ROUNDS", default_value_t = 10)]
    pub rounds: u32,
    /// fedavg, fedsgd, fedprox, fedavgm or fedadam.
    #[arg(long, env = "FL_STRATEGY", default_value = "fedavg")]
    pub strategy: StrategyKind,
    /// How updates are combined: mean (sample-weighted), median, trimmed-mean[:SHARE].
    #[arg(long, env = "FL_AGGREGATION", default_value = "mean")]
    pub aggregation: Aggregation,
    /// Local epochs per round (fedavg, fedprox, fedavgm, fedadam).
    #[arg(long, env = "FL_LOCAL_EPOCHS")]
    pub local_epochs: Option<usize>,
    /// Local Adam learning rate [default: 0.002].
    #[arg(long, env = "FL_LOCAL_LR")]
    pub local_lr: Option<f64>,
    /// FedProx proximal weight [default: 0.01].
    #[arg(long, env = "FL_PROX_MU")]
    pub prox_mu: Option<f64>,
    /// Server learning rate [default: 1 for SGD strategies, 0.1 fedadam, the local rate for fedsgd].
    #[arg(long, env = "FL_SERVER_LR")]
    pub server_lr: Option<f64>,
    /// Server momentum for fedavgm [default: 0.5].
    #[arg(long, env = "FL_SERVER_MOMENTUM")]
    pub server_momentum: Option<f64>,
    /// Local mini-batch size.
    #[arg(long, env = "FL_BATCH_SIZE", default_value_t = TrainConfig::default().batch_size)]
    pub batch_size: usize,
    /// Local gradient-norm clip (0: none).
    #[arg(long, env = "FL_CLIP_NORM", default_value_t = TrainConfig::default().clip_norm)]
    pub clip_norm: f64,
    /// Share of training tokens replaced by <unk> during local training.
    #[arg(long, env = "FL_TOKEN_DROPOUT", default_value_t = TrainConfig::default().token_dropout)]
    pub token_dropout: f64,
    /// Seed for initialisation, client selection and local training.
    #[arg(long, env = "FL_SEED", default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Updates needed to aggregate a round.
    #[arg(long, env = "FL_MIN_CLIENTS")]
    pub min_clients: Option<usize>,
    /// Workers that must be available before a round starts [default: min-clients].
    #[arg(long, env = "FL_MIN_AVAILABLE")]
    pub min_available: Option<usize>,
    /// Share of available workers selected each round.
    #[arg(long, env = "FL_FRACTION", default_value_t = 1.0)]
    pub fraction: f64,
    /// A round aggregates what it has after this long, or starts over if that is too little.
    #[arg(long, env = "FL_ROUND_DEADLINE", default_value = "10m", value_parser = parse_duration)]
    pub round_deadline: Duration,
    /// Updates with a larger L2 norm are refused (0: no bound).
    #[arg(long, env = "FL_MAX_UPDATE_NORM", default_value_t = 0.0)]
    pub max_update_norm: f64,
    /// Element type of uploads: f32 (exact) or f16 (half the bytes).
    #[arg(long, env = "FL_UPLOAD_DTYPE", default_value = "f32")]
    pub upload_dtype: WireDtype,
}

impl RunArgs {
    /// The strategy options these flags set.
    pub fn strategy_options(&self) -> StrategyOptions {
        StrategyOptions {
            local_epochs: self.local_epochs,
            local_lr: self.local_lr,
            prox_mu: self.prox_mu,
            server_lr: self.server_lr,
            server_momentum: self.server_momentum,
            aggregation: Some(self.aggregation),
        }
    }

    /// The flags again, for a child `bloginfer aggregator`.
    pub fn to_flags(&self) -> Vec<String> {
        let mut flags = vec![
            format!("--rounds={}", self.rounds),
            format!("--strategy={}", self.strategy),
            format!("--aggregation={}", aggregation_flag(self.aggregation)),
            format!("--batch-size={}", self.batch_size),
            format!("--clip-norm={}", self.clip_norm),
            format!("--token-dropout={}", self.token_dropout),
            format!("--seed={}", self.seed),
            format!("--fraction={}", self.fraction),
            format!("--round-deadline={}s", self.round_deadline.as_secs_f64()),
            format!("--max-update-norm={}", self.max_update_norm),
            format!(
                "--upload-dtype={}",
                if self.upload_dtype == WireDtype::F16 {
                    "f16"
                } else {
                    "f32"
                }
            ),
        ];
        let optional = [
            ("local-epochs", self.local_epochs.map(|v| v.to_string())),
            ("local-lr", self.local_lr.map(|v| v.to_string())),
            ("prox-mu", self.prox_mu.map(|v| v.to_string())),
            ("server-lr", self.server_lr.map(|v| v.to_string())),
            (
                "server-momentum",
                self.server_momentum.map(|v| v.to_string()),
            ),
            ("min-clients", self.min_clients.map(|v| v.to_string())),
            ("min-available", self.min_available.map(|v| v.to_string())),
        ];
        flags.extend(
            optional
                .into_iter()
                .filter_map(|(name, v)| v.map(|v| format!("--{name}={v}"))),
        );
        flags
    }
}

fn aggregation_flag(a: Aggregation) -> String {
    match a {
        Aggregation::Mean => "mean".into(),
        Aggregation::Median => "median".into(),
        Aggregation::TrimmedMean { trim } => format!("trimmed-mean:{trim}"),
    }
}
