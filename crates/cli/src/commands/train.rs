//! `bloginfer train`: centralised training on the bundled corpus or a TSV file.

use std::path::{Path, PathBuf};
use std::time::SystemTime;

use anyhow::Result;
use bloginfer_model::checkpoint::{Checkpoint, TrainingMetadata};
use bloginfer_model::config::TrainConfig;
use bloginfer_model::data;
use bloginfer_model::registry::Registry;
use bloginfer_model::train::fit;
use clap::Args;

use crate::progress::EpochBars;

/// Flags of `bloginfer train`.
#[derive(Args)]
pub struct TrainArgs {
    /// Training data (`label<TAB>text` TSV); the bundled corpus by default. The
    /// fixed validation split is carved out of it either way.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Maximum epochs (early stopping may end sooner).
    #[arg(long, default_value_t = TrainConfig::default().epochs)]
    epochs: usize,
    /// Seed for initialisation, shuffling and dropout.
    #[arg(long, default_value_t = TrainConfig::default().seed)]
    seed: u64,
    /// Examples per training batch.
    #[arg(long, default_value_t = TrainConfig::default().batch_size)]
    batch_size: usize,
    /// Adam's learning rate, the same for every epoch.
    #[arg(long, default_value_t = TrainConfig::default().learning_rate)]
    lr: f64,
    /// Epochs without improvement before stopping (0: never stop early).
    #[arg(long, default_value_t = TrainConfig::default().patience)]
    patience: usize,
    #[command(flatten)]
    model: crate::args::model::ModelArgs,
    /// Share of training tokens replaced by <unk> (word dropout).
    #[arg(long, default_value_t = TrainConfig::default().token_dropout)]
    token_dropout: f64,
    /// Standard deviation of the initial embeddings.
    #[arg(long, default_value_t = TrainConfig::default().embed_init_std)]
    embed_init_std: f32,
    /// Store the model without making it current.
    #[arg(long)]
    no_promote: bool,
}

/// Runs `bloginfer train`.
pub fn run(models_dir: &Path, threads: usize, args: TrainArgs) -> Result<()> {
    let started = SystemTime::now();
    let examples = match &args.data {
        Some(path) => data::read_tsv(path)?,
        None => data::bundled_corpus(),
    };
    let (train, val) = data::split(examples, data::VALIDATION_FRACTION, data::VALIDATION_SEED);
    anyhow::ensure!(
        !train.is_empty() && !val.is_empty(),
        "too little data for a training and a validation split"
    );
    let model_config = args.model.config()?;
    let train_config = TrainConfig {
        epochs: args.epochs,
        batch_size: args.batch_size,
        learning_rate: args.lr,
        clip_norm: TrainConfig::default().clip_norm,
        patience: args.patience,
        seed: args.seed,
        min_count: args.model.min_count,
        embed_init_std: args.embed_init_std,
        token_dropout: args.token_dropout,
    };
    eprintln!(
        "training on {} examples, validating on {} ({} thread{})",
        train.len(),
        val.len(),
        threads,
        if threads == 1 { "" } else { "s" }
    );
    let registry = Registry::open(models_dir)?;
    let mut bars = EpochBars::new(train_config.epochs);
    let fitted = fit(
        &train,
        &val,
        model_config,
        &train_config,
        threads,
        &mut bars,
    )?;
    let metadata = TrainingMetadata {
        method: "central".into(),
        run_id: None,
        data_fingerprint: data::fingerprint(&train),
        train_samples: train.len(),
        val_samples: val.len(),
        epochs: fitted.history.len(),
        best_epoch: fitted.best_epoch,
        seed: train_config.seed,
        metrics: Some(fitted.metrics.clone()),
        history: fitted.history.clone(),
        settings: serde_json::to_value(&train_config)?,
        started_at: humantime::format_rfc3339_millis(started).to_string(),
        finished_at: humantime::format_rfc3339_millis(SystemTime::now()).to_string(),
    };
    let checkpoint = Checkpoint::from_model(&fitted.model, fitted.vocab, metadata)?;
    let version = registry.publish(&checkpoint)?;
    if !args.no_promote {
        registry.set_current(&version)?;
    }
    eprintln!(
        "\nbest epoch {} on the validation split:\n",
        fitted.best_epoch
    );
    eprint!("{}", super::metrics_table(&fitted.metrics));
    eprintln!(
        "\nstored version {version}{} in {}",
        if args.no_promote { "" } else { " (current)" },
        models_dir.display()
    );
    println!("{version}");
    Ok(())
}
