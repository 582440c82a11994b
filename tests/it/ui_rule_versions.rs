//! Rule versions and drafts in the admin UI (SPEC §14), over HTTP and in headless Chromium:
//! the edit form saves a draft and changes nothing live; the draft page shows what publishing
//! changes, tests and publishes it; the history lists versions with what each changed and
//! restores one; with `rules.require_review` the writer of a draft cannot publish it.

use serde_json::json;
use tidings::domain::user::UserRole;

use crate::support::app::{spawn_app, spawn_app_with};
use crate::support::receiver::TestReceiver;
use crate::support::ui::{PASSWORD, setup_admin, user};
use crate::support::webdriver::{Driver, available};
use crate::ui::form_fields;

#[test]
fn editing_saves_a_draft_whose_diff_is_shown_then_published_and_restored() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let admin = setup_admin(&app, "anna");
    let url = receiver.url("/hook");
    let rule = app.create_rule_with(json!({
        "name": "CRM", "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {"url": url, "headers": {"X-Clinic": "south"}},
    }));
    let id = rule["id"].as_str().unwrap();

    let edit = admin.get(&format!("/rules/{id}/edit"));
    assert!(edit.text.contains("Save draft"), "{}", edit.text);
    let saved = admin.post(&format!("/rules/{id}/edit"), &form_fields(&url, "CRM v2"));
    assert_eq!(saved.status, 303, "{}", saved.text);
    let draft = admin.get(saved.location());
    assert_eq!(draft.status, 200, "{}", draft.text);
    assert!(
        draft.text.contains("Draft saved. Nothing live changed"),
        "{}",
        draft.text
    );
    assert!(draft.text.contains("id=\"draft-diff\""), "{}", draft.text);
    for shown in [
        "<code>name</code>",
        "<del>CRM</del>",
        "<ins>CRM v2</ins>",
        "<del>south</del>",
        "<ins>north</ins>",
    ] {
        assert!(draft.text.contains(shown), "{shown}: {}", draft.text);
    }
    assert_eq!(
        app.get(&format!("/api/v1/rules/{id}")).body["name"],
        "CRM",
        "nothing live changed"
    );
    let page = admin.get(&format!("/rules/{id}"));
    assert!(page.text.contains("id=\"has-draft\""), "{}", page.text);
    // Editing again goes on from the draft.
    assert!(
        admin
            .get(&format!("/rules/{id}/edit"))
            .text
            .contains("CRM v2")
    );

    // Test draft: a real request with the draft's header.
    let tested = admin.post(
        &format!("/rules/{id}/draft/test"),
        &[("event_type", "ping")],
    );
    assert_eq!(tested.status, 303, "{}", tested.text);
    let got = receiver.wait_for(1, std::time::Duration::from_secs(10));
    assert_eq!(got[0].header("X-Clinic"), Some("north"));

    let published = admin.post(&format!("/rules/{id}/draft/publish"), &[]);
    assert_eq!(published.status, 303, "{}", published.text);
    assert!(
        admin
            .get(published.location())
            .text
            .contains("version 2 is live")
    );
    let live = app.get(&format!("/api/v1/rules/{id}")).body;
    assert_eq!(
        (live["name"].clone(), live["version"].clone()),
        (json!("CRM v2"), json!(2))
    );
    assert_eq!(admin.get(&format!("/rules/{id}/draft")).status, 404);

    let history = admin.get(&format!("/rules/{id}/versions"));
    assert_eq!(history.status, 200, "{}", history.text);
    for shown in [
        "Version 2",
        "Version 1",
        "Published by user anna",
        "<ins>CRM v2</ins>",
        "id=\"restore-1\"",
    ] {
        assert!(history.text.contains(shown), "{shown}: {}", history.text);
    }
    assert!(
        !history.text.contains("id=\"restore-2\""),
        "the live version has no restore"
    );
    let restored = admin.post(&format!("/rules/{id}/versions/1/restore"), &[]);
    assert_eq!(restored.status, 303, "{}", restored.text);
    let live = app.get(&format!("/api/v1/rules/{id}")).body;
    assert_eq!(
        (live["name"].clone(), live["version"].clone()),
        (json!("CRM"), json!(3))
    );

    // Discarding a draft leaves the live rule; a missing version is a 404 page.
    admin.get(&format!("/rules/{id}/edit"));
    admin.post(
        &format!("/rules/{id}/edit"),
        &form_fields(&url, "Throwaway"),
    );
    let discarded = admin.post(&format!("/rules/{id}/draft/discard"), &[]);
    assert_eq!(discarded.status, 303, "{}", discarded.text);
    assert!(
        admin
            .get(discarded.location())
            .text
            .contains("Draft discarded")
    );
    assert_eq!(app.get(&format!("/api/v1/rules/{id}")).body["name"], "CRM");
    assert_eq!(
        admin
            .post(&format!("/rules/{id}/versions/42/restore"), &[])
            .status,
        404
    );
    assert_eq!(
        admin
            .post(&format!("/rules/{id}/draft/publish"), &[])
            .status,
        404
    );
    // A bad edit is shown at its field and stores no draft.
    let bad = admin.post(
        &format!("/rules/{id}/edit"),
        &form_fields("ftp://nope", "Bad"),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert_eq!(admin.get(&format!("/rules/{id}/draft")).status, 404);
}

#[test]
fn with_require_review_the_writer_cannot_publish_their_own_draft() {
    let app = spawn_app_with(|c| c.rules.require_review = true);
    let receiver = TestReceiver::start();
    let anna = setup_admin(&app, "anna");
    let ben = user(&app, "ben", UserRole::Editor);
    let url = receiver.url("/hook");
    let rule = app.create_rule(&url, &["member:*"]);
    let id = rule["id"].as_str().unwrap();

    anna.get(&format!("/rules/{id}/edit"));
    assert_eq!(
        anna.post(&format!("/rules/{id}/edit"), &form_fields(&url, "Reviewed"))
            .status,
        303
    );
    let draft = anna.get(&format!("/rules/{id}/draft"));
    assert!(
        draft.text.contains("id=\"needs-reviewer\""),
        "{}",
        draft.text
    );
    assert!(!draft.text.contains("id=\"publish-draft\""));
    let refused = anna.post(&format!("/rules/{id}/draft/publish"), &[]);
    assert_eq!(refused.status, 409, "{}", refused.text);
    assert!(
        refused.text.contains("another user or API key"),
        "{}",
        refused.text
    );

    let draft = ben.get(&format!("/rules/{id}/draft"));
    assert!(
        draft.text.contains("id=\"publish-draft\""),
        "{}",
        draft.text
    );
    assert_eq!(
        ben.post(&format!("/rules/{id}/draft/publish"), &[]).status,
        303
    );
    assert_eq!(
        app.get(&format!("/api/v1/rules/{id}")).body["name"],
        "Reviewed"
    );
}

#[test]
fn in_chromium_save_draft_shows_the_diff_and_publish_makes_it_live() {
    let Some(chromedriver) = available() else {
        return;
    };
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let url = receiver.url("/hook");
    let rule = app.create_rule_with(json!({
        "name": "CRM", "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {"url": url, "headers": {"X-Clinic": "south"}},
    }));
    let id = rule["id"].as_str().unwrap();
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
    let live = |field: &str| app.get(&format!("/api/v1/rules/{id}")).body[field].clone();
    let base = app.url("");
    let d = Driver::start(&chromedriver);
    d.set_window(1366, 900);
    d.goto(&format!("{base}/login"));
    d.type_into("#username", "anna");
    d.type_into("#password", PASSWORD);
    d.click("#sign-in");
    d.wait_for_text("Sign out");

    // Edit two fields and save: a draft, its diff shown, nothing live changed.
    d.goto(&format!("{base}/rules/{id}/edit"));
    d.wait_for_text("Save draft");
    d.type_into("#name", "CRM v2");
    d.type_into("#header_value_1", "north");
    d.click("#save-rule");
    d.wait_for_text("Draft saved. Nothing live changed");
    assert!(
        d.current_url().contains(&format!("/rules/{id}/draft?")),
        "{}",
        d.current_url()
    );
    let diff = d.text("#draft-diff");
    for shown in ["name", "CRM v2", "south", "north"] {
        assert!(diff.contains(shown), "{shown:?} in {diff}");
    }
    assert_eq!(d.text("#draft-diff del").trim(), "CRM", "{diff}");
    assert_eq!(d.text("#draft-diff ins").trim(), "CRM v2", "{diff}");
    assert_eq!((live("name"), live("version")), (json!("CRM"), json!(1)));
    d.screenshot("rule-draft-diff");

    // A bad edit is shown at its field and leaves the saved draft as it was.
    d.goto(&format!("{base}/rules/{id}/edit"));
    d.wait_for_text("Save draft");
    assert_eq!(d.attribute("#name", "value").as_deref(), Some("CRM v2"));
    d.type_into("#name", "Broken");
    d.type_into("#url", "ftp://nope");
    d.click("#save-rule");
    d.wait_for_text("Save draft");
    assert!(d.exists("#err-url"), "{}", d.text("main"));
    assert_eq!(d.attribute("#url", "aria-invalid").as_deref(), Some("true"));
    d.goto(&format!("{base}/rules/{id}/draft"));
    d.wait_for_text("CRM v2");
    assert!(!d.text("#draft-diff").contains("Broken"));

    // Test the draft: a real request with the draft's header; then publish it.
    d.click("#test-draft");
    let got = receiver.wait_for(1, std::time::Duration::from_secs(10));
    assert_eq!(got[0].header("X-Clinic"), Some("north"));
    d.goto(&format!("{base}/rules/{id}/draft"));
    d.wait_for_text("CRM v2");
    d.click("#publish-draft");
    d.wait_for_text("version 2 is live");
    assert_eq!((live("name"), live("version")), (json!("CRM v2"), json!(2)));
    assert_eq!(
        live("webhook")["headers"]["X-Clinic"],
        json!("north"),
        "{}",
        live("webhook")
    );
    assert!(!d.exists("#has-draft"), "no draft left: {}", d.text("main"));
    d.goto(&format!("{base}/rules/{id}/versions"));
    d.wait_for_text("Version 2");
    let history = d.text("main");
    assert!(history.contains("Published by user anna"), "{history}");
    assert!(d.exists("#restore-1") && !d.exists("#restore-2"));
    d.screenshot("rule-versions");
}
