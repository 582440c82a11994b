//! The request body a receiver gets, built from the event and the rule (SPEC §3).

use serde::ser::{Serialize, SerializeMap, Serializer};
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
    // The JSON formats are written straight from the event rather than through a copy of
    // its data in a new map: that copy was a twentieth of a delivery worker's time.
    let written = match webhook.payload_format {
        PayloadFormat::Envelope => serde_json::to_vec(&Envelope {
            id: event.id.as_str(),
            event: event.event_type.as_str(),
            payload: &event.data,
        }),
        PayloadFormat::Flat => serde_json::to_vec(&FlatBody { event, ctx }),
        PayloadFormat::Template => {
            let source = webhook.body_template.as_deref().unwrap_or_default();
            let context = Value::Object(flat(event, ctx));
            return template::render(source, &context, &webhook.content_type);
        }
    };
    Ok(written.expect("JSON values always serialise"))
}

#[derive(serde::Serialize)]
struct Envelope<'a> {
    id: &'a str,
    event: &'a str,
    payload: &'a Map<String, Value>,
}

/// What `flat` builds, written as it would be: the same keys in the same order with the same
/// values, also for data that holds a reserved key (refused at ingest, but `flat`'s answer
/// stands): a reserved key keeps the place it was first given, the data's value replaces
/// the first three, the last two replace the data's.
struct FlatBody<'a> {
    event: &'a Event,
    ctx: &'a Context<'a>,
}

impl Serialize for FlatBody<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let (event, rule) = (self.event, self.ctx.rule);
        let data = &event.data;
        let rule_object = Named {
            id: rule.id.as_str(),
            name: &rule.name,
        };
        let workspace = Named {
            id: event.workspace_id.as_str(),
            name: self.ctx.workspace_name,
        };
        let mut map = serializer.serialize_map(None)?;
        match data.get("event") {
            Some(value) => map.serialize_entry("event", value)?,
            None => map.serialize_entry("event", event.event_type.as_str())?,
        }
        match data.get("id") {
            Some(value) => map.serialize_entry("id", value)?,
            None => map.serialize_entry("id", event.id.as_str())?,
        }
        match data.get("occurredAt") {
            Some(value) => map.serialize_entry("occurredAt", value)?,
            None => map.serialize_entry("occurredAt", &to_rfc3339(event.occurred_at))?,
        }
        for (key, value) in data {
            match key.as_str() {
                "event" | "id" | "occurredAt" => {}
                "eventRule" => map.serialize_entry(key, &rule_object)?,
                "workspace" => map.serialize_entry(key, &workspace)?,
                _ => map.serialize_entry(key, value)?,
            }
        }
        if !data.contains_key("eventRule") {
            map.serialize_entry("eventRule", &rule_object)?;
        }
        if !data.contains_key("workspace") {
            map.serialize_entry("workspace", &workspace)?;
        }
        map.end()
    }
}

/// `{"id", "name"}`, in that order, as `flat` writes them.
#[derive(serde::Serialize)]
struct Named<'a> {
    id: &'a str,
    name: &'a str,
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::event::RESERVED_KEYS;
    use crate::domain::ids::{EventId, WorkspaceId};

    /// The store contract's sample rule (flat), in `format`.
    fn rule(format: PayloadFormat) -> Rule {
        let workspace = WorkspaceId::generate(1_000);
        let mut rule = crate::store::contract::rule(&workspace, "CRM \"sync\"", &["member.*"]);
        rule.webhook.payload_format = format;
        rule
    }

    fn event(data: Value) -> Event {
        let Value::Object(data) = data else {
            panic!("data must be an object")
        };
        Event {
            id: EventId::generate(2_000),
            workspace_id: WorkspaceId::generate(1_000),
            event_type: crate::domain::event::EventType::parse("member.created")
                .expect("a valid type"),
            occurred_at: 1_767_225_600_123,
            received_at: 1_767_225_600_456,
            data,
            test: false,
            subject: None,
            erased: false,
        }
    }

    fn body_of(rule: &Rule, event: &Event) -> Vec<u8> {
        let ctx = Context {
            rule,
            workspace_name: "Main clinic",
        };
        body(event, &ctx).expect("a JSON body")
    }

    #[test]
    fn the_flat_body_is_the_flat_payload_as_written_by_serde_json() {
        let rule = rule(PayloadFormat::Flat);
        let ctx = Context {
            rule: &rule,
            workspace_name: "Main clinic",
        };
        let ordinary = json!({"zeta": 1, "alpha": {"b": [1, 2.5, null], "a": "é\n"}, "m": true});
        let mut every_reserved = json!({"first": 0});
        for (n, key) in RESERVED_KEYS.iter().enumerate() {
            every_reserved[*key] = json!(format!("from data {n}"));
        }
        every_reserved["last"] = json!(9);
        for data in [json!({}), ordinary, every_reserved] {
            let event = event(data);
            let built = serde_json::to_vec(&Value::Object(flat(&event, &ctx))).unwrap();
            assert_eq!(
                String::from_utf8(body_of(&rule, &event)).unwrap(),
                String::from_utf8(built).unwrap()
            );
        }
    }

    #[test]
    fn the_envelope_carries_id_event_and_payload_in_that_order() {
        let event = event(json!({"patient": {"mrn": "12"}, "a": 1}));
        let expected = serde_json::to_vec(&json!({
            "id": event.id,
            "event": event.event_type,
            "payload": event.data,
        }))
        .unwrap();
        assert_eq!(body_of(&rule(PayloadFormat::Envelope), &event), expected);
    }
}
