//! The redb backend's tests: the storage contract on a temp file, and what only this backend
//! has — the writer's bounded queue, its shutdown, and its end with the last handle.

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::channel;
use std::time::{Duration, Instant};

use redb::{Database, ReadableDatabase, TableDefinition};

use super::RedbStore;
use super::engine::{RedbEngine, RedbWriter};
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

fn temp_db(dir: &TempDir) -> (Arc<Database>, PathBuf) {
    let path = dir.0.join("writer.redb");
    (Arc::new(Database::create(&path).unwrap()), path)
}

#[test]
fn a_full_queue_refuses_async_writes_at_once_and_blocking_ones_wait() {
    let dir = TempDir::new("overload");
    let (db, _) = temp_db(&dir);
    let writer = RedbWriter::with_depth(RedbEngine(Arc::clone(&db)), 2);
    // Hold the writer thread inside a write until released.
    let (started, is_started) = channel();
    let (release, released) = channel::<()>();
    writer.submit(
        move |_txn| {
            started.send(()).unwrap();
            released.recv_timeout(Duration::from_secs(10)).ok();
            Ok(())
        },
        |_| {},
    );
    is_started.recv_timeout(Duration::from_secs(10)).unwrap();
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
    assert_eq!(count(&db), 4, "1, 2, 5 and 6; never 3 or 4");
    writer.shutdown();
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
    assert_eq!(count(&db), 100);
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
