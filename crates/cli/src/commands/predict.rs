//! `bloginfer predict`: label and score for each text.

use std::path::Path;

use anyhow::Result;
use bloginfer_model::registry::Registry;
use bloginfer_model::Predictor;
use clap::Args;

/// Flags of `bloginfer predict`.
#[derive(Args)]
pub struct PredictArgs {
    /// Model version; the current one by default.
    #[arg(long)]
    version: Option<String>,
    /// Print JSON lines instead of a table.
    #[arg(long)]
    json: bool,
    /// Texts to label, one argument each.
    #[arg(required = true)]
    texts: Vec<String>,
}

/// Runs `bloginfer predict`.
pub fn run(models_dir: &Path, args: PredictArgs) -> Result<()> {
    if let Some(i) = args.texts.iter().position(|t| t.trim().is_empty()) {
        anyhow::bail!("text {} is empty: there is nothing to classify", i + 1);
    }
    let registry = Registry::open(models_dir)?;
    let (version, checkpoint) = registry.load_version_or_current(args.version.as_deref())?;
    let predictor = Predictor::new(&checkpoint)?;
    let texts: Vec<&str> = args.texts.iter().map(String::as_str).collect();
    for (text, p) in texts.iter().zip(predictor.predict(&texts)?) {
        if args.json {
            let line = serde_json::json!({
                "text": text, "label": p.label, "score": p.score,
                "probabilities": {"negative": p.probabilities[0], "positive": p.probabilities[1]},
                "model_version": version,
            });
            println!("{line}");
        } else {
            println!("{:<8} {:.4}  {text}", p.label, p.score);
        }
    }
    Ok(())
}
