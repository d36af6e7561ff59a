//! Classification metrics: accuracy, per-class precision / recall / F1,
//! macro-F1 and the confusion matrix.

use serde::{Deserialize, Serialize};

/// Metrics of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassMetrics {
    /// The class's name, `negative` or `positive`.
    pub label: String,
    /// Of the texts predicted as this class, the share that are.
    pub precision: f64,
    /// Of the texts of this class, the share predicted as it.
    pub recall: f64,
    /// Harmonic mean of precision and recall.
    pub f1: f64,
    /// Texts of this class.
    pub support: u64,
}

/// Evaluation of a classifier on labelled data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Metrics {
    /// Share of correct predictions.
    pub accuracy: f64,
    /// Unweighted mean of per-class F1.
    pub macro_f1: f64,
    /// Per-class metrics in label order.
    pub per_class: Vec<ClassMetrics>,
    /// `confusion[actual][predicted]` counts.
    pub confusion: Vec<Vec<u64>>,
    /// Examples evaluated: the sum of the confusion matrix.
    pub total: u64,
    /// Mean cross-entropy, when computed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss: Option<f64>,
}

impl Metrics {
    /// Metrics from `(actual, predicted)` label pairs over `labels` classes.
    pub fn from_pairs(labels: &[&str], pairs: impl IntoIterator<Item = (u32, u32)>) -> Self {
        let n = labels.len();
        let mut confusion = vec![vec![0u64; n]; n];
        for (actual, predicted) in pairs {
            if (actual as usize) < n && (predicted as usize) < n {
                confusion[actual as usize][predicted as usize] += 1;
            }
        }
        Self::from_confusion(labels, confusion)
    }

    /// Metrics from a confusion matrix `[actual][predicted]`.
    pub fn from_confusion(labels: &[&str], confusion: Vec<Vec<u64>>) -> Self {
        let total: u64 = confusion.iter().flatten().sum();
        let correct: u64 = (0..labels.len()).map(|i| confusion[i][i]).sum();
        let ratio = |a: u64, b: u64| if b == 0 { 0.0 } else { a as f64 / b as f64 };
        let per_class: Vec<ClassMetrics> = labels
            .iter()
            .enumerate()
            .map(|(i, label)| {
                let tp = confusion[i][i];
                let predicted: u64 = confusion.iter().map(|row| row[i]).sum();
                let support: u64 = confusion[i].iter().sum();
                let precision = ratio(tp, predicted);
                let recall = ratio(tp, support);
                let f1 = if precision + recall == 0.0 {
                    0.0
                } else {
                    2.0 * precision * recall / (precision + recall)
                };
                ClassMetrics {
                    label: label.to_string(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let macro_f1 = per_class.iter().map(|c| c.f1).sum::<f64>() / labels.len().max(1) as f64;
        Self {
            accuracy: ratio(correct, total),
            macro_f1,
            per_class,
            confusion,
            total,
            loss: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_a_hand_computed_confusion_matrix() {
        // actual negative: 8 right, 2 wrong; actual positive: 3 wrong, 7 right.
        let pairs = std::iter::repeat_n((0, 0), 8)
            .chain(std::iter::repeat_n((0, 1), 2))
            .chain(std::iter::repeat_n((1, 0), 3))
            .chain(std::iter::repeat_n((1, 1), 7));
        let m = Metrics::from_pairs(&["negative", "positive"], pairs);
        assert_eq!(m.confusion, vec![vec![8, 2], vec![3, 7]]);
        assert_eq!(m.total, 20);
        assert!((m.accuracy - 0.75).abs() < 1e-12);
        let neg = &m.per_class[0];
        assert!((neg.precision - 8.0 / 11.0).abs() < 1e-12);
        assert!((neg.recall - 0.8).abs() < 1e-12);
        let f1_neg = 2.0 * (8.0 / 11.0) * 0.8 / (8.0 / 11.0 + 0.8);
        assert!((neg.f1 - f1_neg).abs() < 1e-12);
        let pos = &m.per_class[1];
        assert!((pos.precision - 7.0 / 9.0).abs() < 1e-12);
        assert!((pos.recall - 0.7).abs() < 1e-12);
        let f1_pos = 2.0 * (7.0 / 9.0) * 0.7 / (7.0 / 9.0 + 0.7);
        assert!((m.macro_f1 - (f1_neg + f1_pos) / 2.0).abs() < 1e-12);
    }

    #[test]
    fn empty_classes_give_zero_not_nan() {
        let m = Metrics::from_pairs(&["negative", "positive"], [(0, 0), (0, 0)]);
        assert_eq!(m.per_class[1].f1, 0.0);
        assert!(m.macro_f1.is_finite());
    }
}
