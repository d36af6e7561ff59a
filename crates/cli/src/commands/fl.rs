//! `bloginfer fl run`: a whole federated run on this machine: the run
//! directory written (shards, model files, `run.json`), one aggregator and N
//! worker processes on loopback, live progress, and the final model stored as
//! a new registry version.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context, Result};
use bloginfer_fl::launcher::{prepare, RunData, Sharding};
use bloginfer_fl::partition::Partition;
use bloginfer_fl::spec::{RunDir, RunShape};
use bloginfer_model::data;
use bloginfer_model::train::build_vocab;
use clap::{Args, Subcommand};

use crate::args::model::ModelArgs;
use crate::args::run::{RunArgs, TuningArgs};
use crate::progress::RoundBar;

/// The subcommands of `bloginfer fl`.
#[derive(Subcommand)]
pub enum FlCommand {
    /// Run a federated training locally: aggregator and workers as child processes.
    Run(Box<FlRunArgs>),
}

/// Flags of `bloginfer fl run`.
#[derive(Args)]
pub struct FlRunArgs {
    /// Worker processes (one shard each).
    #[arg(long, default_value_t = 2)]
    workers: usize,
    /// How the training data is split: iid or dirichlet:ALPHA.
    #[arg(long, default_value = "iid")]
    partition: Partition,
    /// Training data (`label<TAB>text` TSV); the bundled corpus by default. The
    /// fixed validation split stays with the aggregator.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Use only the first N training examples (quick runs).
    #[arg(long)]
    limit: Option<usize>,
    #[command(flatten)]
    run: RunArgs,
    #[command(flatten)]
    tuning: TuningArgs,
    #[command(flatten)]
    model: ModelArgs,
    /// The run directory: shards, logs and aggregator state [default: ./var/fl/<run id>].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the shard files after a successful run.
    #[arg(long)]
    keep_shards: bool,
    /// Store the model without making it current.
    #[arg(long)]
    no_promote: bool,
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}

/// Runs `bloginfer fl ...`.
pub fn run(models_dir: &Path, threads: usize, command: FlCommand) -> Result<()> {
    let FlCommand::Run(args) = command;
    anyhow::ensure!(args.workers > 0, "--workers must be at least 1");
    let examples = match &args.data {
        Some(path) => data::read_tsv(path)?,
        None => data::bundled_corpus(),
    };
    let (mut train, validation) =
        data::split(examples, data::VALIDATION_FRACTION, data::VALIDATION_SEED);
    if let Some(limit) = args.limit {
        train.truncate(limit);
    }
    anyhow::ensure!(
        !train.is_empty() && !validation.is_empty(),
        "too little data for training and validation"
    );
    let model = args.model.config()?;
    let vocab = build_vocab(
        &train,
        model.granularity,
        args.model.min_count,
        model.vocab_size,
    );
    let run_id = format!(
        "fl-{}-{}",
        bloginfer_common::compact_utc_stamp(),
        bloginfer_common::random_hex(3)
    );
    let dir = RunDir::new(
        args.work_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from("./var/fl").join(&run_id)),
    );
    let tuning = args.tuning.tuning()?;
    let spec = tuning.spec(RunShape {
        run_id: run_id.clone(),
        strategy: args.run.strategy,
        rounds: args.run.rounds,
        workers: args.workers,
        promote: !args.no_promote,
        linger: Duration::from_secs(10),
        data_fingerprint: Some(data::fingerprint(&train)),
        settings: serde_json::Value::Null,
    })?;
    let data = RunData {
        train: &train,
        validation: &validation,
        vocab: &vocab,
        model: &model,
    };
    let sharding = Sharding {
        workers: args.workers,
        partition: args.partition,
        seed: tuning.local.seed,
    };
    let spec = prepare(&dir, &data, sharding, spec)?;
    let sizes: Vec<u64> = spec.workers.iter().map(|w| w.samples).collect();
    eprintln!(
        "run {run_id}: {} workers ({} partition, shards of {sizes:?} examples), {} rounds of {}, validating on {} examples; logs in {}",
        args.workers,
        args.partition,
        args.run.rounds,
        args.run.strategy,
        validation.len(),
        dir.path().display()
    );
    let launcher = crate::launch::local_launcher(models_dir, threads)?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut bar = RoundBar::new(args.run.rounds);
    let outcome = runtime.block_on(async {
        let mut run = launcher.start(&dir).await?;
        run.follow(&mut bar).await
    });
    bar.finish();
    let outcome = outcome?;
    if !args.keep_shards {
        for worker in &spec.workers {
            let _ = std::fs::remove_file(dir.worker(&worker.id).join("shard.tsv"));
        }
    }
    let last = outcome.status.history.last();
    eprintln!(
        "\nfinished {} rounds in {:.1} s; final validation accuracy {}, macro-F1 {}",
        outcome
            .status
            .history
            .iter()
            .filter(|r| r.round > 0)
            .count(),
        outcome.seconds,
        fmt_opt(last.and_then(|r| r.val_accuracy)),
        fmt_opt(last.and_then(|r| r.val_macro_f1)),
    );
    eprintln!(
        "stored version {}{} in {}",
        outcome.version,
        if args.no_promote { "" } else { " (current)" },
        models_dir.display()
    );
    println!("{}", outcome.version);
    Ok(())
}
