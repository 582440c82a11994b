//! The event catalog's rows, routines' last fired slots, and the dashboard's hourly counters.

use super::engine::PgTxn;
use std::collections::HashMap;

use serde_json::{Map, Value};

use super::audit::append_audit;
use super::changes::{Change, notify};
use super::{PgStore, json_text};
use crate::domain::audit::AuditEntry;
use crate::domain::catalog::{Declared, StoredType, structure_only};
use crate::domain::event::EventType;
use crate::domain::ids::{RuleId, WorkspaceId};
use crate::domain::subject::SubjectPath;
use crate::store::seal::RowSeal;
use crate::store::{CatalogStore, ConditionErrorCount, StatsStore, StoreError, StoreFuture};

const HOUR_MS: i64 = 3_600_000;

impl PgStore {
    fn open_type(&self, row: &postgres::Row) -> Result<StoredType, StoreError> {
        self.seal
            .open_event_type(row.get::<_, &str>("row").as_bytes())
    }

    /// Reloads every declared subject path: at start, after a declaration here, and when
    /// another node says one changed.
    pub(super) fn refresh_subject_paths(&self) -> Result<(), StoreError> {
        self.reload_subject_paths(&mut *self.conn()?)
    }

    fn reload_subject_paths(&self, client: &mut postgres::Client) -> Result<(), StoreError> {
        if !self.seal.can_open() {
            return Ok(());
        }
        self.subject_paths.reload(|| {
            let rows = client.query(
                "SELECT workspace_id, name, row::text AS row FROM event_types",
                &[],
            )?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let (ws, name) = (row.get::<_, &str>("workspace_id"), row.get("name"));
                if let (Some(ws), Ok(name)) = (WorkspaceId::parse(ws), EventType::parse(name)) {
                    out.push((ws, name, self.open_type(row)?));
                }
            }
            Ok(out)
        })
    }
}

impl CatalogStore for PgStore {
    fn event_types(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Vec<(EventType, StoredType)>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT name, row::text AS row FROM event_types WHERE workspace_id = $1 ORDER BY name",
            &[&workspace.as_str()],
        )?;
        let mut out = Vec::with_capacity(rows.len());
        for row in &rows {
            if let Ok(name) = EventType::parse(row.get::<_, &str>("name")) {
                out.push((name, self.open_type(row)?));
            }
        }
        Ok(out)
    }

    fn event_type(
        &self,
        workspace: &WorkspaceId,
        name: &EventType,
    ) -> Result<Option<StoredType>, StoreError> {
        let row = self.conn()?.query_opt(
            "SELECT row::text AS row FROM event_types WHERE workspace_id = $1 AND name = $2",
            &[&workspace.as_str(), &name.as_str()],
        )?;
        row.map(|r| self.open_type(&r)).transpose()
    }

    fn subject_path(&self, workspace: &WorkspaceId, name: &EventType) -> Option<SubjectPath> {
        self.subject_paths.get(workspace, name)
    }

    fn declare_event_type(
        &self,
        workspace: WorkspaceId,
        name: EventType,
        declared: Declared,
        audit: AuditEntry,
    ) -> StoreFuture<StoredType> {
        let (writer, seal, store) = (self.writer.clone(), self.seal.clone(), self.clone());
        Box::pin(async move {
            let row = writer
                .write_async(move |txn| {
                    let row = update_row(txn, &seal, &workspace, &name, |row| {
                        row.declared = Some(declared);
                        row.subject_missing = None;
                    })?;
                    append_audit(txn, &audit)?;
                    notify(txn, Change::Catalog)?;
                    Ok(row)
                })
                .await?;
            // This node's copy at once, so its next ingest already uses the path: read on
            // the writer's thread (the `postgres` client must not run on an async one) after
            // the commit, so it holds this write. The others' when the notification reaches
            // them.
            let reader = store.clone();
            store
                .writer
                .write_async(move |txn| reader.reload_subject_paths(txn.client()))
                .await?;
            Ok(row)
        })
    }

    /// Lazy and throttled per process, as on redb: a lost or skipped update only leaves an
    /// older sample.
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

    /// Lazy and throttled like `note_event_seen`.
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

    fn routine_last_fired(&self) -> Result<HashMap<RuleId, i64>, StoreError> {
        let rows = self
            .conn()?
            .query("SELECT rule_id, slot FROM routine_last_fired", &[])?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((RuleId::parse(r.get(0))?, r.get(1))))
            .collect())
    }
}

/// Keeps the shape of an erased event type's stored seen sample and none of its values: it
/// may have been the erased subject's data (when `logs.store_bodies` keeps values).
pub(super) fn scrub_seen_sample(
    txn: &mut PgTxn,
    seal: &RowSeal,
    workspace: &WorkspaceId,
    name: &EventType,
) -> Result<(), StoreError> {
    let exists = txn.query_opt(
        "SELECT 1 FROM event_types WHERE workspace_id = $1 AND name = $2",
        &[&workspace.as_str(), &name.as_str()],
    )?;
    if exists.is_some() {
        update_row(txn, seal, workspace, name, |row| {
            row.seen_sample = row.seen_sample.as_ref().map(structure_only);
        })?;
    }
    Ok(())
}

/// Reads a type's row (or a blank one) locked, changes it and writes it back; returns it.
fn update_row(
    txn: &mut PgTxn,
    seal: &RowSeal,
    workspace: &WorkspaceId,
    name: &EventType,
    change: impl FnOnce(&mut StoredType),
) -> Result<StoredType, StoreError> {
    let existing = txn.query_opt(
        "SELECT row::text AS row FROM event_types WHERE workspace_id = $1 AND name = $2 FOR UPDATE",
        &[&workspace.as_str(), &name.as_str()],
    )?;
    let mut row = existing
        .map(|r| seal.open_event_type(r.get::<_, &str>("row").as_bytes()))
        .transpose()?
        .unwrap_or_default();
    change(&mut row);
    txn.execute(
        "INSERT INTO event_types (workspace_id, name, row) VALUES ($1, $2, $3::text::json)
         ON CONFLICT (workspace_id, name) DO UPDATE SET row = EXCLUDED.row",
        &[
            &workspace.as_str(),
            &name.as_str(),
            &json_text(seal.event_type(&row)?),
        ],
    )?;
    Ok(row)
}

impl StatsStore for PgStore {
    fn hourly_outcomes(
        &self,
        workspace: &WorkspaceId,
        now_ms: i64,
        hours: i64,
    ) -> Result<Vec<(i64, u64, u64)>, StoreError> {
        let last = now_ms.div_euclid(HOUR_MS);
        let first = last - hours + 1;
        let mut out: Vec<(i64, u64, u64)> = (first..=last).map(|h| (h * HOUR_MS, 0, 0)).collect();
        let rows = self.conn()?.query(
            "SELECT hour, sum(succeeded)::bigint, sum(failed)::bigint FROM hourly_outcomes
             WHERE workspace_id = $1 AND hour BETWEEN $2 AND $3 GROUP BY hour",
            &[&workspace.as_str(), &first, &last],
        )?;
        for row in &rows {
            let hour: i64 = row.get(0);
            if let Some(slot) = usize::try_from(hour - first)
                .ok()
                .and_then(|i| out.get_mut(i))
            {
                slot.1 = u64::try_from(row.get::<_, i64>(1)).unwrap_or(0);
                slot.2 = u64::try_from(row.get::<_, i64>(2)).unwrap_or(0);
            }
        }
        Ok(out)
    }

    fn open_count_in(&self, workspace: &WorkspaceId) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()?
            .query_one(
                "SELECT count(*) FROM open_deliveries o JOIN deliveries d ON d.id = o.delivery_id
                 WHERE d.workspace_id = $1",
                &[&workspace.as_str()],
            )?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    fn condition_errors_since(
        &self,
        workspace: &WorkspaceId,
        since_ms: i64,
    ) -> Result<Vec<ConditionErrorCount>, StoreError> {
        let from = since_ms.div_euclid(HOUR_MS) * HOUR_MS;
        let rows = self.conn()?.query(
            "SELECT rule_id, count(*), max(created_at) FROM condition_error_log
             WHERE workspace_id = $1 AND created_at >= $2 GROUP BY rule_id",
            &[&workspace.as_str(), &from],
        )?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                Some(ConditionErrorCount {
                    rule_id: RuleId::parse(row.get(0))?,
                    count: u64::try_from(row.get::<_, i64>(1)).unwrap_or(0),
                    latest_at: row.get(2),
                })
            })
            .collect())
    }
}
