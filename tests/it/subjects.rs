//! The PHI lifecycle (§13) end to end: events posted about subjects, delivered to a real
//! receiver, the accounting of disclosures (JSON, and CSV read back by a CSV reader), erasure
//! (what reads back, what the receiver still gets, what is left in the database file) and the
//! bad inputs around them.

use std::path::Path;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app, spawn_app_with, wait_until};
use crate::support::receiver::{Reply, TestReceiver};

fn ingest_about(app: &TestApp, subject: &str, data: Value) -> String {
    let resp = app.ingest(&json!({"type": "patient.admitted", "subject": subject, "data": data}));
    assert_eq!(resp.status, 202, "{}", resp.text);
    resp.body["id"].as_str().unwrap().to_owned()
}

/// Every sealed copy of an event's data in the database file: the `"data":"xc1:…"` that
/// follows the event's id in each copy of its row (live, or in a page freed since).
fn sealed_copies(file: &Path, event_id: &str) -> Vec<String> {
    let bytes = std::fs::read(file).unwrap();
    let needle = format!(r#""id":"{event_id}""#).into_bytes();
    let data = br#""data":"xc1:"#;
    let mut out = Vec::new();
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(needle.len()).position(|w| w == needle) {
        let row = at + found;
        let window = &bytes[row..(row + 600).min(bytes.len())];
        if let Some(d) = window.windows(data.len()).position(|w| w == data) {
            let start = row + d + data.len() - 4;
            let end = bytes[start..]
                .iter()
                .position(|b| *b == b'"')
                .map_or(bytes.len(), |n| start + n);
            out.push(String::from_utf8_lossy(&bytes[start..end]).into_owned());
        }
        at = row + needle.len();
    }
    out
}

fn file_contains(file: &Path, what: &str) -> bool {
    let bytes = std::fs::read(file).unwrap();
    bytes.windows(what.len()).any(|w| w == what.as_bytes())
}

fn disclosures(app: &TestApp, subject: &str) -> Vec<Value> {
    let resp = app.get(&format!("/api/v1/subjects/{subject}/disclosures"));
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert!(resp.body["next_cursor"].is_null());
    resp.body["data"].as_array().unwrap().clone()
}

fn audit_actions(app: &TestApp) -> Vec<Value> {
    let resp = app.get("/api/v1/audit?limit=250");
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["data"].as_array().unwrap().clone()
}

#[test]
fn disclosures_are_listed_and_erasure_destroys_one_subject_only() {
    if crate::support::postgres::redb_only("scanning the embedded file for erased bytes") {
        return;
    }
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let rule = app.create_rule_with(json!({
        "name": "Notify CRM",
        "trigger": {"type": "event", "events": ["patient.*"]},
        "webhook": {"url": receiver.url("/hook")},
    }));
    let a1 = ingest_about(&app, "member:123", json!({"note": "MARKER-erase-me-1"}));
    let a2 = ingest_about(&app, "member:123", json!({"note": "MARKER-erase-me-2"}));
    let b = ingest_about(&app, "member:456", json!({"note": "MARKER-keep-me"}));
    for e in [&a1, &a2, &b] {
        let settled = app.wait_settled(e, Duration::from_secs(20));
        assert_eq!(settled[0]["status"], "succeeded");
    }
    let arrived = receiver.wait_for(3, Duration::from_secs(10));
    assert!(
        arrived
            .iter()
            .any(|r| r.body_json()["note"] == "MARKER-erase-me-1")
    );

    let listed = disclosures(&app, "member:123");
    assert_eq!(listed.len(), 2, "{listed:?}");
    let events: Vec<&str> = listed
        .iter()
        .map(|d| d["event_id"].as_str().unwrap())
        .collect();
    assert_eq!(events, [a1.as_str(), a2.as_str()], "oldest first");
    let first = &listed[0];
    assert_eq!(first["rule"]["id"], rule["id"]);
    assert_eq!(first["rule"]["name"], "Notify CRM");
    assert_eq!(first["event_type"], "patient.admitted");
    assert_eq!(first["status"], "succeeded");
    assert_eq!(
        first["destination"],
        format!("http://127.0.0.1:{}", receiver.port())
    );
    assert!(first["first_attempt_at"].as_str().unwrap().ends_with('Z'));
    assert!(first["succeeded_at"].is_string());
    assert_eq!(disclosures(&app, "member:456").len(), 1);
    assert!(disclosures(&app, "member:789").is_empty());

    // The same accounting as CSV, read back by a CSV reader.
    let csv = app.get("/api/v1/subjects/member:123/disclosures?format=csv");
    assert_eq!(csv.status, 200, "{}", csv.text);
    let mut reader = csv::Reader::from_reader(csv.text.as_bytes());
    let header: Vec<String> = reader
        .headers()
        .unwrap()
        .iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        header,
        [
            "delivery_id",
            "event_id",
            "event_type",
            "rule_id",
            "rule_name",
            "destination",
            "status",
            "first_attempt_at",
            "succeeded_at"
        ]
    );
    let rows: Vec<csv::StringRecord> = reader.records().map(Result::unwrap).collect();
    assert_eq!(rows.len(), 2);
    for (row, json) in rows.iter().zip(&listed) {
        assert_eq!(&row[0], json["delivery_id"].as_str().unwrap());
        assert_eq!(&row[1], json["event_id"].as_str().unwrap());
        assert_eq!(&row[4], "Notify CRM");
        assert_eq!(&row[5], json["destination"].as_str().unwrap());
        assert_eq!(&row[7], json["first_attempt_at"].as_str().unwrap());
        assert_eq!(&row[8], json["succeeded_at"].as_str().unwrap());
    }

    let file = app.data_dir.join("tidings.redb");
    let erased_copies: Vec<String> = [&a1, &a2]
        .iter()
        .flat_map(|e| sealed_copies(&file, e))
        .collect();
    assert!(
        erased_copies.len() >= 2,
        "each event's sealed data is in the file before the erasure"
    );
    let kept_copies = sealed_copies(&file, &b);
    assert!(!kept_copies.is_empty());

    let erased = app.post("/api/v1/subjects/member:123/erase", &json!({}));
    assert_eq!(erased.status, 200, "{}", erased.text);
    assert_eq!(erased.body, json!({"events": 2, "deliveries": 2}));

    for e in [&a1, &a2] {
        let read = app.get(&format!("/api/v1/events/{e}"));
        assert_eq!(read.status, 200);
        assert_eq!(read.body["data"], Value::Null);
        assert_eq!(read.body["erased"], true);
        let delivery = app.delivery(read.body["deliveries"][0]["id"].as_str().unwrap());
        for attempt in delivery["attempts"].as_array().unwrap() {
            assert!(attempt["request"]["body"].is_null(), "{attempt}");
            assert!(attempt["response"]["body"].is_null(), "{attempt}");
        }
    }
    let kept = app.get(&format!("/api/v1/events/{b}"));
    assert_eq!(kept.body["erased"], false);
    assert_eq!(kept.body["data"]["note"], "MARKER-keep-me");
    assert_eq!(
        disclosures(&app, "member:123"),
        listed,
        "the accounting is unchanged"
    );

    let left: Vec<&String> = erased_copies
        .iter()
        .filter(|c| file_contains(&file, c))
        .collect();
    assert!(
        left.is_empty(),
        "erased data is still in the file: {left:?}"
    );
    assert!(
        kept_copies.iter().any(|c| file_contains(&file, c)),
        "the other subject's data is still there"
    );
    assert!(
        !file_contains(&file, "MARKER-"),
        "no payload is ever in the file in the clear"
    );

    let audit = audit_actions(&app);
    let erase = audit
        .iter()
        .find(|e| e["action"] == "subject.erase")
        .expect("the erasure is audited");
    assert_eq!(erase["after"], json!({"events": 2, "deliveries": 2}));
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "subject.disclosures.view"),
        "reading the accounting is audited"
    );
    assert!(
        audit
            .iter()
            .any(|e| e["action"] == "subject.disclosures.export")
    );
    assert!(
        !audit.iter().any(|e| e.to_string().contains("member:123")),
        "the audit log keeps the subject's hash only"
    );

    // An erased event is not sent again.
    let delivery_id = listed[0]["delivery_id"].as_str().unwrap();
    app.post(
        &format!("/api/v1/deliveries/{delivery_id}/redeliver"),
        &json!({}),
    )
    .assert_error(409);
}

#[test]
fn erasure_stops_the_retries_of_a_subjects_deliveries() {
    let app = spawn_app_with(|c| {
        c.retry.max_attempts = 100;
        c.retry.base_delay = Duration::from_millis(100);
        c.retry.max_delay = Duration::from_millis(100);
    });
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(503));
    app.create_rule(&receiver.url("/hook"), &["patient.*"]);
    let event = ingest_about(&app, "member:9", json!({"note": "MARKER-retry"}));
    receiver.wait_for(2, Duration::from_secs(20));

    let erased = app.post("/api/v1/subjects/member:9/erase", &json!({}));
    assert_eq!(erased.status, 200, "{}", erased.text);
    assert_eq!(erased.body, json!({"events": 1, "deliveries": 1}));
    // An attempt already on the wire may still land; after that, nothing more is sent.
    std::thread::sleep(Duration::from_millis(300));
    receiver.expect_quiet(Duration::from_secs(1));

    let read = app.get(&format!("/api/v1/events/{event}"));
    let delivery = app.delivery(read.body["deliveries"][0]["id"].as_str().unwrap());
    assert_eq!(delivery["status"], "failed", "closed without being sent");
    assert!(delivery["next_attempt_at"].is_null());
    for attempt in delivery["attempts"].as_array().unwrap() {
        assert!(attempt["request"]["body"].is_null(), "{attempt}");
    }
    let listed = disclosures(&app, "member:9");
    assert_eq!(listed.len(), 1, "what was attempted stays accounted for");
    assert!(listed[0]["succeeded_at"].is_null());
}

#[test]
fn a_declared_subject_path_names_the_subject_and_says_why_when_it_cannot() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    app.create_rule(&receiver.url("/hook"), &["member:updated"]);
    let declared = app.post(
        "/api/v1/event-types",
        &json!({"name": "member:updated", "subject_path": "member.id"}),
    );
    assert_eq!(declared.status, 201, "{}", declared.text);
    assert_eq!(declared.body["subject_path"], "member.id");

    let with = app.ingest(&json!({"type": "member:updated", "data": {"member": {"id": 77}}}));
    assert_eq!(with.status, 202, "{}", with.text);
    app.wait_settled(with.body["id"].as_str().unwrap(), Duration::from_secs(20));
    let listed = disclosures(&app, "77");
    assert_eq!(listed.len(), 1, "the subject came from member.id");
    assert_eq!(listed[0]["event_id"], with.body["id"]);

    let without = app.ingest(&json!({"type": "member:updated", "data": {"member": {}}}));
    assert_eq!(
        without.status, 202,
        "accepted all the same: {}",
        without.text
    );
    let entry = wait_until(Duration::from_secs(5), "the catalog's note", || {
        let catalog = app.get("/api/v1/event-types");
        catalog.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|t| t["name"] == "member:updated" && t["subject_missing"].is_object())
            .cloned()
    });
    let reason = entry["subject_missing"]["reason"].as_str().unwrap();
    assert!(reason.contains("member.id"), "{reason}");

    app.post(
        "/api/v1/event-types",
        &json!({"name": "member:updated", "subject_path": "member..id"}),
    )
    .assert_error(400);
}

#[test]
fn bad_subjects_are_refused_and_an_unknown_one_erases_nothing() {
    let app = spawn_app();
    let long = "x".repeat(129);
    for subject in [
        json!(""),
        json!("   "),
        json!(long),
        json!("a\u{7}b"),
        json!(5),
    ] {
        let resp = app.ingest(&json!({"type": "patient.admitted", "subject": subject}));
        resp.assert_error(400);
        assert!(
            resp.message().contains("subject"),
            "{subject}: {}",
            resp.message()
        );
    }
    let listed = app.get("/api/v1/deliveries");
    assert_eq!(
        listed.body["data"],
        json!([]),
        "a refused event stores nothing"
    );

    app.get(&format!("/api/v1/subjects/{long}/disclosures"))
        .assert_error(400);
    app.post(&format!("/api/v1/subjects/{long}/erase"), &json!({}))
        .assert_error(400);
    app.get("/api/v1/subjects/member:1/disclosures?format=xml")
        .assert_error(400);
    app.get("/api/v1/subjects/member:1/disclosures?since=yesterday")
        .assert_error(400);
    app.get("/api/v1/subjects/member:1/disclosures?cursor=nope")
        .assert_error(400);
    let ingest_key = app.ingest_key.clone();
    let as_ingest = app.raw(
        "POST",
        "/api/v1/subjects/member:1/erase",
        Some(&ingest_key),
        None,
        &[],
    );
    assert_eq!(as_ingest.status, 403, "erasure needs an admin key");

    let unknown = app.post("/api/v1/subjects/member:nobody/erase", &json!({}));
    assert_eq!(unknown.status, 200, "{}", unknown.text);
    assert_eq!(unknown.body, json!({"events": 0, "deliveries": 0}));
    let audit = audit_actions(&app);
    let entry = audit
        .iter()
        .find(|e| e["action"] == "subject.erase")
        .expect("audited");
    assert_eq!(entry["after"], json!({"events": 0, "deliveries": 0}));
}
