//! The event catalog: the types a workspace knows — built in, declared by an admin, or seen
//! at ingest — each with the sample that test events, previews and template checks use.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::event::EventType;
use super::rule::Trigger;
use super::samples::{BUILTIN_TYPES, builtin_description, sample_data};
use super::subject::SubjectPath;

pub const MAX_DESCRIPTION_CHARS: usize = 2000;

/// What the store keeps for one (workspace, type).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct StoredType {
    /// Set when an admin declared the type.
    pub declared: Option<Declared>,
    /// The shape of the latest data seen at ingest (`structure_only`). Rows written by older
    /// versions may hold real values; `Entry::new` scrubs them again when they are read.
    pub seen_sample: Option<Map<String, Value>>,
    pub first_seen_at: Option<i64>,
    pub last_seen_at: Option<i64>,
    /// Why the latest event of this type that had to be given a subject by its declared
    /// `subject_path` got none, and when (cleared by a re-declaration).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_missing: Option<(String, i64)>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Declared {
    pub description: String,
    pub sample: Map<String, Value>,
    pub declared_at: i64,
    /// Where an event of this type names its subject when it is posted without one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_path: Option<SubjectPath>,
}

/// One catalog entry as listed.
#[derive(Debug, Clone, Serialize)]
pub struct Entry {
    pub name: EventType,
    pub description: String,
    pub sample: Map<String, Value>,
    /// Which of `builtin`, `declared`, `seen` this type is.
    pub sources: Vec<&'static str>,
    /// Where `sample` comes from: `declared`, `seen` (placeholders in the shape of real
    /// events), `builtin`, or `placeholder` (a type nothing is known about).
    pub sample_from: &'static str,
    pub last_seen_at: Option<i64>,
    pub subject_path: Option<SubjectPath>,
    /// Why the latest event that needed its `subject_path` got no subject, and when.
    pub subject_missing: Option<(String, i64)>,
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
        // A seen sample is scrubbed on every read, not only when stored: rows written before
        // samples were scrubbed, or by a store that kept values, never show a real value.
        let (sample, sample_from) = match (declared, seen) {
            (Some(d), _) => (d.sample.clone(), "declared"),
            (None, Some(seen)) => (structure_only(seen), "seen"),
            (None, None) if builtin.is_some() => (sample_data(name.as_str()), "builtin"),
            (None, None) => (sample_data(name.as_str()), "placeholder"),
        };
        Self {
            name,
            description,
            sample,
            sources,
            sample_from,
            last_seen_at: stored.and_then(|s| s.last_seen_at),
            subject_path: declared.and_then(|d| d.subject_path.clone()),
            subject_missing: stored.and_then(|s| s.subject_missing.clone()),
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

/// The data's shape with no value of it: every key kept, every value replaced by a
/// placeholder of the same type (see `placeholder`), arrays cut to one element shaped like
/// their first. Enough to write a template or condition against, with no patient data in
/// it. Placeholders map to themselves, so scrubbing a scrubbed sample changes nothing.
pub fn structure_only(data: &Map<String, Value>) -> Map<String, Value> {
    data.iter()
        .map(|(k, v)| (k.clone(), placeholder(v)))
        .collect()
}

/// A value of the same JSON type carrying nothing of `v`: strings become `"string"`, or an
/// invented example when they look like a date, time, e-mail address, phone number, UUID or
/// number written as text (so templates and conditions that parse them still work); numbers
/// become `0` or `0.0` (integer stays integer); booleans `false`; null stays null.
pub fn placeholder(v: &Value) -> Value {
    match v {
        Value::Null => Value::Null,
        Value::Bool(_) => Value::Bool(false),
        Value::Number(n) if n.is_f64() => Value::from(0.0),
        Value::Number(_) => Value::from(0),
        Value::String(s) => Value::String(placeholder_text(s).to_owned()),
        Value::Array(items) => Value::Array(items.first().map(placeholder).into_iter().collect()),
        Value::Object(map) => Value::Object(structure_only(map)),
    }
}

/// The example a string becomes: one of a few fixed, invented values by its format.
fn placeholder_text(s: &str) -> &'static str {
    let digits = |t: &str| !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit());
    let unsigned = s.strip_prefix('-').unwrap_or(s);
    if s.len() <= 64 && super::time::parse_rfc3339(s).is_some() {
        "2026-01-01T09:00:00Z"
    } else if is_date(s) {
        "2026-01-01"
    } else if is_email(s) {
        "name@example.com"
    } else if s
        .strip_prefix('+')
        .is_some_and(|n| digits(n) && (8..=15).contains(&n.len()))
    {
        // 555-01xx numbers are reserved for fiction.
        "+15555550100"
    } else if is_uuid(s) {
        "00000000-0000-0000-0000-000000000000"
    } else if digits(unsigned) {
        "0"
    } else if unsigned
        .split_once('.')
        .is_some_and(|(i, f)| digits(i) && digits(f))
    {
        "0.0"
    } else {
        "string"
    }
}

/// `YYYY-MM-DD`.
fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10
        && b.iter().enumerate().all(|(i, c)| match i {
            4 | 7 => *c == b'-',
            _ => c.is_ascii_digit(),
        })
}

/// One `@` with text before it and a dotted domain after, no spaces: looks like an address.
fn is_email(s: &str) -> bool {
    match s.split_once('@') {
        Some((local, domain)) => {
            !local.is_empty()
                && s.len() <= 254
                && !domain.contains('@')
                && domain.contains('.')
                && !domain.starts_with('.')
                && !domain.ends_with('.')
                && !s.chars().any(char::is_whitespace)
        }
        None => false,
    }
}

/// `8-4-4-4-12` hex digits.
fn is_uuid(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() == 5
        && parts
            .iter()
            .zip([8, 4, 4, 4, 12])
            .all(|(p, n)| p.len() == n && p.bytes().all(|b| b.is_ascii_hexdigit()))
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
    fn structure_keeps_keys_and_types_and_drops_values() {
        let data = map(
            json!({"member": {"name": "Jane Doe", "id": 123, "vip": true,
            "labels": ["vip", "new"], "notes": null, "weight": 71.5, "visits": [],
            "contacts": [{"email": "jane.doe@clinic.org", "phone": "+447700900123"}]}}),
        );
        assert_eq!(
            Value::Object(structure_only(&data)),
            json!({"member": {"name": "string", "id": 0, "vip": false, "labels": ["string"],
                "notes": null, "weight": 0.0, "visits": [],
                "contacts": [{"email": "name@example.com", "phone": "+15555550100"}]}})
        );
    }

    #[test]
    fn strings_keep_their_format_not_their_value() {
        for (real, shown) in [
            ("2025-03-14T15:09:26.535+01:00", "2026-01-01T09:00:00Z"),
            ("1984-07-02", "2026-01-01"),
            ("omar.haddad@example.org", "name@example.com"),
            ("+15551234567", "+15555550100"),
            (
                "9b2f6a1e-0c4d-4e7a-9f3b-2d1c0a9e8b7f",
                "00000000-0000-0000-0000-000000000000",
            ),
            ("004512", "0"),
            ("-12", "0"),
            ("6.1", "0.0"),
            ("Li Wei", "string"),
            ("", "string"),
            ("not@an address", "string"),
            ("12:30", "string"),
        ] {
            assert_eq!(placeholder(&json!(real)), json!(shown), "{real}");
        }
    }

    #[test]
    fn scrubbing_a_scrubbed_sample_changes_nothing() {
        let data = map(
            json!({"a": "Li Wei", "b": ["2025-01-02", 3], "c": {"d": 1.5, "e": "x@y.co"},
            "f": "+4915112345678", "g": "12", "h": "1.25", "i": "1b4e28ba-2fa1-11d2-883f-0016d3cca427"}),
        );
        let once = structure_only(&data);
        assert_eq!(structure_only(&once), once);
    }

    #[test]
    fn a_seen_sample_stored_with_real_values_is_scrubbed_when_read() {
        // As older versions (or `logs.store_bodies = true`) stored it: the event's real data.
        let old_row = StoredType {
            seen_sample: Some(map(
                json!({"member": {"name": "Li Wei", "born": "1961-02-03", "id": 5521}}),
            )),
            ..StoredType::default()
        };
        let t = EventType::parse("patient:admitted").unwrap();
        let entry = Entry::new(t, Some(&old_row));
        assert_eq!(entry.sample_from, "seen");
        assert_eq!(
            Value::Object(entry.sample),
            json!({"member": {"name": "string", "born": "2026-01-01", "id": 0}})
        );
    }

    #[test]
    fn sample_precedence() {
        let t = EventType::parse("member:created").unwrap();
        let builtin = Entry::new(t.clone(), None);
        assert_eq!(builtin.sources, ["builtin"]);
        assert_eq!(builtin.sample["member"]["name"], "Jane Example");
        assert_eq!(builtin.sample_from, "builtin");
        let seen = StoredType {
            seen_sample: Some(map(json!({"member": {"name": "seen", "id": 7}}))),
            ..StoredType::default()
        };
        let entry = Entry::new(t.clone(), Some(&seen));
        assert_eq!(
            Value::Object(entry.sample),
            json!({"member": {"name": "string", "id": 0}}),
            "a seen sample keeps the shape, not the values"
        );
        assert_eq!(entry.sample_from, "seen");
        let declared = StoredType {
            declared: Some(Declared {
                description: "Ours".into(),
                sample: map(json!({"member": {"name": "declared"}})),
                declared_at: 1,
                subject_path: None,
            }),
            ..seen
        };
        let entry = Entry::new(t, Some(&declared));
        assert_eq!(
            entry.sample["member"]["name"], "declared",
            "a declared sample is as-is"
        );
        assert_eq!(entry.sample_from, "declared");
        assert_eq!(entry.description, "Ours");
        assert_eq!(entry.sources, ["builtin", "declared", "seen"]);
    }
}
