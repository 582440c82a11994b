//! Ordered delivery (SPEC §15): a rule's `ordering_key` sends the deliveries of one key one
//! at a time, in ingest order, the next waiting until the one before succeeded or failed for
//! good, while other keys go on.

use std::time::Duration;

use serde_json::{Value, json};

use tidings::domain::time::{Clock, now_ms};

use crate::support::app::{TestApp, spawn_app, spawn_app_with_clock};
use crate::support::receiver::{Recorded, Reply, TestReceiver};

const WAIT: Duration = Duration::from_secs(20);

fn ordered_rule(app: &TestApp, url: &str) -> Value {
    app.create_rule_with(json!({
        "name": "ordered",
        "trigger": {"type": "event", "events": ["visit"]},
        "webhook": {"url": url},
        "ordering_key": "data.member.id",
        "max_concurrency": 8,
    }))
}

fn visit(app: &TestApp, member: &str, seq: u32) -> String {
    let resp =
        app.ingest(&json!({"type": "visit", "data": {"member": {"id": member}, "seq": seq}}));
    assert_eq!(resp.status, 202, "{}", resp.text);
    resp.body["id"].as_str().unwrap().to_owned()
}

/// What arrived, as "member:seq" in arrival order.
fn arrivals(got: &[Recorded]) -> Vec<String> {
    got.iter()
        .map(|r| {
            let b = r.body_json();
            format!("{}:{}", b["member"]["id"].as_str().unwrap_or("?"), b["seq"])
        })
        .collect()
}

#[test]
fn a_failing_head_holds_up_only_its_own_key_and_the_rest_follow_in_order() {
    let clock = Clock::manual(now_ms());
    let app = spawn_app_with_clock(
        |c| {
            c.retry.base_delay = Duration::from_secs(60);
            c.retry.max_delay = Duration::from_secs(60);
        },
        clock.clone(),
    );
    let receiver = TestReceiver::start();
    let rule = ordered_rule(&app, &receiver.url("/"));
    assert_eq!(rule["ordering_key"], "data.member.id", "{rule}");

    // The head of key A fails and waits a minute (on a clock that stands) for its retry.
    receiver.reply_sequence(vec![Reply::status(500)]);
    visit(&app, "A", 1);
    receiver.wait_for(1, WAIT);
    let held = [visit(&app, "A", 2), visit(&app, "A", 3)];
    visit(&app, "B", 1);
    visit(&app, "B", 2);
    // Key B is not held up by A.
    let got = receiver.wait_for(3, WAIT);
    assert_eq!(arrivals(&got), ["A:1", "B:1", "B:2"]);
    // A's later deliveries wait, unattempted, past a worker's recheck of them.
    assert_eq!(receiver.expect_quiet(Duration::from_millis(1500)), 3);
    for event in &held {
        let d = app.get(&format!("/api/v1/events/{event}")).body["deliveries"][0].clone();
        assert_eq!(d["status"], "pending", "{d}");
        assert_eq!(d["attempt_count"], 0, "{d}");
    }

    // The retry fails again: still nothing of A behind it goes.
    receiver.reply_sequence(vec![Reply::status(500)]);
    clock.advance(60_000);
    receiver.wait_for(4, WAIT);
    assert_eq!(receiver.expect_quiet(Duration::from_millis(1200)), 4);

    // Once it succeeds, the ones behind it go one after the other, in ingest order.
    clock.advance(60_000);
    let got = receiver.wait_for(7, WAIT);
    assert_eq!(
        arrivals(&got),
        ["A:1", "B:1", "B:2", "A:1", "A:1", "A:2", "A:3"]
    );
}

#[test]
fn a_head_that_fails_for_good_lets_the_next_go() {
    let app = spawn_app_with_clock(|c| c.retry.max_attempts = 2, Clock::system());
    let receiver = TestReceiver::start();
    ordered_rule(&app, &receiver.url("/"));
    receiver.reply_sequence(vec![Reply::status(500), Reply::status(500)]);
    let first = visit(&app, "A", 1);
    let second = visit(&app, "A", 2);
    let got = receiver.wait_for(3, WAIT);
    assert_eq!(arrivals(&got), ["A:1", "A:1", "A:2"]);
    assert_eq!(app.wait_settled(&first, WAIT)[0]["status"], "failed");
    assert_eq!(app.wait_settled(&second, WAIT)[0]["status"], "succeeded");
}

#[test]
fn many_events_of_a_few_keys_arrive_in_ingest_order_per_key() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    // A little delay per answer, so that without ordering eight workers would overtake.
    receiver.set_default(Reply::status(200).delay(Duration::from_millis(5)));
    ordered_rule(&app, &receiver.url("/"));
    let keys = ["A", "B", "C"];
    let per_key: u32 = 20;
    for seq in 1..=per_key {
        for key in keys {
            visit(&app, key, seq);
        }
    }
    let total = keys.len() * per_key as usize;
    let got = receiver.wait_for(total, WAIT);
    for key in keys {
        let seqs: Vec<u64> = got
            .iter()
            .map(Recorded::body_json)
            .filter(|b| b["member"]["id"] == key)
            .map(|b| b["seq"].as_u64().unwrap())
            .collect();
        assert_eq!(
            seqs,
            (1..=u64::from(per_key)).collect::<Vec<_>>(),
            "key {key}"
        );
    }
}

#[test]
fn events_without_the_key_are_not_ordered_and_a_key_of_the_wrong_kind_says_why() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    ordered_rule(&app, &receiver.url("/"));
    // null: no key, sent as without ordering.
    let none = app.ingest(&json!({"type": "visit", "data": {"member": {"id": null}, "seq": 1}}));
    assert_eq!(none.status, 202, "{}", none.text);
    // A map cannot be a key: the delivery says why instead of going out unordered.
    let map = app.ingest(&json!({"type": "visit", "data": {"member": {"id": {"x": 1}}}}));
    let d = app
        .wait_settled(map.body["id"].as_str().unwrap(), WAIT)
        .remove(0);
    assert_eq!(d["status"], "condition_error", "{d}");
    let full = app.delivery(d["id"].as_str().unwrap());
    assert!(
        full["condition_error"]
            .as_str()
            .is_some_and(|m| m.starts_with("ordering key:") && m.contains("a map")),
        "{full}"
    );
    receiver.wait_for(1, WAIT);
    assert_eq!(
        app.wait_settled(none.body["id"].as_str().unwrap(), WAIT)[0]["status"],
        "succeeded"
    );
}

#[test]
fn a_bad_ordering_key_is_refused_at_its_field_and_an_empty_one_clears_it() {
    let app = spawn_app();
    let resp = app.post(
        "/api/v1/rules",
        &json!({
            "name": "bad",
            "trigger": {"type": "event", "events": ["visit"]},
            "webhook": {"url": "https://example.com/hook"},
            "ordering_key": "data.member.",
        }),
    );
    resp.assert_error(400);
    assert!(resp.message().contains("ordering_key"), "{}", resp.text);
    assert_eq!(app.get("/api/v1/rules").body["data"], json!([]));

    let rule = ordered_rule(&app, "https://example.com/hook");
    let path = format!("/api/v1/rules/{}", rule["id"].as_str().unwrap());
    let cleared = app.send("PATCH", &path, &json!({"ordering_key": ""}));
    assert_eq!(cleared.status, 200, "{}", cleared.text);
    assert_eq!(cleared.body["ordering_key"], Value::Null);
    let again = app.send("PATCH", &path, &json!({"ordering_key": "data.member.id +"}));
    again.assert_error(400);
    assert!(again.message().contains("ordering_key"), "{}", again.text);
    assert_eq!(app.get(&path).body["ordering_key"], Value::Null);
}
