//! The audit log records who did what: rule create/update/activate/delete with before and
//! after (secrets masked), secret views and rotations, key creation and deletion, and
//! tidings' own deactivations — newest first, paged, and read-only.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{spawn_app, wait_until};
use crate::support::receiver::{Reply, TestReceiver};

fn actions(app: &crate::support::app::TestApp) -> Vec<Value> {
    let resp = app.get("/api/v1/audit?limit=250");
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["data"].as_array().unwrap().clone()
}

#[test]
fn admin_actions_are_audited_with_actor_and_before_after() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let rule = app.create_rule_with(json!({"name": "CRM", "trigger": {"type": "event", "events": ["ping"]},
        "webhook": {"url": receiver.url("/"), "secret_headers": {"Authorization": "Bearer s3cret"}}}));
    let id = rule["id"].as_str().unwrap();
    let path = format!("/api/v1/rules/{id}");
    app.send("PATCH", &path, &json!({"name": "CRM v2"}));
    app.send("PATCH", &path, &json!({"active": false}));
    app.secret(id);
    app.post(&format!("{path}/secret/rotate"), &json!({}));
    let key = app.post(
        "/api/v1/api-keys",
        &json!({"name": "EHR", "role": "ingest"}),
    );
    let key_id = key.body["id"].as_str().unwrap();
    app.raw(
        "DELETE",
        &format!("/api/v1/api-keys/{key_id}"),
        Some(&app.admin_key.clone()),
        None,
        &[],
    );
    app.raw("DELETE", &path, Some(&app.admin_key.clone()), None, &[]);

    let log = actions(&app);
    let seen: Vec<&str> = log.iter().map(|e| e["action"].as_str().unwrap()).collect();
    assert_eq!(
        &seen[..8],
        [
            "rule.delete",
            "api_key.delete",
            "api_key.create",
            "rule.secret.rotate",
            "rule.secret.view",
            "rule.deactivate",
            "rule.update",
            "rule.create"
        ],
        "newest first"
    );
    let update = &log[6];
    assert_eq!(update["before"]["name"], "CRM");
    assert_eq!(update["after"]["name"], "CRM v2");
    assert_eq!(update["target"], json!({"type": "rule", "id": id}));
    assert_eq!(update["actor"]["type"], "api_key");
    assert_eq!(update["actor"]["name"], "test admin");
    assert!(update["at"].is_string());
    assert!(
        !log.iter().any(|e| e.to_string().contains("s3cret")),
        "secrets never reach the log"
    );
    assert!(
        log[3]["detail"]
            .as_str()
            .unwrap()
            .contains("previous one signs until")
    );

    // Paging, and no way to change the log.
    let first = app.get("/api/v1/audit?limit=3");
    let cursor = first.body["next_cursor"].as_str().unwrap();
    let second = app.get(&format!("/api/v1/audit?limit=3&cursor={cursor}"));
    assert_eq!(second.body["data"][0]["action"], "rule.secret.rotate");
    app.raw(
        "DELETE",
        "/api/v1/audit",
        Some(&app.admin_key.clone()),
        None,
        &[],
    )
    .assert_error(405);
    app.get("/api/v1/audit?limit=0").assert_error(400);
    app.raw(
        "GET",
        "/api/v1/audit",
        Some(&app.ingest_key.clone()),
        None,
        &[],
    )
    .assert_error(403);
}

#[test]
fn tidings_own_deactivation_is_audited() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(410));
    let rule = app.create_rule(&receiver.url("/"), &["ping"]);
    app.ingest(&json!({"type": "ping"}));
    let entry = wait_until(
        Duration::from_secs(20),
        "the system deactivation entry",
        || {
            actions(&app)
                .into_iter()
                .find(|e| e["action"] == "rule.deactivate")
        },
    );
    assert_eq!(entry["actor"], json!({"type": "system"}));
    assert_eq!(entry["target"]["id"], rule["id"]);
    assert!(entry["detail"].as_str().unwrap().contains("410"));
}
