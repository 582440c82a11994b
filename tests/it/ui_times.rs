//! Times in the viewer's zone: pages render every time in UTC as
//! `<time datetime="…Z" title="… UTC">` (readable as it is, without the script), the page's
//! script shows it in the browser's zone with UTC kept for hover, the chart says its axis is
//! UTC, and a routine's next runs read in the routine's own zone.

use std::time::Duration;

use chrono::{DateTime, Utc};
use chrono_tz::America::New_York;
use serde_json::json;
use tidings::domain::user::UserRole;

use crate::support::app::{TestApp, spawn_app};
use crate::support::receiver::TestReceiver;
use crate::support::ui::{PASSWORD, setup_admin};
use crate::support::webdriver::{Driver, available};

const WAIT: Duration = Duration::from_secs(20);

/// One delivered event; its delivery's id and creation time (RFC 3339).
fn one_delivery(app: &TestApp) -> (String, String) {
    let receiver = TestReceiver::start();
    app.create_rule(&receiver.url("/hook"), &["member:created"]);
    let e = app.ingest(&json!({"type": "member:created", "data": {}}));
    assert_eq!(e.status, 202, "{}", e.text);
    let d = app
        .wait_settled(e.body["id"].as_str().unwrap(), WAIT)
        .remove(0);
    (
        d["id"].as_str().unwrap().to_owned(),
        d["created_at"].as_str().unwrap().to_owned(),
    )
}

fn routine(app: &TestApp) -> String {
    let rule = app.create_rule_with(json!({
        "name": "Morning digest",
        "trigger": {"type": "schedule", "cron": "0 9 * * *", "timezone": "America/New_York"},
        "webhook": {"url": "http://127.0.0.1:9/hook"},
    }));
    rule["id"].as_str().unwrap().to_owned()
}

#[test]
fn pages_mark_times_up_in_utc_and_routines_run_in_their_own_zone() {
    let app = spawn_app();
    let (delivery, created_at) = one_delivery(&app);
    let admin = setup_admin(&app, "anna");
    let page = admin.get("/deliveries");
    page.assert_status(200);
    // Whole seconds, as the pages show them.
    let at: DateTime<Utc> = created_at.parse().unwrap();
    let iso = at.format("%Y-%m-%dT%H:%M:%SZ").to_string();
    let utc = at.format("%Y-%m-%d %H:%M:%S UTC").to_string();
    let tag = format!("<time datetime=\"{iso}\" title=\"{utc}\">{utc}</time>");
    assert!(page.text.contains(&tag), "{tag} not in {}", page.text);
    assert!(
        admin
            .get(&format!("/deliveries/{delivery}"))
            .text
            .contains(&tag),
        "the delivery page too"
    );
    assert!(admin.get("/").text.contains("The axis is in UTC."));

    let id = routine(&app);
    let page = admin.get(&format!("/rules/{id}"));
    let runs = page.by_id("next-runs").expect("next runs");
    assert!(runs.contains("09:00:00 America/New_York"), "{runs}");
}

#[test]
fn a_browser_in_new_york_shows_times_in_its_zone_with_utc_on_hover() {
    let Some(chromedriver) = available() else {
        return;
    };
    let app = spawn_app();
    let (delivery, created_at) = one_delivery(&app);
    let id = routine(&app);
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
    let d = Driver::start_with_env(&chromedriver, &[("TZ", "America/New_York")]);
    d.set_window(1366, 900);
    let base = app.url("");
    d.goto(&format!("{base}/login"));
    d.type_into("#username", "anna");
    d.type_into("#password", PASSWORD);
    d.click("#sign-in");
    d.wait_for_text("Sign out");

    d.goto(&format!("{base}/deliveries"));
    let cell = format!("#row-{delivery} time");
    let at: DateTime<Utc> = created_at.parse().unwrap();
    let local = at.with_timezone(&New_York);
    // EST or EDT, as Chromium names New York's zone.
    let expected = local.format("%Y-%m-%d %H:%M:%S %Z").to_string();
    assert_eq!(d.text(&cell), expected);
    assert_eq!(
        d.attribute(&cell, "title").as_deref(),
        Some(at.format("%Y-%m-%d %H:%M:%S UTC").to_string().as_str()),
        "UTC on hover"
    );
    d.screenshot("times-deliveries-new-york");
    d.set_window(390, 844);
    d.screenshot("times-deliveries-new-york-phone");
    d.set_window(1366, 900);

    d.goto(&format!("{base}/deliveries/{delivery}"));
    assert!(d.text("main").contains(&expected), "{}", d.text("main"));

    // A routine's runs stay in its own zone, whatever the viewer's.
    d.goto(&format!("{base}/rules/{id}"));
    assert!(
        d.text("#next-runs").contains("09:00:00 America/New_York"),
        "{}",
        d.text("#next-runs")
    );
}
