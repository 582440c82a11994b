//! Several nodes on one PostgreSQL store (SPEC §10), as an operator runs them: real
//! `tidings serve` processes sharing a database of their own on the server
//! `TIDINGS_TEST_POSTGRES` names (`tests/pg_cluster.sh` starts a throwaway one). Without it
//! these skip, unless `TIDINGS_REQUIRE_EXTERNAL=1`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use crate::support::app::wait_until;
use crate::support::postgres::TestDb;
use crate::support::process::{Scratch, Served, fast_retry_config, request, run, tidings};
use crate::support::receiver::{Reply, TestReceiver};
use crate::support::ui::Browser;

/// Every node of one store shares the master key.
const MASTER_KEY: &str = "1111111111111111111111111111111111111111111111111111111111111111";
/// The load of the kill test, posted by this many threads at once.
const EVENTS: usize = 5_000;
const SENDERS: usize = 4;
/// Short, so the survivor takes over a dead node's deliveries within the test.
const LEASE: &str = "2s";

/// A node's environment: the shared store and key.
fn node_env(db: &TestDb) -> Vec<(&'static str, String)> {
    vec![
        ("TIDINGS_STORE_URL", db.url.clone()),
        ("TIDINGS_MASTER_KEY", MASTER_KEY.to_owned()),
        ("TIDINGS_STORE_LEASE", LEASE.to_owned()),
    ]
}

/// `tidings serve --dev` on the shared store, with its own (empty) data dir.
fn start_node(scratch: &Scratch, name: &str, db: &TestDb, config: &str) -> Served {
    let config = scratch.write(&format!("{name}.toml"), config);
    let env = node_env(db);
    let env: Vec<(&str, &str)> = env.iter().map(|(k, v)| (*k, v.as_str())).collect();
    Served::start_with_env(
        &scratch.path(name),
        &["--dev", "--config", config.to_str().unwrap()],
        &env,
    )
}

/// `tidings key create` against the shared store (no server needed, none stopped).
fn create_key(scratch: &Scratch, db: &TestDb) -> String {
    let mut cmd = tidings();
    cmd.args(["key", "create", "--role", "admin", "--name", "cli admin"])
        .arg("--data-dir")
        .arg(scratch.path("cli"))
        .env("TIDINGS_STORE_URL", &db.url);
    let ran = run(cmd);
    assert!(ran.success(), "key create failed: {ran:?}");
    ran.stdout.trim().to_owned()
}

fn create_rule(node: &Served, key: &str, url: &str, events: &[&str]) -> Value {
    let resp = request(
        "POST",
        &node.url("/api/v1/rules"),
        Some(key),
        Some(&json!({
            "name": "shared",
            "trigger": {"type": "event", "events": events},
            "webhook": {"url": url},
        })),
    );
    assert_eq!(resp.status, 201, "{}", resp.text);
    resp.body
}

/// Posts an event; its status (0 when nothing answered: a node that is gone).
fn post_event(node_port: u16, key: &str, n: usize) -> u16 {
    let url = format!("http://127.0.0.1:{node_port}/api/v1/events");
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(10)))
        .build()
        .new_agent();
    agent
        .post(&url)
        .header("Authorization", format!("Bearer {key}"))
        .header("Content-Type", "application/json")
        .send(json!({"type": "order:placed", "data": {"n": n}}).to_string())
        .map_or(0, |r| r.status().as_u16())
}

#[test]
fn a_rule_a_key_and_a_subject_path_made_on_one_node_are_in_force_on_the_other_within_a_second() {
    let Some(db) = TestDb::new() else { return };
    let scratch = Scratch::new("pg-cache");
    let key = create_key(&scratch, &db);
    let config = fast_retry_config(3);
    let a = start_node(&scratch, "a", &db, &config);
    let b = start_node(&scratch, "b", &db, &config);
    let receiver = TestReceiver::start();

    // Both nodes already answer for the key made before they started; the rule is new.
    create_rule(&a, &key, &receiver.url("/hook"), &["order:*"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(post_event(b.port, &key, 1), 202);
    wait_until(Duration::from_secs(20), "B to deliver by A's rule", || {
        (receiver.count() == 1).then_some(())
    });

    // A key made on A works on B within the second too.
    let made = request(
        "POST",
        &a.url("/api/v1/api-keys"),
        Some(&key),
        Some(&json!({"name": "made on a", "role": "ingest"})),
    );
    assert_eq!(made.status, 201, "{}", made.text);
    let new_key = made.body["key"].as_str().expect("the new key").to_owned();
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(post_event(b.port, &new_key, 2), 202);
    wait_until(Duration::from_secs(20), "B to deliver event 2", || {
        (receiver.count() == 2).then_some(())
    });

    // A type's subject path declared on A names the subject of B's events within the second.
    let declared = request(
        "POST",
        &a.url("/api/v1/event-types"),
        Some(&key),
        Some(&json!({"name": "order:placed", "subject_path": "n"})),
    );
    assert_eq!(declared.status, 201, "{}", declared.text);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(post_event(b.port, &key, 3), 202);
    wait_until(Duration::from_secs(20), "B to deliver event 3", || {
        (receiver.count() == 3).then_some(())
    });
    // The disclosure is written with the attempt's log, which commits after the receiver
    // has the request: wait for it rather than race it.
    wait_until(
        Duration::from_secs(5),
        "event 3's disclosure, its subject from the path declared on A",
        || {
            let listed = request(
                "GET",
                &b.url("/api/v1/subjects/3/disclosures"),
                Some(&key),
                None,
            );
            assert_eq!(listed.status, 200, "{}", listed.text);
            (listed.body["data"].as_array().map(Vec::len) == Some(1)).then_some(())
        },
    );
}

#[test]
fn two_nodes_under_load_lose_nothing_when_one_is_killed() {
    let Some(db) = TestDb::new() else { return };
    let scratch = Scratch::new("pg-kill");
    let key = create_key(&scratch, &db);
    // Patient retries: nothing may fail for good while the survivor takes over.
    let config = fast_retry_config(1000);
    let a = start_node(&scratch, "a", &db, &config);
    let b = start_node(&scratch, "b", &db, &config);
    let receiver = TestReceiver::start();
    // A little slow, so A holds deliveries in flight and queued when it dies.
    receiver.set_default(Reply::status(200).delay(Duration::from_millis(5)));
    create_rule(&a, &key, &receiver.url("/hook"), &["order:*"]);
    std::thread::sleep(Duration::from_secs(1));

    let next = Arc::new(AtomicUsize::new(0));
    let (a_port, b_port) = (a.port, b.port);
    let accepted: Vec<usize> = std::thread::scope(|s| {
        let senders: Vec<_> = (0..SENDERS)
            .map(|_| {
                let (next, key) = (Arc::clone(&next), key.clone());
                s.spawn(move || {
                    let mut mine = Vec::new();
                    loop {
                        let n = next.fetch_add(1, Ordering::Relaxed);
                        if n >= EVENTS {
                            return mine;
                        }
                        // Alternate nodes; once A is gone its share is refused, not accepted.
                        let port = if n % 2 == 0 { a_port } else { b_port };
                        if post_event(port, &key, n) == 202 {
                            mine.push(n);
                        }
                    }
                })
            })
            .collect();
        // kill -9 A half-way through the load.
        let deadline = Instant::now() + Duration::from_secs(120);
        while next.load(Ordering::Relaxed) < EVENTS / 2 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
        a.kill9();
        senders
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect()
    });
    assert!(accepted.len() > EVENTS / 2, "B accepted its share");

    // Every accepted event arrives at least once, A's too: B takes them over after the lease.
    let arrivals = || {
        let mut seen = BTreeMap::<usize, usize>::new();
        for r in receiver.requests() {
            if let Some(n) = r.body_json()["n"].as_u64() {
                *seen.entry(usize::try_from(n).unwrap()).or_default() += 1;
            }
        }
        seen
    };
    let deadline = Instant::now() + Duration::from_secs(180);
    let seen = loop {
        let seen = arrivals();
        let missing: Vec<usize> = accepted
            .iter()
            .copied()
            .filter(|n| !seen.contains_key(n))
            .collect();
        if missing.is_empty() {
            break seen;
        }
        if Instant::now() > deadline {
            let mut admin = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
            let open = admin
                .query("SELECT delivery_id, due_at, node FROM open_deliveries", &[])
                .unwrap();
            let open: Vec<(String, i64, Option<String>)> = open
                .iter()
                .map(|r| (r.get(0), r.get(1), r.get(2)))
                .collect();
            panic!(
                "{} accepted events never arrived (first: {:?}); open deliveries: {open:?}\nB's log:\n{}",
                missing.len(),
                &missing[..missing.len().min(10)],
                b.log()
            );
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let duplicates: usize = seen.values().map(|c| c - 1).sum();
    eprintln!(
        "two nodes, A killed: {} accepted, all {} arrived, {duplicates} duplicate deliveries (at least once)",
        accepted.len(),
        accepted.len()
    );
    assert!(
        b.log().contains("took over open deliveries"),
        "B took A's deliveries over:\n{}",
        b.log()
    );
}

#[test]
fn readiness_follows_the_database_and_the_node_reconnects_by_itself() {
    let Some(db) = TestDb::new() else { return };
    let scratch = Scratch::new("pg-ready");
    let node = start_node(&scratch, "a", &db, &fast_retry_config(3));
    let ready = || request("GET", &node.url("/readyz"), None, None).status;
    assert_eq!(ready(), 200);

    // The database goes away: no new connections, every open one cut.
    let mut admin = db.admin();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {0} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{0}'",
            db.name
        ))
        .unwrap();
    wait_until(Duration::from_secs(30), "/readyz to say 503", || {
        (ready() == 503).then_some(())
    });

    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            db.name
        ))
        .unwrap();
    wait_until(Duration::from_secs(30), "/readyz to recover", || {
        (ready() == 200).then_some(())
    });
}

/// The database goes away while an attempt is in flight: the attempt cannot be logged, and
/// the delivery, still open in the store, is sent again once the database is back (at least
/// once: the receiver sees it twice, with one webhook id), not left until a restart.
#[test]
fn an_attempt_that_could_not_be_logged_is_sent_again_once_the_database_is_back() {
    let Some(db) = TestDb::new() else { return };
    let scratch = Scratch::new("pg-unlogged");
    let key = create_key(&scratch, &db);
    let node = start_node(&scratch, "a", &db, &fast_retry_config(5));
    let receiver = TestReceiver::start();
    receiver.reply_sequence(vec![Reply::status(200).delay(Duration::from_secs(2))]);
    create_rule(&node, &key, &receiver.url("/hook"), &["order:*"]);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(post_event(node.port, &key, 1), 202);
    receiver.wait_for(1, Duration::from_secs(20));

    // Cut while the receiver holds its answer, for longer than the node waits before it
    // sends again (10 s): the second send can take neither the rule's slot nor read the
    // delivery meanwhile, and asks again, as often as it takes.
    let mut admin = db.admin();
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {0} ALLOW_CONNECTIONS false;
             SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '{0}'",
            db.name
        ))
        .unwrap();
    std::thread::sleep(Duration::from_secs(13));
    assert_eq!(
        receiver.count(),
        1,
        "nothing is sent while the database is away"
    );
    admin
        .batch_execute(&format!(
            "ALTER DATABASE {} ALLOW_CONNECTIONS true",
            db.name
        ))
        .unwrap();

    let sent = receiver.wait_for(2, Duration::from_secs(30));
    assert_eq!(sent[0].header("webhook-id"), sent[1].header("webhook-id"));
    let log = node.log();
    assert!(log.contains("attempt could not be logged"), "{log}");
    let status = wait_until(Duration::from_secs(20), "the delivery to be logged", || {
        let listed = request("GET", &node.url("/api/v1/deliveries"), Some(&key), None);
        let status = listed.body["data"][0]["status"].as_str().map(str::to_owned);
        status.filter(|s| s == "succeeded")
    });
    assert_eq!(status, "succeeded");
}

#[test]
fn a_routine_on_three_nodes_fires_once_per_slot() {
    let Some(db) = TestDb::new() else { return };
    let scratch = Scratch::new("pg-routine");
    let key = create_key(&scratch, &db);
    let config = fast_retry_config(3);
    let nodes: Vec<Served> = ["a", "b", "c"]
        .iter()
        .map(|name| start_node(&scratch, name, &db, &config))
        .collect();
    let receiver = TestReceiver::start();
    let resp = request(
        "POST",
        &nodes[0].url("/api/v1/rules"),
        Some(&key),
        Some(&json!({
            "name": "every minute",
            "trigger": {"type": "schedule", "cron": "* * * * *", "timezone": "UTC"},
            "webhook": {"url": receiver.url("/tick")},
        })),
    );
    assert_eq!(resp.status, 201, "{}", resp.text);

    // The next minute's slot: all three nodes' schedulers reach it within moments.
    wait_until(
        Duration::from_secs(75),
        "the routine's first firing",
        || (receiver.count() >= 1).then_some(()),
    );
    std::thread::sleep(Duration::from_secs(10));
    // Grouped by slot (a new minute may begin within the wait): each slot once.
    let mut per_slot = BTreeMap::<String, usize>::new();
    for r in receiver.requests() {
        let slot = r.body_json()["occurredAt"]
            .as_str()
            .unwrap_or("?")
            .to_owned();
        *per_slot.entry(slot).or_default() += 1;
    }
    assert!(
        per_slot.values().all(|&n| n == 1),
        "one firing per slot, not one per node: {per_slot:?}"
    );
}

/// `tidings rotate-master-key` against the shared store, keys from the environment.
fn rotate(scratch: &Scratch, db: &TestDb, old: &str, new: &str) -> crate::support::process::Ran {
    let mut cmd = tidings();
    cmd.args(["rotate-master-key", "--data-dir"])
        .arg(scratch.path("cli"))
        .env("TIDINGS_STORE_URL", &db.url)
        .env("TIDINGS_STORE_LEASE", LEASE)
        .env("TIDINGS_MASTER_KEY", old)
        .env("TIDINGS_NEW_MASTER_KEY", new);
    run(cmd)
}

/// A node on the shared store with a master key of the test's choosing.
fn start_node_with_key(scratch: &Scratch, name: &str, db: &TestDb, key: &str) -> Served {
    Served::start_with_env(
        &scratch.path(name),
        &["--dev"],
        &[
            ("TIDINGS_STORE_URL", &db.url),
            ("TIDINGS_MASTER_KEY", key),
            ("TIDINGS_STORE_LEASE", LEASE),
        ],
    )
}

#[test]
fn rotation_on_postgresql_reseals_every_value_once_every_node_has_stopped() {
    let Some(db) = TestDb::new() else { return };
    let scratch = Scratch::new("pg-rotate");
    let new_key = "3333333333333333333333333333333333333333333333333333333333333333";
    let key = create_key(&scratch, &db);
    let node = start_node_with_key(&scratch, "a", &db, MASTER_KEY);
    let receiver = TestReceiver::start();
    let rule = request(
        "POST",
        &node.url("/api/v1/rules"),
        Some(&key),
        Some(&json!({
            "name": "EHR",
            "trigger": {"type": "event", "events": ["*"]},
            "webhook": {"url": receiver.url("/"), "secret_headers": {"Authorization": "Bearer ehr-1"}},
        })),
    );
    assert_eq!(rule.status, 201, "{}", rule.text);
    let rule_id = rule.body["id"].as_str().unwrap().to_owned();
    let secret_path = format!("/api/v1/rules/{rule_id}/secret");
    let secret = request("GET", &node.url(&secret_path), Some(&key), None).body["secret"].clone();
    let event = request(
        "POST",
        &node.url("/api/v1/events"),
        Some(&key),
        Some(
            &json!({"type": "patient:admitted", "subject": "member:1", "data": {"name": "Ada Quist"}}),
        ),
    );
    assert_eq!(event.status, 202, "{}", event.text);
    let event_id = event.body["id"].as_str().unwrap().to_owned();
    receiver.wait_for(1, Duration::from_secs(20));

    // Refused while a node runs, and nothing changes.
    let ran = rotate(&scratch, &db, MASTER_KEY, new_key);
    assert!(!ran.success(), "{ran:?}");
    assert!(ran.stderr.contains("stop every node"), "{}", ran.stderr);
    node.kill9();
    // The killed node counts as running until its lease has passed.
    wait_until(
        Duration::from_secs(20),
        "the rotation to be allowed",
        || {
            let ran = rotate(&scratch, &db, MASTER_KEY, new_key);
            if !ran.success() {
                assert!(ran.stderr.contains("stop every node"), "{}", ran.stderr);
            }
            ran.success().then_some(ran)
        },
    );

    // Every sealed value now opens with the new key only.
    let stored: String = db
        .client()
        .query_one(
            "SELECT row->>'data' FROM events WHERE id = $1",
            &[&event_id.as_str()],
        )
        .unwrap()
        .get(0);
    let sealed = tidings::security::crypto::Sealed::parse(&stored).expect("sealed");
    let key_of = |hex: &str| {
        let bytes: [u8; 32] = hex::decode(hex).unwrap().try_into().unwrap();
        tidings::security::crypto::MasterKey::from_bytes(&bytes)
    };
    assert!(key_of(MASTER_KEY).open(&sealed).is_err());
    assert!(
        key_of(new_key)
            .open(&sealed)
            .unwrap()
            .expose()
            .contains("Ada Quist")
    );

    // The old key is refused at start; with the new one everything reads as before.
    let mut refused = Served::spawn(
        &scratch.path("stale"),
        &["--dev"],
        &[
            ("TIDINGS_STORE_URL", &db.url),
            ("TIDINGS_MASTER_KEY", MASTER_KEY),
        ],
    );
    refused.wait_exit();
    assert!(refused.log().contains("does not open"), "{}", refused.log());
    let node = start_node_with_key(&scratch, "b", &db, new_key);
    let again = request("GET", &node.url(&secret_path), Some(&key), None);
    assert_eq!(again.body["secret"], secret, "the same signing secret");
    let read = request(
        "GET",
        &node.url(&format!("/api/v1/events/{event_id}")),
        Some(&key),
        None,
    );
    assert_eq!(read.body["data"]["name"], "Ada Quist");
    let found = request(
        "GET",
        &node.url("/api/v1/subjects/member:1/disclosures"),
        Some(&key),
        None,
    );
    assert_eq!(
        found.body["data"].as_array().unwrap().len(),
        1,
        "{}",
        found.text
    );
    let resp = request(
        "POST",
        &node.url("/api/v1/events"),
        Some(&key),
        Some(&json!({"type": "ping"})),
    );
    assert_eq!(resp.status, 202);
    let got = receiver.wait_for(2, Duration::from_secs(20));
    assert_eq!(got[1].header("authorization"), Some("Bearer ehr-1"));
}

/// `tidings user add` against the shared store.
fn add_user(scratch: &Scratch, db: &TestDb, username: &str, password: &str) {
    let mut cmd = tidings();
    cmd.args([
        "user",
        "add",
        "--role",
        "admin",
        "--username",
        username,
        "--data-dir",
    ])
    .arg(scratch.path("cli"))
    .env("TIDINGS_STORE_URL", &db.url)
    .env("TIDINGS_PASSWORD", password);
    let ran = run(cmd);
    assert!(ran.success(), "user add failed: {ran:?}");
}

#[test]
fn sign_in_limits_and_sessions_hold_across_nodes() {
    let Some(db) = TestDb::new() else { return };
    let scratch = Scratch::new("pg-sign-in");
    let password = "correct horse battery staple";
    add_user(&scratch, &db, "ops", password);
    add_user(&scratch, &db, "desk", password);
    let a = start_node(&scratch, "a", &db, "");
    let b = start_node(&scratch, "b", &db, "");

    // Failures on one node count on the other: five on A, then B refuses the right password.
    let on_a = Browser::at(&a.url(""));
    for _ in 0..5 {
        on_a.login("ops", "wrong password!!").assert_status(401);
    }
    let on_b = Browser::at(&b.url(""));
    let limited = on_b.login("ops", password);
    limited.assert_status(429);
    assert!(
        limited.text.contains("Too many failed sign-ins"),
        "{}",
        limited.text
    );

    // A session made on A is valid on B, and signing out on B ends it on A.
    let desk_a = Browser::at(&a.url(""));
    desk_a.login("desk", password).assert_status(303);
    let desk_b = Browser::at(&b.url(""));
    for (name, value) in desk_a.cookies() {
        desk_b.set_cookie(&name, &value);
    }
    let home = desk_b.get("/");
    home.assert_status(200);
    assert!(home.text.contains("desk"), "signed in on B: {}", home.text);
    desk_b.post("/logout", &[]).assert_status(303);
    let after = desk_a.get("/");
    assert!(
        after.status == 303 && after.location().starts_with("/login"),
        "signed out on A too: {} {}",
        after.status,
        after.location()
    );
}

#[test]
fn a_rules_max_concurrency_holds_for_the_nodes_together() {
    let Some(db) = TestDb::new() else { return };
    let scratch = Scratch::new("pg-concurrency");
    let key = create_key(&scratch, &db);
    let a = start_node(&scratch, "a", &db, "");
    let b = start_node(&scratch, "b", &db, "");
    // Each request is answered after 400 ms, so requests in flight together arrive together.
    let receiver = TestReceiver::start();
    receiver.set_default(Reply::status(200).delay(Duration::from_millis(400)));
    let rule = request(
        "POST",
        &a.url("/api/v1/rules"),
        Some(&key),
        Some(&json!({
            "name": "slow CRM",
            "max_concurrency": 2,
            "trigger": {"type": "event", "events": ["order:*"]},
            "webhook": {"url": receiver.url("/")},
        })),
    );
    assert_eq!(rule.status, 201, "{}", rule.text);
    std::thread::sleep(Duration::from_millis(1500)); // the rule reaches B's cache
    // Both nodes accept events, so both have deliveries of the rule to send at once.
    for n in 0..12 {
        let node = if n % 2 == 0 { &a } else { &b };
        assert_eq!(post_event(node.port, &key, n), 202);
    }
    let got = receiver.wait_for(12, Duration::from_secs(60));
    let mut arrivals: Vec<Instant> = got.iter().map(|r| r.at).collect();
    arrivals.sort();
    // With two in flight at most, any three arrivals span at least one 400 ms answer.
    for three in arrivals.windows(3) {
        let span = three[2] - three[0];
        assert!(
            span >= Duration::from_millis(300),
            "three requests within {span:?}: more than 2 in flight across the nodes"
        );
    }
}
