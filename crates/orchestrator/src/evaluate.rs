//! Judging a candidate: it and the current model on the fixed evaluation
//! split (which training never sees), and the promotion rule: the candidate
//! is promoted unless it is worse by more than the margin than the current
//! model, or than the best model ever promoted on this split (the floor, kept
//! in [`crate::promotions`]). Without the floor, candidates each a little
//! worse than the last would each pass, and accuracy would slide a margin
//! per run.

use bloginfer_model::data::{self, Example};
use bloginfer_model::train::{encode_all, evaluate};
use bloginfer_model::{Metrics, Registry};
use bloginfer_service::common::now_millis;

use crate::error::Result;
use crate::promotions::{Promotion, Promotions};

/// Accuracies are means over the split: two equal scores may differ by
/// rounding, and a candidate exactly at the margin passes.
const TOLERANCE: f64 = 1e-9;

/// The outcome of judging a candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The candidate's metrics on the fixed evaluation split.
    pub candidate: Metrics,
    /// The model current when judged, and its metrics on the same split.
    pub previous: Option<(String, Metrics)>,
    /// The best version ever promoted on this split (the floor), when any.
    pub best: Option<Promotion>,
    /// Whether the candidate should become current (it is not worse than the
    /// previous model nor the best promoted one by more than the margin).
    pub promote: bool,
    /// Why, in one sentence.
    pub reason: String,
}

/// Metrics of registry `version` on `examples`, computed with `threads` threads.
pub fn metrics_of(
    registry: &Registry,
    version: &str,
    examples: &[Example],
    threads: usize,
) -> Result<Metrics> {
    let checkpoint = registry.load(version)?;
    let model = checkpoint.model()?.with_threads(threads);
    Ok(evaluate(
        &model,
        &encode_all(&checkpoint.encoder(), examples),
    )?)
}

/// The name of evaluation split `examples` in the promotion record.
pub fn split_id(examples: &[Example]) -> String {
    data::fingerprint(examples)
}

/// Judges `candidate` against the registry's current model and the best
/// promoted one; `margin` is a fraction of accuracy (0.005 is half a point).
/// The current model's score is recorded on the way, since it is a promoted
/// version too (promoted by hand, or before the record existed).
pub fn judge(
    registry: &Registry,
    candidate: &str,
    examples: &[Example],
    margin: f64,
    threads: usize,
) -> Result<Verdict> {
    let split = split_id(examples);
    let record = Promotions::of(registry);
    let metrics = metrics_of(registry, candidate, examples, threads)?;
    let current = registry.current()?.filter(|c| c != candidate);
    let previous = match current {
        Some(version) => match metrics_of(registry, &version, examples, threads) {
            Ok(m) => Some((version, m)),
            Err(e) => {
                // A current model that cannot be read is no bar to clear;
                // the floor still is.
                tracing::warn!(%version, "the current model cannot be evaluated: {e}");
                None
            }
        },
        None => None,
    };
    if let Some((version, m)) = &previous {
        record.record(Promotion {
            version: version.clone(),
            evaluation: split.clone(),
            accuracy: m.accuracy,
            recorded_at: now_millis(),
            source: "current".into(),
        })?;
    }
    let best = record.best(&split, candidate)?;
    let (promote, reason) = decide(metrics.accuracy, previous.as_ref(), best.as_ref(), margin);
    Ok(Verdict {
        candidate: metrics,
        previous,
        best,
        promote,
        reason,
    })
}

/// Records that `version`, with `accuracy` on evaluation split `split`, was
/// promoted by `source` (`run <id>`), so later candidates are held to it.
pub fn record_promotion(
    registry: &Registry,
    version: &str,
    split: &str,
    accuracy: f64,
    source: &str,
) -> Result<()> {
    Promotions::of(registry).record(Promotion {
        version: version.to_string(),
        evaluation: split.to_string(),
        accuracy,
        recorded_at: now_millis(),
        source: source.to_string(),
    })
}

/// The rule itself: whether a candidate with `accuracy` is promoted, and why.
fn decide(
    accuracy: f64,
    previous: Option<&(String, Metrics)>,
    best: Option<&Promotion>,
    margin: f64,
) -> (bool, String) {
    let clears = |bar: f64| accuracy + margin + TOLERANCE >= bar;
    if let Some((version, old)) = previous {
        if !clears(old.accuracy) {
            return (
                false,
                format!(
                    "accuracy {accuracy:.4} is worse than {:.4} for {version} by more than the margin {margin:.4}",
                    old.accuracy
                ),
            );
        }
    }
    if let Some(floor) = best {
        if !clears(floor.accuracy) {
            return (
                false,
                format!(
                    "accuracy {accuracy:.4} is worse than {:.4} for {}, the best promoted version, by more than the margin {margin:.4}",
                    floor.accuracy, floor.version
                ),
            );
        }
    }
    let reason = match (previous, best) {
        (None, None) => {
            format!("no model promoted before on this evaluation split; accuracy {accuracy:.4}")
        }
        (Some((version, old)), Some(floor)) => format!(
            "accuracy {accuracy:.4} against {:.4} for {version} and {:.4} for {}, the best promoted (margin {margin:.4})",
            old.accuracy, floor.accuracy, floor.version
        ),
        (Some((version, old)), None) => format!(
            "accuracy {accuracy:.4} against {:.4} for {version} (margin {margin:.4})",
            old.accuracy
        ),
        (None, Some(floor)) => format!(
            "accuracy {accuracy:.4} against {:.4} for {}, the best promoted (margin {margin:.4})",
            floor.accuracy, floor.version
        ),
    };
    (true, reason)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn metrics(accuracy: f64) -> Metrics {
        Metrics {
            accuracy,
            ..Metrics::from_pairs(&["negative", "positive"], [(0, 0)])
        }
    }

    fn floor(accuracy: f64) -> Promotion {
        Promotion {
            version: "best".into(),
            evaluation: "split".into(),
            accuracy,
            recorded_at: 0,
            source: "run r".into(),
        }
    }

    #[test]
    fn a_candidate_must_clear_both_the_current_model_and_the_floor() {
        let current = ("v2".to_string(), metrics(0.896));
        assert!(decide(0.892, Some(&current), None, 0.005).0);
        let (promote, reason) = decide(0.892, Some(&current), Some(&floor(0.9)), 0.005);
        assert!(!promote);
        assert!(reason.contains("the best promoted"), "{reason}");
        assert!(!decide(0.89, Some(&current), Some(&floor(0.89)), 0.005).0);
        assert!(decide(0.895, Some(&current), Some(&floor(0.9)), 0.005).0);
        assert!(decide(0.5, None, None, 0.005).0);
        assert!(!decide(0.5, None, Some(&floor(0.9)), 0.005).0);
    }
}
