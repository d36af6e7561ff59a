//! The labelling task: takes the comments waiting for a label, turns human
//! corrections into human samples, labels the rest with the LLM (or, without
//! one, with the current model's confident predictions), judges each label
//! by the policy and stores it. Failed LLM calls are retried later with a
//! growing delay, so a broken or slow LLM only delays labels: commenting
//! never waits for any of this.

use bloginfer_service::common::now_millis;
use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bloginfer_db::Db;
use bloginfer_model::ModelFollower;
use bloginfer_service::tasks::sleep_or_cancelled;
use bloginfer_service::{BoxFuture, CancellationToken, Readiness, Service, Supervisor};

use crate::error::LabelerError;
use crate::llm::{LlmClient, LlmConfig};
use crate::metrics::{Labelled, Metrics};
use crate::opinion::CurrentModel;
use crate::pii::mask;
use crate::policy::FeedbackPolicy;
use crate::sample::{ModelView, Source, Verdict};
use crate::store::{text_hash, CommentState, NewSample, PendingComment, SampleStore, Stored};

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
            match self.pass().await {
                // A full batch that made progress: there may be more right away.
                Ok(p)
                    if p.seen == self.config.batch
                        && p.labelled + p.duplicates + p.failed > 0
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
            if let Some(label) = comment.human_label {
                let verdict = Verdict {
                    sentiment: label,
                    confidence: 1.0,
                    topics: Vec::new(),
                    reason: None,
                };
                let item = Item {
                    comment,
                    text,
                    hash,
                    model: None,
                };
                self.save(&item, &verdict, Source::Human, "human", &mut pass)
                    .await?;
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
            self.save(&item, &verdict, Source::Pseudo, &labeler, pass)
                .await?;
        }
        Ok(())
    }

    async fn label_with_llm(
        &self,
        llm: &LlmClient,
        items: Vec<Item>,
        pass: &mut Pass,
    ) -> Result<(), LabelerError> {
        // Comments that failed before go one per call: a batch's bad answer
        // should not keep failing the same neighbours.
        let (fresh, retried): (Vec<Item>, Vec<Item>) =
            items.into_iter().partition(|i| i.comment.attempts == 0);
        let mut groups: Vec<Vec<Item>> = Vec::new();
        let mut fresh = fresh.into_iter().peekable();
        while fresh.peek().is_some() {
            groups.push(fresh.by_ref().take(llm.config().batch_size).collect());
        }
        groups.extend(retried.into_iter().map(|i| vec![i]));
        for group in groups {
            // While a 429's wait is being honoured, leave the rest for a later pass.
            if llm.ready_at() > tokio::time::Instant::now() + Duration::from_secs(1) {
                break;
            }
            let texts: Vec<String> = group.iter().map(|i| i.text.clone()).collect();
            match llm.label(&texts).await {
                Ok(verdicts) => {
                    for (item, verdict) in group.iter().zip(&verdicts) {
                        self.save(item, verdict, Source::Llm, llm.model(), pass)
                            .await?;
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

    async fn save(
        &self,
        item: &Item,
        verdict: &Verdict,
        source: Source,
        labeler: &str,
        pass: &mut Pass,
    ) -> Result<(), LabelerError> {
        let judgement = self
            .config
            .policy
            .judge(source, verdict, item.model.as_ref());
        let new = NewSample {
            text: &item.text,
            hash: &item.hash,
            verdict,
            source,
            labeler,
            model: item.model.as_ref(),
            status: judgement.status,
            status_reason: judgement.reason,
            comment_id: item.comment.id,
            author_id: item.comment.author_id,
        };
        match self.store.store(&item.comment, &new).await? {
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
            // Corrected meanwhile: it is pending again and comes back next pass.
            Stored::Stale => {}
        }
        Ok(())
    }
}

/// The labeler as a service of its host (the orchestrator's process, or `up`):
/// no routes of its own (its API is the orchestrator's `/v1/feedback`), its
/// metrics under `bloginfer_labeler_`, and its loop as a background task.
pub struct LabelerService(pub Arc<Labeler>);

impl Service for LabelerService {
    fn name(&self) -> &'static str {
        "labeler"
    }

    fn routes(&self) -> axum::Router {
        axum::Router::new()
    }

    fn register_metrics(&self, registry: &mut prometheus_client::registry::Registry) {
        self.0.metrics.register(registry);
    }

    fn ready(&self) -> BoxFuture<'_, Readiness> {
        let readiness = Readiness::ready()
            .with("source", self.0.source().as_str())
            .with("llm_model", self.0.llm_model().map(str::to_string));
        Box::pin(async move { readiness })
    }

    fn spawn_background(&self, tasks: &Supervisor) {
        let labeler = self.0.clone();
        tasks.spawn("labeler", "labelling", false, move |token| {
            labeler.clone().run(token)
        });
    }
}
