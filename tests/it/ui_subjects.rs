//! Admin UI: the subjects page — a subject's disclosures found by a form (the subject never
//! in a URL), the CSV download, and erasure only after a confirmation that names what it
//! destroys; admins only.

use std::time::Duration;

use serde_json::json;
use tidings::domain::user::UserRole;

use crate::support::app::spawn_app;
use crate::support::receiver::TestReceiver;
use crate::support::ui::{Page, setup_admin, user};

/// The page's markup from the element with this id to the first `until` after it.
fn part(page: &Page, id: &str, until: &str) -> Option<String> {
    let at = page.text.find(&format!("id=\"{id}\""))?;
    let end = page.text[at..]
        .find(until)
        .map_or(page.text.len(), |n| at + n);
    Some(page.text[at..end].to_owned())
}

#[test]
fn an_admin_finds_a_subjects_disclosures_downloads_them_and_erases_after_confirming() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    app.create_rule_with(json!({
        "name": "Lab system",
        "trigger": {"type": "event", "events": ["lab.*"]},
        "webhook": {"url": receiver.url("/lab")},
    }));
    let posted =
        app.ingest(&json!({"type": "lab.result", "subject": "patient:42", "data": {"v": 1}}));
    assert_eq!(posted.status, 202, "{}", posted.text);
    let event = posted.body["id"].as_str().unwrap().to_owned();
    app.wait_settled(&event, Duration::from_secs(20));

    let admin = setup_admin(&app, "anna");
    let page = admin.get("/subjects");
    page.assert_status(200);
    assert!(page.text.contains("id=\"find-subject\""));

    let found = admin.post("/subjects", &[("subject", "patient:42")]);
    found.assert_status(200);
    let table = part(&found, "disclosures", "</table>").expect("the disclosures table");
    assert!(table.contains("Lab system"), "{table}");
    assert!(table.contains(&format!("http://127.0.0.1:{}", receiver.port())));
    assert!(table.contains("succeeded"));
    assert!(found.text.contains("data-print"), "a print button");

    let none = admin.post("/subjects", &[("subject", "patient:0")]);
    assert!(none.by_id("no-disclosures").is_some());
    let bad = admin.post("/subjects", &[("subject", &"x".repeat(129))]);
    bad.assert_status(400);
    assert!(bad.by_id("subject-error").unwrap().contains("128"));

    let csv = admin.post("/subjects/disclosures.csv", &[("subject", "patient:42")]);
    csv.assert_status(200);
    assert!(csv.header("content-type").unwrap().starts_with("text/csv"));
    let mut reader = csv::Reader::from_reader(csv.text.as_bytes());
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 1);
    assert_eq!(&rows[0][1], event.as_str());

    // The first press only asks, naming what will be destroyed; nothing is erased yet.
    let asked = admin.post("/subjects/erase", &[("subject", "patient:42")]);
    asked.assert_status(200);
    let confirm = part(&asked, "erase-confirm", "</form>").expect("a confirmation");
    assert!(
        confirm.contains("logged request and response body"),
        "{confirm}"
    );
    assert!(confirm.contains("closed without being sent"));
    assert_eq!(
        app.get(&format!("/api/v1/events/{event}")).body["erased"],
        false
    );

    let done = admin.post(
        "/subjects/erase",
        &[("subject", "patient:42"), ("confirm", "yes")],
    );
    done.assert_status(303);
    assert_eq!(done.location(), "/subjects?done=erased");
    assert!(
        !done.location().contains("patient"),
        "no subject in the URL"
    );
    let done = admin.get(done.location());
    done.assert_status(200);
    assert!(done.by_id("erased").unwrap().contains("1 event"));
    assert_eq!(
        app.get(&format!("/api/v1/events/{event}")).body["erased"],
        true
    );
    assert!(
        part(&done, "disclosures", "</table>")
            .unwrap()
            .contains("Lab system"),
        "the accounting stays"
    );

    let viewer = user(&app, "vera", UserRole::Viewer);
    assert_eq!(viewer.get("/subjects").status, 403);
    assert_eq!(
        viewer
            .post(
                "/subjects/erase",
                &[("subject", "patient:42"), ("confirm", "yes")]
            )
            .status,
        403
    );
}

fn audit_entries(app: &crate::support::app::TestApp) -> Vec<serde_json::Value> {
    let resp = app.get("/api/v1/audit?limit=250");
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["data"].as_array().unwrap().clone()
}

#[test]
fn a_reload_after_erasing_erases_nothing_and_the_result_shows_once() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let first =
        app.ingest(&json!({"type": "lab.result", "subject": "patient:7", "data": {"v": 1}}));
    assert_eq!(first.status, 202, "{}", first.text);
    admin.get("/subjects");

    let posted = admin.post(
        "/subjects/erase",
        &[("subject", "patient:7"), ("confirm", "yes")],
    );
    posted.assert_status(303);
    assert_eq!(posted.location(), "/subjects?done=erased");
    let shown = admin.get(posted.location());
    shown.assert_status(200);
    assert!(
        shown.by_id("erased").unwrap().contains("1 event"),
        "{}",
        shown.text
    );
    assert!(shown.text.contains("patient:7"), "the subject it was about");

    // A second event about the same person arrives after the erasure: a repeated erasure
    // would destroy it, so its data surviving the reload shows nothing was erased again.
    let second =
        app.ingest(&json!({"type": "lab.result", "subject": "patient:7", "data": {"v": 2}}));
    assert_eq!(second.status, 202, "{}", second.text);
    let before = audit_entries(&app);
    let reload = admin.get(posted.location());
    reload.assert_status(200);
    assert!(reload.by_id("erased").is_none(), "shown once only");
    assert!(
        !reload.text.contains("patient:7"),
        "the subject is not kept for a reload"
    );
    assert!(reload.text.contains("shown once"), "{}", reload.text);
    assert_eq!(audit_entries(&app), before, "a reload adds no audit entry");
    let second_id = second.body["id"].as_str().unwrap();
    let event = app.get(&format!("/api/v1/events/{second_id}"));
    assert_eq!(event.body["erased"], false, "{}", event.text);
    let erasures = before
        .iter()
        .filter(|e| e["action"] == "subject.erase")
        .count();
    assert_eq!(erasures, 1);

    // Another admin session does not get this session's result.
    let other = crate::support::ui::Browser::new(&app);
    other.login("anna", crate::support::ui::PASSWORD);
    let again = admin.post(
        "/subjects/erase",
        &[("subject", "patient:7"), ("confirm", "yes")],
    );
    again.assert_status(303);
    assert!(other.get("/subjects?done=erased").by_id("erased").is_none());
}
