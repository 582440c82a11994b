//! Routines against the real server with a clock the test moves: next runs, firings delivered
//! like events (signed, retried, logged), daylight-saving nights, catching up once after
//! downtime, and no duplicate after a restart.

use std::time::Duration;

use serde_json::{Value, json};
use tidings::domain::time::{Clock, now_ms, parse_rfc3339};

use crate::support::app::{TestApp, start_with_clock, temp_dir, test_config, wait_until};
use crate::support::receiver::{Reply, TestReceiver};

const WAIT: Duration = Duration::from_secs(20);
/// Longer than the scheduler's longest sleep (1 s), so a firing that was going to happen has.
const QUIET: Duration = Duration::from_millis(2500);

fn at(s: &str) -> i64 {
    parse_rfc3339(s).unwrap()
}

fn routine(app: &TestApp, url: &str, cron: &str, timezone: &str) -> Value {
    app.create_rule_with(json!({
        "name": "Morning summary",
        "trigger": {"type": "schedule", "cron": cron, "timezone": timezone},
        "webhook": {"url": url},
    }))
}

fn scheduled_at(r: &crate::support::receiver::Recorded) -> String {
    r.body_json()["scheduledAt"].as_str().unwrap().to_owned()
}

#[test]
fn a_routine_lists_its_next_runs_and_fires_a_signed_routine_event() {
    let clock = Clock::manual(now_ms());
    let app = start_with_clock(test_config(&temp_dir("routine")), clock.clone());
    let receiver = TestReceiver::start();
    receiver.reply_sequence(vec![Reply::status(503)]);
    let rule = routine(
        &app,
        &receiver.url("/daily"),
        "0 9 * * MON-FRI",
        "America/New_York",
    );
    assert_eq!(rule["trigger"]["type"], "schedule");
    let runs: Vec<i64> = rule["next_runs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| at(r.as_str().unwrap()))
        .collect();
    assert_eq!(runs.len(), 5);
    assert!(runs.windows(2).all(|w| w[0] < w[1]));
    assert!(runs[0] > clock.now_ms());
    assert_eq!(
        receiver.expect_quiet(QUIET),
        0,
        "nothing fires before its time"
    );

    // The clock reaches the first run: one routine:fired event, delivered and retried.
    clock.set(runs[0]);
    // The retry after the 503 is due 50 ms later by the same clock, which the test moves on.
    receiver.wait_for(1, WAIT);
    clock.advance(1_000);
    let got = receiver.wait_for(2, WAIT);
    let body = got[1].body_json();
    assert_eq!(body["event"], "routine:fired");
    assert_eq!(
        body["routine"],
        json!({"id": rule["id"], "name": "Morning summary"})
    );
    assert_eq!(at(body["scheduledAt"].as_str().unwrap()), runs[0]);
    assert_eq!(body["occurredAt"], body["scheduledAt"]);
    assert_eq!(got[0].header("x-webhook-event"), Some("routine:fired"));
    assert!(
        got[1]
            .header("x-webhook-signature")
            .unwrap()
            .starts_with("t=")
    );
    assert_eq!(got[0].header("x-webhook-id"), got[1].header("x-webhook-id"));
    assert_eq!(receiver.expect_quiet(QUIET), 2, "one firing, retried once");
    let event_id = body["id"].as_str().unwrap();
    let deliveries = app.wait_settled(event_id, WAIT);
    assert_eq!(deliveries[0]["status"], "succeeded");
    assert_eq!(deliveries[0]["attempt_count"], 2);

    // next_runs follows the clock; a fetched routine can be sent back as it is.
    let after = app.get(&format!("/api/v1/rules/{}", rule["id"].as_str().unwrap()));
    assert_eq!(at(after.body["next_runs"][0].as_str().unwrap()), runs[1]);
    let put = app.send(
        "PUT",
        &format!("/api/v1/rules/{}", rule["id"].as_str().unwrap()),
        &after.body,
    );
    assert_eq!(put.status, 200, "{}", put.text);
    assert_eq!(put.body["trigger"], after.body["trigger"]);
    // An inactive routine has no next runs and does not fire.
    let off = app.send(
        "PATCH",
        &format!("/api/v1/rules/{}", rule["id"].as_str().unwrap()),
        &json!({"active": false}),
    );
    assert_eq!(off.body["next_runs"], json!([]));
    clock.set(runs[2]);
    assert_eq!(receiver.expect_quiet(QUIET), 2);
}

#[test]
fn daylight_saving_nights_fire_each_slot_once() {
    let clock = Clock::manual(now_ms());
    let app = start_with_clock(test_config(&temp_dir("routine-dst")), clock.clone());
    let receiver = TestReceiver::start();
    // Spring forward, New York 2027-03-14: 02:30 does not exist and fires at 03:30 EDT.
    let spring = routine(
        &app,
        &receiver.url("/spring"),
        "30 2 * * *",
        "America/New_York",
    );
    clock.set(at("2027-03-14T07:00:00Z"));
    let got = receiver.wait_for(1, WAIT);
    // The jump from today is downtime to the scheduler: one firing, for the latest slot.
    assert_eq!(scheduled_at(&got[0]), "2027-03-13T07:30:00Z");
    clock.set(at("2027-03-14T07:30:00Z"));
    let got = receiver.wait_for(2, WAIT);
    assert_eq!(scheduled_at(&got[1]), "2027-03-14T07:30:00Z");
    clock.set(at("2027-03-15T06:30:00Z"));
    let got = receiver.wait_for(3, WAIT);
    assert_eq!(scheduled_at(&got[2]), "2027-03-15T06:30:00Z");
    app.send(
        "PATCH",
        &format!("/api/v1/rules/{}", spring["id"].as_str().unwrap()),
        &json!({"active": false}),
    );

    // Fall back, 2027-11-07: 01:30 happens twice (EDT, then EST) and fires once.
    routine(
        &app,
        &receiver.url("/fall"),
        "30 1 * * *",
        "America/New_York",
    );
    clock.set(at("2027-11-07T05:30:00Z"));
    let got = receiver.wait_for(4, WAIT);
    assert_eq!(got[3].path, "/fall");
    assert_eq!(scheduled_at(&got[3]), "2027-11-07T05:30:00Z");
    clock.set(at("2027-11-07T06:45:00Z"));
    assert_eq!(
        receiver.expect_quiet(QUIET),
        4,
        "the repeated 01:30 EST must not fire"
    );
    clock.set(at("2027-11-08T06:30:00Z"));
    let got = receiver.wait_for(5, WAIT);
    assert_eq!(scheduled_at(&got[4]), "2027-11-08T06:30:00Z");
}

#[test]
fn missed_slots_fire_once_at_start_and_never_twice() {
    let data_dir = temp_dir("routine-restart");
    let receiver = TestReceiver::start();
    let start = now_ms();
    let clock = Clock::manual(start);
    let app = start_with_clock(test_config(&data_dir), clock.clone());
    routine(&app, &receiver.url("/hourly"), "0 * * * *", "UTC");
    let first = (start / 3_600_000 + 1) * 3_600_000;
    clock.set(first + 60_000);
    let got = receiver.wait_for(1, WAIT);
    assert_eq!(at(&scheduled_at(&got[0])), first);
    app.stop();

    // Down for five hours: one firing at start, for the latest slot missed.
    let later = first + 5 * 3_600_000 + 120_000;
    let app = start_with_clock(test_config(&data_dir), Clock::manual(later));
    let got = receiver.wait_for(2, WAIT);
    assert_eq!(at(&scheduled_at(&got[1])), first + 5 * 3_600_000);
    assert_eq!(receiver.expect_quiet(QUIET), 2);
    app.stop();

    // Restarting at the same moment fires nothing again: the slot is recorded durably.
    let app = start_with_clock(test_config(&data_dir), Clock::manual(later));
    assert_eq!(receiver.expect_quiet(QUIET), 2);
    let events = wait_until(WAIT, "two routine deliveries in the log", || {
        let list = app.get("/api/v1/deliveries?event_type=routine:fired");
        let data = list.body["data"].as_array()?.clone();
        (data.len() == 2).then_some(data)
    });
    assert!(events.iter().all(|d| d["status"] == "succeeded"));
}

#[test]
fn bad_schedules_are_refused_naming_the_field() {
    let clock = Clock::manual(now_ms());
    let app = start_with_clock(test_config(&temp_dir("routine-bad")), clock);
    let cases = [
        (
            json!({"type": "schedule", "cron": "0 9 * *"}),
            "trigger.cron",
        ),
        (
            json!({"type": "schedule", "cron": "0 25 * * *"}),
            "trigger.cron",
        ),
        (
            json!({"type": "schedule", "cron": "0 9 * * 8"}),
            "trigger.cron",
        ),
        (json!({"type": "schedule"}), "trigger.cron"),
        (
            json!({"type": "schedule", "cron": "0 9 * * *", "timezone": "Mars/Olympus"}),
            "trigger.timezone",
        ),
        (
            json!({"type": "schedule", "cron": "0 9 * * *", "events": ["x"]}),
            "trigger",
        ),
    ];
    for (trigger, field) in cases {
        let resp = app.post(
            "/api/v1/rules",
            &json!({"name": "r", "trigger": trigger, "webhook": {"url": "http://127.0.0.1:9/x"}}),
        );
        resp.assert_error(400);
        assert!(
            resp.message().starts_with(&format!("{field}:")),
            "{field}: {}",
            resp.text
        );
    }
    assert_eq!(app.get("/api/v1/rules").body["data"], json!([]));
    // 6- and 7-field forms with seconds are accepted; UTC is the default zone.
    let r = app.create_rule_with(json!({"name": "r",
        "trigger": {"type": "schedule", "cron": "*/30 * * * * *"},
        "webhook": {"url": "http://127.0.0.1:9/x"}}));
    assert_eq!(r["trigger"]["timezone"], "UTC");
}
