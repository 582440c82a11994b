//! Rule versions and drafts in the admin UI (SPEC §14), over HTTP: the edit form saves a
//! draft and changes nothing live; the draft page shows what publishing changes, tests and
//! publishes it; the history lists versions with what each changed and restores one; with
//! `rules.require_review` the writer of a draft cannot publish it.

use serde_json::json;
use tidings::domain::user::UserRole;

use crate::support::app::{spawn_app, spawn_app_with};
use crate::support::receiver::TestReceiver;
use crate::support::ui::{setup_admin, user};
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
