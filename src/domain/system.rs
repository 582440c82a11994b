//! System events: what tidings itself says when something is wrong (SPEC §11). Their types
//! carry the reserved `tidings:` prefix, which source systems may not post, and their data
//! holds ids, names, counts, error kinds and status codes only — never event data, so never
//! PHI.

use serde_json::{Map, Value, json};

use super::delivery::ErrorKind;
use super::event::EventType;
use super::time::to_rfc3339;

/// The prefix every system event type starts with, and no posted one may.
pub const PREFIX: &str = "tidings:";

pub const RULE_FAILING: &str = "tidings:rule.failing";
pub const RULE_RECOVERED: &str = "tidings:rule.recovered";
pub const RULE_DEACTIVATED: &str = "tidings:rule.deactivated";
pub const DISPATCHER_STALLED: &str = "tidings:dispatcher.stalled";
pub const STORE_WRITE_FAILED: &str = "tidings:store.write_failed";
pub const RULE_CERT_EXPIRING: &str = "tidings:rule.cert_expiring";

/// Every system event type with its catalog description.
pub const TYPES: [(&str, &str); 6] = [
    (
        RULE_FAILING,
        "tidings: a rule's recent deliveries all failed (once per failing episode).",
    ),
    (
        RULE_RECOVERED,
        "tidings: a failing rule delivered successfully again.",
    ),
    (
        RULE_DEACTIVATED,
        "tidings: a rule was turned off by tidings (410 Gone, or failing for alerts.disable_after).",
    ),
    (
        DISPATCHER_STALLED,
        "tidings: deliveries are due but no attempt is finishing (readiness failed).",
    ),
    (
        STORE_WRITE_FAILED,
        "tidings: the database does not answer or could not commit a write (readiness failed).",
    ),
    (
        RULE_CERT_EXPIRING,
        "tidings: a rule's mTLS client certificate expires within 14 days (once per certificate).",
    ),
];

/// Whether a type is a system event's (`tidings:…`).
pub fn is_system(event_type: &EventType) -> bool {
    event_type.as_str().starts_with(PREFIX)
}

/// The rule an alert is about, as system events name it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleRef {
    pub id: String,
    pub name: String,
}

/// One thing tidings tells a person about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SystemEvent {
    RuleFailing {
        rule: RuleRef,
        since: i64,
        failed_attempts: u32,
        last_error_kind: Option<ErrorKind>,
        last_status_code: Option<u16>,
    },
    RuleRecovered {
        rule: RuleRef,
        failed_since: i64,
        recovered_at: i64,
    },
    RuleDeactivated {
        rule: RuleRef,
        reason: String,
    },
    DispatcherStalled {
        since: i64,
        detail: String,
    },
    StoreWriteFailed {
        since: i64,
        detail: String,
    },
    /// The rule's client certificate (`webhook.auth`, mTLS) is close to its `expires_at`.
    RuleCertExpiring {
        rule: RuleRef,
        expires_at: i64,
    },
}

impl SystemEvent {
    pub fn type_name(&self) -> &'static str {
        match self {
            Self::RuleFailing { .. } => RULE_FAILING,
            Self::RuleRecovered { .. } => RULE_RECOVERED,
            Self::RuleDeactivated { .. } => RULE_DEACTIVATED,
            Self::DispatcherStalled { .. } => DISPATCHER_STALLED,
            Self::StoreWriteFailed { .. } => STORE_WRITE_FAILED,
            Self::RuleCertExpiring { .. } => RULE_CERT_EXPIRING,
        }
    }

    pub fn event_type(&self) -> EventType {
        EventType::parse(self.type_name()).expect("system event types are valid event types")
    }

    pub fn rule(&self) -> Option<&RuleRef> {
        match self {
            Self::RuleFailing { rule, .. }
            | Self::RuleRecovered { rule, .. }
            | Self::RuleDeactivated { rule, .. }
            | Self::RuleCertExpiring { rule, .. } => Some(rule),
            Self::DispatcherStalled { .. } | Self::StoreWriteFailed { .. } => None,
        }
    }

    /// The event's data, in the shape of SPEC §11.
    pub fn data(&self) -> Map<String, Value> {
        let rule_json = |r: &RuleRef| json!({"id": r.id, "name": r.name});
        let value = match self {
            Self::RuleFailing {
                rule,
                since,
                failed_attempts,
                last_error_kind,
                last_status_code,
            } => json!({
                "rule": rule_json(rule),
                "since": to_rfc3339(*since),
                "failed_attempts": failed_attempts,
                "last_error_kind": last_error_kind,
                "last_status_code": last_status_code,
            }),
            Self::RuleRecovered {
                rule,
                failed_since,
                recovered_at,
            } => json!({
                "rule": rule_json(rule),
                "failed_since": to_rfc3339(*failed_since),
                "recovered_at": to_rfc3339(*recovered_at),
            }),
            Self::RuleDeactivated { rule, reason } => json!({
                "rule": rule_json(rule),
                "reason": reason,
            }),
            Self::DispatcherStalled { since, detail }
            | Self::StoreWriteFailed { since, detail } => {
                json!({"since": to_rfc3339(*since), "detail": detail})
            }
            // Named like the rule's own read-only `client_cert_expires_at`.
            Self::RuleCertExpiring { rule, expires_at } => json!({
                "rule": rule_json(rule),
                "client_cert_expires_at": to_rfc3339(*expires_at),
            }),
        };
        match value {
            Value::Object(map) => map,
            _ => Map::new(),
        }
    }
}

/// Sample data of a system event type (for the catalog, test sends and template checks).
pub fn sample(event_type: &str) -> Option<Map<String, Value>> {
    let rule = RuleRef {
        id: "rul_sample".into(),
        name: "EHR appointments".into(),
    };
    let at = 1_795_425_600_000; // 2026-11-23T09:20:00Z
    let event = match event_type {
        RULE_FAILING => SystemEvent::RuleFailing {
            rule,
            since: at,
            failed_attempts: 5,
            last_error_kind: Some(ErrorKind::HttpStatus),
            last_status_code: Some(503),
        },
        RULE_RECOVERED => SystemEvent::RuleRecovered {
            rule,
            failed_since: at,
            recovered_at: at + 3_600_000,
        },
        RULE_DEACTIVATED => SystemEvent::RuleDeactivated {
            rule,
            reason: "deactivated after the receiver answered 410 Gone".into(),
        },
        DISPATCHER_STALLED => SystemEvent::DispatcherStalled {
            since: at,
            detail: "due deliveries are waiting and no attempt has finished".into(),
        },
        STORE_WRITE_FAILED => SystemEvent::StoreWriteFailed {
            since: at,
            detail: "the database did not answer".into(),
        },
        RULE_CERT_EXPIRING => SystemEvent::RuleCertExpiring {
            rule,
            expires_at: at + 10 * 24 * 3_600_000,
        },
        _ => return None,
    };
    Some(event.data())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_is_system_and_has_a_sample() {
        for (name, _) in TYPES {
            let t = EventType::parse(name).unwrap();
            assert!(is_system(&t), "{name}");
            assert!(sample(name).is_some(), "{name}");
        }
        assert!(!is_system(
            &EventType::parse("tidingsx:rule.failing").unwrap()
        ));
        assert!(!is_system(&EventType::parse("member:created").unwrap()));
        assert_eq!(sample("member:created"), None);
    }

    #[test]
    fn failing_data_has_the_spec_shape() {
        let data = sample(RULE_FAILING).unwrap();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(
            keys,
            [
                "rule",
                "since",
                "failed_attempts",
                "last_error_kind",
                "last_status_code"
            ]
        );
        assert_eq!(data["rule"]["id"], "rul_sample");
        assert_eq!(data["last_error_kind"], "http_status");
        assert_eq!(data["last_status_code"], 503);
        assert_eq!(data["since"], "2026-11-23T09:20:00Z");
    }

    #[test]
    fn readiness_events_carry_since_and_detail_only() {
        let data = sample(STORE_WRITE_FAILED).unwrap();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(keys, ["since", "detail"]);
    }

    #[test]
    fn cert_expiring_names_the_rule_and_the_expiry() {
        let data = sample(RULE_CERT_EXPIRING).unwrap();
        let keys: Vec<&str> = data.keys().map(String::as_str).collect();
        assert_eq!(keys, ["rule", "client_cert_expires_at"]);
        assert_eq!(data["client_cert_expires_at"], "2026-12-03T09:20:00Z");
    }
}
