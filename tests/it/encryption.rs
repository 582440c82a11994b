//! Encryption at rest of event payloads and logged bodies: after real deliveries the PHI is
//! nowhere in the database file (nor in a backup) in clear, while the API still shows it; rows
//! written before encryption existed still read, and are sealed at the next start.

use std::path::Path;
use std::time::Duration;

use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::{Value, json};
use tidings::security::crypto::{MasterKey, Sealed};

use crate::support::app::{TestApp, spawn_app, start, test_config, wait_until};
use crate::support::receiver::{Reply, TestReceiver};

const EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("events-v1");
const ATTEMPTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("attempts-v1");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta-v1");

/// Made-up patient details: any trace of these in the file is PHI in clear.
const PATIENT: &str = "Zelda Quartermaine-Okonkwo";
const DIAGNOSIS: &str = "hypothetical-dx-77Q31";
const RECEIVER_ECHO: &str = "chart note for MRN 4471-Z received";

pub fn contains(haystack: &[u8], needle: &str) -> bool {
    haystack
        .windows(needle.len())
        .any(|w| w == needle.as_bytes())
}

/// Opens the redb file of a stopped app (waiting briefly for the app to release it).
pub fn open_raw(data_dir: &Path) -> redb::Database {
    wait_until(
        Duration::from_secs(10),
        "the database to be free",
        || match redb::Database::open(data_dir.join("tidings.redb")) {
            Ok(db) => Some(db),
            Err(redb::DatabaseError::DatabaseAlreadyOpen) => None,
            Err(e) => panic!("cannot open the database file: {e}"),
        },
    )
}

pub fn master_key(data_dir: &Path) -> MasterKey {
    use base64::Engine;
    let text = std::fs::read_to_string(data_dir.join("master.key")).unwrap();
    let bytes: [u8; 32] = base64::engine::general_purpose::STANDARD
        .decode(text.trim())
        .unwrap()
        .try_into()
        .unwrap();
    MasterKey::from_bytes(&bytes)
}

/// A rule to a receiver that answers with PHI of its own, and one delivered event carrying
/// PHI; returns (event id, delivery id).
fn deliver_phi(app: &TestApp, receiver: &TestReceiver) -> (String, String) {
    receiver.set_default(Reply::status(200).body(RECEIVER_ECHO));
    app.create_rule(&receiver.url("/hook"), &["patient:*"]);
    let resp = app.ingest(&json!({
        "type": "patient:admitted",
        "data": {"patient": {"name": PATIENT, "diagnosis": DIAGNOSIS}},
    }));
    assert_eq!(resp.status, 202, "{}", resp.text);
    let event_id = resp.body["id"].as_str().unwrap().to_owned();
    let deliveries = app.wait_settled(&event_id, Duration::from_secs(20));
    assert_eq!(deliveries[0]["status"], "succeeded");
    (event_id, deliveries[0]["id"].as_str().unwrap().to_owned())
}

/// What the API shows of the event and its logged attempt still carries the PHI in clear.
fn assert_api_shows_phi(app: &TestApp, event_id: &str, delivery_id: &str) {
    let event = app.get(&format!("/api/v1/events/{event_id}"));
    assert_eq!(event.status, 200, "{}", event.text);
    assert!(event.text.contains(PATIENT), "{}", event.text);
    let attempt = &app.delivery(delivery_id)["attempts"][0];
    let request_body = attempt["request"]["body"].as_str().unwrap();
    assert!(request_body.contains(DIAGNOSIS), "{attempt}");
    assert_eq!(attempt["response"]["body"], RECEIVER_ECHO, "{attempt}");
}

#[test]
fn payloads_and_logged_bodies_are_sealed_on_disk_and_in_backups() {
    if crate::support::postgres::redb_only("what the embedded file holds on disk") {
        return;
    }
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let (event_id, delivery_id) = deliver_phi(&app, &receiver);
    assert!(
        receiver.requests()[0]
            .body_json()
            .to_string()
            .contains(PATIENT),
        "the receiver gets the payload in clear"
    );
    assert_api_shows_phi(&app, &event_id, &delivery_id);
    let backup = app.post("/api/v1/backup", &json!({}));
    assert_eq!(backup.status, 201, "{}", backup.text);
    let backup_path = backup.body["path"].as_str().unwrap().to_owned();

    let data_dir = app.stop();
    let file = std::fs::read(data_dir.join("tidings.redb")).unwrap();
    let copy = std::fs::read(&backup_path).unwrap();
    for bytes in [&file, &copy] {
        for phi in [PATIENT, DIAGNOSIS, RECEIVER_ECHO] {
            assert!(!contains(bytes, phi), "{phi:?} is stored in clear");
        }
    }
    // The rows themselves: sealed fields that the master key opens.
    let key = master_key(&data_dir);
    let db = open_raw(&data_dir);
    let txn = db.begin_read().unwrap();
    let row: Value = serde_json::from_slice(
        txn.open_table(EVENTS)
            .unwrap()
            .get(event_id.as_str())
            .unwrap()
            .unwrap()
            .value(),
    )
    .unwrap();
    let sealed = Sealed::parse(row["data"].as_str().expect("data is stored sealed")).unwrap();
    assert!(key.open(&sealed).unwrap().expose().contains(PATIENT));
    assert_eq!(row["type"], "patient:admitted", "metadata stays readable");
    drop(txn);
    drop(db);

    // And the server reads it all back after a restart.
    let again = start(test_config(&data_dir));
    assert_api_shows_phi(&again, &event_id, &delivery_id);
}

/// Rewrites every sealed payload and body of a stopped app's database in clear, as tidings
/// stored them before encryption at rest, and forgets that they were sealed.
fn unseal_as_an_earlier_version_stored(data_dir: &Path) {
    let key = master_key(data_dir);
    let open = |v: &Value| {
        let sealed = Sealed::parse(v.as_str().unwrap()).unwrap();
        key.open(&sealed).unwrap().expose().to_owned()
    };
    let db = open_raw(data_dir);
    let txn = db.begin_write().unwrap();
    {
        let mut events = txn.open_table(EVENTS).unwrap();
        let rows: Vec<(String, Value)> = events
            .iter()
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                (
                    k.value().to_owned(),
                    serde_json::from_slice(v.value()).unwrap(),
                )
            })
            .collect();
        for (k, mut row) in rows {
            row["data"] = serde_json::from_str(&open(&row["data"])).unwrap();
            events
                .insert(k.as_str(), serde_json::to_vec(&row).unwrap().as_slice())
                .unwrap();
        }
        let mut attempts = txn.open_table(ATTEMPTS).unwrap();
        let rows: Vec<((String, u32), Value)> = attempts
            .iter()
            .unwrap()
            .map(|e| {
                let (k, v) = e.unwrap();
                let (id, n) = k.value();
                (
                    (id.to_owned(), n),
                    serde_json::from_slice(v.value()).unwrap(),
                )
            })
            .collect();
        for ((id, n), mut row) in rows {
            for part in ["request", "response"] {
                let plain = open(&row[part]["body"]["sealed"]);
                row[part]["body"] = Value::String(plain);
            }
            attempts
                .insert(
                    (id.as_str(), n),
                    serde_json::to_vec(&row).unwrap().as_slice(),
                )
                .unwrap();
        }
        let mut meta = txn.open_table(META).unwrap();
        meta.remove("payloads_sealed").unwrap();
        meta.remove("master_key_check").unwrap();
    }
    txn.commit().unwrap();
}

#[test]
fn rows_stored_in_clear_by_an_earlier_version_still_read_and_are_sealed_at_start() {
    if crate::support::postgres::redb_only("what the embedded file holds on disk") {
        return;
    }
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let (event_id, delivery_id) = deliver_phi(&app, &receiver);
    let data_dir = app.stop();
    unseal_as_an_earlier_version_stored(&data_dir);
    let file = std::fs::read(data_dir.join("tidings.redb")).unwrap();
    assert!(
        contains(&file, PATIENT) && contains(&file, RECEIVER_ECHO),
        "the simulated earlier version stored PHI in clear"
    );

    let app = start(test_config(&data_dir));
    assert_api_shows_phi(&app, &event_id, &delivery_id);
    // New events keep being sealed, and delivery carries on.
    let more =
        app.ingest(&json!({"type": "patient:discharged", "data": {"patient": {"name": PATIENT}}}));
    assert_eq!(more.status, 202);
    app.wait_settled(more.body["id"].as_str().unwrap(), Duration::from_secs(20));
    let data_dir = app.stop();
    let file = std::fs::read(data_dir.join("tidings.redb")).unwrap();
    for phi in [PATIENT, DIAGNOSIS, RECEIVER_ECHO] {
        assert!(!contains(&file, phi), "{phi:?} is still stored in clear");
    }
    // Stopped for good: the dir was kept only to read its files.
    std::fs::remove_dir_all(&data_dir).ok();
}
