//! The redb side of the group-commit writer (store/writer.rs): a batch is one redb write
//! transaction, synced unless every write in it is lazy.

use std::sync::Arc;

use redb::{Database, Durability, WriteTransaction};

use crate::store::StoreError;
use crate::store::writer::{Engine, Writer};

pub(super) struct RedbEngine(pub(super) Arc<Database>);

pub(super) type RedbWriter = Writer<RedbEngine>;

impl Engine for RedbEngine {
    type Txn = WriteTransaction;

    fn batch(
        &mut self,
        durable: bool,
        apply: &mut dyn FnMut(&mut WriteTransaction) -> Option<StoreError>,
    ) -> Result<(), StoreError> {
        let mut txn = self
            .0
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
}
