//! How the training daemon schedules, judges and cleans up runs (shared by
//! `bloginfer orchestrator` and `up`).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bloginfer_fl::strategy::StrategyKind;
use bloginfer_model::data;
use bloginfer_orchestrator::http::AdminAuthConfig;
use bloginfer_orchestrator::{OrchestratorConfig, RunDefaults};
use clap::Args;

use super::model::ModelArgs;
use super::run::TuningArgs;

/// How runs are scheduled, judged and cleaned up.
#[derive(Args, Clone)]
pub struct TrainingArgs {
    /// Least time between the starts of two runs people ask for.
    #[arg(long, env = "MIN_TRAIN_INTERVAL_SECONDS", default_value = "10m", value_parser = super::duration)]
    pub min_train_interval: Duration,
    /// How often an active run's progress is looked at.
    #[arg(long, env = "TRAIN_POLL_INTERVAL_SECONDS", default_value = "5s", value_parser = super::duration)]
    pub train_poll_interval: Duration,
    /// How often old models and run folders are deleted.
    #[arg(long, env = "CLEAN_INTERVAL_SECONDS", default_value = "1h", value_parser = super::duration)]
    pub clean_interval: Duration,
    /// Run folders (shards, worker artifacts, logs) older than this are deleted.
    #[arg(long, env = "MAX_CLIENT_MODEL_AGE_SECONDS", default_value = "24h", value_parser = super::duration)]
    pub max_client_model_age: Duration,
    /// Model versions retention keeps (the current one and candidates always stay).
    #[arg(long, env = "KEEP_MODELS", default_value_t = 5)]
    pub keep_models: usize,
    /// A candidate is promoted unless its accuracy is lower than the current
    /// model's by more than this (a fraction: 0.005 is half a point).
    #[arg(long, env = "PROMOTION_MARGIN", default_value_t = 0.005)]
    pub promotion_margin: f64,
    /// Federated strategy of a run unless the request names one.
    #[arg(long, env = "TRAIN_STRATEGY", default_value = "fedavg")]
    pub train_strategy: StrategyKind,
    /// Training data instead of the bundled corpus (`label<TAB>text` TSV); its
    /// fixed validation split is the evaluation split.
    #[arg(long, env = "TRAIN_DATA")]
    pub train_data: Option<PathBuf>,
    /// Use only the first N training examples of the corpus (quick runs).
    #[arg(long, env = "TRAIN_LIMIT")]
    pub train_limit: Option<usize>,
    #[command(flatten)]
    pub tuning: TuningArgs,
    #[command(flatten)]
    pub model: ModelArgs,
}

/// Where the orchestrator keeps things and who may use it: what its host decides.
pub struct Placement<'a> {
    /// The model registry runs publish candidates to and promote within.
    pub models_dir: &'a Path,
    /// Where run directories go.
    pub runs_dir: &'a Path,
    /// Workers and rounds of a run unless the request says otherwise.
    pub workers: u32,
    /// Rounds of a run unless the request says otherwise.
    pub rounds: u32,
    /// Threads for evaluating candidates.
    pub threads: usize,
    /// Who may use the admin API.
    pub admin: AdminAuthConfig,
}

impl TrainingArgs {
    /// The orchestrator's configuration from these flags and `at`; refuses intervals
    /// too short to be meant.
    pub fn config(&self, at: Placement<'_>) -> Result<OrchestratorConfig> {
        anyhow::ensure!(
            self.train_poll_interval >= Duration::from_millis(10),
            "TRAIN_POLL_INTERVAL_SECONDS must be at least 0.01"
        );
        anyhow::ensure!(
            self.clean_interval >= Duration::from_secs(1),
            "CLEAN_INTERVAL_SECONDS must be at least 1"
        );
        anyhow::ensure!(
            (0.0..1.0).contains(&self.promotion_margin),
            "PROMOTION_MARGIN is a fraction of accuracy, between 0 and 1"
        );
        anyhow::ensure!(self.keep_models >= 1, "KEEP_MODELS must be at least 1");
        let examples = match &self.train_data {
            Some(path) => data::read_tsv(path)?,
            None => data::bundled_corpus(),
        };
        let (mut corpus, evaluation) =
            data::split(examples, data::VALIDATION_FRACTION, data::VALIDATION_SEED);
        if let Some(limit) = self.train_limit {
            corpus.truncate(limit);
        }
        anyhow::ensure!(
            !corpus.is_empty() && !evaluation.is_empty(),
            "too little data for training and evaluation"
        );
        Ok(OrchestratorConfig {
            models_dir: at.models_dir.to_path_buf(),
            runs_dir: at.runs_dir.to_path_buf(),
            min_interval: self.min_train_interval,
            poll_interval: self.train_poll_interval,
            clean_interval: self.clean_interval,
            max_run_age: self.max_client_model_age,
            keep_models: self.keep_models,
            promotion_margin: self.promotion_margin,
            defaults: RunDefaults {
                workers: at.workers,
                rounds: at.rounds,
                strategy: self.train_strategy.to_string(),
                ..RunDefaults::default()
            },
            model: self.model.config()?,
            min_count: self.model.min_count,
            tuning: self.tuning.tuning()?,
            corpus: Arc::new(corpus),
            evaluation: Arc::new(evaluation),
            threads: at.threads,
            admin: at.admin,
        })
    }
}
