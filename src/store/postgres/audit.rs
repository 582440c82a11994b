//! The append-only audit log: entries are written in the transaction of the change they
//! record (`append_audit`), or alone for an action that changes nothing else.

use super::engine::PgTxn;

use super::{MAX_PAGE, PgStore, decode};
use crate::domain::audit::AuditEntry;
use crate::domain::ids::{AuditId, WorkspaceId};
use crate::store::codec::encode_str;
use crate::store::{AuditStore, StoreError, StoreFuture};

pub(super) fn append_audit(txn: &mut PgTxn, entry: &AuditEntry) -> Result<(), StoreError> {
    txn.execute(
        "INSERT INTO audit_log (id, workspace_id, row) VALUES ($1, $2, $3::text::json)",
        &[
            &entry.id.as_str(),
            &entry.workspace_id.as_str(),
            &encode_str(entry),
        ],
    )?;
    Ok(())
}

impl AuditStore for PgStore {
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
        let limit = limit.min(MAX_PAGE);
        let rows = self.conn()?.query(
            "SELECT id, row::text AS row FROM audit_log
             WHERE workspace_id = $1 AND ($2::text IS NULL OR id < $2)
             ORDER BY id DESC LIMIT $3",
            &[
                &workspace.as_str(),
                &before.map(AuditId::as_str),
                &i64::try_from(limit).unwrap_or(i64::MAX),
            ],
        )?;
        let page: Vec<AuditEntry> = rows
            .iter()
            .map(|r| decode("audit", r))
            .collect::<Result<_, _>>()?;
        // A full page may have more below it: its last id is the cursor.
        let cursor = (limit > 0 && page.len() == limit)
            .then(|| page.last().map(|e| e.id.clone()))
            .flatten();
        Ok((page, cursor))
    }
}
