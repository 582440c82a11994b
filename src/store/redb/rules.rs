//! Rules and routines: the table, the in-memory cache every ingest and attempt reads, and
//! the failing-since clocks behind `alerts.disable_after`, and what alerts remember per rule.

use std::collections::HashMap;
use std::sync::Arc;

use redb::{ReadableTable, TableHandle};

use super::RedbStore;
use super::audit::append_audit;
use super::rows::{get, get_w, put, scan, time_by_rule};
use super::tables::{RULE_ALERTS, RULE_FAILING_SINCE, RULES};
use crate::domain::alert::RuleAlertState;
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::event::EventType;
use crate::domain::ids::{AuditId, RuleId, WorkspaceId};
use crate::domain::rule::Rule;
use crate::store::cache::RuleCache;
use crate::store::codec;
use crate::store::types::not_found;
use crate::store::{RuleStore, StoreError, StoreFuture};

impl RedbStore {
    /// Reloads the cache from the table; every rule write calls it before returning.
    pub(super) fn refresh_rules(&self) -> Result<(), StoreError> {
        let rules: Vec<Rule> = scan(&self.read()?, RULES)?;
        if let Ok(mut slot) = self.rules.write() {
            *slot = Arc::new(RuleCache::new(rules));
        }
        Ok(())
    }
}

impl RuleStore for RedbStore {
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
        get::<Rule>(&self.read()?, RULES, id.as_str())?
            .filter(|r| &r.workspace_id == workspace)
            .ok_or_else(|| not_found("rule", id.as_str()))
    }

    fn rules(&self, workspace: &WorkspaceId) -> Result<Vec<Rule>, StoreError> {
        let rules: Vec<Rule> = scan(&self.read()?, RULES)?;
        Ok(rules
            .into_iter()
            .filter(|r| &r.workspace_id == workspace)
            .collect())
    }

    fn save_rule(&self, rule: Rule, expect_existing: bool, audit: AuditEntry) -> StoreFuture<Rule> {
        let store = self.clone();
        Box::pin(async move {
            let saved = store
                .writer
                .write_async(move |txn| {
                    let existing: Option<Rule> = get_w(txn, RULES, rule.id.as_str())?;
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
                    put(txn, RULES, rule.id.as_str(), &rule)?;
                    append_audit(txn, &audit)?;
                    Ok(rule)
                })
                .await?;
            store.refresh_rules()?;
            Ok(saved)
        })
    }

    fn delete_rule(
        &self,
        workspace: WorkspaceId,
        id: RuleId,
        audit: AuditEntry,
    ) -> StoreFuture<Rule> {
        let store = self.clone();
        Box::pin(async move {
            let removed = store
                .writer
                .write_async(move |txn| {
                    let rule: Rule = get_w::<Rule>(txn, RULES, id.as_str())?
                        .filter(|r| r.workspace_id == workspace)
                        .ok_or_else(|| not_found("rule", id.as_str()))?;
                    txn.open_table(RULES)?.remove(id.as_str())?;
                    super::versions::forget_versions(txn, &id)?;
                    append_audit(txn, &audit)?;
                    Ok(rule)
                })
                .await?;
            store.refresh_rules()?;
            Ok(removed)
        })
    }

    fn deactivate_rule(&self, id: &RuleId, reason: String) -> Result<(), StoreError> {
        let (id, clock) = (id.clone(), self.clock.clone());
        self.writer.write(move |txn| {
            if let Some(mut rule) = get_w::<Rule>(txn, RULES, id.as_str())? {
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
                put(txn, RULES, id.as_str(), &rule)?;
                append_audit(txn, &audit)?;
            }
            Ok(())
        })?;
        self.refresh_rules()
    }

    fn rules_failing_since(&self) -> Result<HashMap<RuleId, i64>, StoreError> {
        time_by_rule(&self.read()?, RULE_FAILING_SINCE)
    }

    fn set_rule_failing_since(&self, id: &RuleId, since: Option<i64>) {
        let id = id.clone();
        self.writer.submit_lazy(
            move |txn| {
                let mut table = txn.open_table(RULE_FAILING_SINCE)?;
                match since {
                    Some(at) => table.insert(id.as_str(), at)?,
                    None => table.remove(id.as_str())?,
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

    fn rule_alert_states(&self) -> Result<HashMap<RuleId, RuleAlertState>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(RULE_ALERTS)?;
        let mut out = HashMap::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            if let Some(id) = RuleId::parse(k.value()) {
                out.insert(id, codec::decode(RULE_ALERTS.name(), v.value())?);
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
                Some(state) => put(txn, RULE_ALERTS, id.as_str(), &state)?,
                None => {
                    txn.open_table(RULE_ALERTS)?.remove(id.as_str())?;
                }
            }
            Ok(())
        })
    }
}
