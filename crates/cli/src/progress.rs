//! Terminal progress of training, drawn with indicatif (hidden when stderr is
//! not a terminal): epochs of central training, rounds of a federated run.

use std::time::{Duration, Instant};

use bloginfer_fl::launcher::LaunchProgress;
use bloginfer_fl::protocol::RunStatus;
use bloginfer_model::train::{EpochRecord, Progress};
use indicatif::{ProgressBar, ProgressStyle};

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
        let bar = ProgressBar::new(u64::try_from(batches).unwrap_or(u64::MAX));
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

/// A bar over a federated run's rounds, and one line per finished round.
pub struct RoundBar {
    bar: ProgressBar,
}

impl RoundBar {
    /// A bar for a run of `rounds` rounds.
    pub fn new(rounds: u32) -> Self {
        let bar = ProgressBar::new(u64::from(rounds));
        bar.set_style(
            ProgressStyle::with_template("{prefix} [{bar:30}] {pos}/{len} rounds  {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_bar())
                .progress_chars("=> "),
        );
        bar.set_prefix("federated");
        Self { bar }
    }

    /// Removes the bar from the terminal once the run is over.
    pub fn finish(&self) {
        self.bar.finish_and_clear();
    }
}

fn fmt_opt(v: Option<f64>) -> String {
    v.map_or("-".into(), |v| format!("{v:.4}"))
}

impl LaunchProgress for RoundBar {
    fn status(&mut self, s: &RunStatus, elapsed: Duration) {
        let done = s.history.iter().filter(|r| r.round > 0).count();
        let done = u64::try_from(done).unwrap_or(u64::MAX);
        if done > self.bar.position() {
            if let Some(r) = s.history.last() {
                let line = format!(
                    "round {:>3}: {} clients  train loss {}  val accuracy {}  ({:.1} s)",
                    r.round,
                    r.clients,
                    fmt_opt(r.train_loss),
                    fmt_opt(r.val_accuracy),
                    r.seconds
                );
                // indicatif drops println when stderr is not a terminal (logs, CI).
                if self.bar.is_hidden() {
                    eprintln!("{line}");
                } else {
                    self.bar.println(line);
                }
            }
        }
        self.bar.set_position(done);
        let left = u64::from(s.rounds).saturating_sub(done);
        let eta = match elapsed.checked_div(u32::try_from(done).unwrap_or(u32::MAX)) {
            Some(per_round) if done > 0 => {
                let seconds = per_round.as_secs_f64() * f64::from(u32::try_from(left).unwrap_or(0));
                format!("eta {seconds:.0} s")
            }
            _ => "eta -".to_string(),
        };
        let last = s.history.last();
        self.bar.set_message(format!(
            "round {} {}: {}/{} reported  loss {}  acc {}  {eta}",
            s.round,
            s.phase,
            s.reported,
            s.selected,
            fmt_opt(last.and_then(|r| r.train_loss)),
            fmt_opt(last.and_then(|r| r.val_accuracy)),
        ));
    }
}
