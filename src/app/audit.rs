//! The audit log: read only, newest first (every change elsewhere writes its own entry in the
//! same transaction as the change).

use super::{AppState, blocking};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::ids::{AuditId, WorkspaceId};
use crate::error::AppError;
use crate::store::StoreError;

/// A page of the workspace's audit log before the cursor, and the next cursor.
pub async fn page(
    state: &AppState,
    workspace: WorkspaceId,
    before: Option<AuditId>,
    limit: usize,
) -> Result<(Vec<AuditEntry>, Option<AuditId>), AppError> {
    let store = state.store.clone();
    blocking(move || store.audit_log(&workspace, before.as_ref(), limit)).await
}

/// What the audit page filters by; every part optional.
#[derive(Debug, Default, Clone)]
pub struct AuditFilter {
    /// An action (`rule.update`) or a family ending in `*` (`rule.*`).
    pub action: Option<String>,
    /// Who, as `actor_key` names them (`user:usr_…`, `api_key:key_…`, `cli`, `system`).
    pub actor: Option<String>,
    /// Unix ms, both ends included.
    pub since: Option<i64>,
    pub until: Option<i64>,
}

impl AuditFilter {
    fn matches(&self, e: &AuditEntry) -> bool {
        let action = self
            .action
            .as_deref()
            .is_none_or(|a| match a.strip_suffix('*') {
                Some(prefix) => e.action.starts_with(prefix),
                None => e.action == a,
            });
        action
            && self
                .actor
                .as_deref()
                .is_none_or(|a| actor_key(&e.actor) == a)
            && self.until.is_none_or(|u| e.at <= u)
    }
}

/// One stable name per actor, for a filter (names can repeat; ids do not).
pub fn actor_key(actor: &Actor) -> String {
    match actor {
        Actor::User { id, .. } => format!("user:{id}"),
        Actor::ApiKey { id, .. } => format!("api_key:{id}"),
        Actor::Cli => "cli".to_owned(),
        Actor::System => "system".to_owned(),
    }
}

/// Store pages one `search` reads at most (each a bounded scan of its own).
const SEARCH_PAGES: usize = 10;
const SEARCH_PAGE: usize = 250;

/// A page of the audit log matching `filter`, newest first, before the cursor. Ids begin with
/// their time, so `until` starts the scan at that time and `since` ends it; the rest is read
/// page by page (at most `SEARCH_PAGES` store pages). The cursor is the last entry looked at,
/// so nothing is skipped and a page may be short with a cursor when matches are rare.
pub async fn search(
    state: &AppState,
    workspace: WorkspaceId,
    filter: AuditFilter,
    before: Option<AuditId>,
    limit: usize,
) -> Result<(Vec<AuditEntry>, Option<AuditId>), AppError> {
    let store = state.store.clone();
    blocking(move || {
        // The first id after `until`: every entry at or before it sorts below.
        let from_until = filter.until.and_then(|u| {
            let ms = u64::try_from(u.saturating_add(1)).ok()? & 0xffff_ffff_ffff;
            AuditId::parse(&format!("{}{ms:012x}", AuditId::PREFIX))
        });
        let mut cursor = match (before, from_until) {
            (Some(b), Some(u)) => Some(b.min(u)),
            (b, u) => b.or(u),
        };
        let mut out = Vec::with_capacity(limit);
        for _ in 0..SEARCH_PAGES {
            let (page, next) = store.audit_log(&workspace, cursor.as_ref(), SEARCH_PAGE)?;
            for e in page {
                if filter.since.is_some_and(|s| e.at < s) {
                    return Ok::<_, StoreError>((out, None));
                }
                if filter.matches(&e) {
                    let id = e.id.clone();
                    out.push(e);
                    if out.len() == limit {
                        return Ok((out, Some(id)));
                    }
                }
            }
            match next {
                Some(n) => cursor = Some(n),
                None => return Ok((out, None)),
            }
        }
        Ok((out, cursor))
    })
    .await
}
