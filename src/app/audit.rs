//! The audit log: read only, newest first (every change elsewhere writes its own entry in the
//! same transaction as the change).

use super::{AppState, blocking};
use crate::domain::audit::AuditEntry;
use crate::domain::ids::{AuditId, WorkspaceId};
use crate::error::AppError;

/// A page of the workspace's audit log before the cursor, and the next cursor.
pub async fn page(
    state: &AppState,
    workspace: WorkspaceId,
    before: Option<AuditId>,
    limit: usize,
) -> Result<(Vec<AuditEntry>, Option<AuditId>), AppError> {
    let store = state.store.clone();
    blocking(move || store.audit_log(&workspace, before.as_ref(), limit)).await
}
