//! One slow receiver must not hold up every other rule: rules whose receivers accept and
//! never answer (each attempt bounded by the rule's short `timeout_ms`) share the delivery
//! workers with a healthy rule, whose deliveries still arrive promptly — fair turns between
//! rules, a cap per destination, a reserve for rules with nothing in flight, and a circuit
//! breaker for rules whose attempts keep timing out.

use std::time::{Duration, Instant};

use serde_json::json;

use crate::support::app::{spawn_app, wait_until};
use crate::support::receiver::{Reply, TestReceiver};

/// The figure: 5 ms median when alone; this bound is what "not held up" means here.
const HEALTHY_P90: Duration = Duration::from_secs(2);
/// Rules whose receivers hang, each on its own receiver so the per-destination cap alone
/// cannot save the healthy rule.
const HANGING: usize = 6;

#[test]
fn a_healthy_rule_stays_prompt_while_other_rules_hang() {
    let app = spawn_app();
    // Receivers that accept and never answer, each with a rule that may run 64 at once:
    // together they could take every worker (6 × 8 per destination > 32).
    let hanging: Vec<TestReceiver> = (0..HANGING)
        .map(|_| {
            let r = TestReceiver::start_with(false);
            r.set_default(Reply::status(200).delay(Duration::from_secs(60)));
            r
        })
        .collect();
    for (n, receiver) in hanging.iter().enumerate() {
        app.create_rule_with(json!({
            "name": format!("hangs {n}"),
            "max_concurrency": 64,
            "trigger": {"type": "event", "events": ["hang.*"]},
            "webhook": {"url": receiver.url("/"), "timeout_ms": 1_500},
        }));
    }
    let healthy = TestReceiver::start();
    app.create_rule(&healthy.url("/ok"), &["ok.*"]);

    // A backlog for the hanging rules first: 40 events, 40 deliveries to each.
    for n in 0..40 {
        let resp = app.ingest(&json!({"type": "hang.job", "data": {"n": n}}));
        assert_eq!(resp.status, 202, "{}", resp.text);
    }
    // Then the healthy rule's events, one every 100 ms for about 10 s, timed from the post
    // to the receiver reading the request.
    let samples = 100;
    let mut posted = Vec::with_capacity(samples);
    let started = Instant::now();
    for n in 0..samples {
        posted.push(Instant::now());
        let resp = app.ingest(&json!({"type": "ok.ping", "data": {"n": n}}));
        assert_eq!(resp.status, 202, "{}", resp.text);
        // More hanging work keeps arriving meanwhile.
        if n % 10 == 0 {
            app.ingest(&json!({"type": "hang.job", "data": {"n": 1000 + n}}));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let arrived = healthy.wait_for(samples, Duration::from_secs(15));
    let mut latencies: Vec<Duration> = arrived
        .iter()
        .map(|r| {
            let n = usize::try_from(r.body_json()["n"].as_u64().unwrap()).unwrap();
            r.at.saturating_duration_since(posted[n])
        })
        .collect();
    latencies.sort();
    let p50 = latencies[latencies.len() / 2];
    let p90 = latencies[latencies.len() * 9 / 10];
    eprintln!(
        "healthy rule with {HANGING} hanging rules: p50 {p50:?}, p90 {p90:?}, max {:?} ({} samples)",
        latencies.last().unwrap(),
        latencies.len()
    );
    assert!(p90 < HEALTHY_P90, "p50 {p50:?}, p90 {p90:?}");
    assert!(started.elapsed() < Duration::from_secs(30));

    // The hanging rules were tried, not dropped: their breakers hold what is left back
    // (waiting, not failed), and /readyz does not blame saturation on them.
    assert!(hanging.iter().all(|r| r.count() > 0));
    let ready = wait_until(Duration::from_secs(5), "/readyz", || {
        let r = app.raw("GET", "/readyz", None, None, &[]);
        (r.status == 200).then_some(r)
    });
    assert_eq!(ready.body["checks"]["deliveries_on_time"], true);
}
