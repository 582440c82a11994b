//! A rule's circuit breaker: how many workers a rule whose receiver hangs may still hold.
//! Pure (the time is passed in), kept by the dispatcher per rule.
//!
//! A receiver that times out or refuses connections holds a worker for up to the rule's
//! `timeout_ms` per attempt while answering nothing. So: closed, a rule may use its full
//! `max_concurrency`; after one such failure it gets one attempt at a time; after
//! `delivery.breaker_failures` in a row the breaker opens and the rule sends nothing for
//! `delivery.breaker_cooldown`; then one probe goes (half-open): an answer closes the breaker,
//! another failure opens it again. Any answer, even a 500, counts as the receiver being
//! there: the breaker is about workers held, not about failed deliveries (retries and
//! `alerts.disable_after` handle those). Deliveries held back are not failed: they wait in
//! the queue with their attempt count unchanged.

use std::time::Duration;

use crate::domain::delivery::{Attempt, ErrorKind};

/// When the breaker opens and for how long (`[delivery]` in the config).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BreakerPolicy {
    /// Consecutive hangs (timeouts, connection failures) that open it.
    pub failures: u32,
    pub cooldown: Duration,
}

/// What an attempt says about the receiver.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signal {
    /// It answered (any status), or the attempt never reached the network (blocked, a
    /// template error): nothing held a worker waiting.
    Answered,
    /// Timed out or could not connect: a worker waited for nothing.
    Hung,
}

impl Signal {
    pub fn of(attempt: &Attempt) -> Self {
        match attempt.error_kind {
            Some(ErrorKind::Timeout | ErrorKind::Connect) => Self::Hung,
            _ => Self::Answered,
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Breaker {
    /// Hangs in a row.
    hung: u32,
    /// Unix ms until which nothing is sent, once open.
    open_until: Option<i64>,
}

impl Breaker {
    /// Attempts the rule may have in flight now (before its own `max_concurrency`).
    pub fn allowance(&self, now: i64) -> u32 {
        match self.open_until {
            _ if self.hung == 0 => u32::MAX,
            Some(until) if now < until => 0,
            // Failing but not yet open, or half-open: one at a time, the probe.
            _ => 1,
        }
    }

    /// When an open breaker lets its probe go, for a waiting worker's wake-up.
    pub fn reopens_at(&self, now: i64) -> Option<i64> {
        self.open_until.filter(|until| *until > now)
    }

    /// Whether deliveries are being held back by it right now (not due to saturation).
    pub fn is_holding(&self, now: i64) -> bool {
        self.allowance(now) == 0
    }

    /// Notes an attempt's outcome.
    pub fn record(&mut self, signal: Signal, now: i64, policy: &BreakerPolicy) {
        match signal {
            Signal::Answered => *self = Self::default(),
            Signal::Hung => {
                self.hung = self.hung.saturating_add(1);
                if self.hung >= policy.failures.max(1) {
                    let cooldown = i64::try_from(policy.cooldown.as_millis()).unwrap_or(i64::MAX);
                    self.open_until = Some(now.saturating_add(cooldown));
                }
            }
        }
    }

    pub fn is_closed(&self) -> bool {
        self.hung == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: BreakerPolicy = BreakerPolicy {
        failures: 3,
        cooldown: Duration::from_secs(30),
    };

    #[test]
    fn hangs_narrow_then_open_then_one_probe_decides() {
        let mut b = Breaker::default();
        assert_eq!(b.allowance(0), u32::MAX);
        b.record(Signal::Hung, 1_000, &POLICY);
        assert_eq!(b.allowance(1_000), 1, "failing: one at a time");
        b.record(Signal::Hung, 2_000, &POLICY);
        assert_eq!(b.allowance(2_000), 1);
        b.record(Signal::Hung, 3_000, &POLICY);
        assert_eq!(b.allowance(3_000), 0, "open");
        assert!(b.is_holding(32_999));
        assert_eq!(b.reopens_at(3_000), Some(33_000));
        assert_eq!(b.allowance(33_000), 1, "half-open: the probe");
        // The probe hangs too: open for another cool-down.
        b.record(Signal::Hung, 40_000, &POLICY);
        assert_eq!(b.allowance(40_000), 0);
        assert_eq!(b.allowance(70_000), 1);
        // It answers: closed, full allowance again.
        b.record(Signal::Answered, 71_000, &POLICY);
        assert_eq!(b.allowance(71_000), u32::MAX);
        assert!(b.is_closed());
    }

    #[test]
    fn any_answer_resets_the_count() {
        let mut b = Breaker::default();
        b.record(Signal::Hung, 0, &POLICY);
        b.record(Signal::Hung, 0, &POLICY);
        b.record(Signal::Answered, 0, &POLICY);
        b.record(Signal::Hung, 0, &POLICY);
        b.record(Signal::Hung, 0, &POLICY);
        assert_eq!(
            b.allowance(0),
            1,
            "two in a row, not four: narrowed, not open"
        );
        b.record(Signal::Answered, 0, &POLICY);
        assert!(b.is_closed());
    }
}
