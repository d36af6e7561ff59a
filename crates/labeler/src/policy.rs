//! Which labels may be trained on: the rules applied to each new label
//! ([`FeedbackPolicy::judge`]) and the selection of a run's feedback from the
//! accepted samples ([`FeedbackPolicy::select`]). Both are pure functions.

use std::collections::{BTreeMap, HashMap};

use crate::sample::{ModelView, Sentiment, Source, Status, Verdict};

/// A confidence threshold per source.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Thresholds {
    /// Least confidence an LLM label needs to be trained on (default 0.7).
    pub llm: f64,
    /// Least confidence the model's own (pseudo) labels need (default 0.9).
    pub pseudo: f64,
    /// Least confidence a human correction needs when a run selects
    /// (default 0: all count).
    pub human: f64,
}

impl Thresholds {
    /// The threshold of `source`.
    pub fn of(&self, source: Source) -> f64 {
        match source {
            Source::Llm => self.llm,
            Source::Pseudo => self.pseudo,
            Source::Human => self.human,
        }
    }
}

/// The rules of the feedback loop.
#[derive(Debug, Clone, PartialEq)]
pub struct FeedbackPolicy {
    /// Labels less sure than this are not trained on.
    pub min_confidence: Thresholds,
    /// Hold an LLM label for review when a confident model says the opposite.
    pub hold_disagreements: bool,
    /// How sure the model must be for its contrary opinion to count.
    pub disagreement_confidence: f64,
    /// Most samples one author contributes to a run (0: no cap).
    pub max_per_author: usize,
    /// Feedback may not push the training set's larger class past this many
    /// times the smaller one (0: no balancing).
    pub max_class_ratio: f64,
    /// Most of one corrector's author corrections (article authors, not
    /// admins) waiting in the review queue from the last 24 hours; later ones
    /// are shown on the comment but never become samples (0: none do).
    pub max_author_corrections_per_day: usize,
}

impl Default for FeedbackPolicy {
    fn default() -> Self {
        Self {
            min_confidence: Thresholds {
                llm: 0.7,
                pseudo: 0.9,
                human: 0.0,
            },
            hold_disagreements: true,
            disagreement_confidence: 0.8,
            max_per_author: 50,
            max_class_ratio: 1.5,
            max_author_corrections_per_day: 20,
        }
    }
}

/// A decision on one new label.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Judgement {
    /// What may be done with it.
    pub status: Status,
    /// Why, when it is not simply accepted.
    pub reason: Option<&'static str>,
}

impl Judgement {
    fn accepted() -> Self {
        Self {
            status: Status::Accepted,
            reason: None,
        }
    }

    fn new(status: Status, reason: &'static str) -> Self {
        Self {
            status,
            reason: Some(reason),
        }
    }
}

/// An accepted sample as selection sees it.
#[derive(Debug, Clone, PartialEq)]
pub struct Candidate {
    /// The sample's id in `training_samples`.
    pub id: i64,
    /// Its label; a neutral one is never selected.
    pub sentiment: Sentiment,
    /// Who labelled it: sets the confidence it needs, and its rank when
    /// something must go.
    pub source: Source,
    /// How sure its labeler was, held against its source's threshold.
    pub confidence: f64,
    /// Whose it is (the comment's author).
    pub shard_key: String,
    /// When it was labelled (ms).
    pub created_at: i64,
}

/// The feedback samples a run takes, and how many were left out and why.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Selection {
    /// Chosen sample ids, ascending.
    pub chosen: Vec<i64>,
    /// Samples left out, by reason (`neutral`, `low_confidence`, `author_cap`, `class_balance`).
    pub dropped: BTreeMap<&'static str, u64>,
}

impl FeedbackPolicy {
    /// Checks that every threshold lies in [0, 1] and the class ratio is 0
    /// or at least 1.
    pub fn validate(&self) -> Result<(), String> {
        let t = self.min_confidence;
        for (name, v) in [
            ("llm", t.llm),
            ("pseudo", t.pseudo),
            ("human", t.human),
            ("disagreement", self.disagreement_confidence),
        ] {
            if !(0.0..=1.0).contains(&v) {
                return Err(format!(
                    "the {name} confidence threshold must be between 0 and 1"
                ));
            }
        }
        if !(self.max_class_ratio == 0.0 || self.max_class_ratio >= 1.0) {
            return Err("the class ratio must be 0 (off) or at least 1".into());
        }
        Ok(())
    }

    /// What to do with a person's correction: an admin's is trusted and
    /// accepted; an article author's is only a proposal, held for review.
    pub fn judge_correction(&self, trusted: bool) -> Judgement {
        if trusted {
            Judgement::accepted()
        } else {
            Judgement::new(Status::Review, "author_correction")
        }
    }

    /// What to do with a new label from `source`, given the model's view.
    pub fn judge(&self, source: Source, verdict: &Verdict, model: Option<&ModelView>) -> Judgement {
        if source == Source::Human {
            return Judgement::accepted();
        }
        if verdict.sentiment == Sentiment::Neutral {
            return Judgement::new(Status::Rejected, "neutral");
        }
        if verdict.confidence < self.min_confidence.of(source) {
            return Judgement::new(Status::Rejected, "low_confidence");
        }
        let contradicted = model.is_some_and(|m| {
            m.sentiment() != verdict.sentiment && m.confidence() >= self.disagreement_confidence
        });
        if source == Source::Llm && self.hold_disagreements && contradicted {
            return Judgement::new(Status::Review, "disagreement");
        }
        Judgement::accepted()
    }

    /// Picks a run's feedback from accepted samples. `base` counts the other
    /// training examples per class (negative, positive), so balancing looks at
    /// the whole training set. Preference, wherever something must go: human
    /// over LLM over pseudo, then more confident, then newer.
    pub fn select(&self, candidates: &[Candidate], base: [u64; 2]) -> Selection {
        let mut dropped: BTreeMap<&'static str, u64> = BTreeMap::new();
        let mut usable: Vec<&Candidate> = Vec::with_capacity(candidates.len());
        for c in candidates {
            if c.sentiment.class().is_none() {
                *dropped.entry("neutral").or_default() += 1;
            } else if c.confidence < self.min_confidence.of(c.source) {
                *dropped.entry("low_confidence").or_default() += 1;
            } else {
                usable.push(c);
            }
        }
        usable.sort_by(|a, b| {
            rank(b)
                .partial_cmp(&rank(a))
                .unwrap_or(std::cmp::Ordering::Equal)
        });

        if self.max_per_author > 0 {
            let mut taken: HashMap<&str, usize> = HashMap::new();
            usable.retain(|c| {
                let n = taken.entry(c.shard_key.as_str()).or_default();
                *n += 1;
                if *n > self.max_per_author {
                    *dropped.entry("author_cap").or_default() += 1;
                    false
                } else {
                    true
                }
            });
        }

        if self.max_class_ratio > 0.0 {
            let mut counts = [0u64; 2];
            for c in &usable {
                counts[class(c)] += 1;
            }
            let total = [base[0] + counts[0], base[1] + counts[1]];
            let major = usize::from(total[1] > total[0]);
            let minor = 1 - major;
            // The ratio is positive and the count small: the product's floor
            // is a whole number of samples.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let allowed_total = (self.max_class_ratio * total[minor] as f64).floor() as u64;
            let allowed = allowed_total.saturating_sub(base[major]);
            if counts[major] > allowed {
                let mut kept = 0u64;
                usable.retain(|c| {
                    if class(c) != major {
                        return true;
                    }
                    kept += 1;
                    kept <= allowed
                });
                *dropped.entry("class_balance").or_default() += counts[major] - allowed;
            }
        }

        let mut chosen: Vec<i64> = usable.iter().map(|c| c.id).collect();
        chosen.sort_unstable();
        Selection { chosen, dropped }
    }
}

fn class(c: &Candidate) -> usize {
    c.sentiment.class().unwrap_or(0) as usize
}

/// Larger is kept first.
fn rank(c: &Candidate) -> (Source, f64, i64, i64) {
    (c.source, c.confidence, c.created_at, c.id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn candidate(
        id: i64,
        sentiment: Sentiment,
        source: Source,
        confidence: f64,
        author: &str,
    ) -> Candidate {
        Candidate {
            id,
            sentiment,
            source,
            confidence,
            shard_key: author.to_string(),
            created_at: id,
        }
    }

    fn policy(max_per_author: usize, max_class_ratio: f64) -> FeedbackPolicy {
        FeedbackPolicy {
            max_per_author,
            max_class_ratio,
            ..FeedbackPolicy::default()
        }
    }

    #[test]
    fn one_author_cannot_flood_the_data() {
        let mut all: Vec<Candidate> = (1..=100)
            .map(|i| {
                candidate(
                    i,
                    Sentiment::Positive,
                    Source::Llm,
                    0.8 + (i % 10) as f64 / 100.0,
                    "user:1",
                )
            })
            .collect();
        all.push(candidate(
            101,
            Sentiment::Negative,
            Source::Human,
            1.0,
            "user:1",
        ));
        all.push(candidate(
            102,
            Sentiment::Positive,
            Source::Llm,
            0.75,
            "user:2",
        ));
        all.push(candidate(
            103,
            Sentiment::Negative,
            Source::Llm,
            0.75,
            "user:3",
        ));
        let selection = policy(5, 0.0).select(&all, [0, 0]);
        let from_one: Vec<i64> = selection
            .chosen
            .iter()
            .copied()
            .filter(|id| *id <= 101)
            .collect();
        assert_eq!(from_one.len(), 5, "{selection:?}");
        assert!(from_one.contains(&101), "the human correction goes first");
        // Then the most confident (0.89: ids 9, 19, ...), newest first: 99, 89, 79, 69.
        assert_eq!(from_one, vec![69, 79, 89, 99, 101]);
        assert!(selection.chosen.contains(&102) && selection.chosen.contains(&103));
        assert_eq!(selection.dropped.get("author_cap"), Some(&96));
    }

    #[test]
    fn no_cap_keeps_everything() {
        let all: Vec<Candidate> = (1..=20)
            .map(|i| candidate(i, Sentiment::Positive, Source::Llm, 0.9, "user:1"))
            .collect();
        assert_eq!(policy(0, 0.0).select(&all, [0, 0]).chosen.len(), 20);
    }

    #[test]
    fn neutral_and_unsure_labels_are_left_out() {
        let all = vec![
            candidate(1, Sentiment::Neutral, Source::Llm, 0.99, "a"),
            candidate(2, Sentiment::Positive, Source::Llm, 0.6, "a"),
            candidate(3, Sentiment::Positive, Source::Pseudo, 0.85, "a"),
            candidate(4, Sentiment::Positive, Source::Pseudo, 0.95, "a"),
            candidate(5, Sentiment::Negative, Source::Human, 0.0, "a"),
        ];
        let selection = policy(0, 0.0).select(&all, [0, 0]);
        assert_eq!(selection.chosen, vec![4, 5]);
        assert_eq!(selection.dropped.get("neutral"), Some(&1));
        assert_eq!(selection.dropped.get("low_confidence"), Some(&2));
    }

    #[test]
    fn feedback_cannot_tip_the_class_balance() {
        // 30 positive and 2 negative feedback samples on a base of 10 and 10.
        let mut all: Vec<Candidate> = (1..=30)
            .map(|i| {
                candidate(
                    i,
                    Sentiment::Positive,
                    Source::Llm,
                    0.7 + i as f64 / 100.0,
                    &format!("u{i}"),
                )
            })
            .collect();
        all.push(candidate(31, Sentiment::Negative, Source::Llm, 0.9, "x"));
        all.push(candidate(32, Sentiment::Negative, Source::Llm, 0.9, "y"));
        let selection = policy(0, 1.5).select(&all, [10, 10]);
        // Negatives total 12, so positives may total 18: 8 from feedback, the most confident.
        assert_eq!(
            selection.chosen,
            vec![23, 24, 25, 26, 27, 28, 29, 30, 31, 32]
        );
        assert_eq!(selection.dropped.get("class_balance"), Some(&22));
        // A balanced base absorbs a small skew untouched.
        let small: Vec<Candidate> = all.iter().filter(|c| c.id > 27).cloned().collect();
        assert_eq!(policy(0, 1.5).select(&small, [7000, 7000]).chosen.len(), 5);
        // With no base and no negatives at all, positives cannot be balanced.
        let positives: Vec<Candidate> = all.iter().filter(|c| c.id <= 30).cloned().collect();
        assert!(policy(0, 1.5).select(&positives, [0, 0]).chosen.is_empty());
    }

    #[test]
    fn judging_new_labels() {
        let p = FeedbackPolicy::default();
        let verdict = |sentiment, confidence| Verdict {
            sentiment,
            confidence,
            topics: vec![],
            reason: None,
        };
        let model = |p_positive| ModelView {
            p_positive,
            version: "v".into(),
        };
        let sure_negative = model(0.05);
        let unsure = model(0.4);
        let j = |source, v: &Verdict, m: Option<&ModelView>| p.judge(source, v, m);
        let positive = verdict(Sentiment::Positive, 0.9);
        assert_eq!(j(Source::Llm, &positive, None).status, Status::Accepted);
        assert_eq!(
            j(Source::Llm, &positive, Some(&unsure)).status,
            Status::Accepted
        );
        assert_eq!(
            j(Source::Llm, &positive, Some(&sure_negative)),
            Judgement::new(Status::Review, "disagreement")
        );
        let lenient = FeedbackPolicy {
            hold_disagreements: false,
            ..p.clone()
        };
        assert_eq!(
            lenient
                .judge(Source::Llm, &positive, Some(&sure_negative))
                .status,
            Status::Accepted
        );
        assert_eq!(
            j(Source::Llm, &verdict(Sentiment::Neutral, 0.99), None).reason,
            Some("neutral")
        );
        assert_eq!(
            j(Source::Pseudo, &verdict(Sentiment::Positive, 0.85), None).reason,
            Some("low_confidence")
        );
        assert_eq!(
            j(
                Source::Human,
                &verdict(Sentiment::Negative, 0.0),
                Some(&model(0.99))
            )
            .status,
            Status::Accepted
        );
    }
}
