//! What every promoted version scored on the evaluation split, kept so that
//! the promotion gate can hold a candidate to the best model ever promoted
//! and not only to the current one (which a run of slightly worse candidates
//! would drag down a margin at a time).
//!
//! The record is `MODEL_DIR/promotions.json`, beside the versions it
//! describes: one entry per (version, evaluation split), the split named by
//! its fingerprint, so numbers from another split never count. Retention
//! deletes old versions but never their entries: the floor outlives them.

use std::path::{Path, PathBuf};
use std::sync::Mutex;

use bloginfer_model::Registry;
use bloginfer_service::common::{lock, write_atomic};
use serde::{Deserialize, Serialize};

use crate::error::{OrchestratorError, Result};

/// The record's file name inside the registry directory.
pub const FILE: &str = "promotions.json";

/// One version's score on one evaluation split, as recorded when it was (or
/// was found to be) current.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Promotion {
    /// The registry version.
    pub version: String,
    /// Fingerprint of the evaluation split the accuracy is on
    /// ([`bloginfer_model::data::fingerprint`]).
    pub evaluation: String,
    /// Accuracy on that split.
    pub accuracy: f64,
    /// When it was recorded (ms since the epoch).
    pub recorded_at: i64,
    /// How it got here: `run <id>` (promoted by the gate) or `current`
    /// (found current when a candidate was judged: promoted by hand, or
    /// before this record existed).
    pub source: String,
}

#[derive(Default, Serialize, Deserialize)]
struct File {
    promotions: Vec<Promotion>,
}

/// Serialises read-modify-write of the record within the process (one
/// orchestrator replica writes it).
static WRITE: Mutex<()> = Mutex::new(());

/// The promotion record of a registry.
pub struct Promotions {
    path: PathBuf,
}

impl Promotions {
    /// The record kept in `registry`'s directory.
    pub fn of(registry: &Registry) -> Self {
        Self::at(registry.root())
    }

    /// The record in directory `dir`.
    pub fn at(dir: &Path) -> Self {
        Self {
            path: dir.join(FILE),
        }
    }

    /// Every entry; none when the file does not exist yet. A file that cannot
    /// be read is an error, not an empty record: the gate must not lose its
    /// floor to a damaged file.
    pub fn load(&self) -> Result<Vec<Promotion>> {
        let raw = match std::fs::read(&self.path) {
            Ok(raw) => raw,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => {
                return Err(OrchestratorError::io(
                    format!("cannot read {}", self.path.display()),
                    e,
                ))
            }
        };
        let file: File = serde_json::from_slice(&raw).map_err(|e| {
            OrchestratorError::Corrupt(format!(
                "{} (fix or remove it to reset the promotion floor): {e}",
                self.path.display()
            ))
        })?;
        Ok(file.promotions)
    }

    /// The most accurate entry on evaluation split `evaluation`, other than `except`.
    pub fn best(&self, evaluation: &str, except: &str) -> Result<Option<Promotion>> {
        Ok(self
            .load()?
            .into_iter()
            .filter(|p| p.evaluation == evaluation && p.version != except)
            .max_by(|a, b| a.accuracy.total_cmp(&b.accuracy)))
    }

    /// Adds `entry`, replacing any entry for the same version and split.
    pub fn record(&self, entry: Promotion) -> Result<()> {
        let _held = lock(&WRITE);
        let mut promotions = self.load()?;
        promotions.retain(|p| !(p.version == entry.version && p.evaluation == entry.evaluation));
        promotions.push(entry);
        let bytes = serde_json::to_vec_pretty(&File { promotions })
            .map_err(|e| OrchestratorError::Corrupt(e.to_string()))?;
        write_atomic(&self.path, &bytes)
            .map_err(|e| OrchestratorError::io(format!("cannot write {}", self.path.display()), e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(version: &str, evaluation: &str, accuracy: f64) -> Promotion {
        Promotion {
            version: version.into(),
            evaluation: evaluation.into(),
            accuracy,
            recorded_at: 0,
            source: "current".into(),
        }
    }

    #[test]
    fn the_best_is_per_split_and_an_entry_is_replaced_not_repeated() {
        let dir = tempfile::tempdir().expect("tempdir");
        let record = Promotions::at(dir.path());
        assert_eq!(record.best("e1", "").expect("empty"), None);
        record.record(entry("v1", "e1", 0.90)).expect("record");
        record.record(entry("v2", "e1", 0.95)).expect("record");
        record.record(entry("v3", "e2", 0.99)).expect("record");
        record.record(entry("v2", "e1", 0.94)).expect("record");
        assert_eq!(record.load().expect("load").len(), 3);
        let best = record.best("e1", "").expect("best").expect("some");
        assert_eq!((best.version.as_str(), best.accuracy), ("v2", 0.94));
        let other = record.best("e1", "v2").expect("best").expect("some");
        assert_eq!(other.version, "v1");
    }

    #[test]
    fn a_damaged_record_is_an_error_not_an_empty_floor() {
        let dir = tempfile::tempdir().expect("tempdir");
        std::fs::write(dir.path().join(FILE), b"{not json").expect("write");
        assert!(Promotions::at(dir.path()).best("e1", "").is_err());
    }
}
