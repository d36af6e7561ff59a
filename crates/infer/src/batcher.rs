//! Micro-batching: concurrent requests queue up (bounded), a collector gathers
//! them into one batch (up to `max_batch` texts, waiting at most `max_wait`
//! after the first), and a bounded pool of blocking threads runs the forward
//! passes. A full queue refuses at once instead of growing, and so does one
//! whose requests hold more text than a byte budget: a count alone let a
//! thousand requests of a mebibyte each wait.

use std::sync::Arc;
use std::time::Duration;

use bloginfer_model::{ModelFollower, Prediction};
use bloginfer_service::CancellationToken;
use tokio::sync::{mpsc, oneshot, Mutex, Semaphore};
use tokio::time::Instant;

use crate::error::InferError;
use crate::metrics::Metrics;

/// Batching and queueing limits.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Texts per forward pass.
    pub max_batch: usize,
    /// How long the first request of a batch may wait for company.
    pub max_wait: Duration,
    /// Requests that may wait; beyond this the service answers 503.
    pub queue_capacity: usize,
    /// Bytes of text that requests may hold while they wait or are computed
    /// (counted per request as its texts plus a small overhead per text, in
    /// KiB); beyond this the service answers 503. A request larger than the
    /// whole budget is admitted only alone.
    pub queue_bytes: usize,
    /// Forward passes running at once (blocking threads).
    pub compute_workers: usize,
}

impl BatchConfig {
    /// The default byte budget: 64 MiB of queued text, a bounded share of a
    /// 512 MiB pod beside the model and the bodies being read.
    pub const DEFAULT_QUEUE_BYTES: usize = 64 << 20;
}

/// Predictions for one request, with the version that made them.
#[derive(Debug, Clone)]
pub struct Scored {
    /// Registry version of the model used.
    pub version: String,
    /// One prediction per text, in order.
    pub predictions: Vec<Prediction>,
}

struct Job {
    texts: Vec<String>,
    reply: oneshot::Sender<Result<Scored, InferError>>,
}

/// The entry point of the batching pipeline.
#[derive(Clone)]
pub struct Batcher {
    tx: mpsc::Sender<Job>,
    capacity: usize,
    /// The byte budget in KiB permits, held by a request until it is answered.
    budget: Arc<Semaphore>,
    budget_kib: u32,
    metrics: Arc<Metrics>,
}

/// What a text costs beyond its bytes: the `String` and its share of the
/// batch's bookkeeping.
const PER_TEXT_OVERHEAD: usize = 64;

/// The KiB of budget `texts` take (at least 1, at most the whole budget).
fn cost_kib(texts: &[String], budget_kib: u32) -> u32 {
    let bytes: usize = texts.iter().map(|t| t.len() + PER_TEXT_OVERHEAD).sum();
    u32::try_from(bytes.div_ceil(1024))
        .unwrap_or(u32::MAX)
        .clamp(1, budget_kib)
}

/// The other end: gathers queued requests into batches and runs them. It is a
/// background task of the service; the queue outlives a restart of it.
#[derive(Clone)]
pub struct Collector {
    config: BatchConfig,
    rx: Arc<Mutex<mpsc::Receiver<Job>>>,
    follower: Arc<ModelFollower>,
    metrics: Arc<Metrics>,
}

impl Batcher {
    /// The queue and its collector (which runs once spawned).
    pub fn new(
        config: BatchConfig,
        follower: Arc<ModelFollower>,
        metrics: Arc<Metrics>,
    ) -> (Self, Collector) {
        let capacity = config.queue_capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        // KiB in a u32 (up to 4 TiB) stay far below a semaphore's maximum.
        let budget_kib = u32::try_from(config.queue_bytes.div_ceil(1024))
            .unwrap_or(u32::MAX)
            .max(1);
        let batcher = Self {
            tx,
            capacity,
            budget: Arc::new(Semaphore::new(
                usize::try_from(budget_kib).unwrap_or(usize::MAX),
            )),
            budget_kib,
            metrics: metrics.clone(),
        };
        let collector = Collector {
            config,
            rx: Arc::new(Mutex::new(rx)),
            follower,
            metrics,
        };
        (batcher, collector)
    }

    /// Predicts `texts` as part of some batch; refuses at once
    /// ([`InferError::Overloaded`]) when the queue is full or its byte budget spent.
    pub async fn predict(&self, texts: Vec<String>) -> Result<Scored, InferError> {
        // Held until the answer (or the request's end): the texts live that long.
        let _bytes = self
            .budget
            .clone()
            .try_acquire_many_owned(cost_kib(&texts, self.budget_kib))
            .map_err(|_| InferError::Overloaded)?;
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Job { texts, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => InferError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => InferError::ShuttingDown,
            })?;
        let waiting = self.capacity.saturating_sub(self.tx.capacity());
        self.metrics
            .queue_depth
            .set(i64::try_from(waiting).unwrap_or(i64::MAX));
        rx.await.map_err(|_| InferError::ShuttingDown)?
    }
}

impl Collector {
    /// Runs batches until `token` is cancelled (after the server drained).
    pub async fn run(self, token: CancellationToken) {
        let mut rx = self.rx.lock().await;
        tokio::select! {
            () = token.cancelled() => {}
            () = collect(&self.config, &mut rx, &self.follower, &self.metrics) => {}
        }
    }
}

async fn collect(
    config: &BatchConfig,
    rx: &mut mpsc::Receiver<Job>,
    follower: &Arc<ModelFollower>,
    metrics: &Arc<Metrics>,
) {
    let max_batch = config.max_batch.max(1);
    let pool = Arc::new(Semaphore::new(config.compute_workers.max(1)));
    while let Some(first) = rx.recv().await {
        let mut size = first.texts.len();
        let mut jobs = vec![first];
        let window = Instant::now() + config.max_wait;
        while size < max_batch {
            match tokio::time::timeout_at(window, rx.recv()).await {
                Ok(Some(job)) => {
                    size += job.texts.len();
                    jobs.push(job);
                }
                _ => break,
            }
        }
        // Keep filling the batch while every compute thread is busy.
        let permit = loop {
            tokio::select! {
                biased;
                permit = pool.clone().acquire_owned() => break permit,
                job = rx.recv(), if size < max_batch => match job {
                    Some(job) => {
                        size += job.texts.len();
                        jobs.push(job);
                    }
                    None => break pool.clone().acquire_owned().await,
                },
            }
        };
        let Ok(permit) = permit else { return };
        metrics
            .queue_depth
            .set(i64::try_from(rx.len()).unwrap_or(i64::MAX));
        let (follower, metrics) = (follower.clone(), metrics.clone());
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            run_batch(&follower, &metrics, jobs);
        });
    }
}

fn run_batch(follower: &ModelFollower, metrics: &Metrics, jobs: Vec<Job>) {
    let Some(model) = follower.get() else {
        for job in jobs {
            let _ = job.reply.send(Err(InferError::NotReady));
        }
        return;
    };
    let texts: Vec<&str> = jobs
        .iter()
        .flat_map(|j| j.texts.iter().map(String::as_str))
        .collect();
    metrics
        .batch_size
        .observe(f64::from(u32::try_from(texts.len()).unwrap_or(u32::MAX)));
    match model.predictor.predict(&texts) {
        Ok(predictions) => {
            let mut rest = predictions.into_iter();
            for job in jobs {
                let mine: Vec<Prediction> = rest.by_ref().take(job.texts.len()).collect();
                let _ = job.reply.send(Ok(Scored {
                    version: model.version.clone(),
                    predictions: mine,
                }));
            }
        }
        Err(e) => {
            // Logged once per request through the 5xx cause.
            for job in jobs {
                let _ = job.reply.send(Err(InferError::Prediction(e.to_string())));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_request_costs_its_bytes_in_kib_within_the_budget() {
        assert_eq!(cost_kib(&["a".to_string()], 1024), 1);
        assert_eq!(cost_kib(&["a".repeat(10 * 1024)], 1024), 11);
        let many = vec!["好".to_string(); 100];
        assert_eq!(cost_kib(&many, 1024), 7, "100 x (3 + 64) bytes");
        assert_eq!(
            cost_kib(&["a".repeat(1 << 20)], 256),
            256,
            "alone, never refused forever"
        );
    }
}
