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
    let delivery_id = d
        .current_url()
        .rsplit('/')
        .next()
        .unwrap()
        .split('?')
        .next()
        .unwrap()
        .to_owned();

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
    let mut last = String::new();
    for i in 0..5 {
        let e = app.ingest(&json!({"type": "member:created", "data": {"member": {"id": i}}}));
        e.body["id"].as_str().unwrap().clone_into(&mut last);
    }
    app.wait_settled(&last, Duration::from_secs(10));
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
