//! Micro-batching: concurrent requests queue up (bounded), a collector gathers
//! them into one batch (up to `max_batch` texts, waiting at most `max_wait`
//! after the first), and a bounded pool of blocking threads runs the forward
//! passes. A full queue refuses at once instead of growing.

use std::sync::Arc;
use std::time::Duration;

use bloginfer_model::Prediction;
use tokio::sync::{mpsc, oneshot, Semaphore};
use tokio::time::Instant;

use crate::error::InferError;
use crate::metrics::Metrics;
use crate::store::ModelStore;

/// Batching and queueing limits.
#[derive(Debug, Clone)]
pub struct BatchConfig {
    /// Texts per forward pass.
    pub max_batch: usize,
    /// How long the first request of a batch may wait for company.
    pub max_wait: Duration,
    /// Requests that may wait; beyond this the service answers 503.
    pub queue_capacity: usize,
    /// Forward passes running at once (blocking threads).
    pub compute_workers: usize,
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
    metrics: Arc<Metrics>,
}

impl Batcher {
    /// Starts the collector task on the current runtime.
    pub fn start(config: BatchConfig, store: Arc<ModelStore>, metrics: Arc<Metrics>) -> Self {
        let capacity = config.queue_capacity.max(1);
        let (tx, rx) = mpsc::channel(capacity);
        tokio::spawn(collect(config, rx, store, metrics.clone()));
        Self {
            tx,
            capacity,
            metrics,
        }
    }

    /// Predicts `texts` as part of some batch.
    pub async fn predict(&self, texts: Vec<String>) -> Result<Scored, InferError> {
        let (reply, rx) = oneshot::channel();
        self.tx
            .try_send(Job { texts, reply })
            .map_err(|e| match e {
                mpsc::error::TrySendError::Full(_) => InferError::Overloaded,
                mpsc::error::TrySendError::Closed(_) => InferError::ShuttingDown,
            })?;
        self.metrics
            .queue_depth
            .set((self.capacity - self.tx.capacity()) as i64);
        rx.await.map_err(|_| InferError::ShuttingDown)?
    }
}

async fn collect(
    config: BatchConfig,
    mut rx: mpsc::Receiver<Job>,
    store: Arc<ModelStore>,
    metrics: Arc<Metrics>,
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
        metrics.queue_depth.set(rx.len() as i64);
        let (store, metrics) = (store.clone(), metrics.clone());
        tokio::task::spawn_blocking(move || {
            let _permit = permit;
            run_batch(&store, &metrics, jobs);
        });
    }
}

fn run_batch(store: &ModelStore, metrics: &Metrics, jobs: Vec<Job>) {
    let Some(model) = store.get() else {
        for job in jobs {
            let _ = job.reply.send(Err(InferError::NotReady));
        }
        return;
    };
    let texts: Vec<&str> = jobs
        .iter()
        .flat_map(|j| j.texts.iter().map(String::as_str))
        .collect();
    metrics.batch_size.observe(texts.len() as f64);
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
            tracing::error!("prediction failed: {e}");
            for job in jobs {
                let _ = job.reply.send(Err(InferError::Prediction(e.to_string())));
            }
        }
    }
}
