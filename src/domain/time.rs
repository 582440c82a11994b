//! Timestamps: stored as Unix milliseconds, shown as RFC 3339 UTC; and the `Clock` that the
//! dispatcher, attempts, retries, the routine scheduler and retention read them from.

use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Where the appliance reads the time: the system clock, or a manual one that tests set and
/// advance, so a DST night, a retry's delay or a rule's failing hour is driven instead of
/// waited for. Clones share one time.
#[derive(Clone, Default)]
pub struct Clock(Option<Arc<Manual>>);

/// A manual clock's time and who to tell when it moves.
struct Manual {
    at: AtomicI64,
    /// Called after every move, so threads waiting for a time wake instead of sleeping on;
    /// one that returns false (its owner is gone) is dropped.
    watchers: Mutex<Vec<Box<dyn Fn() -> bool + Send + Sync>>>,
}

impl Clock {
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that stands at `at_ms` until set or advanced.
    pub fn manual(at_ms: i64) -> Self {
        Self(Some(Arc::new(Manual {
            at: at_ms.into(),
            watchers: Mutex::default(),
        })))
    }

    pub fn now_ms(&self) -> i64 {
        self.0
            .as_ref()
            .map_or_else(now_ms, |m| m.at.load(Ordering::SeqCst))
    }

    /// Moves a manual clock to `at_ms`; a system clock ignores it.
    pub fn set(&self, at_ms: i64) {
        if let Some(m) = &self.0 {
            m.at.store(at_ms, Ordering::SeqCst);
            m.moved();
        }
    }

    /// Moves a manual clock on by `ms`; a system clock ignores it.
    pub fn advance(&self, ms: i64) {
        if let Some(m) = &self.0 {
            m.at.fetch_add(ms, Ordering::SeqCst);
            m.moved();
        }
    }

    /// Calls `wake` after every move of a manual clock, until it returns false. A system
    /// clock never moves by hand, so it keeps nothing: its waiters wake by their own timeout.
    pub fn on_move(&self, wake: impl Fn() -> bool + Send + Sync + 'static) {
        if let Some(m) = &self.0 {
            m.watchers
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .push(Box::new(wake));
        }
    }
}

impl Manual {
    fn moved(&self) {
        self.watchers
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .retain(|wake| wake());
    }
}

impl std::fmt::Debug for Clock {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.0 {
            None => f.write_str("Clock::system"),
            Some(m) => write!(f, "Clock::manual({})", m.at.load(Ordering::SeqCst)),
        }
    }
}

/// `2026-11-23T10:00:00.123Z`; whole seconds are written without a fraction.
pub fn to_rfc3339(ms: i64) -> String {
    let at = OffsetDateTime::from_unix_timestamp_nanos(i128::from(ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    let at = if ms % 1000 == 0 {
        at.replace_nanosecond(0).unwrap_or(at)
    } else {
        at
    };
    at.format(&Rfc3339).unwrap_or_default()
}

/// Parses RFC 3339 with any offset into Unix milliseconds.
pub fn parse_rfc3339(s: &str) -> Option<i64> {
    let at = OffsetDateTime::parse(s, &Rfc3339).ok()?;
    i64::try_from(at.unix_timestamp_nanos() / 1_000_000).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trips() {
        let ms = parse_rfc3339("2026-11-23T10:00:00Z").unwrap();
        assert_eq!(to_rfc3339(ms), "2026-11-23T10:00:00Z");
        assert_eq!(parse_rfc3339("2026-11-23T11:00:00+01:00"), Some(ms));
        assert_eq!(to_rfc3339(ms + 5), "2026-11-23T10:00:00.005Z");
        assert!(parse_rfc3339("yesterday").is_none());
    }

    #[test]
    fn a_manual_clock_is_shared_by_its_clones_and_tells_its_watchers() {
        let clock = Clock::manual(1_000);
        let other = clock.clone();
        let woken = Arc::new(AtomicI64::new(0));
        let seen = Arc::clone(&woken);
        clock.on_move(move || seen.fetch_add(1, Ordering::SeqCst) < 1);
        other.advance(500);
        assert_eq!(clock.now_ms(), 1_500);
        clock.set(10_000);
        assert_eq!(other.now_ms(), 10_000);
        // The watcher asked to be dropped after its second call.
        clock.advance(1);
        assert_eq!(woken.load(Ordering::SeqCst), 2);
    }

    #[test]
    fn the_system_clock_ignores_moves() {
        let clock = Clock::system();
        clock.on_move(|| panic!("a system clock has no watchers"));
        clock.set(0);
        clock.advance(-1_000_000);
        assert!(clock.now_ms() > 1_700_000_000_000);
    }
}
