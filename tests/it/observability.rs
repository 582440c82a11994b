//! `/metrics` in Prometheus text: ingest and attempt counters by outcome, the attempt latency
//! histogram, per-rule failures and the backlog gauges, scraped without an API key.

use std::time::Duration;

use serde_json::json;

use crate::support::app::{spawn_app_with, wait_until};
use crate::support::receiver::{Reply, TestReceiver};

/// The value of the sample line `name{labels} value` (exact name and label text).
fn sample(text: &str, series: &str) -> Option<f64> {
    text.lines().find_map(|l| {
        l.strip_prefix(series)?
            .strip_prefix(' ')?
            .split(' ')
            .next()?
            .parse()
            .ok()
    })
}

#[test]
fn metrics_count_ingest_attempts_and_failures() {
    let app = spawn_app_with(|c| c.retry.max_attempts = 1);
    let ok = TestReceiver::start();
    let bad = TestReceiver::start();
    bad.set_default(Reply::status(500));
    app.create_rule(&ok.url("/"), &["ping"]);
    let failing = app.create_rule(&bad.url("/"), &["ping"]);
    let event = app.ingest(&json!({"type": "ping"})).body["id"]
        .as_str()
        .unwrap()
        .to_owned();
    app.wait_settled(&event, Duration::from_secs(20));

    let text = wait_until(
        Duration::from_secs(10),
        "both attempts in the metrics",
        || {
            let resp = app.raw("GET", "/metrics", None, None, &[]);
            assert_eq!(resp.status, 200);
            (sample(&resp.text, "tidings_attempt_duration_seconds_count") == Some(2.0))
                .then_some(resp.text)
        },
    );
    assert_eq!(
        sample(&text, "tidings_events_ingested_total"),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"tidings_attempts_total{outcome="succeeded"}"#),
        Some(1.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, r#"tidings_attempts_total{outcome="failed"}"#),
        Some(1.0),
        "{text}"
    );
    let series = format!(
        r#"tidings_rule_failed_attempts_total{{rule_id="{}",workspace="{}"}}"#,
        failing["id"].as_str().unwrap(),
        app.store().default_workspace()
    );
    assert_eq!(sample(&text, &series), Some(1.0), "{text}");
    assert_eq!(
        sample(&text, "tidings_open_deliveries"),
        Some(0.0),
        "{text}"
    );
    assert_eq!(
        sample(&text, "tidings_oldest_due_delivery_age_seconds"),
        Some(0.0),
        "{text}"
    );
    assert!(
        text.contains("# TYPE tidings_attempt_duration_seconds histogram"),
        "{text}"
    );
}

#[test]
fn every_response_carries_a_request_id() {
    let app = crate::support::app::spawn_app();
    let agent = crate::support::app::client();
    let resp = agent.get(app.url("/healthz")).call().unwrap();
    let id = resp
        .headers()
        .get("x-request-id")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(id.starts_with("req_"), "{id}");
    let resp = agent
        .get(app.url("/api/v1/rules"))
        .header("X-Request-Id", "trace-42")
        .call()
        .unwrap();
    assert_eq!(resp.status(), 401);
    assert_eq!(resp.headers().get("x-request-id").unwrap(), "trace-42");
    let resp = agent
        .get(app.url("/healthz"))
        .header("X-Request-Id", "bad id with spaces")
        .call()
        .unwrap();
    assert_ne!(
        resp.headers().get("x-request-id").unwrap(),
        "bad id with spaces"
    );
}
