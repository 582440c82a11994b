//! The redb backend's tests: the storage contract on a temp file, and what only this backend
//! has — the writer's bounded queue, its shutdown, and its end with the last handle.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::channel;
use std::sync::{Arc, RwLock};
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, TableDefinition};

use super::RedbStore;
use super::engine::{RedbEngine, RedbWriter, SharedDb, shared};
use crate::domain::time::Clock;
use crate::security::crypto::Keyring;
use crate::store::contract::{block_on, store_contract_tests};
use crate::store::{Store, StoreError};

/// A fresh folder under the system temp dir, removed (with the database in it) when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> Self {
        let dir = std::env::temp_dir().join(format!(
            "tidings-store-{tag}-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).expect("create a temp dir");
        Self(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn open_temp(clock: Clock) -> (Store, TempDir) {
    let dir = TempDir::new("contract");
    let (store, _) =
        RedbStore::open_with_keys(&dir.0, || Keyring::load(&dir.0, None), clock).unwrap();
    (store, dir)
}

store_contract_tests!(open_temp);

const NUMBERS: TableDefinition<u64, u64> = TableDefinition::new("numbers");

fn insert(n: u64) -> impl FnOnce(&mut redb::WriteTransaction) -> Result<(), StoreError> + Send {
    move |txn| {
        txn.open_table(NUMBERS)?.insert(n, n)?;
        Ok(())
    }
}

fn count(db: &Database) -> usize {
    use redb::ReadableTableMetadata;
    let txn = db.begin_read().unwrap();
    txn.open_table(NUMBERS)
        .map_or(0, |t| usize::try_from(t.len().unwrap()).unwrap())
}

fn temp_db(dir: &TempDir) -> (SharedDb, PathBuf) {
    let path = dir.0.join("writer.redb");
    (
        Arc::new(RwLock::new(Database::create(&path).unwrap())),
        path,
    )
}

/// Holds the writer thread inside a write until the returned sender sends (or is dropped).
fn hold_writer(writer: &RedbWriter) -> std::sync::mpsc::Sender<()> {
    let (started, is_started) = channel();
    let (release, released) = channel::<()>();
    writer.submit_lazy(
        move |_txn| {
            started.send(()).unwrap();
            released.recv_timeout(Duration::from_secs(10)).ok();
            Ok(())
        },
        |_| {},
    );
    is_started.recv_timeout(Duration::from_secs(10)).unwrap();
    release
}

#[test]
fn a_full_queue_refuses_async_writes_at_once_and_blocking_ones_wait() {
    let dir = TempDir::new("overload");
    let (db, _) = temp_db(&dir);
    let writer = RedbWriter::with_depth(RedbEngine(Arc::clone(&db)), 2);
    let release = hold_writer(&writer);
    // Fill the queue's two places.
    writer.submit_lazy(insert(1), |r| r.unwrap());
    writer.submit_lazy(insert(2), |r| r.unwrap());

    let asked = Instant::now();
    let refused = block_on(writer.write_async(insert(3)));
    assert!(
        matches!(refused, Err(StoreError::Overloaded)),
        "{refused:?}"
    );
    assert!(
        asked.elapsed() < Duration::from_secs(1),
        "refused without waiting"
    );
    let (told, was_told) = channel();
    writer.try_submit_lazy(insert(4), move |r| told.send(r).unwrap());
    assert!(matches!(
        was_told.try_recv(),
        Ok(Err(StoreError::Overloaded))
    ));

    // A blocking writer waits for room instead, and gets in once the disk catches up.
    let waiting = {
        let writer = writer.clone();
        std::thread::spawn(move || writer.write(insert(5)))
    };
    release.send(()).unwrap();
    waiting.join().unwrap().unwrap();
    block_on(writer.write_async(insert(6))).unwrap();
    assert_eq!(count(&shared(&db)), 4, "1, 2, 5 and 6; never 3 or 4");
    writer.shutdown();
}

#[test]
fn writers_that_wait_hold_only_their_share_of_the_queue_and_requests_keep_the_rest() {
    let dir = TempDir::new("share");
    let (db, _) = temp_db(&dir);
    let writer = RedbWriter::with_limits(RedbEngine(Arc::clone(&db)), 4, 2);
    let release = hold_writer(&writer);
    // The waiting writers' two places.
    writer.submit_lazy(insert(1), |r| r.unwrap());
    writer.submit_lazy(insert(2), |r| r.unwrap());
    // A third waits at the gate although the queue has room.
    let (queued, was_queued) = channel();
    let third = {
        let writer = writer.clone();
        std::thread::spawn(move || {
            writer.submit_lazy(insert(3), |r| r.unwrap());
            queued.send(()).unwrap();
        })
    };
    assert!(
        was_queued.recv_timeout(Duration::from_millis(300)).is_err(),
        "the third waiting writer got in beyond its share"
    );
    // A request handler's write still finds room, at once.
    let (told, was_told) = channel();
    writer.try_submit_lazy(insert(4), move |r| told.send(r).unwrap());
    assert!(
        was_told.try_recv().is_err(),
        "not refused: it waits in the queue for its batch"
    );

    release.send(()).unwrap();
    was_queued.recv_timeout(Duration::from_secs(10)).unwrap();
    third.join().unwrap();
    was_told
        .recv_timeout(Duration::from_secs(10))
        .unwrap()
        .unwrap();
    writer.write(insert(5)).unwrap();
    assert_eq!(count(&shared(&db)), 5, "every write committed");
    writer.shutdown();
}

#[test]
fn every_writer_waiting_at_a_full_share_gets_in_once_the_writer_takes_the_share() {
    let dir = TempDir::new("gate-all");
    let (db, _) = temp_db(&dir);
    let writer = RedbWriter::with_limits(RedbEngine(Arc::clone(&db)), 64, 4);
    let release = hold_writer(&writer);
    for n in 0..4 {
        writer.submit_lazy(insert(n), |r| r.unwrap());
    }
    // Four more wait at the full share; the writer takes the four queued in one batch.
    let (queued, was_queued) = channel();
    let waiters: Vec<_> = (4..8)
        .map(|n| {
            let (writer, queued) = (writer.clone(), queued.clone());
            std::thread::spawn(move || {
                writer.submit_lazy(insert(n), |r| r.unwrap());
                queued.send(()).unwrap();
            })
        })
        .collect();
    std::thread::sleep(Duration::from_millis(200));
    release.send(()).unwrap();
    for _ in 0..4 {
        was_queued
            .recv_timeout(Duration::from_secs(10))
            .expect("a writer was left asleep at the gate with its share free");
    }
    for waiter in waiters {
        waiter.join().unwrap();
    }
    writer.shutdown();
    assert_eq!(count(&shared(&db)), 8);
}

#[test]
fn a_writer_waiting_at_the_gate_as_the_writer_stops_is_let_in_or_refused_not_left_waiting() {
    let dir = TempDir::new("gate-end");
    let (db, _) = temp_db(&dir);
    let writer = RedbWriter::with_limits(RedbEngine(Arc::clone(&db)), 4, 1);
    let release = hold_writer(&writer);
    writer.submit_lazy(insert(1), |r| r.unwrap());
    let waiting = {
        let writer = writer.clone();
        std::thread::spawn(move || writer.write(insert(2)))
    };
    std::thread::sleep(Duration::from_millis(100));
    let stopping = {
        let writer = writer.clone();
        std::thread::spawn(move || writer.shutdown())
    };
    release.send(()).unwrap();
    stopping.join().unwrap();
    // Let in once a place came free, or refused as the writer ended: never left waiting.
    let outcome = waiting.join().unwrap();
    assert!(
        matches!(outcome, Ok(()) | Err(StoreError::Closed)),
        "{outcome:?}"
    );
}

#[test]
fn a_completion_that_writes_again_with_the_share_full_does_not_wait_for_itself() {
    let dir = TempDir::new("gate-self");
    let (db, _) = temp_db(&dir);
    let writer = RedbWriter::with_limits(RedbEngine(Arc::clone(&db)), 8, 1);
    let release = hold_writer(&writer);
    let (done, is_done) = channel();
    let (placed, is_placed) = channel();
    let again = writer.clone();
    // Its completion runs on the writer thread once another write holds the one place.
    writer.submit_lazy(insert(1), move |r| {
        r.unwrap();
        is_placed.recv_timeout(Duration::from_secs(10)).unwrap();
        again.submit_lazy(insert(2), move |r| done.send(r).unwrap());
    });
    // Waits at the gate until the writer takes 1, then holds the place.
    let filler = {
        let writer = writer.clone();
        std::thread::spawn(move || {
            writer.submit_lazy(insert(3), |r| r.unwrap());
            placed.send(()).unwrap();
        })
    };
    release.send(()).unwrap();
    is_done
        .recv_timeout(Duration::from_secs(10))
        .expect("the writer thread did not wait at its own gate")
        .unwrap();
    filler.join().unwrap();
    writer.shutdown();
    assert_eq!(count(&shared(&db)), 3);
}

#[test]
fn shutdown_commits_what_is_queued_syncs_and_joins() {
    let dir = TempDir::new("shutdown");
    let (db, path) = temp_db(&dir);
    let writer = RedbWriter::start(RedbEngine(Arc::clone(&db)));
    for n in 0..100 {
        writer.submit_lazy(insert(n), |r| r.unwrap());
    }
    writer.shutdown();
    assert!(matches!(writer.failure(), Some(StoreError::Closed)));
    assert!(matches!(writer.write(insert(500)), Err(StoreError::Closed)));
    assert!(matches!(
        block_on(writer.write_async(insert(501))),
        Err(StoreError::Closed)
    ));
    let (told, was_told) = channel();
    writer.submit_lazy(insert(502), move |r| told.send(r).unwrap());
    assert!(matches!(was_told.try_recv(), Ok(Err(StoreError::Closed))));
    writer.shutdown();
    assert_eq!(count(&shared(&db)), 100);
    // The thread has let go of the database: it reopens with every lazy write on disk.
    drop(writer);
    drop(db);
    let db = Database::open(&path).expect("the writer released the database");
    assert_eq!(count(&db), 100);
}

#[test]
fn the_writer_ends_with_the_last_store_handle() {
    let dir = TempDir::new("last-handle");
    let store = RedbStore::open(&dir.0, Clock::system()).unwrap();
    let second = Arc::clone(&store);
    drop(store);
    store_is_held(&dir, &second);
    drop(second);
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        match RedbStore::open(&dir.0, Clock::system()) {
            Ok(again) => {
                again.shutdown();
                break;
            }
            Err(StoreError::InUse(_)) if Instant::now() < deadline => {
                std::thread::sleep(Duration::from_millis(10));
            }
            Err(e) => panic!("the database was not released: {e}"),
        }
    }
}

fn store_is_held(dir: &TempDir, store: &Store) {
    store.ping().unwrap();
    assert!(matches!(
        RedbStore::open(&dir.0, Clock::system()),
        Err(StoreError::InUse(_))
    ));
}

/// Every sealed value (`xc1:` and its base64) in a file's bytes.
fn sealed_values(file: &Path) -> HashSet<String> {
    let bytes = std::fs::read(file).unwrap();
    let mut out = HashSet::new();
    let mut at = 0;
    while let Some(found) = bytes[at..].windows(4).position(|w| w == b"xc1:") {
        let start = at + found;
        let end = bytes[start + 4..]
            .iter()
            .position(|b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'/' | b'=')))
            .map_or(bytes.len(), |n| start + 4 + n);
        out.insert(String::from_utf8_lossy(&bytes[start..end]).into_owned());
        at = end;
    }
    out
}

/// Erasure's promise, measured on the file: every sealed copy of the erased subject's data
/// and logged bodies — including copies in pages freed by earlier writes — is gone from
/// `tidings.redb` afterwards, and another subject's data is still there. Without the
/// compaction that follows the erasing write, the freed pages keep them.
#[test]
fn erasure_leaves_no_sealed_copy_of_the_subjects_data_in_the_file() {
    use crate::domain::delivery::DeliveryStatus;
    use crate::domain::subject::SubjectHash;
    use crate::store::contract::{attempt, audit, data, delivery, event, new_event, record, rule};

    let dir = TempDir::new("erase-bytes");
    let file = dir.0.join("tidings.redb");
    let clock = Clock::manual(crate::store::contract::START);
    let (store, _) =
        RedbStore::open_with_keys(&dir.0, || Keyring::load(&dir.0, None), clock.clone()).unwrap();
    let ws = store.default_workspace().clone();
    let r = rule(&ws, "crm", &["patient.*"]);
    block_on(store.save_rule(r.clone(), false, audit(&ws, "rule.create"))).unwrap();
    let about = |n: u8, at: i64| {
        let who = SubjectHash::from_hex(format!("{n:02x}").repeat(32)).unwrap();
        let mut e = event(&ws, "patient.admitted", at);
        e.subject = Some(who.clone());
        e.data = data(serde_json::json!({"patient": "MARKER-Jane-Doe", "n": n}));
        let mut d = delivery(&e, &r, DeliveryStatus::Pending);
        d.subject = Some(who.clone());
        block_on(store.ingest(new_event(e, vec![d.clone()]))).unwrap();
        let mut done = d.clone();
        done.status = DeliveryStatus::Succeeded;
        done.next_attempt_at = None;
        done.attempts = 1;
        record(&store, &done, &attempt(1, at + 1, 200)).unwrap();
        who
    };
    let before_any = sealed_values(&file);
    let erased = about(1, crate::store::contract::START);
    // Lazy writes reach the file at the next durable commit.
    block_on(store.audit(audit(&ws, "sync"))).unwrap();
    let of_erased: HashSet<String> = sealed_values(&file)
        .difference(&before_any)
        .cloned()
        .collect();
    assert!(
        of_erased.len() >= 2,
        "the event's data and its logged body are sealed in the file: {of_erased:?}"
    );
    let before_kept = sealed_values(&file);
    about(2, crate::store::contract::START + 10);
    block_on(store.audit(audit(&ws, "sync"))).unwrap();
    let of_kept: HashSet<String> = sealed_values(&file)
        .difference(&before_kept)
        .cloned()
        .collect();
    assert!(!of_kept.is_empty());

    let counts =
        block_on(store.erase_subject(ws.clone(), erased, audit(&ws, "subject.erase"))).unwrap();
    assert_eq!((counts.events, counts.deliveries), (1, 1));
    let after = sealed_values(&file);
    let left: Vec<_> = of_erased.intersection(&after).collect();
    assert!(
        left.is_empty(),
        "sealed copies of erased data remain: {left:?}"
    );
    assert!(
        of_kept.iter().any(|v| after.contains(v)),
        "the other subject's data is still in the file"
    );
    let bytes = std::fs::read(&file).unwrap();
    assert!(
        !bytes.windows(6).any(|w| w == b"MARKER"),
        "no plain copy of any payload is in the file"
    );
    store.shutdown();
}

/// Takes the store file in `dir` back to how schema `version` left it: `undo` removes what
/// later versions added, and the recorded version is set back, so the next open migrates.
fn rewind_to_version(dir: &TempDir, version: u32, undo: impl FnOnce(&redb::WriteTransaction)) {
    let db = Database::open(dir.0.join("tidings.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    undo(&txn);
    txn.open_table(super::tables::META)
        .unwrap()
        .insert("schema_version", version.to_string().as_str())
        .unwrap();
    txn.commit().unwrap();
}

/// A file from before schema version 8 gets its dashboard counters from its rows: the open
/// deliveries per workspace, and the day's condition errors.
#[test]
fn migrating_to_version_8_counts_the_open_deliveries_and_condition_errors_already_there() {
    use super::tables::{CONDITION_ERRORS_BY_HOUR, OPEN_COUNTS};
    use crate::domain::delivery::DeliveryStatus;
    use crate::store::contract::{START, event, ingest_with, other_workspace, rule};

    let dir = TempDir::new("migrate-8");
    let clock = Clock::manual(START);
    let open = || RedbStore::open_with_keys(&dir.0, || Keyring::load(&dir.0, None), clock.clone());
    let (store, _) = open().unwrap();
    let ws = store.default_workspace().clone();
    let other = other_workspace();
    let (r, s) = (rule(&ws, "r", &["x"]), rule(&other, "s", &["x"]));
    ingest_with(
        &store,
        &event(&ws, "x", START - 10),
        &[&r],
        DeliveryStatus::Pending,
    );
    ingest_with(
        &store,
        &event(&ws, "x", START - 9),
        &[&r],
        DeliveryStatus::Retrying,
    );
    ingest_with(
        &store,
        &event(&other, "x", START - 8),
        &[&s],
        DeliveryStatus::Pending,
    );
    ingest_with(
        &store,
        &event(&ws, "x", START - 7),
        &[&r],
        DeliveryStatus::ConditionError,
    );
    // Two days old: outside the only window the dashboard shows.
    ingest_with(
        &store,
        &event(&ws, "x", START - 48 * 3_600_000),
        &[&r],
        DeliveryStatus::ConditionError,
    );
    store.shutdown();
    drop(store);

    // As version 7 left it: no counters.
    rewind_to_version(&dir, 7, |txn| {
        txn.delete_table(OPEN_COUNTS).unwrap();
        txn.delete_table(CONDITION_ERRORS_BY_HOUR).unwrap();
    });

    let (store, _) = open().unwrap();
    assert_eq!(store.open_count_in(&ws).unwrap(), 2);
    assert_eq!(store.open_count_in(&other).unwrap(), 1);
    let errors = store
        .condition_errors_since(&ws, START - 24 * 3_600_000)
        .unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].count, errors[0].latest_at), (1, START - 7));
    store.shutdown();
}

/// A file from before schema version 9 gets its status index from its rows, per workspace.
#[test]
fn migrating_to_version_9_indexes_the_deliveries_already_there_by_status() {
    use super::tables::DELIVERIES_BY_STATUS;
    use crate::domain::delivery::DeliveryStatus;
    use crate::store::DeliveryFilter;
    use crate::store::contract::{START, event, ids, ingest_with, other_workspace, rule};

    let dir = TempDir::new("migrate-9");
    let clock = Clock::manual(START);
    let open = || RedbStore::open_with_keys(&dir.0, || Keyring::load(&dir.0, None), clock.clone());
    let (store, _) = open().unwrap();
    let ws = store.default_workspace().clone();
    let other = other_workspace();
    let (r, s) = (rule(&ws, "r", &["x"]), rule(&other, "s", &["x"]));
    let mut made = Vec::new();
    for (n, status) in [
        DeliveryStatus::Pending,
        DeliveryStatus::Retrying,
        DeliveryStatus::Failed,
        DeliveryStatus::Retrying,
    ]
    .into_iter()
    .enumerate()
    {
        let at = START + i64::try_from(n).unwrap();
        made.extend(ingest_with(&store, &event(&ws, "x", at), &[&r], status));
    }
    ingest_with(
        &store,
        &event(&other, "x", START),
        &[&s],
        DeliveryStatus::Retrying,
    );
    store.shutdown();
    drop(store);

    // As version 8 left it: no status index.
    rewind_to_version(&dir, 8, |txn| {
        txn.delete_table(DELIVERIES_BY_STATUS).unwrap();
    });

    let (store, _) = open().unwrap();
    let with = |status| {
        let filter = DeliveryFilter {
            status: Some(status),
            limit: 10,
            ..DeliveryFilter::default()
        };
        ids(&store.list_deliveries(&ws, &filter).unwrap().0)
    };
    assert_eq!(
        with(DeliveryStatus::Retrying),
        [made[3].id.clone(), made[1].id.clone()]
    );
    assert_eq!(with(DeliveryStatus::Pending), [made[0].id.clone()]);
    assert_eq!(with(DeliveryStatus::Failed), [made[2].id.clone()]);
    store.shutdown();
}

/// The status index holds exactly one entry per delivery row in an indexed status, under
/// that status: no stale entry is left behind as a delivery moves through its life and is
/// pruned.
#[test]
fn the_status_index_matches_the_rows_after_a_deliverys_life() {
    use redb::ReadableTable;

    use super::tables::{DELIVERIES, DELIVERIES_BY_STATUS};
    use crate::domain::delivery::Delivery;
    use crate::store::codec;
    use crate::store::contract::{START, the_status_filter_follows_a_delivery_through_its_life};

    let dir = TempDir::new("status-index");
    let clock = Clock::manual(START);
    let (store, _) =
        RedbStore::open_with_keys(&dir.0, || Keyring::load(&dir.0, None), clock.clone()).unwrap();
    the_status_filter_follows_a_delivery_through_its_life(&store, &clock);
    store.shutdown();
    drop(store);

    let db = Database::open(dir.0.join("tidings.redb")).unwrap();
    let txn = db.begin_read().unwrap();
    let mut from_rows = Vec::new();
    for entry in txn.open_table(DELIVERIES).unwrap().iter().unwrap() {
        let (_, row) = entry.unwrap();
        let d: Delivery = codec::decode("deliveries", row.value()).unwrap();
        if crate::store::types::status_indexed(d.status) {
            let (ws, status) = (d.workspace_id.as_str().to_owned(), d.status.as_str());
            from_rows.push((ws, status.to_owned(), d.id.as_str().to_owned()));
        }
    }
    let mut indexed = Vec::new();
    for entry in txn
        .open_table(DELIVERIES_BY_STATUS)
        .unwrap()
        .iter()
        .unwrap()
    {
        let (key, ()) = entry.map(|(k, v)| (k, v.value())).unwrap();
        let (ws, status, id) = key.value();
        indexed.push((ws.to_owned(), status.to_owned(), id.to_owned()));
    }
    from_rows.sort();
    assert_eq!(
        from_rows.len(),
        3,
        "three indexed deliveries are left: two ours, one another's"
    );
    assert_eq!(indexed, from_rows);
}
