//! The people events are about (§13): the accounting of disclosures of one subject's data
//! (HIPAA 45 CFR 164.528), as JSON pages or one CSV, and a subject's erasure. Both are
//! audited under the subject's hash, never the subject itself.

use super::paging::page_cursor;
use super::{AppState, blocking};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::ids::{DeliveryId, WorkspaceId};
use crate::domain::subject::{Disclosure, Erased, Subject, SubjectHash};
use crate::domain::time::to_rfc3339;
use crate::error::AppError;
use crate::store::{DisclosureFilter, StoreError};

/// Most disclosures one CSV export holds; an accounting longer than this is asked for in
/// time windows (`since`, `until`).
pub const MAX_EXPORT: usize = 10_000;

/// What a disclosure list asks for, as given.
#[derive(Debug, Default)]
pub struct DisclosureQuery<'a> {
    pub subject: &'a str,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub cursor: Option<&'a str>,
    pub limit: usize,
}

/// The subject's hash under this installation's subject key, or why the subject is refused.
fn hash(state: &AppState, subject: &str) -> Result<SubjectHash, AppError> {
    let subject = Subject::parse(subject).map_err(AppError::validation)?;
    let key = state.master_key.subject_key().ok_or_else(|| {
        AppError::internal(anyhow::anyhow!(
            "the store has not set the subject key of its master key"
        ))
    })?;
    Ok(key.hash(&subject))
}

/// One page of a subject's disclosures, oldest first, and the next cursor; audited.
pub async fn disclosures(
    state: &AppState,
    workspace: WorkspaceId,
    actor: Actor,
    query: &DisclosureQuery<'_>,
) -> Result<(Vec<Disclosure>, Option<DeliveryId>), AppError> {
    let subject = hash(state, query.subject)?;
    let filter = DisclosureFilter {
        since: query.since,
        until: query.until,
        after: page_cursor(query.cursor, DeliveryId::parse)?,
        limit: query.limit,
    };
    let audit = AuditEntry::new(
        &workspace,
        actor,
        "subject.disclosures.view",
        "subject",
        subject.as_str(),
    );
    let store = state.store.clone();
    let (ws, who) = (workspace, subject);
    let page = blocking(move || store.disclosures(&ws, &who, &filter)).await?;
    state.store.audit(audit).await?;
    Ok(page)
}

/// Every disclosure of a subject in the window (at most `MAX_EXPORT`), as CSV with a header
/// row; audited as one reading.
pub async fn disclosures_csv(
    state: &AppState,
    workspace: WorkspaceId,
    actor: Actor,
    query: &DisclosureQuery<'_>,
) -> Result<String, AppError> {
    let subject = hash(state, query.subject)?;
    let store = state.store.clone();
    let (ws, who) = (workspace.clone(), subject.clone());
    let mut filter = DisclosureFilter {
        since: query.since,
        until: query.until,
        after: None,
        limit: MAX_EXPORT,
    };
    let all = blocking(move || {
        let mut all = Vec::new();
        loop {
            let (page, next) = store.disclosures(&ws, &who, &filter)?;
            all.extend(page);
            match next {
                Some(next) if all.len() < MAX_EXPORT => {
                    filter.after = Some(next);
                    filter.limit = MAX_EXPORT - all.len();
                }
                _ => return Ok::<_, StoreError>(all),
            }
        }
    })
    .await?;
    let audit = AuditEntry::new(
        &workspace,
        actor,
        "subject.disclosures.export",
        "subject",
        subject.as_str(),
    )
    .detail(format!("{} disclosures as CSV", all.len()));
    state.store.audit(audit).await?;
    to_csv(&all)
}

/// The CSV columns are the JSON fields, the rule flattened to `rule_id` and `rule_name`.
pub const CSV_HEADER: [&str; 9] = [
    "delivery_id",
    "event_id",
    "event_type",
    "rule_id",
    "rule_name",
    "destination",
    "status",
    "first_attempt_at",
    "succeeded_at",
];

fn to_csv(rows: &[Disclosure]) -> Result<String, AppError> {
    let mut out = csv::Writer::from_writer(Vec::new());
    let failed = |e: csv::Error| AppError::internal(anyhow::anyhow!("writing the CSV failed: {e}"));
    out.write_record(CSV_HEADER).map_err(failed)?;
    for d in rows {
        out.write_record([
            d.delivery_id.as_str(),
            d.event_id.as_str(),
            d.event_type.as_str(),
            d.rule_id.as_str(),
            &d.rule_name,
            &d.destination,
            d.status.as_str(),
            &to_rfc3339(d.first_attempt_at),
            &d.succeeded_at.map(to_rfc3339).unwrap_or_default(),
        ])
        .map_err(failed)?;
    }
    let bytes = out
        .into_inner()
        .map_err(|e| AppError::internal(anyhow::anyhow!("writing the CSV failed: {e}")))?;
    String::from_utf8(bytes).map_err(AppError::internal)
}

/// Erases a subject's events in the workspace (see `SubjectStore::erase_subject`) and says
/// what was destroyed; an unknown subject erases nothing. Audited with the counts.
pub async fn erase(
    state: &AppState,
    workspace: WorkspaceId,
    actor: Actor,
    subject: &str,
) -> Result<Erased, AppError> {
    let subject = hash(state, subject)?;
    let audit = AuditEntry::new(
        &workspace,
        actor,
        "subject.erase",
        "subject",
        subject.as_str(),
    );
    Ok(state.store.erase_subject(workspace, subject, audit).await?)
}
