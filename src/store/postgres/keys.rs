//! Workspaces and API keys, with the in-memory key map every request authenticates against
//! (refreshed on every node by changes.rs).

use super::engine::PgTxn;
use std::sync::Arc;

use postgres::GenericClient;

use super::audit::append_audit;
use super::changes::{Change, notify};
use super::{PgStore, Snapshots, decode};
use crate::domain::access::{ApiKey, Workspace};
use crate::domain::audit::AuditEntry;
use crate::domain::ids::{ApiKeyId, WorkspaceId};
use crate::security::crypto::api_key_hash;
use crate::store::codec::encode_str;
use crate::store::types::{not_found, workspace_name_taken};
use crate::store::{KeyStore, StoreError, StoreFuture};

impl PgStore {
    /// Reloads the key map: after every key write here, and when another node says keys
    /// changed.
    pub(super) fn refresh_keys(&self) -> Result<(), StoreError> {
        let ticket = self.snapshots.ticket();
        let keys = keys_of(&mut **self.conn()?, None)?;
        self.install_keys((ticket, keys));
        Ok(())
    }

    /// Fills the key map from a snapshot, unless a newer one is there already.
    fn install_keys(&self, (ticket, keys): KeySnapshot) {
        if Snapshots::newer(&self.snapshots.keys, ticket)
            && let Ok(mut slot) = self.keys.write()
        {
            *slot = keys.into_iter().map(|k| (k.hash.clone(), k)).collect();
        }
    }
}

/// Every key, read in a write's transaction with its ticket.
type KeySnapshot = (u64, Vec<ApiKey>);

fn snapshot(txn: &mut PgTxn, snapshots: &Snapshots) -> Result<KeySnapshot, StoreError> {
    let ticket = snapshots.ticket();
    Ok((ticket, keys_of(txn.client(), None)?))
}

fn keys_of(
    client: &mut impl GenericClient,
    workspace: Option<&WorkspaceId>,
) -> Result<Vec<ApiKey>, StoreError> {
    let rows = client.query(
        "SELECT row::text AS row FROM api_keys WHERE $1::text IS NULL OR workspace_id = $1 ORDER BY id",
        &[&workspace.map(WorkspaceId::as_str)],
    )?;
    rows.iter().map(|r| decode("api_keys", r)).collect()
}

fn insert_api_key(txn: &mut PgTxn, key: &ApiKey) -> Result<(), StoreError> {
    txn.execute(
        "INSERT INTO api_keys (id, workspace_id, hash, row) VALUES ($1, $2, $3, $4::text::json)",
        &[
            &key.id.as_str(),
            &key.workspace_id.as_str(),
            &key.hash,
            &encode_str(key),
        ],
    )?;
    notify(txn, Change::Keys)
}

impl KeyStore for PgStore {
    fn default_workspace(&self) -> &WorkspaceId {
        &self.default_workspace
    }

    fn workspace(&self, id: &WorkspaceId) -> Result<Workspace, StoreError> {
        let row = self.conn()?.query_opt(
            "SELECT row::text AS row FROM workspaces WHERE id = $1",
            &[&id.as_str()],
        )?;
        row.map(|r| decode("workspaces", &r))
            .transpose()?
            .ok_or_else(|| not_found("workspace", id.as_str()))
    }

    /// Names never change once a workspace exists, so memory is never stale.
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
        let rows = self
            .conn()?
            .query("SELECT row::text AS row FROM workspaces ORDER BY id", &[])?;
        rows.iter().map(|r| decode("workspaces", r)).collect()
    }

    fn insert_workspace(&self, workspace: Workspace, audit: AuditEntry) -> StoreFuture<Workspace> {
        let store = self.clone();
        Box::pin(async move {
            store
                .writer
                .write_async(move |txn| {
                    // The unique index (migration 6) holds against a race; this finds the
                    // workspace to name in the answer.
                    let taken = txn.query_opt(
                        "SELECT row::text AS row FROM workspaces WHERE lower(row->>'name') = lower($1)",
                        &[&workspace.name],
                    )?;
                    if let Some(row) = taken {
                        let taken: Workspace = decode("workspaces", &row)?;
                        return Err(workspace_name_taken(&taken));
                    }
                    txn.execute(
                        "INSERT INTO workspaces (id, row) VALUES ($1, $2::text::json)",
                        &[&workspace.id.as_str(), &encode_str(&workspace)],
                    )?;
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
        keys_of(&mut **self.conn()?, Some(workspace))
    }

    fn insert_api_key(&self, key: ApiKey, audit: AuditEntry) -> Result<(), StoreError> {
        self.writer.write(move |txn| {
            insert_api_key(txn, &key)?;
            append_audit(txn, &audit)
        })?;
        self.refresh_keys()
    }

    fn insert_api_key_async(&self, key: ApiKey, audit: AuditEntry) -> StoreFuture<()> {
        let (store, snapshots) = (self.clone(), Arc::clone(&self.snapshots));
        Box::pin(async move {
            let keys = store
                .writer
                .write_async(move |txn| {
                    insert_api_key(txn, &key)?;
                    append_audit(txn, &audit)?;
                    snapshot(txn, &snapshots)
                })
                .await?;
            store.install_keys(keys);
            Ok(())
        })
    }

    fn delete_api_key(
        &self,
        workspace: WorkspaceId,
        id: ApiKeyId,
        audit: AuditEntry,
    ) -> StoreFuture<()> {
        let (store, snapshots) = (self.clone(), Arc::clone(&self.snapshots));
        Box::pin(async move {
            let keys = store
                .writer
                .write_async(move |txn| {
                    let removed = txn.execute(
                        "DELETE FROM api_keys WHERE id = $1 AND workspace_id = $2",
                        &[&id.as_str(), &workspace.as_str()],
                    )?;
                    if removed == 0 {
                        return Err(not_found("API key", id.as_str()));
                    }
                    notify(txn, Change::Keys)?;
                    append_audit(txn, &audit)?;
                    snapshot(txn, &snapshots)
                })
                .await?;
            store.install_keys(keys);
            Ok(())
        })
    }
}
