//! The event catalog against the real server (built in, seen at ingest, declared), and how
//! test events and previews use its samples together with conditions and templates.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app, spawn_app_with, wait_until};
use crate::support::receiver::TestReceiver;

const WAIT: Duration = Duration::from_secs(20);

fn catalog(app: &TestApp) -> Vec<Value> {
    let resp = app.get("/api/v1/event-types");
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["data"].as_array().unwrap().clone()
}

fn entry(app: &TestApp, name: &str) -> Option<Value> {
    catalog(app).into_iter().find(|e| e["name"] == name)
}

#[test]
fn built_in_types_are_listed_with_samples() {
    let app = spawn_app();
    let names: Vec<String> = catalog(&app)
        .iter()
        .map(|e| e["name"].as_str().unwrap().to_owned())
        .collect();
    for builtin in [
        "ping",
        "routine:fired",
        "data_record:created",
        "data_record:updated",
        "member:created",
        "member:updated",
        "call:completed",
    ] {
        assert!(names.iter().any(|n| n == builtin), "{builtin} in {names:?}");
    }
    let member = entry(&app, "member:created").unwrap();
    assert_eq!(member["sources"], json!(["builtin"]));
    assert!(member["sample"]["member"]["id"].is_number());
    assert!(!member["description"].as_str().unwrap().is_empty());
}

#[test]
fn types_seen_at_ingest_keep_the_shape_of_their_latest_data() {
    let app = spawn_app();
    app.ingest(&json!({"type": "intake:submitted", "data": {"form": {"reason": "Knee pain"}}}));
    let seen = wait_until(WAIT, "intake:submitted in the catalog", || {
        entry(&app, "intake:submitted")
    });
    assert_eq!(seen["sources"], json!(["seen"]));
    // The shape of the data, never its values (the issue's "Real patient data used as samples").
    assert_eq!(seen["sample"], json!({"form": {"reason": "string"}}));
    assert!(seen["last_seen_at"].is_string());
}

#[test]
fn without_stored_bodies_only_the_key_structure_is_kept() {
    let app = spawn_app_with(|c| c.logs.store_bodies = false);
    app.ingest(&json!({"type": "member:created",
        "data": {"member": {"name": "Jane Secret", "id": 991, "labels": ["vip"]}}}));
    let seen = wait_until(WAIT, "member:created seen", || {
        entry(&app, "member:created").filter(|e| e["sources"] == json!(["builtin", "seen"]))
    });
    assert_eq!(
        seen["sample"],
        json!({"member": {"name": "string", "id": 0, "labels": ["string"]}})
    );
    assert!(!app.get("/api/v1/event-types").text.contains("Jane Secret"));
}

#[test]
fn declared_types_are_validated_and_their_sample_drives_test_and_preview() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let bad = [
        (json!({"name": "Bad Name", "sample": {}}), 400),
        (json!({"name": "lab:result", "sample": [1]}), 400),
        (json!({"name": "lab:result", "sample": {"id": "x"}}), 400),
        (json!({"name": "lab:result", "colour": "red"}), 400),
        (json!({"description": "no name"}), 400),
    ];
    for (body, status) in bad {
        app.post("/api/v1/event-types", &body).assert_error(status);
    }
    assert!(
        entry(&app, "lab:result").is_none(),
        "a refused declaration stores nothing"
    );

    let resp = app.post(
        "/api/v1/event-types",
        &json!({"name": "lab:result", "description": "A lab result is ready",
                "sample": {"lab": {"test": "HbA1c", "value": 6.1, "flag": "high"}}}),
    );
    assert_eq!(resp.status, 201, "{}", resp.text);
    assert_eq!(resp.body["sources"], json!(["declared"]));
    let listed = entry(&app, "lab:result").unwrap();
    assert_eq!(listed["description"], "A lab result is ready");

    let rule = app.create_rule_with(json!({
        "name": "Lab alerts",
        "trigger": {"type": "event", "events": ["lab:result"]},
        "condition": r#"data.lab.flag == "high""#,
        "webhook": {"url": receiver.url("/lab"), "content_type": "text/plain",
                    "payload_format": "template",
                    "body_template": "{{ lab.test }} is {{ lab.value }} ({{ lab.flag }})"},
    }));
    let id = rule["id"].as_str().unwrap();

    // Preview: the rendered body, the condition's verdict on the sample, signed headers.
    let preview = app.post(&format!("/api/v1/rules/{id}/preview"), &json!({}));
    assert_eq!(preview.status, 200, "{}", preview.text);
    assert_eq!(preview.body["event_type"], "lab:result");
    assert_eq!(preview.body["body"], "HbA1c is 6.1 (high)");
    assert_eq!(preview.body["condition"]["result"], true);
    assert!(
        preview.body["headers"]["X-Webhook-Signature"]
            .as_str()
            .unwrap()
            .contains("v1=")
    );
    assert_eq!(preview.body["template_error"], Value::Null);
    // With other data the verdict changes, and a failing render is shown, not sent.
    let low = app.post(
        &format!("/api/v1/rules/{id}/preview"),
        &json!({"data": {"lab": {"test": "LDL", "value": 90, "flag": "normal"}}}),
    );
    assert_eq!(low.body["condition"]["result"], false);
    let broken = app.post(
        &format!("/api/v1/rules/{id}/preview"),
        &json!({"data": {"other": 1}}),
    );
    assert_eq!(broken.body["body"], Value::Null);
    assert!(
        broken.body["template_error"]
            .as_str()
            .unwrap()
            .contains("undefined")
    );
    assert!(broken.body["condition"]["error"].is_string());

    // Test event: sent now with the declared sample, logged as a test.
    let test = app.post(&format!("/api/v1/rules/{id}/test"), &json!({}));
    assert_eq!(test.status, 200, "{}", test.text);
    assert_eq!(test.body["test"], true);
    assert_eq!(test.body["status"], "succeeded");
    let got = receiver.wait_for(1, WAIT);
    assert_eq!(got[0].body, b"HbA1c is 6.1 (high)");
    assert_eq!(got[0].header("content-type"), Some("text/plain"));

    // A test whose template fails logs template_error and sends nothing.
    let failed = app.post(
        &format!("/api/v1/rules/{id}/test"),
        &json!({"data": {"other": 1}}),
    );
    assert_eq!(failed.status, 200, "{}", failed.text);
    assert_eq!(failed.body["status"], "failed");
    assert_eq!(failed.body["attempts"][0]["error_kind"], "template_error");
    assert_eq!(receiver.expect_quiet(Duration::from_millis(500)), 1);

    // Re-declaring updates the sample used from then on, and is audited.
    app.post(
        "/api/v1/event-types",
        &json!({"name": "lab:result", "sample": {"lab": {"test": "TSH", "value": 2, "flag": "high"}}}),
    );
    let again = app.post(&format!("/api/v1/rules/{id}/preview"), &json!({}));
    assert_eq!(again.body["body"], "TSH is 2 (high)");
    let audit = app.get("/api/v1/audit?limit=50");
    let declared = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == "event_type.declare")
        .count();
    assert_eq!(declared, 2);
}

#[test]
fn a_template_rule_for_a_wildcard_is_checked_against_every_known_matching_type() {
    let app = spawn_app();
    // member:created and member:updated samples have member.email; a declared member:merged
    // without it makes the template fail on save.
    app.post(
        "/api/v1/event-types",
        &json!({"name": "member:merged", "sample": {"member": {"id": 1}}}),
    );
    let resp = app.post(
        "/api/v1/rules",
        &json!({"name": "emails", "trigger": {"type": "event", "events": ["member:*"]},
                "webhook": {"url": "http://127.0.0.1:9/x", "content_type": "text/plain",
                            "payload_format": "template", "body_template": "{{ member.email }}"}}),
    );
    resp.assert_error(400);
    assert!(resp.message().contains("member:merged"), "{}", resp.text);
}

#[test]
fn a_template_for_a_type_nobody_declared_is_checked_once_it_is_declared() {
    let app = spawn_app();
    let rule = json!({"name": "labs", "trigger": {"type": "event", "events": ["lab:result"]},
        "webhook": {"url": "http://127.0.0.1:9/x", "content_type": "text/plain",
                    "payload_format": "template", "body_template": "{{ lab.test }}"}});
    // Nothing is known of lab:result yet: nothing to check against, so it is accepted.
    let first = app.post("/api/v1/rules", &rule);
    assert_eq!(first.status, 201, "{}", first.text);
    // Declared with a sample that lacks the field, the same template is refused.
    app.post(
        "/api/v1/event-types",
        &json!({"name": "lab:result", "sample": {"result": {"code": "HbA1c"}}}),
    );
    let second = app.post("/api/v1/rules", &rule);
    second.assert_error(400);
    assert!(second.message().contains("lab:result"), "{}", second.text);
}
