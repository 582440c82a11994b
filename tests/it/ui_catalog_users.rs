//! Admin UI: the event catalog page and its declaration form, routines' next runs, an admin
//! changing another user's role or password — each with the permission that guards it — and
//! the development-mode banner on error pages too.

use serde_json::json;
use tidings::domain::user::UserRole;

use crate::support::app::{spawn_app, spawn_app_with};
use crate::support::ui::{Browser, PASSWORD, setup_admin, user};

#[test]
fn the_catalog_lists_types_and_editors_declare_them_through_the_api_checks() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let page = admin.get("/event-types");
    page.assert_status(200);
    for builtin in ["ping", "routine:fired", "member:created", "call:completed"] {
        assert!(page.text.contains(builtin), "{builtin} missing");
    }
    assert!(page.text.contains("id=\"declare-type\""));

    let editor = user(&app, "eddie", UserRole::Editor);
    editor.get("/event-types").assert_status(200);
    let made = editor.post(
        "/event-types",
        &[
            ("name", "lab:result"),
            ("description", "A lab result is ready"),
            ("sample", r#"{"lab": {"test": "HbA1c", "value": 6.1}}"#),
        ],
    );
    assert_eq!(made.status, 303, "{}", made.text);
    let listed = editor.get(made.location());
    assert!(listed.text.contains("lab:result"));
    assert!(listed.text.contains("A lab result is ready"));
    assert!(listed.text.contains("HbA1c"));
    let api = app.get("/api/v1/event-types");
    let entry = api.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["name"] == "lab:result")
        .cloned()
        .unwrap();
    assert_eq!(
        entry["sample"],
        json!({"lab": {"test": "HbA1c", "value": 6.1}})
    );

    // Refusals keep what was typed, say why, and store nothing.
    for (name, sample, why) in [
        ("lab:order", "{not json", "not valid JSON"),
        ("Lab Order", "{}", "invalid event type"),
        ("lab:order", "[1, 2]", "JSON object"),
        ("lab:order", r#"{"id": 1}"#, "may not contain"),
    ] {
        let refused = editor.post("/event-types", &[("name", name), ("sample", sample)]);
        refused.assert_status(400);
        let error = refused.by_id("declare-error").unwrap_or_default();
        assert!(error.contains(why), "{why:?} not in {error:?}");
        assert!(refused.text.contains("lab:order") || refused.text.contains("Lab Order"));
    }
    assert!(!app.get("/api/v1/event-types").text.contains("lab:order"));

    // A viewer sees the catalog but cannot declare.
    let viewer = user(&app, "vera", UserRole::Viewer);
    let seen = viewer.get("/event-types");
    seen.assert_status(200);
    assert!(!seen.text.contains("id=\"declare-type\""));
    viewer
        .post("/event-types", &[("name", "lab:order"), ("sample", "{}")])
        .assert_status(403);
    assert!(!app.get("/api/v1/event-types").text.contains("lab:order"));
}

#[test]
fn routines_show_when_they_fire_next() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let rule = app.create_rule_with(json!({
        "name": "Morning digest",
        "trigger": {"type": "schedule", "cron": "0 9 * * MON-FRI", "timezone": "UTC"},
        "webhook": {"url": "http://127.0.0.1:9/hook"},
    }));
    // 2026-12-02T09:00:00Z is shown as "2026-12-02 09:00:00 UTC".
    let shown: Vec<String> = rule["next_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            r.as_str()
                .unwrap()
                .replacen('T', " ", 1)
                .replace('Z', " UTC")
        })
        .collect();
    assert_eq!(shown.len(), 5);
    let page = admin.get(&format!("/rules/{}", rule["id"].as_str().unwrap()));
    assert!(
        page.by_id("next-runs").is_some(),
        "next runs on the rule page"
    );
    for run in &shown {
        assert!(
            page.text.contains(run.as_str()),
            "{run} not on the rule page"
        );
    }
    let shown = &shown[0];
    let routines = admin.get("/routines");
    assert!(routines.text.contains(shown.as_str()));
}

#[test]
fn admins_change_roles_and_passwords_and_the_user_must_sign_in_again() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let vera = user(&app, "vera", UserRole::Viewer);
    let id = app
        .store()
        .user_by_name("vera")
        .unwrap()
        .unwrap()
        .id
        .to_string();
    let me = app
        .store()
        .user_by_name("anna")
        .unwrap()
        .unwrap()
        .id
        .to_string();
    admin.get("/users").assert_status(200);

    // Others cannot; an admin cannot change their own role.
    let editor = user(&app, "eddie", UserRole::Editor);
    editor
        .post(&format!("/users/{id}/role"), &[("role", "admin")])
        .assert_status(403);
    vera.post(
        &format!("/users/{id}/password"),
        &[("password", "another long password")],
    )
    .assert_status(403);
    admin
        .post(&format!("/users/{me}/role"), &[("role", "viewer")])
        .assert_status(409);
    admin
        .post(&format!("/users/{id}/role"), &[("role", "owner")])
        .assert_status(400);

    // Role: vera becomes an editor, is signed out, and can edit after signing in again.
    let changed = admin.post(&format!("/users/{id}/role"), &[("role", "editor")]);
    assert_eq!(changed.status, 303, "{}", changed.text);
    assert_eq!(
        app.store().user_by_name("vera").unwrap().unwrap().role,
        UserRole::Editor
    );
    let out = vera.get("/rules");
    assert_eq!(out.status, 303, "the old session is over");
    assert!(out.location().starts_with("/login"));
    let again = Browser::new(&app);
    again.login("vera", PASSWORD).assert_status(303);
    assert!(again.get("/rules").text.contains("/rules/new"));

    // Password: too short is refused; a good one replaces the old and ends her sessions.
    admin
        .post(
            &format!("/users/{id}/password"),
            &[("password", "short"), ("confirm", "short")],
        )
        .assert_status(400);
    let set = admin.post(
        &format!("/users/{id}/password"),
        &[
            ("password", "a brand new passphrase"),
            ("confirm", "a brand new passphrase"),
        ],
    );
    assert_eq!(set.status, 303, "{}", set.text);
    assert_eq!(again.get("/rules").status, 303);
    assert_eq!(Browser::new(&app).login("vera", PASSWORD).status, 401);
    Browser::new(&app)
        .login("vera", "a brand new passphrase")
        .assert_status(303);

    let audit = app.get("/api/v1/audit?limit=100");
    let actions: Vec<&str> = audit.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|e| e["action"].as_str())
        .collect();
    assert!(actions.contains(&"user.role"), "{actions:?}");
    assert!(actions.contains(&"user.password"), "{actions:?}");
}

#[test]
fn error_pages_carry_the_development_banner_in_development_mode_only() {
    let dev = spawn_app();
    let page = Browser::new(&dev).get("/no-such-page");
    page.assert_status(404);
    assert!(page.text.contains("Development mode."), "{}", page.text);
    assert!(page.header("content-security-policy").is_some());

    let prod = spawn_app_with(|c| c.mode = tidings::config::Mode::Production);
    let page = Browser::new(&prod).get("/no-such-page");
    page.assert_status(404);
    assert!(!page.text.contains("Development mode."));
}
