//! Online backup and restore: `tidings backup` against a running server under ingest load gives
//! a consistent snapshot; `tidings restore` puts it into an empty data dir where every rule,
//! secret and log entry is found again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::support::app::{spawn_app, start, test_config};
use crate::support::process::{Scratch, run, tidings};
use crate::support::receiver::TestReceiver;

#[test]
fn a_backup_taken_under_load_restores_rules_secrets_and_logs() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let rule = app.create_rule_with(
        json!({"name": "CRM", "trigger": {"type": "event", "events": ["*"]},
        "webhook": {"url": receiver.url("/"), "secret_headers": {"Authorization": "Bearer kept"}}}),
    );
    let rule_id = rule["id"].as_str().unwrap().to_owned();
    let secret = app.secret(&rule_id);
    let first = app
        .ingest(&json!({"type": "member:created", "data": {"n": 1}}))
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_settled(&first, Duration::from_secs(20));

    let scratch = Scratch::new("backup");
    let out = scratch.path("snapshot.redb");
    let stop = AtomicBool::new(false);
    std::thread::scope(|s| {
        // Events keep arriving while the snapshot is taken.
        s.spawn(|| {
            for n in 0..200 {
                if stop.load(Ordering::Relaxed) {
                    break;
                }
                assert_eq!(
                    app.ingest(&json!({"type": "ping", "data": {"n": n}}))
                        .status,
                    202
                );
            }
        });
        let mut cmd = tidings();
        cmd.args(["backup", "--out"])
            .arg(&out)
            .arg("--data-dir")
            .arg(&app.data_dir)
            .args(["--url", &app.url(""), "--key", &app.admin_key]);
        let ran = run(cmd);
        stop.store(true, Ordering::Relaxed);
        assert!(ran.success(), "{}", ran.stderr);
        assert!(ran.stdout.contains("rows written"), "{}", ran.stdout);
    });
    assert!(out.exists());
    let audit = app.get("/api/v1/audit").body;
    assert!(
        audit["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|e| e["action"] == "backup.create")
    );

    // Restore into an empty dir, with the original master key beside it.
    let restored = scratch.path("restored");
    let mut cmd = tidings();
    cmd.args(["restore", "--from"])
        .arg(&out)
        .arg("--data-dir")
        .arg(&restored);
    let ran = run(cmd);
    assert!(ran.success(), "{}", ran.stderr);
    assert!(
        ran.stderr.contains("master.key"),
        "restore reminds about the master key: {}",
        ran.stderr
    );
    std::fs::copy(app.data_dir.join("master.key"), restored.join("master.key")).unwrap();
    // A second restore into the same dir is refused.
    let mut again = tidings();
    again
        .args(["restore", "--from"])
        .arg(&out)
        .arg("--data-dir")
        .arg(&restored);
    let ran = run(again);
    assert!(
        !ran.success() && ran.stderr.contains("already holds a database"),
        "{}",
        ran.stderr
    );

    let copy = start(test_config(&restored));
    let got = copy.get(&format!("/api/v1/rules/{rule_id}"));
    assert_eq!(got.status, 200, "{}", got.text);
    assert_eq!(got.body["name"], "CRM");
    assert_eq!(copy.secret(&rule_id), secret, "the signing secret survives");
    let event = copy.get(&format!("/api/v1/events/{first}"));
    assert_eq!(event.status, 200);
    let delivery = event.body["deliveries"][0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(
        copy.delivery(&delivery)["attempts"][0]["status_code"],
        200,
        "the log survives"
    );
    // The restored copy still sends, with the kept secret header.
    let more = TestReceiver::start();
    copy.send(
        "PATCH",
        &format!("/api/v1/rules/{rule_id}"),
        &json!({"webhook": {"url": more.url("/")}}),
    );
    copy.ingest(&json!({"type": "ping"}));
    assert_eq!(
        more.wait_for(1, Duration::from_secs(20))[0].header("authorization"),
        Some("Bearer kept")
    );
}

#[test]
fn backup_refuses_an_existing_file_and_restore_a_non_database() {
    let scratch = Scratch::new("backup-bad");
    let existing = scratch.write("exists.redb", "x");
    let mut cmd = tidings();
    cmd.args(["backup", "--out"])
        .arg(&existing)
        .arg("--data-dir")
        .arg(scratch.path("d"));
    let ran = run(cmd);
    assert!(
        !ran.success() && ran.stderr.contains("already exists"),
        "{}",
        ran.stderr
    );
    let junk = scratch.write("junk.redb", "not a database");
    let mut cmd = tidings();
    cmd.args(["restore", "--from"])
        .arg(&junk)
        .arg("--data-dir")
        .arg(scratch.path("r"));
    let ran = run(cmd);
    assert!(
        !ran.success() && ran.stderr.contains("not a tidings database"),
        "{}",
        ran.stderr
    );
}
