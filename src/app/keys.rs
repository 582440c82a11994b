//! API keys: made (the secret shown once, only its hash kept), listed and deleted, each change
//! audited.

use serde_json::json;

use super::{AppState, blocking};
use crate::domain::access::{ApiKey, Role};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::ids::{ApiKeyId, WorkspaceId};
use crate::domain::time::now_ms;
use crate::error::{AppError, Code};
use crate::security::crypto::{Secret, api_key_hash, new_api_key};

/// A new key for a workspace, and its secret (shown once; only the hash is stored).
pub fn mint(workspace: &WorkspaceId, name: &str, role: Role) -> (ApiKey, Secret) {
    let secret = new_api_key();
    let now = now_ms();
    let key = ApiKey {
        id: ApiKeyId::generate(now),
        workspace_id: workspace.clone(),
        name: name.to_owned(),
        role,
        hash: api_key_hash(secret.expose()),
        prefix: secret.expose().chars().take(8).collect(),
        created_at: now,
    };
    (key, secret)
}

/// A new key's name (1-100 characters) and role.
pub fn validate_new_key(name: &str, role: &str) -> Result<Role, String> {
    // The limit counts what was sent, as the document's maxLength does.
    if name.trim().is_empty() || name.chars().count() > 100 {
        return Err("name is required (1-100 characters)".into());
    }
    Role::parse(role)
        .ok_or_else(|| format!("role must be \"admin\", \"ingest\" or \"owner\", not {role:?}"))
}

/// The workspace's keys, newest first.
pub async fn list(state: &AppState, workspace: WorkspaceId) -> Result<Vec<ApiKey>, AppError> {
    let store = state.store.clone();
    let mut keys = blocking(move || store.api_keys(&workspace)).await?;
    keys.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(keys)
}

/// Makes and stores a key, audited; returns it with its secret. Only an owner (`by_owner`)
/// makes owner keys: an admin making one would reach every other workspace.
pub async fn create(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    name: &str,
    role: &str,
    by_owner: bool,
) -> Result<(ApiKey, Secret), AppError> {
    let role = validate_new_key(name, role).map_err(AppError::validation)?;
    if role == Role::Owner && !by_owner {
        return Err(AppError::new(
            Code::Forbidden,
            "only an owner key makes owner keys (or tidings key create --role owner)",
        ));
    }
    let (key, secret) = mint(workspace, name.trim(), role);
    let audit = AuditEntry::new(
        workspace,
        actor,
        "api_key.create",
        "api_key",
        key.id.as_str(),
    )
    .after(json!({
        "id": key.id, "name": key.name, "role": key.role, "prefix": key.prefix,
        "created_at": crate::domain::time::to_rfc3339(key.created_at),
    }));
    state.store.insert_api_key_async(key.clone(), audit).await?;
    tracing::info!(api_key = %key.id, "API key created");
    Ok((key, secret))
}

/// Deletes a key of the workspace, audited. `caller` is the key making the request, if any:
/// a key cannot delete itself (that could leave the workspace with no admin key at all).
pub async fn delete(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    caller: Option<&ApiKeyId>,
    id: ApiKeyId,
) -> Result<(), AppError> {
    if caller == Some(&id) {
        return Err(AppError::conflict(
            "an API key cannot delete itself; delete it with another admin key",
        ));
    }
    let audit = AuditEntry::new(workspace, actor, "api_key.delete", "api_key", id.as_str());
    state
        .store
        .delete_api_key(workspace.clone(), id.clone(), audit)
        .await?;
    tracing::info!(api_key = %id, "API key deleted");
    Ok(())
}
