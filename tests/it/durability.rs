//! Nothing accepted is lost (SPEC §5 at-least-once): the real binary is `kill -9`ed while
//! deliveries are in flight or just after ingest, restarted on the same data dir, and every
//! accepted event still reaches its receiver; the database lock and idempotency keys hold
//! across processes and restarts.

use std::collections::BTreeSet;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{Resp, wait_until};
use crate::support::process::{
    Scratch, Served, create_key, fast_retry_config, request, request_with_headers, run, tidings,
};
use crate::support::receiver::{Reply, TestReceiver};

/// Generous bound for "eventually" after a restart.
const ARRIVAL_TIMEOUT: Duration = Duration::from_secs(60);

/// Enough attempts that no delivery can fail for good before the test lets it succeed.
const PATIENT_ATTEMPTS: u32 = 1000;

fn create_rule(served: &Served, key: &str, url: &str) -> Value {
    let resp = request(
        "POST",
        &served.url("/api/v1/rules"),
        Some(key),
        Some(&json!({
            "name": "durability",
            "trigger": {"type": "event", "events": ["order:*"]},
            "webhook": {"url": url},
        })),
    );
    assert_eq!(resp.status, 201, "{}", resp.text);
    resp.body
}

fn ingest(served: &Served, key: &str, event: &Value) -> Resp {
    request(
        "POST",
        &served.url("/api/v1/events"),
        Some(key),
        Some(event),
    )
}

/// Posts `count` events (`data.n` = 0..count) from `threads` threads; every answer must be
/// 202 with an event id and one delivery. Returns the ids.
fn ingest_many(served: &Served, key: &str, count: usize, threads: usize) -> BTreeSet<String> {
    let ids: Vec<String> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..threads)
            .map(|t| {
                s.spawn(move || {
                    (t..count)
                        .step_by(threads)
                        .map(|n| {
                            let resp = ingest(
                                served,
                                key,
                                &json!({"type": "order:created", "data": {"n": n}}),
                            );
                            assert_eq!(resp.status, 202, "event {n}: {}", resp.text);
                            assert_eq!(resp.body["deliveries"], 1, "event {n}: {}", resp.text);
                            let id = resp.body["id"]
                                .as_str()
                                .unwrap_or_else(|| panic!("202 without an id: {}", resp.text));
                            assert!(id.starts_with("evt_"), "{id}");
                            id.to_owned()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        workers
            .into_iter()
            .flat_map(|w| w.join().unwrap())
            .collect()
    });
    let unique: BTreeSet<String> = ids.iter().cloned().collect();
    assert_eq!(unique.len(), count, "event ids must be distinct");
    unique
}

/// Event ids (the flat payload's `id`) of the requests recorded from index `from` on.
fn ids_received_since(receiver: &TestReceiver, from: usize) -> BTreeSet<String> {
    receiver.requests()[from..]
        .iter()
        .filter_map(|r| r.body_json()["id"].as_str().map(str::to_owned))
        .collect()
}

/// Waits until every id in `expected` has arrived at `receiver` since index `from`.
fn wait_all_arrive(receiver: &TestReceiver, from: usize, expected: &BTreeSet<String>) {
    let mut missing = expected.len();
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        wait_until(
            ARRIVAL_TIMEOUT,
            "every accepted event to arrive after the restart",
            || {
                let got = ids_received_since(receiver, from);
                missing = expected.difference(&got).count();
                (missing == 0).then_some(())
            },
        );
    }));
    assert!(
        outcome.is_ok(),
        "{missing} of {} accepted events never arrived after the restart",
        expected.len()
    );
}

/// Every event's one delivery ends `succeeded` (read through the restarted server's API).
fn assert_all_succeeded(served: &Served, key: &str, ids: &BTreeSet<String>) {
    for id in ids {
        wait_until(
            Duration::from_secs(30),
            &format!("{id}'s delivery to be succeeded"),
            || {
                let resp = request(
                    "GET",
                    &served.url(&format!("/api/v1/events/{id}")),
                    Some(key),
                    None,
                );
                assert_eq!(resp.status, 200, "{}", resp.text);
                let deliveries = resp.body["deliveries"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default();
                assert_eq!(deliveries.len(), 1, "{}", resp.text);
                (deliveries[0]["status"] == "succeeded").then_some(())
            },
        );
    }
}

#[test]
fn kill_9_while_deliveries_are_retrying_loses_no_accepted_event() {
    const EVENTS: usize = 200;
    let scratch = Scratch::new("dur-retrying");
    let data = scratch.path("data");
    let config = scratch.write("tidings.toml", &fast_retry_config(PATIENT_ATTEMPTS));
    let args = ["--dev", "--config", config.to_str().unwrap()];
    let key = create_key(&data, "admin");

    // Every attempt is held 100 ms and then refused, so at the kill some requests are in
    // flight and every delivery is still open (none can have succeeded yet).
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(500).delay(Duration::from_millis(100)));
    let served = Served::start(&data, &args);
    create_rule(&served, &key, &receiver.url("/hook"));
    let ids = ingest_many(&served, &key, EVENTS, 4);
    wait_until(Duration::from_secs(30), "attempts to be under way", || {
        (receiver.count() >= 40 && receiver.open_connections() > 0).then_some(())
    });
    served.kill9();

    // Requests recorded from here on are answered 200 (reply chosen when recorded; the old
    // process is reaped, so nothing else is sending).
    receiver.set_default(Reply::status(200));
    let mark = receiver.count();
    let served = Served::start(&data, &args);
    wait_all_arrive(&receiver, mark, &ids);
    assert_all_succeeded(&served, &key, &ids);
}

#[test]
fn kill_9_right_after_the_last_202_loses_no_accepted_event() {
    const EVENTS: usize = 200;
    let scratch = Scratch::new("dur-ingest");
    let data = scratch.path("data");
    let config = scratch.write("tidings.toml", &fast_retry_config(PATIENT_ATTEMPTS));
    let args = ["--dev", "--config", config.to_str().unwrap()];
    let key = create_key(&data, "admin");

    // The receiver is "down" (503 to everything) until after the restart.
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(503));
    let served = Served::start(&data, &args);
    create_rule(&served, &key, &receiver.url("/hook"));
    let ids = ingest_many(&served, &key, EVENTS, 4);
    served.kill9();

    receiver.set_default(Reply::status(200));
    let mark = receiver.count();
    let served = Served::start(&data, &args);
    wait_all_arrive(&receiver, mark, &ids);
    assert_all_succeeded(&served, &key, &ids);
}

/// Posts events to `url` until the server stops answering (or `max` are accepted); returns
/// the ids of those answered 202. Transport errors end the loop; any other answer fails.
fn ingest_until_refused(
    url: &str,
    key: &str,
    thread: usize,
    max: usize,
    accepted: &AtomicUsize,
) -> Vec<String> {
    let agent = crate::support::app::client();
    let mut acked = Vec::new();
    for n in 0..max {
        let body =
            serde_json::to_vec(&json!({"type": "order:created", "data": {"t": thread, "n": n}}))
                .unwrap();
        let Ok(resp) = agent
            .post(url)
            .header("Authorization", format!("Bearer {key}"))
            .header("Content-Type", "application/json")
            .send(&body[..])
        else {
            break;
        };
        let status = resp.status().as_u16();
        let Ok(text) = resp.into_body().read_to_string() else {
            break;
        };
        assert_eq!(status, 202, "{text}");
        let body: Value = serde_json::from_str(&text).unwrap();
        acked.push(
            body["id"]
                .as_str()
                .unwrap_or_else(|| panic!("202 without an id: {text}"))
                .to_owned(),
        );
        accepted.fetch_add(1, Ordering::SeqCst);
    }
    acked
}

#[test]
fn kill_9_in_the_middle_of_ingest_loses_no_event_that_got_a_202() {
    const THREADS: usize = 4;
    const MAX_PER_THREAD: usize = 5_000;
    let scratch = Scratch::new("dur-mid-ingest");
    let data = scratch.path("data");
    let config = scratch.write("tidings.toml", &fast_retry_config(PATIENT_ATTEMPTS));
    let args = ["--dev", "--config", config.to_str().unwrap()];
    let key = create_key(&data, "admin");

    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(503));
    let served = Served::start(&data, &args);
    create_rule(&served, &key, &receiver.url("/hook"));
    let url = served.url("/api/v1/events");
    let accepted = AtomicUsize::new(0);
    let acked: BTreeSet<String> = std::thread::scope(|s| {
        let posters: Vec<_> = (0..THREADS)
            .map(|t| {
                let (url, key, accepted) = (url.clone(), key.clone(), &accepted);
                s.spawn(move || ingest_until_refused(&url, &key, t, MAX_PER_THREAD, accepted))
            })
            .collect();
        // Kill while all posters are still sending (each request is 202'd only once stored).
        wait_until(Duration::from_secs(60), "150 events to be accepted", || {
            (accepted.load(Ordering::SeqCst) >= 150).then_some(())
        });
        served.kill9();
        posters
            .into_iter()
            .flat_map(|p| p.join().unwrap())
            .collect()
    });
    assert!(
        acked.len() >= 150 && acked.len() < THREADS * MAX_PER_THREAD,
        "the kill must land mid-ingest ({} accepted)",
        acked.len()
    );

    receiver.set_default(Reply::status(200));
    let mark = receiver.count();
    let served = Served::start(&data, &args);
    wait_all_arrive(&receiver, mark, &acked);
    assert_all_succeeded(&served, &key, &acked);
}

#[test]
fn a_second_process_on_a_held_data_dir_is_refused_with_a_plain_message() {
    let scratch = Scratch::new("dur-lock");
    let data = scratch.path("data");
    let key = create_key(&data, "admin");
    let served = Served::start(&data, &["--dev"]);

    let says_in_use = |text: &str| {
        let lower = text.to_lowercase();
        lower.contains("in use")
            && (lower.contains("tidings serve") || lower.contains("api") || lower.contains("ui"))
    };

    // `key create` while the server holds the database.
    let mut cmd = tidings();
    cmd.arg("key")
        .arg("create")
        .arg("--data-dir")
        .arg(&data)
        .args(["--role", "admin", "--name", "second"]);
    let ran = run(cmd);
    assert!(!ran.success(), "{ran:?}");
    assert!(
        ran.stdout.trim().is_empty(),
        "no key may be printed: {ran:?}"
    );
    assert!(
        says_in_use(&ran.stderr),
        "not a plain 'in use' message: {}",
        ran.stderr
    );
    assert!(
        !ran.stderr.contains("DatabaseAlreadyOpen"),
        "internal error names leak: {}",
        ran.stderr
    );

    // A second `serve` on the same data dir.
    let mut second = Served::spawn(&data, &["--dev"], &[]);
    let status = second.wait_exit();
    assert!(!status.success(), "a second serve must exit with an error");
    assert!(
        says_in_use(&second.log()),
        "not a plain 'in use' message: {}",
        second.log()
    );

    // The first server is unharmed and still answers with its key.
    let resp = request("GET", &served.url("/api/v1/rules"), Some(&key), None);
    assert_eq!(resp.status, 200, "{}", resp.text);

    // Once it is gone (even by kill -9) the lock is released.
    served.kill9();
    let again = create_key(&data, "ingest");
    assert!(again.starts_with("tdk_"));
}

#[test]
fn idempotency_key_survives_kill_9_and_restart() {
    let scratch = Scratch::new("dur-idem");
    let data = scratch.path("data");
    let key = create_key(&data, "admin");
    let served = Served::start(&data, &["--dev"]);
    let event = json!({"type": "order:created", "data": {"n": 1}, "idempotency_key": "k1"});
    let first = ingest(&served, &key, &event);
    assert_eq!(first.status, 202, "{}", first.text);
    let original = first.body["id"]
        .as_str()
        .expect("202 carries an id")
        .to_owned();
    served.kill9();

    let served = Served::start(&data, &["--dev"]);
    let again = ingest(&served, &key, &event);
    assert_eq!(again.status, 200, "{}", again.text);
    assert_eq!(again.body["id"], original.as_str(), "{}", again.text);
    assert_eq!(again.body["duplicate"], true, "{}", again.text);
    assert_eq!(again.body["deliveries"], 0, "{}", again.text);

    // The same key sent as a header names the same event; the event itself is still readable.
    let by_header = request_with_headers(
        "POST",
        &served.url("/api/v1/events"),
        Some(&key),
        Some(&json!({"type": "order:created", "data": {"n": 1}})),
        &[("Idempotency-Key", "k1")],
    );
    assert_eq!(by_header.status, 200, "{}", by_header.text);
    assert_eq!(
        by_header.body["id"],
        original.as_str(),
        "{}",
        by_header.text
    );
    assert_eq!(by_header.body["duplicate"], true, "{}", by_header.text);
    let stored = request(
        "GET",
        &served.url(&format!("/api/v1/events/{original}")),
        Some(&key),
        None,
    );
    assert_eq!(stored.status, 200, "{}", stored.text);
    assert_eq!(stored.body["data"]["n"], 1, "{}", stored.text);

    let other = ingest(
        &served,
        &key,
        &json!({"type": "order:created", "data": {}, "idempotency_key": "k2"}),
    );
    assert_eq!(other.status, 202, "{}", other.text);
    assert_ne!(other.body["id"], original.as_str());
}
