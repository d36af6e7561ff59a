//! The labelling task: takes the comments waiting for a label, turns
//! corrections into human samples (an admin's trusted, an article author's
//! held for review), labels the rest with the LLM (one author's comments per
//! request, or, without one, with the current model's confident
//! predictions), judges each label by the policy and stores it. Failed LLM
//! calls are retried later with a growing delay, so a broken or slow LLM only
//! delays labels: commenting never waits for any of this. Each step beats a
//! [`Heartbeat`] that `/readyz` reads, so a stuck loop shows.

use bloginfer_service::common::now_millis;
use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use bloginfer_db::Db;
use bloginfer_model::ModelFollower;
use bloginfer_service::tasks::sleep_or_cancelled;
use bloginfer_service::CancellationToken;

use crate::error::LabelerError;
use crate::heartbeat::Heartbeat;
use crate::llm::{LlmClient, LlmConfig};
use crate::metrics::{Labelled, Metrics};
use crate::opinion::CurrentModel;
use crate::pii::mask;
use crate::policy::{FeedbackPolicy, Judgement};
use crate::sample::{ModelView, Source, Verdict};
use crate::store::{
    text_hash, CommentState, NewSample, Origin, PendingComment, SampleStore, Stored,
};

pub use crate::service::LabelerService;

/// How the labeler works through its queue.
#[derive(Debug, Clone)]
pub struct LabelerConfig {
    /// Which labels may be trained on.
    pub policy: FeedbackPolicy,
    /// How often the queue is looked at when it was empty.
    pub poll_interval: Duration,
    /// Comments taken per pass.
    pub batch: usize,
    /// Attempts before a comment is given up on.
    pub max_attempts: u32,
    /// Delay before the second attempt; it doubles with each attempt, up to an hour.
    pub retry_delay: Duration,
    /// How long to wait for a first model when there is none (fallback labeler).
    pub no_model_delay: Duration,
    /// Move the model follower to the registry's current version before each
    /// look (off when inference in the same process drives a shared follower).
    pub refresh_model: bool,
    /// How long the labelling loop may go without a sign of life (a pass
    /// begun, an LLM call or a label done) before `/readyz` calls it stuck.
    pub stall_after: Duration,
}

impl Default for LabelerConfig {
    fn default() -> Self {
        Self {
            policy: FeedbackPolicy::default(),
            poll_interval: Duration::from_secs(1),
            batch: 64,
            max_attempts: 5,
            retry_delay: Duration::from_secs(30),
            no_model_delay: Duration::from_secs(30),
            refresh_model: true,
            stall_after: Duration::from_secs(600),
        }
    }
}

/// What one pass did, comment by comment.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Pass {
    /// Comments taken from the queue of those waiting for a label.
    pub seen: usize,
    /// Labels stored (new or replacing a weaker one).
    pub labelled: usize,
    /// Comments whose text had a label at least as strong.
    pub duplicates: usize,
    /// Comments to try again later.
    pub retried: usize,
    /// Comments given up on.
    pub failed: usize,
    /// Author corrections beyond their corrector's cap (no sample).
    pub capped: usize,
}

/// One comment on its way to a label.
struct Item {
    comment: PendingComment,
    text: String,
    hash: String,
    model: Option<ModelView>,
}

/// Turns comments waiting for a label into training samples, one pass at a time.
pub struct Labeler {
    store: SampleStore,
    llm: Option<LlmClient>,
    model: CurrentModel,
    config: LabelerConfig,
    metrics: Arc<Metrics>,
    heartbeat: Heartbeat,
}

impl Labeler {
    /// A labeler over `db`, asking `model` for the model's opinion, with the
    /// LLM when configured (else the fallback labeler).
    pub fn new(
        db: Db,
        model: Arc<ModelFollower>,
        llm: Option<LlmConfig>,
        config: LabelerConfig,
    ) -> Result<Self, LabelerError> {
        config.policy.validate().map_err(LabelerError::Config)?;
        if config.batch == 0 || config.max_attempts == 0 {
            return Err(LabelerError::Config(
                "the labeler's batch and attempts must be at least 1".into(),
            ));
        }
        if config.stall_after <= config.poll_interval {
            return Err(LabelerError::Config(
                "the labeler's stall time must be longer than its poll interval".into(),
            ));
        }
        if let Some(llm) = &llm {
            // One LLM call may take every attempt's timeout and the waits between
            // them; a stall limit below that calls a healthy labeler stuck.
            let retries = llm.max_retries;
            let longest_call = llm
                .timeout
                .saturating_mul(retries.saturating_add(1))
                .saturating_add(
                    llm.max_retry_after
                        .max(Duration::from_secs(30))
                        .saturating_mul(retries),
                );
            if config.stall_after < longest_call {
                tracing::warn!(
                    stall_after = ?config.stall_after,
                    ?longest_call,
                    "LABELER_STALL_SECONDS is shorter than one LLM call may take with its retries: \
                     /readyz may call a slow but healthy labeler stuck"
                );
            }
        }
        let metrics = Arc::new(Metrics::new());
        let llm = llm
            .map(|c| LlmClient::new(c, metrics.llm_requests.clone()))
            .transpose()
            .map_err(LabelerError::Config)?;
        Ok(Self {
            store: SampleStore::new(db),
            llm,
            model: CurrentModel::new(model, config.refresh_model),
            config,
            metrics,
            heartbeat: Heartbeat::new(),
        })
    }

    /// Its last sign of life, which readiness holds against
    /// [`LabelerConfig::stall_after`].
    pub fn heartbeat(&self) -> &Heartbeat {
        &self.heartbeat
    }

    /// How long it may go without a sign of life before it counts as stuck.
    pub fn stall_after(&self) -> Duration {
        self.config.stall_after
    }

    /// How long every LLM call is paused for by a 429 (zero when none is).
    pub fn llm_paused_for(&self) -> Duration {
        self.llm.as_ref().map_or(Duration::ZERO, |llm| {
            llm.ready_at()
                .saturating_duration_since(tokio::time::Instant::now())
        })
    }

    /// The sample store it writes to, which the review API and runs read too.
    pub fn store(&self) -> &SampleStore {
        &self.store
    }

    /// The feedback policy: which labels are trained on, and how a run selects them.
    pub fn policy(&self) -> &FeedbackPolicy {
        &self.config.policy
    }

    /// Its metrics, for the host to register.
    pub fn metrics(&self) -> &Metrics {
        &self.metrics
    }

    /// `llm` or `pseudo`: where weak labels come from.
    pub fn source(&self) -> Source {
        if self.llm.is_some() {
            Source::Llm
        } else {
            Source::Pseudo
        }
    }

    /// The LLM's model name, when one is configured.
    pub fn llm_model(&self) -> Option<&str> {
        self.llm.as_ref().map(LlmClient::model)
    }

    /// Labels until `token` is cancelled, one pass after another.
    pub async fn run(self: Arc<Self>, token: CancellationToken) {
        loop {
            self.heartbeat.beat();
            match self.pass().await {
                // A full batch that made progress: there may be more right away.
                Ok(p)
                    if p.seen == self.config.batch
                        && p.labelled + p.duplicates + p.failed + p.capped > 0
                        && !token.is_cancelled() =>
                {
                    continue
                }
                Ok(p) if p.seen > 0 => tracing::debug!(?p, "labelling pass"),
                Ok(_) => {}
                Err(e) => tracing::warn!("labelling pass failed: {e}"),
            }
            if sleep_or_cancelled(&token, self.config.poll_interval).await {
                return;
            }
        }
    }

    /// One pass over the comments waiting for a label.
    #[tracing::instrument(name = "labelling_pass", skip(self))]
    pub async fn pass(&self) -> Result<Pass, LabelerError> {
        let now = now_millis();
        self.metrics
            .pending
            .set(i64::try_from(self.store.pending_count().await?).unwrap_or(i64::MAX));
        let batch = i64::try_from(self.config.batch).unwrap_or(i64::MAX);
        let pending = self.store.pending(now, batch).await?;
        let mut pass = Pass {
            seen: pending.len(),
            ..Pass::default()
        };
        let mut items = Vec::with_capacity(pending.len());
        let mut hashes = HashSet::new();
        for comment in pending {
            let text = mask(&comment.body).into_owned();
            let hash = text_hash(&text);
            if let Some(correction) = comment.correction {
                let verdict = Verdict {
                    sentiment: correction.label,
                    confidence: 1.0,
                    topics: Vec::new(),
                    reason: None,
                };
                // Only an admin's correction is a trusted label; an article
                // author's is a proposal for the review queue.
                let (origin, role) = if correction.trusted {
                    (Origin::Admin, "admin")
                } else {
                    (Origin::Author, "author")
                };
                let labeler = match correction.by {
                    Some(by) => format!("{role}:{by}"),
                    None => role.to_string(),
                };
                let judgement = self.config.policy.judge_correction(correction.trusted);
                let item = Item {
                    comment,
                    text,
                    hash,
                    model: None,
                };
                let label = Label {
                    verdict: &verdict,
                    source: Source::Human,
                    labeler: &labeler,
                    origin,
                    corrected_by: correction.by,
                };
                self.save(&item, label, judgement, &mut pass).await?;
                self.heartbeat.beat();
                continue;
            }
            // The same text twice in one pass: the first one's label serves both.
            let stronger = self
                .store
                .source_of(&hash)
                .await?
                .is_some_and(|s| s >= self.source());
            if stronger || !hashes.insert(hash.clone()) {
                if stronger && self.store.finish(&comment, CommentState::Duplicate).await? {
                    pass.duplicates += 1;
                    self.metrics.duplicates.inc();
                }
                continue;
            }
            items.push(Item {
                comment,
                text,
                hash,
                model: None,
            });
        }
        if items.is_empty() {
            return Ok(pass);
        }
        let texts: Vec<String> = items.iter().map(|i| i.text.clone()).collect();
        let views = match self.model.predict(texts).await {
            Ok(views) => views,
            Err(e) => {
                tracing::warn!("the current model cannot give its view: {e}");
                None
            }
        };
        self.heartbeat.beat();
        if let Some(views) = views {
            for (item, view) in items.iter_mut().zip(views) {
                item.model = Some(view);
            }
        }
        match &self.llm {
            Some(llm) => self.label_with_llm(llm, items, &mut pass).await?,
            None => self.label_with_model(items, &mut pass).await?,
        }
        Ok(pass)
    }

    async fn label_with_model(
        &self,
        items: Vec<Item>,
        pass: &mut Pass,
    ) -> Result<(), LabelerError> {
        let delay = i64::try_from(self.config.no_model_delay.as_millis()).unwrap_or(i64::MAX);
        let later = now_millis().saturating_add(delay);
        for item in items {
            let Some(view) = &item.model else {
                // No model yet (or a broken one): wait for one, without counting an attempt.
                self.store.retry_later(&item.comment, later, false).await?;
                pass.retried += 1;
                continue;
            };
            let verdict = Verdict {
                sentiment: view.sentiment(),
                confidence: view.confidence(),
                topics: Vec::new(),
                reason: None,
            };
            let labeler = format!("model:{}", view.version);
            let label = Label::weak(&verdict, Source::Pseudo, &labeler);
            let judgement = self.judge(&item, &label);
            self.save(&item, label, judgement, pass).await?;
        }
        Ok(())
    }

    async fn label_with_llm(
        &self,
        llm: &LlmClient,
        items: Vec<Item>,
        pass: &mut Pass,
    ) -> Result<(), LabelerError> {
        for group in llm_groups(items, llm.config().batch_size) {
            // While a 429's wait is being honoured, leave the rest for a later pass.
            if llm.ready_at() > tokio::time::Instant::now() + Duration::from_secs(1) {
                break;
            }
            let texts: Vec<String> = group.iter().map(|i| i.text.clone()).collect();
            self.heartbeat.beat();
            let answer = llm.label(&texts).await;
            self.heartbeat.beat();
            match answer {
                Ok(verdicts) => {
                    for (item, verdict) in group.iter().zip(&verdicts) {
                        let label = Label::weak(verdict, Source::Llm, llm.model());
                        let judgement = self.judge(item, &label);
                        self.save(item, label, judgement, pass).await?;
                    }
                }
                Err(e) => {
                    tracing::warn!(comments = group.len(), "LLM labelling failed: {e}");
                    for item in &group {
                        self.retry(&item.comment, pass).await?;
                    }
                }
            }
        }
        Ok(())
    }

    async fn retry(&self, comment: &PendingComment, pass: &mut Pass) -> Result<(), LabelerError> {
        let attempts = comment.attempts + 1;
        if attempts >= self.config.max_attempts {
            if self.store.finish(comment, CommentState::Failed).await? {
                pass.failed += 1;
                self.metrics.failed.inc();
                tracing::warn!(
                    comment = comment.id,
                    attempts,
                    "giving up on labelling a comment"
                );
            }
            return Ok(());
        }
        let delay = self
            .config
            .retry_delay
            .saturating_mul(1 << (attempts - 1).min(16))
            .min(Duration::from_secs(3600));
        let at = now_millis().saturating_add(i64::try_from(delay.as_millis()).unwrap_or(i64::MAX));
        self.store.retry_later(comment, at, true).await?;
        pass.retried += 1;
        Ok(())
    }

    /// The policy's judgement of a weak label, given the model's view.
    fn judge(&self, item: &Item, label: &Label<'_>) -> Judgement {
        self.config
            .policy
            .judge(label.source, label.verdict, item.model.as_ref())
    }

    async fn save(
        &self,
        item: &Item,
        label: Label<'_>,
        judgement: Judgement,
        pass: &mut Pass,
    ) -> Result<(), LabelerError> {
        let source = label.source;
        let new = NewSample {
            text: &item.text,
            hash: &item.hash,
            verdict: label.verdict,
            source,
            labeler: label.labeler,
            model: item.model.as_ref(),
            status: judgement.status,
            status_reason: judgement.reason,
            comment_id: item.comment.id,
            author_id: item.comment.author_id,
            origin: label.origin,
            corrected_by: label.corrected_by,
        };
        let cap = self.config.policy.max_author_corrections_per_day;
        match self.store.store(&item.comment, &new, cap).await? {
            Stored::Inserted(_) | Stored::Replaced(_) => {
                pass.labelled += 1;
                self.metrics
                    .labels
                    .get_or_create(&Labelled {
                        source: source.as_str(),
                        status: judgement.status.as_str(),
                    })
                    .inc();
            }
            Stored::Kept(_) => {
                pass.duplicates += 1;
                self.metrics.duplicates.inc();
            }
            Stored::Capped => {
                pass.capped += 1;
                tracing::info!(
                    comment = item.comment.id,
                    corrector = label.corrected_by,
                    "an author's correction over the corrector's daily cap: no sample"
                );
            }
            // Corrected meanwhile: it is pending again and comes back next pass.
            Stored::Stale => {}
        }
        Ok(())
    }
}

/// A label on its way to the store: what it says and who gave it.
struct Label<'a> {
    verdict: &'a Verdict,
    source: Source,
    labeler: &'a str,
    origin: Origin,
    corrected_by: Option<i64>,
}

impl<'a> Label<'a> {
    /// A labeler's (LLM or model) label.
    fn weak(verdict: &'a Verdict, source: Source, labeler: &'a str) -> Self {
        Self {
            verdict,
            source,
            labeler,
            origin: Origin::Labeler,
            corrected_by: None,
        }
    }
}

/// The LLM requests for `items`: one author's comments per request (so an
/// instruction hidden in a comment can reach no one else's label), at most
/// `batch_size` each, in the order of each author's first comment. Comments
/// that failed before go one per request, so that a batch's bad answer does
/// not keep failing the same neighbours.
fn llm_groups(items: Vec<Item>, batch_size: usize) -> Vec<Vec<Item>> {
    let batch_size = batch_size.max(1);
    let (fresh, retried): (Vec<Item>, Vec<Item>) =
        items.into_iter().partition(|i| i.comment.attempts == 0);
    let mut by_author: Vec<Vec<Item>> = Vec::new();
    let mut slot: HashMap<i64, usize> = HashMap::new();
    for item in fresh {
        let i = *slot.entry(item.comment.author_id).or_insert_with(|| {
            by_author.push(Vec::new());
            by_author.len() - 1
        });
        by_author[i].push(item);
    }
    let mut groups = Vec::new();
    for author in by_author {
        let mut rest = author.into_iter().peekable();
        while rest.peek().is_some() {
            groups.push(rest.by_ref().take(batch_size).collect());
        }
    }
    groups.extend(retried.into_iter().map(|i| vec![i]));
    groups
}
