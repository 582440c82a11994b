//! The PostgreSQL backend's tests: the storage contract, each case in a database of its own
//! on the server `TIDINGS_TEST_POSTGRES` names (an admin URL; `tests/pg_cluster.sh` starts a
//! throwaway one), and what only a shared store has: nodes taking over claims, caches kept
//! true across nodes. Without the variable they skip, unless `TIDINGS_REQUIRE_EXTERNAL=1`.

use std::sync::atomic::Ordering;
use std::sync::{Arc, mpsc};
use std::task::{Context, Waker};
use std::time::Duration;

use super::engine::PgTxn;
use super::{PgOptions, PgStore};
use crate::domain::delivery::{Delivery, DeliveryStatus};
use crate::domain::rule::Rule;
use crate::domain::time::Clock;
use crate::security::crypto::Keyring;
use crate::store::contract::{
    START, attempt, block_on, delivery, event, new_event, rule, store_contract_tests,
};
use crate::store::seal::RowSeal;
use crate::store::{IngestOutcome, Store, StoreError};

/// A database made for one test, dropped (connections and all) with the guard.
pub(crate) struct TempDb {
    admin: String,
    name: String,
    pub(crate) url: String,
}

impl TempDb {
    /// A fresh database, or `None` (after saying why) where no test server is configured.
    pub(crate) fn new() -> Option<Self> {
        let Ok(admin) = std::env::var("TIDINGS_TEST_POSTGRES") else {
            let why = "TIDINGS_TEST_POSTGRES is not set (start a server with tests/pg_cluster.sh)";
            assert!(
                std::env::var("TIDINGS_REQUIRE_EXTERNAL").as_deref() != Ok("1"),
                "TIDINGS_REQUIRE_EXTERNAL=1 but the PostgreSQL tests cannot run: {why}"
            );
            eprintln!("skipped: {why}");
            return None;
        };
        let name = format!("tidings_test_{:016x}", rand::random::<u64>());
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .expect("connect to TIDINGS_TEST_POSTGRES");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        let url = with_database(&admin, &name);
        Some(Self { admin, name, url })
    }

    /// Cuts every connection to the database and refuses new ones (`away`), or lets them
    /// in again.
    fn set_away(&self, away: bool) {
        let mut client = postgres::Client::connect(&self.admin, postgres::NoTls).unwrap();
        client
            .batch_execute(&format!(
                "ALTER DATABASE {} ALLOW_CONNECTIONS {}",
                self.name, !away
            ))
            .unwrap();
        if away {
            client
                .execute(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = $1",
                    &[&self.name],
                )
                .unwrap();
        }
    }

    pub(crate) fn options(&self, lease: Duration) -> PgOptions {
        PgOptions {
            url: self.url.clone(),
            lease,
        }
    }
}

/// The admin URL with its database swapped for `name`.
fn with_database(admin: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin).expect("TIDINGS_TEST_POSTGRES is a URL");
    url.set_path(name);
    url.to_string()
}

impl Drop for TempDb {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The master key every node of a test store shares, as `TIDINGS_MASTER_KEY` would give it.
const KEY_HEX: &str = "0707070707070707070707070707070707070707070707070707070707070707";

fn keyring() -> Keyring {
    Keyring::load(std::path::Path::new("/nonexistent"), Some(KEY_HEX)).expect("a valid key")
}

fn open_pg(clock: Clock) -> Option<(Store, TempDb)> {
    let db = TempDb::new()?;
    let (store, _) = PgStore::open_with_keys(
        &db.options(Duration::from_secs(60)),
        || Ok(keyring()),
        clock,
    )
    .expect("open the PostgreSQL store");
    Some((store, db))
}

store_contract_tests!(open_pg);

/// A database from before migration 8 gets its condition-error log (and, from migration 10,
/// its table of the rarer statuses) from the deliveries already there, and the triggers
/// note the ones made after.
#[test]
fn migration_8_logs_the_condition_errors_already_there() {
    use crate::domain::delivery::DeliveryStatus;
    use crate::store::contract::{START, event, ingest_with, rule};

    let Some(db) = TempDb::new() else {
        return;
    };
    let clock = Clock::manual(START);
    let open = || {
        PgStore::open_with_keys(
            &db.options(Duration::from_secs(60)),
            || Ok(keyring()),
            clock.clone(),
        )
        .expect("open the PostgreSQL store")
        .0
    };
    let store = open();
    let ws = store.default_workspace().clone();
    let r = rule(&ws, "r", &["x"]);
    ingest_with(
        &store,
        &event(&ws, "x", START - 7),
        &[&r],
        DeliveryStatus::ConditionError,
    );
    ingest_with(
        &store,
        &event(&ws, "x", START - 6),
        &[&r],
        DeliveryStatus::Pending,
    );
    store.shutdown();
    drop(store);

    // As migration 7 left it (8, 9 and 10 undone).
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "DROP TRIGGER deliveries_log_condition_errors ON deliveries;
             DROP FUNCTION tidings_log_condition_error();
             DROP TABLE condition_error_log;
             ALTER TABLE hourly_outcomes DROP CONSTRAINT hourly_outcomes_pkey;
             ALTER TABLE hourly_outcomes DROP COLUMN node;
             ALTER TABLE hourly_outcomes ADD PRIMARY KEY (workspace_id, hour);
             DROP TRIGGER deliveries_track_status_insert ON deliveries;
             DROP TRIGGER deliveries_track_status_update ON deliveries;
             DROP TRIGGER deliveries_track_status_delete ON deliveries;
             DROP FUNCTION tidings_track_delivery_status();
             DROP TABLE delivery_statuses;
             DROP FUNCTION tidings_status_indexed(text);
             DELETE FROM tidings_schema WHERE version >= 8;",
        )
        .unwrap();
    drop(client);

    let store = open();
    ingest_with(
        &store,
        &event(&ws, "x", START + 5),
        &[&r],
        DeliveryStatus::ConditionError,
    );
    let errors = store
        .condition_errors_since(&ws, START - 3_600_000)
        .unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].count, errors[0].latest_at), (2, START + 5));
    // Migration 10 indexed the one made before it, the trigger the one made after.
    let filter = crate::store::DeliveryFilter {
        status: Some(DeliveryStatus::ConditionError),
        limit: 10,
        ..crate::store::DeliveryFilter::default()
    };
    assert_eq!(store.list_deliveries(&ws, &filter).unwrap().0.len(), 2);
    store.shutdown();
}

/// The store as its own type (not behind `Store`), for what only the PostgreSQL one has.
fn open_pg_store(clock: Clock) -> Option<(PgStore, TempDb)> {
    let db = TempDb::new()?;
    Some((open_pg_node(&db, clock), db))
}

/// A node (a store of its own, as a process has) on the database `db`.
fn open_pg_node(db: &TempDb, clock: Clock) -> PgStore {
    let options = db.options(Duration::from_secs(60));
    let pool = super::connect::pool(&options.url).expect("connect");
    let workspace = super::schema::migrate(&pool, clock.now_ms()).expect("migrate");
    let key = super::schema::check_master_key(&pool, || Ok(keyring())).expect("the key");
    PgStore::start_with_pool(
        pool,
        workspace,
        &options,
        RowSeal::new(Some(key)),
        clock,
        false,
    )
    .expect("open the PostgreSQL store")
}

/// Each node counts the deliveries it finished in its own row of the hour (so that nodes'
/// writers never wait on each other for one row), and the dashboard reads them summed.
#[test]
fn two_nodes_count_an_hour_in_rows_of_their_own_read_together() {
    let Some(db) = TempDb::new() else {
        return;
    };
    let clock = Clock::manual(START);
    let (a, b) = (open_pg_node(&db, clock.clone()), open_pg_node(&db, clock));
    let (store_a, store_b): (Store, Store) = (Arc::new(a.clone()), Arc::new(b.clone()));
    let ws = store_a.default_workspace().clone();
    let r = rule(&ws, "r", &["x"]);
    let (_, made) = ingest_round_trips(&a, &store_a, 3, &[&r]);
    attempt_round_trips(&a, &store_a, &made[..1], DeliveryStatus::Succeeded);
    attempt_round_trips(&b, &store_b, &made[1..2], DeliveryStatus::Succeeded);
    attempt_round_trips(&b, &store_b, &made[2..], DeliveryStatus::Failed);
    let hour = START.div_euclid(3_600_000) * 3_600_000;
    for store in [&store_a, &store_b] {
        assert_eq!(
            store.hourly_outcomes(&ws, START + 100, 1).unwrap(),
            [(hour, 2, 1)]
        );
    }
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let rows: i64 = client
        .query_one("SELECT count(*) FROM hourly_outcomes", &[])
        .unwrap()
        .get(0);
    assert_eq!(rows, 2, "one row per node");
}

/// Keeps the writer thread busy (in a write's completion, after its batch has committed)
/// until the returned sender is dropped or sent to: writes queued meanwhile make one batch.
fn hold_writer(store: &PgStore) -> mpsc::Sender<()> {
    let (started_tx, started) = mpsc::channel();
    let (release, wait) = mpsc::channel::<()>();
    store.writer.submit(
        |_| Ok(()),
        move |_: Result<(), StoreError>| {
            let _ = started_tx.send(());
            let _ = wait.recv();
        },
    );
    started.recv().expect("the writer ran the holding write");
    release
}

/// The writer's round trips for the writes `queue` submits (returning how many) while the
/// writer is held, so that they commit as one batch; less the batch's BEGIN and COMMIT.
fn round_trips_in_one_batch(store: &PgStore, queue: impl FnOnce() -> Box<dyn FnOnce()>) -> u64 {
    let release = hold_writer(store);
    let before = store.writer_round_trips.load(Ordering::Relaxed);
    let wait = queue();
    drop(release);
    wait();
    let trips = store.writer_round_trips.load(Ordering::Relaxed) - before;
    assert!(trips >= 2, "a batch begins and commits");
    trips - 2
}

/// Ingests `events` events of `rules` deliveries each in one batch; returns the round trips
/// of the writes (the batch's BEGIN and COMMIT not counted) and the deliveries.
fn ingest_round_trips(
    pg: &PgStore,
    store: &Store,
    events: usize,
    rules: &[&Rule],
) -> (u64, Vec<Delivery>) {
    let ws = store.default_workspace().clone();
    let mut created = Vec::new();
    let trips = round_trips_in_one_batch(pg, || {
        let mut futures: Vec<_> = (0..events)
            .map(|_| {
                let e = event(&ws, "x", START);
                let ds: Vec<Delivery> = rules
                    .iter()
                    .map(|r| delivery(&e, r, DeliveryStatus::Pending))
                    .collect();
                created.extend(ds.iter().cloned());
                store.ingest(new_event(e, ds))
            })
            .collect();
        // Polled once, each ingest is queued at the writer and waits for its commit.
        let mut cx = Context::from_waker(Waker::noop());
        for f in &mut futures {
            assert!(f.as_mut().poll(&mut cx).is_pending(), "the writer is held");
        }
        Box::new(move || {
            for f in futures {
                assert_eq!(block_on(f).unwrap(), IngestOutcome::Created);
            }
        })
    });
    (trips, created)
}

/// Records one attempt for each delivery, moving it to `status`, in one batch; returns the
/// writes' round trips.
fn attempt_round_trips(
    pg: &PgStore,
    store: &Store,
    ds: &[Delivery],
    status: DeliveryStatus,
) -> u64 {
    round_trips_in_one_batch(pg, || {
        let (tx, rx) = mpsc::channel();
        for d in ds {
            let open = status.is_open();
            let moved = Delivery {
                status,
                attempts: d.attempts + 1,
                attempts_left: u32::from(open),
                next_attempt_at: open.then_some(START + 60_000),
                updated_at: START + 100,
                ..d.clone()
            };
            let tx = tx.clone();
            let a = attempt(d.attempts + 1, START + 50, 503);
            store.record_attempt(&moved, &a, Box::new(move |r| tx.send(r).unwrap()));
        }
        let n = ds.len();
        Box::new(move || {
            for _ in 0..n {
                rx.recv_timeout(Duration::from_secs(10))
                    .expect("the attempt was recorded")
                    .unwrap();
            }
        })
    })
}

/// What the writer costs per write, in round trips to the server (the writer is the one
/// serial point of every node's writes, and each round trip is a wait): the ingests waiting
/// for the writer are one statement together, and so are the attempts.
#[test]
fn waiting_ingests_share_one_round_trip_and_so_do_waiting_attempts() {
    let Some((pg, _db)) = open_pg_store(Clock::manual(START)) else {
        return;
    };
    let store: Store = Arc::new(pg.clone());
    let ws = store.default_workspace().clone();
    let rules: Vec<Rule> = (0..3)
        .map(|i| rule(&ws, &format!("r{i}"), &["x"]))
        .collect();
    let one = [&rules[0]];
    let three: Vec<&Rule> = rules.iter().collect();
    // Each statement's first run prepares it (one more round trip): not what is measured.
    let (_, warm) = ingest_round_trips(&pg, &store, 1, &three);
    ingest_round_trips(&pg, &store, 1, &one);

    let (per_ingest, open) = ingest_round_trips(&pg, &store, 10, &one);
    let (per_ingest_of_three, _) = ingest_round_trips(&pg, &store, 10, &three);

    attempt_round_trips(&pg, &store, &warm[..1], DeliveryStatus::Retrying);
    attempt_round_trips(&pg, &store, &warm[1..], DeliveryStatus::Succeeded);
    let per_retry = attempt_round_trips(&pg, &store, &open, DeliveryStatus::Retrying);
    let retried: Vec<Delivery> = open
        .iter()
        .map(|d| Delivery {
            attempts: d.attempts + 1,
            ..d.clone()
        })
        .collect();
    let per_success = attempt_round_trips(&pg, &store, &retried, DeliveryStatus::Succeeded);
    eprintln!(
        "writer round trips for 10 waiting writes: ingest of 1 rule {per_ingest}, of 3 rules {per_ingest_of_three}, attempt retrying {per_retry}, succeeding {per_success}"
    );
    assert_eq!(
        (per_ingest, per_ingest_of_three, per_retry, per_success),
        (1, 1, 1, 1)
    );
    for d in &retried {
        let stored = store.delivery(&ws, &d.id).unwrap();
        assert_eq!(
            (stored.status, stored.attempts),
            (DeliveryStatus::Succeeded, 2)
        );
        assert_eq!(
            store.attempts(&d.id).unwrap().len(),
            2,
            "both attempts are logged"
        );
    }
}

/// Two attempts of one delivery waiting together cannot be one statement (a row may not be
/// changed twice by one): they are written one after the other, the later one last.
#[test]
fn two_attempts_of_one_delivery_waiting_together_are_written_in_turn() {
    let Some((pg, _db)) = open_pg_store(Clock::manual(START)) else {
        return;
    };
    let store: Store = Arc::new(pg.clone());
    let ws = store.default_workspace().clone();
    let r = rule(&ws, "r", &["x"]);
    let (_, made) = ingest_round_trips(&pg, &store, 2, &[&r]);
    // The statement's first run prepares it (one more round trip): not what is measured.
    attempt_round_trips(&pg, &store, &made[1..], DeliveryStatus::Retrying);
    let first = made[0].clone();
    let second = Delivery {
        attempts: first.attempts + 1,
        ..first.clone()
    };
    let trips = attempt_round_trips(
        &pg,
        &store,
        &[first.clone(), second],
        DeliveryStatus::Retrying,
    );
    assert_eq!(trips, 2, "one statement per attempt of the same delivery");
    let stored = store.delivery(&ws, &first.id).unwrap();
    assert_eq!(
        (stored.status, stored.attempts),
        (DeliveryStatus::Retrying, 2)
    );
    let numbers: Vec<u32> = store
        .attempts(&first.id)
        .unwrap()
        .iter()
        .map(|a| a.number)
        .collect();
    assert_eq!(numbers, [1, 2]);
}

/// A batch that cannot even begin (the database away) still tells each of its writes that
/// it failed: an attempt's caller learns it was not logged, and sends it again.
#[test]
fn the_writes_of_a_batch_that_cannot_begin_hear_that_they_failed() {
    let Some((pg, db)) = open_pg_store(Clock::manual(START)) else {
        return;
    };
    let store: Store = Arc::new(pg.clone());
    let ws = store.default_workspace().clone();
    let r = rule(&ws, "r", &["x"]);
    let (_, made) = ingest_round_trips(&pg, &store, 1, &[&r]);
    let release = hold_writer(&pg);
    let (tx, rx) = mpsc::channel();
    let d = &made[0];
    let moved = Delivery {
        status: DeliveryStatus::Retrying,
        attempts: 1,
        ..d.clone()
    };
    store.record_attempt(
        &moved,
        &attempt(1, START, 503),
        Box::new(move |r| tx.send(r).unwrap()),
    );
    db.set_away(true);
    drop(release);
    let heard = rx.recv_timeout(Duration::from_secs(30));
    db.set_away(false);
    let Ok(Err(StoreError::Storage(why))) = heard else {
        panic!("the attempt's caller heard {heard:?}");
    };
    eprintln!("the attempt heard: {why}");
    // Once the database is back, writes go through again.
    let (tx, rx) = mpsc::channel();
    store.record_attempt(
        &moved,
        &attempt(1, START, 503),
        Box::new(move |r| tx.send(r).unwrap()),
    );
    rx.recv_timeout(Duration::from_secs(30)).unwrap().unwrap();
    // Read on a connection of its own: a pooled one used just before the cut would fail
    // once (connect.rs pings only connections idle for a second).
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let logged: i64 = client
        .query_one(
            "SELECT count(*) FROM attempts WHERE delivery_id = $1",
            &[&d.id.as_str()],
        )
        .unwrap()
        .get(0);
    assert_eq!(logged, 1);
}

/// A write for the batch tests: stores `key` in `tidings_meta`, then, if `refuse`, refuses
/// (by its own logic, after its change). Storing a key already stored is refused by the
/// database.
fn meta_write(
    key: &'static str,
    refuse: bool,
) -> impl Fn(&mut PgTxn) -> Result<&'static str, StoreError> + Send + 'static {
    move |txn| {
        txn.execute(
            "INSERT INTO tidings_meta (key, value) VALUES ($1, 'batch test')",
            &[&key],
        )?;
        if refuse {
            return Err(StoreError::Conflict(format!("{key} refused")));
        }
        Ok(key)
    }
}

/// How a batch test's writes are queued.
enum Queue {
    /// `submit_lazy_rerunnable`: may run without a savepoint.
    Rerunnable(&'static str, bool),
    /// `submit`: runs once, in a savepoint.
    Once(&'static str, bool),
}

/// Queues `writes` as one batch; returns what each write's caller was told (each exactly
/// once; a refusal as its conflict's message), and the keys the batch left in `tidings_meta`.
fn one_batch(pg: &PgStore, writes: &[Queue]) -> (Vec<Result<&'static str, String>>, Vec<String>) {
    let release = hold_writer(pg);
    let receivers: Vec<_> = writes
        .iter()
        .map(|write| {
            let (tx, rx) = mpsc::channel();
            let done = move |r: Result<&'static str, StoreError>| {
                tx.send(r.map_err(|e| match e {
                    StoreError::Conflict(why) => why,
                    other => format!("not a conflict: {other:?}"),
                }))
                .unwrap();
            };
            match *write {
                Queue::Rerunnable(key, refuse) => {
                    pg.writer
                        .submit_lazy_rerunnable(meta_write(key, refuse), done);
                }
                Queue::Once(key, refuse) => pg.writer.submit(meta_write(key, refuse), done),
            }
            rx
        })
        .collect();
    drop(release);
    let told = receivers
        .iter()
        .map(|rx| {
            let told = rx.recv_timeout(Duration::from_secs(10)).expect("told");
            assert!(rx.try_recv().is_err(), "a caller is told once");
            told
        })
        .collect();
    let stored = pg
        .conn()
        .unwrap()
        .query(
            "SELECT key FROM tidings_meta WHERE value = 'batch test' ORDER BY key",
            &[],
        )
        .unwrap()
        .iter()
        .map(|r| r.get(0))
        .collect();
    pg.conn()
        .unwrap()
        .execute("DELETE FROM tidings_meta WHERE value = 'batch test'", &[])
        .unwrap();
    assert!(
        pg.writer.failure().is_none(),
        "a refused write is no storage failure"
    );
    (told, stored)
}

/// Without savepoints, a batch of rerunnable writes is all or nothing: a write refused by
/// its own logic after a change, or by the database (which aborts the transaction), is
/// undone alone by applying the batch again, each write in a savepoint; every caller is told
/// once, and the others' writes commit. A write that runs once keeps its savepoint.
#[test]
fn a_refused_write_is_undone_alone_and_the_rest_of_its_batch_commits() {
    use Queue::{Once, Rerunnable};
    let Some((pg, _db)) = open_pg_store(Clock::manual(START)) else {
        return;
    };
    let duplicate =
        "already exists: duplicate key value violates unique constraint \"tidings_meta_pkey\"";

    let (told, stored) = one_batch(&pg, &[Rerunnable("a", false), Rerunnable("b", false)]);
    assert_eq!(told, [Ok("a"), Ok("b")]);
    assert_eq!(stored, ["a", "b"]);

    let (told, stored) = one_batch(
        &pg,
        &[
            Rerunnable("a", false),
            Rerunnable("b", true),
            Rerunnable("a", false),
            Rerunnable("d", false),
        ],
    );
    assert_eq!(
        told,
        [
            Ok("a"),
            Err("b refused".to_owned()),
            Err(duplicate.to_owned()),
            Ok("d")
        ]
    );
    assert_eq!(stored, ["a", "d"]);

    // A write that runs once, first: the rerunnable ones after it are isolated too.
    let (told, stored) = one_batch(
        &pg,
        &[
            Once("e", false),
            Rerunnable("f", true),
            Rerunnable("g", false),
        ],
    );
    assert_eq!(told, [Ok("e"), Err("f refused".to_owned()), Ok("g")]);
    assert_eq!(stored, ["e", "g"]);

    // Rerunnable ones before it, refused after it: undone alone.
    let (told, stored) = one_batch(
        &pg,
        &[
            Rerunnable("h", false),
            Once("i", true),
            Rerunnable("h", false),
            Rerunnable("j", false),
        ],
    );
    assert_eq!(
        told,
        [
            Ok("h"),
            Err("i refused".to_owned()),
            Err(duplicate.to_owned()),
            Ok("j")
        ]
    );
    assert_eq!(stored, ["h", "j"]);
}

/// The side table of the rarer statuses holds exactly the deliveries in them, under their
/// status, after a delivery's whole life (the triggers keep it; nothing else writes it).
#[test]
fn the_status_table_matches_the_deliveries_after_their_life() {
    use crate::store::contract::{START, the_status_filter_follows_a_delivery_through_its_life};

    let clock = Clock::manual(START);
    let Some((store, db)) = open_pg(clock.clone()) else {
        return;
    };
    the_status_filter_follows_a_delivery_through_its_life(&store, &clock);
    store.shutdown();
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    let mut listed = |sql: &str| -> Vec<(String, String, String)> {
        client
            .query(sql, &[])
            .unwrap()
            .iter()
            .map(|r| (r.get(0), r.get(1), r.get(2)))
            .collect()
    };
    let kept =
        listed("SELECT workspace_id, status, delivery_id FROM delivery_statuses ORDER BY 1, 2, 3");
    let rows = listed(
        "SELECT workspace_id, status, id FROM deliveries
         WHERE status IN ('retrying', 'failed', 'blocked', 'condition_error') ORDER BY 1, 2, 3",
    );
    assert_eq!(rows.len(), 3, "two of ours, one of another workspace");
    assert_eq!(kept, rows);
}
