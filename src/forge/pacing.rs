//! Pacing of forge mutations (creates, comments, label and state changes).
//!
//! GitHub's secondary limits count content-creating requests: at most 80 a minute and
//! 500 an hour, and GitHub advises about one mutation a second. Each window gets its
//! own GCRA limiter whose burst plus refill can never exceed the window's count, so
//! "≤ N per window" holds for every window, not only on average.

use std::num::NonZeroU32;
use std::time::Duration;

use governor::{DefaultDirectRateLimiter, Quota, RateLimiter};

/// Most mutations per second, minute and hour (each at least 1).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pacing {
    pub per_second: u32,
    pub per_minute: u32,
    pub per_hour: u32,
}

impl Pacing {
    /// GitHub.com's documented limits and advice.
    pub const GITHUB: Pacing = Pacing {
        per_second: 1,
        per_minute: 80,
        per_hour: 500,
    };
}

pub(crate) struct Pacer {
    limiters: Vec<DefaultDirectRateLimiter>,
}

impl Pacer {
    pub(crate) fn new(pacing: Pacing) -> Self {
        let windows = [
            (pacing.per_second, Duration::from_secs(1)),
            (pacing.per_minute, Duration::from_secs(60)),
            (pacing.per_hour, Duration::from_secs(3600)),
        ];
        Pacer {
            limiters: windows
                .into_iter()
                .map(|(n, window)| RateLimiter::direct(window_quota(n, window)))
                .collect(),
        }
    }

    /// Waits until one more mutation fits every window.
    pub(crate) async fn ready(&self) {
        for limiter in &self.limiters {
            limiter.until_ready().await;
        }
    }
}

/// At most `n` cells in any `window`: a burst of `b` (a tenth of `n`) and one new
/// cell every `window / (n - b)`, since a GCRA admits `b + t / period` cells in `t`.
fn window_quota(n: u32, window: Duration) -> Quota {
    let n = n.max(1);
    let burst = (n / 10).max(1);
    let sustained = (n - burst).max(1);
    let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
    Quota::with_period(window / sustained)
        .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
        .allow_burst(burst)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The most cells a quota admits within `t`.
    fn most_within(q: &Quota, t: Duration) -> u128 {
        q.burst_size().get() as u128 + t.as_nanos() / q.replenish_interval().as_nanos()
    }

    #[test]
    fn windows_are_never_exceeded() {
        for (n, window) in [
            (1, Duration::from_secs(1)),
            (80, Duration::from_secs(60)),
            (500, Duration::from_secs(3600)),
            (20, Duration::from_secs(1)),
            (7, Duration::from_secs(60)),
        ] {
            let q = window_quota(n, window);
            // Strictly within the window (the cell at exactly `window` opens the next one).
            let most = most_within(&q, window - Duration::from_nanos(1));
            assert!(most <= n.max(2) as u128, "{n}/{window:?}: {most}");
        }
        // The github.com defaults: 8 at once, then one per 833 ms within the minute.
        let q = window_quota(80, Duration::from_secs(60));
        assert_eq!(q.burst_size().get(), 8);
        assert_eq!(q.replenish_interval(), Duration::from_secs(60) / 72);
    }
}
