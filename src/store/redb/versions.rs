//! Rule versions and drafts (SPEC §14): the versions table, one row per published version,
//! and the drafts table, at most one per rule. A publish writes the rule, its version and
//! its audit entry (and removes the draft it publishes) in one transaction.

use redb::{ReadableTable, TableHandle, WriteTransaction};

use super::RedbStore;
use super::audit::append_audit;
use super::rows::{get, get_w, put};
use super::tables::{RULE_DRAFTS, RULE_VERSIONS, RULES};
use crate::domain::audit::AuditEntry;
use crate::domain::ids::{RuleId, WorkspaceId};
use crate::domain::rule::{Rule, RuleDraft, RuleVersion, versions_to_write};
use crate::store::codec;
use crate::store::types::not_found;
use crate::store::{Publish, RuleVersionStore, StoreError, StoreFuture};

/// Removes a rule's versions and draft, in the transaction that deletes the rule.
pub(super) fn forget_versions(txn: &WriteTransaction, id: &RuleId) -> Result<(), StoreError> {
    let mut versions = txn.open_table(RULE_VERSIONS)?;
    let numbers = versions
        .range((id.as_str(), 0)..=(id.as_str(), u32::MAX))?
        .map(|entry| entry.map(|(k, _)| k.value().1))
        .collect::<Result<Vec<u32>, _>>()?;
    for n in numbers {
        versions.remove((id.as_str(), n))?;
    }
    txn.open_table(RULE_DRAFTS)?.remove(id.as_str())?;
    Ok(())
}

/// A draft the caller read: still there, and not saved again since.
fn check_draft(txn: &WriteTransaction, id: &RuleId, saved_at: i64) -> Result<(), StoreError> {
    let draft: Option<RuleDraft> = get_w(txn, RULE_DRAFTS, id.as_str())?;
    match draft {
        Some(d) if d.saved_at == saved_at => Ok(()),
        Some(_) => Err(StoreError::Conflict(format!(
            "the draft of rule {id} was saved again while it was being published: look at it again, then publish"
        ))),
        None => Err(StoreError::Conflict(format!(
            "the draft of rule {id} was published or discarded meanwhile"
        ))),
    }
}

impl RuleVersionStore for RedbStore {
    fn rule_versions(&self, id: &RuleId) -> Result<Vec<RuleVersion>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(RULE_VERSIONS)?;
        let mut out = Vec::new();
        for entry in table.range((id.as_str(), 0)..=(id.as_str(), u32::MAX))? {
            let (_, v) = entry?;
            out.push(codec::decode(RULE_VERSIONS.name(), v.value())?);
        }
        Ok(out)
    }

    fn rule_draft(&self, id: &RuleId) -> Result<Option<RuleDraft>, StoreError> {
        get(&self.read()?, RULE_DRAFTS, id.as_str())
    }

    fn save_rule_draft(&self, draft: RuleDraft, audit: AuditEntry) -> StoreFuture<RuleDraft> {
        let writer = self.writer.clone();
        Box::pin(async move {
            writer
                .write_async(move |txn| {
                    get_w::<Rule>(txn, RULES, draft.rule_id.as_str())?
                        .filter(|r| r.workspace_id == draft.workspace_id)
                        .ok_or_else(|| not_found("rule", draft.rule_id.as_str()))?;
                    put(txn, RULE_DRAFTS, draft.rule_id.as_str(), &draft)?;
                    append_audit(txn, &audit)?;
                    Ok(draft)
                })
                .await
        })
    }

    fn delete_rule_draft(
        &self,
        workspace: WorkspaceId,
        id: RuleId,
        audit: AuditEntry,
    ) -> StoreFuture<RuleDraft> {
        let writer = self.writer.clone();
        Box::pin(async move {
            writer
                .write_async(move |txn| {
                    let draft: RuleDraft = get_w::<RuleDraft>(txn, RULE_DRAFTS, id.as_str())?
                        .filter(|d| d.workspace_id == workspace)
                        .ok_or_else(|| not_found("draft", id.as_str()))?;
                    txn.open_table(RULE_DRAFTS)?.remove(id.as_str())?;
                    append_audit(txn, &audit)?;
                    Ok(draft)
                })
                .await
        })
    }

    fn publish_rule(&self, publish: Publish, audit: AuditEntry) -> StoreFuture<RuleVersion> {
        let store = self.clone();
        Box::pin(async move {
            let published = store
                .writer
                .write_async(move |txn| {
                    let Publish {
                        mut rule,
                        by,
                        expect_existing,
                        from_draft,
                    } = publish;
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
                    if let Some(saved_at) = from_draft {
                        check_draft(txn, &rule.id, saved_at)?;
                        txn.open_table(RULE_DRAFTS)?.remove(rule.id.as_str())?;
                    }
                    let versions = versions_to_write(existing.as_ref(), &mut rule, by);
                    {
                        let mut table = txn.open_table(RULE_VERSIONS)?;
                        for v in &versions {
                            table.insert(
                                (v.rule_id.as_str(), v.version),
                                codec::encode(v).as_slice(),
                            )?;
                        }
                    }
                    put(txn, RULES, rule.id.as_str(), &rule)?;
                    append_audit(txn, &audit)?;
                    Ok(versions.into_iter().last().expect("the new version"))
                })
                .await?;
            store.refresh_rules()?;
            Ok(published)
        })
    }
}
