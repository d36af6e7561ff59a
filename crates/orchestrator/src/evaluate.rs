//! Judging a candidate: it and the current model on the fixed evaluation
//! split (which training never sees), and the promotion rule: the candidate
//! is promoted unless it is worse than the current model by more than the
//! margin.

use bloginfer_model::data::Example;
use bloginfer_model::train::{encode_all, evaluate};
use bloginfer_model::{Metrics, Registry};

use crate::error::Result;

/// The outcome of judging a candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Verdict {
    /// The candidate's metrics on the fixed evaluation split.
    pub candidate: Metrics,
    /// The model current when judged, and its metrics on the same split.
    pub previous: Option<(String, Metrics)>,
    /// Whether the candidate should become current (it is not worse than the previous
    /// model by more than the margin).
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

/// Judges `candidate` against the registry's current model; `margin` is a
/// fraction of accuracy (0.005 is half a point).
pub fn judge(
    registry: &Registry,
    candidate: &str,
    examples: &[Example],
    margin: f64,
    threads: usize,
) -> Result<Verdict> {
    let metrics = metrics_of(registry, candidate, examples, threads)?;
    let current = registry.current()?.filter(|c| c != candidate);
    let previous = match current {
        Some(version) => match metrics_of(registry, &version, examples, threads) {
            Ok(m) => Some((version, m)),
            Err(e) => {
                // A current model that cannot be read is no bar to clear.
                tracing::warn!(%version, "the current model cannot be evaluated: {e}");
                None
            }
        },
        None => None,
    };
    let (promote, reason) = match &previous {
        None => (
            true,
            format!(
                "no current model to compare with; accuracy {:.4}",
                metrics.accuracy
            ),
        ),
        Some((version, old)) if metrics.accuracy + margin >= old.accuracy => (
            true,
            format!(
                "accuracy {:.4} against {:.4} for {version} (margin {:.4})",
                metrics.accuracy, old.accuracy, margin
            ),
        ),
        Some((version, old)) => (
            false,
            format!(
                "accuracy {:.4} is worse than {:.4} for {version} by more than the margin {:.4}",
                metrics.accuracy, old.accuracy, margin
            ),
        ),
    };
    Ok(Verdict {
        candidate: metrics,
        previous,
        promote,
        reason,
    })
}
