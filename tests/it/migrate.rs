//! `tidings migrate --data-dir DIR --to postgres://…` (SPEC §10): an embedded database copied
//! into PostgreSQL reads the same through the API on a node of the new store — rules and their
//! secrets, events, deliveries with attempts, the catalog, API keys, subjects, the audit log —
//! and a delivery still owed at the copy is sent by that node. Bad input changes nothing.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app_with, wait_until};
use crate::support::postgres::TestDb;
use crate::support::process::{Ran, Scratch, Served, request, run, tidings};
use crate::support::receiver::{Reply, TestReceiver};

const SUBJECT: &str = "member:8812";

/// What the API shows of a store (its audit log apart: reading some of these is audited).
fn views(get: &dyn Fn(&str) -> Value, rules: &[String], events: &[String]) -> Vec<(String, Value)> {
    let mut paths = vec![
        "/api/v1/rules".to_owned(),
        "/api/v1/api-keys".to_owned(),
        "/api/v1/event-types".to_owned(),
        "/api/v1/deliveries?limit=100".to_owned(),
        format!("/api/v1/subjects/{SUBJECT}/disclosures"),
    ];
    for rule in rules {
        paths.push(format!("/api/v1/rules/{rule}"));
        paths.push(format!("/api/v1/rules/{rule}/secret"));
        paths.push(format!("/api/v1/rules/{rule}/versions"));
    }
    // The first rule has a draft (§14).
    paths.push(format!("/api/v1/rules/{}/draft", rules[0]));
    for event in events {
        paths.push(format!("/api/v1/events/{event}"));
    }
    let mut out: Vec<(String, Value)> = paths.iter().map(|p| (p.clone(), get(p))).collect();
    // Each delivery with its attempts.
    let listed = out[3].1["data"].as_array().cloned().unwrap_or_default();
    for d in listed {
        let path = format!("/api/v1/deliveries/{}", d["id"].as_str().unwrap());
        out.push((path.clone(), get(&path)));
    }
    out
}

const AUDIT: &str = "/api/v1/audit?limit=250";

/// Rows of a table in the test's database.
fn count(db: &TestDb, table: &str) -> i64 {
    db.client()
        .query_one(&format!("SELECT count(*) FROM {table}"), &[])
        .expect("count")
        .get(0)
}

fn migrate(data_dir: &std::path::Path, to: &str, env: &[(&str, &str)]) -> Ran {
    let mut cmd = tidings();
    cmd.arg("migrate")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--to", to])
        .env_remove("TIDINGS_STORE_URL")
        .env_remove("TIDINGS_MASTER_KEY")
        .envs(env.iter().copied());
    run(cmd)
}

/// A store with something in every table the API reads: two rules (one with a log setting),
/// delivered events (one about a subject), a declared type, a failed delivery.
fn provision(
    app: &TestApp,
    ok: &TestReceiver,
    failing: &TestReceiver,
) -> (Vec<String>, Vec<String>) {
    let crm = app.create_rule_with(json!({
        "name": "CRM",
        "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {"url": ok.url("/crm"), "secret_headers": {"Authorization": "Bearer crm-7"}},
        "log": {"redact": ["member.ssn"]},
    }));
    let broken = app.create_rule_with(json!({
        "name": "Broken",
        "trigger": {"type": "event", "events": ["call:*"]},
        "webhook": {"url": failing.url("/")},
    }));
    let declared = app.post(
        "/api/v1/event-types",
        &json!({"name": "member:created", "description": "A member joined", "subject_path": "member.id"}),
    );
    assert_eq!(declared.status, 201, "{}", declared.text);
    let mut events = Vec::new();
    for body in [
        json!({"type": "member:created", "subject": SUBJECT, "data": {"member": {"id": 8812, "ssn": "123-45-6789"}}}),
        json!({"type": "member:updated", "idempotency_key": "sync-9", "data": {"member": {"id": 9}}}),
        json!({"type": "call:completed", "data": {"seconds": 42}}),
    ] {
        let resp = app.ingest(&body);
        assert_eq!(resp.status, 202, "{}", resp.text);
        let id = resp.body["id"].as_str().unwrap().to_owned();
        app.wait_settled(&id, Duration::from_secs(20));
        events.push(id);
    }
    // Versions and a draft (§14): the CRM rule is at version 2 with a draft waiting.
    let crm_path = format!("/api/v1/rules/{}", crm["id"].as_str().unwrap());
    let patched = app.send(
        "PATCH",
        &crm_path,
        &json!({"description": "second version"}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    let drafted = app.send(
        "PUT",
        &format!("{crm_path}/draft"),
        &json!({
            "name": "CRM next",
            "trigger": {"type": "event", "events": ["member:*"]},
            "webhook": {"url": ok.url("/crm-next"), "secret_headers": {"Authorization": "********"}},
        }),
    );
    assert_eq!(drafted.status, 200, "{}", drafted.text);
    let rules = [crm, broken]
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_owned())
        .collect();
    (rules, events)
}

#[test]
fn a_migrated_store_reads_the_same_on_postgresql_and_sends_what_was_owed() {
    if crate::support::postgres::redb_only("migrating from the embedded file") {
        return;
    }
    let Some(db) = TestDb::new() else { return };
    let ok = TestReceiver::start();
    let failing = TestReceiver::start();
    failing.set_default(Reply::status(500));
    // Failures are final after three quick attempts; a receiver's Retry-After is honoured.
    let app = spawn_app_with(|c| {
        c.retry.max_attempts = 3;
        c.retry.base_delay = Duration::from_millis(100);
        c.retry.max_delay = Duration::from_secs(60);
        c.retry.jitter = false;
    });
    let (rules, events) = provision(&app, &ok, &failing);
    // Owed at the copy: its receiver is down and retries are far apart.
    let owed_receiver = TestReceiver::start();
    owed_receiver.set_default(Reply::status(503).header("Retry-After", "8"));
    app.create_rule(&owed_receiver.url("/owed"), &["order:*"]);
    let owed = app
        .ingest(&json!({"type": "order:placed", "data": {"n": 1}}))
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    owed_receiver.wait_for(1, Duration::from_secs(20));

    // A second workspace with a key and a rule of its own (SPEC §14) comes along too.
    let owner = crate::workspaces::owner_key(&app);
    let north = crate::workspaces::make_north(&app, &owner);
    let north_rule = app.raw(
        "POST",
        "/api/v1/rules",
        Some(&north.admin),
        Some(
            &serde_json::to_vec(
                &json!({"name": "north", "trigger": {"type": "event", "events": ["ping"]},
                "webhook": {"url": ok.url("/north")}}),
            )
            .unwrap(),
        ),
        &[],
    );
    assert_eq!(north_rule.status, 201, "{}", north_rule.text);
    let before_rules = app.get("/api/v1/rules").body;
    let read = |p: &str| {
        let resp = app.get(p);
        assert_eq!(resp.status, 200, "{p}: {}", resp.text);
        resp.body
    };
    let before = views(&read, &rules, &events);
    let audit_before = read(AUDIT);
    let (admin_key, ingest_key) = (app.admin_key.clone(), app.ingest_key.clone());
    let data_dir = app.stop();
    let key = std::fs::read_to_string(data_dir.join("master.key")).unwrap();
    let mut add_user = tidings();
    add_user
        .args([
            "user",
            "add",
            "--username",
            "ops",
            "--role",
            "admin",
            "--data-dir",
        ])
        .arg(&data_dir)
        .env("TIDINGS_PASSWORD", "correct horse battery staple");
    let added = run(add_user);
    assert!(added.success(), "{added:?}");

    let ran = migrate(&data_dir, &db.url, &[]);
    assert!(ran.success(), "{ran:?}");
    for copied in [
        "users 1",
        "hourly_outcomes ",
        "idempotency_keys 1",
        "open_deliveries 1",
        // Three rules of Default (one with two versions), North Clinic's one.
        "rule_versions 5",
        "rule_drafts 1",
    ] {
        assert!(ran.stdout.contains(copied), "{copied}: {}", ran.stdout);
    }
    assert!(ran.stdout.contains("master key"), "{}", ran.stdout);

    owed_receiver.set_default(Reply::status(200));
    let scratch = Scratch::new("migrate-node");
    let node = Served::start_with_env(
        &scratch.path("node"),
        &["--dev"],
        &[
            ("TIDINGS_STORE_URL", &db.url),
            ("TIDINGS_MASTER_KEY", key.trim()),
        ],
    );
    let get = |p: &str| {
        let resp = request("GET", &node.url(p), Some(&admin_key), None);
        assert_eq!(resp.status, 200, "{p}: {}", resp.text);
        resp.body
    };
    // The audit log, read first: the same, after the user added offline.
    let mut audit_after = get(AUDIT);
    let entries = audit_after["data"].as_array_mut().unwrap();
    assert_eq!(entries.remove(0)["action"], "user.create");
    assert_eq!(audit_after, audit_before);
    // The owed delivery goes out from the new store, with its history.
    let sent = owed_receiver.wait_for(2, Duration::from_secs(30));
    assert_eq!(sent.last().unwrap().path, "/owed");
    let north_rules = request("GET", &node.url("/api/v1/rules"), Some(&north.admin), None);
    assert_eq!(north_rules.status, 200, "{}", north_rules.text);
    assert_eq!(north_rules.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(north_rules.body["data"][0]["id"], north_rule.body["id"]);
    let workspaces = request("GET", &node.url("/api/v1/workspaces"), Some(&owner), None);
    let names: Vec<&str> = workspaces.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| w["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["Default", "North Clinic"], "{}", workspaces.text);
    let after_rules = get("/api/v1/rules");
    assert_eq!(before_rules, after_rules);
    let after = views(&get, &rules, &events);
    let owed_path = format!("/api/v1/events/{owed}");
    for ((path, was), (_, is)) in before.iter().zip(&after) {
        if path.starts_with("/api/v1/deliveries") && was.to_string().contains(&owed) {
            continue;
        }
        let (was, is) = if path.starts_with("/api/v1/deliveries?") {
            (without(was, &owed), without(is, &owed))
        } else {
            (was.clone(), is.clone())
        };
        assert_eq!(was, is, "{path} differs after the migration");
        assert_ne!(path, &owed_path);
    }
    assert_eq!(before.len(), after.len());
    // Sealed values opened on the other side: the secret header goes out, the subject is found.
    let resp = request(
        "POST",
        &node.url("/api/v1/events"),
        Some(&ingest_key),
        Some(
            &json!({"type": "member:created", "subject": SUBJECT, "data": {"member": {"id": 8812}}}),
        ),
    );
    assert_eq!(resp.status, 202, "{}", resp.text);
    // The idempotency key came along: the same key names the event it did.
    let again = request(
        "POST",
        &node.url("/api/v1/events"),
        Some(&ingest_key),
        Some(
            &json!({"type": "member:updated", "idempotency_key": "sync-9", "data": {"member": {"id": 9}}}),
        ),
    );
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["id"], events[1].as_str());
    let got = ok.wait_for(3, Duration::from_secs(20));
    assert_eq!(
        got.last().unwrap().header("authorization"),
        Some("Bearer crm-7")
    );
    wait_until(Duration::from_secs(20), "the new disclosure", || {
        let found = get(&format!("/api/v1/subjects/{SUBJECT}/disclosures"));
        (found["data"].as_array().unwrap().len() == 2).then_some(())
    });
    // Stopped for good: the dir was kept only to read its files.
    std::fs::remove_dir_all(&data_dir).ok();
}

/// The deliveries page without the one still owed at the copy.
fn without(page: &Value, owed_event: &str) -> Value {
    let data: Vec<Value> = page["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|d| d["event_id"] != owed_event)
        .cloned()
        .collect();
    json!({"data": data, "next_cursor": page["next_cursor"]})
}

#[test]
fn migrate_refuses_bad_input_and_changes_nothing() {
    if crate::support::postgres::redb_only("migrating from the embedded file") {
        return;
    }
    let Some(db) = TestDb::new() else { return };
    let receiver = TestReceiver::start();
    let app = spawn_app_with(|_| {});
    app.create_rule(&receiver.url("/"), &["x"]);

    // The server still holds the database.
    let ran = migrate(&app.data_dir, &db.url, &[]);
    assert!(!ran.success());
    assert!(ran.stderr.contains("stop it first"), "{}", ran.stderr);
    let data_dir = app.stop();

    let ran = migrate(&data_dir, "mysql://x@127.0.0.1/db", &[]);
    assert!(
        !ran.success() && ran.stderr.contains("postgres:// URL"),
        "{ran:?}"
    );
    let scratch = Scratch::new("migrate-bad");
    let ran = migrate(&scratch.path("nothing"), &db.url, &[]);
    assert!(
        !ran.success() && ran.stderr.contains("no tidings database"),
        "{ran:?}"
    );
    let wrong = "2222222222222222222222222222222222222222222222222222222222222222";
    let ran = migrate(&data_dir, &db.url, &[("TIDINGS_MASTER_KEY", wrong)]);
    assert!(
        !ran.success() && ran.stderr.contains("does not open"),
        "{ran:?}"
    );
    assert_eq!(
        count(&db, "pg_tables WHERE tablename = 'rules'"),
        0,
        "a refused migration creates nothing"
    );

    // Once copied, the database is in use: a second copy is refused and changes nothing.
    let ran = migrate(&data_dir, &db.url, &[]);
    assert!(ran.success(), "{ran:?}");
    let ran = migrate(&data_dir, &db.url, &[]);
    assert!(!ran.success(), "{ran:?}");
    assert!(ran.stderr.contains("empty database only"), "{}", ran.stderr);
    assert_eq!(count(&db, "rules"), 1);
    // Stopped for good: the dir was kept only to read its files.
    std::fs::remove_dir_all(&data_dir).ok();
}
