//! One rate limit for every call to the LLM: calls are spaced evenly, and a
//! 429's `Retry-After` pauses all of them, not just the one that was refused.

use bloginfer_service::common::lock;
use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Evenly spaced permits, shared by every caller.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Instant>,
}

impl RateLimiter {
    /// At most `per_minute` permits a minute (0 or less: no limit).
    pub fn per_minute(per_minute: f64) -> Self {
        let interval = if per_minute > 0.0 && per_minute.is_finite() {
            Duration::from_secs_f64(60.0 / per_minute)
        } else {
            Duration::ZERO
        };
        Self {
            interval,
            next: Mutex::new(Instant::now()),
        }
    }

    /// Waits for a permit.
    pub async fn acquire(&self) {
        let slot = {
            let mut next = lock(&self.next);
            let slot = (*next).max(Instant::now());
            *next = slot + self.interval;
            slot
        };
        tokio::time::sleep_until(slot).await;
    }

    /// No permit before `until`.
    pub fn pause_until(&self, until: Instant) {
        let mut next = lock(&self.next);
        if until > *next {
            *next = until;
        }
    }

    /// When the next permit is due.
    pub fn ready_at(&self) -> Instant {
        *lock(&self.next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(start_paused = true)]
    async fn permits_are_spaced_and_a_pause_holds_everyone() {
        let limiter = RateLimiter::per_minute(120.0);
        let start = Instant::now();
        let mut at = Vec::new();
        for _ in 0..4 {
            limiter.acquire().await;
            at.push(start.elapsed());
        }
        assert_eq!(at, [0, 500, 1000, 1500].map(Duration::from_millis).to_vec());
        limiter.pause_until(Instant::now() + Duration::from_secs(10));
        limiter.acquire().await;
        assert!(start.elapsed() >= Duration::from_millis(11_500));
        // A pause shorter than the schedule changes nothing.
        limiter.pause_until(Instant::now());
        assert!(limiter.ready_at() > Instant::now());
    }

    #[tokio::test(start_paused = true)]
    async fn no_limit_waits_only_for_pauses() {
        let limiter = RateLimiter::per_minute(0.0);
        let start = Instant::now();
        for _ in 0..100 {
            limiter.acquire().await;
        }
        assert_eq!(start.elapsed(), Duration::ZERO);
        limiter.pause_until(start + Duration::from_secs(3));
        limiter.acquire().await;
        assert_eq!(start.elapsed(), Duration::from_secs(3));
    }
}
