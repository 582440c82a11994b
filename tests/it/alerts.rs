//! Alerts (SPEC §11): system events made when a rule starts failing, recovers or is turned
//! off, routed by ordinary rules on `tidings:*`; once per episode, across a restart, and
//! never about a delivery of a system event itself.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app_with, start, temp_dir, test_config, wait_until};
use crate::support::receiver::{Recorded, Reply, TestCa, TestReceiver};
use crate::support::smtp::{self, TestSmtp};
use crate::support::ui::setup_admin;
use tidings::config::Mode;
use tidings::domain::time::Clock;
use tidings::security::crypto::Secret;

const WAIT: Duration = Duration::from_secs(15);

fn member(app: &TestApp) {
    let resp = app.ingest(
        &json!({"type": "member:created", "data": {"member": {"id": 1, "name": "Jane Example"}}}),
    );
    assert_eq!(resp.status, 202, "{}", resp.text);
}

fn rule_named(app: &TestApp, name: &str, url: &str, events: &[&str]) -> String {
    let rule = app.create_rule_with(json!({
        "name": name,
        "trigger": {"type": "event", "events": events},
        "webhook": {"url": url},
    }));
    rule["id"].as_str().unwrap().to_owned()
}

fn kinds(got: &[Recorded]) -> Vec<String> {
    got.iter()
        .map(|r| {
            r.body_json()["event"]
                .as_str()
                .unwrap_or_default()
                .to_owned()
        })
        .collect()
}

fn open_alerts(app: &TestApp) -> Vec<Value> {
    let resp = app.get("/api/v1/alerts");
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["data"].as_array().unwrap().clone()
}

#[test]
fn a_failing_receiver_alerts_once_and_its_recovery_once() {
    let app = spawn_app_with(|c| c.alerts.failing_after = 3);
    let alerts = TestReceiver::start();
    let everything = TestReceiver::start();
    let ehr = TestReceiver::start();
    ehr.set_default(Reply::status(503));
    rule_named(&app, "alert hook", &alerts.url("/slack"), &["tidings:*"]);
    rule_named(&app, "everything", &everything.url("/all"), &["*"]);
    // README's chat example, saved (its template checked against every system event's
    // sample) and delivered.
    let chat = TestReceiver::start();
    app.create_rule_with(json!({
        "name": "tidings alerts to Slack",
        "trigger": {"type": "event", "events": ["tidings:*"]},
        "webhook": {"url": chat.url("/services/x"), "payload_format": "template",
                    "body_template": "{\"text\": {{ (event ~ \": \" ~ (rule.name if rule is defined else detail))|tojson }}}"},
    }));
    let ehr_rule = rule_named(&app, "EHR", &ehr.url("/ehr"), &["member:created"]);

    member(&app);
    member(&app);
    // Two deliveries of five attempts each, all failing: one alert.
    ehr.wait_for(10, WAIT);
    let got = alerts.wait_for(1, WAIT);
    let body = got[0].body_json();
    assert_eq!(body["event"], "tidings:rule.failing", "{body}");
    assert_eq!(body["rule"]["id"], ehr_rule.as_str());
    assert_eq!(body["rule"]["name"], "EHR");
    assert_eq!(body["failed_attempts"], 3);
    assert_eq!(body["last_status_code"], 503);
    assert_eq!(body["last_error_kind"], "http_status");
    assert!(body["since"].as_str().is_some_and(|s| s.ends_with('Z')));
    assert!(
        body.get("member").is_none(),
        "no event data in an alert: {body}"
    );
    assert_eq!(alerts.expect_quiet(Duration::from_millis(1500)), 1);
    assert_eq!(
        chat.wait_for(1, WAIT)[0].body_json(),
        json!({"text": "tidings:rule.failing: EHR"})
    );

    let open = open_alerts(&app);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["kind"], "tidings:rule.failing");
    assert_eq!(open[0]["rule"]["id"], ehr_rule.as_str());
    assert!(open[0]["detail"].as_str().unwrap().contains("503"));

    ehr.set_default(Reply::status(200));
    member(&app);
    let got = alerts.wait_for(2, WAIT);
    let body = got[1].body_json();
    assert_eq!(body["event"], "tidings:rule.recovered", "{body}");
    assert_eq!(body["rule"]["id"], ehr_rule.as_str());
    assert!(body["failed_since"].is_string() && body["recovered_at"].is_string());
    member(&app);
    ehr.wait_for(12, WAIT);
    assert_eq!(alerts.expect_quiet(Duration::from_millis(800)), 2);
    assert!(open_alerts(&app).is_empty());

    // `*` never matched tidings' own events; the catalog knows them, with samples.
    let seen = kinds(&everything.wait_for(4, WAIT));
    assert!(seen.iter().all(|k| k == "member:created"), "{seen:?}");
    let catalog = app.get("/api/v1/event-types");
    let failing = catalog.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "tidings:rule.failing")
        .cloned()
        .expect("tidings:rule.failing in the catalog");
    // Seen now, so its sample is the shape of the real one.
    assert!(failing["sample"]["rule"]["id"].is_string(), "{failing}");
    assert!(
        failing["sample"].get("last_status_code").is_some(),
        "{failing}"
    );
}

#[test]
fn a_410_turns_the_rule_off_with_one_alert_that_stays_open() {
    let app = spawn_app_with(|c| c.alerts.failing_after = 3);
    let alerts = TestReceiver::start();
    let gone = TestReceiver::start();
    gone.set_default(Reply::status(410));
    rule_named(&app, "alert hook", &alerts.url("/slack"), &["tidings:*"]);
    let rule = rule_named(&app, "old CRM", &gone.url("/crm"), &["member:created"]);
    member(&app);
    let got = alerts.wait_for(1, WAIT);
    let body = got[0].body_json();
    assert_eq!(body["event"], "tidings:rule.deactivated", "{body}");
    assert_eq!(body["rule"]["id"], rule.as_str());
    assert!(body["reason"].as_str().unwrap().contains("410"), "{body}");
    assert_eq!(alerts.expect_quiet(Duration::from_secs(1)), 1);
    let open = open_alerts(&app);
    assert_eq!(open.len(), 1, "{open:?}");
    assert_eq!(open[0]["kind"], "tidings:rule.deactivated");
    assert!(open[0]["detail"].as_str().unwrap().contains("410"));
}

#[test]
fn a_restart_neither_repeats_nor_forgets_an_episode() {
    let dir = temp_dir("alerts-restart");
    let mut config = test_config(&dir);
    config.alerts.failing_after = 7;
    let alerts = TestReceiver::start();
    let ehr = TestReceiver::start();
    ehr.set_default(Reply::status(500));

    let app = start(config.clone());
    rule_named(&app, "alert hook", &alerts.url("/slack"), &["tidings:*"]);
    let ehr_rule = rule_named(&app, "EHR", &ehr.url("/ehr"), &["member:created"]);
    member(&app);
    ehr.wait_for(5, WAIT);
    // Five failures of seven: nothing yet, and the count survives the restart.
    assert_eq!(alerts.expect_quiet(Duration::from_millis(500)), 0);
    app.stop();

    let app = start(config.clone());
    member(&app);
    let got = alerts.wait_for(1, WAIT);
    assert_eq!(got[0].body_json()["event"], "tidings:rule.failing");
    assert_eq!(got[0].body_json()["failed_attempts"], 7);
    ehr.wait_for(10, WAIT);
    app.stop();

    let app = start(config);
    member(&app);
    ehr.wait_for(15, WAIT);
    assert_eq!(
        alerts.expect_quiet(Duration::from_millis(800)),
        1,
        "no second alert for the same episode"
    );
    let open = open_alerts(&app);
    assert_eq!(open.len(), 1, "the open alert is remembered: {open:?}");
    ehr.set_default(Reply::status(200));
    member(&app);
    let got = alerts.wait_for(2, WAIT);
    assert_eq!(got[1].body_json()["event"], "tidings:rule.recovered");
    assert_eq!(got[1].body_json()["rule"]["id"], ehr_rule.as_str());
}

#[test]
fn a_rule_on_tidings_events_to_a_failing_receiver_does_not_alert_about_itself() {
    let app = spawn_app_with(|c| c.alerts.failing_after = 2);
    let broken_chat = TestReceiver::start();
    broken_chat.set_default(Reply::status(500));
    let ehr = TestReceiver::start();
    ehr.set_default(Reply::status(503));
    let chat_rule = rule_named(&app, "chat", &broken_chat.url("/hook"), &["tidings:*"]);
    let ehr_rule = rule_named(&app, "EHR", &ehr.url("/ehr"), &["member:created"]);
    member(&app);
    ehr.wait_for(5, WAIT);
    // One system event, tried five times, and nothing about the chat rule's own failures.
    let got = broken_chat.wait_for(5, WAIT);
    assert!(kinds(&got).iter().all(|k| k == "tidings:rule.failing"));
    assert_eq!(broken_chat.expect_quiet(Duration::from_millis(1500)), 5);
    let open = open_alerts(&app);
    let rules: Vec<&str> = open
        .iter()
        .filter_map(|a| a["rule"]["id"].as_str())
        .collect();
    assert_eq!(rules, [ehr_rule.as_str()], "{open:?}");
    assert!(!rules.contains(&chat_rule.as_str()));
}

#[test]
fn the_tidings_prefix_is_reserved_for_tidings() {
    let app = spawn_app_with(|_| {});
    let receiver = TestReceiver::start();
    rule_named(&app, "alert hook", &receiver.url("/a"), &["tidings:*"]);
    let resp = app.ingest(&json!({"type": "tidings:rule.failing", "data": {}}));
    resp.assert_error(400);
    assert_eq!(resp.code(), "invalid_event_type");
    assert!(resp.message().contains("reserved"), "{}", resp.text);
    let resp = app.ingest(
        &json!({"type": "member:created", "idempotency_key": "tidings:rule.failing:rul_x:1"}),
    );
    resp.assert_error(400);
    assert!(resp.message().contains("reserved"), "{}", resp.text);
    let resp = app.post(
        "/api/v1/event-types",
        &json!({"name": "tidings:rule.failing", "description": "mine"}),
    );
    resp.assert_error(400);
    assert_eq!(receiver.expect_quiet(Duration::from_millis(300)), 0);
    // The list is for admins; an ingest key may not read it.
    app.raw(
        "GET",
        "/api/v1/alerts",
        Some(&app.ingest_key.clone()),
        None,
        &[],
    )
    .assert_error(403);
}

#[test]
fn the_test_mail_says_alert_mail_is_off_when_it_is() {
    let app = spawn_app_with(|_| {});
    let resp = app.post("/api/v1/alerts/test-email", &json!({}));
    resp.assert_error(409);
    assert!(
        resp.message().contains("alerts.email.smtp_url"),
        "{}",
        resp.text
    );
}

#[test]
fn alert_mail_goes_out_over_starttls_with_auth_and_no_event_data() {
    let ca = TestCa::new();
    let Some(smtp) = TestSmtp::start(&ca) else {
        return;
    };
    let app = spawn_app_with(|c| {
        c.alerts.failing_after = 3;
        c.public_url = "https://tidings.clinic.example/".into();
        c.alerts.email.smtp_url = format!("smtp://alerts%40clinic.example@127.0.0.1:{}", smtp.port);
        c.alerts.email.password = Some(Secret::new(smtp::PASSWORD.into()));
        c.alerts.email.from = "tidings <tidings@clinic.example>".into();
        c.alerts.email.to = vec!["office@clinic.example".into()];
        c.alerts.email.ca_file = smtp.ca_file(&ca);
    });
    let ehr = TestReceiver::start();
    ehr.set_default(Reply::status(503));
    let rule = rule_named(
        &app,
        "EHR appointments",
        &ehr.url("/ehr"),
        &["member:created"],
    );
    member(&app);

    let mail = smtp.wait_for_mail(WAIT);
    assert_eq!(mail["tls"], true, "STARTTLS was used: {mail}");
    assert_eq!(mail["starttls"], true, "{mail}");
    assert_eq!(mail["authenticated"], true, "{mail}");
    assert_eq!(mail["mail_from"], "tidings@clinic.example");
    assert_eq!(mail["rcpt_to"], json!(["office@clinic.example"]));
    assert_eq!(mail["from"], "tidings <tidings@clinic.example>");
    let subject = mail["subject"].as_str().unwrap();
    assert!(subject.starts_with("[tidings] "), "{subject}");
    assert!(subject.contains("EHR appointments"), "{subject}");
    let body = mail["body"].as_str().unwrap();
    assert!(
        body.contains(&format!("https://tidings.clinic.example/rules/{rule}")),
        "{body}"
    );
    assert!(body.contains("503"), "what is wrong: {body}");
    for phi in ["Jane", "member", "\"id\""] {
        assert!(
            !body.contains(phi) && !subject.contains(phi),
            "{phi} in {body}"
        );
    }

    // The recovery comes within alerts.email.min_interval (1h): an event, but no mail.
    let alerts = TestReceiver::start();
    rule_named(
        &app,
        "alert hook",
        &alerts.url("/a"),
        &["tidings:rule.recovered"],
    );
    ehr.set_default(Reply::status(200));
    member(&app);
    alerts.wait_for(1, WAIT);
    smtp.expect_no_mail(Duration::from_secs(1));

    // An admin opts in on their account page (a bad address is refused, changing nothing).
    let anna = setup_admin(&app, "anna");
    let page = anna.post(
        "/account",
        &[("alerts", "on"), ("alert_email", "anna at clinic")],
    );
    assert_eq!(page.status, 400, "{}", page.text);
    assert!(page.text.contains("not an email address"), "{}", page.text);
    let page = anna.post(
        "/account",
        &[("alerts", "on"), ("alert_email", "anna@clinic.example")],
    );
    assert_eq!(page.status, 303, "{}", page.text);
    assert!(
        anna.get("/account")
            .text
            .contains("value=\"anna@clinic.example\"")
    );

    let resp = app.post("/api/v1/alerts/test-email", &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(
        resp.body["to"],
        json!(["office@clinic.example", "anna@clinic.example"])
    );
    let mail = smtp.wait_for_mail(WAIT);
    assert_eq!(mail["subject"], "[tidings] Test mail");
    assert_eq!(mail["tls"], true);
    assert_eq!(
        mail["rcpt_to"],
        json!(["office@clinic.example", "anna@clinic.example"])
    );

    // The settings page's button sends the same mail, then redirects to the page, which says
    // once whom it went to: a reload shows no names and sends nothing.
    anna.get("/settings").assert_status(200);
    let sent = anna.post("/settings/test-email", &[]);
    assert_eq!(sent.status, 303, "{}", sent.text);
    assert_eq!(sent.location(), "/settings?done=test-mail");
    let page = anna.get(sent.location());
    page.assert_status(200);
    assert!(
        page.text
            .contains("Test mail sent to office@clinic.example, anna@clinic.example."),
        "{}",
        page.text
    );
    assert_eq!(smtp.wait_for_mail(WAIT)["subject"], "[tidings] Test mail");
    let again = anna.get(sent.location());
    again.assert_status(200);
    assert!(!again.text.contains("Test mail sent to"), "{}", again.text);
    assert!(again.text.contains("was shown once"), "{}", again.text);
    smtp.expect_no_mail(Duration::from_millis(300));

    // Opting out again leaves the configured address only.
    let page = anna.post("/account", &[("alert_email", "anna@clinic.example")]);
    assert_eq!(page.status, 303, "{}", page.text);
    let resp = app.post("/api/v1/alerts/test-email", &json!({}));
    assert_eq!(
        resp.body["to"],
        json!(["office@clinic.example"]),
        "{}",
        resp.text
    );
    smtp.wait_for_mail(WAIT);
}

#[test]
fn a_mail_the_server_refuses_is_a_502_mail_failed() {
    let ca = TestCa::new();
    let Some(smtp) = TestSmtp::start(&ca) else {
        return;
    };
    let app = spawn_app_with(|c| {
        c.alerts.email.smtp_url = format!(
            "smtp://alerts%40clinic.example:wrong@127.0.0.1:{}",
            smtp.port
        );
        c.alerts.email.from = "tidings@clinic.example".into();
        c.alerts.email.to = vec!["office@clinic.example".into()];
        c.alerts.email.ca_file = smtp.ca_file(&ca);
    });
    let resp = app.post("/api/v1/alerts/test-email", &json!({}));
    resp.assert_error(502);
    assert_eq!(resp.code(), "mail_failed");
    assert!(
        resp.message().contains("did not take the mail"),
        "{}",
        resp.text
    );
    smtp.expect_no_mail(Duration::from_millis(300));

    // The settings page's button shows the refusal in place, with its status: nothing was
    // sent, so there is nothing for a redirect to protect from a reload.
    let anna = setup_admin(&app, "anna");
    anna.get("/settings").assert_status(200);
    let page = anna.post("/settings/test-email", &[]);
    assert_eq!(page.status, 502, "{}", page.text);
    assert!(page.text.contains("No test mail was sent"), "{}", page.text);
    assert!(page.text.contains("did not take the mail"), "{}", page.text);
    smtp.expect_no_mail(Duration::from_millis(300));
}

#[test]
fn bad_mail_settings_stop_start_up_naming_the_key() {
    for (url, mode, needle) in [
        (
            "mail.example.org:587",
            Mode::Development,
            "alerts.email.smtp_url",
        ),
        (
            "smtp://mail.example.org:25?tls=none",
            Mode::Production,
            "alerts.email.smtp_url",
        ),
    ] {
        let dir = temp_dir("alerts-config");
        let mut config = test_config(&dir);
        config.mode = mode;
        config.alerts.email.smtp_url = url.into();
        config.alerts.email.from = "tidings@clinic.example".into();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let err = tidings::run_with_clock(config, listener, None, Clock::system())
            .err()
            .unwrap_or_else(|| panic!("{url} was accepted"));
        let text = format!("{err:#}");
        assert!(text.contains(needle), "{url}: {text}");
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The markup from the element with this id up to `end`.
fn element<'a>(html: &'a str, id: &str, end: &str) -> Option<&'a str> {
    let at = html.find(&format!("id=\"{id}\""))?;
    let len = html[at..].find(end)?;
    Some(&html[at..at + len])
}

#[test]
fn the_ui_shows_open_alerts_on_every_page_and_lists_them_on_the_dashboard() {
    let app = spawn_app_with(|c| c.alerts.failing_after = 2);
    let browser = setup_admin(&app, "anna");
    let page = browser.get("/rules");
    assert!(
        element(&page.text, "alert-banner", "</div>").is_none(),
        "no banner while all is well"
    );
    assert!(browser.get("/").by_id("no-alerts").is_some());

    let ehr = TestReceiver::start();
    ehr.set_default(Reply::status(503));
    let rule = rule_named(
        &app,
        "EHR <appointments>",
        &ehr.url("/ehr"),
        &["member:created"],
    );
    member(&app);
    wait_until(WAIT, "the alert", || {
        (!open_alerts(&app).is_empty()).then_some(())
    });
    for path in ["/", "/rules", "/deliveries", "/event-types", "/settings"] {
        let page = browser.get(path);
        let banner = element(&page.text, "alert-banner", "</div>")
            .unwrap_or_else(|| panic!("no banner on {path}"));
        assert!(
            banner.contains(&format!("/rules/{rule}")),
            "{path}: {banner}"
        );
        assert!(
            banner.contains("EHR &lt;appointments&gt;")
                || banner.contains("EHR &#60;appointments&#62;"),
            "escaped: {banner}"
        );
    }
    let dashboard = browser.get("/");
    let list = element(&dashboard.text, "open-alerts", "</ul>").expect("the dashboard's list");
    assert!(list.contains("is failing</a>, for "), "{list}");
    assert!(list.contains("503"), "{list}");

    // The settings page's button, while alert mail is off, says so and sends nothing.
    let page = browser.get("/settings");
    assert!(page.by_id("mail-off").is_some());
    let page = browser.post("/settings/test-email", &[]);
    assert_eq!(page.status, 409, "{}", page.text);
    assert!(page.text.contains("No test mail was sent"), "{}", page.text);
}

#[test]
fn a_stuck_dispatcher_is_announced_and_listed_until_it_moves() {
    use tidings::delivery::dispatcher::{RESERVED_WORKERS, WORKERS};
    let app = spawn_app_with(|c| {
        c.alerts.dispatcher_stuck_after = Duration::from_millis(500);
        c.delivery.max_workers_per_destination = WORKERS;
    });
    // The alert rule has nothing in flight, so a reserved worker takes its delivery even
    // while every other worker waits on the slow receiver.
    let alerts = TestReceiver::start();
    rule_named(&app, "alert hook", &alerts.url("/a"), &["tidings:*"]);
    let slow = TestReceiver::start();
    // Long enough that the monitor, looking once a second, sees the stall even on a busy
    // machine.
    slow.set_default(Reply::status(200).delay(Duration::from_secs(10)));
    app.create_rule_with(json!({
        "name": "slow",
        "max_concurrency": 64,
        "trigger": {"type": "event", "events": ["ping"]},
        "webhook": {"url": slow.url("/"), "timeout_ms": 30_000},
    }));
    for n in 0..WORKERS + 8 {
        let resp = app.ingest(&json!({"type": "ping", "data": {"n": n}}));
        assert_eq!(resp.status, 202, "{}", resp.text);
    }
    slow.wait_for(WORKERS - RESERVED_WORKERS, WAIT);
    let got = alerts.wait_for(1, Duration::from_secs(20));
    let body = got[0].body_json();
    assert_eq!(body["event"], "tidings:dispatcher.stalled", "{body}");
    assert!(
        body["since"].is_string() && body["detail"].is_string(),
        "{body}"
    );
    let open = open_alerts(&app);
    assert!(
        open.iter()
            .any(|a| a["kind"] == "tidings:dispatcher.stalled" && a["rule"].is_null()),
        "{open:?}"
    );
    slow.set_default(Reply::status(200));
    wait_until(Duration::from_secs(30), "the stall to clear", || {
        open_alerts(&app).is_empty().then_some(())
    });
    // Once per stall: nothing more once it has cleared.
    let arrived = alerts.expect_quiet(Duration::from_secs(1));
    let got = alerts.wait_for(arrived, WAIT);
    assert!(
        kinds(&got)
            .iter()
            .all(|k| k == "tidings:dispatcher.stalled"),
        "{:?}",
        kinds(&got)
    );
}

/// A rule presenting `cert` (mTLS) to `url`, whose own certificate is from the test CA.
fn mtls_rule(app: &TestApp, name: &str, url: &str, (cert, key): &(String, String)) -> String {
    let rule = app.create_rule_with(json!({
        "name": name,
        "trigger": {"type": "event", "events": ["ping"]},
        "webhook": {"url": url, "tls_verify": false,
                    "auth": {"type": "mtls", "client_cert": cert, "client_key": key}},
    }));
    rule["id"].as_str().unwrap().to_owned()
}

fn ping(app: &TestApp) {
    let resp = app.ingest(&json!({"type": "ping"}));
    assert_eq!(resp.status, 202, "{}", resp.text);
}

#[test]
fn a_client_certificate_close_to_expiry_alerts_once_per_certificate() {
    let ca = TestCa::new();
    let smtp = TestSmtp::start(&ca);
    let dir = temp_dir("alerts-cert");
    let mut config = test_config(&dir);
    config.public_url = "https://tidings.clinic.example/".into();
    if let Some(smtp) = &smtp {
        config.alerts.email.smtp_url =
            format!("smtp://alerts%40clinic.example@127.0.0.1:{}", smtp.port);
        config.alerts.email.password = Some(Secret::new(smtp::PASSWORD.into()));
        config.alerts.email.from = "tidings <tidings@clinic.example>".into();
        config.alerts.email.to = vec!["office@clinic.example".into()];
        config.alerts.email.ca_file = smtp.ca_file(&ca);
    }
    let app = start(config.clone());
    let hook = TestReceiver::start();
    rule_named(&app, "alert hook", &hook.url("/a"), &["tidings:*"]);
    let ehr = TestReceiver::start_mtls(&ca);
    let renewed = ca.client_pems("tidings-client", 90);
    let expiring = ca.client_pems("tidings-client", 5);
    mtls_rule(&app, "lab results", &ehr.url("/lab"), &renewed);
    let rule = mtls_rule(&app, "EHR <appointments>", &ehr.url("/ehr"), &expiring);
    ping(&app);

    let got = hook.wait_for(1, WAIT);
    let alert = got[0].body_json();
    assert_eq!(alert["event"], "tidings:rule.cert_expiring", "{alert}");
    assert_eq!(alert["rule"]["id"], rule.as_str());
    assert_eq!(alert["rule"]["name"], "EHR <appointments>");
    let stored = app.get(&format!("/api/v1/rules/{rule}"));
    let expires_at = stored.body["webhook"]["auth"]["client_cert_expires_at"].clone();
    assert_eq!(alert["client_cert_expires_at"], expires_at, "{alert}");

    // Remembered just after it is told.
    let open = wait_until(WAIT, "the open alert", || {
        Some(open_alerts(&app)).filter(|open| !open.is_empty())
    });
    assert_eq!(open.len(), 1, "only the expiring certificate: {open:?}");
    assert_eq!(open[0]["kind"], "tidings:rule.cert_expiring");
    assert_eq!(open[0]["rule"]["id"], rule.as_str());
    let expiry = expires_at.as_str().unwrap();
    assert!(
        open[0]["detail"].as_str().unwrap().contains(expiry),
        "{open:?}"
    );
    let browser = setup_admin(&app, "anna");
    let banner = element(&browser.get("/deliveries").text, "alert-banner", "</div>")
        .map(str::to_owned)
        .expect("a banner");
    assert!(
        banner.contains("client certificate expires soon"),
        "{banner}"
    );
    assert!(banner.contains(&format!("/rules/{rule}")), "{banner}");

    if let Some(smtp) = &smtp {
        let mail = smtp.wait_for_mail(WAIT);
        let subject = mail["subject"].as_str().unwrap();
        assert!(subject.starts_with("[tidings] "), "{subject}");
        assert!(subject.contains("EHR <appointments>"), "{subject}");
        let body = mail["body"].as_str().unwrap();
        assert!(body.contains(expiry), "{body}");
        assert!(
            body.contains(&format!("https://tidings.clinic.example/rules/{rule}")),
            "{body}"
        );
    } else {
        eprintln!("aiosmtpd is missing: the cert_expiring mail is not checked");
    }

    // More attempts and a restart (whose sweep looks at every rule) say nothing new.
    ping(&app);
    ehr.wait_for(4, WAIT);
    assert_eq!(hook.expect_quiet(Duration::from_millis(800)), 1);
    app.stop();
    let app = start(config);
    ping(&app);
    ehr.wait_for(6, WAIT);
    assert_eq!(
        hook.expect_quiet(Duration::from_millis(1500)),
        1,
        "no second alert for the same certificate"
    );
    assert_eq!(open_alerts(&app).len(), 1, "remembered across the restart");

    // A renewed certificate ends the episode; the next one close to expiry is announced.
    let patch = |pems: &(String, String)| {
        let resp = app.send(
            "PATCH",
            &format!("/api/v1/rules/{rule}"),
            &json!({"webhook": {"auth": {"type": "mtls", "client_cert": pems.0, "client_key": pems.1}}}),
        );
        assert_eq!(resp.status, 200, "{}", resp.text);
    };
    patch(&renewed);
    assert!(open_alerts(&app).is_empty(), "renewed: nothing open");
    ping(&app);
    ehr.wait_for(8, WAIT);
    assert_eq!(hook.expect_quiet(Duration::from_millis(800)), 1);
    patch(&ca.client_pems("tidings-client", 3));
    ping(&app);
    let got = hook.wait_for(2, WAIT);
    assert_eq!(got[1].body_json()["event"], "tidings:rule.cert_expiring");
    assert_ne!(got[1].body_json()["client_cert_expires_at"], expires_at);
    if let Some(smtp) = &smtp {
        assert!(
            smtp.wait_for_mail(WAIT)["subject"]
                .as_str()
                .unwrap()
                .contains("client certificate"),
            "the next certificate is mailed too"
        );
    }
}

#[test]
fn alert_mail_goes_out_over_implicit_tls_with_smtps() {
    let ca = TestCa::new();
    let Some(smtp) = TestSmtp::start_implicit_tls(&ca) else {
        return;
    };
    let app = spawn_app_with(|c| {
        c.alerts.failing_after = 2;
        c.public_url = "https://tidings.clinic.example/".into();
        c.alerts.email.smtp_url =
            format!("smtps://alerts%40clinic.example@127.0.0.1:{}", smtp.port);
        c.alerts.email.password = Some(Secret::new(smtp::PASSWORD.into()));
        c.alerts.email.from = "tidings <tidings@clinic.example>".into();
        c.alerts.email.to = vec!["office@clinic.example".into()];
        c.alerts.email.ca_file = smtp.ca_file(&ca);
    });
    let resp = app.post("/api/v1/alerts/test-email", &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text);
    let mail = smtp.wait_for_mail(WAIT);
    assert_eq!(mail["subject"], "[tidings] Test mail");
    assert_eq!(mail["tls"], true, "{mail}");
    assert_eq!(mail["starttls"], false, "TLS from the first byte: {mail}");
    assert_eq!(mail["authenticated"], true, "{mail}");

    let ehr = TestReceiver::start();
    ehr.set_default(Reply::status(503));
    let rule = rule_named(&app, "EHR", &ehr.url("/ehr"), &["member:created"]);
    member(&app);
    let mail = smtp.wait_for_mail(WAIT);
    assert_eq!(mail["subject"], "[tidings] Rule \"EHR\" is failing");
    assert_eq!(mail["tls"], true, "{mail}");
    assert_eq!(mail["rcpt_to"], json!(["office@clinic.example"]));
    assert!(
        mail["body"]
            .as_str()
            .unwrap()
            .contains(&format!("/rules/{rule}")),
        "{mail}"
    );
}
