//! The API's delivery log takes the UI's event-type families: `event_type=member:*` (or `*`)
//! matches as in a rule's trigger, pages with a cursor, is in the OpenAPI document, and a
//! pattern that is neither a type nor a family is a 400 that says what it should be.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app};
use crate::support::receiver::TestReceiver;

const WAIT: Duration = Duration::from_secs(15);

fn types(page: &Value) -> Vec<String> {
    page["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| d["event_type"].as_str().unwrap().to_owned())
        .collect()
}

fn get_ok(app: &TestApp, path: &str) -> Value {
    let resp = app.get(path);
    assert_eq!(resp.status, 200, "{path}: {}", resp.text);
    resp.body
}

#[test]
fn the_delivery_log_filters_by_an_event_type_family() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    app.create_rule(&receiver.url("/"), &["*"]);
    for t in [
        "member:created",
        "call:completed",
        "member:updated",
        "members:created",
    ] {
        let event = app.ingest(&json!({"type": t}));
        assert_eq!(event.status, 202, "{}", event.text);
        app.wait_settled(event.body["id"].as_str().unwrap(), WAIT);
    }

    let members = get_ok(&app, "/api/v1/deliveries?event_type=member:*");
    assert_eq!(types(&members), ["member:updated", "member:created"]);
    assert!(members["next_cursor"].is_null(), "{members}");
    let all = get_ok(&app, "/api/v1/deliveries?event_type=*");
    assert_eq!(all["data"].as_array().unwrap().len(), 4, "{all}");
    let exact = get_ok(&app, "/api/v1/deliveries?event_type=member:created");
    assert_eq!(types(&exact), ["member:created"]);
    // With the other filters, and a page at a time.
    let first = get_ok(
        &app,
        "/api/v1/deliveries?event_type=member:*&status=succeeded&limit=1",
    );
    assert_eq!(types(&first), ["member:updated"]);
    let cursor = first["next_cursor"].as_str().expect("a next page");
    let second = get_ok(
        &app,
        &format!("/api/v1/deliveries?event_type=member:*&limit=1&cursor={cursor}"),
    );
    assert_eq!(types(&second), ["member:created"]);
    let none = get_ok(&app, "/api/v1/deliveries?event_type=member:*&status=failed");
    assert_eq!(types(&none), Vec::<String>::new());

    for bad in ["mem*ber:*", "member:*x", "**", "Member:*", "member:%20*"] {
        let resp = app.get(&format!("/api/v1/deliveries?event_type={bad}"));
        resp.assert_error(400);
        assert_eq!(resp.code(), "invalid_query", "{bad}: {}", resp.text);
        assert!(
            resp.message().contains("type (member:created)")
                || resp.message().contains("event type"),
            "{bad}: {}",
            resp.text
        );
    }

    // The OpenAPI document says so, with a pattern that admits a family.
    let doc = get_ok(&app, "/api/v1/openapi.json");
    let params = doc["paths"]["/api/v1/deliveries"]["get"]["parameters"]
        .as_array()
        .unwrap();
    let event_type = params
        .iter()
        .find(|p| p["name"] == "event_type")
        .expect("the event_type parameter");
    assert!(
        event_type["description"]
            .as_str()
            .unwrap()
            .contains("member:*"),
        "{event_type}"
    );
    let pattern = event_type["schema"]["pattern"].as_str().unwrap();
    assert!(pattern.contains(r"\*"), "{pattern}");
}
