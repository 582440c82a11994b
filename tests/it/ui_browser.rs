//! End to end in real headless Chromium (Debian's chromium + chromedriver, driven over
//! WebDriver): first-run setup, sign-in, a rule made with the form and pointed at a local
//! receiver, a previewed test event, its place in the history, secret rotation, sign-out;
//! and a viewer who cannot edit. Screenshots of each main page go to target/screenshots/.
//! Skips with a message when chromium or chromedriver is missing, unless
//! `TIDINGS_REQUIRE_EXTERNAL=1`.

use std::time::Duration;

use serde_json::json;
use tidings::domain::user::UserRole;

use crate::support::app::spawn_app;
use crate::support::receiver::TestReceiver;
use crate::support::ui::PASSWORD;
use crate::support::webdriver::{Driver, available};

fn sign_in(d: &Driver, base: &str, username: &str) {
    d.goto(&format!("{base}/login"));
    d.type_into("#username", username);
    d.type_into("#password", PASSWORD);
    d.click("#sign-in");
    d.wait_for_text("Sign out");
}

#[test]
fn setup_sign_in_rule_test_event_rotation_and_sign_out_in_chromium() {
    let Some(chromedriver) = available() else {
        return;
    };
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let base = app.url("");
    let d = Driver::start(&chromedriver);

    // First run: the setup link from the log makes the first admin.
    let token = app.setup_token().unwrap();
    d.goto(&format!("{base}/setup?token={token}"));
    d.screenshot("setup");
    d.type_into("#username", "anna");
    d.type_into("#password", PASSWORD);
    d.type_into("#confirm", PASSWORD);
    d.click("#create-admin");
    d.wait_for_text("Dashboard");
    assert!(
        d.text("body").contains("Development mode"),
        "the dev banner shows"
    );

    // Sign out and back in through the sign-in form.
    d.click("#sign-out");
    d.wait_for_text("Sign in to tidings");
    d.screenshot("login");
    sign_in(&d, &base, "anna");

    // A rule, through the form: JavaScript adds a header row; a first try with no name
    // shows the error at the field and keeps what was typed.
    d.goto(&format!("{base}/rules/new"));
    d.type_into("#events", "member:*");
    d.type_into("#url", &receiver.url("/hook"));
    d.click("#save-rule");
    d.wait_for_text("The rule was not saved");
    assert!(d.text("#err-name").contains("required"));
    assert!(
        d.source().contains(&receiver.url("/hook")),
        "the URL typed is kept"
    );
    d.screenshot("rule-form-error");
    // With JavaScript, "Add a header" adds a labelled row (ids renumbered from 1001).
    d.click("[data-rows=\"header\"] [data-add-row]");
    d.type_into("#header_name_1001", "X-Extra");
    d.type_into("#header_value_1001", "yes");
    assert!(d.exists("label[for=\"header_name_1001\"]"));
    d.type_into("#name", "Notify CRM");
    d.type_into("#header_name_1", "X-Clinic");
    d.type_into("#header_value_1", "north");
    d.type_into("#secret_name_1", "Authorization");
    d.type_into("#secret_value_1", "Bearer s3cret");
    d.screenshot("rule-form");
    d.click("#save-rule");
    d.wait_for_text("Rule created");
    d.screenshot("rule");
    let rule_url = d.current_url();
    let rule_id = rule_url
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    assert!(rule_id.starts_with("rul_"), "{rule_url}");

    // Test event: preview first (nothing sent), then send and see the answer.
    d.click("#preview-test");
    d.wait_for_text("Nothing has been sent yet");
    assert!(d.text("body").contains("X-Webhook-Signature"));
    d.screenshot("preview");
    assert_eq!(receiver.count(), 0);
    d.click("#send-test");
    d.wait_for_text("Attempt 1: succeeded");
    d.screenshot("delivery");
    let got = receiver.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].header("authorization"), Some("Bearer s3cret"));
    assert_eq!(got[0].header("x-clinic"), Some("north"));
    assert_eq!(got[0].header("x-extra"), Some("yes"));
    let delivery_id = last_path_segment(&d);

    // It is in the rule's delivery history and in the log.
    d.goto(&format!("{base}/rules/{rule_id}"));
    assert!(d.exists(&format!("a[href=\"/deliveries/{delivery_id}\"]")));
    d.goto(&format!("{base}/deliveries"));
    assert!(d.exists(&format!("a[href=\"/deliveries/{delivery_id}\"]")));
    d.screenshot("deliveries");

    // Rotate the secret (the confirm dialog is accepted); the new one is shown once.
    let before = app.secret(&rule_id);
    d.goto(&format!("{base}/rules/{rule_id}"));
    d.click("#rotate-secret");
    d.wait_for_text("New signing secret made");
    let shown = d.text("#revealed-secret");
    assert_ne!(shown, before);
    assert_eq!(shown, app.secret(&rule_id));

    // Some real traffic, so the dashboard chart has bars to show.
    // Each one waited for: they are sent in parallel, so the last may finish first.
    for i in 0..5 {
        let e = app.ingest(&json!({"type": "member:created", "data": {"member": {"id": i}}}));
        app.wait_settled(e.body["id"].as_str().unwrap(), Duration::from_secs(10));
    }
    d.goto(&format!("{base}/"));
    d.wait_for_text("Last 24 hours");
    assert_eq!(d.text("#stat-day-ok"), "5", "test sends are not counted");
    assert!(d.exists("svg rect.ok"));

    // The other main pages, for the screenshots (and that they render in a browser).
    for (path, name, marker) in [
        ("/", "dashboard", "Last 24 hours"),
        ("/rules", "rules", "Notify CRM"),
        ("/routines", "routines", "Routines"),
        ("/event-types", "event-types", "routine:fired"),
        ("/keys", "keys", "API keys"),
        ("/users", "users", "anna"),
        ("/audit", "audit", "rule.secret.rotate"),
        ("/settings", "settings", "max_attempts"),
    ] {
        d.goto(&format!("{base}{path}"));
        d.wait_for_text(marker);
        d.screenshot(name);
    }
    // At a phone's width no page makes a person scroll sideways (wide tables scroll in
    // their own box).
    d.set_window(PHONE.0, PHONE.1);
    for path in [
        "/".to_owned(),
        "/rules".to_owned(),
        "/rules/new".to_owned(),
        format!("/rules/{rule_id}"),
        "/routines".to_owned(),
        "/deliveries".to_owned(),
        "/event-types".to_owned(),
        "/keys".to_owned(),
        "/users".to_owned(),
        "/subjects".to_owned(),
        "/audit".to_owned(),
        "/settings".to_owned(),
        "/account".to_owned(),
    ] {
        d.goto(&format!("{base}{path}"));
        assert_eq!(d.sideways_overflow(), 0, "{path} at {}px", PHONE.0);
    }
    // Tablet width: the same page still reads.
    d.set_window(820, 1180);
    d.goto(&format!("{base}/rules/{rule_id}"));
    d.wait_for_text("Recent deliveries");
    d.screenshot("rule-tablet");

    // Sign out: the session is gone.
    d.click("#sign-out");
    d.wait_for_text("Sign in to tidings");
    d.goto(&format!("{base}/rules"));
    d.wait_for_text("Sign in to tidings");
    assert!(d.current_url().contains("/login?next="));
}

#[test]
fn a_viewer_in_chromium_sees_rules_but_cannot_edit_them() {
    let Some(chromedriver) = available() else {
        return;
    };
    let app = spawn_app();
    let rule = app.create_rule_with(json!({
        "name": "Intake forms", "trigger": {"type": "event", "events": ["form:*"]},
        "webhook": {"url": "http://127.0.0.1:9/hook"},
    }));
    let id = rule["id"].as_str().unwrap();
    tidings::app::users::new_user(
        app.store(),
        app.store().default_workspace(),
        "victor",
        UserRole::Viewer,
        PASSWORD,
        None,
        false,
    )
    .unwrap();
    let base = app.url("");
    let d = Driver::start(&chromedriver);
    sign_in(&d, &base, "victor");
    d.goto(&format!("{base}/rules/{id}"));
    d.wait_for_text("Intake forms");
    assert!(!d.exists("#edit-rule"), "no edit button for a viewer");
    assert!(!d.exists("#rotate-secret"));
    assert!(!d.exists("#new-rule"));
    d.screenshot("viewer-rule");
    d.goto(&format!("{base}/rules/{id}/edit"));
    d.wait_for_text("Not allowed");
    assert!(d.text("body").contains("viewer role"));
    d.screenshot("viewer-forbidden");
    assert_eq!(
        app.get(&format!("/api/v1/rules/{id}")).body["name"],
        "Intake forms"
    );
}

/// An admin signed in to Chromium, on a fresh app with a local receiver.
fn admin_in_chromium(
    chromedriver: &std::path::Path,
) -> (crate::support::app::TestApp, TestReceiver, Driver) {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    tidings::app::users::new_user(
        app.store(),
        app.store().default_workspace(),
        "anna",
        UserRole::Admin,
        PASSWORD,
        None,
        false,
    )
    .unwrap();
    let d = Driver::start(chromedriver);
    d.set_window(1366, 900);
    sign_in(&d, &app.url(""), "anna");
    (app, receiver, d)
}

fn audit_count(app: &crate::support::app::TestApp, action: &str) -> usize {
    app.get("/api/v1/audit?limit=250").body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action && e["actor"]["type"] == "user")
        .count()
}

/// The id at the end of the page's address (a rule's or a delivery's), without the query.
fn last_path_segment(d: &Driver) -> String {
    let url = d.current_url();
    let path = url.split('?').next().unwrap_or_default();
    path.rsplit('/').next().unwrap_or_default().to_owned()
}

const PHONE: (u32, u32) = (390, 844);
/// A real patient's name, for the test: no sample, placeholder or page text contains it.
const MARKER: &str = "Perpetua Vandersloot";
const WAIT: Duration = Duration::from_secs(20);

#[test]
fn reloading_after_a_rotation_in_chromium_rotates_nothing() {
    let Some(chromedriver) = available() else {
        return;
    };
    let (app, receiver, d) = admin_in_chromium(&chromedriver);
    let base = app.url("");
    let rule = app.create_rule(&receiver.url("/hook"), &["member:*"]);
    let id = rule["id"].as_str().unwrap();
    let old = app.secret(id);
    d.goto(&format!("{base}/rules/{id}"));
    d.click("#rotate-secret");
    d.wait_for_text("New signing secret made");
    let new = d.text("#revealed-secret");
    assert_ne!(new, old);
    assert!(
        d.current_url()
            .ends_with(&format!("/rules/{id}?done=rotated"))
    );
    d.screenshot("safety-rotated");
    // The reload button: the page again, without the secret and without a second rotation.
    d.refresh();
    d.wait_for_text("shown once");
    assert!(!d.exists("#revealed-secret"));
    assert!(!d.source().contains(&new));
    d.screenshot("safety-rotated-reloaded");
    assert_eq!(audit_count(&app, "rule.secret.rotate"), 1);
    assert_eq!(app.secret(id), new);
    // The receiver still holding the old secret accepts the next delivery (the overlap).
    let e = app.ingest(&json!({"type": "member:created", "data": {"member": {"id": 1}}}));
    app.wait_settled(e.body["id"].as_str().unwrap(), WAIT);
    let got = receiver.wait_for(1, WAIT).remove(0);
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    tidings::delivery::verify::verify(&old, &got.headers, &got.body, now, 300)
        .expect("the old secret still verifies through the overlap");
    // Revealing at phone width: shown once, and its reload neither shows nor audits again.
    d.set_window(PHONE.0, PHONE.1);
    d.click("#reveal-secret");
    d.wait_for_text("recorded in the audit log");
    assert_eq!(d.text("#revealed-secret"), new);
    d.screenshot("safety-revealed-phone");
    d.refresh();
    d.wait_for_text("shown once");
    assert!(!d.exists("#revealed-secret"));
    assert_eq!(audit_count(&app, "rule.secret.view"), 1);
}

#[test]
fn a_learned_sample_in_chromium_shows_no_value_of_the_real_event() {
    let Some(chromedriver) = available() else {
        return;
    };
    let (app, receiver, d) = admin_in_chromium(&chromedriver);
    let base = app.url("");
    let rule = app.create_rule(&receiver.url("/hook"), &["patient:admitted"]);
    let id = rule["id"].as_str().unwrap();
    let e = app.ingest(&json!({"type": "patient:admitted", "data": {"patient": {
        "name": MARKER, "born": "1958-09-30", "email": "perpetua@mail.example.net"}}}));
    app.wait_settled(e.body["id"].as_str().unwrap(), WAIT);
    assert!(String::from_utf8_lossy(&receiver.wait_for(1, WAIT)[0].body).contains(MARKER));
    crate::support::app::wait_until(WAIT, "the type in the catalog", || {
        app.get("/api/v1/event-types")
            .text
            .contains("patient:admitted")
            .then_some(())
    });
    let api = app.get("/api/v1/event-types").text;
    assert!(
        !api.contains(MARKER) && !api.contains("1958-09-30"),
        "{api}"
    );

    d.goto(&format!("{base}/event-types"));
    d.click("details[data-type=\"patient:admitted\"] summary");
    d.wait_for_text("placeholder of its type");
    let shown = d.text("details[data-type=\"patient:admitted\"] pre");
    assert!(shown.contains("\"name\": \"string\""), "{shown}");
    assert!(!d.source().contains(MARKER));
    d.scroll_to("details[data-type=\"patient:admitted\"] pre");
    d.screenshot("safety-catalog");
    d.set_window(PHONE.0, PHONE.1);
    d.scroll_to("details[data-type=\"patient:admitted\"] pre");
    d.screenshot("safety-catalog-phone");
    d.set_window(1366, 900);

    d.goto(&format!("{base}/rules/{id}"));
    d.click("#preview-test");
    d.wait_for_text("Nothing has been sent yet");
    assert!(!d.source().contains(MARKER));
    assert!(d.source().contains("2026-01-01"));
    d.screenshot("safety-preview");
    d.click("#send-test");
    d.wait_for_text("Attempt 1: succeeded");
    let test = receiver.wait_for(2, WAIT).remove(1);
    let body = String::from_utf8_lossy(&test.body).into_owned();
    assert!(!body.contains(MARKER) && !body.contains("1958") && !body.contains("perpetua"));
    assert!(body.contains("name@example.com"), "{body}");
}

#[test]
fn a_condition_error_delivery_in_chromium_says_why() {
    let Some(chromedriver) = available() else {
        return;
    };
    let (app, receiver, d) = admin_in_chromium(&chromedriver);
    let base = app.url("");
    app.create_rule_with(json!({
        "name": "Long calls", "trigger": {"type": "event", "events": ["member:created"]},
        "condition": "data.call.durationSeconds > 60",
        "webhook": {"url": receiver.url("/hook")},
    }));
    let e = app.ingest(&json!({"type": "member:created", "data": {"member": {"id": 1}}}));
    let deliveries = app.wait_settled(e.body["id"].as_str().unwrap(), WAIT);
    let did = deliveries[0]["id"].as_str().unwrap();
    let reason = deliveries[0]["condition_error"].as_str().unwrap();
    d.goto(&format!("{base}/deliveries/{did}"));
    d.wait_for_text("condition could not be evaluated");
    assert_eq!(d.text("#condition-error code"), reason);
    assert!(!d.text("body").contains("No attempt yet"));
    d.screenshot("safety-condition-error");
    d.set_window(PHONE.0, PHONE.1);
    d.scroll_to("#condition-error");
    d.screenshot("safety-condition-error-phone");
    d.set_window(1366, 900);
    d.goto(&format!("{base}/"));
    d.wait_for_text("Failing rules");
    assert_eq!(d.text("#stat-day-condition"), "1");
    assert!(d.text(".failing").contains("Long calls"));
    d.screenshot("safety-dashboard");
    d.scroll_to("#h-failing");
    d.screenshot("safety-dashboard-failing");
    d.set_window(PHONE.0, PHONE.1);
    d.scroll_to("#h-failing");
    d.screenshot("safety-dashboard-phone");
    assert_eq!(receiver.count(), 0);
}

#[test]
fn the_rule_form_in_chromium_shows_every_error_at_once() {
    let Some(chromedriver) = available() else {
        return;
    };
    let (app, receiver, d) = admin_in_chromium(&chromedriver);
    let base = app.url("");
    d.goto(&format!("{base}/rules/new"));
    // An event rule: the routine's cron and time zone are hidden (hidden beats .pair's grid).
    assert!(!d.displayed("#cron"));
    assert!(!d.displayed("#timezone"));
    assert!(!d.displayed("#body_template"));
    d.type_into("#events", "member:*");
    d.type_into("#url", &receiver.url("/hook"));
    d.type_into("#condition", "data.member.id ==");
    d.click("#payload_format option[value=\"template\"]");
    assert!(d.displayed("#body_template"));
    d.type_into("#body_template", "Hello {{ member.name }}");
    d.click("#save-rule");
    d.wait_for_text("3 fields need a change");
    for id in ["#err-name", "#err-condition", "#err-body_template"] {
        assert!(d.exists(id), "{id}");
    }
    assert!(d.text("#form-errors").contains("Condition"));
    d.screenshot("safety-form-errors");
    d.scroll_to("#err-body_template");
    d.screenshot("safety-form-errors-template");
    d.set_window(PHONE.0, PHONE.1);
    d.scroll_to("#form-error");
    d.screenshot("safety-form-errors-phone");
    d.set_window(1366, 900);
    // Back to Flat with the template still typed, now hidden: no error on it, and dropped.
    d.click("#payload_format option[value=\"flat\"]");
    assert!(!d.displayed("#body_template"));
    d.type_into("#name", "Notify");
    d.type_into("#condition", "has(data.member.id)");
    d.click("#save-rule");
    d.wait_for_text("Rule created");
    let id = last_path_segment(&d);
    let rule = app.get(&format!("/api/v1/rules/{id}")).body;
    assert_eq!(rule["webhook"]["body_template"], serde_json::Value::Null);
    assert_eq!(rule["condition"], "has(data.member.id)");
}

#[test]
fn first_steps_and_copy_buttons_in_chromium() {
    let Some(chromedriver) = available() else {
        return;
    };
    let (app, _receiver, d) = admin_in_chromium(&chromedriver);
    let base = app.url("");
    d.goto(&format!("{base}/"));
    d.wait_for_text("Getting started");
    assert!(d.displayed("#getting-started"));
    d.screenshot("words-dashboard-empty");
    d.set_window(PHONE.0, PHONE.1);
    d.screenshot("words-dashboard-empty-phone");
    d.set_window(1366, 900);
    d.goto(&format!("{base}/rules"));
    d.wait_for_text("No rules yet");
    assert!(d.exists("#getting-started"));

    // The keys page: a new key, the ingest URL and the example, each with a copy button.
    d.allow_clipboard();
    d.goto(&format!("{base}/keys"));
    d.type_into("#key-name", "EHR");
    d.click("#create-key");
    d.wait_for_text("Copy this key now");
    let key = d.text("#new-key");
    assert!(
        d.displayed("#copy-new-key"),
        "JavaScript shows the copy button"
    );
    d.click("#copy-new-key");
    d.wait_for_text("Copied");
    let read = "const done = arguments[arguments.length - 1]; \
                navigator.clipboard.readText().then(done, (e) => done('error: ' + e));";
    assert_eq!(d.execute_async(read).as_str(), Some(key.as_str()));
    d.screenshot("words-keys-copied");
    d.click("#copy-ingest-url");
    crate::support::app::wait_until(WAIT, "the URL on the clipboard", || {
        (d.execute_async(read).as_str() == Some(&app.url("/api/v1/events"))).then_some(())
    });
    d.click("#copy-ingest-example");
    crate::support::app::wait_until(WAIT, "the example on the clipboard", || {
        d.execute_async(read)
            .as_str()
            .is_some_and(|t| t.starts_with("curl -X POST") && t.contains("YOUR_INGEST_KEY"))
            .then_some(())
    });
    d.scroll_to("#ingest-example");
    d.screenshot("words-keys-ingest");
    d.set_window(PHONE.0, PHONE.1);
    d.scroll_to("#ingest-example");
    d.screenshot("words-keys-ingest-phone");
}

#[test]
fn the_delivery_log_in_chromium_links_whole_rows_and_refreshes_while_retrying() {
    let Some(chromedriver) = available() else {
        return;
    };
    let app = crate::support::app::spawn_app_with(|c| {
        // Long enough to see the retrying row, short enough for the test.
        c.retry.base_delay = Duration::from_secs(4);
        c.retry.max_delay = Duration::from_secs(4);
    });
    let receiver = TestReceiver::start();
    receiver.reply_sequence(vec![crate::support::receiver::Reply::status(503)]);
    tidings::app::users::new_user(
        app.store(),
        app.store().default_workspace(),
        "anna",
        UserRole::Admin,
        PASSWORD,
        None,
        false,
    )
    .unwrap();
    let base = app.url("");
    let d = Driver::start(&chromedriver);
    d.set_window(1366, 900);
    sign_in(&d, &base, "anna");
    app.create_rule(&receiver.url("/hook"), &["member:*"]);
    for i in 0..3 {
        let e = app.ingest(&json!({"type": "appointment:booked", "data": {"member": {"id": i}}}));
        assert_eq!(e.status, 202);
    }
    let e = app.ingest(&json!({"type": "member:created", "data": {"member": {"id": 1}}}));
    let event_id = e.body["id"].as_str().unwrap().to_owned();
    crate::support::app::wait_until(WAIT, "the first attempt to fail", || {
        let v = app.get(&format!("/api/v1/events/{event_id}")).body;
        (v["deliveries"][0]["status"] == "retrying").then_some(())
    });
    let did = app.get(&format!("/api/v1/events/{event_id}")).body["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    d.goto(&format!("{base}/deliveries?event_type=member:*"));
    d.wait_for_text("updates itself");
    let row = format!("#row-{did}");
    assert!(d.text(&row).contains("503"), "{}", d.text(&row));
    assert!(d.text(&row).contains("error status"));
    d.screenshot("words-deliveries-retrying");
    d.set_window(PHONE.0, PHONE.1);
    assert!(
        d.displayed(&format!("{row} .badge")),
        "Status stays on a phone"
    );
    d.scroll_down_to(&format!("{row} td:first-child"));
    d.screenshot("words-deliveries-retrying-phone");
    assert!(d.displayed("#apply-filters"));
    d.set_window(1366, 900);

    // No reload from the test: the page's script brings the success in by itself.
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while !d.text(&row).contains("succeeded") {
        assert!(
            std::time::Instant::now() < deadline,
            "the list never refreshed: {}",
            d.text(&row)
        );
        std::thread::sleep(Duration::from_millis(250));
    }
    assert!(d.text(&row).contains("200"));
    assert!(
        !d.exists("#refresh-note"),
        "nothing waits: no more refreshes"
    );
    assert!(
        d.current_url().ends_with("event_type=member:*"),
        "{}",
        d.current_url()
    );
    d.screenshot("words-deliveries-done");

    // A click anywhere on the row (here its Attempts cell) opens the delivery.
    d.click_point(&format!("{row} td:last-child"));
    d.wait_for_text("Attempt 2: succeeded");
    assert!(d.current_url().ends_with(&format!("/deliveries/{did}")));
}

#[test]
fn an_error_page_in_chromium_keeps_the_navigation_and_the_preview_marks_its_sample_id() {
    let Some(chromedriver) = available() else {
        return;
    };
    let (app, receiver, d) = admin_in_chromium(&chromedriver);
    let base = app.url("");
    d.goto(&format!("{base}/deliveries/dlv_nothing"));
    d.wait_for_text("Not found");
    assert!(d.displayed("nav[aria-label=\"Main\"]"));
    d.screenshot("words-error-page");
    d.set_window(PHONE.0, PHONE.1);
    d.screenshot("words-error-page-phone");
    d.set_window(1366, 900);
    d.click("nav a[href=\"/rules\"]");
    d.wait_for_text("Getting started");

    let rule = app.create_rule(&receiver.url("/hook"), &["member:*"]);
    let id = rule["id"].as_str().unwrap();
    d.goto(&format!("{base}/rules/{id}/preview"));
    d.wait_for_text("a sample id for this preview");
    d.scroll_to(".id-note");
    d.screenshot("words-preview-id");
    d.set_window(PHONE.0, PHONE.1);
    d.scroll_down_to(".id-note");
    d.screenshot("words-preview-id-phone");

    // The audit log by names, filtered to rules with the form.
    d.set_window(1366, 900);
    d.goto(&format!("{base}/audit"));
    d.click("#a-action option[value=\"rule.*\"]");
    d.click("#apply-audit-filters");
    d.wait_for_text("rule test rule");
    assert!(d.current_url().contains("action=rule.*"));
    assert!(d.exists(&format!("table.audit a[href=\"/rules/{id}\"]")));
    d.screenshot("words-audit");
    d.set_window(PHONE.0, PHONE.1);
    d.screenshot("words-audit-phone");
}

#[test]
fn the_dashboard_chart_in_chromium_has_a_table_and_readable_axis_on_a_phone() {
    let Some(chromedriver) = available() else {
        return;
    };
    let (app, receiver, d) = admin_in_chromium(&chromedriver);
    let base = app.url("");
    app.create_rule(&receiver.url("/hook"), &["member:*"]);
    let mut last = String::new();
    for i in 0..4 {
        let e = app.ingest(&json!({"type": "member:created", "data": {"member": {"id": i}}}));
        e.body["id"].as_str().unwrap().clone_into(&mut last);
    }
    app.wait_settled(&last, WAIT);
    d.goto(&format!("{base}/"));
    d.wait_for_text("Last 24 hours as a table");
    d.click(".chartdata summary");
    assert!(d.displayed(".chartdata table"));
    d.scroll_down_to(".chart");
    d.screenshot("words-chart");
    d.set_window(PHONE.0, PHONE.1);
    d.scroll_down_to(".ticks");
    d.screenshot("words-chart-phone");
    d.goto(&format!("{base}/users"));
    d.wait_for_text("Add a user");
    d.type_into("#new-username", "vera");
    d.screenshot("words-users-phone");
    d.set_window(1366, 900);
    d.screenshot("words-users");
}

#[test]
fn cron_and_condition_errors_in_chromium_speak_about_what_was_typed() {
    let Some(chromedriver) = available() else {
        return;
    };
    let (app, receiver, d) = admin_in_chromium(&chromedriver);
    let base = app.url("");
    d.goto(&format!("{base}/rules/new"));
    d.type_into("#name", "Weekday digest");
    d.type_into("#events", "member:*");
    d.type_into("#url", &receiver.url("/hook"));
    d.type_into("#condition", "data.member.id ==");
    d.click("#save-rule");
    d.wait_for_text("The rule was not saved");
    assert!(d.text("#err-condition").contains("a mistake at column 18"));
    d.scroll_down_to("#err-condition");
    d.screenshot("words-condition-error");
    d.set_window(PHONE.0, PHONE.1);
    d.scroll_down_to("#err-condition");
    d.screenshot("words-condition-error-phone");
    d.set_window(1366, 900);
    d.goto(&format!("{base}/rules/new"));
    d.type_into("#name", "Weekday digest");
    d.click("#trigger-schedule");
    d.type_into("#cron", "0 25 * * MON-FRI");
    d.type_into("#url", &receiver.url("/hook"));
    d.click("#save-rule");
    d.wait_for_text("The rule was not saved");
    assert!(d.text("#err-cron").contains("the hour (2nd field) is 25"));
    d.scroll_down_to("#err-cron");
    d.screenshot("words-cron-error");
}

#[test]
fn an_ed25519_rule_page_in_chromium_copies_its_public_key() {
    let Some(chromedriver) = available() else {
        return;
    };
    let (app, receiver, d) = admin_in_chromium(&chromedriver);
    let rule = app.create_rule_with(json!({
        "name": "Standard Webhooks receiver",
        "trigger": {"type": "event", "events": ["ping"]},
        "webhook": {"url": receiver.url("/hook"), "signing": "ed25519"},
    }));
    let id = rule["id"].as_str().unwrap();
    let secret = app.get(&format!("/api/v1/rules/{id}/secret"));
    assert_eq!(secret.status, 200, "{}", secret.text);
    let public_key = secret.body["public_key"].as_str().unwrap().to_owned();
    assert!(public_key.starts_with("whpk_"), "{public_key}");

    d.allow_clipboard();
    d.goto(&format!("{}/rules/{id}", app.url("")));
    assert_eq!(d.text("#public-key"), public_key);
    assert!(d.displayed("#copy-public-key"), "JavaScript shows it");
    d.click("#copy-public-key");
    d.wait_for_text("Copied");
    let read = "const done = arguments[arguments.length - 1]; \
                navigator.clipboard.readText().then(done, (e) => done('error: ' + e));";
    assert_eq!(d.execute_async(read).as_str(), Some(public_key.as_str()));
    d.scroll_to("#public-key");
    d.screenshot("rule-public-key-copied");
    d.set_window(PHONE.0, PHONE.1);
    d.scroll_to("#public-key");
    d.screenshot("rule-public-key-phone");
}

#[test]
fn the_rule_form_in_chromium_picks_types_from_the_catalog_and_speaks_in_seconds_and_words() {
    let Some(chromedriver) = available() else {
        return;
    };
    let (app, receiver, d) = admin_in_chromium(&chromedriver);
    let base = app.url("");
    d.goto(&format!("{base}/rules/new"));
    assert!(
        d.displayed("#event-picks"),
        "the catalog's types are offered"
    );
    d.type_into("#name", "New members");
    d.click("input[name=\"event_pick\"][value=\"member:created\"]");
    d.type_into("#url", &receiver.url("/hook"));
    d.type_into("#timeout_s", "2.5");
    assert!(
        d.text("#max_concurrency-help")
            .contains("at the same moment")
    );
    d.screenshot("words-rule-form-picks");
    d.click("#save-rule");
    d.wait_for_text("Rule created");
    let id = last_path_segment(&d);
    let rule = app.get(&format!("/api/v1/rules/{id}")).body;
    assert_eq!(
        rule["trigger"]["events"],
        serde_json::json!(["member:created"])
    );
    assert_eq!(rule["webhook"]["timeout_ms"], 2500);

    // Editing it: the pick is ticked, the timeout reads in seconds, and the help's examples
    // come from the type's sample.
    d.goto(&format!("{base}/rules/{id}/edit"));
    let done = "arguments[arguments.length - 1]";
    let ticked = format!(
        "{done}(document.querySelector('input[name=\"event_pick\"][value=\"member:created\"]').checked);"
    );
    assert_eq!(d.execute_async(&ticked), serde_json::json!(true));
    let timeout = format!("{done}(document.getElementById('timeout_s').value);");
    assert_eq!(d.execute_async(&timeout), serde_json::json!("2.5"));
    assert!(d.exists("#condition-example"));
    d.set_window(PHONE.0, PHONE.1);
    d.scroll_to("#event-picks");
    d.screenshot("words-rule-form-picks-phone");
    assert_eq!(d.sideways_overflow(), 0, "the form fits a phone's width");
    d.set_window(1366, 900);

    // A routine typed in the form is shown in words on its page and on Routines.
    d.goto(&format!("{base}/rules/new"));
    d.type_into("#name", "Morning digest");
    d.click("#trigger-schedule");
    d.type_into("#cron", "0 9 * * MON-FRI");
    d.type_into("#timezone", "America/New_York");
    d.type_into("#url", &receiver.url("/digest"));
    d.click("#save-rule");
    d.wait_for_text("Rule created");
    assert_eq!(
        d.text("#schedule-words"),
        "Weekdays at 09:00 (America/New_York)"
    );
    d.screenshot("words-routine");
    d.goto(&format!("{base}/routines"));
    d.wait_for_text("Weekdays at 09:00");
    d.screenshot("words-routines");
    d.set_window(PHONE.0, PHONE.1);
    d.screenshot("words-routines-phone");
}
