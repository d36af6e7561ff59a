//! A run's share of the feedback loop: the labeler's accepted samples, put
//! through the selection policy (thresholds, per-author cap, class balance
//! against the corpus the run also trains on), as snapshot rows.

use bloginfer_labeler::{Labeler, Selection};
use bloginfer_model::data::Example;

use crate::error::Result;
use crate::snapshot::FeedbackSample;

/// Examples per class (negative, positive): what feedback is balanced against.
fn class_counts(corpus: &[Example]) -> [u64; 2] {
    let mut counts = [0u64; 2];
    for example in corpus {
        if let Some(n) = counts.get_mut(example.label as usize) {
            *n += 1;
        }
    }
    counts
}

/// What the next run would select, without loading any text.
pub async fn preview(labeler: &Labeler, corpus: &[Example]) -> Result<Selection> {
    let candidates = labeler.store().candidates().await?;
    Ok(labeler.policy().select(&candidates, class_counts(corpus)))
}

/// The feedback samples the next run trains on, and the selection behind them.
pub async fn select(
    labeler: &Labeler,
    corpus: &[Example],
) -> Result<(Vec<FeedbackSample>, Selection)> {
    let accepted = labeler.store().accepted().await?;
    let candidates: Vec<_> = accepted.iter().map(|a| a.candidate.clone()).collect();
    let selection = labeler.policy().select(&candidates, class_counts(corpus));
    let chosen: std::collections::HashSet<i64> = selection.chosen.iter().copied().collect();
    let samples = accepted
        .into_iter()
        .filter(|a| chosen.contains(&a.candidate.id))
        .filter_map(|a| {
            Some(FeedbackSample {
                id: a.candidate.id,
                label: a.candidate.sentiment.class()?,
                shard_key: a.candidate.shard_key,
                text: a.text,
            })
        })
        .collect();
    Ok((samples, selection))
}
