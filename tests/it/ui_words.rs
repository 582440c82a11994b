//! The admin UI speaks to an office manager: an empty dashboard and rules page say what to
//! do next, the keys page shows where and how a source system posts its events, the
//! delivery log says what happened to each delivery, and error pages keep their way back.

use serde_json::json;

use crate::support::app::spawn_app;
use crate::support::ui::setup_admin;

#[test]
fn an_empty_dashboard_and_rules_page_list_the_first_steps_until_they_are_done() {
    let app = spawn_app();
    // A first run has no ingest key; the harness makes one for its own use.
    let keys = app.get("/api/v1/api-keys").body;
    for k in keys["data"].as_array().unwrap() {
        if k["role"] == "ingest" {
            let path = format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap());
            assert_eq!(app.send("DELETE", &path, &json!({})).status, 204);
        }
    }
    let admin = setup_admin(&app, "anna");
    let dash = admin.get("/");
    dash.assert_status(200);
    assert!(dash.text.contains("id=\"getting-started\""), "{}", dash.text);
    for step in ["step-rule", "step-secret", "step-test", "step-key"] {
        assert!(dash.text.contains(&format!("id=\"{step}\"")), "{step}");
    }
    assert!(dash.text.contains("href=\"/rules/new\">Create a rule"));
    assert!(dash.text.contains("href=\"/keys\">Make an ingest key"));
    let rules = admin.get("/rules");
    rules.assert_status(200);
    assert!(rules.text.contains("id=\"no-rules\""));
    assert!(rules.text.contains("id=\"getting-started\""));

    // A rule: its step is done and the secret step links to it; the key step is still open.
    let rule = app.create_rule("http://127.0.0.1:9/hook", &["member:*"]);
    let id = rule["id"].as_str().unwrap();
    let dash = admin.get("/");
    assert!(dash.text.contains("id=\"step-rule\" class=\"done\""));
    assert!(dash.text.contains(&format!("href=\"/rules/{id}\">Open the rule")));
    assert!(!admin.get("/rules").text.contains("getting-started"));

    // An admin key is not what the EHR needs; an ingest key is, and then the list goes.
    admin.get("/keys");
    admin
        .post("/keys", &[("name", "Ops"), ("role", "admin")])
        .assert_status(303);
    assert!(admin.get("/").text.contains("getting-started"));
    admin
        .post("/keys", &[("name", "EHR"), ("role", "ingest")])
        .assert_status(303);
    let dash = admin.get("/");
    assert!(!dash.text.contains("getting-started"), "{}", dash.text);
}

#[test]
fn the_keys_page_shows_the_ingest_url_an_example_and_copy_buttons() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let page = admin.get("/keys");
    page.assert_status(200);
    let url = app.url("/api/v1/events");
    assert_eq!(page.by_id("ingest-url").as_deref(), Some(url.as_str()));
    let example = page.by_id("ingest-example").unwrap();
    assert!(example.starts_with(&format!("curl -X POST {url}")), "{example}");
    assert!(example.contains("Authorization: Bearer YOUR_INGEST_KEY"));
    assert!(page.text.contains("data-copy=\"#ingest-url\""));
    assert!(page.text.contains("data-copy=\"#ingest-example\""));
    // Copy buttons need the script, so they are hidden without it (js-only).
    assert!(page.text.contains("class=\"secondary small js-only\" data-copy"));

    // The new key, shown once, has its own copy button; the example works as shown.
    let made = admin.post("/keys", &[("name", "EHR"), ("role", "ingest")]);
    let shown = admin.get(made.location());
    let key = shown.by_id("new-key").unwrap();
    assert!(shown.text.contains("data-copy=\"#new-key\""));
    let body = json!({"type": "member:created", "data": {"member": {"id": 42}}}).to_string();
    let sent = app.raw(
        "POST",
        "/api/v1/events",
        Some(&key),
        Some(body.as_bytes()),
        &[],
    );
    assert_eq!(sent.status, 202, "{}", sent.text);
}
