//! Authentication, roles, and every kind of bad input: a clear 4xx in the
//! `{"error":{"code","message"}}` shape, and nothing stored. Also rule CRUD semantics.

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app};
use crate::support::receiver::TestReceiver;

fn rule_count(app: &TestApp) -> usize {
    app.get("/api/v1/rules").body["data"]
        .as_array()
        .unwrap()
        .len()
}

fn delivery_count(app: &TestApp) -> usize {
    app.get("/api/v1/deliveries?limit=250").body["data"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn requests_without_a_valid_key_are_refused() {
    let app = spawn_app();
    for key in [None, Some("tdk_wrong")] {
        let resp = app.raw("GET", "/api/v1/rules", key, None, &[]);
        resp.assert_error(401);
        assert_eq!(resp.code(), "unauthorized");
    }
    let resp = app.raw(
        "GET",
        "/api/v1/rules",
        None,
        None,
        &[("Authorization", "Basic abc")],
    );
    resp.assert_error(401);
    let ingest = app.ingest_key.clone();
    for (method, path) in [
        ("GET", "/api/v1/rules"),
        ("GET", "/api/v1/deliveries"),
        ("GET", "/api/v1/api-keys"),
    ] {
        let resp = app.raw(method, path, Some(&ingest), None, &[]);
        resp.assert_error(403);
        assert!(resp.message().contains("ingest"));
    }
    let resp = app.raw(
        "POST",
        "/api/v1/events",
        None,
        Some(br#"{"type":"ping"}"#),
        &[],
    );
    resp.assert_error(401);
    // Health needs no key.
    assert_eq!(app.raw("GET", "/healthz", None, None, &[]).status, 200);
    let ready = app.raw("GET", "/readyz", None, None, &[]);
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(ready.body["status"], "ready");
}

#[test]
fn bad_events_are_refused_and_nothing_is_stored() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    app.create_rule(&receiver.url("/"), &["*"]);
    let key = app.ingest_key.clone();
    let cases: Vec<(&[u8], u16, &str)> = vec![
        (b"not json", 400, "invalid_json"),
        (b"[1,2]", 400, "invalid_json"),
        (br#"{"data":{}}"#, 400, "invalid_json"),
        (br#"{"type":"ping","colour":"red"}"#, 400, "invalid_json"),
        (br#"{"type":"Ping"}"#, 400, "invalid_event_type"),
        (br#"{"type":"a b"}"#, 400, "invalid_event_type"),
        (br#"{"type":"ping","data":[1]}"#, 400, "validation_failed"),
        (br#"{"type":"ping","data":"x"}"#, 400, "validation_failed"),
        (
            br#"{"type":"ping","data":{"event":"spoof"}}"#,
            400,
            "validation_failed",
        ),
        (
            br#"{"type":"ping","data":{"eventRule":{}}}"#,
            400,
            "validation_failed",
        ),
        (
            br#"{"type":"ping","occurred_at":"last tuesday"}"#,
            400,
            "validation_failed",
        ),
        (
            br#"{"type":"ping","idempotency_key":""}"#,
            400,
            "validation_failed",
        ),
    ];
    for (body, status, code) in cases {
        let resp = app.raw("POST", "/api/v1/events", Some(&key), Some(body), &[]);
        resp.assert_error(status);
        assert_eq!(
            resp.code(),
            code,
            "{}: {}",
            String::from_utf8_lossy(body),
            resp.text
        );
    }
    let long_type = format!(r#"{{"type":"{}"}}"#, "a".repeat(129));
    app.raw(
        "POST",
        "/api/v1/events",
        Some(&key),
        Some(long_type.as_bytes()),
        &[],
    )
    .assert_error(400);
    assert_eq!(delivery_count(&app), 0);
    assert_eq!(
        receiver.expect_quiet(std::time::Duration::from_millis(200)),
        0
    );
}

#[test]
fn an_event_over_the_size_limit_gets_413() {
    let app = crate::support::app::spawn_app_with(|c| c.limits.max_event_bytes = 2048);
    let big = json!({"type": "ping", "data": {"blob": "x".repeat(4096)}});
    let resp = app.ingest(&big);
    resp.assert_error(413);
    assert!(resp.message().contains("2048"));
    let small = json!({"type": "ping", "data": {"blob": "x".repeat(100)}});
    assert_eq!(app.ingest(&small).status, 202);
    // Default limit is 1 MiB: just over it is refused.
    let app = spawn_app();
    let over = json!({"type": "ping", "data": {"blob": "x".repeat(1024 * 1024)}});
    app.ingest(&over).assert_error(413);
}

#[test]
fn bad_rules_are_refused_and_nothing_is_stored() {
    let app = spawn_app();
    let ok_webhook = json!({"url": "http://127.0.0.1:9/"});
    let ev = json!({"type": "event", "events": ["ping"]});
    let cases = vec![
        (json!({"trigger": ev, "webhook": ok_webhook}), "name"),
        (
            json!({"name": "", "trigger": ev, "webhook": ok_webhook}),
            "name",
        ),
        (json!({"name": "x", "webhook": ok_webhook}), "trigger"),
        (
            json!({"name": "x", "trigger": {"type": "event", "events": []}, "webhook": ok_webhook}),
            "trigger.events",
        ),
        (
            json!({"name": "x", "trigger": {"type": "event", "events": ["mem*ber"]}, "webhook": ok_webhook}),
            "trigger.events",
        ),
        (
            json!({"name": "x", "trigger": {"type": "sometimes"}, "webhook": ok_webhook}),
            "trigger.type",
        ),
        (json!({"name": "x", "trigger": ev}), "webhook"),
        (
            json!({"name": "x", "trigger": ev, "webhook": {"url": "not a url"}}),
            "webhook.url",
        ),
        (
            json!({"name": "x", "trigger": ev, "webhook": {"url": "ftp://127.0.0.1/"}}),
            "webhook.url",
        ),
        (
            json!({"name": "x", "trigger": ev, "webhook": {"url": "http://u:p@127.0.0.1/"}}),
            "webhook.url",
        ),
        (
            json!({"name": "x", "trigger": ev, "webhook": {"url": "http://127.0.0.1/", "method": "GET"}}),
            "webhook.method",
        ),
        (
            json!({"name": "x", "trigger": ev, "webhook": {"url": "http://127.0.0.1/", "signing": "md5"}}),
            "webhook.signing",
        ),
        (
            json!({"name": "x", "trigger": ev, "webhook": {"url": "http://127.0.0.1/", "payload_format": "xml"}}),
            "webhook.payload_format",
        ),
        (
            json!({"name": "x", "trigger": ev, "webhook": {"url": "http://127.0.0.1/", "timeout_ms": 30001}}),
            "webhook.timeout_ms",
        ),
        (
            json!({"name": "x", "trigger": ev, "webhook": {"url": "http://127.0.0.1/", "timeout_ms": 0}}),
            "webhook.timeout_ms",
        ),
        (
            json!({"name": "x", "trigger": ev, "webhook": {"url": "http://127.0.0.1/", "headers": {"Content-Length": "1"}}}),
            "webhook.headers",
        ),
        (
            json!({"name": "x", "trigger": ev, "webhook": {"url": "http://127.0.0.1/", "headers": {"bad name": "1"}}}),
            "webhook.headers",
        ),
        (
            json!({"name": "x", "trigger": ev, "webhook": {"url": "http://127.0.0.1/", "secret_headers": {"X-Key": "********"}}}),
            "webhook.secret_headers",
        ),
        (
            json!({"name": "x", "max_concurrency": 0, "trigger": ev, "webhook": ok_webhook}),
            "max_concurrency",
        ),
    ];
    for (body, field) in cases {
        let resp = app.post("/api/v1/rules", &body);
        resp.assert_error(400);
        assert!(
            resp.message().starts_with(field),
            "{body} → {} (expected the message to name {field})",
            resp.text
        );
    }
    for (body, what) in [
        (
            json!({"name": "x", "colour": "red", "trigger": ev, "webhook": ok_webhook}),
            "colour",
        ),
        (
            json!({"name": "x", "trigger": ev, "webhook": {"url": "http://127.0.0.1/", "retries": 3}}),
            "retries",
        ),
        (
            json!({"name": 5, "trigger": ev, "webhook": ok_webhook}),
            "name",
        ),
    ] {
        let resp = app.post("/api/v1/rules", &body);
        resp.assert_error(400);
        assert!(resp.message().contains(what), "{}", resp.text);
    }
    let not_json = app.raw(
        "POST",
        "/api/v1/rules",
        Some(&app.admin_key.clone()),
        Some(b"{"),
        &[],
    );
    not_json.assert_error(400);
    assert_eq!(rule_count(&app), 0);
}

#[test]
fn rules_are_created_read_replaced_patched_and_deleted() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let created = app.create_rule_with(json!({
        "name": "CRM", "description": "new contacts",
        "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {"url": receiver.url("/a"), "headers": {"X-Source": "tidings"},
                    "secret_headers": {"Authorization": "Bearer s3cret"}}
    }));
    let id = created["id"].as_str().unwrap().to_owned();
    assert!(id.starts_with("rul_"));
    assert_eq!(created["status"], "active");
    assert_eq!(created["secret_hint"].as_str().unwrap().len(), 4);
    assert_eq!(
        created["webhook"]["secret_headers"]["Authorization"],
        "********"
    );
    assert_eq!(created["webhook"]["signing"], "hmac-sha256");
    assert_eq!(created["max_concurrency"], 8);
    for field in ["workspace_id", "created_at", "updated_at"] {
        assert!(created[field].is_string(), "{field}");
    }
    assert!(!created.to_string().contains("s3cret"));
    let path = format!("/api/v1/rules/{id}");
    assert_eq!(app.get(&path).body, created);

    // GET → edit → PUT round-trips; the masked secret header keeps its stored value.
    let mut edited = created.clone();
    edited["name"] = json!("CRM v2");
    edited["webhook"]["url"] = json!(receiver.url("/b"));
    let put = app.send("PUT", &path, &edited);
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["name"], "CRM v2");
    assert_eq!(put.body["created_at"], created["created_at"]);
    assert_eq!(put.body["secret_hint"], created["secret_hint"]);

    // PUT replaces in full: omitted fields go back to their defaults.
    let bare = json!({"name": "bare", "trigger": {"type": "event", "events": ["ping"]}, "webhook": {"url": receiver.url("/c")}});
    let put = app.send("PUT", &path, &bare);
    assert_eq!(put.body["description"], "");
    assert_eq!(put.body["webhook"]["headers"], json!({}));
    assert_eq!(put.body["webhook"]["secret_headers"], json!({}));

    // PATCH merges.
    let patch = app.send(
        "PATCH",
        &path,
        &json!({"description": "patched", "webhook": {"secret_headers": {"X-Key": "k1"}}}),
    );
    assert_eq!(patch.status, 200, "{}", patch.text);
    assert_eq!(patch.body["name"], "bare");
    assert_eq!(patch.body["description"], "patched");
    assert_eq!(patch.body["webhook"]["url"], receiver.url("/c").as_str());
    let patch = app.send(
        "PATCH",
        &path,
        &json!({"description": null, "active": false}),
    );
    assert_eq!(patch.body["description"], "");
    assert_eq!(patch.body["status"], "inactive");
    app.send("PATCH", &path, &json!({"active": true}));

    // The kept secret header still reaches the receiver.
    app.ingest(&json!({"type": "ping"}));
    let got = receiver.wait_for(1, std::time::Duration::from_secs(20));
    assert_eq!(got[0].header("x-key"), Some("k1"));

    // Bad edits change nothing.
    let before = app.get(&path).body;
    app.send("PATCH", &path, &json!({"colour": "red"}))
        .assert_error(400);
    app.send("PATCH", &path, &json!({"webhook": {"method": "DELETE"}}))
        .assert_error(400);
    app.send("PATCH", &path, &json!([1])).assert_error(400);
    app.send("PUT", &path, &json!({"name": "no trigger"}))
        .assert_error(400);
    assert_eq!(app.get(&path).body, before);

    let del = app.raw("DELETE", &path, Some(&app.admin_key.clone()), None, &[]);
    assert_eq!(del.status, 204);
    app.get(&path).assert_error(404);
    app.raw("DELETE", &path, Some(&app.admin_key.clone()), None, &[])
        .assert_error(404);
}

#[test]
fn unknown_ids_routes_and_methods_get_json_errors() {
    let app = spawn_app();
    app.get("/api/v1/rules/rul_0000000000000000000000000000")
        .assert_error(404);
    app.get("/api/v1/rules/not-an-id").assert_error(404);
    app.get("/api/v1/events/evt_0000000000000000000000000000")
        .assert_error(404);
    app.get("/api/v1/deliveries/dlv_nope").assert_error(404);
    app.get("/api/v1/nothing-here").assert_error(404);
    app.raw(
        "DELETE",
        "/api/v1/events",
        Some(&app.admin_key.clone()),
        None,
        &[],
    )
    .assert_error(405);
    app.raw(
        "GET",
        "/api/v1/rules/rul_x/test",
        Some(&app.admin_key.clone()),
        None,
        &[],
    )
    .assert_error(405);
    let wrong_type = app.raw(
        "POST",
        "/api/v1/api-keys",
        Some(&app.admin_key.clone()),
        Some(b"name=x"),
        &[("Content-Type", "text/plain")],
    );
    wrong_type.assert_error(415);
}

#[test]
fn bad_delivery_queries_are_explained() {
    let app = spawn_app();
    for q in [
        "status=lost",
        "limit=0",
        "limit=251",
        "limit=ten",
        "cursor=abc",
        "since=yesterday",
        "rule_id=xyz",
        "event_type=Bad",
        "since=2026-02-01T00:00:00Z&until=2026-01-01T00:00:00Z",
        "colour=red",
    ] {
        let resp = app.get(&format!("/api/v1/deliveries?{q}"));
        resp.assert_error(400);
        assert_eq!(resp.code(), "invalid_query", "{q}: {}", resp.text);
    }
}

#[test]
fn api_keys_are_shown_once_and_can_be_revoked() {
    let app = spawn_app();
    let resp = app.post(
        "/api/v1/api-keys",
        &json!({"name": "EHR", "role": "ingest"}),
    );
    assert_eq!(resp.status, 201, "{}", resp.text);
    let key = resp.body["key"].as_str().unwrap().to_owned();
    let id = resp.body["id"].as_str().unwrap().to_owned();
    assert_eq!(resp.body["role"], "ingest");
    assert!(resp.body["created_at"].is_string());
    let listed = app.get("/api/v1/api-keys");
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 3);
    assert!(!listed.text.contains(&key), "a key is never shown again");
    assert_eq!(
        app.raw(
            "POST",
            "/api/v1/events",
            Some(&key),
            Some(br#"{"type":"ping"}"#),
            &[]
        )
        .status,
        202
    );

    app.post("/api/v1/api-keys", &json!({"name": "x", "role": "root"}))
        .assert_error(400);
    app.post("/api/v1/api-keys", &json!({"role": "admin"}))
        .assert_error(400);
    app.post(
        "/api/v1/api-keys",
        &json!({"name": "x", "role": "admin", "extra": 1}),
    )
    .assert_error(400);
    assert_eq!(
        app.get("/api/v1/api-keys").body["data"]
            .as_array()
            .unwrap()
            .len(),
        3
    );

    let del = app.raw(
        "DELETE",
        &format!("/api/v1/api-keys/{id}"),
        Some(&app.admin_key.clone()),
        None,
        &[],
    );
    assert_eq!(del.status, 204);
    app.raw(
        "POST",
        "/api/v1/events",
        Some(&key),
        Some(br#"{"type":"ping"}"#),
        &[],
    )
    .assert_error(401);

    let me = app.get("/api/v1/api-keys").body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["role"] == "admin")
        .cloned()
        .unwrap_or(Value::Null);
    let own = app.raw(
        "DELETE",
        &format!("/api/v1/api-keys/{}", me["id"].as_str().unwrap()),
        Some(&app.admin_key.clone()),
        None,
        &[],
    );
    own.assert_error(409);
}

#[test]
fn a_patch_naming_a_field_rules_do_not_have_is_refused_even_as_a_removal() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let created = app.create_rule_with(json!({
        "name": "strict", "trigger": {"type": "event", "events": ["ping"]},
        "webhook": {"url": receiver.url("/a"), "headers": {"X-A": "1", "X-B": "2"}},
    }));
    let path = format!("/api/v1/rules/{}", created["id"].as_str().unwrap());
    let before = app.get(&path).body;
    // A merge patch's null removes a field, so these would change nothing if merged first:
    // the keys are checked before merging, at every level of the rule.
    for (patch, named) in [
        (json!({"bogus": null}), "bogus"),
        (json!({"bogus": 1}), "bogus"),
        (json!({"webhook": {"urll": null}}), "urll"),
        (json!({"trigger": {"colour": null}}), "colour"),
        (
            json!({"name": "ok", "webhook": {"retries": null}}),
            "retries",
        ),
    ] {
        let resp = app.send("PATCH", &path, &patch);
        resp.assert_error(400);
        assert!(resp.message().contains(named), "{patch} → {}", resp.text);
    }
    assert_eq!(
        app.get(&path).body,
        before,
        "a refused patch changes nothing"
    );
    // A null inside the header maps removes that header; read-only fields are ignored.
    let resp = app.send(
        "PATCH",
        &path,
        &json!({"webhook": {"headers": {"X-A": null}}, "id": "rul_other", "status": null}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.body["webhook"]["headers"], json!({"X-B": "2"}));
    assert_eq!(resp.body["id"], created["id"]);
}

#[test]
fn preview_and_test_take_only_an_object_or_nothing() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let rule = app.create_rule(&receiver.url("/t"), &["ping"]);
    let id = rule["id"].as_str().unwrap();
    let key = app.admin_key.clone();
    for action in ["preview", "test"] {
        let path = format!("/api/v1/rules/{id}/{action}");
        for body in [
            &b"[]"[..],
            b"[\"ping\", {}]",
            b"\"ping\"",
            b"1",
            b"null",
            b"true",
            b" \n",
        ] {
            let resp = app.raw("POST", &path, Some(&key), Some(body), &[]);
            resp.assert_error(400);
            assert_eq!(
                resp.code(),
                "invalid_json",
                "{action} {}: {}",
                String::from_utf8_lossy(body),
                resp.text
            );
        }
        for body in [
            None,
            Some(&b""[..]),
            Some(b"{}"),
            Some(b" {\"event_type\": \"ping\"} "),
        ] {
            let resp = app.raw("POST", &path, Some(&key), body, &[]);
            assert_eq!(resp.status, 200, "{action} {body:?}: {}", resp.text);
        }
    }
}

#[test]
fn every_405_lists_the_methods_of_its_path_in_allow() {
    let app = spawn_app();
    let doc = app.raw("GET", "/api/v1/openapi.json", None, None, &[]).body;
    let http = crate::support::app::client();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        let mut documented: Vec<String> = item
            .as_object()
            .unwrap()
            .keys()
            .map(|m| m.to_uppercase())
            .collect();
        documented.sort();
        let url = app.url(&path.replace("{id}", "zz_missing"));
        for method in ["TRACE", "OPTIONS", "PUT", "DELETE"] {
            if documented.iter().any(|m| m == method) {
                continue;
            }
            let req = ureq::http::Request::builder()
                .method(method)
                .uri(&url)
                .header("Authorization", format!("Bearer {}", app.admin_key))
                .body(())
                .unwrap();
            let resp = http.run(req).unwrap();
            assert_eq!(resp.status().as_u16(), 405, "{method} {path}");
            let allow = resp
                .headers()
                .get("allow")
                .unwrap_or_else(|| panic!("{method} {path}: 405 without Allow"))
                .to_str()
                .unwrap();
            let mut listed: Vec<String> = allow.split(',').map(|m| m.trim().to_owned()).collect();
            listed.sort();
            assert_eq!(listed, documented, "{method} {path}: Allow: {allow}");
            checked += 1;
        }
    }
    assert!(checked > 50, "only {checked} answers checked");
}

#[test]
fn rules_are_listed_a_page_at_a_time_newest_first() {
    let app = spawn_app();
    let mut made: Vec<String> = (0..55)
        .map(|i| {
            let rule = app.create_rule_with(json!({
                "name": format!("rule {i}"), "trigger": {"type": "event", "events": ["ping"]},
                "webhook": {"url": "http://127.0.0.1:9/"},
            }));
            rule["id"].as_str().unwrap().to_owned()
        })
        .collect();
    made.reverse();
    // No limit: the default page of 50, with a cursor to the rest.
    let first = app.get("/api/v1/rules");
    assert_eq!(first.status, 200, "{}", first.text);
    assert_eq!(first.body["data"].as_array().unwrap().len(), 50);
    assert!(
        first.body["next_cursor"].is_string(),
        "{}",
        first.body["next_cursor"]
    );
    // Walking pages of 7 sees every rule exactly once, newest first, and then stops.
    let mut seen: Vec<String> = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..20 {
        let url = match &cursor {
            Some(c) => format!("/api/v1/rules?limit=7&cursor={c}"),
            None => "/api/v1/rules?limit=7".to_owned(),
        };
        let page = app.get(&url);
        assert_eq!(page.status, 200, "{url}: {}", page.text);
        let data = page.body["data"].as_array().unwrap();
        assert!(data.len() <= 7, "{url}: {} rules", data.len());
        seen.extend(data.iter().map(|r| r["id"].as_str().unwrap().to_owned()));
        cursor = page.body["next_cursor"].as_str().map(str::to_owned);
        if cursor.is_none() {
            break;
        }
    }
    assert!(cursor.is_none(), "the walk did not end");
    assert_eq!(seen, made);
    let exact = app.get("/api/v1/rules?limit=55");
    assert_eq!(exact.body["data"].as_array().unwrap().len(), 55);
    for q in [
        "limit=0",
        "limit=251",
        "limit=five",
        "limit=",
        "cursor=abc",
        "cursor=dlv_0000000000000000000000000000",
        "colour=red",
    ] {
        let resp = app.get(&format!("/api/v1/rules?{q}"));
        resp.assert_error(400);
        assert_eq!(resp.code(), "invalid_query", "{q}: {}", resp.text);
    }
}
