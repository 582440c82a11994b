//! Prefixed, time-sortable ids (`evt_…`, `rul_…`): the prefix says what an id names, and the
//! leading millisecond timestamp makes a table keyed by id list in creation order, which the
//! newest-first delivery log and its cursor rely on.

use std::fmt;

use serde::{Deserialize, Serialize};

/// 12 hex digits of Unix milliseconds, then 16 of randomness: sortable and collision-free.
fn generate(prefix: &str, at_ms: i64) -> String {
    let ms = u64::try_from(at_ms).unwrap_or(0) & 0xffff_ffff_ffff;
    format!("{prefix}{ms:012x}{:016x}", rand::random::<u64>())
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
}
