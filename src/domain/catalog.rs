//! The event catalog: the types a workspace knows — built in, declared by an admin, or seen
//! at ingest — each with the sample that test events, previews and template checks use.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::event::EventType;
use super::rule::Trigger;
use super::samples::{BUILTIN_TYPES, builtin_description, sample_data};

pub const MAX_DESCRIPTION_CHARS: usize = 2000;

/// What the store keeps for one (workspace, type).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredType {
    /// Set when an admin declared the type.
    pub declared: Option<Declared>,
    /// The latest data seen at ingest (or only its key structure, with `logs.store_bodies = false`).
    pub seen_sample: Option<Map<String, Value>>,
    pub first_seen_at: Option<i64>,
    pub last_seen_at: Option<i64>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Declared {
    pub description: String,
    pub sample: Map<String, Value>,
    pub declared_at: i64,
}

/// One catalog entry as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub name: EventType,
    pub description: String,
    pub sample: Map<String, Value>,
    /// Which of `builtin`, `declared`, `seen` this type is.
    pub sources: Vec<&'static str>,
    pub last_seen_at: Option<i64>,
}

impl Entry {
    /// The entry for `name` from what is stored about it (if anything). The sample is the
    /// admin's declared one first, then the latest seen, then the built-in one.
    pub fn new(name: EventType, stored: Option<&StoredType>) -> Self {
        let builtin = builtin_description(name.as_str());
        let declared = stored.and_then(|s| s.declared.as_ref());
        let seen = stored.and_then(|s| s.seen_sample.as_ref());
        let mut sources = Vec::new();
        if builtin.is_some() {
            sources.push("builtin");
        }
        if declared.is_some() {
            sources.push("declared");
        }
        if seen.is_some() {
            sources.push("seen");
        }
        let description = declared
            .map(|d| d.description.clone())
            .filter(|d| !d.is_empty())
            .or_else(|| builtin.map(str::to_owned))
            .unwrap_or_default();
        let sample = declared
            .map(|d| d.sample.clone())
            .or_else(|| seen.cloned())
            .unwrap_or_else(|| sample_data(name.as_str()));
        Self {
            name,
            description,
            sample,
            sources,
            last_seen_at: stored.and_then(|s| s.last_seen_at),
        }
    }
}

/// Most types a wildcard rule's template is checked against on save.
const MAX_CHECKED_TYPES: usize = 20;

/// The event types a rule's body template is checked against when it is saved: its exact
/// types, plus the known types (built in, declared, seen) its wildcard patterns match. The
/// caller skips types the catalog knows nothing about: their only sample is a placeholder.
pub fn types_to_check(trigger: &Trigger, known: &[EventType]) -> Vec<EventType> {
    let mut out: Vec<EventType> = trigger
        .exact_types()
        .into_iter()
        .filter_map(|t| EventType::parse(t).ok())
        .collect();
    if let Trigger::Event { events } = trigger {
        let builtins = BUILTIN_TYPES
            .iter()
            .filter_map(|(name, _)| EventType::parse(name).ok());
        for t in known.iter().cloned().chain(builtins) {
            if out.len() >= MAX_CHECKED_TYPES {
                break;
            }
            if events.iter().any(|p| p.exact().is_none() && p.matches(&t)) && !out.contains(&t) {
                out.push(t);
            }
        }
    }
    out
}

/// The data's key structure with every value replaced by an empty one of its kind ("" , 0,
/// false, null), arrays cut to their first element: enough to write a template or condition
/// against, with no patient data in it.
pub fn structure_only(data: &Map<String, Value>) -> Map<String, Value> {
    data.iter().map(|(k, v)| (k.clone(), blank(v))).collect()
}

fn blank(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::Bool(_) => Value::Bool(false),
        Value::Number(_) => Value::from(0),
        Value::String(_) => Value::String(String::new()),
        Value::Array(items) => Value::Array(items.first().map(blank).into_iter().collect()),
        Value::Object(map) => Value::Object(structure_only(map)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn map(v: Value) -> Map<String, Value> {
        match v {
            Value::Object(m) => m,
            _ => panic!("not an object"),
        }
    }

    #[test]
    fn structure_keeps_keys_and_drops_values() {
        let data = map(
            json!({"member": {"name": "Jane Doe", "id": 123, "vip": true,
            "labels": ["vip", "new"], "notes": null}}),
        );
        assert_eq!(
            Value::Object(structure_only(&data)),
            json!({"member": {"name": "", "id": 0, "vip": false, "labels": [""], "notes": null}})
        );
    }

    #[test]
    fn sample_precedence() {
        let t = EventType::parse("member:created").unwrap();
        let builtin = Entry::new(t.clone(), None);
        assert_eq!(builtin.sources, ["builtin"]);
        assert_eq!(builtin.sample["member"]["name"], "Jane Example");
        let seen = StoredType {
            seen_sample: Some(map(json!({"member": {"name": "seen"}}))),
            ..StoredType::default()
        };
        assert_eq!(
            Entry::new(t.clone(), Some(&seen)).sample["member"]["name"],
            "seen"
        );
        let declared = StoredType {
            declared: Some(Declared {
                description: "Ours".into(),
                sample: map(json!({"member": {"name": "declared"}})),
                declared_at: 1,
            }),
            ..seen
        };
        let entry = Entry::new(t, Some(&declared));
        assert_eq!(entry.sample["member"]["name"], "declared");
        assert_eq!(entry.description, "Ours");
        assert_eq!(entry.sources, ["builtin", "declared", "seen"]);
    }
}
