//! Events in, webhooks out: payload shapes, matching, the retry schedule, failure handling,
//! per-rule concurrency, re-sends, test sends and the delivery log.

use std::time::{Duration, Instant};

use serde_json::{Value, json};

use tidings::domain::time::{Clock, now_ms};

use crate::support::app::{spawn_app, spawn_app_with, spawn_app_with_clock, wait_until};
use crate::support::receiver::{Reply, TestReceiver};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn flat_payload_reaches_the_receiver_with_standard_headers() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let rule = app.create_rule(&receiver.url("/hook"), &["data_record:created"]);
    let resp = app.ingest(&json!({
        "type": "data_record:created",
        "occurred_at": "2026-11-23T10:00:00Z",
        "data": {"dataType": {"slug": "contact_form"}, "member": {"id": 123, "labels": ["vip"]}}
    }));
    assert_eq!(resp.status, 202, "{}", resp.text);
    assert_eq!(resp.body["deliveries"], 1);
    let event_id = resp.body["id"].as_str().unwrap().to_owned();
    assert!(event_id.starts_with("evt_"));

    let got = receiver.wait_for(1, WAIT).remove(0);
    assert_eq!(got.method, "POST");
    assert_eq!(got.path, "/hook");
    assert_eq!(got.header("content-type"), Some("application/json"));
    let body = got.body_json();
    assert_eq!(body["event"], "data_record:created");
    assert_eq!(body["id"], event_id.as_str());
    assert_eq!(body["occurredAt"], "2026-11-23T10:00:00Z");
    assert_eq!(body["dataType"]["slug"], "contact_form");
    assert_eq!(body["member"]["labels"][0], "vip");
    assert_eq!(body["eventRule"]["id"], rule["id"]);
    assert_eq!(body["eventRule"]["name"], "test rule");
    assert_eq!(body["workspace"]["name"], "Default");
    assert!(
        body["workspace"]["id"]
            .as_str()
            .unwrap()
            .starts_with("wsp_")
    );
    // Key order as receivers of this payload style expect: reserved keys around the data.
    let keys: Vec<&String> = body.as_object().unwrap().keys().collect();
    assert_eq!(keys.first().map(|k| k.as_str()), Some("event"));
    assert_eq!(keys.last().map(|k| k.as_str()), Some("workspace"));

    let deliveries = app.wait_settled(&event_id, WAIT);
    assert_eq!(deliveries.len(), 1);
    assert_eq!(deliveries[0]["status"], "succeeded");
    assert_eq!(got.header("x-webhook-id"), deliveries[0]["id"].as_str());
    assert_eq!(got.header("x-webhook-event"), Some("data_record:created"));
    assert!(got.header("user-agent").unwrap().starts_with("tidings/"));

    let d = app.delivery(deliveries[0]["id"].as_str().unwrap());
    let attempt = &d["attempts"][0];
    assert_eq!(attempt["number"], 1);
    assert_eq!(attempt["status_code"], 200);
    assert_eq!(attempt["error_kind"], Value::Null);
    assert_eq!(attempt["request"]["url"], receiver.url("/hook").as_str());
    assert_eq!(
        attempt["request"]["body"].as_str().unwrap().as_bytes(),
        got.body.as_slice()
    );
    assert_eq!(attempt["response"]["body"], "ok");
    assert!(attempt["duration_ms"].is_u64());
}

#[test]
fn envelope_format_wraps_the_data() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    app.create_rule_with(json!({
        "name": "env", "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {"url": receiver.url("/"), "payload_format": "envelope", "method": "PUT"}
    }));
    let id = app
        .ingest(&json!({"type": "member:updated", "data": {"member": {"id": 7}}}))
        .body["id"]
        .clone();
    let got = receiver.wait_for(1, WAIT).remove(0);
    assert_eq!(got.method, "PUT");
    assert_eq!(
        got.body_json(),
        json!({"id": id, "event": "member:updated", "payload": {"member": {"id": 7}}})
    );
}

#[test]
fn patterns_decide_which_rules_get_an_event() {
    let app = spawn_app();
    let members = TestReceiver::start();
    let everything = TestReceiver::start();
    let exact = TestReceiver::start();
    app.create_rule(&members.url("/"), &["member:*"]);
    app.create_rule(&everything.url("/"), &["*"]);
    app.create_rule(&exact.url("/"), &["call:completed"]);
    let off = TestReceiver::start();
    app.create_rule_with(json!({"name": "off", "active": false,
        "trigger": {"type": "event", "events": ["*"]}, "webhook": {"url": off.url("/")}}));

    assert_eq!(
        app.ingest(&json!({"type": "member:created", "data": {}}))
            .body["deliveries"],
        2
    );
    assert_eq!(
        app.ingest(&json!({"type": "call:completed", "data": {}}))
            .body["deliveries"],
        2
    );
    assert_eq!(
        app.ingest(&json!({"type": "members:created", "data": {}}))
            .body["deliveries"],
        1
    );
    everything.wait_for(3, WAIT);
    assert_eq!(
        members.wait_for(1, WAIT)[0].body_json()["event"],
        "member:created"
    );
    assert_eq!(
        exact.wait_for(1, WAIT)[0].body_json()["event"],
        "call:completed"
    );
    assert_eq!(members.expect_quiet(Duration::from_millis(300)), 1);
    assert_eq!(off.count(), 0, "an inactive rule delivers nothing");
}

#[test]
fn failures_are_retried_on_the_doubling_schedule_until_success() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    receiver.reply_sequence(vec![
        Reply::status(500),
        Reply::status(502),
        Reply::status(400),
        Reply::status(503),
    ]);
    app.create_rule(&receiver.url("/"), &["ping"]);
    let event = app.ingest(&json!({"type": "ping"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let got = receiver.wait_for(5, WAIT);
    // 50 ms base, doubling: at least 50, 100, 200, 400 ms between attempts. Read off the
    // attempts' own start times (the schedule tidings keeps): gaps between arrivals at the
    // receiver also carry each request's trip, which a loaded machine stretches by tens of ms.
    let settled = app.wait_settled(&event, WAIT).remove(0);
    let logged = app.delivery(settled["id"].as_str().unwrap());
    let starts: Vec<Duration> = logged["attempts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| {
            let at = time::OffsetDateTime::parse(
                a["started_at"].as_str().unwrap(),
                &time::format_description::well_known::Rfc3339,
            )
            .unwrap();
            Duration::from_nanos(u64::try_from(at.unix_timestamp_nanos()).unwrap())
        })
        .collect();
    for (i, pair) in starts.windows(2).enumerate() {
        let gap = pair[1].saturating_sub(pair[0]);
        let expected = Duration::from_millis(50 << i);
        assert!(
            gap >= expected.mul_f64(0.9),
            "gap {i} was {gap:?}, expected at least {expected:?}"
        );
    }
    let ids: Vec<_> = got
        .iter()
        .map(|r| r.header("x-webhook-id").unwrap().to_owned())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] == w[1]),
        "the delivery id is stable across retries"
    );
    assert!(
        got.windows(2).all(|w| w[0].body == w[1].body),
        "the body is the same on every attempt"
    );
    let d = app.wait_settled(&event, WAIT).remove(0);
    assert_eq!(d["status"], "succeeded");
    let full = app.delivery(d["id"].as_str().unwrap());
    let attempts = full["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 5);
    assert_eq!(attempts[0]["status_code"], 500);
    assert_eq!(attempts[0]["error_kind"], "http_status");
    assert_eq!(attempts[4]["status_code"], 200);
}

#[test]
fn five_failures_fail_the_delivery_and_stop() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(500).body("broken"));
    app.create_rule(&receiver.url("/"), &["ping"]);
    let event = app.ingest(&json!({"type": "ping"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    receiver.wait_for(5, WAIT);
    let d = app.wait_settled(&event, WAIT).remove(0);
    assert_eq!(d["status"], "failed");
    assert_eq!(d["attempt_count"], 5);
    assert_eq!(
        receiver.expect_quiet(Duration::from_secs(3)),
        5,
        "no sixth attempt"
    );
    let full = app.delivery(d["id"].as_str().unwrap());
    assert_eq!(full["attempts"][4]["response"]["body"], "broken");
}

#[test]
fn max_attempts_is_configurable() {
    let app = spawn_app_with(|c| c.retry.max_attempts = 2);
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(500));
    app.create_rule(&receiver.url("/"), &["ping"]);
    let event = app.ingest(&json!({"type": "ping"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.wait_settled(&event, WAIT)[0]["status"], "failed");
    assert_eq!(receiver.expect_quiet(Duration::from_secs(1)), 2);
}

#[test]
fn retry_after_is_honoured_within_max_delay() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    receiver.reply_sequence(vec![Reply::status(429).header("Retry-After", "1")]);
    app.create_rule(&receiver.url("/"), &["ping"]);
    app.ingest(&json!({"type": "ping"}));
    let got = receiver.wait_for(2, WAIT);
    let gap = got[1].at - got[0].at;
    assert!(
        gap >= Duration::from_millis(950),
        "Retry-After: 1 was not honoured: {gap:?}"
    );
    // A Retry-After beyond retry.max_delay (2 s in tests) is capped.
    let capped = TestReceiver::start();
    capped.reply_sequence(vec![Reply::status(503).header("Retry-After", "3600")]);
    app.create_rule(&capped.url("/"), &["other"]);
    app.ingest(&json!({"type": "other"}));
    let got = capped.wait_for(2, WAIT);
    let gap = got[1].at - got[0].at;
    assert!(
        gap < Duration::from_secs(4),
        "Retry-After was not capped: {gap:?}"
    );
}

#[test]
fn gone_deactivates_the_rule_and_says_why() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(410));
    let rule = app.create_rule(&receiver.url("/"), &["ping"]);
    let event = app.ingest(&json!({"type": "ping"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(app.wait_settled(&event, WAIT)[0]["status"], "failed");
    let rule = app
        .get(&format!("/api/v1/rules/{}", rule["id"].as_str().unwrap()))
        .body;
    assert_eq!(rule["status"], "inactive");
    assert_eq!(rule["active"], false);
    assert!(
        rule["status_reason"].as_str().unwrap().contains("410"),
        "{rule}"
    );
    assert_eq!(app.ingest(&json!({"type": "ping"})).body["deliveries"], 0);
    assert_eq!(receiver.expect_quiet(Duration::from_millis(500)), 1);
}

#[test]
fn a_slow_receiver_times_out() {
    let app = spawn_app_with(|c| c.retry.max_attempts = 1);
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(200).delay(Duration::from_secs(2)));
    app.create_rule_with(
        json!({"name": "slow", "trigger": {"type": "event", "events": ["ping"]},
        "webhook": {"url": receiver.url("/"), "timeout_ms": 200}}),
    );
    let event = app.ingest(&json!({"type": "ping"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = app.wait_settled(&event, WAIT).remove(0);
    assert_eq!(d["status"], "failed");
    let attempt = &app.delivery(d["id"].as_str().unwrap())["attempts"][0];
    assert_eq!(attempt["error_kind"], "timeout", "{attempt}");
    assert!(attempt["duration_ms"].as_u64().unwrap() < 1500);
}

#[test]
fn a_refused_connection_is_a_connect_error() {
    let app = spawn_app_with(|c| c.retry.max_attempts = 1);
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    app.create_rule(&format!("http://127.0.0.1:{port}/"), &["ping"]);
    let event = app.ingest(&json!({"type": "ping"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = app.wait_settled(&event, WAIT).remove(0);
    let attempt = &app.delivery(d["id"].as_str().unwrap())["attempts"][0];
    assert_eq!(attempt["error_kind"], "connect", "{attempt}");
    assert_eq!(attempt["status_code"], Value::Null);
}

#[test]
fn max_concurrency_limits_requests_in_flight_per_rule() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(200).delay(Duration::from_millis(300)));
    app.create_rule_with(json!({"name": "two", "max_concurrency": 2,
        "trigger": {"type": "event", "events": ["ping"]}, "webhook": {"url": receiver.url("/")}}));
    let started = Instant::now();
    for _ in 0..6 {
        assert_eq!(app.ingest(&json!({"type": "ping"})).status, 202);
    }
    let got = receiver.wait_for(6, WAIT);
    // With two in flight and 300 ms each, the third request can only start once the first
    // finished: any three consecutive arrivals span at least one full response time.
    for w in got.windows(3) {
        let span = w[2].at - w[0].at;
        assert!(
            span >= Duration::from_millis(250),
            "three requests overlapped within {span:?}"
        );
    }
    // The sixth request arrives once two rounds of 300 ms have finished.
    assert!(started.elapsed() >= Duration::from_millis(550));
}

/// Workers are woken one at a time (each one that takes a job wakes the next while more may
/// start): a burst of fan-out must still reach every free worker at once, not one each
/// worker re-check (a second) later.
#[test]
fn a_burst_goes_out_on_as_many_workers_as_its_rules_allow_at_once() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(200).delay(Duration::from_millis(500)));
    for i in 0..4 {
        app.create_rule_with(json!({"name": format!("fan {i}"), "max_concurrency": 2,
            "trigger": {"type": "event", "events": ["burst"]}, "webhook": {"url": receiver.url("/")}}));
    }
    // Two events, four rules: eight deliveries, two per rule, all of which may go at once.
    for _ in 0..2 {
        assert_eq!(app.ingest(&json!({"type": "burst"})).status, 202);
    }
    let got = receiver.wait_for(8, WAIT);
    let span = got[7].at - got[0].at;
    assert!(
        span < Duration::from_millis(400),
        "the eight requests should overlap, but the last came {span:?} after the first"
    );
}

#[test]
fn a_failed_delivery_can_be_resent_by_hand() {
    let app = spawn_app_with(|c| c.retry.max_attempts = 2);
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(500));
    app.create_rule(&receiver.url("/"), &["ping"]);
    let event = app.ingest(&json!({"type": "ping"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let d = app.wait_settled(&event, WAIT).remove(0);
    assert_eq!(d["status"], "failed");
    let id = d["id"].as_str().unwrap();

    receiver.set_default(Reply::status(200));
    let resp = app.post(&format!("/api/v1/deliveries/{id}/redeliver"), &json!({}));
    assert_eq!(resp.status, 202, "{}", resp.text);
    assert_eq!(resp.body["id"], id);
    assert_eq!(resp.body["status"], "pending");
    receiver.wait_for(3, WAIT);
    let done = wait_until(WAIT, "the re-send to succeed", || {
        let d = app.delivery(id);
        (d["status"] == "succeeded").then_some(d)
    });
    assert_eq!(done["attempts"].as_array().unwrap().len(), 3);
    assert_eq!(done["attempts"][2]["number"], 3);

    // A succeeded delivery can be sent again too; one that is still open cannot.
    assert_eq!(
        app.post(&format!("/api/v1/deliveries/{id}/redeliver"), &json!({}))
            .status,
        202
    );
    let again = app.post(&format!("/api/v1/deliveries/{id}/redeliver"), &json!({}));
    if again.status != 202 {
        again.assert_error(409);
    }
    assert_eq!(
        app.post(
            "/api/v1/deliveries/dlv_0000000000000000000000000000/redeliver",
            &json!({})
        )
        .status,
        404
    );
}

#[test]
fn failed_deliveries_of_a_rule_are_resent_in_bulk() {
    let app = spawn_app_with(|c| c.retry.max_attempts = 1);
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(500));
    let rule = app.create_rule(&receiver.url("/"), &["ping"]);
    let rule_id = rule["id"].as_str().unwrap();
    let since = "2020-01-01T00:00:00Z";
    let events: Vec<String> = (0..3)
        .map(|_| {
            app.ingest(&json!({"type": "ping"})).body["id"]
                .as_str()
                .unwrap()
                .to_owned()
        })
        .collect();
    for e in &events {
        assert_eq!(app.wait_settled(e, WAIT)[0]["status"], "failed");
    }
    receiver.set_default(Reply::status(200));
    let resp = app.post(
        &format!("/api/v1/rules/{rule_id}/redeliver-failed"),
        &json!({"since": since}),
    );
    assert_eq!(resp.status, 202, "{}", resp.text);
    assert_eq!(resp.body["redelivered"], 3);
    receiver.wait_for(6, WAIT);
    for e in &events {
        assert_eq!(app.wait_settled(e, WAIT)[0]["status"], "succeeded");
    }
    // Nothing failed is left, so a second bulk re-send does nothing.
    let resp = app.post(
        &format!("/api/v1/rules/{rule_id}/redeliver-failed"),
        &json!({"since": since}),
    );
    assert_eq!(resp.body["redelivered"], 0);
    app.post(
        &format!("/api/v1/rules/{rule_id}/redeliver-failed"),
        &json!({}),
    )
    .assert_error(400);
    app.post(
        &format!("/api/v1/rules/{rule_id}/redeliver-failed"),
        &json!({"since": "yesterday"}),
    )
    .assert_error(400);
}

#[test]
fn test_send_goes_out_once_and_is_logged_as_a_test() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(500));
    let rule = app.create_rule(&receiver.url("/"), &["member:created"]);
    let rule_id = rule["id"].as_str().unwrap();
    let resp = app.post(&format!("/api/v1/rules/{rule_id}/test"), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.body["test"], true);
    assert_eq!(resp.body["status"], "failed", "a test is not retried");
    assert_eq!(resp.body["attempts"].as_array().unwrap().len(), 1);
    assert_eq!(resp.body["attempts"][0]["status_code"], 500);
    let got = receiver.wait_for(1, WAIT);
    assert_eq!(
        got[0].body_json()["event"],
        "member:created",
        "the rule's event type is used"
    );
    assert!(
        got[0].body_json()["member"].is_object(),
        "with the sample data"
    );
    assert_eq!(receiver.expect_quiet(Duration::from_millis(500)), 1);

    receiver.set_default(Reply::status(200));
    let resp = app.post(
        &format!("/api/v1/rules/{rule_id}/test"),
        &json!({"event_type": "ping", "data": {"hello": "world"}}),
    );
    assert_eq!(resp.body["status"], "succeeded");
    assert_eq!(receiver.wait_for(2, WAIT)[1].body_json()["hello"], "world");
    let listed = app.get(&format!("/api/v1/deliveries?rule_id={rule_id}"));
    assert_eq!(listed.body["data"].as_array().unwrap().len(), 2);
    assert!(
        listed.body["data"]
            .as_array()
            .unwrap()
            .iter()
            .all(|d| d["test"] == true)
    );
    app.post(
        &format!("/api/v1/rules/{rule_id}/test"),
        &json!({"event_type": "Bad Type"}),
    )
    .assert_error(400);
    app.post(
        &format!("/api/v1/rules/{rule_id}/test"),
        &json!({"nope": 1}),
    )
    .assert_error(400);
}

#[test]
fn preview_renders_without_sending() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let rule = app.create_rule_with(
        json!({"name": "p", "trigger": {"type": "event", "events": ["ping"]},
        "webhook": {"url": receiver.url("/x"), "headers": {"X-Team": "front desk"},
                    "secret_headers": {"Authorization": "Bearer hunter2"}}}),
    );
    let resp = app.post(
        &format!("/api/v1/rules/{}/preview", rule["id"].as_str().unwrap()),
        &json!({}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.body["url"], receiver.url("/x").as_str());
    assert_eq!(resp.body["method"], "POST");
    assert_eq!(resp.body["headers"]["X-Team"], "front desk");
    assert_eq!(resp.body["headers"]["Authorization"], "********");
    assert!(
        resp.body["headers"]["X-Webhook-Signature"]
            .as_str()
            .unwrap()
            .starts_with("t=")
    );
    let body: Value = serde_json::from_str(resp.body["body"].as_str().unwrap()).unwrap();
    assert_eq!(body["event"], "ping");
    assert!(!resp.text.contains("hunter2"));
    assert_eq!(receiver.expect_quiet(Duration::from_millis(300)), 0);
}

#[test]
fn an_idempotency_key_makes_a_repeated_post_safe() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    app.create_rule(&receiver.url("/"), &["ping"]);
    let first = app.ingest(&json!({"type": "ping", "idempotency_key": "order-1"}));
    assert_eq!(first.status, 202);
    let again = app.ingest(&json!({"type": "ping", "idempotency_key": "order-1"}));
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["id"], first.body["id"]);
    assert_eq!(again.body["deliveries"], 0);
    assert_eq!(again.body["duplicate"], true);
    // The header form names the same key.
    let key = app.ingest_key.clone();
    let via_header = app.raw(
        "POST",
        "/api/v1/events",
        Some(&key),
        Some(br#"{"type":"ping"}"#),
        &[("Idempotency-Key", "order-1")],
    );
    assert_eq!(via_header.status, 200);
    assert_eq!(via_header.body["id"], first.body["id"]);
    let other = app.ingest(&json!({"type": "ping", "idempotency_key": "order-2"}));
    assert_eq!(other.status, 202);
    receiver.wait_for(2, WAIT);
    assert_eq!(receiver.expect_quiet(Duration::from_millis(300)), 2);
    let mismatch = app.raw(
        "POST",
        "/api/v1/events",
        Some(&key),
        Some(br#"{"type":"ping","idempotency_key":"a"}"#),
        &[("Idempotency-Key", "b")],
    );
    mismatch.assert_error(400);
}

#[test]
fn the_delivery_log_filters_and_pages_newest_first() {
    let app = spawn_app_with(|c| c.retry.max_attempts = 1);
    let ok = TestReceiver::start();
    let bad = TestReceiver::start();
    bad.set_default(Reply::status(500));
    let ok_rule = app.create_rule(&ok.url("/"), &["member:*"]);
    let bad_rule = app.create_rule(&bad.url("/"), &["call:completed"]);
    let mut events = Vec::new();
    for i in 0..7 {
        let t = if i % 2 == 0 {
            "member:created"
        } else {
            "member:updated"
        };
        events.push(
            app.ingest(&json!({"type": t, "data": {"n": i}})).body["id"]
                .as_str()
                .unwrap()
                .to_owned(),
        );
    }
    let failed = app.ingest(&json!({"type": "call:completed"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    for e in events.iter().chain([&failed]) {
        app.wait_settled(e, WAIT);
    }

    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    for _ in 0..10 {
        let q = match &cursor {
            Some(c) => format!(
                "/api/v1/deliveries?rule_id={}&limit=3&cursor={c}",
                ok_rule["id"].as_str().unwrap()
            ),
            None => format!(
                "/api/v1/deliveries?rule_id={}&limit=3",
                ok_rule["id"].as_str().unwrap()
            ),
        };
        let page = app.get(&q);
        assert_eq!(page.status, 200, "{}", page.text);
        seen.extend(
            page.body["data"]
                .as_array()
                .unwrap()
                .iter()
                .map(|d| d["event_id"].as_str().unwrap().to_owned()),
        );
        match page.body["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut newest_first = events.clone();
    newest_first.reverse();
    assert_eq!(seen, newest_first, "every delivery once, newest first");

    let failed_list = app.get("/api/v1/deliveries?status=failed").body;
    assert_eq!(failed_list["data"].as_array().unwrap().len(), 1);
    assert_eq!(failed_list["data"][0]["rule_id"], bad_rule["id"]);
    let updated = app.get("/api/v1/deliveries?event_type=member:updated").body;
    assert_eq!(updated["data"].as_array().unwrap().len(), 3);
    let none = app
        .get("/api/v1/deliveries?until=2020-01-01T00:00:00Z")
        .body;
    assert_eq!(none["data"].as_array().unwrap().len(), 0);
    let all = app
        .get("/api/v1/deliveries?since=2020-01-01T00:00:00Z&limit=250")
        .body;
    assert_eq!(all["data"].as_array().unwrap().len(), 8);

    let event = app.get(&format!("/api/v1/events/{failed}"));
    assert_eq!(event.status, 200);
    assert_eq!(event.body["type"], "call:completed");
    assert_eq!(event.body["data"], json!({}));
    assert_eq!(event.body["deliveries"][0]["status"], "failed");
    assert!(event.body["deliveries"][0].get("attempts").is_none());
}

#[test]
fn store_bodies_false_keeps_metadata_only() {
    let app = spawn_app_with(|c| c.logs.store_bodies = false);
    let receiver = TestReceiver::start();
    app.create_rule(&receiver.url("/"), &["ping"]);
    let event = app
        .ingest(&json!({"type": "ping", "data": {"patient": "Jane Example"}}))
        .body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    assert!(receiver.wait_for(1, WAIT)[0].body_json()["patient"] == "Jane Example");
    let d = app.wait_settled(&event, WAIT).remove(0);
    let full = app.delivery(d["id"].as_str().unwrap());
    let attempt = &full["attempts"][0];
    assert_eq!(attempt["status_code"], 200);
    assert_eq!(attempt["request"]["body"], Value::Null);
    assert_eq!(attempt["response"]["body"], Value::Null);
    assert!(!full.to_string().contains("Jane Example"));
}

#[test]
fn a_deleted_rule_delivers_nothing_more() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(500));
    let rule = app.create_rule(&receiver.url("/"), &["ping"]);
    let event = app.ingest(&json!({"type": "ping"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    receiver.wait_for(1, WAIT);
    let resp = app.raw(
        "DELETE",
        &format!("/api/v1/rules/{}", rule["id"].as_str().unwrap()),
        Some(&app.admin_key.clone()),
        None,
        &[],
    );
    assert_eq!(resp.status, 204);
    let d = app.wait_settled(&event, WAIT).remove(0);
    assert_eq!(d["status"], "failed");
    let n = receiver.expect_quiet(Duration::from_millis(800));
    assert!(n <= 2, "at most the attempt already in flight, got {n}");
}

#[test]
fn a_rule_failing_for_disable_after_is_deactivated() {
    let clock = Clock::manual(now_ms());
    let app = spawn_app_with_clock(
        |c| {
            c.alerts.disable_after = Duration::from_secs(1);
            c.retry.max_attempts = 1;
        },
        clock.clone(),
    );
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(500));
    let rule = app.create_rule(&receiver.url("/"), &["ping"]);
    let path = format!("/api/v1/rules/{}", rule["id"].as_str().unwrap());
    let first = app.ingest(&json!({"type": "ping"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_settled(&first, WAIT);
    assert_eq!(
        app.get(&path).body["status"],
        "active",
        "one failure is not enough"
    );
    clock.advance(1100);
    let second = app.ingest(&json!({"type": "ping"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_settled(&second, WAIT);
    let rule = wait_until(WAIT, "the rule to be deactivated", || {
        let r = app.get(&path).body;
        (r["status"] == "inactive").then_some(r)
    });
    assert!(
        rule["status_reason"]
            .as_str()
            .unwrap()
            .contains("alerts.disable_after"),
        "{rule}"
    );
    // Turning it back on clears the reason and the clock.
    let on = app.send("PATCH", &path, &json!({"active": true}));
    assert_eq!(on.body["status"], "active");
    assert_eq!(on.body["status_reason"], Value::Null);
}

#[test]
fn retries_wait_for_the_clock_the_app_runs_on() {
    let clock = Clock::manual(now_ms());
    let app = spawn_app_with_clock(
        |c| {
            c.retry.base_delay = Duration::from_secs(60);
            c.retry.max_delay = Duration::from_secs(60);
        },
        clock.clone(),
    );
    let receiver = TestReceiver::start();
    receiver.reply_sequence(vec![Reply::status(500)]);
    app.create_rule(&receiver.url("/"), &["ping"]);
    let event = app.ingest(&json!({"type": "ping"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    receiver.wait_for(1, WAIT);
    // Longer than a worker's longest wait: the retry is a minute away on a clock that stands.
    assert_eq!(receiver.expect_quiet(Duration::from_millis(1500)), 1);
    clock.advance(59_000);
    assert_eq!(receiver.expect_quiet(Duration::from_millis(300)), 1);
    clock.advance(1_000);
    receiver.wait_for(2, WAIT);
    let d = app.wait_settled(&event, WAIT).remove(0);
    assert_eq!(d["status"], "succeeded");
    let full = app.delivery(d["id"].as_str().unwrap());
    let started = |i: usize| {
        tidings::domain::time::parse_rfc3339(full["attempts"][i]["started_at"].as_str().unwrap())
            .unwrap()
    };
    assert_eq!(
        started(1) - started(0),
        60_000,
        "attempts are stamped by the clock"
    );
}
