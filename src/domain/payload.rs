//! The request body a receiver gets, built from the event and the rule (SPEC §3).

use serde_json::{Map, Value, json};

use super::event::Event;
use super::rule::{PayloadFormat, Rule};
use super::template::{self, TemplateError};
use super::time::to_rfc3339;

/// The names the flat payload's `eventRule` and `workspace` objects carry.
pub struct Context<'a> {
    pub rule: &'a Rule,
    pub workspace_name: &'a str,
}

/// `flat`: the event's data at top level plus the reserved keys; `envelope`: id, event,
/// payload; `template`: the rule's body template rendered over the flat payload.
pub fn body(event: &Event, ctx: &Context<'_>) -> Result<Vec<u8>, TemplateError> {
    let webhook = &ctx.rule.webhook;
    let value = match webhook.payload_format {
        PayloadFormat::Envelope => json!({
            "id": event.id,
            "event": event.event_type,
            "payload": event.data,
        }),
        PayloadFormat::Flat => Value::Object(flat(event, ctx)),
        PayloadFormat::Template => {
            let source = webhook.body_template.as_deref().unwrap_or_default();
            let context = Value::Object(flat(event, ctx));
            return template::render(source, &context, &webhook.content_type);
        }
    };
    Ok(serde_json::to_vec(&value).expect("JSON values always serialise"))
}

/// The flat payload (SPEC §3): also the context a body template sees.
pub fn flat(event: &Event, ctx: &Context<'_>) -> Map<String, Value> {
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
