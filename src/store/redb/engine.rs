//! The redb side of the group-commit writer (store/writer.rs): a batch is one redb write
//! transaction, synced unless every write in it is lazy.

use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard};
use std::time::{Duration, Instant};

use redb::{CompactionError, Database, Durability, WriteTransaction};

use crate::store::StoreError;
use crate::store::writer::{Engine, Writer};

/// How long a compaction waits for read transactions begun before it to end; new ones wait
/// for the compaction meanwhile.
const COMPACT_WAIT: Duration = Duration::from_secs(5);

/// The database, shared by readers and the writer thread. Everyone takes the lock shared for
/// as long as it takes to begin a transaction (transactions do not borrow the database);
/// only a compaction takes it exclusively, since redb compacts through `&mut Database`.
pub(super) type SharedDb = Arc<RwLock<Database>>;

/// The database, for beginning a transaction.
pub(super) fn shared(db: &SharedDb) -> RwLockReadGuard<'_, Database> {
    db.read().unwrap_or_else(PoisonError::into_inner)
}

pub(super) struct RedbEngine(pub(super) SharedDb);

pub(super) type RedbWriter = Writer<RedbEngine>;

impl Engine for RedbEngine {
    type Txn = WriteTransaction;

    fn batch(
        &mut self,
        durable: bool,
        apply: &mut dyn FnMut(&mut WriteTransaction) -> Option<StoreError>,
    ) -> Result<(), StoreError> {
        let mut txn = shared(&self.0)
            .begin_write()
            .map_err(|e| StoreError::Storage(format!("cannot begin a write transaction: {e}")))?;
        if !durable && let Err(e) = txn.set_durability(Durability::None) {
            tracing::warn!(error = %e, "cannot defer the sync of a lazy batch; syncing it");
        }
        if let Some(poison) = apply(&mut txn) {
            let _ = txn.abort();
            return Err(poison);
        }
        txn.commit()
            .map_err(|e| StoreError::Storage(format!("commit failed: {e}")))
    }

    /// redb writes check what they need before they change anything, so a refusal has
    /// changed nothing to undo.
    fn isolated<T>(
        txn: &mut WriteTransaction,
        write: impl FnOnce(&mut WriteTransaction) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        write(txn)
    }

    /// Compacts with the database held exclusively, waiting (a bounded time) for read
    /// transactions begun before to end; redb refuses to compact under a live one.
    fn compact(&mut self) -> Result<(), StoreError> {
        let mut exclusive = self.0.write().unwrap_or_else(PoisonError::into_inner);
        let deadline = Instant::now() + COMPACT_WAIT;
        loop {
            match exclusive.compact() {
                Ok(_) => return Ok(()),
                Err(CompactionError::TransactionInProgress) if Instant::now() < deadline => {
                    std::thread::sleep(Duration::from_millis(5));
                }
                Err(e) => {
                    return Err(StoreError::Storage(format!(
                        "cannot compact the database: {e}"
                    )));
                }
            }
        }
    }
}
