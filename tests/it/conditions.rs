//! CEL conditions against the real server: which events a rule delivers, syntax errors on
//! save, and runtime errors logged as `condition_error` deliveries with no request.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app};
use crate::support::receiver::TestReceiver;

const WAIT: Duration = Duration::from_secs(20);

fn rule_with_condition(app: &TestApp, url: &str, events: &[&str], condition: &str) -> Value {
    app.create_rule_with(json!({
        "name": format!("when {condition}"),
        "trigger": {"type": "event", "events": events},
        "condition": condition,
        "webhook": {"url": url},
    }))
}

fn member_event(id: i64, labels: &[&str], extra: &Value) -> Value {
    let mut data = json!({
        "member": {"id": id, "name": "Jane Example", "labels": labels},
        "dataRecord": {"id": 4567, "fields": {"priority": "high", "score": 7}},
    });
    if let (Some(d), Some(x)) = (data.as_object_mut(), extra.as_object()) {
        d.extend(x.clone());
    }
    json!({"type": "data_record:created", "data": data})
}

#[test]
fn each_documented_kind_of_condition_selects_the_right_events() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    // One rule per documented example, each with its own path so arrivals say which matched.
    let cases = [
        ("labels", r#""vip" in data.member.labels"#),
        ("equality", r#"data.dataRecord.fields.priority == "high""#),
        ("numeric", "data.member.id > 100"),
        ("has", "has(data.member.email)"),
        (
            "spec",
            r#"data.dataRecord.fields.priority == "high" && "vip" in data.member.labels"#,
        ),
        ("event", r#"event.type.startsWith("data_record:")"#),
        ("workspace", r#"workspace.name == "Default""#),
    ];
    for (path, condition) in cases {
        rule_with_condition(
            &app,
            &receiver.url(&format!("/{path}")),
            &["data_record:*"],
            condition,
        );
    }
    // A: vip, id 123, no email → labels, equality, numeric, spec, event, workspace.
    let a = app.ingest(&member_event(123, &["vip"], &json!({})));
    assert_eq!(a.status, 202, "{}", a.text);
    assert_eq!(a.body["deliveries"], 6);
    // B: not vip, id 7, with email → equality, has, event, workspace.
    let mut b = member_event(7, &["new"], &json!({}));
    b["data"]["member"]["email"] = json!("b@example.com");
    let b = app.ingest(&b);
    assert_eq!(b.body["deliveries"], 4);
    let got = receiver.wait_for(10, WAIT);
    let mut paths: Vec<(String, i64)> = got
        .iter()
        .map(|r| {
            (
                r.path.clone(),
                r.body_json()["member"]["id"].as_i64().unwrap(),
            )
        })
        .collect();
    paths.sort();
    let expected: Vec<(String, i64)> = [
        ("/equality", 7),
        ("/equality", 123),
        ("/event", 7),
        ("/event", 123),
        ("/has", 7),
        ("/labels", 123),
        ("/numeric", 123),
        ("/spec", 123),
        ("/workspace", 7),
        ("/workspace", 123),
    ]
    .iter()
    .map(|(p, i)| ((*p).to_owned(), *i))
    .collect();
    assert_eq!(paths, expected);
    assert_eq!(receiver.expect_quiet(Duration::from_millis(500)), 10);
}

#[test]
fn a_syntax_error_is_refused_with_its_place_and_nothing_is_stored() {
    let app = spawn_app();
    let resp = app.post(
        "/api/v1/rules",
        &json!({
            "name": "broken",
            "trigger": {"type": "event", "events": ["member:*"]},
            "condition": "data.member.id >",
            "webhook": {"url": "http://127.0.0.1:9/hook"},
        }),
    );
    resp.assert_error(400);
    assert!(resp.message().starts_with("condition:"), "{}", resp.text);
    assert!(
        resp.message().contains("1:"),
        "position missing: {}",
        resp.text
    );
    assert_eq!(app.get("/api/v1/rules").body["data"], json!([]));

    // On update too, and the stored condition stays as it was.
    let rule = rule_with_condition(
        &app,
        "http://127.0.0.1:9/hook",
        &["member:*"],
        "data.member.id == 1",
    );
    let id = rule["id"].as_str().unwrap();
    let resp = app.send(
        "PATCH",
        &format!("/api/v1/rules/{id}"),
        &json!({"condition": "data.member.id == = 2"}),
    );
    resp.assert_error(400);
    let stored = app.get(&format!("/api/v1/rules/{id}"));
    assert_eq!(stored.body["condition"], "data.member.id == 1");
    // An empty condition clears it.
    let cleared = app.send(
        "PATCH",
        &format!("/api/v1/rules/{id}"),
        &json!({"condition": ""}),
    );
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert_eq!(cleared.body["condition"], Value::Null);
}

#[test]
fn a_runtime_error_is_a_condition_error_delivery_without_a_request() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let rule = rule_with_condition(
        &app,
        &receiver.url("/hook"),
        &["data_record:created"],
        "data.call.durationSeconds > 60",
    );
    let resp = app.ingest(&member_event(123, &["vip"], &json!({})));
    assert_eq!(resp.status, 202, "{}", resp.text);
    assert_eq!(
        resp.body["deliveries"], 1,
        "condition_error deliveries count"
    );
    let event_id = resp.body["id"].as_str().unwrap();
    let deliveries = app.wait_settled(event_id, WAIT);
    assert_eq!(deliveries.len(), 1);
    let d = &deliveries[0];
    assert_eq!(d["status"], "condition_error");
    assert_eq!(d["rule_id"], rule["id"]);
    let message = d["condition_error"].as_str().unwrap();
    assert!(message.contains("call"), "{message}");
    let detail = app.delivery(d["id"].as_str().unwrap());
    assert_eq!(detail["attempts"], json!([]));
    // It is findable in the log by status, and nothing went out.
    let listed = app.get("/api/v1/deliveries?status=condition_error");
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 1);
    assert_eq!(receiver.expect_quiet(Duration::from_millis(500)), 0);

    // A wrong type is an error too, not a silent false.
    let typed = rule_with_condition(
        &app,
        &receiver.url("/typed"),
        &["data_record:created"],
        "data.member.name > 3",
    );
    let resp = app.ingest(&member_event(5, &[], &json!({})));
    let deliveries = app.wait_settled(resp.body["id"].as_str().unwrap(), WAIT);
    let mine: Vec<&Value> = deliveries
        .iter()
        .filter(|d| d["rule_id"] == typed["id"])
        .collect();
    assert_eq!(mine[0]["status"], "condition_error");
    assert_eq!(receiver.count(), 0);
}
