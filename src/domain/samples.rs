//! Built-in sample data for test events and previews, shaped like the Gravity Rail-style
//! events clinics' systems send. Free of real PHI by construction.

use serde_json::{Map, Value, json};

/// Sample `data` for an event type: a built-in one, or a ping-like note for other types.
pub fn sample_data(event_type: &str) -> Map<String, Value> {
    let member =
        json!({"id": 123, "name": "Jane Example", "email": "jane@example.com", "labels": ["vip"]});
    let value = match event_type {
        "ping" => json!({"message": "Test event from tidings"}),
        "data_record:created" | "data_record:updated" => json!({
            "dataType": {"slug": "contact_form"},
            "member": member,
            "dataRecord": {"id": 4567, "fields": {"priority": "high", "reason": "Follow-up visit"}},
        }),
        "member:created" | "member:updated" => json!({"member": member}),
        "call:completed" => json!({
            "call": {"id": 789, "direction": "inbound", "durationSeconds": 312, "from": "+15555550100"},
            "member": member,
        }),
        other => json!({"message": format!("Test event of type {other} from tidings")}),
    };
    match value {
        Value::Object(map) => map,
        _ => Map::new(),
    }
}
