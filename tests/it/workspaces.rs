//! Workspaces through the API (SPEC §14): an owner key makes them and keys for them; each
//! workspace's keys see only their own rules, events, deliveries, keys, audit, catalog and
//! subjects (another's is a 404 or absent), events never cross, and bad input changes nothing.

use std::time::Duration;

use serde_json::{Value, json};
use tidings::domain::access::Role;
use tidings::domain::audit::{Actor, AuditEntry};

use crate::support::app::{TestApp, spawn_app};
use crate::support::receiver::TestReceiver;

/// An owner key of the Default workspace, as `tidings key create --role owner` makes one.
pub fn owner_key(app: &TestApp) -> String {
    let ws = app.store().default_workspace().clone();
    let (key, secret) = tidings::app::keys::mint(&ws, "test owner", Role::Owner);
    let audit = AuditEntry::new(
        &ws,
        Actor::Cli,
        "api_key.create",
        "api_key",
        key.id.as_str(),
    );
    app.store().insert_api_key(key, audit).unwrap();
    secret.expose().to_owned()
}

/// A request with `key`, a JSON body if any, and extra headers.
fn call(
    app: &TestApp,
    key: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> crate::support::app::Resp {
    let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
    app.raw(method, path, Some(key), bytes.as_deref(), headers)
}

/// A second workspace, "North Clinic", with an admin and an ingest key of its own.
pub struct North {
    pub id: String,
    pub admin: String,
    pub ingest: String,
}

pub fn make_north(app: &TestApp, owner: &str) -> North {
    let made = call(
        app,
        owner,
        "POST",
        "/api/v1/workspaces",
        Some(&json!({"name": "North Clinic"})),
        &[],
    );
    assert_eq!(made.status, 201, "{}", made.text);
    let id = made.body["id"].as_str().unwrap().to_owned();
    let key = |role: &str| {
        let resp = call(
            app,
            owner,
            "POST",
            "/api/v1/api-keys",
            Some(&json!({"name": format!("north {role}"), "role": role, "workspace_id": id})),
            &[],
        );
        assert_eq!(resp.status, 201, "{}", resp.text);
        assert_eq!(resp.body["workspace_id"], id.as_str());
        resp.body["key"].as_str().unwrap().to_owned()
    };
    North {
        admin: key("admin"),
        ingest: key("ingest"),
        id,
    }
}

fn ids(resp: &crate::support::app::Resp) -> Vec<String> {
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| {
            v["id"]
                .as_str()
                .or(v["name"].as_str())
                .unwrap_or("")
                .to_owned()
        })
        .collect()
}

#[test]
fn an_owner_key_makes_workspaces_and_keys_for_them_audited() {
    let app = spawn_app();
    let owner = owner_key(&app);
    let default = app.store().default_workspace().to_string();

    let made = call(
        &app,
        &owner,
        "POST",
        "/api/v1/workspaces",
        Some(&json!({"name": "  North Clinic "})),
        &[],
    );
    assert_eq!(made.status, 201, "{}", made.text);
    let north = made.body["id"].as_str().unwrap().to_owned();
    assert!(north.starts_with("wsp_"), "{}", made.text);
    assert_eq!(made.body["name"], "North Clinic", "trimmed");
    assert!(made.body["created_at"].as_str().unwrap().ends_with('Z'));
    let keys: Vec<&str> = made
        .body
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    assert_eq!(keys.len(), 3, "{}", made.text);

    let listed = call(&app, &owner, "GET", "/api/v1/workspaces", None, &[]);
    assert_eq!(listed.status, 200, "{}", listed.text);
    let names: Vec<(&str, &str)> = listed.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|w| (w["id"].as_str().unwrap(), w["name"].as_str().unwrap()))
        .collect();
    assert_eq!(
        names,
        [
            (default.as_str(), "Default"),
            (north.as_str(), "North Clinic")
        ]
    );
    assert!(listed.body["next_cursor"].is_null());

    // A key for the new workspace works there, and only there.
    let key = call(
        &app,
        &owner,
        "POST",
        "/api/v1/api-keys",
        Some(&json!({"name": "north admin", "role": "admin", "workspace_id": north})),
        &[],
    );
    assert_eq!(key.status, 201, "{}", key.text);
    let north_admin = key.body["key"].as_str().unwrap().to_owned();
    let own = call(&app, &north_admin, "GET", "/api/v1/api-keys", None, &[]);
    assert_eq!(ids(&own), [key.body["id"].as_str().unwrap()]);
    // The Default workspace's list has its own keys and the owner's, not North's.
    let default_keys = ids(&app.get("/api/v1/api-keys"));
    assert!(!default_keys.contains(&key.body["id"].as_str().unwrap().to_owned()));
    assert_eq!(default_keys.len(), 3, "test admin, test ingest, test owner");

    // Creation is audited in the new workspace's own log, which North's admin reads.
    let log = call(&app, &north_admin, "GET", "/api/v1/audit", None, &[]);
    let actions: Vec<&str> = log.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["action"].as_str().unwrap())
        .collect();
    assert_eq!(
        actions,
        ["api_key.create", "workspace.create"],
        "{}",
        log.text
    );
    let created = &log.body["data"][1];
    assert_eq!(created["actor"]["name"], "test owner");
    assert_eq!(created["after"]["name"], "North Clinic");
    let default_log = app.get("/api/v1/audit");
    assert!(
        !default_log.text.contains("workspace.create") && !default_log.text.contains(&north),
        "the Default log knows nothing of North: {}",
        default_log.text
    );

    // An owner may make an owner key; it then manages workspaces too.
    let second = call(
        &app,
        &owner,
        "POST",
        "/api/v1/api-keys",
        Some(&json!({"name": "second owner", "role": "owner"})),
        &[],
    );
    assert_eq!(second.status, 201, "{}", second.text);
    assert_eq!(second.body["role"], "owner");
    let second_key = second.body["key"].as_str().unwrap();
    assert_eq!(
        ids(&call(
            &app,
            second_key,
            "GET",
            "/api/v1/workspaces",
            None,
            &[]
        ))
        .len(),
        2
    );
}

#[test]
fn another_workspaces_objects_are_404_or_absent_for_each_key() {
    let app = spawn_app();
    let owner = owner_key(&app);
    let north = make_north(&app, &owner);
    let receiver = TestReceiver::start();

    // In Default: a rule, an event about a subject, its delivery, a declared type, a key.
    let rule = app.create_rule(&receiver.url("/default"), &["order.placed"]);
    let rule_id = rule["id"].as_str().unwrap().to_owned();
    let posted =
        app.ingest(&json!({"type": "order.placed", "data": {"n": 1}, "subject": "member:7"}));
    assert_eq!(posted.status, 202, "{}", posted.text);
    let event_id = posted.body["id"].as_str().unwrap().to_owned();
    let deliveries = app.wait_settled(&event_id, Duration::from_secs(10));
    let delivery_id = deliveries[0]["id"].as_str().unwrap().to_owned();
    let declared = app.post(
        "/api/v1/event-types",
        &json!({"name": "order.declared", "description": "an order", "sample": {"n": 1}}),
    );
    assert!(declared.status < 300, "{}", declared.text);
    let key = app.post(
        "/api/v1/api-keys",
        &json!({"name": "ehr", "role": "ingest"}),
    );
    let key_id = key.body["id"].as_str().unwrap().to_owned();
    let secret_before = app.secret(&rule_id);
    let audit_before = app.get("/api/v1/audit?limit=250").body["data"]
        .as_array()
        .unwrap()
        .len();

    let rule_path = format!("/api/v1/rules/{rule_id}");
    let full_rule = json!({"name": "taken", "trigger": {"type": "event", "events": ["x"]},
        "webhook": {"url": receiver.url("/north")}});
    let refused: Vec<(&str, String, Option<Value>)> = vec![
        ("GET", rule_path.clone(), None),
        ("PUT", rule_path.clone(), Some(full_rule)),
        ("PATCH", rule_path.clone(), Some(json!({"name": "taken"}))),
        ("DELETE", rule_path.clone(), None),
        ("POST", format!("{rule_path}/test"), Some(json!({}))),
        ("POST", format!("{rule_path}/preview"), Some(json!({}))),
        ("GET", format!("{rule_path}/secret"), None),
        (
            "POST",
            format!("{rule_path}/secret/rotate"),
            Some(json!({})),
        ),
        (
            "POST",
            format!("{rule_path}/redeliver-failed"),
            Some(json!({"since": "2020-01-01T00:00:00Z", "until": "2100-01-01T00:00:00Z"})),
        ),
        ("GET", format!("/api/v1/events/{event_id}"), None),
        ("GET", format!("/api/v1/deliveries/{delivery_id}"), None),
        (
            "POST",
            format!("/api/v1/deliveries/{delivery_id}/redeliver"),
            Some(json!({})),
        ),
        ("DELETE", format!("/api/v1/api-keys/{key_id}"), None),
    ];
    for (method, path, body) in &refused {
        let resp = call(&app, &north.admin, method, path, body.as_ref(), &[]);
        resp.assert_error(404);
        assert_eq!(resp.code(), "not_found", "{method} {path}: {}", resp.text);
    }

    // Lists of North hold nothing of Default's.
    for path in ["/api/v1/rules", "/api/v1/deliveries", "/api/v1/audit"] {
        let resp = call(&app, &north.admin, "GET", path, None, &[]);
        assert_eq!(resp.status, 200, "{path}: {}", resp.text);
        for needle in [&rule_id, &event_id, &delivery_id, &key_id] {
            assert!(
                !resp.text.contains(needle.as_str()),
                "{path} shows {needle}: {}",
                resp.text
            );
        }
    }
    let north_keys = ids(&call(
        &app,
        &north.admin,
        "GET",
        "/api/v1/api-keys",
        None,
        &[],
    ));
    assert_eq!(north_keys.len(), 2, "North's admin and ingest keys only");
    let catalog = call(&app, &north.admin, "GET", "/api/v1/event-types", None, &[]);
    assert_eq!(catalog.status, 200, "{}", catalog.text);
    assert!(
        !catalog.text.contains("order.placed") && !catalog.text.contains("order.declared"),
        "{}",
        catalog.text
    );
    let disclosures = call(
        &app,
        &north.admin,
        "GET",
        "/api/v1/subjects/member:7/disclosures",
        None,
        &[],
    );
    assert_eq!(disclosures.status, 200, "{}", disclosures.text);
    assert_eq!(disclosures.body["data"], json!([]), "{}", disclosures.text);
    let default_disclosures = app.get("/api/v1/subjects/member:7/disclosures");
    assert_eq!(
        default_disclosures.body["data"].as_array().unwrap().len(),
        1
    );

    // Naming Default in the header does not help a key that is not an owner.
    let default = app.store().default_workspace().to_string();
    let resp = call(
        &app,
        &north.admin,
        "GET",
        &rule_path,
        None,
        &[("Tidings-Workspace", &default)],
    );
    resp.assert_error(404);
    let resp = call(
        &app,
        &north.admin,
        "GET",
        "/api/v1/rules",
        None,
        &[("Tidings-Workspace", &default)],
    );
    resp.assert_error(404);
    assert!(resp.message().contains(&default), "{}", resp.text);
    // Nor does it for Default's keys the other way.
    let resp = call(
        &app,
        &app.admin_key,
        "GET",
        "/api/v1/rules",
        None,
        &[("Tidings-Workspace", &north.id)],
    );
    resp.assert_error(404);
    let resp = call(
        &app,
        &app.ingest_key,
        "POST",
        "/api/v1/events",
        Some(&json!({"type": "ping", "data": {}})),
        &[("Tidings-Workspace", &north.id)],
    );
    resp.assert_error(404);

    // Nothing changed in Default.
    let still = app.get(&rule_path);
    assert_eq!(still.status, 200);
    assert_eq!(still.body["name"], "test rule");
    assert_eq!(app.secret(&rule_id), secret_before, "not rotated");
    assert_eq!(
        ids(&app.get("/api/v1/api-keys")).len(),
        4,
        "ehr's key stays"
    );
    let audit_after = app.get("/api/v1/audit?limit=250").body["data"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(
        audit_after,
        audit_before + 2,
        "only Default's own disclosure read and the secret view just now"
    );
}

#[test]
fn events_of_one_workspace_never_reach_another_workspaces_rules() {
    let app = spawn_app();
    let owner = owner_key(&app);
    let north = make_north(&app, &owner);
    let receiver = TestReceiver::start();
    app.create_rule(&receiver.url("/default"), &["order.*"]);
    let made = call(
        &app,
        &north.admin,
        "POST",
        "/api/v1/rules",
        Some(
            &json!({"name": "north rule", "trigger": {"type": "event", "events": ["order.*", "*"]},
            "webhook": {"url": receiver.url("/north")}}),
        ),
        &[],
    );
    assert_eq!(made.status, 201, "{}", made.text);
    assert_eq!(made.body["workspace_id"], north.id.as_str());

    let to_default = app.ingest(&json!({"type": "order.placed", "data": {"from": "default"}}));
    assert_eq!(
        (to_default.status, &to_default.body["deliveries"]),
        (202, &json!(1)),
        "{}",
        to_default.text
    );
    let to_north = call(
        &app,
        &north.ingest,
        "POST",
        "/api/v1/events",
        Some(&json!({"type": "order.placed", "data": {"from": "north"}})),
        &[],
    );
    assert_eq!(
        (to_north.status, &to_north.body["deliveries"]),
        (202, &json!(1)),
        "{}",
        to_north.text
    );

    let got = receiver.wait_for(2, Duration::from_secs(10));
    assert_eq!(
        receiver.expect_quiet(Duration::from_millis(300)),
        2,
        "no third request"
    );
    for request in &got {
        let body = request.body_json();
        let expected = if request.path == "/north" {
            "north"
        } else {
            "default"
        };
        assert_eq!(body["from"], expected, "{}: {body}", request.path);
        let workspace = if expected == "north" {
            "North Clinic"
        } else {
            "Default"
        };
        assert_eq!(body["workspace"]["name"], workspace, "{body}");
    }
    // Each event is its own workspace's: the other's key gets a 404.
    let north_event = to_north.body["id"].as_str().unwrap();
    app.get(&format!("/api/v1/events/{north_event}"))
        .assert_error(404);
    let default_event = to_default.body["id"].as_str().unwrap();
    call(
        &app,
        &north.admin,
        "GET",
        &format!("/api/v1/events/{default_event}"),
        None,
        &[],
    )
    .assert_error(404);
    let own = call(
        &app,
        &north.admin,
        "GET",
        &format!("/api/v1/events/{north_event}"),
        None,
        &[],
    );
    assert_eq!(own.status, 200, "{}", own.text);
}

#[test]
fn an_owner_key_acts_in_the_workspace_its_header_names() {
    let app = spawn_app();
    let owner = owner_key(&app);
    let north = make_north(&app, &owner);
    let receiver = TestReceiver::start();
    let default_rule = app.create_rule(&receiver.url("/d"), &["ping"]);
    let header = [("Tidings-Workspace", north.id.as_str())];
    let north_rule = call(
        &app,
        &owner,
        "POST",
        "/api/v1/rules",
        Some(
            &json!({"name": "made by owner", "trigger": {"type": "event", "events": ["ping"]},
            "webhook": {"url": receiver.url("/n")}}),
        ),
        &header,
    );
    assert_eq!(north_rule.status, 201, "{}", north_rule.text);
    assert_eq!(north_rule.body["workspace_id"], north.id.as_str());

    // Without the header the owner acts in its own (Default) workspace; with it, in North.
    let default_ids = ids(&call(&app, &owner, "GET", "/api/v1/rules", None, &[]));
    assert_eq!(default_ids, [default_rule["id"].as_str().unwrap()]);
    let north_ids = ids(&call(&app, &owner, "GET", "/api/v1/rules", None, &header));
    assert_eq!(north_ids, [north_rule.body["id"].as_str().unwrap()]);
    // North's admin sees the owner's rule as its own.
    let seen = ids(&call(&app, &north.admin, "GET", "/api/v1/rules", None, &[]));
    assert_eq!(seen, north_ids);
    // The owner sees both workspaces' objects, each through its workspace.
    let path = format!("/api/v1/rules/{}", default_rule["id"].as_str().unwrap());
    assert_eq!(call(&app, &owner, "GET", &path, None, &[]).status, 200);
    call(&app, &owner, "GET", &path, None, &header).assert_error(404);
    // Posting an event into North with the owner key reaches North's rule.
    let posted = call(
        &app,
        &owner,
        "POST",
        "/api/v1/events",
        Some(&json!({"type": "ping", "data": {}})),
        &header,
    );
    assert_eq!(posted.status, 202, "{}", posted.text);
    let got = receiver.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].path, "/n");

    // An unknown or malformed workspace is a 404 naming it.
    for bad in ["wsp_00000000000000000000000000", "default", ""] {
        let resp = call(
            &app,
            &owner,
            "GET",
            "/api/v1/rules",
            None,
            &[("Tidings-Workspace", bad)],
        );
        resp.assert_error(404);
        assert_eq!(resp.code(), "not_found");
    }
}

#[test]
fn bad_workspace_requests_are_refused_and_change_nothing() {
    let app = spawn_app();
    let owner = owner_key(&app);
    let north = make_north(&app, &owner);
    let post =
        |key: &str, body: Value| call(&app, key, "POST", "/api/v1/workspaces", Some(&body), &[]);

    let cases = [
        (json!({"name": ""}), 400, "name is required"),
        (json!({"name": "   "}), 400, "name is required"),
        (json!({"name": "x".repeat(101)}), 400, "at most 100"),
        (json!({}), 400, "name is required"),
        (json!({"name": 7}), 400, "name"),
        (json!({"name": "South", "plan": "gold"}), 400, "plan"),
        (json!({"name": "north clinic"}), 409, "exists already"),
    ];
    for (body, status, words) in cases {
        let resp = post(&owner, body.clone());
        resp.assert_error(status);
        assert!(resp.message().contains(words), "{body}: {}", resp.text);
    }
    let raw = app.raw(
        "POST",
        "/api/v1/workspaces",
        Some(&owner),
        Some(b"[1]"),
        &[],
    );
    raw.assert_error(400);

    // Only an owner key manages workspaces.
    for key in [&app.admin_key, &app.ingest_key, &north.admin] {
        let resp = post(key, json!({"name": "South"}));
        resp.assert_error(403);
        assert_eq!(resp.code(), "forbidden");
        assert!(resp.message().contains("owner"), "{}", resp.text);
        call(&app, key, "GET", "/api/v1/workspaces", None, &[]).assert_error(403);
    }
    app.raw("GET", "/api/v1/workspaces", None, None, &[])
        .assert_error(401);

    // Keys: an admin reaches no other workspace, and makes no owner keys.
    let key = |caller: &str, body: Value| {
        call(&app, caller, "POST", "/api/v1/api-keys", Some(&body), &[])
    };
    let resp = key(
        &app.admin_key,
        json!({"name": "k", "role": "admin", "workspace_id": north.id}),
    );
    resp.assert_error(404);
    assert!(resp.message().contains(&north.id), "{}", resp.text);
    key(
        &north.admin,
        json!({"name": "k", "role": "admin",
        "workspace_id": app.store().default_workspace().to_string()}),
    )
    .assert_error(404);
    key(
        &owner,
        json!({"name": "k", "role": "admin", "workspace_id": "wsp_00000000000000000000000000"}),
    )
    .assert_error(404);
    key(
        &owner,
        json!({"name": "k", "role": "admin", "workspace_id": 5}),
    )
    .assert_error(400);
    let resp = key(&app.admin_key, json!({"name": "k", "role": "owner"}));
    resp.assert_error(403);
    assert!(resp.message().contains("owner"), "{}", resp.text);
    key(
        &north.admin,
        json!({"name": "k", "role": "owner", "workspace_id": north.id}),
    )
    .assert_error(403);
    let resp = key(&owner, json!({"name": "k", "role": "root"}));
    resp.assert_error(400);
    assert!(resp.message().contains("owner"), "{}", resp.text);
    // An admin naming its own workspace is fine.
    let own = key(
        &north.admin,
        json!({"name": "own", "role": "ingest", "workspace_id": north.id}),
    );
    assert_eq!(own.status, 201, "{}", own.text);

    // Nothing was made by the refusals.
    assert_eq!(
        ids(&call(&app, &owner, "GET", "/api/v1/workspaces", None, &[])).len(),
        2
    );
    assert_eq!(ids(&app.get("/api/v1/api-keys")).len(), 3);
    assert_eq!(
        ids(&call(
            &app,
            &north.admin,
            "GET",
            "/api/v1/api-keys",
            None,
            &[]
        ))
        .len(),
        3
    );
}

#[test]
fn a_backup_holds_every_workspace_so_only_an_owner_takes_one_once_there_are_several() {
    let app = spawn_app();
    let owner = owner_key(&app);
    let north = make_north(&app, &owner);
    for key in [&app.admin_key, &north.admin] {
        let resp = call(&app, key, "POST", "/api/v1/backup", None, &[]);
        resp.assert_error(403);
        assert!(resp.message().contains("owner key"), "{}", resp.text);
    }
    assert!(
        !app.data_dir.join("backups").exists(),
        "the refusals wrote nothing"
    );
    let resp = call(&app, &owner, "POST", "/api/v1/backup", None, &[]);
    if crate::support::postgres::on_postgres() {
        assert_eq!(
            resp.status, 409,
            "PostgreSQL is backed up with pg_dump: {}",
            resp.text
        );
        return;
    }
    assert_eq!(resp.status, 201, "{}", resp.text);
    // The snapshot opens as a store with both workspaces and each one's keys.
    let path = std::path::PathBuf::from(resp.body["path"].as_str().unwrap());
    let dir = crate::support::app::temp_dir("restored");
    std::fs::copy(&path, dir.join("tidings.redb")).unwrap();
    std::fs::copy(app.data_dir.join("master.key"), dir.join("master.key")).unwrap();
    let restored =
        tidings::store::open(None, &dir, tidings::domain::time::Clock::system()).unwrap();
    let names: Vec<String> = restored
        .workspaces()
        .unwrap()
        .into_iter()
        .map(|w| w.name)
        .collect();
    assert_eq!(names, ["Default", "North Clinic"]);
    let north_id = tidings::domain::ids::WorkspaceId::parse(&north.id).unwrap();
    assert_eq!(restored.api_keys(&north_id).unwrap().len(), 2);
    assert!(restored.api_key_for_token(&north.admin).is_some());
    restored.shutdown();
    let _ = std::fs::remove_dir_all(&dir);
}
