//! Training runs in the database (`training_runs`): every run, its phase,
//! per-round metrics, the candidate it produced and the promotion decision.

use serde::{Deserialize, Serialize};
use sqlx::any::AnyRow;
use sqlx::Row;

use bloginfer_db::Db;

use crate::error::{OrchestratorError, Result};

/// Where a run stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Status {
    /// Accepted, not started yet.
    Pending,
    /// Preparing data, training, evaluating or promoting.
    Running,
    /// Finished (promoted or not: see `promoted` and `decision`).
    Succeeded,
    /// Stopped by an error.
    Failed,
    /// Stopped on request.
    Cancelled,
}

impl Status {
    /// Its name in the database and the API: `pending`, `running`, `succeeded`,
    /// `failed` or `cancelled`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Cancelled => "cancelled",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "pending" => Self::Pending,
            "running" => Self::Running,
            "succeeded" => Self::Succeeded,
            "failed" => Self::Failed,
            "cancelled" => Self::Cancelled,
            other => return Err(OrchestratorError::Corrupt(format!("run status {other:?}"))),
        })
    }

    /// Whether the run is over.
    pub fn is_terminal(self) -> bool {
        matches!(self, Self::Succeeded | Self::Failed | Self::Cancelled)
    }
}

/// One round's numbers, as the dashboard charts them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundMetric {
    /// 1-based round (0: the initial weights).
    pub round: u32,
    /// Updates that went into the round's aggregate.
    pub clients: usize,
    /// Sample-weighted mean local training loss.
    pub train_loss: Option<f64>,
    /// Validation loss after the round.
    pub val_loss: Option<f64>,
    /// Validation accuracy after the round.
    pub val_accuracy: Option<f64>,
    /// Validation macro-F1 after the round.
    pub val_macro_f1: Option<f64>,
    /// Wall time of the round.
    pub seconds: f64,
    /// The aggregator saw only the sum of the round's updates.
    #[serde(default)]
    pub secure: bool,
    /// Differential privacy spent up to this round (ε at `delta`), under DP.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub epsilon: Option<f64>,
    /// The δ of `epsilon`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub delta: Option<f64>,
}

/// Training examples in one worker's shard.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSamples {
    /// Worker id (its shard index).
    pub worker_id: String,
    /// Examples in its shard.
    pub samples: u64,
}

/// A training run as stored.
#[derive(Debug, Clone, Serialize)]
pub struct Run {
    /// Run id (also the Kubernetes label value and the run directory's name).
    pub id: String,
    /// Where it stands: waiting, running, or how it ended.
    pub status: Status,
    /// Finer step: `queued`, `snapshot`, `training`, `evaluating`, `promoting`,
    /// `promoted`, `rejected`, `failed`, `cancelled`.
    pub phase: String,
    /// Who asked for it (`admin-token`, a username, `schedule`).
    pub requested_by: String,
    /// Milliseconds since the epoch.
    pub created_at: i64,
    /// When training data was snapshotted.
    pub started_at: Option<i64>,
    /// When it succeeded, failed or was cancelled (ms since the epoch).
    pub finished_at: Option<i64>,
    /// `local` or `kubernetes`.
    pub launcher: String,
    /// The federated strategy it trains with (`fedavg`, `fedprox`, ...).
    pub strategy: String,
    /// Workers it trains on, one data shard each.
    pub workers: u32,
    /// Rounds asked for.
    pub rounds: u32,
    /// Rounds aggregated so far, as the aggregator's status reports them.
    pub rounds_done: u32,
    /// Training examples over all shards.
    pub train_samples: u64,
    /// Of them, feedback samples (weak labels, corrections).
    pub feedback_samples: u64,
    /// SHA-256 of the training data.
    pub data_fingerprint: Option<String>,
    /// The model the run produced.
    pub candidate_version: Option<String>,
    /// The model that was current when it was evaluated.
    pub previous_version: Option<String>,
    /// Candidate accuracy on the evaluation split.
    pub candidate_accuracy: Option<f64>,
    /// Accuracy of `previous_version` on the same split.
    pub previous_accuracy: Option<f64>,
    /// Whether the candidate became current.
    pub promoted: bool,
    /// Why it was or was not promoted.
    pub decision: Option<String>,
    /// Why it failed.
    pub error: Option<String>,
    /// One entry per finished round (round 0: the initial weights), for the
    /// dashboard's charts.
    pub round_metrics: Vec<RoundMetric>,
    /// Examples per worker shard.
    pub worker_samples: Vec<WorkerSamples>,
    /// The launcher's handle on the run (JSON), for following it after a restart.
    #[serde(skip)]
    pub attachment: Option<serde_json::Value>,
}

impl Run {
    /// A new pending run.
    pub fn new(
        id: String,
        requested_by: String,
        launcher: &str,
        strategy: String,
        workers: u32,
        rounds: u32,
        now: i64,
    ) -> Self {
        Self {
            id,
            status: Status::Pending,
            phase: "queued".into(),
            requested_by,
            created_at: now,
            started_at: None,
            finished_at: None,
            launcher: launcher.to_string(),
            strategy,
            workers,
            rounds,
            rounds_done: 0,
            train_samples: 0,
            feedback_samples: 0,
            data_fingerprint: None,
            candidate_version: None,
            previous_version: None,
            candidate_accuracy: None,
            previous_accuracy: None,
            promoted: false,
            decision: None,
            error: None,
            round_metrics: Vec::new(),
            worker_samples: Vec::new(),
            attachment: None,
        }
    }
}

fn json<T: Serialize>(value: &T) -> Result<String> {
    serde_json::to_string(value).map_err(|e| OrchestratorError::Corrupt(e.to_string()))
}

fn from_json<T>(raw: Option<String>, what: &str) -> Result<T>
where
    T: for<'de> Deserialize<'de> + Default,
{
    match raw {
        None => Ok(T::default()),
        Some(raw) if raw.is_empty() => Ok(T::default()),
        Some(raw) => serde_json::from_str(&raw)
            .map_err(|e| OrchestratorError::Corrupt(format!("{what}: {e}"))),
    }
}

fn u32_of(row: &AnyRow, column: &str) -> Result<u32> {
    let v: i64 = row.try_get(column)?;
    u32::try_from(v).map_err(|_| OrchestratorError::Corrupt(format!("{column} = {v}")))
}

fn read(row: &AnyRow) -> Result<Run> {
    let text = |c: &str| bloginfer_db::text(row, c).map_err(OrchestratorError::from);
    Ok(Run {
        id: row.try_get("id")?,
        status: Status::parse(&row.try_get::<String, _>("status")?)?,
        phase: row.try_get("phase")?,
        requested_by: row.try_get("requested_by")?,
        created_at: row.try_get("created_at")?,
        started_at: row.try_get("started_at")?,
        finished_at: row.try_get("finished_at")?,
        launcher: row.try_get("launcher")?,
        strategy: row.try_get("strategy")?,
        workers: u32_of(row, "workers")?,
        rounds: u32_of(row, "rounds")?,
        rounds_done: u32_of(row, "rounds_done")?,
        train_samples: u64::try_from(row.try_get::<i64, _>("train_samples")?).unwrap_or(0),
        feedback_samples: u64::try_from(row.try_get::<i64, _>("feedback_samples")?).unwrap_or(0),
        data_fingerprint: row.try_get("data_fingerprint")?,
        candidate_version: row.try_get("candidate_version")?,
        previous_version: row.try_get("previous_version")?,
        candidate_accuracy: row.try_get("candidate_accuracy")?,
        previous_accuracy: row.try_get("previous_accuracy")?,
        promoted: row.try_get::<i64, _>("promoted")? != 0,
        decision: text("decision")?,
        error: text("error")?,
        round_metrics: from_json(text("round_metrics")?, "round metrics")?,
        worker_samples: from_json(text("worker_samples")?, "worker samples")?,
        attachment: from_json::<Option<serde_json::Value>>(text("attachment")?, "attachment")?,
    })
}

const COLUMNS: &str = "id, status, phase, requested_by, created_at, started_at, finished_at, launcher, \
     strategy, workers, rounds, rounds_done, train_samples, feedback_samples, data_fingerprint, \
     candidate_version, previous_version, candidate_accuracy, previous_accuracy, promoted, decision, \
     error, round_metrics, worker_samples, attachment";

/// Stores a new run.
pub async fn insert(db: &Db, run: &Run) -> Result<()> {
    sqlx::query(&format!(
        "INSERT INTO training_runs ({COLUMNS}) VALUES \
         (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)"
    ))
    .bind(&run.id)
    .bind(run.status.as_str())
    .bind(&run.phase)
    .bind(&run.requested_by)
    .bind(run.created_at)
    .bind(run.started_at)
    .bind(run.finished_at)
    .bind(&run.launcher)
    .bind(&run.strategy)
    .bind(i64::from(run.workers))
    .bind(i64::from(run.rounds))
    .bind(i64::from(run.rounds_done))
    .bind(i64::try_from(run.train_samples).unwrap_or(i64::MAX))
    .bind(i64::try_from(run.feedback_samples).unwrap_or(i64::MAX))
    .bind(&run.data_fingerprint)
    .bind(&run.candidate_version)
    .bind(&run.previous_version)
    .bind(run.candidate_accuracy)
    .bind(run.previous_accuracy)
    .bind(i64::from(run.promoted))
    .bind(&run.decision)
    .bind(&run.error)
    .bind(json(&run.round_metrics)?)
    .bind(json(&run.worker_samples)?)
    .bind(run.attachment.as_ref().map(json).transpose()?)
    .execute(db.write())
    .await?;
    Ok(())
}

/// Writes every mutable field of `run` back.
pub async fn save(db: &Db, run: &Run) -> Result<()> {
    sqlx::query(
        "UPDATE training_runs SET status = ?, phase = ?, started_at = ?, finished_at = ?, \
         rounds_done = ?, train_samples = ?, feedback_samples = ?, data_fingerprint = ?, \
         candidate_version = ?, previous_version = ?, candidate_accuracy = ?, previous_accuracy = ?, \
         promoted = ?, decision = ?, error = ?, round_metrics = ?, worker_samples = ?, attachment = ? \
         WHERE id = ?",
    )
    .bind(run.status.as_str())
    .bind(&run.phase)
    .bind(run.started_at)
    .bind(run.finished_at)
    .bind(i64::from(run.rounds_done))
    .bind(i64::try_from(run.train_samples).unwrap_or(i64::MAX))
    .bind(i64::try_from(run.feedback_samples).unwrap_or(i64::MAX))
    .bind(&run.data_fingerprint)
    .bind(&run.candidate_version)
    .bind(&run.previous_version)
    .bind(run.candidate_accuracy)
    .bind(run.previous_accuracy)
    .bind(i64::from(run.promoted))
    .bind(&run.decision)
    .bind(&run.error)
    .bind(json(&run.round_metrics)?)
    .bind(json(&run.worker_samples)?)
    .bind(run.attachment.as_ref().map(json).transpose()?)
    .bind(&run.id)
    .execute(db.write())
    .await?;
    Ok(())
}

/// The run `id`, or `None` when there is no such run.
pub async fn get(db: &Db, id: &str) -> Result<Option<Run>> {
    let row = sqlx::query(&format!("SELECT {COLUMNS} FROM training_runs WHERE id = ?"))
        .bind(id)
        .fetch_optional(db.read())
        .await?;
    row.as_ref().map(read).transpose()
}

/// The newest `limit` runs, newest first.
pub async fn recent(db: &Db, limit: i64) -> Result<Vec<Run>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM training_runs ORDER BY created_at DESC, id DESC LIMIT ?"
    ))
    .bind(limit)
    .fetch_all(db.read())
    .await?;
    rows.iter().map(read).collect()
}

/// Runs not over yet (after a restart: the ones to reconcile).
pub async fn unfinished(db: &Db) -> Result<Vec<Run>> {
    let rows = sqlx::query(&format!(
        "SELECT {COLUMNS} FROM training_runs WHERE status IN ('pending', 'running') ORDER BY created_at"
    ))
    .fetch_all(db.read())
    .await?;
    rows.iter().map(read).collect()
}

/// When the newest run not requested by `except_by` was created.
pub async fn last_created_at(db: &Db, except_by: &str) -> Result<Option<i64>> {
    let row =
        sqlx::query("SELECT MAX(created_at) AS at FROM training_runs WHERE requested_by <> ?")
            .bind(except_by)
            .fetch_one(db.read())
            .await?;
    Ok(row.try_get::<Option<i64>, _>("at")?)
}
