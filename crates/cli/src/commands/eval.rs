//! `bloginfer eval`: metrics of a stored model on labelled data.

use std::path::{Path, PathBuf};

use anyhow::Result;
use bloginfer_model::registry::Registry;
use bloginfer_model::train::{encode_all, evaluate};
use clap::Args;

/// Flags of `bloginfer eval`.
#[derive(Args)]
pub struct EvalArgs {
    /// Model version; the current one by default.
    #[arg(long)]
    version: Option<String>,
    /// Labelled data (`label<TAB>text` TSV); the bundled corpus's fixed
    /// validation split by default.
    #[arg(long)]
    data: Option<PathBuf>,
    /// Print one JSON object instead of a table.
    #[arg(long)]
    json: bool,
}

/// Runs `bloginfer eval`.
pub fn run(models_dir: &Path, args: EvalArgs) -> Result<()> {
    let registry = Registry::open(models_dir)?;
    let (version, checkpoint) = registry.load_version_or_current(args.version.as_deref())?;
    let examples = super::eval_data(args.data.as_deref())?;
    let model = checkpoint.model()?;
    let encoder = checkpoint.encoder();
    let metrics = evaluate(&model, &encode_all(&encoder, &examples))?;
    if args.json {
        let mut value = serde_json::to_value(&metrics)?;
        value["version"] = serde_json::Value::String(version);
        println!("{}", serde_json::to_string_pretty(&value)?);
    } else {
        println!("model {version}\n");
        print!("{}", super::metrics_table(&metrics));
    }
    Ok(())
}
