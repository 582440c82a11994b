//! Rule versions and drafts (SPEC §14) over the API: a draft changes nothing live until it
//! is published, is tried like a rule, goes live atomically as the next version (audited
//! with its diff), old versions come back exactly, `rules.require_review` needs a second
//! writer, and bad inputs change nothing.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::thread;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tidings::domain::ids::RuleId;

use crate::support::app::{TestApp, spawn_app, spawn_app_with, wait_until};
use crate::support::receiver::TestReceiver;

fn rule_body(url: &str, name: &str, version_header: &str) -> Value {
    json!({
        "name": name,
        "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {"url": url, "headers": {"X-Version": version_header}},
    })
}

fn audit_of(app: &TestApp, action: &str) -> Vec<Value> {
    let resp = app.get("/api/v1/audit?limit=250");
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|e| e["action"] == action)
        .cloned()
        .collect()
}

/// A second admin key, another writer for `rules.require_review`.
fn second_admin(app: &TestApp) -> String {
    let resp = app.post(
        "/api/v1/api-keys",
        &json!({"name": "reviewer", "role": "admin"}),
    );
    assert_eq!(resp.status, 201, "{}", resp.text);
    resp.body["key"].as_str().unwrap().to_owned()
}

fn as_key(
    app: &TestApp,
    key: &str,
    method: &str,
    path: &str,
    body: Option<&Value>,
) -> crate::support::app::Resp {
    let bytes = body.map(|b| serde_json::to_vec(b).unwrap());
    app.raw(method, path, Some(key), bytes.as_deref(), &[])
}

#[test]
fn a_draft_changes_nothing_live_until_published_as_the_next_version() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let rule = app.create_rule_with(rule_body(&receiver.url("/hook"), "v-one", "1"));
    let id = rule["id"].as_str().unwrap();
    assert_eq!(rule["version"], 1, "create is version 1");

    let draft_path = format!("/api/v1/rules/{id}/draft");
    app.get(&draft_path).assert_error(404);
    let saved = app.send(
        "PUT",
        &draft_path,
        &rule_body(&receiver.url("/hook"), "v-two", "2"),
    );
    assert_eq!(saved.status, 200, "{}", saved.text);
    assert_eq!(saved.body["base_version"], 1);
    assert_eq!(saved.body["rule"]["name"], "v-two");
    let changed: Vec<&str> = saved.body["changes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["path"].as_str().unwrap())
        .collect();
    assert_eq!(changed, ["name", "webhook.headers.X-Version"]);
    assert_eq!(app.get(&draft_path).body["rule"]["name"], "v-two");

    // Live is untouched: the rule, and what an event sends meanwhile.
    let live = app.get(&format!("/api/v1/rules/{id}"));
    assert_eq!(live.body["name"], "v-one");
    assert_eq!(live.body["version"], 1);
    assert_eq!(
        app.ingest(&json!({"type": "member:joined", "data": {"n": 1}}))
            .status,
        202
    );
    let got = receiver.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].header("X-Version"), Some("1"));

    // The draft is tried as a rule is: a preview, and a test send that really goes out.
    let preview = app.post(&format!("{draft_path}/preview"), &json!({}));
    assert_eq!(preview.status, 200, "{}", preview.text);
    assert_eq!(preview.body["headers"]["X-Version"], "2");
    let live_preview = app.post(&format!("/api/v1/rules/{id}/preview"), &json!({}));
    assert_eq!(live_preview.body["headers"]["X-Version"], "1");
    let test = app.post(&format!("{draft_path}/test"), &json!({}));
    assert_eq!(test.status, 200, "{}", test.text);
    assert_eq!(test.body["status"], "succeeded", "{}", test.text);
    let got = receiver.wait_for(2, Duration::from_secs(10));
    assert_eq!(got[1].header("X-Version"), Some("2"));
    assert_eq!(
        app.get(&format!("/api/v1/rules/{id}")).body["name"],
        "v-one"
    );

    let published = app.post(&format!("{draft_path}/publish"), &json!({}));
    assert_eq!(published.status, 200, "{}", published.text);
    assert_eq!(published.body["version"], 2);
    assert_eq!(published.body["published_by"]["type"], "api_key");
    assert_eq!(published.body["rule"]["name"], "v-two");
    app.get(&draft_path).assert_error(404);
    let live = app.get(&format!("/api/v1/rules/{id}"));
    assert_eq!(
        (live.body["name"].clone(), live.body["version"].clone()),
        (json!("v-two"), json!(2))
    );
    assert_eq!(
        live.body["secret_hint"], rule["secret_hint"],
        "publishing keeps the secret"
    );
    assert_eq!(
        app.ingest(&json!({"type": "member:joined", "data": {"n": 2}}))
            .status,
        202
    );
    let got = receiver.wait_for(3, Duration::from_secs(10));
    assert_eq!(got[2].header("X-Version"), Some("2"));

    let versions = app.get(&format!("/api/v1/rules/{id}/versions"));
    assert_eq!(versions.status, 200, "{}", versions.text);
    let data = versions.body["data"].as_array().unwrap();
    let numbers: Vec<u64> = data
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [2, 1], "newest first");
    assert_eq!(data[1]["rule"]["name"], "v-one");
    assert!(data[0]["published_at"].as_str().unwrap().ends_with('Z'));

    // Audited: the save, and the publish with what it changed.
    assert_eq!(audit_of(&app, "rule.draft.save").len(), 1);
    let publish = &audit_of(&app, "rule.publish")[0];
    assert_eq!(publish["target"]["id"], id);
    assert_eq!(
        publish["before"],
        json!({"name": "v-one", "webhook.headers.X-Version": "1"})
    );
    assert_eq!(
        publish["after"],
        json!({"name": "v-two", "webhook.headers.X-Version": "2"})
    );

    // A plain PATCH still works, as the next version.
    let patched = app.send(
        "PATCH",
        &format!("/api/v1/rules/{id}"),
        &json!({"name": "v-three"}),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    assert_eq!(patched.body["version"], 3);

    // A draft can be discarded.
    assert_eq!(
        app.send(
            "PUT",
            &draft_path,
            &rule_body(&receiver.url("/x"), "gone", "9")
        )
        .status,
        200
    );
    let discarded = app.raw(
        "DELETE",
        &draft_path,
        Some(&app.admin_key.clone()),
        None,
        &[],
    );
    assert_eq!(discarded.status, 204, "{}", discarded.text);
    app.get(&draft_path).assert_error(404);
    assert_eq!(audit_of(&app, "rule.draft.discard").len(), 1);
}

#[test]
fn bad_inputs_are_refused_and_change_nothing() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let rule = app.create_rule_with(rule_body(&receiver.url("/hook"), "steady", "1"));
    let id = rule["id"].as_str().unwrap();
    let draft_path = format!("/api/v1/rules/{id}/draft");

    // An invalid draft: 400 at the field, nothing stored.
    let mut bad = rule_body(&receiver.url("/hook"), "x", "1");
    bad["webhook"]["url"] = json!("ftp://example.com/hook");
    let resp = app.send("PUT", &draft_path, &bad);
    resp.assert_error(400);
    assert!(resp.message().starts_with("webhook.url"), "{}", resp.text);
    let mut bad = rule_body(&receiver.url("/hook"), "x", "1");
    bad["max_concurrency"] = json!(0);
    let resp = app.send("PUT", &draft_path, &bad);
    resp.assert_error(400);
    assert!(resp.message().contains("max_concurrency"), "{}", resp.text);
    // Unknown fields, named.
    let mut bad = rule_body(&receiver.url("/hook"), "x", "1");
    bad["colour"] = json!("red");
    let resp = app.send("PUT", &draft_path, &bad);
    resp.assert_error(400);
    assert!(resp.message().contains("colour"), "{}", resp.text);
    let resp = app.send("PUT", &draft_path, &json!("not an object"));
    resp.assert_error(400);
    app.get(&draft_path).assert_error(404);
    assert!(audit_of(&app, "rule.draft.save").is_empty());

    // Nothing to publish, discard, try or restore.
    let resp = app.post(&format!("{draft_path}/publish"), &json!({}));
    resp.assert_error(404);
    assert!(resp.message().contains("no draft"), "{}", resp.text);
    app.raw(
        "DELETE",
        &draft_path,
        Some(&app.admin_key.clone()),
        None,
        &[],
    )
    .assert_error(404);
    app.post(&format!("{draft_path}/preview"), &json!({}))
        .assert_error(404);
    app.post(&format!("{draft_path}/test"), &json!({}))
        .assert_error(404);
    let resp = app.post(
        &format!("/api/v1/rules/{id}/versions/99/restore"),
        &json!({}),
    );
    resp.assert_error(404);
    assert!(resp.message().contains("no version 99"), "{}", resp.text);
    app.post(
        &format!("/api/v1/rules/{id}/versions/zero/restore"),
        &json!({}),
    )
    .assert_error(404);
    app.post(
        &format!("/api/v1/rules/{id}/versions/0/restore"),
        &json!({}),
    )
    .assert_error(404);

    // Another rule id: 404 everywhere.
    let ghost = "rul_doesnotexist";
    app.send(
        "PUT",
        &format!("/api/v1/rules/{ghost}/draft"),
        &rule_body(&receiver.url("/"), "g", "1"),
    )
    .assert_error(404);
    app.get(&format!("/api/v1/rules/{ghost}/versions"))
        .assert_error(404);

    let live = app.get(&format!("/api/v1/rules/{id}"));
    assert_eq!(
        (live.body["name"].clone(), live.body["version"].clone()),
        (json!("steady"), json!(1))
    );
    assert_eq!(
        app.get(&format!("/api/v1/rules/{id}/versions")).body["data"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

/// The rule JSON apart from what versions and time change.
fn content(rule: &Value) -> Value {
    let mut v = rule.clone();
    for k in ["version", "updated_at", "next_runs"] {
        v.as_object_mut().unwrap().remove(k);
    }
    v
}

#[test]
fn restore_brings_back_an_old_version_exactly_as_the_next_version() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let first = app.create_rule_with(json!({
        "name": "original",
        "description": "the first one",
        "trigger": {"type": "event", "events": ["member:joined", "member:left"]},
        "condition": "data.n > 1",
        "max_concurrency": 3,
        "webhook": {"url": receiver.url("/one"), "headers": {"X-A": "1"}, "timeout_ms": 4000,
                    "secret_headers": {"Authorization": "Bearer first"}},
        "log": {"store_bodies": false, "retention_days": 5, "redact": ["n"]},
    }));
    let id = first["id"].as_str().unwrap();
    let rule_path = format!("/api/v1/rules/{id}");
    let patched = app.send(
        "PATCH",
        &rule_path,
        &json!({
            "name": "changed", "condition": null, "max_concurrency": 1,
            "webhook": {"url": receiver.url("/two"), "headers": {"X-A": null, "X-B": "2"},
                        "secret_headers": {"Authorization": "Bearer second"}},
            "log": {"store_bodies": true, "retention_days": null, "redact": []},
        }),
    );
    assert_eq!(patched.status, 200, "{}", patched.text);
    let mut draft = patched.body.clone();
    draft["description"] = json!("via a draft");
    for k in [
        "id",
        "workspace_id",
        "status",
        "status_reason",
        "created_at",
        "updated_at",
        "secret_hint",
        "next_runs",
        "version",
    ] {
        draft.as_object_mut().unwrap().remove(k);
    }
    assert_eq!(
        app.send("PUT", &format!("{rule_path}/draft"), &draft)
            .status,
        200
    );
    assert_eq!(
        app.post(&format!("{rule_path}/draft/publish"), &json!({}))
            .body["version"],
        3
    );

    let restored = app.post(&format!("{rule_path}/versions/1/restore"), &json!({}));
    assert_eq!(restored.status, 200, "{}", restored.text);
    assert_eq!(restored.body["version"], 4);
    let live = app.get(&rule_path).body;
    assert_eq!(live["version"], 4);
    assert_eq!(content(&live), content(&first));
    let versions = app.get(&format!("{rule_path}/versions")).body;
    let numbers: Vec<u64> = versions["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v["version"].as_u64().unwrap())
        .collect();
    assert_eq!(numbers, [4, 3, 2, 1]);
    assert_eq!(content(&versions["data"][3]["rule"]), content(&first));

    // The secret header value comes back too: what the receiver is sent.
    app.ingest(&json!({"type": "member:joined", "data": {"n": 5}}));
    let got = receiver.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].path, "/one");
    assert_eq!(got[0].header("Authorization"), Some("Bearer first"));
    assert_eq!(got[0].header("X-A"), Some("1"));
    let restore = &audit_of(&app, "rule.restore")[0];
    assert_eq!(restore["detail"], "restores version 1");
    assert_eq!(restore["after"]["name"], "original");
}

#[test]
fn require_review_needs_another_writer_and_refuses_plain_edits() {
    let app = spawn_app_with(|c| c.rules.require_review = true);
    let receiver = TestReceiver::start();
    let rule = app.create_rule_with(rule_body(&receiver.url("/hook"), "reviewed", "1"));
    let id = rule["id"].as_str().unwrap();
    let rule_path = format!("/api/v1/rules/{id}");

    let resp = app.send("PATCH", &rule_path, &json!({"name": "sneaky"}));
    resp.assert_error(409);
    assert!(resp.message().contains("draft"), "{}", resp.text);
    app.send(
        "PUT",
        &rule_path,
        &rule_body(&receiver.url("/hook"), "sneaky", "1"),
    )
    .assert_error(409);

    let saved = app.send(
        "PUT",
        &format!("{rule_path}/draft"),
        &rule_body(&receiver.url("/hook"), "reviewed-2", "2"),
    );
    assert_eq!(saved.status, 200, "{}", saved.text);
    let resp = app.post(&format!("{rule_path}/draft/publish"), &json!({}));
    resp.assert_error(409);
    assert!(resp.message().contains("require_review"), "{}", resp.text);
    assert!(
        resp.message().contains("another user or API key"),
        "{}",
        resp.text
    );
    assert_eq!(app.get(&rule_path).body["name"], "reviewed");
    assert_eq!(
        app.get(&format!("{rule_path}/draft")).status,
        200,
        "the draft stays"
    );

    let reviewer = second_admin(&app);
    let published = as_key(
        &app,
        &reviewer,
        "POST",
        &format!("{rule_path}/draft/publish"),
        None,
    );
    assert_eq!(published.status, 200, "{}", published.text);
    assert_eq!(published.body["published_by"]["name"], "reviewer");
    assert_eq!(app.get(&rule_path).body["name"], "reviewed-2");

    // A draft the reviewer saves, the first key may publish.
    let saved = as_key(
        &app,
        &reviewer,
        "PUT",
        &format!("{rule_path}/draft"),
        Some(&rule_body(&receiver.url("/hook"), "reviewed-3", "3")),
    );
    assert_eq!(saved.status, 200, "{}", saved.text);
    assert_eq!(
        app.post(&format!("{rule_path}/draft/publish"), &json!({}))
            .body["version"],
        3
    );
}

#[test]
fn publish_is_atomic_under_load() {
    let app = Arc::new(spawn_app());
    let receiver = TestReceiver::start();
    let rule = app.create_rule_with(rule_body(&receiver.url("/hook"), "load", "1"));
    let id = rule["id"].as_str().unwrap().to_owned();
    let mut v2 = rule_body(&receiver.url("/hook"), "load", "2");
    v2["webhook"]["payload_format"] = json!("envelope");
    let saved = app.send("PUT", &format!("/api/v1/rules/{id}/draft"), &v2);
    assert_eq!(saved.status, 200, "{}", saved.text);

    // Events go in continuously, each numbered, noting which were posted after publish returned.
    let published = Arc::new(AtomicBool::new(false));
    let posted = Arc::new(AtomicUsize::new(0));
    let poster = {
        let (app, published, posted) = (
            Arc::clone(&app),
            Arc::clone(&published),
            Arc::clone(&posted),
        );
        thread::spawn(move || {
            let mut after = Vec::new();
            let deadline = Instant::now() + Duration::from_secs(20);
            let mut n = 0;
            let mut after_count = 0;
            while after_count < 40 && n < 600 && Instant::now() < deadline {
                let was_published = published.load(Ordering::SeqCst);
                let resp = app.ingest(&json!({"type": "member:joined", "data": {"n": n}}));
                assert_eq!(resp.status, 202, "{}", resp.text);
                if was_published {
                    after.push(n);
                    after_count += 1;
                }
                n += 1;
                posted.store(n, Ordering::SeqCst);
            }
            (n, after)
        })
    };
    wait_until(Duration::from_secs(10), "events before the publish", || {
        (posted.load(Ordering::SeqCst) >= 40).then_some(())
    });
    let resp = app.post(&format!("/api/v1/rules/{id}/draft/publish"), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text);
    published.store(true, Ordering::SeqCst);
    let (total, after) = poster.join().unwrap();
    assert!(
        after.len() >= 40,
        "events after the publish: {}",
        after.len()
    );

    let got = receiver.wait_for(total, Duration::from_secs(30));
    let mut version_of = vec![None; total];
    for r in &got {
        let versions = r.headers_named("X-Version");
        assert_eq!(
            versions.len(),
            1,
            "exactly one version shaped each delivery: {versions:?}"
        );
        // Version 1 sends the flat payload, version 2 the envelope: header and body agree.
        let body = r.body_json();
        let n = match versions[0] {
            "1" => body["n"].as_u64().filter(|_| body.get("payload").is_none()),
            "2" => body["payload"]["n"]
                .as_u64()
                .filter(|_| body.get("n").is_none()),
            other => panic!("unknown version {other}"),
        };
        let n = usize::try_from(n.unwrap_or_else(|| panic!("a body of neither version: {body}")))
            .unwrap();
        version_of[n] = Some(versions[0].to_owned());
    }
    assert!(
        version_of.iter().all(Option::is_some),
        "every event delivered"
    );
    for n in &after {
        assert_eq!(
            version_of[*n].as_deref(),
            Some("2"),
            "event {n} was posted after publish returned"
        );
    }
    let ones = version_of
        .iter()
        .filter(|v| v.as_deref() == Some("1"))
        .count();
    assert!(
        ones > 0,
        "some events before the publish went out with version 1"
    );
}

#[test]
fn deleting_a_rule_deletes_its_versions_and_draft() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let rule = app.create_rule_with(rule_body(&receiver.url("/hook"), "short-lived", "1"));
    let id = rule["id"].as_str().unwrap();
    assert_eq!(
        app.send(
            "PATCH",
            &format!("/api/v1/rules/{id}"),
            &json!({"name": "b"})
        )
        .status,
        200
    );
    assert_eq!(
        app.send(
            "PUT",
            &format!("/api/v1/rules/{id}/draft"),
            &rule_body(&receiver.url("/x"), "c", "3")
        )
        .status,
        200
    );
    let rule_id = RuleId::parse(id).unwrap();
    assert_eq!(app.store().rule_versions(&rule_id).unwrap().len(), 2);
    assert!(app.store().rule_draft(&rule_id).unwrap().is_some());

    let deleted = app.raw(
        "DELETE",
        &format!("/api/v1/rules/{id}"),
        Some(&app.admin_key.clone()),
        None,
        &[],
    );
    assert_eq!(deleted.status, 204, "{}", deleted.text);
    assert!(app.store().rule_versions(&rule_id).unwrap().is_empty());
    assert!(app.store().rule_draft(&rule_id).unwrap().is_none());
    app.get(&format!("/api/v1/rules/{id}/versions"))
        .assert_error(404);
    app.get(&format!("/api/v1/rules/{id}/draft"))
        .assert_error(404);
}
