//! `tidings rotate-master-key`: every sealed value (signing secrets, secret headers, event
//! payloads, logged bodies) moves to a new key; the old key no longer opens the data; a
//! running server makes it refuse and change nothing; an interrupted rotation is finished at
//! the next start; with `TIDINGS_MASTER_KEY` the new key comes from `TIDINGS_NEW_MASTER_KEY`;
//! a subject recorded before is still found after.

use std::path::Path;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use redb::{ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::{Value, json};
use tidings::security::crypto::{MasterKey, Sealed};

use crate::encryption::{contains, master_key, open_raw};
use crate::support::app::{TestApp, spawn_app, start, test_config};
use crate::support::process::{Ran, Scratch, Served, create_key, request, run, tidings};
use crate::support::receiver::TestReceiver;

const EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("events-v1");
const RULES: TableDefinition<&str, &[u8]> = TableDefinition::new("rules-v1");
const META: TableDefinition<&str, &str> = TableDefinition::new("meta-v1");

const PATIENT: &str = "Ignatius Fairweather-Nakamura";
const HEADER_VALUE: &str = "Bearer ehr-token-5521";
const SUBJECT: &str = "member:5521";

/// What a data dir must still hold after a rotation.
struct Before {
    rule_id: String,
    secret: String,
    event_id: String,
}

/// A rule with a secret header, and one delivered event with PHI.
fn provision(app: &TestApp, receiver: &TestReceiver) -> Before {
    let rule = app.create_rule_with(json!({
        "name": "EHR",
        "trigger": {"type": "event", "events": ["*"]},
        "webhook": {"url": receiver.url("/"), "secret_headers": {"Authorization": HEADER_VALUE}},
    }));
    let rule_id = rule["id"].as_str().unwrap().to_owned();
    let resp = app.ingest(
        &json!({"type": "patient:admitted", "subject": SUBJECT, "data": {"name": PATIENT}}),
    );
    assert_eq!(resp.status, 202, "{}", resp.text);
    let event_id = resp.body["id"].as_str().unwrap().to_owned();
    app.wait_settled(&event_id, Duration::from_secs(20));
    Before {
        secret: app.secret(&rule_id),
        rule_id,
        event_id,
    }
}

/// After a rotation: the same secret, the PHI, the logged body, and a new delivery carrying
/// the secret header, signed with the same signing secret.
fn assert_everything_reads(app: &TestApp, before: &Before) {
    assert_eq!(app.secret(&before.rule_id), before.secret);
    let event = app.get(&format!("/api/v1/events/{}", before.event_id));
    assert_eq!(event.status, 200, "{}", event.text);
    assert_eq!(event.body["data"]["name"], PATIENT);
    let delivery = event.body["deliveries"][0]["id"].as_str().unwrap();
    // Subjects hash under a seed the rotation re-sealed, so the subject is still found.
    let disclosures = app.get(&format!("/api/v1/subjects/{SUBJECT}/disclosures"));
    assert_eq!(disclosures.status, 200, "{}", disclosures.text);
    assert_eq!(
        disclosures.body["data"][0]["delivery_id"], delivery,
        "{}",
        disclosures.text
    );
    let attempt = &app.delivery(delivery)["attempts"][0];
    assert!(
        attempt["request"]["body"]
            .as_str()
            .unwrap()
            .contains(PATIENT),
        "{attempt}"
    );
    let receiver = TestReceiver::start();
    let patched = app.send(
        "PATCH",
        &format!("/api/v1/rules/{}", before.rule_id),
        &json!({"webhook": {"url": receiver.url("/")}}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(app.ingest(&json!({"type": "ping"})).status, 202);
    let got = receiver.wait_for(1, Duration::from_secs(20)).remove(0);
    assert_eq!(got.header("authorization"), Some(HEADER_VALUE));
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    tidings::delivery::verify::verify(&before.secret, &got.headers, &got.body, now, 300)
        .expect("signed with the same signing secret");
}

fn rotate(data_dir: &Path, env: &[(&str, &str)]) -> Ran {
    let mut cmd = tidings();
    cmd.arg("rotate-master-key")
        .arg("--data-dir")
        .arg(data_dir)
        .envs(env.iter().copied());
    run(cmd)
}

/// The event's payload as stored: a sealed value.
fn stored_payload(data_dir: &Path, event_id: &str) -> Sealed {
    let db = open_raw(data_dir);
    let txn = db.begin_read().unwrap();
    let row: Value = serde_json::from_slice(
        txn.open_table(EVENTS)
            .unwrap()
            .get(event_id)
            .unwrap()
            .unwrap()
            .value(),
    )
    .unwrap();
    Sealed::parse(row["data"].as_str().unwrap()).unwrap()
}

#[test]
fn rotation_reseals_everything_and_retires_the_old_key() {
    if crate::support::postgres::redb_only("rotation of the embedded file") {
        return;
    }
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let before = provision(&app, &receiver);

    // Refused while the server holds the database, leaving the keys as they were.
    let key_file = app.data_dir.join("master.key");
    let old_text = std::fs::read_to_string(&key_file).unwrap();
    let ran = rotate(&app.data_dir, &[]);
    assert!(!ran.success());
    assert!(
        ran.stderr.contains("stop it first") && ran.stderr.contains("running tidings server"),
        "{}",
        ran.stderr
    );
    assert_eq!(std::fs::read_to_string(&key_file).unwrap(), old_text);
    assert!(!app.data_dir.join("master.key.new").exists());

    let data_dir = app.stop();
    let old = master_key(&data_dir);
    // The stopped app releases the file a moment after `stop` returns.
    drop(open_raw(&data_dir));
    let ran = rotate(&data_dir, &[]);
    assert!(ran.success(), "{ran:?}");
    assert!(ran.stdout.contains("master key rotated"), "{}", ran.stdout);
    assert!(!data_dir.join("master.key.new").exists());
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&key_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
    }
    let new = master_key(&data_dir);
    let payload = stored_payload(&data_dir, &before.event_id);
    assert!(
        old.open(&payload).is_err(),
        "the old key no longer opens payloads"
    );
    assert!(new.open(&payload).unwrap().expose().contains(PATIENT));
    let file = std::fs::read(data_dir.join("tidings.redb")).unwrap();
    assert!(!contains(&file, PATIENT));

    // The old key is refused at start, by a check, not at the first delivery.
    let scratch = Scratch::new("rotation-old-key");
    let stale = scratch.path("data");
    std::fs::create_dir_all(&stale).unwrap();
    std::fs::copy(data_dir.join("tidings.redb"), stale.join("tidings.redb")).unwrap();
    std::fs::write(stale.join("master.key"), &old_text).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = tidings::run_with_key(test_config(&stale), listener, None)
        .err()
        .expect("the old key must not start the server");
    assert!(format!("{err:#}").contains("does not open"), "{err:#}");

    let app = start(test_config(&data_dir));
    assert_everything_reads(&app, &before);
}

/// Re-seals every sealed string of a table's rows with `to` (those `from` opens).
fn reseal_rows(db: &redb::Database, from: &MasterKey, to: &MasterKey) {
    fn walk(v: &mut Value, from: &MasterKey, to: &MasterKey) {
        match v {
            Value::String(s) => {
                if let Some(plain) = Sealed::parse(s).and_then(|x| from.open(&x).ok()) {
                    *s = to.seal(plain.expose()).into_string();
                }
            }
            Value::Array(a) => a.iter_mut().for_each(|v| walk(v, from, to)),
            Value::Object(m) => m.values_mut().for_each(|v| walk(v, from, to)),
            _ => {}
        }
    }
    let txn = db.begin_write().unwrap();
    {
        let mut rules = txn.open_table(RULES).unwrap();
        let rows: Vec<(String, Value)> = rules
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
            walk(&mut row, from, to);
            rules
                .insert(k.as_str(), serde_json::to_vec(&row).unwrap().as_slice())
                .unwrap();
        }
    }
    txn.commit().unwrap();
}

#[test]
fn an_interrupted_rotation_is_finished_at_the_next_start() {
    if crate::support::postgres::redb_only("rotation of the embedded file") {
        return;
    }
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let before = provision(&app, &receiver);
    let data_dir = app.stop();

    // The state a rotation leaves when it dies after its first batches: master.key.new on
    // disk (0600), the rotation recorded, rule secrets re-sealed, payloads and logs not yet.
    let old = master_key(&data_dir);
    let new_bytes = [0x5a_u8; 32];
    let new = MasterKey::from_bytes(&new_bytes);
    {
        use std::io::Write;
        use std::os::unix::fs::OpenOptionsExt;
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(data_dir.join("master.key.new"))
            .unwrap();
        writeln!(f, "{}", B64.encode(new_bytes)).unwrap();
    }
    let db = open_raw(&data_dir);
    {
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(
                "master_key_rotating_to",
                new.seal("tidings master key check").as_str(),
            )
            .unwrap();
        txn.commit().unwrap();
    }
    reseal_rows(&db, &old, &new);
    drop(db);
    assert!(
        old.open(&stored_payload(&data_dir, &before.event_id))
            .is_ok()
    );

    // An offline backup now would need both keys, so it is refused.
    let scratch = Scratch::new("rotation-backup");
    let mut cmd = tidings();
    cmd.args(["backup", "--out"])
        .arg(scratch.path("b.redb"))
        .arg("--data-dir")
        .arg(&data_dir);
    let ran = run(cmd);
    assert!(
        !ran.success() && ran.stderr.contains("rotation is unfinished"),
        "{ran:?}"
    );

    // Without master.key.new the open refuses, and does not write another one in its place.
    let aside = scratch.path("master.key.new");
    std::fs::rename(data_dir.join("master.key.new"), &aside).unwrap();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = tidings::run_with_key(test_config(&data_dir), listener, None)
        .err()
        .expect("an interrupted rotation without its new key must not start");
    assert!(
        format!("{err:#}").contains("master.key.new, is missing"),
        "{err:#}"
    );
    assert!(!data_dir.join("master.key.new").exists());
    std::fs::rename(&aside, data_dir.join("master.key.new")).unwrap();

    let app = start(test_config(&data_dir));
    assert!(!data_dir.join("master.key.new").exists(), "rename done");
    assert_eq!(
        std::fs::read_to_string(data_dir.join("master.key"))
            .unwrap()
            .trim(),
        B64.encode(new_bytes),
        "the new key is the master key now"
    );
    assert_everything_reads(&app, &before);
    let data_dir = app.stop();
    let payload = stored_payload(&data_dir, &before.event_id);
    assert!(old.open(&payload).is_err() && new.open(&payload).is_ok());
    // Stopped for good: the dir was kept only to read its files.
    std::fs::remove_dir_all(&data_dir).ok();
}

#[test]
fn with_keys_in_the_environment_the_new_key_comes_from_tidings_new_master_key() {
    let scratch = Scratch::new("rotation-env");
    let data_dir = scratch.path("data");
    let old_key = B64.encode([0x11_u8; 32]);
    let new_key = B64.encode([0x22_u8; 32]);
    let admin = create_key(&data_dir, "admin");
    let served = Served::start_with_env(&data_dir, &["--dev"], &[("TIDINGS_MASTER_KEY", &old_key)]);
    let receiver = TestReceiver::start();
    let rule = request(
        "POST",
        &served.url("/api/v1/rules"),
        Some(&admin),
        Some(
            &json!({"name": "r", "trigger": {"type": "event", "events": ["*"]},
            "webhook": {"url": receiver.url("/")}}),
        ),
    );
    assert_eq!(rule.status, 201, "{}", rule.text);
    let secret_path = format!("/api/v1/rules/{}/secret", rule.body["id"].as_str().unwrap());
    let secret =
        request("GET", &served.url(&secret_path), Some(&admin), None).body["secret"].clone();
    assert!(secret.is_string());
    let event = request(
        "POST",
        &served.url("/api/v1/events"),
        Some(&admin),
        Some(&json!({"type": "patient:admitted", "data": {"name": PATIENT}})),
    );
    assert_eq!(event.status, 202);
    receiver.wait_for(1, Duration::from_secs(20));
    served.kill9();
    assert!(
        !data_dir.join("master.key").exists(),
        "no key file in env mode"
    );

    let ran = rotate(&data_dir, &[("TIDINGS_MASTER_KEY", &old_key)]);
    assert!(
        !ran.success() && ran.stderr.contains("TIDINGS_NEW_MASTER_KEY"),
        "{ran:?}"
    );
    let ran = rotate(
        &data_dir,
        &[
            ("TIDINGS_MASTER_KEY", &old_key),
            ("TIDINGS_NEW_MASTER_KEY", "short"),
        ],
    );
    assert!(!ran.success() && ran.stderr.contains("32 bytes"), "{ran:?}");
    // A rotation to the new key that died after recording itself: serve with the old key
    // alone refuses, saying what to run; running it again finishes the job.
    let new = MasterKey::from_bytes(&[0x22_u8; 32]);
    {
        let db = open_raw(&data_dir);
        let txn = db.begin_write().unwrap();
        txn.open_table(META)
            .unwrap()
            .insert(
                "master_key_rotating_to",
                new.seal("tidings master key check").as_str(),
            )
            .unwrap();
        txn.commit().unwrap();
    }
    let mut interrupted = Served::spawn(&data_dir, &["--dev"], &[("TIDINGS_MASTER_KEY", &old_key)]);
    assert!(!interrupted.wait_exit().success());
    assert!(
        interrupted.log().contains("interrupted")
            && interrupted.log().contains("rotate-master-key"),
        "{}",
        interrupted.log()
    );
    let ran = rotate(
        &data_dir,
        &[
            ("TIDINGS_MASTER_KEY", &old_key),
            ("TIDINGS_NEW_MASTER_KEY", &new_key),
        ],
    );
    assert!(ran.success(), "{ran:?}");
    assert!(
        ran.stdout.contains("set TIDINGS_MASTER_KEY"),
        "{}",
        ran.stdout
    );
    assert!(!data_dir.join("master.key").exists() && !data_dir.join("master.key.new").exists());

    // The old key no longer starts the server; the new one does, with the same secret.
    let mut stale = Served::spawn(&data_dir, &["--dev"], &[("TIDINGS_MASTER_KEY", &old_key)]);
    assert!(!stale.wait_exit().success());
    assert!(stale.log().contains("does not open"), "{}", stale.log());
    let served = Served::start_with_env(&data_dir, &["--dev"], &[("TIDINGS_MASTER_KEY", &new_key)]);
    let got = request("GET", &served.url(&secret_path), Some(&admin), None);
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["secret"], secret);
}

#[test]
fn rotation_refuses_bad_input_and_changes_nothing() {
    if crate::support::postgres::redb_only("rotation of the embedded file") {
        return;
    }
    let scratch = Scratch::new("rotation-bad");
    let missing = scratch.path("nothing-here");
    let ran = rotate(&missing, &[]);
    assert!(
        !ran.success() && ran.stderr.contains("holds no tidings database"),
        "{ran:?}"
    );
    assert!(!missing.exists(), "no data dir created");

    let app = spawn_app();
    let data_dir = app.stop();
    drop(open_raw(&data_dir));
    let key_before = std::fs::read(data_dir.join("master.key")).unwrap();
    let ran = rotate(
        &data_dir,
        &[("TIDINGS_NEW_MASTER_KEY", &B64.encode([3_u8; 32]))],
    );
    assert!(
        !ran.success()
            && ran
                .stderr
                .contains("only for keys given as TIDINGS_MASTER_KEY"),
        "{ran:?}"
    );
    let ran = rotate(
        &data_dir,
        &[("TIDINGS_MASTER_KEY", &B64.encode([4_u8; 32]))],
    );
    assert!(
        !ran.success() && ran.stderr.contains("does not open"),
        "{ran:?}"
    );
    assert_eq!(
        std::fs::read(data_dir.join("master.key")).unwrap(),
        key_before
    );
    assert!(!data_dir.join("master.key.new").exists());
    // Stopped for good: the dir was kept only to read its files.
    std::fs::remove_dir_all(&data_dir).ok();
}
