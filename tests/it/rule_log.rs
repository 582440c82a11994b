//! A rule's `log` settings (SPEC §13): redacted paths reach the receiver intact and are
//! masked in the delivery log, a rule can keep no bodies, and its shorter retention prunes
//! its deliveries before the server's; bad settings are refused at their field.

use std::time::Duration;

use serde_json::{Value, json};
use tidings::domain::time::{Clock, now_ms};

use crate::support::app::{TestApp, spawn_app, spawn_app_with_clock, wait_until};
use crate::support::receiver::{Reply, TestReceiver};

const SSN: &str = "123-45-6789";
const DAY_MS: i64 = 86_400_000;

fn member_event() -> Value {
    json!({"type": "member:created", "data": {"member": {"ssn": SSN, "name": "Li"}, "dataRecord": {"fields": {"dob": "1990-04-01"}}}})
}

/// The first attempt of the event's only delivery, as the API shows it.
fn first_attempt(app: &TestApp, event_id: &str) -> Value {
    let settled = app.wait_settled(event_id, Duration::from_secs(20));
    let delivery = app.delivery(settled[0]["id"].as_str().unwrap());
    delivery["attempts"][0].clone()
}

fn logged_body(attempt: &Value) -> Value {
    serde_json::from_str(attempt["request"]["body"].as_str().expect("a logged body")).unwrap()
}

#[test]
fn redacted_paths_reach_the_receiver_intact_and_are_masked_in_the_log() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let rule = app.create_rule_with(json!({
        "name": "CRM",
        "trigger": {"type": "event", "events": ["member:created"]},
        "webhook": {"url": receiver.url("/")},
        "log": {"redact": ["member.ssn", "dataRecord.fields.dob", "not.there"]},
    }));
    assert_eq!(
        rule["log"],
        json!({"store_bodies": true, "retention_days": null, "redact": ["member.ssn", "dataRecord.fields.dob", "not.there"]})
    );
    let event = app.ingest(&member_event()).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sent = receiver
        .wait_for(1, Duration::from_secs(20))
        .remove(0)
        .body_json();
    assert_eq!(sent["member"]["ssn"], SSN, "the receiver gets the value");
    assert_eq!(sent["dataRecord"]["fields"]["dob"], "1990-04-01");

    let attempt = first_attempt(&app, &event);
    let logged = logged_body(&attempt);
    assert_eq!(logged["member"]["ssn"], "********");
    assert_eq!(logged["dataRecord"]["fields"]["dob"], "********");
    assert_eq!(logged["member"]["name"], "Li", "other values are logged");
    assert!(logged.get("not").is_none(), "an absent path adds nothing");
    let shown = app.get(&format!("/api/v1/events/{event}")).text;
    assert!(
        !attempt.to_string().contains(SSN),
        "the attempt holds no redacted value: {attempt}"
    );
    // The event itself keeps its data (redaction is of the delivery log).
    assert!(shown.contains(SSN));
}

#[test]
fn a_template_body_is_logged_as_rendered_from_the_masked_event() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    app.create_rule_with(json!({
        "name": "EHR",
        "trigger": {"type": "event", "events": ["member:created"]},
        "webhook": {
            "url": receiver.url("/"),
            "payload_format": "template",
            "body_template": "{\"patient\": {\"ssn\": {{ member.ssn | tojson }}}}",
        },
        "log": {"redact": ["member.ssn"]},
    }));
    let event = app.ingest(&member_event()).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let sent = receiver
        .wait_for(1, Duration::from_secs(20))
        .remove(0)
        .body_json();
    assert_eq!(sent, json!({"patient": {"ssn": SSN}}));
    let logged = logged_body(&first_attempt(&app, &event));
    assert_eq!(logged, json!({"patient": {"ssn": "********"}}));
}

#[test]
fn a_rule_that_keeps_no_bodies_logs_neither_request_nor_response_body() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(200).body("{\"echo\": \"123-45-6789\"}"));
    app.create_rule_with(json!({
        "name": "Quiet",
        "trigger": {"type": "event", "events": ["member:created"]},
        "webhook": {"url": receiver.url("/")},
        "log": {"store_bodies": false},
    }));
    let event = app.ingest(&member_event()).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    receiver.wait_for(1, Duration::from_secs(20));
    let attempt = first_attempt(&app, &event);
    assert_eq!(attempt["status_code"], 200);
    assert!(attempt["request"]["body"].is_null(), "{attempt}");
    assert!(attempt["response"]["body"].is_null(), "{attempt}");
    assert!(!attempt.to_string().contains(SSN));
}

#[test]
fn a_rules_shorter_retention_prunes_its_deliveries_before_the_servers() {
    let clock = Clock::manual(now_ms());
    let app = spawn_app_with_clock(|c| c.logs.retention_days = 30, clock.clone());
    let receiver = TestReceiver::start();
    app.create_rule_with(json!({
        "name": "Short",
        "trigger": {"type": "event", "events": ["short:*"]},
        "webhook": {"url": receiver.url("/")},
        "log": {"retention_days": 2},
    }));
    app.create_rule(&receiver.url("/"), &["long:*"]);
    let short = app.ingest(&json!({"type": "short:x"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let long = app.ingest(&json!({"type": "long:x"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_settled(&short, Duration::from_secs(20));
    app.wait_settled(&long, Duration::from_secs(20));

    clock.advance(DAY_MS);
    assert_eq!(app.get(&format!("/api/v1/events/{short}")).status, 200);
    clock.advance(2 * DAY_MS);
    wait_until(
        Duration::from_secs(20),
        "the short rule's event to be pruned",
        || (app.get(&format!("/api/v1/events/{short}")).status == 404).then_some(()),
    );
    let kept = app.get(&format!("/api/v1/events/{long}"));
    assert_eq!(
        kept.status, 200,
        "the server's 30 days hold for the other rule"
    );
    assert_eq!(kept.body["deliveries"].as_array().unwrap().len(), 1);
}

#[test]
fn bad_log_settings_are_refused_at_their_field_and_store_nothing() {
    let app = spawn_app();
    let base = |log: Value| {
        json!({
            "name": "bad",
            "trigger": {"type": "event", "events": ["x"]},
            "webhook": {"url": "http://127.0.0.1:9/"},
            "log": log,
        })
    };
    let cases = [
        (json!({"retention_days": 0}), "log.retention_days"),
        (json!({"retention_days": 3651}), "log.retention_days"),
        (json!({"redact": ["data.member.ssn"]}), "log.redact[0]"),
        (json!({"redact": ["member..ssn"]}), "log.redact[0]"),
        (
            json!({"redact": (0..33).map(|i| format!("k{i}")).collect::<Vec<_>>()}),
            "log.redact",
        ),
        (json!({"bogus": true}), "bogus"),
        (json!({"redact": "member.ssn"}), "log.redact"),
    ];
    for (log, field) in cases {
        let resp = app.post("/api/v1/rules", &base(log.clone()));
        resp.assert_error(400);
        assert!(resp.message().contains(field), "{log} → {}", resp.message());
    }
    let listed = app.get("/api/v1/rules");
    assert_eq!(
        listed.body["data"].as_array().unwrap().len(),
        0,
        "nothing stored"
    );

    // A patch that names a bad setting changes nothing either.
    let rule = app.create_rule("http://127.0.0.1:9/", &["x"]);
    let id = rule["id"].as_str().unwrap();
    app.send(
        "PATCH",
        &format!("/api/v1/rules/{id}"),
        &json!({"log": {"retention_days": -1}}),
    )
    .assert_error(400);
    let patched = app.send(
        "PATCH",
        &format!("/api/v1/rules/{id}"),
        &json!({"log": {"retention_days": 7}}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["log"]["retention_days"], 7);
    assert_eq!(
        patched.body["log"]["store_bodies"], true,
        "the rest keep their defaults"
    );
}

#[test]
fn the_rule_form_sets_and_shows_the_log_settings_and_names_bad_ones() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let admin = crate::support::ui::setup_admin(&app, "anna");
    admin.get("/rules/new");
    let url = receiver.url("/hook");
    let mut fields = crate::ui::form_fields(&url, "CRM");
    // Bad settings: each is named at its box, and nothing is saved.
    fields.extend([
        ("log_retention_days", "soon"),
        ("log_redact", "member.ssn\ndata.member.dob"),
    ]);
    let refused = admin.post("/rules/new", &fields);
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(
        refused.text.contains("err-log_retention_days"),
        "{}",
        refused.text
    );
    assert!(refused.text.contains("err-log_redact"));
    let box_at = refused
        .text
        .find("err-log_redact\">")
        .expect("the error box");
    let shown = &refused.text[box_at..(box_at + 300).min(refused.text.len())];
    assert!(shown.contains("member.dob"), "{shown}");
    assert_eq!(
        app.get("/api/v1/rules").body["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let mut fields = crate::ui::form_fields(&url, "CRM");
    fields.extend([
        ("log_retention_days", "7"),
        ("log_redact", "member.ssn\n\n dataRecord.fields.dob "),
    ]);
    let made = admin.post("/rules/new", &fields);
    assert_eq!(made.status, 303, "{}", made.text);
    let rule = &app.get("/api/v1/rules").body["data"][0];
    assert_eq!(
        rule["log"],
        json!({"store_bodies": false, "retention_days": 7, "redact": ["member.ssn", "dataRecord.fields.dob"]}),
        "an unticked box keeps no bodies"
    );
    let id = rule["id"].as_str().unwrap();
    let page = admin.get(&format!("/rules/{id}"));
    assert!(
        page.text
            .contains("no bodies; kept 7 days at most; hidden: member.ssn, dataRecord.fields.dob"),
        "{}",
        page.text
    );
    let edit = admin.get(&format!("/rules/{id}/edit"));
    assert!(
        edit.text
            .contains("member.ssn\ndataRecord.fields.dob</textarea>"),
        "{}",
        edit.text
    );
    assert!(edit.text.contains("value=\"7\""));
}
