//! How federated runs train: the run's shape for `fl run`, and the tuning
//! that `fl run`, the orchestrator and `up` share. The flags become a typed
//! [`Tuning`], from which each run's `run.json` is written.

use std::time::Duration;

use bloginfer_fl::privacy::DpSettings;
use bloginfer_fl::protocol::LocalSettings;
use bloginfer_fl::spec::{PrivacySpec, Tuning};
use bloginfer_fl::strategy::{Aggregation, StrategyKind, StrategyOptions};
use bloginfer_fl::wire::WireDtype;
use bloginfer_model::config::TrainConfig;
use clap::Args;

/// How many rounds, and which strategy (`fl run`; the orchestrator takes them per request).
#[derive(Args, Clone)]
pub struct RunArgs {
    /// Rounds to aggregate before the run ends.
    #[arg(long, env = "FL_ROUNDS", default_value_t = 10)]
    pub rounds: u32,
    /// fedavg, fedsgd, fedprox, fedavgm or fedadam.
    #[arg(long, env = "FL_STRATEGY", default_value = "fedavg")]
    pub strategy: StrategyKind,
}

/// How every round trains, whatever its shape.
#[derive(Args, Clone)]
pub struct TuningArgs {
    /// How updates are combined: mean (sample-weighted), median, trimmed-mean[:SHARE].
    #[arg(long, env = "FL_AGGREGATION", default_value = "mean")]
    pub aggregation: Aggregation,
    /// Passes over its shard a worker makes per round (not fedsgd) [default: 1].
    #[arg(long, env = "FL_LOCAL_EPOCHS")]
    pub local_epochs: Option<usize>,
    /// Workers' Adam learning rate [default: 0.002].
    #[arg(long, env = "FL_LOCAL_LR")]
    pub local_lr: Option<f64>,
    /// FedProx's pull towards the global weights [default: 0.01].
    #[arg(long, env = "FL_PROX_MU")]
    pub prox_mu: Option<f64>,
    /// Step size of the server's optimiser [default: 1 for SGD strategies, 0.1 fedadam,
    /// the local rate for fedsgd].
    #[arg(long, env = "FL_SERVER_LR")]
    pub server_lr: Option<f64>,
    /// fedavgm's server momentum [default: 0.5].
    #[arg(long, env = "FL_SERVER_MOMENTUM")]
    pub server_momentum: Option<f64>,
    /// Examples per local mini-batch.
    #[arg(long, env = "FL_BATCH_SIZE", default_value_t = TrainConfig::default().batch_size)]
    pub batch_size: usize,
    /// Local gradients with a larger L2 norm are scaled down to it (0: never).
    #[arg(long, env = "FL_CLIP_NORM", default_value_t = TrainConfig::default().clip_norm)]
    pub clip_norm: f64,
    /// Share of training tokens replaced by <unk> during local training.
    #[arg(long, env = "FL_TOKEN_DROPOUT", default_value_t = TrainConfig::default().token_dropout)]
    pub token_dropout: f64,
    /// Seed of initialisation, shards, client selection and local training.
    #[arg(long, env = "FL_SEED", default_value_t = TrainConfig::default().seed)]
    pub seed: u64,
    /// Updates needed to aggregate a round [default: every worker].
    #[arg(long, env = "FL_MIN_CLIENTS")]
    pub min_clients: Option<usize>,
    /// Workers that must be available before a round starts [default: min-clients].
    #[arg(long, env = "FL_MIN_AVAILABLE")]
    pub min_available: Option<usize>,
    /// Share of available workers selected each round.
    #[arg(long, env = "FL_FRACTION", default_value_t = 1.0)]
    pub fraction: f64,
    /// A round aggregates what it has after this long, or starts over if that is too little.
    #[arg(long, env = "FL_ROUND_DEADLINE", default_value = "10m", value_parser = super::duration)]
    pub round_deadline: Duration,
    /// A worker counts as available this long after it was last heard from.
    #[arg(long, env = "FL_CLIENT_LEASE", default_value = "60s", value_parser = super::duration)]
    pub client_lease: Duration,
    /// Updates with a larger L2 norm are refused (0: no bound).
    #[arg(long, env = "FL_MAX_UPDATE_NORM", default_value_t = 0.0)]
    pub max_update_norm: f64,
    /// Updates whose norm exceeds this multiple of the round's (lower) median
    /// update norm are scaled down to it before they are combined (0: off).
    #[arg(long, env = "FL_ADAPTIVE_NORM_MULTIPLE", default_value_t = bloginfer_fl::bounds::DEFAULT_MULTIPLE)]
    pub adaptive_norm_multiple: f64,
    /// Mask every update so that the aggregator learns only the round's sum
    /// (SecAgg: X25519 pairwise masks, Shamir-shared seeds for dropouts).
    #[arg(long, env = "FL_SECURE_AGGREGATION")]
    pub secure_aggregation: bool,
    /// Client-level differential privacy: the Gaussian noise's standard
    /// deviation as a multiple of --dp-clip (needs --dp-clip).
    #[arg(long, env = "FL_DP_NOISE_MULTIPLIER", requires = "dp_clip")]
    pub dp_noise_multiplier: Option<f64>,
    /// Client-level differential privacy: every update is clipped to this L2
    /// norm (needs --dp-noise-multiplier).
    #[arg(long, env = "FL_DP_CLIP", requires = "dp_noise_multiplier")]
    pub dp_clip: Option<f64>,
    /// The δ the run's privacy (ε, δ) is reported at.
    #[arg(long, env = "FL_DP_DELTA", default_value_t = bloginfer_fl::privacy::DEFAULT_DELTA)]
    pub dp_delta: f64,
    /// Workers send the whole embedding matrix, not only the rows their data
    /// touched, so an update does not reveal which words a silo used (about
    /// 10 MB more per update with the default model).
    #[arg(long, env = "FL_DENSE_EMBEDDING_UPDATES")]
    pub dense_embedding_updates: bool,
    /// Element type of uploads: f32 (exact) or f16 (half the bytes).
    #[arg(long, env = "FL_UPLOAD_DTYPE", default_value = "f32")]
    pub upload_dtype: WireDtype,
    /// Standard deviation of a fresh model's initial embeddings.
    #[arg(long, default_value_t = TrainConfig::default().embed_init_std)]
    pub embed_init_std: f32,
}

impl TuningArgs {
    /// The tuning these flags describe.
    pub fn tuning(&self) -> anyhow::Result<Tuning> {
        anyhow::ensure!(
            self.fraction > 0.0 && self.fraction <= 1.0,
            "--fraction must be in (0, 1]"
        );
        anyhow::ensure!(
            !(self.secure_aggregation && self.aggregation != Aggregation::Mean),
            "--secure-aggregation reveals only the sum of the updates, so it works with \
             --aggregation mean only; median and trimmed-mean need every update in the clear"
        );
        Ok(Tuning {
            options: StrategyOptions {
                local_epochs: self.local_epochs,
                local_lr: self.local_lr,
                prox_mu: self.prox_mu,
                server_lr: self.server_lr,
                server_momentum: self.server_momentum,
                aggregation: Some(self.aggregation),
            },
            local: LocalSettings {
                batch_size: self.batch_size.max(1),
                clip_norm: self.clip_norm,
                token_dropout: self.token_dropout,
                seed: self.seed,
            },
            min_clients: self.min_clients,
            min_available: self.min_available,
            fraction: self.fraction,
            round_deadline: self.round_deadline,
            client_lease: self.client_lease,
            max_update_norm: self.max_update_norm,
            adaptive_norm_multiple: self.adaptive_norm_multiple,
            upload_dtype: self.upload_dtype,
            privacy: PrivacySpec {
                secure_aggregation: self.secure_aggregation,
                dp: match (self.dp_noise_multiplier, self.dp_clip) {
                    (Some(noise_multiplier), Some(clip)) => {
                        let dp = DpSettings {
                            noise_multiplier,
                            clip,
                            delta: self.dp_delta,
                        };
                        dp.validate()
                            .map_err(|m| anyhow::anyhow!("differential privacy: {m}"))?;
                        Some(dp)
                    }
                    _ => None,
                },
                dense_embedding_updates: self.dense_embedding_updates,
            },
            embed_init_std: self.embed_init_std,
        })
    }
}
