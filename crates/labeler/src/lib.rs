//! The feedback loop. New comments are weakly labelled by a large language
//! model over the OpenAI-compatible Chat Completions API (or, with none
//! configured, by the current model's own confident predictions, marked
//! `pseudo`); an admin's correction from the blog overrides weak labels, an
//! article author's waits for review. Texts are
//! masked (emails, phone numbers, URLs) before they are stored or sent
//! anywhere, deduplicated by their normalised hash, judged by a policy, and
//! kept in `training_samples`, from which the orchestrator selects the next
//! run's feedback.
//!
//! - [`pii`]: masking of personal data;
//! - [`sample`]: labels, sources, statuses;
//! - [`llm`]: the Chat Completions client (strict parsing, retries, rate limit);
//! - [`ratelimit`]: the one rate limit of LLM calls;
//! - [`opinion`]: the current model's view of a text;
//! - [`policy`]: what may be trained on, and the selection of a run's feedback;
//! - [`store`]: samples and the labelling queue in the database;
//! - [`labeler`]: the background task tying them together;
//! - [`heartbeat`]: its sign of life, which readiness reads;
//! - [`service`]: the labeler as a service of its host, supervised;
//! - [`metrics`]: Prometheus metrics.

#![warn(missing_docs)]

pub mod error;
pub mod heartbeat;
pub mod labeler;
pub mod llm;
pub mod metrics;
pub mod opinion;
pub mod pii;
pub mod policy;
pub mod ratelimit;
pub mod sample;
pub mod service;
pub mod store;

pub use error::LabelerError;
pub use labeler::{Labeler, LabelerConfig, LabelerService, Pass};
pub use llm::{LlmClient, LlmConfig, LlmError};
pub use policy::{Candidate, FeedbackPolicy, Selection, Thresholds};
pub use sample::{Sentiment, Source, Status, Verdict};
pub use store::{Correction, Origin, Review, SampleStore, Stats, StoredSample};
