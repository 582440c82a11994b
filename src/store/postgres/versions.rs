//! Rule versions and drafts (SPEC §14): `rule_versions`, one row per published version, and
//! `rule_drafts`, at most one per rule; both go with their rule (`ON DELETE CASCADE`). A
//! publish writes the rule, its version and its audit entry (and removes the draft it
//! publishes) in one transaction, the rule row locked.

use std::sync::Arc;

use super::engine::PgTxn;

use super::audit::append_audit;
use super::rules::{put_rule, rule_for_update, snapshot};
use super::{PgStore, decode};
use crate::domain::audit::AuditEntry;
use crate::domain::ids::{RuleId, WorkspaceId};
use crate::domain::rule::{RuleDraft, RuleVersion, versions_to_write};
use crate::store::codec::encode_str;
use crate::store::types::not_found;
use crate::store::{Publish, RuleVersionStore, StoreError, StoreFuture};

fn draft_for_update(txn: &mut PgTxn, id: &RuleId) -> Result<Option<RuleDraft>, StoreError> {
    txn.query_opt(
        "SELECT row::text AS row FROM rule_drafts WHERE rule_id = $1 FOR UPDATE",
        &[&id.as_str()],
    )?
    .map(|r| decode("rule_drafts", &r))
    .transpose()
}

fn version_number(v: u32) -> i32 {
    i32::try_from(v).unwrap_or(i32::MAX)
}

impl RuleVersionStore for PgStore {
    fn rule_versions(&self, id: &RuleId) -> Result<Vec<RuleVersion>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT row::text AS row FROM rule_versions WHERE rule_id = $1 ORDER BY version",
            &[&id.as_str()],
        )?;
        rows.iter().map(|r| decode("rule_versions", r)).collect()
    }

    fn rule_draft(&self, id: &RuleId) -> Result<Option<RuleDraft>, StoreError> {
        self.conn()?
            .query_opt(
                "SELECT row::text AS row FROM rule_drafts WHERE rule_id = $1",
                &[&id.as_str()],
            )?
            .map(|r| decode("rule_drafts", &r))
            .transpose()
    }

    fn save_rule_draft(&self, draft: RuleDraft, audit: AuditEntry) -> StoreFuture<RuleDraft> {
        let writer = self.writer.clone();
        Box::pin(async move {
            writer
                .write_async(move |txn| {
                    rule_for_update(txn, &draft.rule_id)?
                        .filter(|r| r.workspace_id == draft.workspace_id)
                        .ok_or_else(|| not_found("rule", draft.rule_id.as_str()))?;
                    txn.execute(
                        "INSERT INTO rule_drafts (rule_id, workspace_id, row) VALUES ($1, $2, $3::text::json)
                         ON CONFLICT (rule_id) DO UPDATE SET row = EXCLUDED.row",
                        &[
                            &draft.rule_id.as_str(),
                            &draft.workspace_id.as_str(),
                            &encode_str(&draft),
                        ],
                    )?;
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
                    let draft = draft_for_update(txn, &id)?
                        .filter(|d| d.workspace_id == workspace)
                        .ok_or_else(|| not_found("draft", id.as_str()))?;
                    txn.execute(
                        "DELETE FROM rule_drafts WHERE rule_id = $1",
                        &[&id.as_str()],
                    )?;
                    append_audit(txn, &audit)?;
                    Ok(draft)
                })
                .await
        })
    }

    fn publish_rule(&self, publish: Publish, audit: AuditEntry) -> StoreFuture<RuleVersion> {
        let (store, snapshots) = (self.clone(), Arc::clone(&self.snapshots));
        Box::pin(async move {
            let (published, rules) = store
                .writer
                .write_async(move |txn| {
                    let Publish {
                        mut rule,
                        by,
                        expect_existing,
                        from_draft,
                    } = publish;
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
                    if let Some(saved_at) = from_draft {
                        match draft_for_update(txn, &rule.id)? {
                            Some(d) if d.saved_at == saved_at => {}
                            Some(_) => {
                                return Err(StoreError::Conflict(format!(
                                    "the draft of rule {} was saved again while it was being published: look at it again, then publish",
                                    rule.id
                                )));
                            }
                            None => {
                                return Err(StoreError::Conflict(format!(
                                    "the draft of rule {} was published or discarded meanwhile",
                                    rule.id
                                )));
                            }
                        }
                        txn.execute(
                            "DELETE FROM rule_drafts WHERE rule_id = $1",
                            &[&rule.id.as_str()],
                        )?;
                    }
                    let versions = versions_to_write(existing.as_ref(), &mut rule, by);
                    // The rule first: a new rule's versions refer to it.
                    put_rule(txn, &rule)?;
                    for v in &versions {
                        txn.execute(
                            "INSERT INTO rule_versions (rule_id, version, row) VALUES ($1, $2, $3::text::json)",
                            &[
                                &v.rule_id.as_str(),
                                &version_number(v.version),
                                &encode_str(v),
                            ],
                        )?;
                    }
                    append_audit(txn, &audit)?;
                    let published = versions.into_iter().last().expect("the new version");
                    Ok((published, snapshot(txn, &snapshots)?))
                })
                .await?;
            store.install_rules(rules);
            Ok(published)
        })
    }
}
