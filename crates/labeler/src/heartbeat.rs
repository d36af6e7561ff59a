//! The labelling loop's sign of life. The loop beats it at every step (a
//! pass begun, an LLM call sent or answered, a correction stored); readiness
//! holds its age against `stall_after`, so a loop that hangs, or a task that
//! died and is not running, turns `/readyz` red instead of staying green.

use std::sync::atomic::{AtomicI64, Ordering};
use std::time::Duration;

use bloginfer_service::common::now_millis;

/// When the loop last showed it was alive.
#[derive(Debug)]
pub struct Heartbeat {
    last: AtomicI64,
}

impl Default for Heartbeat {
    fn default() -> Self {
        Self::new()
    }
}

impl Heartbeat {
    /// A heartbeat that beat just now (a labeler being built counts as alive).
    pub fn new() -> Self {
        Self {
            last: AtomicI64::new(now_millis()),
        }
    }

    /// Records a sign of life now.
    pub fn beat(&self) {
        self.last.store(now_millis(), Ordering::Relaxed);
    }

    /// How long ago the last sign of life was (zero if the clock went back).
    pub fn age(&self) -> Duration {
        let ms = now_millis().saturating_sub(self.last.load(Ordering::Relaxed));
        Duration::from_millis(u64::try_from(ms).unwrap_or(0))
    }
}
