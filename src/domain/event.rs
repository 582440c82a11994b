//! Events as posted by source systems, and the rules for their type names.

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::ids::{EventId, WorkspaceId};
use super::subject::SubjectHash;

/// `^[a-z0-9][a-z0-9_.:-]{0,127}$`, e.g. `data_record:created`, `medical-encounters.create`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct EventType(String);

pub const EVENT_TYPE_RULE: &str = "must be 1-128 characters: lowercase letters, digits and _ . : - (starting with a letter or digit)";

impl EventType {
    pub fn parse(s: &str) -> Result<Self, String> {
        if is_type_body(s)
            && s.bytes()
                .next()
                .is_some_and(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!("invalid event type {s:?}: {EVENT_TYPE_RULE}"))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The character set and length of a type name (first-character rule aside).
pub(crate) fn is_type_body(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 128
        && s.bytes().all(|b| {
            b.is_ascii_lowercase() || b.is_ascii_digit() || matches!(b, b'_' | b'.' | b':' | b'-')
        })
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Keys the flat payload sets itself; event data may not use them.
pub const RESERVED_KEYS: [&str; 5] = ["event", "id", "occurredAt", "eventRule", "workspace"];

/// A stored event.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Event {
    pub id: EventId,
    pub workspace_id: WorkspaceId,
    #[serde(rename = "type")]
    pub event_type: EventType,
    pub occurred_at: i64,
    pub received_at: i64,
    pub data: Map<String, Value>,
    #[serde(default)]
    pub test: bool,
    /// Whom the event is about, as a keyed hash (§13); never the subject itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectHash>,
    /// Its data was destroyed by a subject's erasure; `data` is then empty.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
}

/// Checks event data against the payload's reserved keys.
pub fn check_data(data: &Map<String, Value>) -> Result<(), String> {
    match RESERVED_KEYS.iter().find(|k| data.contains_key(**k)) {
        Some(key) => Err(format!(
            "data may not contain the key {key:?}: the delivered payload reserves {} for itself",
            RESERVED_KEYS.join(", ")
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_types() {
        for ok in [
            "data_record:created",
            "member:updated",
            "ping",
            "medical-encounters.create",
            "9x",
        ] {
            assert!(EventType::parse(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "Member:created",
            "_x",
            "a b",
            "a*",
            &"a".repeat(129),
            "é",
        ] {
            assert!(EventType::parse(bad).is_err(), "{bad}");
        }
        assert!(EventType::parse(&"a".repeat(128)).is_ok());
    }

    #[test]
    fn reserved_keys_are_refused() {
        let data: Map<String, Value> = serde_json::from_str(r#"{"member":{"id":1}}"#).unwrap();
        assert!(check_data(&data).is_ok());
        let data: Map<String, Value> = serde_json::from_str(r#"{"occurredAt":"x"}"#).unwrap();
        assert!(check_data(&data).unwrap_err().contains("occurredAt"));
    }
}
