//! The feedback loop's flags (shared by `bloginfer orchestrator` and `up`,
//! which run the labeler beside the training daemon) and its construction.

use std::sync::Arc;
use std::time::Duration;

use anyhow::Result;
use bloginfer_db::Db;
use bloginfer_labeler::{FeedbackPolicy, Labeler, LabelerConfig, LlmConfig, Thresholds};
use bloginfer_model::ModelFollower;
use clap::Args;
use secrecy::SecretString;

/// Weak labels for new comments: the LLM, the fallback, and what may be trained on.
#[derive(Args, Clone)]
pub struct LabelerArgs {
    /// Run the labeler in this process.
    #[arg(long, env = "LABELER_ENABLED", default_value_t = true, action = clap::ArgAction::Set)]
    pub labeler: bool,
    /// Base URL of an OpenAI-compatible Chat Completions API (`https://api.openai.com/v1`,
    /// vLLM's or Ollama's `http://host:port/v1`); unset: the model's own confident
    /// predictions become `pseudo` labels.
    #[arg(long, env = "LLM_BASE_URL")]
    pub llm_base_url: Option<String>,
    /// The LLM's model name.
    #[arg(long, env = "LLM_MODEL")]
    pub llm_model: Option<String>,
    /// The LLM API key (a Bearer token; self-hosted servers may need none).
    #[arg(long, env = "LLM_API_KEY", hide_env_values = true, value_parser = super::secret)]
    pub llm_api_key: Option<SecretString>,
    /// Time limit of one LLM request.
    #[arg(long, env = "LLM_TIMEOUT_SECONDS", default_value = "30s", value_parser = super::duration)]
    pub llm_timeout: Duration,
    /// Retries of a failed LLM request (429, 5xx, timeouts).
    #[arg(long, env = "LLM_MAX_RETRIES", default_value_t = 3)]
    pub llm_max_retries: u32,
    /// Global limit of LLM requests a minute (0: none).
    #[arg(long, env = "LLM_REQUESTS_PER_MINUTE", default_value_t = 60.0)]
    pub llm_requests_per_minute: f64,
    /// Comments labelled per LLM request.
    #[arg(long, env = "LLM_BATCH_SIZE", default_value_t = 8)]
    pub llm_batch_size: usize,
    /// Ask for JSON mode (`response_format`); turn off for servers that refuse it.
    #[arg(long, env = "LLM_JSON_MODE", default_value_t = true, action = clap::ArgAction::Set)]
    pub llm_json_mode: bool,
    /// The longest pause a 429's `Retry-After` may impose on the labeler
    /// (larger values are clamped to it).
    #[arg(long, env = "LLM_MAX_PAUSE_SECONDS", default_value = "1h", value_parser = super::duration)]
    pub llm_max_pause: Duration,
    /// Least confidence of an LLM label to be trained on.
    #[arg(long, env = "FEEDBACK_MIN_CONFIDENCE_LLM", default_value_t = FeedbackPolicy::default().min_confidence.llm)]
    pub feedback_min_confidence_llm: f64,
    /// Least confidence of the model's own prediction to become a pseudo label.
    #[arg(long, env = "FEEDBACK_MIN_CONFIDENCE_PSEUDO", default_value_t = FeedbackPolicy::default().min_confidence.pseudo)]
    pub feedback_min_confidence_pseudo: f64,
    /// Hold LLM labels that a confident model contradicts for review.
    #[arg(long, env = "FEEDBACK_HOLD_DISAGREEMENTS", default_value_t = true, action = clap::ArgAction::Set)]
    pub feedback_hold_disagreements: bool,
    /// How sure the model must be for its contrary view to hold an LLM label.
    #[arg(long, env = "FEEDBACK_DISAGREEMENT_CONFIDENCE", default_value_t = FeedbackPolicy::default().disagreement_confidence)]
    pub feedback_disagreement_confidence: f64,
    /// Most feedback samples one author contributes to a run (0: no cap).
    #[arg(long, env = "FEEDBACK_MAX_PER_AUTHOR", default_value_t = FeedbackPolicy::default().max_per_author)]
    pub feedback_max_per_author: usize,
    /// Feedback may not push the larger class past this many times the smaller (0: off).
    #[arg(long, env = "FEEDBACK_MAX_CLASS_RATIO", default_value_t = FeedbackPolicy::default().max_class_ratio)]
    pub feedback_max_class_ratio: f64,
    /// Most of one user's author corrections (article authors, not admins) held
    /// for review from the last 24 hours; later ones are shown on the comment
    /// but never become training samples (0: none do).
    #[arg(long, env = "FEEDBACK_MAX_AUTHOR_CORRECTIONS_PER_DAY", default_value_t = FeedbackPolicy::default().max_author_corrections_per_day)]
    pub feedback_max_author_corrections_per_day: usize,
    /// How often the labeler looks for new comments.
    #[arg(long, env = "LABELER_POLL_INTERVAL_SECONDS", default_value = "1s", value_parser = super::duration)]
    pub labeler_poll_interval: Duration,
    /// Attempts at labelling a comment before it is given up on.
    #[arg(long, env = "LABELER_MAX_ATTEMPTS", default_value_t = 5)]
    pub labeler_max_attempts: u32,
    /// Delay before retrying a failed comment (it doubles each attempt).
    #[arg(long, env = "LABELER_RETRY_SECONDS", default_value = "30s", value_parser = super::duration)]
    pub labeler_retry: Duration,
    /// How long the labeler may show no sign of life before `/readyz` reports it stuck.
    #[arg(long, env = "LABELER_STALL_SECONDS", default_value = "10m", value_parser = super::duration)]
    pub labeler_stall: Duration,
}

fn positive(value: Duration, name: &str) -> Result<Duration> {
    anyhow::ensure!(!value.is_zero(), "{name} must be more than 0");
    Ok(value)
}

impl LabelerArgs {
    /// The LLM settings, when an LLM is configured.
    fn llm(&self) -> Result<Option<LlmConfig>> {
        let Some(base_url) = self
            .llm_base_url
            .as_deref()
            .filter(|u| !u.trim().is_empty())
        else {
            return Ok(None);
        };
        let model = self
            .llm_model
            .as_deref()
            .filter(|m| !m.trim().is_empty())
            .ok_or_else(|| anyhow::anyhow!("LLM_BASE_URL is set but LLM_MODEL is not"))?;
        Ok(Some(LlmConfig {
            api_key: self.llm_api_key.clone(),
            timeout: positive(self.llm_timeout, "LLM_TIMEOUT_SECONDS")?,
            max_retries: self.llm_max_retries,
            requests_per_minute: self.llm_requests_per_minute,
            batch_size: self.llm_batch_size,
            json_mode: self.llm_json_mode,
            max_pause: self.llm_max_pause,
            ..LlmConfig::new(base_url.trim(), model.trim())
        }))
    }

    /// The labeler over `db`, asking `model` for the model's opinion (moving
    /// it along the registry itself when `refresh_model`); `None` when disabled.
    pub fn build(
        &self,
        db: Db,
        model: Arc<ModelFollower>,
        refresh_model: bool,
    ) -> Result<Option<Arc<Labeler>>> {
        if !self.labeler {
            return Ok(None);
        }
        let config = LabelerConfig {
            policy: FeedbackPolicy {
                min_confidence: Thresholds {
                    llm: self.feedback_min_confidence_llm,
                    pseudo: self.feedback_min_confidence_pseudo,
                    human: 0.0,
                },
                hold_disagreements: self.feedback_hold_disagreements,
                disagreement_confidence: self.feedback_disagreement_confidence,
                max_per_author: self.feedback_max_per_author,
                max_class_ratio: self.feedback_max_class_ratio,
                max_author_corrections_per_day: self.feedback_max_author_corrections_per_day,
            },
            poll_interval: positive(self.labeler_poll_interval, "LABELER_POLL_INTERVAL_SECONDS")?,
            max_attempts: self.labeler_max_attempts,
            retry_delay: positive(self.labeler_retry, "LABELER_RETRY_SECONDS")?,
            stall_after: positive(self.labeler_stall, "LABELER_STALL_SECONDS")?,
            refresh_model,
            ..LabelerConfig::default()
        };
        let llm = self.llm()?;
        match &llm {
            Some(c) => tracing::info!(base_url = %c.base_url, model = %c.model, "labeler: weak labels from the LLM"),
            None => tracing::info!("labeler: no LLM_BASE_URL, so weak labels are the model's own confident predictions (pseudo)"),
        }
        Ok(Some(Arc::new(Labeler::new(db, model, llm, config)?)))
    }
}
