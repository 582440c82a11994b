//! The append-only audit log: entries are written in the transaction of the change they
//! record (`append_audit`), or alone for an action that changes nothing else.

use super::rows::put;
use super::tables::AUDIT;
use super::{MAX_SCAN, RedbStore};
use crate::domain::audit::AuditEntry;
use crate::domain::ids::{AuditId, WorkspaceId};
use crate::store::codec;
use crate::store::{AuditStore, StoreError, StoreFuture};

pub(super) fn append_audit(
    txn: &redb::WriteTransaction,
    entry: &AuditEntry,
) -> Result<(), StoreError> {
    put(txn, AUDIT, entry.id.as_str(), entry)
}

impl AuditStore for RedbStore {
    fn audit(&self, entry: AuditEntry) -> StoreFuture<()> {
        let writer = self.writer.clone();
        Box::pin(async move {
            writer
                .write_async(move |txn| append_audit(txn, &entry))
                .await
        })
    }

    fn audit_now(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.writer.write(move |txn| append_audit(txn, &entry))
    }

    fn audit_log(
        &self,
        workspace: &WorkspaceId,
        before: Option<&AuditId>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<AuditId>), StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(AUDIT)?;
        let upper = before.map_or_else(|| format!("{}~", AuditId::PREFIX), ToString::to_string);
        let mut page = Vec::with_capacity(limit);
        for (scanned, entry) in table
            .range(AuditId::PREFIX..upper.as_str())?
            .rev()
            .enumerate()
        {
            let (key, value) = entry?;
            let e: AuditEntry = codec::decode("audit", value.value())?;
            if &e.workspace_id == workspace {
                page.push(e);
            }
            if page.len() >= limit || scanned + 1 >= MAX_SCAN {
                // The cursor is the last id examined; the next page starts below it.
                return Ok((page, AuditId::parse(key.value())));
            }
        }
        Ok((page, None))
    }
}
