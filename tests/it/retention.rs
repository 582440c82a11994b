//! Pruning the delivery log: finished deliveries, their attempts and their events go once
//! older than the cutoff; deliveries still owed (and their events) stay. The cutoff stands in
//! for a clock `logs.retention_days` later.

use std::time::Duration;

use serde_json::json;
use tidings::domain::time::{Clock, now_ms};

use crate::support::app::{spawn_app_with, spawn_app_with_clock, wait_until};
use crate::support::receiver::{Reply, TestReceiver};

#[test]
fn pruning_removes_finished_history_and_keeps_what_is_owed() {
    let app = spawn_app_with(|c| {
        c.retry.max_attempts = 50;
        c.retry.base_delay = Duration::from_secs(60);
        c.retry.max_delay = Duration::from_secs(60);
    });
    let ok = TestReceiver::start();
    let down = TestReceiver::start();
    down.set_default(Reply::status(503));
    let ok_rule = app.create_rule(&ok.url("/"), &["member:created"]);
    app.create_rule(&down.url("/"), &["call:completed"]);
    let done = app.ingest(&json!({"type": "member:created"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let owed = app.ingest(&json!({"type": "call:completed"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let done_delivery = app.wait_settled(&done, Duration::from_secs(20))[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    down.wait_for(1, Duration::from_secs(20));

    let (deliveries, events) = app.store().prune_before(now_ms() + 1).unwrap();
    assert_eq!((deliveries, events), (1, 1));
    app.get(&format!("/api/v1/events/{done}")).assert_error(404);
    app.get(&format!("/api/v1/deliveries/{done_delivery}"))
        .assert_error(404);
    let listed = app.get(&format!(
        "/api/v1/deliveries?rule_id={}",
        ok_rule["id"].as_str().unwrap()
    ));
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 0);

    let still = app.get(&format!("/api/v1/events/{owed}"));
    assert_eq!(still.status, 200, "an open delivery keeps its event");
    assert_eq!(still.body["deliveries"][0]["status"], "retrying");
    assert_eq!(
        app.get(&format!(
            "/api/v1/rules/{}",
            ok_rule["id"].as_str().unwrap()
        ))
        .status,
        200
    );
    // Nothing older than the cutoff left to remove.
    assert_eq!(app.store().prune_before(now_ms() + 1).unwrap(), (0, 0));
}

#[test]
fn the_retention_thread_prunes_by_the_app_clock() {
    let clock = Clock::manual(now_ms());
    let app = spawn_app_with_clock(|c| c.logs.retention_days = 7, clock.clone());
    let receiver = TestReceiver::start();
    app.create_rule(&receiver.url("/"), &["ping"]);
    let event = app.ingest(&json!({"type": "ping"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_settled(&event, Duration::from_secs(20));
    // Six days on, the event is inside the window; eight days on, the hourly prune drops it.
    clock.advance(6 * 86_400_000);
    assert_eq!(app.get(&format!("/api/v1/events/{event}")).status, 200);
    clock.advance(2 * 86_400_000);
    wait_until(Duration::from_secs(20), "the event to be pruned", || {
        (app.get(&format!("/api/v1/events/{event}")).status == 404).then_some(())
    });
}
