//! `/readyz` follows the dispatcher and the store: it fails (503) while the workers are stuck
//! on receivers that do not answer and due deliveries wait longer than
//! `alerts.dispatcher_stuck_after` (`dispatcher`) and `alerts.deliveries_delayed_after`
//! (`deliveries_on_time`), passes again once attempts finish, and fails while the database
//! cannot be written (a real EFBIG from a file-size limit, as on a full disk).

use std::time::Duration;

use serde_json::json;
use tidings::delivery::dispatcher::{RESERVED_WORKERS, WORKERS};

use crate::support::app::{Resp, TestApp, spawn_app_with, wait_until};
use crate::support::receiver::{Reply, TestReceiver};

fn readyz(app: &TestApp) -> Resp {
    app.raw("GET", "/readyz", None, None, &[])
}

#[test]
fn readyz_fails_while_the_dispatcher_is_stuck_and_passes_once_it_moves_again() {
    let app = spawn_app_with(|c| {
        c.alerts.dispatcher_stuck_after = Duration::from_millis(500);
        c.alerts.deliveries_delayed_after = Duration::from_millis(500);
        // One destination may take every worker it can here, to saturate the pool.
        c.delivery.max_workers_per_destination = WORKERS;
    });
    let ready = readyz(&app);
    assert_eq!(ready.status, 200, "{}", ready.text);
    assert_eq!(
        ready.body["checks"],
        json!({"store": true, "dispatcher": true, "deliveries_on_time": true})
    );

    // Every worker one rule may hold (all but the reserve) ends up waiting on a receiver that
    // answers only after 5 s, while more deliveries fall due behind them.
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(200).delay(Duration::from_secs(5)));
    app.create_rule_with(json!({
        "name": "slow",
        "max_concurrency": 64,
        "trigger": {"type": "event", "events": ["*"]},
        "webhook": {"url": receiver.url("/"), "timeout_ms": 30_000},
    }));
    let backlog = 8;
    for n in 0..WORKERS + backlog {
        assert_eq!(
            app.ingest(&json!({"type": "ping", "data": {"n": n}}))
                .status,
            202
        );
    }
    let held = WORKERS - RESERVED_WORKERS;
    receiver.wait_for(held, Duration::from_secs(20));
    let stuck = wait_until(
        Duration::from_secs(4),
        "/readyz to report the stuck dispatcher",
        || {
            // The two checks trip on their own clocks; wait until both have.
            let r = readyz(&app);
            (r.status == 503 && r.body["checks"]["dispatcher"] == false).then_some(r)
        },
    );
    assert_eq!(stuck.body["status"], "not_ready");
    assert_eq!(
        stuck.body["checks"],
        json!({"store": true, "dispatcher": false, "deliveries_on_time": false})
    );
    assert!(
        receiver.count() <= held,
        "the backlog waited behind the stuck workers"
    );

    // The held attempts finish; the dispatcher moves on and /readyz passes again.
    receiver.set_default(Reply::status(200));
    let ready = wait_until(Duration::from_secs(30), "/readyz to pass again", || {
        let r = readyz(&app);
        (r.status == 200).then_some(r)
    });
    assert_eq!(ready.body["checks"]["dispatcher"], true);
    assert_eq!(ready.body["checks"]["deliveries_on_time"], true);
    receiver.wait_for(WORKERS + backlog, Duration::from_secs(30));
}

#[test]
fn readyz_fails_while_the_store_cannot_write() {
    use crate::support::process::{Scratch, Served, create_key, request};
    let scratch = Scratch::new("readyz-store");
    let data_dir = scratch.path("data");
    let key = create_key(&data_dir, "admin");
    // A file-size limit makes the database's growth fail with EFBIG, as a full disk would
    // (SIGXFSZ ignored, so the write fails instead of killing the process).
    let mut served = Served::spawn_after(
        r#"trap "" XFSZ; ulimit -f 4096"#,
        &data_dir,
        &["--dev"],
        &[],
    );
    served.wait_healthy();
    let ready = request("GET", &served.url("/readyz"), None, None);
    assert_eq!(ready.status, 200, "{}", ready.text);

    let filler = "x".repeat(64 * 1024);
    let refused = (0..400).find_map(|n| {
        let r = request(
            "POST",
            &served.url("/api/v1/events"),
            Some(&key),
            Some(&json!({"type": "ping", "data": {"n": n, "filler": filler}})),
        );
        (r.status != 202).then_some(r)
    });
    let refused = refused.expect("the file-size limit is reached within 25 MiB of events");
    assert_eq!(refused.status, 500, "{}", refused.text);
    let not_ready = request("GET", &served.url("/readyz"), None, None);
    assert_eq!(not_ready.status, 503, "{}", not_ready.text);
    assert_eq!(
        not_ready.body["checks"]["store"], false,
        "{}",
        not_ready.text
    );
    assert!(served.log().contains("write"), "{}", served.log());
}
