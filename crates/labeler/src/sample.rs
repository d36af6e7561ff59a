//! The words of the feedback loop: what a label says, who gave it, and what
//! may be done with the sample.

use serde::{Deserialize, Serialize};

/// A comment's sentiment as a labeler sees it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sentiment {
    /// Class 1 of the model.
    Positive,
    /// Class 0 of the model.
    Negative,
    /// Neither; the two-class model cannot learn from it.
    Neutral,
}

impl Sentiment {
    /// Its name in the database and in JSON: `positive`, `negative` or `neutral`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Positive => "positive",
            Self::Negative => "negative",
            Self::Neutral => "neutral",
        }
    }

    /// The stored name back.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "positive" => Some(Self::Positive),
            "negative" => Some(Self::Negative),
            "neutral" => Some(Self::Neutral),
            _ => None,
        }
    }

    /// The model's class (0 negative, 1 positive); `None` for neutral.
    pub fn class(self) -> Option<u32> {
        match self {
            Self::Negative => Some(0),
            Self::Positive => Some(1),
            Self::Neutral => None,
        }
    }
}

/// Who labelled a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Source {
    /// The current model's own confident prediction (no LLM configured).
    Pseudo,
    /// A large language model.
    Llm,
    /// A person: the article's author or an admin corrected it.
    Human,
}

impl Source {
    /// Every source, weakest first.
    pub const ALL: [Source; 3] = [Source::Pseudo, Source::Llm, Source::Human];

    /// Its name in the database and in JSON: `pseudo`, `llm` or `human`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pseudo => "pseudo",
            Self::Llm => "llm",
            Self::Human => "human",
        }
    }

    /// The stored name back.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "pseudo" => Some(Self::Pseudo),
            "llm" => Some(Self::Llm),
            "human" => Some(Self::Human),
            _ => None,
        }
    }
}

/// What may be done with a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// May be selected for training.
    Accepted,
    /// Held until an admin decides (the LLM and a confident model disagree).
    Review,
    /// Not trained on (neutral, too unsure, or refused by an admin); see the reason.
    Rejected,
}

impl Status {
    /// Every status, so that counts list each one, even at zero.
    pub const ALL: [Status; 3] = [Status::Accepted, Status::Review, Status::Rejected];

    /// Its name in the database and in JSON: `accepted`, `review` or `rejected`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Review => "review",
            Self::Rejected => "rejected",
        }
    }

    /// The stored name back.
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "accepted" => Some(Self::Accepted),
            "review" => Some(Self::Review),
            "rejected" => Some(Self::Rejected),
            _ => None,
        }
    }
}

/// A labeler's answer for one text.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Verdict {
    /// The label given; neutral is stored but never trained on.
    pub sentiment: Sentiment,
    /// How sure the labeler is, 0 to 1.
    pub confidence: f64,
    /// What the comment is about (LLM only).
    pub topics: Vec<String>,
    /// Why, in a sentence (LLM only).
    pub reason: Option<String>,
}

/// What the current model predicts for a text.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelView {
    /// The model's probability that the text is positive, 0 to 1.
    pub p_positive: f64,
    /// The registry version that answered.
    pub version: String,
}

impl ModelView {
    /// The model's label: positive from a probability of 0.5, else negative
    /// (never neutral).
    pub fn sentiment(&self) -> Sentiment {
        if self.p_positive >= 0.5 {
            Sentiment::Positive
        } else {
            Sentiment::Negative
        }
    }

    /// Probability of the predicted label.
    pub fn confidence(&self) -> f64 {
        self.p_positive.max(1.0 - self.p_positive)
    }
}
