//! The retry schedule as a pure function (SPEC §5): 10 s before the 2nd attempt, doubling,
//! capped by `retry.max_delay`, with optional jitter whose random factor is passed in.

use std::time::Duration;

use crate::config::RetryConfig;

#[derive(Debug, Clone)]
pub struct RetryPolicy {
    pub max_attempts: u32,
    pub base_delay: Duration,
    pub max_delay: Duration,
    pub jitter: bool,
}

/// Jitter spreads a delay by up to this fraction either way.
const JITTER_SPREAD: f64 = 0.1;

impl From<&RetryConfig> for RetryPolicy {
    fn from(c: &RetryConfig) -> Self {
        Self {
            max_attempts: c.max_attempts,
            base_delay: c.base_delay,
            max_delay: c.max_delay,
            jitter: c.jitter,
        }
    }
}

impl RetryPolicy {
    /// The wait after attempt number `attempt` (1-based) failed. `unit` is a random number in
    /// [0, 1) used for jitter. `retry_after` is the receiver's Retry-After on a 429/503: honoured
    /// as a minimum but capped, so a receiver can never park a delivery longer than
    /// `max_delay`.
    pub fn delay_after(&self, attempt: u32, unit: f64, retry_after: Option<Duration>) -> Duration {
        let doublings = attempt.saturating_sub(1).min(30);
        let mut delay = self
            .base_delay
            .checked_mul(1 << doublings)
            .unwrap_or(self.max_delay)
            .min(self.max_delay);
        if self.jitter {
            let factor = 1.0 + JITTER_SPREAD * (2.0 * unit.clamp(0.0, 1.0) - 1.0);
            delay = delay.mul_f64(factor).min(self.max_delay);
        }
        if let Some(asked) = retry_after {
            delay = delay.max(asked.min(self.max_delay));
        }
        delay
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(jitter: bool) -> RetryPolicy {
        RetryPolicy {
            max_attempts: 5,
            base_delay: Duration::from_secs(10),
            max_delay: Duration::from_secs(3600),
            jitter,
        }
    }

    #[test]
    fn default_schedule_is_10_20_40_80() {
        let p = policy(false);
        let delays: Vec<u64> = (1..=4)
            .map(|n| p.delay_after(n, 0.5, None).as_secs())
            .collect();
        assert_eq!(delays, [10, 20, 40, 80]);
    }

    #[test]
    fn max_delay_caps_every_wait_including_retry_after() {
        let p = RetryPolicy {
            max_delay: Duration::from_secs(30),
            ..policy(false)
        };
        assert_eq!(p.delay_after(4, 0.5, None), Duration::from_secs(30));
        assert_eq!(
            p.delay_after(1, 0.5, Some(Duration::from_secs(999))),
            Duration::from_secs(30)
        );
        assert_eq!(
            p.delay_after(1, 0.5, Some(Duration::from_secs(25))),
            Duration::from_secs(25)
        );
        assert_eq!(
            p.delay_after(2, 0.5, Some(Duration::from_secs(1))),
            Duration::from_secs(20)
        );
        assert_eq!(p.delay_after(u32::MAX, 0.5, None), Duration::from_secs(30));
    }

    /// Property: for every attempt and random factor, jitter stays within ±10% and the cap.
    #[test]
    fn jitter_stays_in_bounds() {
        let p = policy(true);
        for attempt in 1..=12 {
            let plain = policy(false).delay_after(attempt, 0.0, None).as_secs_f64();
            for i in 0..=100 {
                let unit = f64::from(i) / 100.0;
                let d = p.delay_after(attempt, unit, None).as_secs_f64();
                assert!(d <= 3600.0 + 1e-9);
                assert!(
                    d >= plain * 0.9 - 1e-9 && d <= (plain * 1.1).min(3600.0) + 1e-9,
                    "{attempt} {unit} {d}"
                );
            }
        }
    }
}
