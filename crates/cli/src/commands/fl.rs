//! `bloginfer fl run`: a whole federated run on this machine — shards, one
//! aggregator and N worker processes on loopback, live progress, and the
//! final model stored as a new current registry version.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use anyhow::{Context, Result};
use bloginfer_fl::launcher::{launch, prepare, random_token, Launch, LaunchProgress, Sharding};
use bloginfer_fl::partition::Partition;
use bloginfer_fl::protocol::RunStatus;
use bloginfer_model::data;
use bloginfer_model::train::build_vocab;
use clap::{Args, Subcommand};
use indicatif::{ProgressBar, ProgressStyle};

use super::args::{ModelArgs, RunArgs};

/// `bloginfer fl ...`
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
    model: ModelArgs,
    /// Working directory for shards, logs and aggregator state [default: ./var/fl/<run id>].
    #[arg(long)]
    work_dir: Option<PathBuf>,
    /// Keep the shard files after a successful run.
    #[arg(long)]
    keep_shards: bool,
    /// Store the model without making it current.
    #[arg(long)]
    no_promote: bool,
}

struct RoundBar {
    bar: ProgressBar,
}

impl RoundBar {
    fn new(rounds: u32) -> Self {
        let bar = ProgressBar::new(u64::from(rounds));
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} rounds  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix("federated");
        Self { bar }
    }
}

impl LaunchProgress for RoundBar {
    fn status(&mut self, s: &RunStatus, elapsed: Duration) {
        let done = s.history.iter().filter(|r| r.round > 0).count() as u32;
        if u64::from(done) > self.bar.position() {
            if let Some(r) = s.history.last() {
                let line = format!(
                    "round {:>3}: {} clients  train loss {}  val accuracy {}  ({:.1} s)",
                    r.round,
                    r.clients,
                    fmt_opt(r.train_loss),
                    fmt_opt(r.val_accuracy),
                    r.seconds
                );
                // indicatif drops println when stderr is not a terminal (logs, CI).
                if self.bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    self.bar.println(line);
                }
            }
        }
        self.bar.set_position(u64::from(done));
        let eta = if done > 0 {
            let per_round = elapsed.as_secs_f64() / f64::from(done);
            format!(
                "eta {:.0} s",
                per_round * f64::from(s.rounds.saturating_sub(done))
            )
        } else {
            "eta -".to_string()
        };
        let last = s.history.last();
        self.bar.set_message(format!(
            "round {} {}: {}/{} reported  loss {}  acc {}  {eta}",
            s.round,
            s.phase,
            s.reported,
            s.selected,
            fmt_opt(last.and_then(|r| r.train_loss)),
            fmt_opt(last.and_then(|r| r.val_accuracy)),
        ));
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}

fn run_id() -> String {
    let stamp = humantime::format_rfc3339_seconds(SystemTime::now())
        .to_string()
        .replace([':', '-'], "")
        .trim_end_matches('Z')
        .to_lowercase();
    format!("fl-{stamp}-{}", &random_token()[..6])
}

/// Runs `bloginfer fl ...`.
pub fn run(models_dir: &Path, threads: usize, command: FlCommand) -> Result<()> {
    let FlCommand::Run(args) = command;
    let args = *args;
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
    let run_id = run_id();
    let dir = args
        .work_dir
        .clone()
        .unwrap_or_else(|| PathBuf::from("./var/fl").join(&run_id));
    let sharding = Sharding {
        workers: args.workers,
        partition: args.partition,
        seed: args.run.seed,
    };
    let files = prepare(&dir, &train, &validation, &vocab, &model, sharding)?;
    eprintln!(
        "run {run_id}: {} workers ({} partition, shards of {:?} examples), {} rounds of {}, validating on {} examples; logs in {}",
        args.workers,
        args.partition,
        files.shard_sizes,
        args.run.rounds,
        args.run.strategy,
        validation.len(),
        dir.display()
    );
    let mut aggregator_args = args.run.to_flags();
    if args.run.min_clients.is_none() {
        aggregator_args.push(format!("--min-clients={}", args.workers));
    }
    aggregator_args.push(format!("--data-fingerprint={}", data::fingerprint(&train)));
    aggregator_args.push("--linger=10s".into());
    if !args.no_promote {
        aggregator_args.push("--promote".into());
    }
    let plan = Launch {
        exe: std::env::current_exe().context("cannot find the bloginfer binary")?,
        files: files.clone(),
        run_id,
        token: random_token(),
        models_dir: models_dir.to_path_buf(),
        aggregator_args,
        worker_threads: threads,
    };
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    let mut bar = RoundBar::new(args.run.rounds);
    let outcome = runtime.block_on(launch(&plan, &mut bar));
    bar.bar.finish_and_clear();
    let outcome = outcome?;
    if !args.keep_shards {
        for shard in &files.shards {
            let _ = std::fs::remove_file(shard);
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
