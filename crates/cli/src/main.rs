//! `bloginfer`: one binary, one subcommand per workload. It only wires: each
//! subcommand turns its flags into a service's configuration, builds the
//! service and hosts it on the chassis (`crates/service`).

mod args;
mod commands;
mod launch;
mod progress;
mod serve;

// The services allocate many small short-lived objects on several threads
// (rows, JSON, futures); glibc's malloc spent a fifth of the blog's CPU there.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

/// Blog platform with built-in Chinese sentiment analysis, trained by federated learning.
#[derive(Parser)]
#[command(name = "bloginfer", version, about)]
struct Cli {
    /// The model registry: immutable versions and the `current` pointer.
    #[arg(long, global = true, env = "MODEL_DIR", default_value = "./var/models")]
    models_dir: PathBuf,
    /// Threads for numeric work (one by default: parallelism comes from
    /// processes, and thread pools collapse when processes share few cores).
    #[arg(long, global = true, env = "BLOGINFER_THREADS", default_value_t = 1)]
    threads: usize,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Train a model centrally, store it as a new version and make it current.
    Train(commands::train::TrainArgs),
    /// Evaluate a model on labelled data.
    Eval(commands::eval::EvalArgs),
    /// Predict the sentiment of texts.
    Predict(commands::predict::PredictArgs),
    /// Run the whole system in one process: inference and the web app on one listener.
    Up(Box<commands::up::UpArgs>),
    /// Serve the blog API (RealWorld Conduit) on SQLite or MySQL.
    Blog(Box<commands::blog::BlogArgs>),
    /// Create an admin of the blog, or make an existing account one.
    Admin(Box<commands::admin::AdminArgs>),
    /// Serve sentiment predictions over HTTP (micro-batched, hot-reloading).
    Infer(Box<commands::infer::InferArgs>),
    /// Run a federated training's aggregator (one run, as a network service).
    Aggregator(Box<commands::aggregator::AggregatorArgs>),
    /// Run the training daemon: training runs on demand, evaluation, promotion, retention.
    Orchestrator(Box<commands::orchestrator::OrchestratorArgs>),
    /// Run a federated worker on its own data shard.
    Worker(commands::worker::WorkerArgs),
    /// Federated training on this machine.
    Fl {
        #[command(subcommand)]
        command: commands::fl::FlCommand,
    },
    /// Inspect and manage the model registry.
    Models {
        #[command(subcommand)]
        command: commands::models::ModelsCommand,
    },
}

/// Logs to stderr, filtered by `RUST_LOG` (`warn,bloginfer=info` by default):
/// `level` and `target=level` directives, read by a static per-target filter
/// (`Targets`), which is all the documented settings need and keeps no
/// per-span state for the span every request gets. Request spans (target
/// `bloginfer::http`) can be turned off with `bloginfer::http=warn`.
fn init_logging() {
    use tracing_subscriber::filter::Targets;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;
    const DEFAULT: &str = "warn,bloginfer=info";
    let filter = std::env::var("RUST_LOG")
        .ok()
        .and_then(|v| match v.parse::<Targets>() {
            Ok(targets) => Some(targets),
            Err(e) => {
                eprintln!("warning: RUST_LOG={v:?} is not `level` or `target=level` directives ({e}); using {DEFAULT}");
                None
            }
        })
        .unwrap_or_else(|| DEFAULT.parse().unwrap_or_default());
    let logs = tracing_subscriber::fmt::layer()
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal());
    tracing_subscriber::registry()
        .with(logs)
        .with(filter)
        .init();
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    // First, while this is the only thread: the thread count lives in the
    // environment, which must not change once other threads may read it.
    bloginfer_model::runtime::configure_threads(cli.threads);
    bloginfer_model::runtime::tune_allocator();
    init_logging();
    let result = match cli.command {
        Command::Train(args) => commands::train::run(&cli.models_dir, cli.threads, args),
        Command::Eval(args) => commands::eval::run(&cli.models_dir, args),
        Command::Predict(args) => commands::predict::run(&cli.models_dir, args),
        Command::Up(args) => commands::up::run(cli.threads, *args),
        Command::Blog(args) => commands::blog::run(*args),
        Command::Admin(args) => commands::admin::run(*args),
        Command::Infer(args) => commands::infer::run(&cli.models_dir, *args),
        Command::Aggregator(args) => commands::aggregator::run(&cli.models_dir, cli.threads, *args),
        Command::Orchestrator(args) => {
            commands::orchestrator::run(&cli.models_dir, cli.threads, *args)
        }
        Command::Worker(args) => commands::worker::run(cli.threads, args),
        Command::Fl { command } => commands::fl::run(&cli.models_dir, cli.threads, command),
        Command::Models { command } => commands::models::run(&cli.models_dir, command),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            eprintln!("error: {err:#}");
            ExitCode::FAILURE
        }
    }
}
