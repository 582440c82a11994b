//! Workspaces (SPEC §14): made and listed by an owner key (or a group admin), each creation
//! audited in the new workspace's own log; and the one check every caller that names a
//! workspace goes through.

use serde_json::json;

use super::{AppState, blocking};
use crate::domain::access::{Workspace, workspace_name};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::ids::WorkspaceId;
use crate::domain::time::{now_ms, to_rfc3339};
use crate::error::{AppError, Code};

/// Every workspace, oldest first (the Default one first of all).
pub async fn list(state: &AppState) -> Result<Vec<Workspace>, AppError> {
    let store = state.store.clone();
    blocking(move || store.workspaces()).await
}

/// Makes a workspace, audited in its own log; a name in use (ignoring case) is a 409.
pub async fn create(state: &AppState, actor: Actor, name: &str) -> Result<Workspace, AppError> {
    let name = workspace_name(name).map_err(AppError::validation)?;
    let now = now_ms();
    let workspace = Workspace {
        id: WorkspaceId::generate(now),
        name,
        created_at: now,
    };
    let audit = AuditEntry::new(
        &workspace.id,
        actor,
        "workspace.create",
        "workspace",
        workspace.id.as_str(),
    )
    .after(json!({
        "id": workspace.id, "name": workspace.name, "created_at": to_rfc3339(now),
    }));
    let created = state.store.insert_workspace(workspace, audit).await?;
    tracing::info!(workspace = %created.id, "workspace created");
    Ok(created)
}

/// The workspace a caller named, if it exists: an unknown one is a 404.
pub async fn existing(state: &AppState, raw: &str) -> Result<WorkspaceId, AppError> {
    let id = WorkspaceId::parse(raw).ok_or_else(|| unknown(raw))?;
    let store = state.store.clone();
    let found = id.clone();
    blocking(move || store.workspace(&found))
        .await
        .map_err(|e| {
            if e.code() == Code::NotFound {
                unknown(raw)
            } else {
                e
            }
        })?;
    Ok(id)
}

/// The 404 for a workspace id that names none the caller may reach.
pub fn unknown(raw: &str) -> AppError {
    AppError::new(Code::NotFound, format!("no workspace with id {raw:?}"))
}
