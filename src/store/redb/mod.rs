//! The redb backend. `RedbStore` opens (creating and migrating) `tidings.redb`, answers reads
//! from concurrent read transactions and in-memory caches, and sends every write through the
//! group-commit writer (writer.rs). Each role trait is implemented in a file of its own.

mod attempts;
mod audit;
mod catalog;
mod delivery_rows;
mod engine;
mod events;
mod export;
mod keys;
mod maintenance;
pub(super) mod migrations;
pub(super) mod reseal;
mod rows;
mod rules;
mod stats;
mod subjects;
pub(super) mod tables;
#[cfg(test)]
mod tests;
mod users;
mod versions;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use redb::{Database, ReadTransaction, ReadableDatabase};

use crate::domain::access::ApiKey;
use crate::domain::ids::WorkspaceId;
use crate::domain::time::Clock;
use crate::security::crypto::{CryptoError, Keyring, MasterKey};
use crate::store::cache::{RuleCache, SeenThrottle, SignInFailures, SubjectPaths};
use crate::store::seal::RowSeal;
use crate::store::transfer::Sink;
use crate::store::{Store, StoreError};
use engine::{RedbEngine, RedbWriter, SharedDb, shared};
use reseal::Rotation;

/// redb's page cache. Its default (1 GiB) would let a years-old delivery log grow the
/// process to that size on a small clinic server; the hot data (open deliveries, recent
/// log pages, rules) fits well within this, and the kernel's page cache holds the rest of
/// the file. Measured in the backlog scenario (README, "A backlog of a million"): 32 MiB
/// peaked at 175 – 214 MiB, 16 MiB at 152 – 154, 8 MiB at 139 – 143, with the same drain
/// rate.
const CACHE_BYTES: usize = 8 * 1024 * 1024;

/// Most rows one delivery-list or audit page may examine, so a filter that matches little
/// cannot turn one request into a scan of the whole log; the cursor then resumes where the
/// scan stopped.
const MAX_SCAN: usize = 20_000;

#[derive(Clone)]
pub struct RedbStore {
    pub(super) db: SharedDb,
    writer: RedbWriter,
    rules: Arc<RwLock<Arc<RuleCache>>>,
    /// API keys by hash: every request authenticates without touching the disk.
    keys: Arc<RwLock<HashMap<String, ApiKey>>>,
    default_workspace: WorkspaceId,
    /// Workspace names, read on every delivery and conditioned ingest; workspaces are only
    /// written by migrations, so a name never goes stale.
    workspace_names: Arc<RwLock<HashMap<WorkspaceId, String>>>,
    /// When each event type's seen sample was last written (see catalog.rs).
    seen_types: Arc<SeenThrottle>,
    /// Declared subject paths, read by every ingest posted without a subject.
    subject_paths: Arc<SubjectPaths>,
    /// Failed sign-ins: in memory, since one process owns the file (see cache.rs).
    sign_in_failures: Arc<SignInFailures>,
    /// When each event type's missing-subject note was last written (see catalog.rs).
    subject_misses: Arc<SeenThrottle>,
    /// Seals event payloads and logged bodies as rows are encoded, opens them when decoded.
    seal: RowSeal,
    /// Where the store reads "now": the times it stamps itself and session expiry.
    clock: Clock,
}

impl RedbStore {
    /// Opens (creating if needed) `tidings.redb` in `data_dir` and brings its schema up to
    /// date, without the master key: for commands that never touch event payloads or logged
    /// bodies (`key create`, an offline backup), which are refused on such a store.
    pub fn open(data_dir: &Path, clock: Clock) -> Result<Store, StoreError> {
        let (db, workspace) = Self::open_db(data_dir, &clock)?;
        Ok(Arc::new(Self::start(
            db,
            workspace,
            RowSeal::new(None),
            clock,
        )?))
    }

    /// Opens the store with its master keys, loaded by `keys` once the database is locked.
    /// Before anyone can read or write, it checks the key against the database, finishes a
    /// master-key rotation an interrupted `rotate-master-key` left (its `master.key.new`), and
    /// seals payloads stored by earlier versions. Returns the store and the key every value is
    /// now sealed with.
    pub fn open_with_keys(
        data_dir: &Path,
        keys: impl FnOnce() -> Result<Keyring, CryptoError>,
        clock: Clock,
    ) -> Result<(Store, MasterKey), StoreError> {
        let (mut db, workspace) = Self::open_db(data_dir, &clock)?;
        let key = reconcile(&mut db, keys, Rotation::No)?;
        let store = Self::start(db, workspace, RowSeal::new(Some(key.clone())), clock)?;
        Ok((Arc::new(store), key))
    }

    /// `tidings rotate-master-key`: with the server stopped, re-seals every sealed value (rule
    /// signing secrets and secret headers, event payloads, logged bodies) with a new master
    /// key, crash-safely (see `Keyring`). `new_env_key` is `TIDINGS_NEW_MASTER_KEY`, needed
    /// when the keys come from the environment. Returns the new key.
    pub fn rotate_master_key(
        data_dir: &Path,
        keys: impl FnOnce() -> Result<Keyring, CryptoError>,
        new_env_key: Option<&str>,
    ) -> Result<MasterKey, StoreError> {
        let (mut db, _) = Self::open_db(data_dir, &Clock::system())?;
        reconcile(&mut db, keys, Rotation::Begin(new_env_key))
    }

    /// `tidings migrate`: with the server stopped, opens the database with its keys (checked,
    /// and whatever an open finishes, finished) and hands `copy` the export of one snapshot
    /// of it (export.rs).
    pub(in crate::store) fn with_export<T>(
        data_dir: &Path,
        keys: impl FnOnce() -> Result<Keyring, CryptoError>,
        copy: impl FnOnce(
            &mut dyn FnMut(&mut Sink<'_>) -> Result<(), StoreError>,
        ) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let (mut db, _) = Self::open_db(data_dir, &Clock::system())?;
        // Refuses a wrong key and finishes an interrupted rotation, so every row exported is
        // sealed with the one key the PostgreSQL store will check.
        reconcile(&mut db, keys, Rotation::No)?;
        let txn = db.begin_read()?;
        copy(&mut |sink| export::export(&txn, sink))
    }

    /// The database, locked against other processes, with its schema up to date; and the
    /// Default workspace's id.
    fn open_db(data_dir: &Path, clock: &Clock) -> Result<(Database, WorkspaceId), StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Storage(format!(
                "cannot create data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join("tidings.redb");
        crate::security::files::prepare_private(&path).map_err(StoreError::Storage)?;
        crate::security::files::tidy_data_dir(data_dir);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    StoreError::InUse(path.display().to_string())
                }
                other => StoreError::Storage(format!("cannot open {}: {other}", path.display())),
            })?;
        let workspace = migrations::migrate(&db, clock.now_ms())?;
        Ok((db, workspace))
    }

    fn start(
        db: Database,
        default_workspace: WorkspaceId,
        seal: RowSeal,
        clock: Clock,
    ) -> Result<Self, StoreError> {
        let db = Arc::new(RwLock::new(db));
        // The writer thread ends once `shutdown` is called, or by itself once the last
        // RedbStore clone (its last sender) is gone.
        let writer = RedbWriter::start(RedbEngine(Arc::clone(&db)));
        let store = Self {
            db,
            writer,
            rules: Arc::default(),
            keys: Arc::default(),
            default_workspace,
            workspace_names: Arc::default(),
            seen_types: Arc::default(),
            subject_paths: Arc::default(),
            sign_in_failures: Arc::default(),
            subject_misses: Arc::default(),
            seal,
            clock,
        };
        store.refresh_rules()?;
        store.refresh_keys()?;
        store.refresh_subject_paths()?;
        Ok(store)
    }

    fn read(&self) -> Result<ReadTransaction, StoreError> {
        Ok(shared(&self.db).begin_read()?)
    }

    /// A read transaction, for the backup (store/backup.rs).
    pub(in crate::store) fn read_snapshot(&self) -> Result<ReadTransaction, StoreError> {
        self.read()
    }

    /// The database, for a pass that takes its own transactions (store/backup.rs).
    pub(in crate::store) fn shared_db(&self) -> std::sync::RwLockReadGuard<'_, Database> {
        shared(&self.db)
    }
}

/// Loads the keys (only now that the database is locked, so a command refused because a
/// server holds it has changed nothing, not even a key file) and brings every sealed value
/// under one key; see `reseal::reconcile`.
fn reconcile(
    db: &mut Database,
    keys: impl FnOnce() -> Result<Keyring, CryptoError>,
    rotate: Rotation<'_>,
) -> Result<MasterKey, StoreError> {
    let keyring = keys().map_err(|e| StoreError::MasterKey(e.to_string()))?;
    let (key, rewritten) = reseal::reconcile(db, keyring, rotate)?;
    if rewritten > 0 {
        // The rows replaced (plain PHI, or values under a retired key) live on in freed
        // pages until reused; compaction moves live pages down and cuts the file there.
        db.compact()
            .map_err(|e| StoreError::Storage(format!("compacting after re-sealing: {e}")))?;
    }
    reseal::settle_subject_seed(db, key)
}
