//! A run's training data, frozen and cut into worker shards on disk: the
//! corpus's training split plus the accepted feedback samples, each example in
//! exactly one shard (corpus rows by their text's stable key, feedback samples
//! by their shard key, so one author's comments stay on one worker, as they
//! would on a real client). The fixed evaluation split never enters a shard,
//! nor does feedback that is a near-duplicate of it ([`crate::overlap`]).
//!
//! The run directory (`<runs dir>/<run id>/`, the same path inside every pod
//! that mounts it) has the layout of [`bloginfer_fl::spec`]; the validation
//! data there is the fixed evaluation split, for the aggregator's per-round
//! check, and the vocabulary is built from the shards' data.

use std::path::{Path, PathBuf};

use bloginfer_fl::launcher::{write_run_files, write_worker};
use bloginfer_fl::partition::{partition, Partition};
use bloginfer_fl::spec::{RunDir, WorkerSpec};
use bloginfer_model::data::{self, stable_key, Example};
use bloginfer_model::train::build_vocab;
use bloginfer_model::ModelConfig;

use crate::error::{OrchestratorError, Result};
use crate::overlap::HeldOut;
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
    /// The feedback samples selected for this run.
    pub feedback: &'a [FeedbackSample],
    /// Architecture (its vocabulary size is an upper bound).
    pub model: &'a ModelConfig,
    /// Minimum token count for the vocabulary.
    pub min_count: u64,
    /// Workers, one shard each; an author's samples stay in one shard.
    pub workers: usize,
    /// Seed of the shard assignment.
    pub seed: u64,
}

/// What [`write()`] produced.
#[derive(Debug, Clone)]
pub struct Snapshot {
    /// The run directory written, ready for a launcher.
    pub dir: PathBuf,
    /// Examples in each worker's shard, as the run records them.
    pub worker_samples: Vec<WorkerSamples>,
    /// The workers as the run's description lists them.
    pub workers: Vec<WorkerSpec>,
    /// Training examples over all shards, corpus and feedback together.
    pub train_samples: u64,
    /// Of them, feedback samples.
    pub feedback_samples: u64,
    /// The feedback samples used (ids).
    pub feedback_ids: Vec<i64>,
    /// Feedback samples left out as near-duplicates of evaluation texts.
    pub held_out_feedback: u64,
    /// SHA-256 of the training data, shard by shard.
    pub fingerprint: String,
}

/// Writes the run directory `dir` for `inputs`, with `token` as the run key (each
/// worker folder gets its own credential derived from it).
pub fn write(dir: &Path, inputs: &Inputs<'_>, token: &str) -> Result<Snapshot> {
    if inputs.workers == 0 {
        return Err(OrchestratorError::Config(
            "a run needs at least one worker".into(),
        ));
    }
    // A feedback text that is (nearly) an evaluation text would leak the answer.
    let held_out = HeldOut::new(inputs.evaluation.iter().map(|e| e.text.as_str()));
    let feedback: Vec<&FeedbackSample> = inputs
        .feedback
        .iter()
        .filter(|s| !held_out.contains(&s.text))
        .collect();
    let mut shards = partition(inputs.corpus, inputs.workers, Partition::Iid, inputs.seed)?;
    for sample in &feedback {
        let workers = u64::try_from(inputs.workers).unwrap_or(u64::MAX);
        let shard =
            usize::try_from(stable_key(inputs.seed, &sample.shard_key) % workers).unwrap_or(0);
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
    let run = RunDir::new(dir);
    write_run_files(&run, inputs.model, &vocab, inputs.evaluation, token)?;
    let run_id = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default()
        .to_string();
    let mut workers = Vec::with_capacity(shards.len());
    for (i, shard) in shards.iter().enumerate() {
        workers.push(write_worker(&run, &run_id, &i.to_string(), shard, token)?);
    }
    let worker_samples = workers
        .iter()
        .map(|w| WorkerSamples {
            worker_id: w.id.clone(),
            samples: w.samples,
        })
        .collect();
    let count = |n: usize| u64::try_from(n).unwrap_or(u64::MAX);
    Ok(Snapshot {
        dir: dir.to_path_buf(),
        worker_samples,
        workers,
        train_samples: count(all.len()),
        feedback_samples: count(feedback.len()),
        feedback_ids: feedback.iter().map(|s| s.id).collect(),
        held_out_feedback: count(inputs.feedback.len() - feedback.len()),
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
                label: u32::try_from(i % 2).unwrap(),
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
                label: u32::try_from(i % 2).unwrap(),
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
            let shard = data::read_tsv(
                &RunDir::new(dir.path())
                    .worker(&i.to_string())
                    .join("shard.tsv"),
            )
            .expect("shard");
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
            let mode = std::fs::metadata(RunDir::new(dir.path()).token())
                .expect("token")
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // Each worker folder (all a worker pod mounts) holds its own credential,
        // never the run key, and it proves that worker only.
        let run = RunDir::new(dir.path());
        let run_key = run.read_token().expect("run key");
        let run_id = dir
            .path()
            .file_name()
            .and_then(|n| n.to_str())
            .expect("run id")
            .to_string();
        for i in 0..3 {
            let id = i.to_string();
            let credential = bloginfer_fl::spec::WorkerDir::new(run.worker(&id))
                .read_token()
                .expect("credential");
            assert_ne!(credential, run_key);
            assert_eq!(
                bloginfer_fl::credentials::authenticate(&credential, &run_key, &run_id),
                Some(bloginfer_fl::credentials::Caller::Worker(id))
            );
        }
    }
}
