//! The admin UI's safety fixes, handler by handler over real HTTP: a reload never repeats an
//! action nor shows a secret again; samples learned from traffic carry no real value to any
//! page, API answer, preview or test send; a condition error says why and shows on the
//! dashboard; a rule form shows every field's error at once and drops what the options hide.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app, wait_until};
use crate::support::receiver::TestReceiver;
use crate::support::ui::setup_admin;

const WAIT: Duration = Duration::from_secs(20);
/// A name no sample, placeholder or page text contains: a real patient's, for the test.
const MARKER: &str = "Zebulon Quartermaine";

fn audit_count(app: &TestApp, action: &str, actor_type: &str) -> usize {
    let resp = app.get("/api/v1/audit?limit=250");
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action && e["actor"]["type"] == actor_type)
        .count()
}

fn now_s() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

#[test]
fn a_reload_after_rotating_rotates_nothing_and_the_old_secret_keeps_signing() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let admin = setup_admin(&app, "anna");
    let rule = app.create_rule(&receiver.url("/hook"), &["member:*"]);
    let id = rule["id"].as_str().unwrap();
    let old = app.secret(id);
    admin.get(&format!("/rules/{id}")).assert_status(200);

    let posted = admin.post(&format!("/rules/{id}/rotate"), &[]);
    posted.assert_status(303);
    assert_eq!(posted.location(), format!("/rules/{id}?done=rotated"));
    assert!(!posted.location().contains("whsec"), "no secret in the URL");
    let shown = admin.get(posted.location());
    shown.assert_status(200);
    let new = shown
        .by_id("revealed-secret")
        .expect("the new secret, once");
    assert_ne!(new, old);
    // A reload of the page the browser landed on: no secret, no second rotation.
    let reload = admin.get(posted.location());
    reload.assert_status(200);
    assert!(reload.by_id("revealed-secret").is_none(), "shown once only");
    assert!(!reload.text.contains(&new));
    assert!(reload.text.contains("shown once"), "{}", reload.text);
    assert_eq!(audit_count(&app, "rule.secret.rotate", "user"), 1);
    assert_eq!(app.secret(id), new);

    // Through the overlap the receiver's old secret still verifies, as does the new one.
    let e = app.ingest(&json!({"type": "member:created", "data": {"member": {"id": 1}}}));
    app.wait_settled(e.body["id"].as_str().unwrap(), WAIT);
    let got = receiver.wait_for(1, WAIT).remove(0);
    for secret in [&old, &new] {
        tidings::delivery::verify::verify(secret, &got.headers, &got.body, now_s(), 300)
            .expect("signed with the old and the new secret");
    }
}

#[test]
fn a_revealed_secret_is_shown_once_to_its_session_and_audited_once() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let rule = app.create_rule("http://127.0.0.1:9/hook", &["member:*"]);
    let id = rule["id"].as_str().unwrap();
    let secret = app.secret(id);
    admin.get(&format!("/rules/{id}"));
    let posted = admin.post(&format!("/rules/{id}/secret"), &[]);
    posted.assert_status(303);
    assert_eq!(posted.location(), format!("/rules/{id}?done=revealed"));
    // Another session of the same user does not get it.
    let other = crate::support::ui::Browser::new(&app);
    other.login("anna", crate::support::ui::PASSWORD);
    let elsewhere = other.get(posted.location());
    assert!(elsewhere.by_id("revealed-secret").is_none());
    let shown = admin.get(posted.location());
    assert_eq!(
        shown.by_id("revealed-secret").as_deref(),
        Some(secret.as_str())
    );
    assert!(shown.text.contains("recorded in the audit log"));
    let reload = admin.get(posted.location());
    assert!(reload.by_id("revealed-secret").is_none());
    assert!(!reload.text.contains(&secret));
    assert_eq!(audit_count(&app, "rule.secret.view", "user"), 1);
}

#[test]
fn a_new_api_key_is_shown_once_after_the_redirect() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    admin.get("/keys");
    let posted = admin.post("/keys", &[("name", "EHR"), ("role", "ingest")]);
    posted.assert_status(303);
    assert_eq!(posted.location(), "/keys?done=created");
    let shown = admin.get(posted.location());
    let key = shown.by_id("new-key").expect("the key, once");
    assert!(key.starts_with("tdk_"));
    let reload = admin.get(posted.location());
    assert!(reload.by_id("new-key").is_none());
    assert!(!reload.text.contains(&key));
    assert!(reload.text.contains("cannot be shown again"));
    let keys = app.get("/api/v1/api-keys").body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|k| k["name"] == "EHR")
        .count();
    assert_eq!(keys, 1, "a reload made no second key");
}

#[test]
fn bulk_re_send_redirects_to_the_rule_page() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let rule = app.create_rule("http://127.0.0.1:9/hook", &["member:*"]);
    let id = rule["id"].as_str().unwrap();
    admin.get(&format!("/rules/{id}"));
    let posted = admin.post(
        &format!("/rules/{id}/redeliver-failed"),
        &[("since", "2000-01-01T00:00"), ("until", "")],
    );
    posted.assert_status(303);
    assert_eq!(
        posted.location(),
        format!("/rules/{id}?done=redelivered&count=0")
    );
    let page = admin.get(posted.location());
    assert!(page.text.contains("0 failed deliveries queued"));
}

/// A rule for `patient:admitted` whose template reads the patient's name.
fn patient_rule(app: &TestApp, url: &str) -> String {
    let rule = app.create_rule_with(json!({
        "name": "Admissions", "trigger": {"type": "event", "events": ["patient:admitted"]},
        "webhook": {"url": url, "payload_format": "template",
                    "body_template": "{\"who\": {{ patient.name|tojson }}, \"born\": {{ patient.born|tojson }}}"},
    }));
    rule["id"].as_str().unwrap().to_owned()
}

#[test]
fn a_learned_sample_reaches_no_page_answer_preview_or_test_send_with_a_real_value() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let admin = setup_admin(&app, "anna");
    let id = patient_rule(&app, &receiver.url("/hook"));
    let e = app.ingest(&json!({"type": "patient:admitted", "data": {"patient": {
        "name": MARKER, "born": "1961-02-03", "email": "zq@clinic.example.org",
        "mrn": "00451277", "weight": 71.5, "allergies": ["penicillin"]}}}));
    assert_eq!(e.status, 202, "{}", e.text);
    app.wait_settled(e.body["id"].as_str().unwrap(), WAIT);
    let real = receiver.wait_for(1, WAIT).remove(0);
    assert!(
        String::from_utf8_lossy(&real.body).contains(MARKER),
        "the real delivery"
    );

    let entry = wait_until(WAIT, "patient:admitted seen", || {
        app.get("/api/v1/event-types").body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "patient:admitted")
            .cloned()
    });
    assert_eq!(
        entry["sample"],
        json!({"patient": {"name": "string", "born": "2026-01-01", "email": "name@example.com",
            "mrn": "0", "weight": 0.0, "allergies": ["string"]}})
    );
    let api = app.get("/api/v1/event-types").text;
    let page = admin.get("/event-types");
    page.assert_status(200);
    let preview_page = admin.get(&format!("/rules/{id}/preview"));
    preview_page.assert_status(200);
    let preview_api = app.post(&format!("/api/v1/rules/{id}/preview"), &json!({}));
    assert_eq!(preview_api.status, 200, "{}", preview_api.text);
    assert_eq!(preview_api.body["data"]["patient"]["name"], "string");
    for (what, text) in [
        ("the catalog API", api.as_str()),
        ("the Event types page", page.text.as_str()),
        ("the preview page", preview_page.text.as_str()),
        ("the preview API", preview_api.text.as_str()),
    ] {
        for value in [
            MARKER,
            "1961-02-03",
            "zq@clinic",
            "00451277",
            "penicillin",
            "71.5",
        ] {
            assert!(!text.contains(value), "{what} shows {value:?}");
        }
    }
    // A test send from the page reaches the receiver with placeholders only.
    admin.get(&format!("/rules/{id}"));
    admin
        .post(&format!("/rules/{id}/test"), &[])
        .assert_status(303);
    let test = receiver.wait_for(2, WAIT).remove(1);
    let body = String::from_utf8_lossy(&test.body).into_owned();
    assert_eq!(
        serde_json::from_str::<Value>(&body).unwrap(),
        json!({"who": "string", "born": "2026-01-01"})
    );
    // The template check on save uses the same scrubbed sample: a template that parses the
    // date still passes, and the check's own messages carry no value either.
    let refused = app.post(
        "/api/v1/rules",
        &json!({"name": "bad", "trigger": {"type": "event", "events": ["patient:admitted"]},
                "webhook": {"url": receiver.url("/x"), "payload_format": "template",
                            "body_template": "{{ patient.name }}"}}),
    );
    refused.assert_error(400);
    assert!(!refused.text.contains(MARKER), "{}", refused.text);
}

#[test]
fn a_condition_error_delivery_says_why_and_shows_on_the_dashboard() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let admin = setup_admin(&app, "anna");
    let rule = app.create_rule_with(json!({
        "name": "Long calls", "trigger": {"type": "event", "events": ["member:created"]},
        "condition": "data.call.durationSeconds > 60",
        "webhook": {"url": receiver.url("/hook")},
    }));
    let rid = rule["id"].as_str().unwrap();
    let home = admin.get("/");
    assert_eq!(home.by_id("stat-day-condition").as_deref(), Some("0"));
    assert!(home.text.contains("No rule is failing"));
    let e = app.ingest(&json!({"type": "member:created", "data": {"member": {"id": 1}}}));
    let deliveries = app.wait_settled(e.body["id"].as_str().unwrap(), WAIT);
    assert_eq!(deliveries[0]["status"], "condition_error");
    let reason = deliveries[0]["condition_error"]
        .as_str()
        .unwrap()
        .to_owned();
    let did = deliveries[0]["id"].as_str().unwrap();

    let page = admin.get(&format!("/deliveries/{did}"));
    page.assert_status(200);
    assert!(page.text.contains("id=\"condition-error\""));
    assert!(page.text.contains("condition could not be evaluated"));
    let escaped = reason.replace('"', "&#34;").replace('\'', "&#39;");
    assert!(
        page.text.contains(&reason) || page.text.contains(&escaped),
        "the reason {reason:?} is on the page"
    );
    assert!(!page.text.contains("No attempt yet"));
    assert_eq!(receiver.count(), 0);

    let home = admin.get("/");
    assert_eq!(home.by_id("stat-day-condition").as_deref(), Some("1"));
    assert!(!home.text.contains("No rule is failing"));
    assert!(home.text.contains(&format!("id=\"failing-{rid}\"")));
    assert!(home.text.contains(&format!(
        "/deliveries?rule_id={rid}&amp;status=condition_error"
    )));
    assert!(home.text.contains("could not be evaluated for 1 event "));
}

/// The new-rule form's fields, as a browser posts them.
fn rule_form<'a>(over: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut fields = vec![
        ("name", "Notify"),
        ("description", ""),
        ("active", "true"),
        ("trigger_type", "event"),
        ("events", "member:*"),
        ("cron", ""),
        ("timezone", "UTC"),
        ("condition", ""),
        ("url", "http://127.0.0.1:9/hook"),
        ("method", "POST"),
        ("content_type", "application/json"),
        ("signing", "hmac-sha256"),
        ("payload_format", "flat"),
        ("body_template", ""),
        ("tls_verify", "true"),
        ("timeout_s", "10"),
        ("max_concurrency", "8"),
    ];
    for (k, v) in over {
        fields.iter_mut().find(|(name, _)| name == k).unwrap().1 = v;
    }
    fields
}

#[test]
fn the_rule_form_shows_every_error_at_once_and_drops_what_the_options_hide() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    admin.get("/rules/new");
    // An empty name, a bad condition and a template that renders no JSON: one answer.
    let page = admin.post(
        "/rules/new",
        &rule_form(&[
            ("name", ""),
            ("condition", "data.member.id =="),
            ("payload_format", "template"),
            ("body_template", "Hello {{ member.name }}"),
            ("max_concurrency", "lots"),
        ]),
    );
    page.assert_status(400);
    for id in [
        "err-name",
        "err-condition",
        "err-body_template",
        "err-max_concurrency",
    ] {
        assert!(page.by_id(id).is_some(), "{id}: {}", page.text);
    }
    assert!(
        page.text.contains("4 fields need a change"),
        "{}",
        page.text
    );
    assert!(page.text.contains("href=\"#condition\""));
    assert!(
        page.by_id("err-body_template").unwrap().contains("JSON"),
        "{:?}",
        page.by_id("err-body_template")
    );

    // Back to Flat with the template still typed (now hidden): saved, the template dropped.
    let saved = admin.post(
        "/rules/new",
        &rule_form(&[
            ("body_template", "Hello {{ member.name }}"),
            ("cron", "* *"),
        ]),
    );
    saved.assert_status(303);
    let id = saved
        .location()
        .trim_start_matches("/rules/")
        .split('?')
        .next()
        .unwrap();
    let rule = app.get(&format!("/api/v1/rules/{id}")).body;
    assert_eq!(rule["webhook"]["payload_format"], "flat");
    assert_eq!(rule["webhook"]["body_template"], Value::Null);
    assert_eq!(
        rule["trigger"],
        json!({"type": "event", "events": ["member:*"]})
    );

    // The API still answers with the first error only, in its one shape.
    let api = app.post(
        "/api/v1/rules",
        &json!({"name": "", "condition": "data.member.id ==",
                "trigger": {"type": "event", "events": ["member:*"]},
                "webhook": {"url": "http://127.0.0.1:9/hook"}}),
    );
    api.assert_error(400);
    assert!(api.message().starts_with("name:"), "{}", api.text);
    assert_eq!(
        api.body["error"]
            .as_object()
            .unwrap()
            .keys()
            .collect::<Vec<_>>(),
        ["code", "message"]
    );
}
