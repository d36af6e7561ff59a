//! `bloginfer models`: list, show, promote and prune registry versions.

use std::path::Path;

use anyhow::Result;
use bloginfer_model::registry::Registry;
use clap::Subcommand;

/// What `bloginfer models` does to the registry: list, show, promote or prune versions.
#[derive(Subcommand)]
pub enum ModelsCommand {
    /// List versions, oldest first; `*` marks the current one.
    List {
        /// Print the versions with their metadata as one JSON array instead of a table.
        #[arg(long)]
        json: bool,
    },
    /// Show one version's config, metrics and training metadata as JSON.
    Show {
        /// The version to show, as `models list` prints it.
        version: String,
    },
    /// Make a version current (an older one rolls back).
    Promote {
        /// The version to make current, as `models list` prints it.
        version: String,
    },
    /// Delete all but the newest K versions; the current one is always kept.
    Prune {
        /// How many of the newest versions to keep.
        #[arg(long)]
        keep: usize,
    },
}

/// Runs `bloginfer models ...`.
pub fn run(models_dir: &Path, command: ModelsCommand) -> Result<()> {
    let registry = Registry::open(models_dir)?;
    match command {
        ModelsCommand::List { json } => {
            let versions = registry.list()?;
            if json {
                println!("{}", serde_json::to_string_pretty(&versions)?);
            } else if versions.is_empty() {
                eprintln!("no models in {}", models_dir.display());
            } else {
                println!(
                    "  {:<32} {:<10} {:>9} {:>9}  finished",
                    "version", "method", "accuracy", "macro-F1"
                );
                for v in versions {
                    let m = v.header.metadata.metrics.as_ref();
                    println!(
                        "{} {:<32} {:<10} {:>9} {:>9}  {}",
                        if v.current { "*" } else { " " },
                        v.version,
                        v.header.metadata.method,
                        m.map_or("-".into(), |m| format!("{:.4}", m.accuracy)),
                        m.map_or("-".into(), |m| format!("{:.4}", m.macro_f1)),
                        v.header.metadata.finished_at
                    );
                }
            }
        }
        ModelsCommand::Show { version } => {
            let header = bloginfer_model::Checkpoint::read_header(&registry.path_of(&version)?)?;
            let current = registry.current()?.as_deref() == Some(version.as_str());
            let mut value = serde_json::to_value(&header)?;
            value["version"] = version.into();
            value["current"] = current.into();
            // Privacy next to accuracy, where people look first.
            let federated = &header.metadata.settings["federated"];
            for key in ["epsilon", "delta"] {
                if let Some(v) = federated.get(key).filter(|v| !v.is_null()) {
                    value[key] = v.clone();
                }
            }
            println!("{}", serde_json::to_string_pretty(&value)?);
        }
        ModelsCommand::Promote { version } => {
            registry.set_current(&version)?;
            println!("current model is now {version}");
        }
        ModelsCommand::Prune { keep } => {
            let removed = registry.prune(keep)?;
            for v in &removed {
                println!("removed {v}");
            }
            eprintln!("{} version(s) removed", removed.len());
        }
    }
    Ok(())
}
