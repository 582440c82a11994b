//! Built-in event types with sample data for test events, previews and template checks,
//! shaped like the Gravity Rail-style events clinics' systems send. Free of real PHI by
//! construction.

use serde_json::{Map, Value, json};

use super::rule::ROUTINE_FIRED;
use super::system;

/// The built-in types, each with a one-line description.
pub const BUILTIN_TYPES: [(&str, &str); 14] = [
    (
        "ping",
        "A test event: tidings' own, for checking that a receiver answers.",
    ),
    (ROUTINE_FIRED, "A routine's scheduled firing."),
    (
        "data_record:created",
        "A form or data record was submitted.",
    ),
    ("data_record:updated", "A form or data record was changed."),
    ("member:created", "A member (patient, client) was added."),
    ("member:updated", "A member's details changed."),
    ("call:completed", "A phone or chat call ended."),
    ("call:missed", "A call went unanswered."),
    system::TYPES[0],
    system::TYPES[1],
    system::TYPES[2],
    system::TYPES[3],
    system::TYPES[4],
    system::TYPES[5],
];

/// The built-in description of a type, if it is built in.
pub fn builtin_description(event_type: &str) -> Option<&'static str> {
    BUILTIN_TYPES
        .iter()
        .find(|(name, _)| *name == event_type)
        .map(|(_, d)| *d)
}

/// Sample `data` for an event type: a built-in one, or a ping-like note for other types.
pub fn sample_data(event_type: &str) -> Map<String, Value> {
    let member =
        json!({"id": 123, "name": "Jane Example", "email": "jane@example.com", "labels": ["vip"]});
    let value = match event_type {
        "ping" => json!({"message": "Test event from tidings"}),
        ROUTINE_FIRED => json!({
            "routine": {"id": "rul_sample", "name": "Morning summary"},
            "scheduledAt": "2026-11-23T09:00:00Z",
        }),
        "data_record:created" | "data_record:updated" => json!({
            "dataType": {"slug": "contact_form"},
            "member": member,
            "dataRecord": {"id": 4567, "fields": {"priority": "high", "reason": "Follow-up visit"}},
        }),
        "member:created" | "member:updated" => json!({"member": member}),
        "call:completed" | "call:missed" => json!({
            "call": {"id": 789, "direction": "inbound", "durationSeconds": 312, "from": "+15555550100"},
            "member": member,
        }),
        other => match system::sample(other) {
            Some(data) => return data,
            None => json!({"message": format!("Test event of type {other} from tidings")}),
        },
    };
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
