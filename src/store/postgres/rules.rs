//! Rules and routines: the table, the in-memory cache every ingest and attempt reads
//! (refreshed on every node by changes.rs), and the failing-since clocks.

use super::engine::PgTxn;
use std::collections::HashMap;
use std::sync::Arc;

use postgres::GenericClient;

use super::audit::append_audit;
use super::changes::{Change, notify};
use super::{PgStore, Snapshots, decode};
use crate::domain::alert::RuleAlertState;
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::event::EventType;
use crate::domain::ids::{AuditId, RuleId, WorkspaceId};
use crate::domain::rule::Rule;
use crate::store::cache::RuleCache;
use crate::store::codec::encode_str;
use crate::store::types::not_found;
use crate::store::{RuleStore, StoreError, StoreFuture};

impl PgStore {
    /// Reloads the cache from the table: after every rule write here, and when another
    /// node says rules changed.
    pub(super) fn refresh_rules(&self) -> Result<(), StoreError> {
        let ticket = self.snapshots.ticket();
        let rules = rules_of(&mut **self.conn()?, None)?;
        self.install_rules((ticket, rules));
        Ok(())
    }

    /// Fills the cache from a snapshot, unless a newer one is there already.
    pub(super) fn install_rules(&self, (ticket, rules): RuleSnapshot) {
        if Snapshots::newer(&self.snapshots.rules, ticket)
            && let Ok(mut slot) = self.rules.write()
        {
            *slot = Arc::new(RuleCache::new(rules));
        }
    }
}

/// Every rule, read in a write's transaction with its ticket.
pub(super) type RuleSnapshot = (u64, Vec<Rule>);

pub(super) fn snapshot(txn: &mut PgTxn, snapshots: &Snapshots) -> Result<RuleSnapshot, StoreError> {
    let ticket = snapshots.ticket();
    Ok((ticket, rules_of(txn.client(), None)?))
}

fn rules_of(
    client: &mut impl GenericClient,
    workspace: Option<&WorkspaceId>,
) -> Result<Vec<Rule>, StoreError> {
    let rows = client.query(
        "SELECT row::text AS row FROM rules WHERE $1::text IS NULL OR workspace_id = $1 ORDER BY id",
        &[&workspace.map(WorkspaceId::as_str)],
    )?;
    rows.iter().map(|r| decode("rules", r)).collect()
}

pub(super) fn rule_for_update(txn: &mut PgTxn, id: &RuleId) -> Result<Option<Rule>, StoreError> {
    txn.query_opt(
        "SELECT row::text AS row FROM rules WHERE id = $1 FOR UPDATE",
        &[&id.as_str()],
    )?
    .map(|r| decode("rules", &r))
    .transpose()
}

pub(super) fn put_rule(txn: &mut PgTxn, rule: &Rule) -> Result<(), StoreError> {
    txn.execute(
        "INSERT INTO rules (id, workspace_id, row) VALUES ($1, $2, $3::text::json)
         ON CONFLICT (id) DO UPDATE SET workspace_id = EXCLUDED.workspace_id, row = EXCLUDED.row",
        &[
            &rule.id.as_str(),
            &rule.workspace_id.as_str(),
            &encode_str(rule),
        ],
    )?;
    notify(txn, Change::Rules)
}

impl RuleStore for PgStore {
    fn cached_rule(&self, id: &RuleId) -> Option<Arc<Rule>> {
        self.rules.read().ok()?.get(id)
    }

    fn matching_rules(&self, workspace: &WorkspaceId, event_type: &EventType) -> Vec<Arc<Rule>> {
        self.rules
            .read()
            .map(|cache| cache.matching(workspace, event_type))
            .unwrap_or_default()
    }

    fn routines(&self) -> Vec<Arc<Rule>> {
        self.rules
            .read()
            .map(|cache| cache.routines())
            .unwrap_or_default()
    }

    fn rules_with_retention(&self) -> Vec<(RuleId, u32)> {
        self.rules
            .read()
            .map(|cache| cache.with_retention())
            .unwrap_or_default()
    }

    fn rule(&self, workspace: &WorkspaceId, id: &RuleId) -> Result<Rule, StoreError> {
        let row = self.conn()?.query_opt(
            "SELECT row::text AS row FROM rules WHERE id = $1 AND workspace_id = $2",
            &[&id.as_str(), &workspace.as_str()],
        )?;
        row.map(|r| decode("rules", &r))
            .transpose()?
            .ok_or_else(|| not_found("rule", id.as_str()))
    }

    fn rules(&self, workspace: &WorkspaceId) -> Result<Vec<Rule>, StoreError> {
        rules_of(&mut **self.conn()?, Some(workspace))
    }

    fn save_rule(&self, rule: Rule, expect_existing: bool, audit: AuditEntry) -> StoreFuture<Rule> {
        let (store, snapshots) = (self.clone(), Arc::clone(&self.snapshots));
        Box::pin(async move {
            let (saved, rules) = store
                .writer
                .write_async(move |txn| {
                    let existing = rule_for_update(txn, &rule.id)?;
                    match (&existing, expect_existing) {
                        (None, true) => return Err(not_found("rule", rule.id.as_str())),
                        (Some(_), false) => {
                            return Err(StoreError::Conflict(format!(
                                "rule {} already exists",
                                rule.id
                            )));
                        }
                        _ => {}
                    }
                    put_rule(txn, &rule)?;
                    append_audit(txn, &audit)?;
                    Ok((rule, snapshot(txn, &snapshots)?))
                })
                .await?;
            store.install_rules(rules);
            Ok(saved)
        })
    }

    fn delete_rule(
        &self,
        workspace: WorkspaceId,
        id: RuleId,
        audit: AuditEntry,
    ) -> StoreFuture<Rule> {
        let (store, snapshots) = (self.clone(), Arc::clone(&self.snapshots));
        Box::pin(async move {
            let (removed, rules) = store
                .writer
                .write_async(move |txn| {
                    let rule = rule_for_update(txn, &id)?
                        .filter(|r| r.workspace_id == workspace)
                        .ok_or_else(|| not_found("rule", id.as_str()))?;
                    txn.execute("DELETE FROM rules WHERE id = $1", &[&id.as_str()])?;
                    notify(txn, Change::Rules)?;
                    append_audit(txn, &audit)?;
                    Ok((rule, snapshot(txn, &snapshots)?))
                })
                .await?;
            store.install_rules(rules);
            Ok(removed)
        })
    }

    fn deactivate_rule(&self, id: &RuleId, reason: String) -> Result<(), StoreError> {
        let (id, clock) = (id.clone(), self.clock.clone());
        self.writer.write(move |txn| {
            if let Some(mut rule) = rule_for_update(txn, &id)? {
                let now = clock.now_ms();
                let mut audit = AuditEntry::new(
                    &rule.workspace_id,
                    Actor::System,
                    "rule.deactivate",
                    "rule",
                    id.as_str(),
                )
                .detail(reason.clone());
                // Stamped by the store's clock, like the rule itself.
                audit.at = now;
                audit.id = AuditId::generate(now);
                rule.active = false;
                rule.status_reason = Some(reason);
                rule.updated_at = now;
                put_rule(txn, &rule)?;
                append_audit(txn, &audit)?;
            }
            Ok(())
        })?;
        self.refresh_rules()
    }

    fn rules_failing_since(&self) -> Result<HashMap<RuleId, i64>, StoreError> {
        let rows = self
            .conn()?
            .query("SELECT rule_id, since FROM rule_failing_since", &[])?;
        Ok(rows
            .iter()
            .filter_map(|r| Some((RuleId::parse(r.get(0))?, r.get(1))))
            .collect())
    }

    fn rule_alert_states(&self) -> Result<HashMap<RuleId, RuleAlertState>, StoreError> {
        let rows = self
            .conn()?
            .query("SELECT rule_id, row::text AS row FROM rule_alerts", &[])?;
        let mut out = HashMap::new();
        for row in &rows {
            if let Some(id) = RuleId::parse(row.get(0)) {
                out.insert(id, decode("rule_alerts", row)?);
            }
        }
        Ok(out)
    }

    fn set_rule_alert_state(
        &self,
        id: &RuleId,
        state: Option<RuleAlertState>,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        self.writer.write(move |txn| {
            match state {
                Some(state) => txn.execute(
                    "INSERT INTO rule_alerts (rule_id, row) VALUES ($1, $2::text::json)
                     ON CONFLICT (rule_id) DO UPDATE SET row = EXCLUDED.row",
                    &[&id.as_str(), &encode_str(&state)],
                )?,
                None => txn.execute(
                    "DELETE FROM rule_alerts WHERE rule_id = $1",
                    &[&id.as_str()],
                )?,
            };
            Ok(())
        })
    }

    fn set_rule_failing_since(&self, id: &RuleId, since: Option<i64>) {
        let id = id.clone();
        self.writer.submit_lazy_rerunnable(
            move |txn| {
                match since {
                    Some(at) => txn.execute(
                        "INSERT INTO rule_failing_since (rule_id, since) VALUES ($1, $2)
                         ON CONFLICT (rule_id) DO UPDATE SET since = EXCLUDED.since",
                        &[&id.as_str(), &at],
                    )?,
                    None => txn.execute(
                        "DELETE FROM rule_failing_since WHERE rule_id = $1",
                        &[&id.as_str()],
                    )?,
                };
                Ok(())
            },
            |r| {
                if let Err(e) = r {
                    tracing::error!(error = %e, "could not record rule failure state");
                }
            },
        );
    }
}
