//! Comment sentiment from the inference service, over its HTTP contract
//! (`POST /v1/sentiment/batch`), with a short timeout: commenting never waits
//! long for it, and a background loop back-fills what was missed.

use std::time::Duration;

use serde::Deserialize;
use sqlx::Row;

use crate::AppState;

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

    /// Scores `texts` (at most 256), or says why not.
    pub async fn score(&self, texts: &[String]) -> Result<Vec<Scored>, String> {
        let resp = self
            .http
            .post(&self.url)
            .json(&serde_json::json!({ "texts": texts }))
            .send()
            .await
            .map_err(|e| format!("inference unreachable: {e}"))?;
        if !resp.status().is_success() {
            return Err(format!("inference answered {}", resp.status()));
        }
        let answer: BatchAnswer = resp
            .json()
            .await
            .map_err(|e| format!("unexpected inference answer: {e}"))?;
        if answer.results.len() != texts.len() {
            return Err("inference answered the wrong number of results".into());
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

/// Scores up to 64 comments still without sentiment; returns how many got one.
pub async fn backfill_once(state: &AppState, client: &SentimentClient) -> Result<usize, String> {
    let rows = sqlx::query(
        "SELECT id, body FROM comments WHERE sentiment_source IS NULL ORDER BY id LIMIT 64",
    )
    .fetch_all(state.db.read())
    .await
    .map_err(|e| e.to_string())?;
    if rows.is_empty() {
        return Ok(0);
    }
    let mut ids = Vec::with_capacity(rows.len());
    let mut texts = Vec::with_capacity(rows.len());
    for row in &rows {
        ids.push(row.try_get::<i64, _>("id").map_err(|e| e.to_string())?);
        texts.push(
            crate::db::text(row, "body")
                .map_err(|e| e.to_string())?
                .unwrap_or_default(),
        );
    }
    let scored = client.score(&texts).await?;
    for (id, s) in ids.iter().zip(&scored) {
        store(state, *id, s).await.map_err(|e| e.to_string())?;
    }
    Ok(scored.len())
}

/// One round of the back-fill loop (which [`crate::Blog`] runs under the
/// host's supervisor): what it did goes to the log, and a failure only
/// postpones the comments to the next round.
pub(crate) async fn backfill_and_log(state: &AppState, client: &SentimentClient) {
    match backfill_once(state, client).await {
        Ok(0) => {}
        Ok(n) => tracing::info!(comments = n, "back-filled comment sentiment"),
        Err(e) => tracing::debug!("sentiment back-fill postponed: {e}"),
    }
}
