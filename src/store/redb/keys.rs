//! Workspaces and API keys, with the in-memory key map every request authenticates against.

use redb::WriteTransaction;

use super::RedbStore;
use super::audit::append_audit;
use super::rows::{get, get_w, put, scan, scan_w};
use super::tables::{API_KEY_HASHES, API_KEYS, WORKSPACES};
use crate::domain::access::{ApiKey, Workspace};
use crate::domain::audit::AuditEntry;
use crate::domain::ids::{ApiKeyId, WorkspaceId};
use crate::security::crypto::api_key_hash;
use crate::store::types::{not_found, workspace_name_taken};
use crate::store::{KeyStore, StoreError, StoreFuture};

impl RedbStore {
    /// Reloads the key map from the table; every key write calls it before returning.
    pub(super) fn refresh_keys(&self) -> Result<(), StoreError> {
        let keys: Vec<ApiKey> = scan(&self.read()?, API_KEYS)?;
        if let Ok(mut slot) = self.keys.write() {
            *slot = keys.into_iter().map(|k| (k.hash.clone(), k)).collect();
        }
        Ok(())
    }
}

fn insert_api_key(txn: &WriteTransaction, key: &ApiKey) -> Result<(), StoreError> {
    put(txn, API_KEYS, key.id.as_str(), key)?;
    txn.open_table(API_KEY_HASHES)?
        .insert(key.hash.as_str(), key.id.as_str())?;
    Ok(())
}

impl KeyStore for RedbStore {
    fn default_workspace(&self) -> &WorkspaceId {
        &self.default_workspace
    }

    fn workspace(&self, id: &WorkspaceId) -> Result<Workspace, StoreError> {
        get(&self.read()?, WORKSPACES, id.as_str())?
            .ok_or_else(|| not_found("workspace", id.as_str()))
    }

    fn workspace_name(&self, id: &WorkspaceId) -> Result<String, StoreError> {
        if let Some(name) = self
            .workspace_names
            .read()
            .ok()
            .and_then(|m| m.get(id).cloned())
        {
            return Ok(name);
        }
        let name = self.workspace(id)?.name;
        if let Ok(mut names) = self.workspace_names.write() {
            names.insert(id.clone(), name.clone());
        }
        Ok(name)
    }

    fn workspaces(&self) -> Result<Vec<Workspace>, StoreError> {
        // Ids begin with their creation time, so id order is age order.
        scan(&self.read()?, WORKSPACES)
    }

    fn insert_workspace(&self, workspace: Workspace, audit: AuditEntry) -> StoreFuture<Workspace> {
        let store = self.clone();
        Box::pin(async move {
            store
                .writer
                .write_async(move |txn| {
                    let existing: Vec<Workspace> = scan_w(txn, WORKSPACES)?;
                    if let Some(taken) = existing
                        .iter()
                        .find(|w| w.name.to_lowercase() == workspace.name.to_lowercase())
                    {
                        return Err(workspace_name_taken(taken));
                    }
                    put(txn, WORKSPACES, workspace.id.as_str(), &workspace)?;
                    append_audit(txn, &audit)?;
                    Ok(workspace)
                })
                .await
        })
    }

    fn api_key_for_token(&self, token: &str) -> Option<ApiKey> {
        let hash = api_key_hash(token);
        self.keys.read().ok()?.get(&hash).cloned()
    }

    fn api_keys(&self, workspace: &WorkspaceId) -> Result<Vec<ApiKey>, StoreError> {
        let keys: Vec<ApiKey> = scan(&self.read()?, API_KEYS)?;
        Ok(keys
            .into_iter()
            .filter(|k| &k.workspace_id == workspace)
            .collect())
    }

    fn insert_api_key(&self, key: ApiKey, audit: AuditEntry) -> Result<(), StoreError> {
        self.writer.write(move |txn| {
            insert_api_key(txn, &key)?;
            append_audit(txn, &audit)
        })?;
        self.refresh_keys()
    }

    fn insert_api_key_async(&self, key: ApiKey, audit: AuditEntry) -> StoreFuture<()> {
        let store = self.clone();
        Box::pin(async move {
            store
                .writer
                .write_async(move |txn| {
                    insert_api_key(txn, &key)?;
                    append_audit(txn, &audit)
                })
                .await?;
            store.refresh_keys()
        })
    }

    fn delete_api_key(
        &self,
        workspace: WorkspaceId,
        id: ApiKeyId,
        audit: AuditEntry,
    ) -> StoreFuture<()> {
        let store = self.clone();
        Box::pin(async move {
            store
                .writer
                .write_async(move |txn| {
                    let key: ApiKey = get_w(txn, API_KEYS, id.as_str())?
                        .filter(|k: &ApiKey| k.workspace_id == workspace)
                        .ok_or_else(|| not_found("API key", id.as_str()))?;
                    txn.open_table(API_KEYS)?.remove(id.as_str())?;
                    txn.open_table(API_KEY_HASHES)?.remove(key.hash.as_str())?;
                    append_audit(txn, &audit)
                })
                .await?;
            store.refresh_keys()
        })
    }
}
