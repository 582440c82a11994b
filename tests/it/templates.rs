//! Body templates against the real server: what the receiver gets (signed over the rendered
//! bytes), checks on save against the catalog samples, `template_error` at delivery without a
//! retry, and the sandbox's limits.

use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::app::{TestApp, spawn_app};
use crate::support::receiver::TestReceiver;

const WAIT: Duration = Duration::from_secs(20);

fn template_rule(app: &TestApp, url: &str, content_type: &str, template: &str) -> Value {
    let resp = app.post(
        "/api/v1/rules",
        &template_rule_body(url, content_type, template),
    );
    assert_eq!(resp.status, 201, "{}", resp.text);
    resp.body
}

fn template_rule_body(url: &str, content_type: &str, template: &str) -> Value {
    json!({
        "name": "templated",
        "trigger": {"type": "event", "events": ["member:created"]},
        "webhook": {"url": url, "content_type": content_type,
                    "payload_format": "template", "body_template": template},
    })
}

fn member_created(name: &str, id: i64) -> Value {
    json!({"type": "member:created", "data": {"member": {"id": id, "name": name, "labels": ["vip"]}}})
}

#[test]
fn a_json_template_is_rendered_signed_and_delivered() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let rule = template_rule(
        &app,
        &receiver.url("/slack"),
        "application/json",
        r#"{"text": {{ ("New member: " ~ member.name)|tojson }}, "id": {{ id|tojson }}, "rule": {{ eventRule.name|tojson }}}"#,
    );
    assert_eq!(rule["webhook"]["payload_format"], "template");
    let secret = app.secret(rule["id"].as_str().unwrap());
    let resp = app.ingest(&member_created("Ann \"Nan\" O'Neil", 42));
    assert_eq!(resp.status, 202, "{}", resp.text);
    let got = receiver.wait_for(1, WAIT).remove(0);
    assert_eq!(got.header("content-type"), Some("application/json"));
    let body = got.body_json();
    assert_eq!(
        body,
        json!({"text": "New member: Ann \"Nan\" O'Neil", "id": resp.body["id"], "rule": "templated"})
    );
    // The signature covers the rendered bytes exactly as sent.
    let header = got.header("x-webhook-signature").unwrap();
    let t = header
        .split(',')
        .find_map(|p| p.strip_prefix("t="))
        .unwrap();
    let v1 = header
        .split(',')
        .find_map(|p| p.strip_prefix("v1="))
        .unwrap();
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(format!("{t}.").as_bytes());
    mac.update(&got.body);
    assert_eq!(hex::encode(mac.finalize().into_bytes()), v1);
}

#[test]
fn other_content_types_arrive_as_the_template_writes_them() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    template_rule(
        &app,
        &receiver.url("/form"),
        "application/x-www-form-urlencoded",
        "name={{ member.name|urlencode }}&member_id={{ member.id }}",
    );
    app.create_rule_with(json!({
        "name": "xml",
        "trigger": {"type": "event", "events": ["member:created"]},
        "webhook": {"url": receiver.url("/xml"), "content_type": "application/xml",
                    "payload_format": "template",
                    "body_template": "<member id=\"{{ member.id }}\">{{ member.name|e }}</member>"},
    }));
    app.ingest(&member_created("Bea & Co", 7));
    let mut got = receiver.wait_for(2, WAIT);
    got.sort_by(|a, b| a.path.cmp(&b.path));
    assert_eq!(got[0].path, "/form");
    assert_eq!(
        got[0].header("content-type"),
        Some("application/x-www-form-urlencoded")
    );
    assert_eq!(got[0].body, b"name=Bea%20%26%20Co&member_id=7");
    assert_eq!(got[1].path, "/xml");
    assert_eq!(
        String::from_utf8_lossy(&got[1].body),
        "<member id=\"7\">Bea &amp; Co</member>"
    );
}

#[test]
fn templates_are_checked_on_save_against_the_samples() {
    let app = spawn_app();
    let url = "http://127.0.0.1:9/hook";
    let bad = [
        // Not JSON once rendered: the name is not quoted.
        (
            template_rule_body(url, "application/json", r#"{"text": {{ member.name }}}"#),
            "not valid JSON",
        ),
        // Syntax.
        (
            template_rule_body(url, "text/plain", "{% for x in member.labels %}"),
            "syntax",
        ),
        // A field the sample does not have.
        (
            template_rule_body(url, "text/plain", "{{ member.address.city }}"),
            "undefined",
        ),
        // A runaway loop: stopped by the fuel limit even on the sample.
        (
            template_rule_body(
                url,
                "text/plain",
                "{% for a in range(5000) %}{% for b in range(5000) %}{% endfor %}{% endfor %}",
            ),
            "fuel",
        ),
        // Unbounded recursion.
        (
            template_rule_body(
                url,
                "text/plain",
                "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            ),
            "recursion",
        ),
        // No file access.
        (
            template_rule_body(url, "text/plain", "{% include '/etc/passwd' %}"),
            "unknown statement include",
        ),
        (
            json!({"name": "t", "trigger": {"type": "event", "events": ["member:created"]},
                   "webhook": {"url": url, "payload_format": "template"}}),
            "body_template",
        ),
        (
            json!({"name": "t", "trigger": {"type": "event", "events": ["member:created"]},
                   "webhook": {"url": url, "body_template": "{{ id }}"}}),
            "only used with",
        ),
    ];
    for (body, expect) in bad {
        let resp = app.post("/api/v1/rules", &body);
        resp.assert_error(400);
        assert!(
            resp.message().contains("body_template"),
            "field not named: {}",
            resp.text
        );
        assert!(
            resp.message().contains(expect),
            "{expect:?} not in {}",
            resp.text
        );
    }
    assert_eq!(app.get("/api/v1/rules").body["data"], json!([]));
}

#[test]
fn a_template_that_fails_for_a_real_event_is_a_template_error_not_retried() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    // Fine for the sample (member.id 123), far over the fuel limit for a member id of 5000.
    template_rule(
        &app,
        &receiver.url("/hook"),
        "text/plain",
        "{% for a in range(member.id) %}{% for b in range(member.id) %}{% endfor %}{% endfor %}done",
    );
    let resp = app.ingest(&member_created("Big", 5000));
    let deliveries = app.wait_settled(resp.body["id"].as_str().unwrap(), WAIT);
    assert_eq!(deliveries[0]["status"], "failed");
    let d = app.delivery(deliveries[0]["id"].as_str().unwrap());
    let attempts = d["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "not retried: {d}");
    assert_eq!(attempts[0]["error_kind"], "template_error");
    assert!(
        attempts[0]["error"].as_str().unwrap().contains("fuel"),
        "{d}"
    );
    assert_eq!(receiver.expect_quiet(Duration::from_millis(500)), 0);

    // The same rule still delivers events it can render.
    app.ingest(&member_created("Small", 3));
    let got = receiver.wait_for(1, WAIT);
    assert_eq!(got[0].body, b"done");
}
