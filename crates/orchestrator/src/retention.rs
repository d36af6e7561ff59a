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
    /// Model versions deleted from the registry.
    pub versions: Vec<String>,
    /// Run directories (by run id).
    pub run_dirs: Vec<String>,
}

/// One retention pass: keeps the newest `keep` model versions (and the protected ones),
/// and deletes run directories older than `max_age` unless their run is active.
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

#[cfg(test)]
mod tests {
    use super::*;
    use bloginfer_model::{Checkpoint, ModelConfig, SentimentModel, TrainingMetadata};
    use bloginfer_text::VocabBuilder;
    use rand::SeedableRng;

    fn publish(registry: &Registry) -> String {
        let mut builder = VocabBuilder::new();
        builder.add("好");
        let vocab = builder.build(1, 10);
        let config = ModelConfig {
            vocab_size: vocab.len(),
            embed_dim: 4,
            hidden_dim: 4,
            ..ModelConfig::default()
        };
        let model =
            SentimentModel::new(config, &mut rand::rngs::StdRng::seed_from_u64(1)).expect("model");
        let checkpoint =
            Checkpoint::from_model(&model, vocab, TrainingMetadata::default()).expect("checkpoint");
        // Versions are named by the millisecond.
        std::thread::sleep(Duration::from_millis(3));
        registry.publish(&checkpoint).expect("publish")
    }

    fn age(dir: &Path, by: Duration) {
        let file = std::fs::File::open(dir).expect("open dir");
        file.set_modified(SystemTime::now() - by)
            .expect("set mtime");
    }

    #[test]
    fn keeps_the_newest_the_current_and_the_candidates_and_drops_old_run_folders() {
        let root = tempfile::tempdir().expect("tempdir");
        let registry = Registry::open(root.path().join("models")).expect("registry");
        let versions: Vec<String> = (0..6).map(|_| publish(&registry)).collect();
        registry.set_current(&versions[0]).expect("current");
        let candidate = versions[1].clone();

        let runs = root.path().join("runs");
        for run in ["run-old", "run-recent", "run-active-old"] {
            std::fs::create_dir_all(runs.join(run).join("worker-0")).expect("run dir");
        }
        age(&runs.join("run-old"), Duration::from_secs(7200));
        age(&runs.join("run-active-old"), Duration::from_secs(7200));

        let cleaned = clean(
            &registry,
            2,
            std::slice::from_ref(&candidate),
            &runs,
            Duration::from_secs(3600),
            &["run-active-old".to_string()],
        )
        .expect("clean");
        assert_eq!(cleaned.versions, versions[2..4].to_vec());
        let left: Vec<String> = registry
            .list()
            .expect("list")
            .into_iter()
            .map(|v| v.version)
            .collect();
        let expected: Vec<String> = [0, 1, 4, 5].iter().map(|&i| versions[i].clone()).collect();
        assert_eq!(left, expected);
        assert_eq!(cleaned.run_dirs, ["run-old"]);
        assert!(runs.join("run-recent").is_dir());
        assert!(runs.join("run-active-old").is_dir());
        assert!(!runs.join("run-old").exists());

        // Nothing more to do the second time.
        let again = clean(&registry, 2, &[], &runs, Duration::from_secs(3600), &[]).expect("clean");
        assert_eq!(again.versions, [versions[1].clone()]);
        assert_eq!(again.run_dirs, ["run-active-old"]);
    }
}
