//! Retention, run every `CLEAN_INTERVAL_SECONDS`: the registry keeps its
//! newest K versions (never the current one, never a candidate under
//! evaluation), and run directories (worker shards, aggregator state, logs)
//! older than `MAX_CLIENT_MODEL_AGE_SECONDS` are deleted unless their run is
//! still going.

use std::path::Path;
use std::time::{Duration, SystemTime};

use bloginfer_model::Registry;

use crate::error::{OrchestratorError, Result};

/// What one pass deleted.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Cleaned {
    /// Model versions.
    pub versions: Vec<String>,
    /// Run directories (by run id).
    pub run_dirs: Vec<String>,
}

/// One retention pass.
pub fn clean(
    registry: &Registry,
    keep: usize,
    protected_versions: &[String],
    runs_dir: &Path,
    max_age: Duration,
    active_runs: &[String],
) -> Result<Cleaned> {
    let versions = registry.prune_except(keep.max(1), protected_versions)?;
    let mut run_dirs = Vec::new();
    let entries = match std::fs::read_dir(runs_dir) {
        Ok(entries) => entries,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
            return Ok(Cleaned { versions, run_dirs })
        }
        Err(e) => {
            return Err(OrchestratorError::io(
                format!("cannot list {}", runs_dir.display()),
                e,
            ))
        }
    };
    let now = SystemTime::now();
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().to_string();
        if active_runs.contains(&name) || !entry.path().is_dir() {
            continue;
        }
        let modified = entry.metadata().and_then(|m| m.modified()).unwrap_or(now);
        if now.duration_since(modified).unwrap_or_default() < max_age {
            continue;
        }
        match std::fs::remove_dir_all(entry.path()) {
            Ok(()) => run_dirs.push(name),
            Err(e) => {
                tracing::warn!(dir = %entry.path().display(), "cannot delete an old run directory: {e}")
            }
        }
    }
    Ok(Cleaned { versions, run_dirs })
}
