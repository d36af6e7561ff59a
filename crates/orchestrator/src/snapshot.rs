//! A run's training data, frozen and cut into worker shards on disk: the
//! corpus's training split plus the accepted feedback samples, each example in
//! exactly one shard (corpus rows by their text's stable key, feedback samples
//! by their shard key, so one author's comments stay on one worker, as they
//! would on a real client). The fixed evaluation split never enters a shard.
//!
//! Layout of a run directory (the same path inside every pod that mounts it):
//!
//! ```text
//! <runs dir>/<run id>/
//!   token                  the run token (mode 0600)
//!   model.json vocab.json  architecture and vocabulary (built from the shards' data)
//!   validation.tsv         the evaluation split, for the aggregator's per-round check
//!   worker-<i>/shard.tsv   worker i's data, and nothing else in that folder
//!   worker-<i>/token       the run token again (a worker mounts only its folder)
//!   state/ status.json result.json *.log   the aggregator's files
//! ```

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use bloginfer_fl::partition::{partition, write_tsv, Partition};
use bloginfer_model::data::{self, stable_key, Example};
use bloginfer_model::train::build_vocab;
use bloginfer_model::ModelConfig;

use crate::error::{OrchestratorError, Result};
use crate::store::WorkerSamples;

/// A labelled comment accepted for training.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackSample {
    /// Its id in `training_samples`.
    pub id: i64,
    /// The (masked) text.
    pub text: String,
    /// 0 negative, 1 positive.
    pub label: u32,
    /// Decides the worker shard (the comment's author).
    pub shard_key: String,
}

/// What goes into a run.
pub struct Inputs<'a> {
    /// The corpus's training split.
    pub corpus: &'a [Example],
    /// The fixed evaluation split.
    pub evaluation: &'a [Example],
    /// Accepted feedback samples.
    pub feedback: &'a [FeedbackSample],
    /// Architecture (its vocabulary size is an upper bound).
    pub model: &'a ModelConfig,
    /// Minimum token count for the vocabulary.
    pub min_count: u64,
    /// Shard count.
    pub workers: usize,
    /// Seed of the shard assignment.
    pub seed: u64,
}

/// What [`write`] produced.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The run directory.
    pub dir: PathBuf,
    /// Examples per worker.
    pub worker_samples: Vec<WorkerSamples>,
    /// All training examples.
    pub train_samples: u64,
    /// Of them, feedback samples.
    pub feedback_samples: u64,
    /// The feedback samples used (ids).
    pub feedback_ids: Vec<i64>,
    /// SHA-256 of the training data, shard by shard.
    pub fingerprint: String,
}

/// The run directory's files, by name.
pub struct RunPaths;

impl RunPaths {
    /// The run token.
    pub fn token(dir: &Path) -> PathBuf {
        dir.join("token")
    }
    /// Worker `i`'s folder.
    pub fn worker(dir: &Path, i: usize) -> PathBuf {
        dir.join(format!("worker-{i}"))
    }
    /// The aggregator's status file.
    pub fn status(dir: &Path) -> PathBuf {
        dir.join("status.json")
    }
    /// The aggregator's final status.
    pub fn result(dir: &Path) -> PathBuf {
        dir.join("result.json")
    }
}

fn io(path: &Path, e: std::io::Error) -> OrchestratorError {
    OrchestratorError::io(format!("cannot write {}", path.display()), e)
}

/// Writes a file readable by its owner only.
pub fn write_private(path: &Path, bytes: &[u8]) -> Result<()> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path).map_err(|e| io(path, e))?;
    file.write_all(bytes).map_err(|e| io(path, e))
}

/// Writes the run directory `dir` for `inputs`, with `token` as the run token.
pub fn write(dir: &Path, inputs: &Inputs<'_>, token: &str) -> Result<Snapshot> {
    if inputs.workers == 0 {
        return Err(OrchestratorError::Config(
            "a run needs at least one worker".into(),
        ));
    }
    std::fs::create_dir_all(dir).map_err(|e| io(dir, e))?;
    // A feedback text that is also an evaluation text would leak the answer.
    let held_out: HashSet<&str> = inputs.evaluation.iter().map(|e| e.text.as_str()).collect();
    let feedback: Vec<&FeedbackSample> = inputs
        .feedback
        .iter()
        .filter(|s| !held_out.contains(s.text.as_str()))
        .collect();
    let mut shards = partition(inputs.corpus, inputs.workers, Partition::Iid, inputs.seed)?;
    for sample in &feedback {
        let shard = (stable_key(inputs.seed, &sample.shard_key) % inputs.workers as u64) as usize;
        shards[shard].push(Example {
            text: sample.text.clone(),
            label: sample.label,
        });
    }
    let all: Vec<Example> = shards.iter().flatten().cloned().collect();
    let vocab = build_vocab(
        &all,
        inputs.model.granularity,
        inputs.min_count,
        inputs.model.vocab_size,
    );
    let mut model = inputs.model.clone();
    model.vocab_size = vocab.len();
    let json = |value: serde_json::Result<String>| {
        value.map_err(|e| OrchestratorError::Corrupt(e.to_string()))
    };
    let model_path = dir.join("model.json");
    std::fs::write(&model_path, json(serde_json::to_string(&model))?)
        .map_err(|e| io(&model_path, e))?;
    let vocab_path = dir.join("vocab.json");
    std::fs::write(&vocab_path, json(serde_json::to_string(&vocab))?)
        .map_err(|e| io(&vocab_path, e))?;
    write_tsv(&dir.join("validation.tsv"), inputs.evaluation)?;
    write_private(&RunPaths::token(dir), token.as_bytes())?;
    let mut worker_samples = Vec::with_capacity(shards.len());
    for (i, shard) in shards.iter().enumerate() {
        let folder = RunPaths::worker(dir, i);
        std::fs::create_dir_all(&folder).map_err(|e| io(&folder, e))?;
        write_tsv(&folder.join("shard.tsv"), shard)?;
        write_private(&folder.join("token"), token.as_bytes())?;
        worker_samples.push(WorkerSamples {
            worker_id: i.to_string(),
            samples: shard.len() as u64,
        });
    }
    Ok(Snapshot {
        dir: dir.to_path_buf(),
        worker_samples,
        train_samples: all.len() as u64,
        feedback_samples: feedback.len() as u64,
        feedback_ids: feedback.iter().map(|s| s.id).collect(),
        fingerprint: data::fingerprint(&all),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn corpus(n: usize) -> Vec<Example> {
        (0..n)
            .map(|i| Example {
                text: format!("第{i}条评论，很好"),
                label: (i % 2) as u32,
            })
            .collect()
    }

    #[test]
    fn every_example_lands_in_exactly_one_shard_and_authors_stay_together() {
        let dir = tempfile::tempdir().expect("tempdir");
        let corpus = corpus(40);
        let evaluation = vec![Example {
            text: "held out".into(),
            label: 1,
        }];
        let feedback: Vec<FeedbackSample> = (0..12)
            .map(|i| FeedbackSample {
                id: i,
                text: format!("反馈{i}"),
                label: (i % 2) as u32,
                shard_key: format!("author-{}", i % 3),
            })
            .chain(std::iter::once(FeedbackSample {
                id: 99,
                text: "held out".into(),
                label: 1,
                shard_key: "author-0".into(),
            }))
            .collect();
        let inputs = Inputs {
            corpus: &corpus,
            evaluation: &evaluation,
            feedback: &feedback,
            model: &ModelConfig::default(),
            min_count: 1,
            workers: 3,
            seed: 7,
        };
        let snap = write(dir.path(), &inputs, "secret").expect("snapshot");
        assert_eq!(snap.feedback_samples, 12, "the evaluation text is dropped");
        assert!(!snap.feedback_ids.contains(&99));
        let mut seen = Vec::new();
        let mut author_shard = std::collections::HashMap::new();
        for i in 0..3 {
            let shard =
                data::read_tsv(&RunPaths::worker(dir.path(), i).join("shard.tsv")).expect("shard");
            assert_eq!(snap.worker_samples[i].samples, shard.len() as u64);
            for e in shard {
                if let Some(n) = e.text.strip_prefix("反馈") {
                    let n: usize = n.parse().expect("number");
                    assert_eq!(*author_shard.entry(n % 3).or_insert(i), i, "author split");
                }
                seen.push(e.text);
            }
        }
        let total = seen.len();
        seen.sort();
        seen.dedup();
        assert_eq!(
            (total, seen.len()),
            (52, 52),
            "no row in two shards, none lost"
        );
        assert!(!seen.contains(&"held out".to_string()));
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(RunPaths::token(dir.path()))
                .expect("token")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
}
