//! The request body a receiver gets, built from the event and the rule (SPEC §3).

use serde_json::{Map, Value, json};

use super::event::Event;
use super::rule::{PayloadFormat, Rule};
use super::time::to_rfc3339;

/// The names the flat payload's `eventRule` and `workspace` objects carry.
pub struct Context<'a> {
    pub rule: &'a Rule,
    pub workspace_name: &'a str,
}

/// `flat`: the event's data at top level plus the reserved keys; `envelope`: id, event, payload.
pub fn body(event: &Event, ctx: &Context<'_>) -> Vec<u8> {
    let value = match ctx.rule.webhook.payload_format {
        PayloadFormat::Envelope => json!({
            "id": event.id,
            "event": event.event_type,
            "payload": event.data,
        }),
        // Templates are refused at validation until they are supported, so flat is the fallback.
        PayloadFormat::Flat | PayloadFormat::Template => Value::Object(flat(event, ctx)),
    };
    serde_json::to_vec(&value).expect("JSON values always serialise")
}

fn flat(event: &Event, ctx: &Context<'_>) -> Map<String, Value> {
    let mut out = Map::with_capacity(event.data.len() + 5);
    out.insert("event".into(), json!(event.event_type));
    out.insert("id".into(), json!(event.id));
    out.insert("occurredAt".into(), json!(to_rfc3339(event.occurred_at)));
    for (k, v) in &event.data {
        out.insert(k.clone(), v.clone());
    }
    out.insert(
        "eventRule".into(),
        json!({"id": ctx.rule.id, "name": ctx.rule.name}),
    );
    out.insert(
        "workspace".into(),
        json!({"id": event.workspace_id, "name": ctx.workspace_name}),
    );
    out
}
