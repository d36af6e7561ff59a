//! Terminal progress for training, drawn with indicatif (hidden when stderr is not a terminal).

use bloginfer_model::train::{EpochRecord, Progress};
use indicatif::{ProgressBar, ProgressStyle};
use std::time::Instant;

/// A progress bar per epoch showing loss and throughput, and one line per finished epoch.
pub struct EpochBars {
    bar: Option<ProgressBar>,
    epochs: usize,
    started: Instant,
    samples: usize,
    loss_ema: Option<f32>,
}

impl EpochBars {
    /// Bars for a run of at most `epochs` epochs.
    pub fn new(epochs: usize) -> Self {
        Self {
            bar: None,
            epochs,
            started: Instant::now(),
            samples: 0,
            loss_ema: None,
        }
    }
}

impl Progress for EpochBars {
    fn epoch_start(&mut self, epoch: usize, batches: usize, _samples: usize) {
        let bar = ProgressBar::new(batches as u64);
        bar.set_style(
            ProgressStyle::with_template(
                "{prefix} [{bar:30}] {pos}/{len} batches  {msg}  eta {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar.set_prefix(format!("epoch {epoch}/{}", self.epochs));
        self.bar = Some(bar);
        self.started = Instant::now();
        self.samples = 0;
    }

    fn batch_done(&mut self, loss: f32, samples: usize) {
        self.samples += samples;
        let ema = self.loss_ema.map_or(loss, |e| 0.95 * e + 0.05 * loss);
        self.loss_ema = Some(ema);
        if let Some(bar) = &self.bar {
            let rate = self.samples as f64 / self.started.elapsed().as_secs_f64().max(1e-9);
            bar.set_message(format!("loss {ema:.4}  {rate:.0} samples/s"));
            bar.inc(1);
        }
    }

    fn epoch_end(&mut self, r: &EpochRecord) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
        eprintln!(
            "epoch {:>2}: train loss {:.4}  val loss {:.4}  val accuracy {:.4}  macro-F1 {:.4}  ({:.1} s, {:.0} samples/s)",
            r.epoch, r.train_loss, r.val_loss, r.val_accuracy, r.val_macro_f1, r.seconds, r.samples_per_sec
        );
    }
}
