//! Prometheus metrics and the rolling request statistics behind
//! `GET /v1/sentiment/stats`.

use std::collections::VecDeque;
use std::sync::atomic::AtomicU64;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use bloginfer_service::common::lock;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use serde::Serialize;

/// A model version label.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct VersionLabel {
    /// The registry version served.
    pub version: String,
}

/// Outcome of a reload.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ReloadLabel {
    /// `success` or `failure`.
    pub result: String,
}

/// How far back `/v1/sentiment/stats` looks.
const WINDOW: Duration = Duration::from_secs(60);
/// Most samples kept for it.
const WINDOW_SAMPLES: usize = 20_000;

/// The inference service's own metrics (request counts and latency are the
/// chassis's), and the rolling window behind `/v1/sentiment/stats`.
pub struct Metrics {
    /// Texts per forward pass.
    pub batch_size: Histogram,
    /// Requests waiting for a batch.
    pub queue_depth: Gauge,
    /// 1 for the version being served.
    pub model_version: Family<VersionLabel, Gauge>,
    /// Reload attempts by result.
    pub reloads: Family<ReloadLabel, Counter>,
    recent: Mutex<VecDeque<(Instant, f32)>>,
    total_predictions: AtomicU64,
}

/// What `GET /v1/sentiment/stats` answers.
#[derive(Debug, Clone, Serialize)]
pub struct Stats {
    /// Prediction requests served since start.
    pub requests_total: u64,
    /// Prediction requests per second over the last minute.
    pub requests_per_second: f64,
    /// Latency percentiles over the last minute, in milliseconds.
    pub latency_ms: Percentiles,
    /// The registry version being served, if a model is loaded.
    pub model_version: Option<String>,
}

/// Latency percentiles of the last minute's predictions, in milliseconds.
#[derive(Debug, Clone, Serialize)]
pub struct Percentiles {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
}

impl Metrics {
    /// Empty metrics, registered nowhere yet.
    pub fn new() -> Self {
        Self {
            batch_size: Histogram::new(exponential_buckets(1.0, 2.0, 10)),
            queue_depth: Gauge::default(),
            model_version: Family::default(),
            reloads: Family::default(),
            recent: Mutex::new(VecDeque::new()),
            total_predictions: AtomicU64::new(0),
        }
    }

    /// Registers them in `registry` (the host prefixes `bloginfer_infer_`).
    pub fn register(&self, registry: &mut Registry) {
        registry.register(
            "batch_size",
            "Texts per forward pass",
            self.batch_size.clone(),
        );
        registry.register(
            "queue_depth",
            "Requests waiting for a batch",
            self.queue_depth.clone(),
        );
        registry.register(
            "model_version",
            "1 for the model version being served",
            self.model_version.clone(),
        );
        registry.register(
            "model_reloads",
            "Model reload attempts by result",
            self.reloads.clone(),
        );
    }

    /// Records a finished prediction request (for the dashboard's rolling numbers).
    pub fn record_prediction(&self, elapsed: Duration) {
        self.total_predictions
            .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut recent = lock(&self.recent);
        let now = Instant::now();
        recent.push_back((now, elapsed.as_secs_f32() * 1000.0));
        while recent.len() > WINDOW_SAMPLES
            || recent
                .front()
                .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            recent.pop_front();
        }
    }

    /// Counts a reload attempt as a `success` or a `failure`.
    pub fn reload(&self, success: bool) {
        let result = if success { "success" } else { "failure" };
        self.reloads
            .get_or_create(&ReloadLabel {
                result: result.into(),
            })
            .inc();
    }

    /// Marks `version` as the one served (and `previous` as not).
    pub fn serving(&self, version: &str, previous: Option<&str>) {
        if let Some(p) = previous {
            self.model_version
                .get_or_create(&VersionLabel { version: p.into() })
                .set(0);
        }
        self.model_version
            .get_or_create(&VersionLabel {
                version: version.into(),
            })
            .set(1);
    }

    /// Rolling statistics for the dashboard.
    pub fn stats(&self, model_version: Option<String>) -> Stats {
        let recent = lock(&self.recent);
        let now = Instant::now();
        let mut latencies: Vec<f32> = recent
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= WINDOW)
            .map(|(_, ms)| *ms)
            .collect();
        let span = recent
            .front()
            .map_or(0.0, |(t, _)| now.duration_since(*t).as_secs_f64())
            .clamp(1.0, WINDOW.as_secs_f64());
        latencies.sort_unstable_by(f32::total_cmp);
        let pct = |q: f64| -> f64 {
            if latencies.is_empty() {
                return 0.0;
            }
            // q is a quantile in [0, 1]: the rank is a small non-negative count.
            #[allow(clippy::cast_possible_truncation, clippy::cast_sign_loss)]
            let i = ((q * latencies.len() as f64).ceil() as usize).clamp(1, latencies.len()) - 1;
            f64::from(latencies[i])
        };
        Stats {
            requests_total: self
                .total_predictions
                .load(std::sync::atomic::Ordering::Relaxed),
            requests_per_second: latencies.len() as f64 / span,
            latency_ms: Percentiles {
                p50: pct(0.50),
                p95: pct(0.95),
                p99: pct(0.99),
            },
            model_version,
        }
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}
