//! The delivery log: one filter for the API's query and the UI's form, a delivery with its
//! attempts, an event with its deliveries, and re-sends (one, or a rule's failed ones).

use std::collections::HashMap;

use super::paging::page_cursor;
use super::{AppState, blocking};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::event::{Event, EventType};
use crate::domain::ids::{DeliveryId, EventId, RuleId, WorkspaceId};
use crate::domain::pattern::Pattern;
use crate::domain::time::to_rfc3339;
use crate::error::AppError;
use crate::store::{DeliveryFilter, StoreError};

/// A delivery-log filter as given (text fields as typed, times already read). `event_type` is
/// an exact type or, as in a rule's trigger, a family ending in `*` (`member:*`, `*`).
#[derive(Debug, Default)]
pub struct FilterInput<'a> {
    pub rule_id: Option<&'a str>,
    pub status: Option<&'a str>,
    pub event_type: Option<&'a str>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    pub cursor: Option<&'a str>,
    pub limit: usize,
}

/// What a delivery-log filter asks for: the store's filter, and a `family:*` pattern the
/// store cannot filter by (an exact type goes into the filter).
#[derive(Debug)]
pub struct DeliveryQuery {
    pub filter: DeliveryFilter,
    pub pattern: Option<Pattern>,
}

impl FilterInput<'_> {
    /// The query, or `invalid_query` saying which part is wrong.
    pub fn parse(&self) -> Result<DeliveryQuery, AppError> {
        let rule_id = self
            .rule_id
            .map(|r| {
                RuleId::parse(r).ok_or_else(|| {
                    AppError::invalid_query(format!("rule_id {r:?} is not a rule id (rul_…)"))
                })
            })
            .transpose()?;
        let status = self
            .status
            .map(|s| {
                DeliveryStatus::parse(s).ok_or_else(|| {
                    AppError::invalid_query(format!(
                        "status {s:?} is not one of pending, retrying, succeeded, failed, blocked, condition_error"
                    ))
                })
            })
            .transpose()?;
        let pattern = self
            .event_type
            .filter(|t| t.ends_with('*'))
            .map(|t| {
                Pattern::parse(t).map_err(|_| {
                    AppError::invalid_query(format!(
                        "event_type {t:?} is not a type (member:created) or a family ending in * (member:*)"
                    ))
                })
            })
            .transpose()?;
        let event_type = self
            .event_type
            .filter(|_| pattern.is_none())
            .map(|t| EventType::parse(t).map_err(AppError::invalid_query))
            .transpose()?;
        if let (Some(s), Some(u)) = (self.since, self.until)
            && s > u
        {
            return Err(AppError::invalid_query(
                "since must not be later than until",
            ));
        }
        let filter = DeliveryFilter {
            rule_id,
            status,
            event_type,
            since: self.since,
            until: self.until,
            before: page_cursor(self.cursor, DeliveryId::parse)?,
            limit: self.limit,
        };
        Ok(DeliveryQuery { filter, pattern })
    }
}

/// One page of the log for a parsed filter, the API's and the UI's alike: through the
/// store's filter alone, or reading on for a `family:*` pattern (`list_matching`).
pub async fn query(
    state: &AppState,
    workspace: WorkspaceId,
    query: DeliveryQuery,
) -> Result<(Vec<Delivery>, Option<DeliveryId>), AppError> {
    match query.pattern {
        None => list(state, workspace, query.filter).await,
        Some(pattern) => list_matching(state, workspace, query.filter, pattern).await,
    }
}

/// One page of the workspace's log, newest first, and the cursor of the next.
pub async fn list(
    state: &AppState,
    workspace: WorkspaceId,
    filter: DeliveryFilter,
) -> Result<(Vec<Delivery>, Option<DeliveryId>), AppError> {
    let store = state.store.clone();
    blocking(move || store.list_deliveries(&workspace, &filter)).await
}

/// A delivery with its attempts.
pub async fn get(
    state: &AppState,
    workspace: WorkspaceId,
    id: DeliveryId,
) -> Result<(Delivery, Vec<Attempt>), AppError> {
    let store = state.store.clone();
    blocking(move || {
        let d = store.delivery(&workspace, &id)?;
        let a = store.attempts(&id)?;
        Ok::<_, StoreError>((d, a))
    })
    .await
}

/// An event with its deliveries.
pub async fn event(
    state: &AppState,
    workspace: WorkspaceId,
    id: EventId,
) -> Result<(Event, Vec<Delivery>), AppError> {
    let store = state.store.clone();
    blocking(move || {
        let event = store.event(&workspace, &id)?;
        let deliveries = store.event_deliveries(&id)?;
        Ok::<_, StoreError>((event, deliveries))
    })
    .await
}

/// Queues one more attempt for a finished delivery; a still-open one is a conflict.
/// Returns the re-opened delivery with its attempts so far. Audited: someone chose to send
/// PHI to a receiver again.
pub async fn redeliver(
    state: &AppState,
    workspace: WorkspaceId,
    actor: Actor,
    id: DeliveryId,
) -> Result<(Delivery, Vec<Attempt>), AppError> {
    let audit = AuditEntry::new(
        &workspace,
        actor,
        "delivery.redeliver",
        "delivery",
        id.as_str(),
    );
    let delivery = state.store.redeliver(workspace, id.clone()).await?;
    state.store.audit(audit).await?;
    let store = state.store.clone();
    let attempts = blocking(move || store.attempts(&id)).await?;
    state.dispatcher.enqueue_deliveries([&delivery]);
    Ok((delivery, attempts))
}

/// Re-sends every failed delivery of a rule created in `[since, until]`, audited.
pub async fn redeliver_failed(
    state: &AppState,
    workspace: WorkspaceId,
    actor: Actor,
    rule_id: RuleId,
    since: i64,
    until: i64,
) -> Result<Vec<Delivery>, AppError> {
    if since > until {
        return Err(AppError::validation("since must not be later than until"));
    }
    let reopened = state
        .store
        .redeliver_failed(workspace.clone(), rule_id.clone(), since, until)
        .await?;
    let detail = format!(
        "{} failed deliveries from {} to {} queued again",
        reopened.len(),
        to_rfc3339(since),
        to_rfc3339(until)
    );
    let audit = AuditEntry::new(
        &workspace,
        actor,
        "rule.redeliver_failed",
        "rule",
        rule_id.as_str(),
    )
    .detail(detail);
    state.store.audit(audit).await?;
    state.dispatcher.enqueue_deliveries(&reopened);
    Ok(reopened)
}

/// How many store pages one `list_matching` call reads at most: each is itself a bounded
/// scan, so a rare family costs a few short pages rather than one unbounded read.
const MATCHING_STORE_PAGES: usize = 5;

/// One page of the log whose event types match `pattern` (`member:*`); the store filters
/// exact types only. Reads store pages (with every other filter applied)
/// until `filter.limit` deliveries match or `MATCHING_STORE_PAGES` were read. The cursor is
/// the last delivery looked at, so the next page goes on from there and none is skipped; a
/// page may come back short with a cursor, as the store's own pages may.
pub async fn list_matching(
    state: &AppState,
    workspace: WorkspaceId,
    filter: DeliveryFilter,
    pattern: Pattern,
) -> Result<(Vec<Delivery>, Option<DeliveryId>), AppError> {
    let store = state.store.clone();
    blocking(move || {
        let mut filter = filter;
        let limit = filter.limit;
        let mut out = Vec::with_capacity(limit);
        for _ in 0..MATCHING_STORE_PAGES {
            let (page, cursor) = store.list_deliveries(&workspace, &filter)?;
            for d in page {
                if pattern.matches(&d.event_type) {
                    out.push(d);
                    if out.len() == limit {
                        // Stop at this one: the rest of this store page comes next time.
                        let at = out.last().map(|d| d.id.clone());
                        return Ok::<_, StoreError>((out, at));
                    }
                }
            }
            match cursor {
                Some(c) => filter.before = Some(c),
                None => return Ok((out, None)),
            }
        }
        Ok((out, filter.before))
    })
    .await
}

/// The latest attempt of each of these deliveries (none for one not yet attempted), for the
/// log's response-code and error columns.
pub async fn latest_attempts(
    state: &AppState,
    ids: Vec<DeliveryId>,
) -> Result<HashMap<DeliveryId, Attempt>, AppError> {
    let store = state.store.clone();
    blocking(move || {
        let mut out = HashMap::with_capacity(ids.len());
        for id in ids {
            if let Some(a) = store.attempts(&id)?.into_iter().max_by_key(|a| a.number) {
                out.insert(id, a);
            }
        }
        Ok::<_, StoreError>(out)
    })
    .await
}
