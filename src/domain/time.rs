//! Timestamps: stored as Unix milliseconds, shown as RFC 3339 UTC.

use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

pub fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(i64::MAX)
}

/// Where the routine scheduler reads the time: the system clock, or a manual one that tests
/// set and advance, so a DST night or a missed slot is driven instead of waited for.
#[derive(Debug, Clone, Default)]
pub struct Clock(Option<std::sync::Arc<std::sync::atomic::AtomicI64>>);

impl Clock {
    pub fn system() -> Self {
        Self(None)
    }

    /// A clock that stands at `at_ms` until set or advanced.
    pub fn manual(at_ms: i64) -> Self {
        Self(Some(std::sync::Arc::new(at_ms.into())))
    }

    pub fn now_ms(&self) -> i64 {
        self.0
            .as_ref()
            .map_or_else(now_ms, |t| t.load(std::sync::atomic::Ordering::SeqCst))
    }

    /// Moves a manual clock to `at_ms`; a system clock ignores it.
    pub fn set(&self, at_ms: i64) {
        if let Some(t) = &self.0 {
            t.store(at_ms, std::sync::atomic::Ordering::SeqCst);
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
}
