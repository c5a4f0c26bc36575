//! Per-sender rate limits (governor, GCRA): one keyed limiter per source, keyed by the
//! sender identity, so one noisy Alertmanager cannot starve Argo CD or another sender.

use std::num::NonZeroU32;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota};

use super::auth::Sender;

/// Every this many checks, forget senders whose bucket is full again, so a stream of
/// anonymous peers cannot grow the table without bound.
const SWEEP_EVERY: u64 = 4096;

#[derive(Debug)]
pub struct SenderLimits {
    limiter: DefaultKeyedRateLimiter<Sender>,
    checks: AtomicU64,
}

impl SenderLimits {
    /// `per_second` sustained, `burst` at once; zeros are raised to 1 (the config
    /// loader refuses them anyway).
    pub fn new(per_second: u32, burst: u32) -> Self {
        let rate = NonZeroU32::new(per_second).unwrap_or(NonZeroU32::MIN);
        let burst = NonZeroU32::new(burst).unwrap_or(NonZeroU32::MIN);
        SenderLimits {
            limiter: DefaultKeyedRateLimiter::keyed(Quota::per_second(rate).allow_burst(burst)),
            checks: AtomicU64::new(0),
        }
    }

    /// Ok, or how long until this sender may send again.
    pub fn check(&self, sender: &Sender) -> Result<(), Duration> {
        if self.checks.fetch_add(1, Ordering::Relaxed) % SWEEP_EVERY == SWEEP_EVERY - 1 {
            self.limiter.retain_recent();
        }
        self.limiter
            .check_key(sender)
            .map_err(|not_until| not_until.wait_time_from(self.limiter.clock().now()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_refusal_per_sender() {
        let l = SenderLimits::new(1, 3);
        for _ in 0..3 {
            l.check(&Sender::Token(1)).unwrap();
        }
        let wait = l.check(&Sender::Token(1)).unwrap_err();
        assert!(
            wait > Duration::ZERO && wait <= Duration::from_secs(1),
            "{wait:?}"
        );
        // Another sender has its own bucket.
        l.check(&Sender::Token(2)).unwrap();
    }
}
