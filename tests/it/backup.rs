//! Online backup and restore: `tidings backup` against a running server under ingest load gives
//! a consistent snapshot; `tidings restore` puts it into an empty data dir where every rule,
//! secret and log entry is found again.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use serde_json::json;

use crate::support::app::{spawn_app, start, test_config, wait_until};
use crate::support::process::{Ran, Scratch, Served, create_key, run, tidings, tidings_after};
use crate::support::receiver::TestReceiver;

#[test]
fn a_backup_taken_under_load_restores_rules_secrets_and_logs() {
    if crate::support::postgres::redb_only("backup and restore of the embedded file") {
        return;
    }
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

/// A stopped app's data dir holding `events` events of about 4 KB each; and the last one's id.
fn data_dir_with_events(events: usize) -> (std::path::PathBuf, String) {
    let app = spawn_app();
    let pad = "x".repeat(4000);
    let mut last = String::new();
    for n in 0..events {
        let resp = app.ingest(&json!({"type": "ping", "data": {"n": n, "pad": pad}}));
        assert_eq!(resp.status, 202, "{}", resp.text);
        resp.body["id"].as_str().unwrap().clone_into(&mut last);
    }
    (app.stop(), last)
}

/// `tidings backup --out OUT --data-dir DATA` offline, after `prelude` (see `tidings_after`).
/// Retried while the app that just stopped on `data` still holds its database.
fn offline_backup(prelude: &str, out: &std::path::Path, data: &std::path::Path) -> Ran {
    wait_until(Duration::from_secs(10), "the database to be free", || {
        let mut cmd = tidings_after(prelude);
        cmd.args(["backup", "--out"])
            .arg(out)
            .arg("--data-dir")
            .arg(data);
        let ran = run(cmd);
        (!ran.stderr.contains("a running server holds the database")).then_some(ran)
    })
}

/// The names in `dir` of the temporary files interrupted backups and restores leave.
fn partials_in(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .unwrap()
                .to_string_lossy()
                .starts_with(".tidings-partial.")
        })
        .collect()
}

fn mode_of(path: &std::path::Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

#[test]
fn a_killed_offline_backup_leaves_nothing_at_out_and_the_next_backup_removes_its_leftover() {
    if crate::support::postgres::redb_only("backup and restore of the embedded file") {
        return;
    }
    let (data, _) = data_dir_with_events(300);
    let scratch = Scratch::new("backup-killed");
    let out = scratch.path("snapshot.redb");

    // The file-size limit (512-byte blocks in sh) kills the backup with SIGXFSZ once the
    // snapshot it writes passes 256 KiB, as a kill -9 or a power cut would midway.
    let ran = offline_backup("ulimit -f 512", &out, &data);
    assert!(
        !ran.success(),
        "the backup was meant to be cut short: {ran:?}"
    );
    assert!(
        !out.exists(),
        "an interrupted backup left a partial file at --out ({} bytes)",
        std::fs::metadata(&out).map_or(0, |m| m.len())
    );
    let left = partials_in(&scratch.path(""));
    assert_eq!(left.len(), 1, "the interrupted write: {left:?} {ran:?}");
    assert_eq!(mode_of(&left[0]), 0o600, "even unfinished, it holds PHI");

    let ran = offline_backup("umask 000", &out, &data);
    assert!(ran.success(), "{ran:?}");
    assert_eq!(mode_of(&out), 0o600);
    assert!(
        partials_in(&scratch.path("")).is_empty(),
        "the leftover of the killed backup is still there"
    );
    std::fs::remove_dir_all(data).ok();
}

/// This process as a partial file's writer: `<pid>-<start time>` (see `security::files`).
fn own_writer_tag() -> String {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap();
    let after_name = &stat[stat.rfind(')').unwrap() + 1..];
    let start = after_name.split_whitespace().nth(19).unwrap();
    format!("{}-{start}", std::process::id())
}

#[test]
fn start_up_removes_what_an_interrupted_snapshot_left_in_backups_and_nothing_else() {
    if crate::support::postgres::redb_only("backup and restore of the embedded file") {
        return;
    }
    let (data, _) = data_dir_with_events(300);
    let backups = data.join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    let finished = backups.join("tidings-20261201T000000_000Z-0001.redb");
    std::fs::write(&finished, "a finished snapshot").unwrap();
    // What a live writer (here: this process, which the app runs in) is still writing.
    let in_progress = backups.join(format!(
        ".tidings-partial.{}.0123456789abcdef.tidings-20261201T000001_000Z-0002.redb",
        own_writer_tag()
    ));
    std::fs::write(&in_progress, "being written").unwrap();

    // A snapshot into backups/ cut short, as when the server is killed mid-snapshot.
    let killed = backups.join("tidings-20261201T000002_000Z-0003.redb");
    let ran = offline_backup("ulimit -f 512", &killed, &data);
    assert!(
        !ran.success(),
        "the backup was meant to be cut short: {ran:?}"
    );
    assert!(!killed.exists(), "a partial snapshot under the real name");
    assert_eq!(partials_in(&backups).len(), 2);

    let app = start(test_config(&data));
    assert_eq!(
        partials_in(&backups),
        std::slice::from_ref(&in_progress),
        "start-up removes the dead writer's leftover only"
    );
    assert!(finished.exists(), "a finished snapshot was removed");

    let made = app.post("/api/v1/backup", &json!({}));
    assert_eq!(made.status, 201, "{}", made.text);
    let snapshot = std::path::PathBuf::from(made.body["path"].as_str().unwrap());
    assert_eq!(mode_of(&snapshot), 0o600);
    assert_eq!(partials_in(&backups), [in_progress]);
}

/// What must not change about a restore's source: its bytes (as a hash) and its mtime.
fn fingerprint(path: &std::path::Path) -> (String, std::time::SystemTime) {
    use sha2::Digest;
    let bytes = std::fs::read(path).unwrap();
    let modified = std::fs::metadata(path).unwrap().modified().unwrap();
    (hex::encode(sha2::Sha256::digest(bytes)), modified)
}

fn restore(from: &std::path::Path, data_dir: &std::path::Path) -> Ran {
    let mut cmd = tidings_after("umask 000");
    cmd.args(["restore", "--from"])
        .arg(from)
        .arg("--data-dir")
        .arg(data_dir);
    run(cmd)
}

#[test]
fn restore_never_changes_its_source_whether_it_restores_or_refuses() {
    if crate::support::postgres::redb_only("backup and restore of the embedded file") {
        return;
    }
    let scratch = Scratch::new("restore-source");
    let (data, last_event) = data_dir_with_events(20);
    let good = scratch.path("good.redb");
    let ran = offline_backup(":", &good, &data);
    assert!(ran.success(), "{ran:?}");

    let before = fingerprint(&good);
    let restored = scratch.path("restored");
    let ran = restore(&good, &restored);
    assert!(ran.success(), "{ran:?}");
    assert_eq!(
        fingerprint(&good),
        before,
        "a successful restore changed its source"
    );
    assert_eq!(mode_of(&restored.join("tidings.redb")), 0o600);
    assert_eq!(mode_of(&restored), 0o700, "a data dir restore creates");
    assert!(partials_in(&restored).is_empty());
    std::fs::copy(data.join("master.key"), restored.join("master.key")).unwrap();
    let app = start(test_config(&restored));
    let event = app.get(&format!("/api/v1/events/{last_event}"));
    assert_eq!(event.status, 200, "{}", event.text);
    assert_eq!(
        event.body["data"]["n"], 19,
        "the sealed payload reads: {}",
        event.text
    );
    drop(app);

    // Damaged sources: a database file a killed server left (redb would "repair" it, in
    // place, on a read-write open), and a backup cut short.
    let live = scratch.path("live");
    let admin = create_key(&live, "admin");
    let served = Served::start(&live, &["--dev"]);
    for n in 0..20 {
        let resp = crate::support::process::request(
            "POST",
            &served.url("/api/v1/events"),
            Some(&admin),
            Some(&json!({"type": "ping", "data": {"n": n}})),
        );
        assert_eq!(resp.status, 202, "{}", resp.text);
    }
    served.kill9();
    let unclean = scratch.path("unclean.redb");
    std::fs::copy(live.join("tidings.redb"), &unclean).unwrap();
    let truncated = scratch.path("truncated.redb");
    let bytes = std::fs::read(&good).unwrap();
    std::fs::write(&truncated, &bytes[..bytes.len() / 2]).unwrap();

    for damaged in [&unclean, &truncated] {
        let before = fingerprint(damaged);
        let into = scratch.path("refused");
        let ran = restore(damaged, &into);
        assert!(
            !ran.success(),
            "{} was restored: {ran:?}",
            damaged.display()
        );
        assert!(
            ran.stderr.contains(&damaged.display().to_string()),
            "the message names the file given: {}",
            ran.stderr
        );
        assert_eq!(
            fingerprint(damaged),
            before,
            "a refused restore changed its source"
        );
        assert!(!into.join("tidings.redb").exists());
        assert!(partials_in(&into).is_empty(), "the refused copy was left");
    }
    std::fs::remove_dir_all(data).ok();
}
