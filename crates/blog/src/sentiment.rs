//! Comment sentiment from the inference service, over its HTTP contract
//! (`POST /v1/sentiment/batch`), with a short timeout: commenting never waits
//! long for it, and a background loop back-fills what was missed.
//!
//! The back-fill sends pending comments in batches bounded in bytes as well
//! as in texts, so together they never exceed inference's body limit; a batch
//! that inference refuses for its content is split until the refused comment
//! is alone, and a comment refused alone is marked (`sentiment_attempts`) and
//! skipped from then on, so one bad comment never stops the others.

use std::time::Duration;

use reqwest::StatusCode;
use serde::Deserialize;
use sqlx::Row;

use crate::AppState;

/// Most bytes of one batch request's body: a quarter of the inference
/// service's default limit (`--max-body-kib`, 1024), so a deployment that
/// lowers it still takes our batches, and a refusal costs little to split.
const BATCH_MAX_BYTES: usize = 256 * 1024;
/// Most texts in one batch request (inference takes 256).
const BATCH_MAX_TEXTS: usize = 64;
/// Pending comments one back-fill round reads.
const ROUND_MAX_COMMENTS: i64 = 64;
/// After this many refusals of a comment on its own, it is skipped for good.
pub const MAX_ATTEMPTS: i64 = 3;
/// The JSON around the texts: `{"texts":[` and `]}`.
const ENVELOPE_BYTES: usize = 12;

/// A model's answer for one text.
#[derive(Debug, Clone, Deserialize)]
pub struct Scored {
    /// `positive` or `negative`.
    pub label: String,
    /// The model's probability that the text is positive.
    pub score: f64,
    /// The model version that answered, stored with the label so that a
    /// comment's sentiment can be traced to the model that gave it.
    pub model_version: String,
}

#[derive(Deserialize)]
struct BatchAnswer {
    results: Vec<Scored>,
}

/// Why texts were not scored.
#[derive(Debug, thiserror::Error)]
pub enum ScoreError {
    /// No answer in time, or no connection.
    #[error("inference unreachable: {0}")]
    Unreachable(#[source] reqwest::Error),
    /// Inference answered with an error status.
    #[error("inference answered {0}")]
    Status(StatusCode),
    /// The answer is not what the contract promises.
    #[error("unexpected inference answer: {0}")]
    Malformed(String),
}

impl ScoreError {
    /// How much a refusal of one text alone says about that text: 413 (too
    /// large) and 422 (e.g. nothing to score) will never change, so the text
    /// is given up at once; a 500 may be this text breaking the model, or a
    /// passing fault, so it counts one attempt. Anything else (unreachable,
    /// 503 overloaded or not ready, 404 from a wrong URL) says nothing about
    /// the text: the round stops and the texts wait.
    fn attempts_charged(&self) -> Option<i64> {
        match self {
            Self::Status(StatusCode::PAYLOAD_TOO_LARGE | StatusCode::UNPROCESSABLE_ENTITY) => {
                Some(MAX_ATTEMPTS)
            }
            Self::Status(StatusCode::INTERNAL_SERVER_ERROR) => Some(1),
            _ => None,
        }
    }
}

/// Client of the inference service.
#[derive(Clone)]
pub struct SentimentClient {
    http: reqwest::Client,
    url: String,
}

impl SentimentClient {
    /// A client of the service at `base_url` that gives up after `timeout`.
    pub fn new(base_url: &str, timeout: Duration) -> Result<Self, String> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .pool_idle_timeout(bloginfer_service::CLIENT_POOL_IDLE_TIMEOUT)
            .build()
            .map_err(|e| format!("cannot build the HTTP client: {e}"))?;
        Ok(Self {
            http,
            url: format!("{}/v1/sentiment/batch", base_url.trim_end_matches('/')),
        })
    }

    /// Scores `texts` (at most 256, within inference's body limit), in order.
    pub async fn score(&self, texts: &[String]) -> Result<Vec<Scored>, ScoreError> {
        let resp = self
            .http
            .post(&self.url)
            .json(&serde_json::json!({ "texts": texts }))
            .send()
            .await
            .map_err(ScoreError::Unreachable)?;
        if !resp.status().is_success() {
            return Err(ScoreError::Status(resp.status()));
        }
        let answer: BatchAnswer = resp
            .json()
            .await
            .map_err(|e| ScoreError::Malformed(e.to_string()))?;
        if answer.results.len() != texts.len() {
            return Err(ScoreError::Malformed(format!(
                "{} results for {} texts",
                answer.results.len(),
                texts.len()
            )));
        }
        Ok(answer.results)
    }
}

/// Stores a model's sentiment unless the comment already has one (a human
/// correction is never overwritten by the model), and drops the cached list.
pub async fn store(state: &AppState, comment: i64, s: &Scored) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE comments SET sentiment_label = ?, sentiment_score = ?, sentiment_model_version = ?, \
         sentiment_source = 'model' WHERE id = ? AND sentiment_source IS NULL",
    )
    .bind(&s.label)
    .bind(s.score)
    .bind(&s.model_version)
    .bind(comment)
    .execute(state.db.write())
    .await?;
    let article: Option<i64> = sqlx::query("SELECT article_id FROM comments WHERE id = ?")
        .bind(comment)
        .fetch_optional(state.db.read())
        .await?
        .map(|r| r.try_get("article_id"))
        .transpose()?;
    if let Some(article) = article {
        state
            .cache
            .invalidate(&crate::cache::comments_key(article), &state.metrics)
            .await;
    }
    Ok(())
}

/// Why a back-fill round stopped early.
#[derive(Debug, thiserror::Error)]
pub enum BackfillError {
    /// Inference cannot score now; the comments wait for the next round.
    #[error(transparent)]
    Inference(#[from] ScoreError),
    /// The database failed.
    #[error("database: {0}")]
    Database(#[from] sqlx::Error),
}

/// A pending comment.
struct Pending {
    id: i64,
    text: String,
}

/// What one back-fill round did.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Backfilled {
    /// Comments that got a sentiment.
    pub scored: usize,
    /// Comments inference refused on their own (counted in `sentiment_attempts`).
    pub refused: usize,
}

/// Scores up to 64 pending comments (no sentiment, not given up), in batches
/// within inference's limits, isolating and marking any it refuses.
pub async fn backfill_once(
    state: &AppState,
    client: &SentimentClient,
) -> Result<Backfilled, BackfillError> {
    let rows = sqlx::query(
        "SELECT id, body FROM comments WHERE sentiment_source IS NULL AND sentiment_attempts < ? \
         ORDER BY id LIMIT ?",
    )
    .bind(MAX_ATTEMPTS)
    .bind(ROUND_MAX_COMMENTS)
    .fetch_all(state.db.read())
    .await?;
    let mut pending = Vec::with_capacity(rows.len());
    for row in &rows {
        pending.push(Pending {
            id: row.try_get("id")?,
            text: crate::db::text(row, "body")?.unwrap_or_default(),
        });
    }
    let mut done = Backfilled::default();
    for batch in batches(&pending) {
        // Depth first, in order: a refused batch is split in halves until the
        // refused comment is alone.
        let mut parts = vec![batch];
        while let Some(part) = parts.pop() {
            let texts: Vec<String> = part.iter().map(|p| p.text.clone()).collect();
            match client.score(&texts).await {
                Ok(scored) => {
                    for (p, s) in part.iter().zip(&scored) {
                        store(state, p.id, s).await?;
                    }
                    done.scored += scored.len();
                }
                Err(e) => match (e.attempts_charged(), part) {
                    (Some(charge), [one]) => {
                        refused(state, one.id, charge).await?;
                        tracing::warn!(comment = one.id, "inference refused a comment: {e}");
                        done.refused += 1;
                    }
                    (Some(_), _) => {
                        let (head, tail) = part.split_at(part.len() / 2);
                        parts.push(tail);
                        parts.push(head);
                    }
                    (None, _) => return Err(e.into()),
                },
            }
        }
    }
    Ok(done)
}

/// Counts `charge` refusals against a comment (capped at [`MAX_ATTEMPTS`],
/// after which the back-fill skips it).
async fn refused(state: &AppState, comment: i64, charge: i64) -> Result<(), sqlx::Error> {
    sqlx::query(
        "UPDATE comments SET sentiment_attempts = CASE WHEN sentiment_attempts + ? > ? THEN ? \
         ELSE sentiment_attempts + ? END WHERE id = ?",
    )
    .bind(charge)
    .bind(MAX_ATTEMPTS)
    .bind(MAX_ATTEMPTS)
    .bind(charge)
    .bind(comment)
    .execute(state.db.write())
    .await?;
    Ok(())
}

/// `pending` cut, in order, into batches of at most [`BATCH_MAX_TEXTS`] texts
/// whose request body stays within [`BATCH_MAX_BYTES`] (a text larger than
/// that alone goes alone, and inference decides).
fn batches(pending: &[Pending]) -> Vec<&[Pending]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0, ENVELOPE_BYTES);
    for (i, p) in pending.iter().enumerate() {
        let size = json_len(&p.text) + 1; // and its comma
        if i > start && (bytes + size > BATCH_MAX_BYTES || i - start == BATCH_MAX_TEXTS) {
            out.push(&pending[start..i]);
            (start, bytes) = (i, ENVELOPE_BYTES);
        }
        bytes += size;
    }
    if start < pending.len() {
        out.push(&pending[start..]);
    }
    out
}

/// The length of `text` as a JSON string, quotes included, as serde_json
/// writes it (a control character other than the short escapes is six bytes:
/// ten kilobytes of them are sixty on the wire).
fn json_len(text: &str) -> usize {
    2 + text
        .chars()
        .map(|c| match c {
            '"' | '\\' | '\n' | '\r' | '\t' | '\u{8}' | '\u{c}' => 2,
            c if c < ' ' => 6,
            c => c.len_utf8(),
        })
        .sum::<usize>()
}

/// One round of the back-fill loop (which [`crate::Blog`] runs under the
/// host's supervisor): what it did goes to the log, and a failure only
/// postpones the comments to the next round.
pub(crate) async fn backfill_and_log(state: &AppState, client: &SentimentClient) {
    match backfill_once(state, client).await {
        Ok(Backfilled {
            scored: 0,
            refused: 0,
        }) => {}
        Ok(done) => tracing::info!(
            comments = done.scored,
            refused = done.refused,
            "back-filled comment sentiment"
        ),
        Err(e) => tracing::debug!("sentiment back-fill postponed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn json_lengths_match_serde() {
        for text in [
            "",
            "plain",
            "引号\"和\\",
            "\u{1}\u{1f}\n\t\r\u{8}\u{c}\u{7f}",
            "😀",
        ] {
            let encoded = serde_json::to_string(text).expect("json");
            assert_eq!(json_len(text), encoded.len(), "{text:?}");
        }
    }

    #[test]
    fn batches_stay_within_bytes_and_texts_and_keep_order() {
        let pending: Vec<Pending> = (0..40)
            .map(|i| Pending {
                id: i,
                text: "\u{1}".repeat(10 * 1024),
            })
            .collect();
        let cut = batches(&pending);
        assert!(cut.len() > 1);
        let ids: Vec<i64> = cut.iter().flat_map(|b| b.iter().map(|p| p.id)).collect();
        assert_eq!(ids, (0..40).collect::<Vec<_>>());
        for batch in &cut {
            let texts: Vec<&str> = batch.iter().map(|p| p.text.as_str()).collect();
            let body = serde_json::json!({ "texts": texts }).to_string();
            assert!(body.len() <= BATCH_MAX_BYTES, "{}", body.len());
        }
        let small: Vec<Pending> = (0..200)
            .map(|i| Pending {
                id: i,
                text: "好".into(),
            })
            .collect();
        assert!(batches(&small).iter().all(|b| b.len() <= BATCH_MAX_TEXTS));
        let huge = [Pending {
            id: 1,
            text: "x".repeat(BATCH_MAX_BYTES * 2),
        }];
        assert_eq!(batches(&huge).len(), 1, "alone, for inference to judge");
        assert!(batches(&[]).is_empty());
    }
}
