//! The event catalog's rows and routines' last fired slots.

use std::collections::HashMap;
use std::sync::Arc;

use redb::{ReadableTable, WriteTransaction};
use serde_json::{Map, Value};

use super::RedbStore;
use super::audit::append_audit;
use super::rows::time_by_rule;
use super::tables::{EVENT_TYPES, ROUTINE_LAST_FIRED};
use crate::domain::audit::AuditEntry;
use crate::domain::catalog::{Declared, StoredType, structure_only};
use crate::domain::event::EventType;
use crate::domain::ids::{RuleId, WorkspaceId};
use crate::domain::subject::SubjectPath;
use crate::store::seal::RowSeal;
use crate::store::{CatalogStore, StoreError, StoreFuture};

impl RedbStore {
    /// Every declared subject path, read from the catalog (at open).
    pub(super) fn refresh_subject_paths(&self) -> Result<(), StoreError> {
        if !self.seal.can_open() {
            return Ok(());
        }
        self.subject_paths.reload(|| {
            let txn = self.read()?;
            let mut rows = Vec::new();
            for entry in txn.open_table(EVENT_TYPES)?.iter()? {
                let (key, value) = entry?;
                let (ws, name) = key.value();
                if let (Some(ws), Ok(name)) = (WorkspaceId::parse(ws), EventType::parse(name)) {
                    rows.push((ws, name, self.seal.open_event_type(value.value())?));
                }
            }
            Ok(rows)
        })
    }
}

impl CatalogStore for RedbStore {
    /// Every stored catalog row of a workspace, by type name.
    fn event_types(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Vec<(EventType, StoredType)>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(EVENT_TYPES)?;
        let mut out = Vec::new();
        for entry in table.range((workspace.as_str(), "")..)? {
            let (key, value) = entry?;
            let (ws, name) = key.value();
            if ws != workspace.as_str() {
                break;
            }
            if let Ok(name) = EventType::parse(name) {
                out.push((name, self.seal.open_event_type(value.value())?));
            }
        }
        Ok(out)
    }

    fn event_type(
        &self,
        workspace: &WorkspaceId,
        name: &EventType,
    ) -> Result<Option<StoredType>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(EVENT_TYPES)?;
        table
            .get((workspace.as_str(), name.as_str()))?
            .map(|v| self.seal.open_event_type(v.value()))
            .transpose()
    }

    fn subject_path(&self, workspace: &WorkspaceId, name: &EventType) -> Option<SubjectPath> {
        self.subject_paths.get(workspace, name)
    }

    /// Declares (or re-declares) a type with its description and sample; returns the row.
    fn declare_event_type(
        &self,
        workspace: WorkspaceId,
        name: EventType,
        declared: Declared,
        audit: AuditEntry,
    ) -> StoreFuture<StoredType> {
        let (writer, seal) = (self.writer.clone(), self.seal.clone());
        let paths = Arc::clone(&self.subject_paths);
        let (ws, type_name) = (workspace.clone(), name.clone());
        Box::pin(async move {
            let row = writer
                .write_async(move |txn| {
                    let row = update_row(txn, &seal, &workspace, &name, |row| {
                        row.declared = Some(declared);
                        row.subject_missing = None;
                    })?;
                    append_audit(txn, &audit)?;
                    Ok(row)
                })
                .await?;
            // One process owns the file: its memory is the only copy to keep true.
            paths.update(&ws, &type_name, &row);
            Ok(row)
        })
    }

    /// Records that an event of this type arrived, keeping its data as the type's latest
    /// sample (only its key structure when `keep_values` is false). Lazy and throttled: a
    /// lost or skipped update only leaves an older sample.
    fn note_event_seen(
        &self,
        workspace: &WorkspaceId,
        name: &EventType,
        data: &Map<String, Value>,
        keep_values: bool,
        now: i64,
    ) {
        if !self.seen_types.admit(workspace, name, now) {
            return;
        }
        let sample = if keep_values {
            data.clone()
        } else {
            structure_only(data)
        };
        let (workspace, name, seal) = (workspace.clone(), name.clone(), self.seal.clone());
        // Sealing here, on the writer thread, is fine: it happens at most once a minute per type.
        // Ingest calls this on a request thread, so a full write queue skips the update.
        self.writer.try_submit_lazy(
            move |txn| {
                update_row(txn, &seal, &workspace, &name, |row| {
                    row.seen_sample = Some(sample);
                    row.first_seen_at.get_or_insert(now);
                    row.last_seen_at = Some(now);
                })
                .map(drop)
            },
            |r| match r {
                Ok(()) => {}
                Err(StoreError::Overloaded) => {
                    tracing::debug!("write queue full: an event type's seen sample was skipped");
                }
                Err(e) => {
                    tracing::error!(error = %e, "could not record an event type in the catalog");
                }
            },
        );
    }

    fn note_subject_missing(
        &self,
        workspace: &WorkspaceId,
        name: &EventType,
        reason: String,
        now: i64,
    ) {
        if !self.subject_misses.admit(workspace, name, now) {
            return;
        }
        let (workspace, name, seal) = (workspace.clone(), name.clone(), self.seal.clone());
        self.writer.try_submit_lazy(
            move |txn| {
                update_row(txn, &seal, &workspace, &name, |row| {
                    row.subject_missing = Some((reason, now));
                })
                .map(drop)
            },
            |r| {
                if let Err(e) = r {
                    tracing::debug!(error = %e, "an event type's missing-subject note was skipped");
                }
            },
        );
    }

    /// The last slot each routine fired for.
    fn routine_last_fired(&self) -> Result<HashMap<RuleId, i64>, StoreError> {
        time_by_rule(&self.read()?, ROUTINE_LAST_FIRED)
    }
}

/// Keeps the shape of an erased event type's stored seen sample and none of its values: it
/// may have been the erased subject's data (when `logs.store_bodies` keeps values).
pub(super) fn scrub_seen_sample(
    txn: &WriteTransaction,
    seal: &RowSeal,
    workspace: &WorkspaceId,
    name: &EventType,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(EVENT_TYPES)?;
    let key = (workspace.as_str(), name.as_str());
    let Some(mut row) = table
        .get(key)?
        .map(|v| seal.open_event_type(v.value()))
        .transpose()?
    else {
        return Ok(());
    };
    if let Some(sample) = &row.seen_sample {
        let scrubbed = structure_only(sample);
        if &scrubbed != sample {
            row.seen_sample = Some(scrubbed);
            table.insert(key, seal.event_type(&row)?.as_slice())?;
        }
    }
    Ok(())
}

/// Reads a type's row (or a blank one), changes it and writes it back; returns it.
fn update_row(
    txn: &WriteTransaction,
    seal: &RowSeal,
    workspace: &WorkspaceId,
    name: &EventType,
    change: impl FnOnce(&mut StoredType),
) -> Result<StoredType, StoreError> {
    let mut table = txn.open_table(EVENT_TYPES)?;
    let key = (workspace.as_str(), name.as_str());
    let mut row: StoredType = table
        .get(key)?
        .map(|v| seal.open_event_type(v.value()))
        .transpose()?
        .unwrap_or_default();
    change(&mut row);
    table.insert(key, seal.event_type(&row)?.as_slice())?;
    Ok(row)
}
