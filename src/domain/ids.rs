//! Prefixed, time-sortable ids (`evt_…`, `rul_…`): the prefix says what an id names, and the
//! leading millisecond timestamp makes a table keyed by id list in creation order, which the
//! newest-first delivery log and its cursor rely on.

use std::fmt;

use serde::{Deserialize, Serialize};

/// 12 hex digits of Unix milliseconds, then 16 that are a per-process counter (10 digits,
/// starting at a random point) and randomness (6 digits): sortable, collision-free, and
/// within one millisecond in the order they were made in this process, whatever other
/// times other threads pass meanwhile. Ordered delivery (SPEC §15) takes the id order as
/// the ingest order.
fn generate(prefix: &str, at_ms: i64) -> String {
    static COUNTER: std::sync::LazyLock<std::sync::atomic::AtomicU64> =
        std::sync::LazyLock::new(|| {
            // Room below 2^40 for more ids than a process makes.
            std::sync::atomic::AtomicU64::new(rand::random::<u64>() >> 26)
        });
    let ms = u64::try_from(at_ms).unwrap_or(0) & 0xffff_ffff_ffff;
    let count = COUNTER.fetch_add(1, std::sync::atomic::Ordering::Relaxed) & 0xff_ffff_ffff;
    let random = rand::random::<u64>() & 0xff_ffff;
    format!("{prefix}{ms:012x}{:016x}", (count << 24) | random)
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(transparent)]
        pub struct $name(String);

        impl $name {
            pub const PREFIX: &'static str = $prefix;

            pub fn generate(at_ms: i64) -> Self {
                Self(generate($prefix, at_ms))
            }

            /// Accepts only ids of this kind, so a rule id cannot be used as a delivery id.
            pub fn parse(s: &str) -> Option<Self> {
                let rest = s.strip_prefix($prefix)?;
                (!rest.is_empty() && rest.len() <= 64 && rest.bytes().all(|b| b.is_ascii_alphanumeric()))
                    .then(|| Self(s.to_owned()))
            }

            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }
    };
}

prefixed_id!(/// A tenant.
    WorkspaceId, "wsp_");
prefixed_id!(/// An API key's public id (not the key itself).
    ApiKeyId, "key_");
prefixed_id!(/// An event rule (or routine).
    RuleId, "rul_");
prefixed_id!(/// An ingested event.
    EventId, "evt_");
prefixed_id!(/// One (event, rule) delivery; stable across its attempts.
    DeliveryId, "dlv_");
prefixed_id!(/// One audit log entry.
    AuditId, "aud_");
prefixed_id!(/// A person who signs in to the admin UI.
    UserId, "usr_");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_sort_by_creation_time_and_check_their_prefix() {
        let a = EventId::generate(1_000);
        let b = EventId::generate(2_000);
        assert!(a < b);
        assert!(EventId::parse(a.as_str()).is_some());
        assert!(RuleId::parse(a.as_str()).is_none());
        assert!(EventId::parse("evt_").is_none());
        assert!(EventId::parse("evt_../x").is_none());
    }

    #[test]
    fn ids_made_in_the_same_millisecond_sort_in_the_order_they_were_made() {
        let ids: Vec<DeliveryId> = (0..1_000).map(|_| DeliveryId::generate(5_000)).collect();
        assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
        // A new millisecond starts afresh, still after the one before.
        assert!(DeliveryId::generate(5_001) > ids[999]);
    }
}
