//! Training samples in the database (`training_samples`) and the comments
//! waiting for a label (`comments.label_state IS NULL`). One sample per
//! normalised text: a weak label replaces a stored one only when its source
//! ranks higher (human over LLM over pseudo), an admin's correction replaces
//! anything, and an article author's correction (a proposal held for review,
//! capped per corrector) never replaces a label an admin set or reviewed.

use bloginfer_service::common::now_millis;
use std::collections::BTreeMap;

use bloginfer_db::Db;
use serde::Serialize;
use sha2::{Digest, Sha256};
use sqlx::any::AnyRow;
use sqlx::Row;

use crate::error::LabelerError;
use crate::policy::Candidate;
use crate::sample::{ModelView, Sentiment, Source, Status, Verdict};

type Result<T, E = LabelerError> = std::result::Result<T, E>;

/// The key that deduplicates samples: SHA-256 (hex) of the masked text
/// normalised the way the model reads it (full-width folded, lower-cased),
/// without whitespace (which carries nothing in Chinese).
pub fn text_hash(masked: &str) -> String {
    let normalized: String = bloginfer_text::normalize(masked)
        .chars()
        .filter(|c| !c.is_whitespace())
        .collect();
    let digest = Sha256::digest(normalized.as_bytes());
    bloginfer_service::common::hex(&digest)
}

/// The shard key of an author's samples: all of one author's comments train on one worker.
pub fn shard_key(author_id: i64) -> String {
    format!("user:{author_id}")
}

/// A comment waiting for a label.
#[derive(Debug, Clone)]
pub struct PendingComment {
    /// The comment's id in `comments`; its label state is written back under it.
    pub id: i64,
    /// Its text, unmasked.
    pub body: String,
    /// The comment's author (`users.id`); all of one author's samples share a shard key.
    pub author_id: i64,
    /// The correction shown on it, when a person set its sentiment.
    pub correction: Option<Correction>,
    /// Labelling attempts that failed so far; they lengthen the retry delay, and the
    /// comment is given up at `max_attempts`.
    pub attempts: u32,
    /// Its `updated_at`: the comment changed (a correction) when this did.
    pub version: i64,
}

/// A person's correction of a comment's sentiment, as the blog recorded it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Correction {
    /// The label the person chose.
    pub label: Sentiment,
    /// Who corrected it (`users.id`); `None` for corrections older than the
    /// column, or when the corrector's account is gone.
    pub by: Option<i64>,
    /// Whether the corrector is an admin: only then is it a trusted label.
    pub trusted: bool,
}

/// Where a label comes from, which decides what it may replace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A labeler (the LLM or the model): replaces only a weaker source, and
    /// never a label an admin set or reviewed.
    Labeler,
    /// An admin's correction: a trusted human label, replaces anything.
    Admin,
    /// An article author's correction: held for review, capped per corrector,
    /// and never replaces a label an admin set or reviewed.
    Author,
}

/// A label to store.
#[derive(Debug, Clone)]
pub struct NewSample<'a> {
    /// The comment's text with personal data masked, as it is stored and trained on.
    pub text: &'a str,
    /// Its [`text_hash`], the key that keeps one sample per text.
    pub hash: &'a str,
    /// The label, with the labeler's confidence, topics and reason.
    pub verdict: &'a Verdict,
    /// Who labelled it: the sample replaces a stored label of a weaker source (and a
    /// human's replaces a human's).
    pub source: Source,
    /// The labeler: LLM model name, `model:<version>` or `human`.
    pub labeler: &'a str,
    /// What the model thought.
    pub model: Option<&'a ModelView>,
    /// Accepted, held or rejected.
    pub status: Status,
    /// Why it was held for review or rejected; `None` when accepted.
    pub status_reason: Option<&'a str>,
    /// The comment it came from (`comments.id`), kept with the sample for review.
    pub comment_id: i64,
    /// The comment's author, from which the sample's shard key is derived.
    pub author_id: i64,
    /// Who set the label: decides what it may replace.
    pub origin: Origin,
    /// The corrector, when the label is a correction.
    pub corrected_by: Option<i64>,
}

/// What storing a label did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The text had no sample: the new sample's id.
    Inserted(i64),
    /// The text's sample now carries this label.
    Replaced(i64),
    /// The text's sample has a label at least as strong; unchanged.
    Kept(i64),
    /// The comment changed meanwhile (a correction); nothing stored, it is pending again.
    Stale,
    /// An author's correction over the corrector's daily cap: nothing stored.
    Capped,
}

/// How a comment's labelling ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CommentState {
    /// Its label is a sample.
    Labeled,
    /// Its text was a sample already.
    Duplicate,
    /// Given up after the last attempt.
    Failed,
    /// An author's correction beyond the corrector's cap: no sample.
    Capped,
}

impl CommentState {
    fn as_str(self) -> &'static str {
        match self {
            Self::Labeled => "labeled",
            Self::Duplicate => "duplicate",
            Self::Failed => "failed",
            Self::Capped => "capped",
        }
    }
}

/// A stored sample, as the review API shows it.
#[derive(Debug, Clone, Serialize)]
pub struct StoredSample {
    /// The sample's id, by which an admin reviews it.
    pub id: i64,
    /// The comment's text with personal data masked.
    pub text: String,
    /// `positive`, `negative` or `neutral`.
    pub label: Sentiment,
    /// `llm`, `pseudo` or `human`.
    pub source: Source,
    /// How sure the labeler was.
    pub confidence: f64,
    /// LLM model name, `model:<version>` or `human`.
    pub labeler: String,
    /// What the comment is about, in the LLM's keywords (empty for other sources).
    pub topics: Vec<String>,
    /// The LLM's one-sentence reason for its label (`None` for other sources).
    pub reason: Option<String>,
    /// The model's label when it was labelled.
    pub model_label: Option<String>,
    /// The model's probability of positive.
    pub model_score: Option<f64>,
    /// The registry version that gave `model_label` and `model_score`.
    pub model_version: Option<String>,
    /// `accepted`, `review` or `rejected`.
    pub status: Status,
    /// Why it is held for review or rejected; `None` when accepted.
    pub status_reason: Option<String>,
    /// The comment it came from.
    pub comment_id: Option<i64>,
    /// The comment's author, when the sample came from a comment.
    pub author_id: Option<i64>,
    /// Who corrected it, when the label is a person's correction.
    pub corrected_by: Option<i64>,
    /// Which worker shard it trains on.
    pub shard_key: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// Milliseconds since the epoch.
    pub updated_at: i64,
    /// The last run that trained on it.
    pub used_by_run: Option<String>,
    /// When that run took it.
    pub used_at: Option<i64>,
}

/// An accepted sample with its text, for a run.
#[derive(Debug, Clone)]
pub struct Accepted {
    /// As selection sees it.
    pub candidate: Candidate,
    /// The masked text the run trains on.
    pub text: String,
}

/// Counts for the dashboard.
#[derive(Debug, Clone, Default, Serialize)]
pub struct Stats {
    /// Samples stored, whatever their source, label or status.
    pub total: u64,
    /// Sample counts by source (`pseudo`, `llm`, `human`), every source listed.
    pub by_source: BTreeMap<String, u64>,
    /// Sample counts by label (`positive`, `negative`, `neutral`), every label listed.
    pub by_label: BTreeMap<String, u64>,
    /// Sample counts by status (`accepted`, `review`, `rejected`), every status listed.
    pub by_status: BTreeMap<String, u64>,
    /// Every (source, label, status) with its count.
    pub breakdown: Vec<StatsRow>,
    /// Samples some run trained on.
    pub used: u64,
    /// Comments by labelling state (`pending`, `labeled`, `duplicate`, `failed`, `capped`).
    pub comments: BTreeMap<String, u64>,
}

/// One (source, label, status) count.
#[derive(Debug, Clone, Serialize)]
pub struct StatsRow {
    /// Who labelled them: `pseudo`, `llm` or `human`.
    pub source: String,
    /// Their label: `positive`, `negative` or `neutral`.
    pub label: String,
    /// Their status: `accepted`, `review` or `rejected`.
    pub status: String,
    /// Samples with this source, label and status.
    pub count: u64,
}

/// An admin's decision on a sample.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    /// Train on it as labelled.
    Accept,
    /// Train on it with this label (becomes a human label).
    Relabel(Sentiment),
    /// Never train on it.
    Reject,
}

const SAMPLE_COLUMNS: &str = "id, text, label, source, confidence, labeler, topics, reason, model_label, model_score, \
     model_version, status, status_reason, comment_id, author_id, corrected_by, shard_key, created_at, updated_at, used_by_run, used_at";

fn corrupt(what: &str, value: &str) -> LabelerError {
    LabelerError::Corrupt(format!("{what} {value:?}"))
}

fn text(row: &AnyRow, column: &str) -> Result<String> {
    Ok(bloginfer_db::text(row, column)?.unwrap_or_default())
}

const CANDIDATE_COLUMNS: &str = "id, label, source, confidence, shard_key, created_at";

fn candidate(row: &AnyRow) -> Result<Candidate> {
    let label: String = row.try_get("label")?;
    let source: String = row.try_get("source")?;
    Ok(Candidate {
        id: row.try_get("id")?,
        sentiment: Sentiment::parse(&label).ok_or_else(|| corrupt("label", &label))?,
        source: Source::parse(&source).ok_or_else(|| corrupt("source", &source))?,
        confidence: row.try_get("confidence")?,
        shard_key: row.try_get("shard_key")?,
        created_at: row.try_get("created_at")?,
    })
}

fn sample(row: &AnyRow) -> Result<StoredSample> {
    let label: String = row.try_get("label")?;
    let source: String = row.try_get("source")?;
    let status: String = row.try_get("status")?;
    Ok(StoredSample {
        id: row.try_get("id")?,
        text: text(row, "text")?,
        label: Sentiment::parse(&label).ok_or_else(|| corrupt("label", &label))?,
        source: Source::parse(&source).ok_or_else(|| corrupt("source", &source))?,
        confidence: row.try_get("confidence")?,
        labeler: row.try_get("labeler")?,
        topics: serde_json::from_str(&text(row, "topics")?).unwrap_or_default(),
        reason: bloginfer_db::text(row, "reason")?,
        model_label: row.try_get("model_label")?,
        model_score: row.try_get("model_score")?,
        model_version: row.try_get("model_version")?,
        status: Status::parse(&status).ok_or_else(|| corrupt("status", &status))?,
        status_reason: row.try_get("status_reason")?,
        comment_id: row.try_get("comment_id")?,
        author_id: row.try_get("author_id")?,
        corrected_by: row.try_get("corrected_by")?,
        shard_key: row.try_get("shard_key")?,
        created_at: row.try_get("created_at")?,
        updated_at: row.try_get("updated_at")?,
        used_by_run: row.try_get("used_by_run")?,
        used_at: row.try_get("used_at")?,
    })
}

/// The samples and the labelling queue.
#[derive(Clone)]
pub struct SampleStore {
    db: Db,
}

impl SampleStore {
    /// The store in `db` (migrated by [`bloginfer_db::connect`]).
    pub fn new(db: Db) -> Self {
        Self { db }
    }

    /// Up to `limit` comments waiting for a label whose retry time has come,
    /// oldest first, each with its correction and whether the corrector is an
    /// admin now (an admin demoted since correcting is no longer trusted).
    pub async fn pending(&self, now: i64, limit: i64) -> Result<Vec<PendingComment>> {
        let rows = sqlx::query(
            "SELECT c.id, c.body, c.author_id, c.sentiment_label, c.sentiment_source, \
             c.sentiment_corrected_by, COALESCE(u.admin, 0) AS corrector_admin, c.label_attempts, c.updated_at \
             FROM comments c LEFT JOIN users u ON u.id = c.sentiment_corrected_by \
             WHERE c.label_state IS NULL AND (c.label_after IS NULL OR c.label_after <= ?) \
             ORDER BY c.id LIMIT ?",
        )
        .bind(now)
        .bind(limit)
        .fetch_all(self.db.read())
        .await?;
        rows.iter()
            .map(|row| {
                let source: Option<String> = row.try_get("sentiment_source")?;
                let label: Option<String> = row.try_get("sentiment_label")?;
                let by: Option<i64> = row.try_get("sentiment_corrected_by")?;
                let admin: i64 = row.try_get("corrector_admin")?;
                let correction = match source.as_deref() {
                    Some("human") => {
                        label
                            .as_deref()
                            .and_then(Sentiment::parse)
                            .map(|label| Correction {
                                label,
                                by,
                                trusted: by.is_some() && admin != 0,
                            })
                    }
                    _ => None,
                };
                let attempts = row.try_get::<i64, _>("label_attempts")?.clamp(0, 1000);
                Ok(PendingComment {
                    id: row.try_get("id")?,
                    body: text(row, "body")?,
                    author_id: row.try_get("author_id")?,
                    correction,
                    attempts: u32::try_from(attempts).unwrap_or(0),
                    version: row.try_get("updated_at")?,
                })
            })
            .collect()
    }

    /// Comments waiting for a label (retries included).
    pub async fn pending_count(&self) -> Result<u64> {
        let n: i64 = sqlx::query("SELECT COUNT(*) AS n FROM comments WHERE label_state IS NULL")
            .fetch_one(self.db.read())
            .await?
            .try_get("n")?;
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// The source of the sample stored for `hash`, if any.
    pub async fn source_of(&self, hash: &str) -> Result<Option<Source>> {
        let row = sqlx::query("SELECT source FROM training_samples WHERE text_hash = ?")
            .bind(hash)
            .fetch_optional(self.db.read())
            .await?;
        row.map(|r| {
            let s: String = r.try_get("source")?;
            Source::parse(&s).ok_or_else(|| corrupt("source", &s))
        })
        .transpose()
    }

    /// Stores `new` for `comment` and marks the comment labelled (or a
    /// duplicate, when the text's sample keeps its label), in one
    /// transaction, unless the comment changed since it was read. An author's
    /// correction beyond `author_cap` corrections of the same corrector held
    /// for review in the last 24 hours stores nothing ([`Stored::Capped`]).
    pub async fn store(
        &self,
        comment: &PendingComment,
        new: &NewSample<'_>,
        author_cap: usize,
    ) -> Result<Stored> {
        let mut tx = self.db.write().begin().await?;
        let existing = sqlx::query(
            "SELECT id, source, status, status_reason FROM training_samples WHERE text_hash = ?",
        )
        .bind(new.hash)
        .fetch_optional(&mut *tx)
        .await?;
        let now = now_millis();
        let replaces = match &existing {
            None => true,
            Some(row) => {
                let source: String = row.try_get("source")?;
                let old = Source::parse(&source).ok_or_else(|| corrupt("source", &source))?;
                let status: String = row.try_get("status")?;
                let reason: Option<String> = row.try_get("status_reason")?;
                // An admin set it (a trusted correction, or a relabel in
                // review) or decided on it in review.
                let by_admin = reason.as_deref() == Some("reviewed")
                    || (old == Source::Human && status == Status::Accepted.as_str());
                match new.origin {
                    Origin::Admin => true,
                    Origin::Author => !by_admin,
                    Origin::Labeler => new.source > old && !by_admin,
                }
            }
        };
        if replaces && new.origin == Origin::Author {
            let held = held_for_review(&mut tx, new.corrected_by, now).await?;
            if held >= u64::try_from(author_cap).unwrap_or(u64::MAX) {
                if !finish_comment(&mut tx, comment, CommentState::Capped).await? {
                    tx.rollback().await?;
                    return Ok(Stored::Stale);
                }
                tx.commit().await?;
                return Ok(Stored::Capped);
            }
        }
        let stored = match existing {
            None => {
                // The label's columns first, in the order `bind_label` binds them.
                let sql = self.db.returning_id(&format!(
                    "INSERT INTO training_samples ({LABEL_COLUMNS}, text_hash, created_at) \
                     VALUES ({}?, ?)",
                    "?, ".repeat(LABEL_COLUMNS.split(',').count())
                ));
                let query = bind_label(sqlx::query(&sql), new, now)
                    .bind(new.hash)
                    .bind(now);
                Stored::Inserted(self.db.insert(query, &mut *tx).await?)
            }
            Some(row) => {
                let id: i64 = row.try_get("id")?;
                if replaces {
                    let sets = LABEL_COLUMNS.replace(", ", " = ?, ");
                    let sql = format!("UPDATE training_samples SET {sets} = ? WHERE id = ?");
                    bind_label(sqlx::query(&sql), new, now)
                        .bind(id)
                        .execute(&mut *tx)
                        .await?;
                    Stored::Replaced(id)
                } else {
                    Stored::Kept(id)
                }
            }
        };
        let state = match stored {
            Stored::Kept(_) => CommentState::Duplicate,
            _ => CommentState::Labeled,
        };
        if !finish_comment(&mut tx, comment, state).await? {
            tx.rollback().await?;
            return Ok(Stored::Stale);
        }
        tx.commit().await?;
        Ok(stored)
    }

    /// Ends `comment`'s labelling without a new sample (a duplicate, or given up).
    pub async fn finish(&self, comment: &PendingComment, state: CommentState) -> Result<bool> {
        let mut tx = self.db.write().begin().await?;
        let done = finish_comment(&mut tx, comment, state).await?;
        tx.commit().await?;
        Ok(done)
    }

    /// Counts a failed attempt and sets when to try again.
    pub async fn retry_later(
        &self,
        comment: &PendingComment,
        at: i64,
        count_attempt: bool,
    ) -> Result<()> {
        sqlx::query(
            "UPDATE comments SET label_attempts = label_attempts + ?, label_after = ? \
             WHERE id = ? AND label_state IS NULL AND updated_at = ?",
        )
        .bind(i64::from(count_attempt))
        .bind(at)
        .bind(comment.id)
        .bind(comment.version)
        .execute(self.db.write())
        .await?;
        Ok(())
    }

    /// Counts for the dashboard.
    pub async fn stats(&self) -> Result<Stats> {
        let mut stats = Stats::default();
        let rows = sqlx::query(
            "SELECT source, label, status, COUNT(*) AS n FROM training_samples GROUP BY source, label, status \
             ORDER BY source, label, status",
        )
        .fetch_all(self.db.read())
        .await?;
        for row in &rows {
            let (source, label, status): (String, String, String) = (
                row.try_get("source")?,
                row.try_get("label")?,
                row.try_get("status")?,
            );
            let n = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0);
            stats.total += n;
            *stats.by_source.entry(source.clone()).or_default() += n;
            *stats.by_label.entry(label.clone()).or_default() += n;
            *stats.by_status.entry(status.clone()).or_default() += n;
            stats.breakdown.push(StatsRow {
                source,
                label,
                status,
                count: n,
            });
        }
        for source in Source::ALL {
            stats.by_source.entry(source.as_str().into()).or_default();
        }
        for status in Status::ALL {
            stats.by_status.entry(status.as_str().into()).or_default();
        }
        for label in [Sentiment::Positive, Sentiment::Negative, Sentiment::Neutral] {
            stats.by_label.entry(label.as_str().into()).or_default();
        }
        let used: i64 =
            sqlx::query("SELECT COUNT(*) AS n FROM training_samples WHERE used_by_run IS NOT NULL")
                .fetch_one(self.db.read())
                .await?
                .try_get("n")?;
        stats.used = u64::try_from(used).unwrap_or(0);
        let rows =
            sqlx::query("SELECT label_state, COUNT(*) AS n FROM comments GROUP BY label_state")
                .fetch_all(self.db.read())
                .await?;
        for state in ["pending", "labeled", "duplicate", "failed", "capped"] {
            stats.comments.insert(state.into(), 0);
        }
        for row in &rows {
            let state: Option<String> = row.try_get("label_state")?;
            let n = u64::try_from(row.try_get::<i64, _>("n")?).unwrap_or(0);
            *stats
                .comments
                .entry(state.unwrap_or_else(|| "pending".into()))
                .or_default() += n;
        }
        Ok(stats)
    }

    /// Samples, newest first, with `status` if given; and how many there are in all.
    pub async fn list(
        &self,
        status: Option<Status>,
        limit: i64,
        offset: i64,
    ) -> Result<(u64, Vec<StoredSample>)> {
        let filter = if status.is_some() {
            " WHERE status = ?"
        } else {
            ""
        };
        let count_sql = format!("SELECT COUNT(*) AS n FROM training_samples{filter}");
        let mut count = sqlx::query(&count_sql);
        let list_sql = format!(
            "SELECT {SAMPLE_COLUMNS} FROM training_samples{filter} ORDER BY id DESC LIMIT ? OFFSET ?"
        );
        let mut list = sqlx::query(&list_sql);
        if let Some(status) = status {
            count = count.bind(status.as_str());
            list = list.bind(status.as_str());
        }
        let total: i64 = count.fetch_one(self.db.read()).await?.try_get("n")?;
        let rows = list
            .bind(limit)
            .bind(offset)
            .fetch_all(self.db.read())
            .await?;
        let samples = rows.iter().map(sample).collect::<Result<Vec<_>>>()?;
        Ok((u64::try_from(total).unwrap_or(0), samples))
    }

    /// The sample `id` with its review details, or `None` when there is no such sample.
    pub async fn get(&self, id: i64) -> Result<Option<StoredSample>> {
        let sql = format!("SELECT {SAMPLE_COLUMNS} FROM training_samples WHERE id = ?");
        sqlx::query(&sql)
            .bind(id)
            .fetch_optional(self.db.read())
            .await?
            .as_ref()
            .map(sample)
            .transpose()
    }

    /// Applies an admin's decision; `None` when there is no such sample.
    pub async fn review(
        &self,
        id: i64,
        decision: Review,
        by: &str,
    ) -> Result<Option<StoredSample>> {
        let now = now_millis();
        let query = match decision {
            Review::Accept => sqlx::query(
                "UPDATE training_samples SET status = 'accepted', status_reason = 'reviewed', updated_at = ? WHERE id = ?",
            )
            .bind(now)
            .bind(id),
            Review::Reject => sqlx::query(
                "UPDATE training_samples SET status = 'rejected', status_reason = 'reviewed', updated_at = ? WHERE id = ?",
            )
            .bind(now)
            .bind(id),
            Review::Relabel(label) => sqlx::query(
                "UPDATE training_samples SET status = 'accepted', status_reason = 'reviewed', label = ?, \
                 source = 'human', confidence = 1.0, labeler = ?, updated_at = ? WHERE id = ?",
            )
            .bind(label.as_str())
            .bind(format!("review:{by}"))
            .bind(now)
            .bind(id),
        };
        query.execute(self.db.write()).await?;
        self.get(id).await
    }

    /// Every accepted sample as selection sees it (no texts: the dashboard's preview).
    pub async fn candidates(&self) -> Result<Vec<Candidate>> {
        let rows = sqlx::query(&format!(
            "SELECT {CANDIDATE_COLUMNS} FROM training_samples WHERE status = 'accepted' ORDER BY id"
        ))
        .fetch_all(self.db.read())
        .await?;
        rows.iter().map(candidate).collect()
    }

    /// Every accepted sample, with its text (a run's snapshot).
    pub async fn accepted(&self) -> Result<Vec<Accepted>> {
        let rows = sqlx::query(&format!(
            "SELECT {CANDIDATE_COLUMNS}, text FROM training_samples WHERE status = 'accepted' ORDER BY id"
        ))
        .fetch_all(self.db.read())
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Accepted {
                    candidate: candidate(row)?,
                    text: text(row, "text")?,
                })
            })
            .collect()
    }

    /// Records that run `run_id` trained on `ids`.
    pub async fn mark_used(&self, run_id: &str, ids: &[i64]) -> Result<()> {
        let now = now_millis();
        for chunk in ids.chunks(500) {
            let marks = vec!["?"; chunk.len()].join(", ");
            let sql = format!(
                "UPDATE training_samples SET used_by_run = ?, used_at = ? WHERE id IN ({marks})"
            );
            let mut query = sqlx::query(&sql).bind(run_id).bind(now);
            for id in chunk {
                query = query.bind(*id);
            }
            query.execute(self.db.write()).await?;
        }
        Ok(())
    }
}

/// The columns a label sets, on insert and on replace alike.
const LABEL_COLUMNS: &str = "text, label, source, confidence, labeler, topics, reason, model_label, \
     model_score, model_version, status, status_reason, comment_id, author_id, corrected_by, shard_key, updated_at";

type AnyQuery<'q> = sqlx::query::Query<'q, sqlx::Any, sqlx::any::AnyArguments<'q>>;

/// Binds [`LABEL_COLUMNS`] of `new`, labelled at `now`.
fn bind_label<'q>(query: AnyQuery<'q>, new: &NewSample<'q>, now: i64) -> AnyQuery<'q> {
    let v = new.verdict;
    let topics = serde_json::to_string(&v.topics).unwrap_or_else(|_| "[]".into());
    let model = new.model;
    query
        .bind(new.text)
        .bind(v.sentiment.as_str())
        .bind(new.source.as_str())
        .bind(v.confidence)
        .bind(new.labeler)
        .bind(topics)
        .bind(v.reason.clone())
        .bind(model.map(|m| m.sentiment().as_str()))
        .bind(model.map(|m| m.p_positive))
        .bind(model.map(|m| m.version.clone()))
        .bind(new.status.as_str())
        .bind(new.status_reason)
        .bind(new.comment_id)
        .bind(new.author_id)
        .bind(new.corrected_by)
        .bind(shard_key(new.author_id))
        .bind(now)
}

/// How many of `corrector`'s author corrections wait in review, counting
/// those labelled in the 24 hours before `now` (`None`: a corrector whose
/// account is gone, counted together).
async fn held_for_review(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    corrector: Option<i64>,
    now: i64,
) -> Result<u64> {
    const DAY_MS: i64 = 24 * 3600 * 1000;
    let who = if corrector.is_some() {
        "corrected_by = ?"
    } else {
        "corrected_by IS NULL"
    };
    let sql = format!(
        "SELECT COUNT(*) AS n FROM training_samples WHERE {who} AND status = 'review' \
         AND status_reason = 'author_correction' AND updated_at >= ?"
    );
    let mut query = sqlx::query(&sql);
    if let Some(id) = corrector {
        query = query.bind(id);
    }
    let n: i64 = query
        .bind(now.saturating_sub(DAY_MS))
        .fetch_one(&mut **tx)
        .await?
        .try_get("n")?;
    Ok(u64::try_from(n).unwrap_or(0))
}

/// Sets the comment's labelling state unless it changed since it was read.
async fn finish_comment(
    tx: &mut sqlx::Transaction<'_, sqlx::Any>,
    comment: &PendingComment,
    state: CommentState,
) -> Result<bool> {
    let done = sqlx::query(
        "UPDATE comments SET label_state = ?, label_after = NULL WHERE id = ? AND label_state IS NULL AND updated_at = ?",
    )
    .bind(state.as_str())
    .bind(comment.id)
    .bind(comment.version)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(done == 1)
}
