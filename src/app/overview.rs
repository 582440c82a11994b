//! The dashboard's figures: a week of per-hour outcomes, the rules failing now, the rules
//! whose condition could not be evaluated lately, how many rules there are and how many
//! deliveries are waiting.

use std::collections::HashMap;

use super::{AppState, blocking};
use crate::domain::delivery::DeliveryStatus;
use crate::domain::ids::{DeliveryId, RuleId, WorkspaceId};
use crate::domain::rule::Rule;
use crate::error::AppError;
use crate::store::{DeliveryFilter, Store, StoreError};

/// The window condition errors are counted over: the dashboard's "last 24 hours".
pub const CONDITION_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;
/// Most condition-error deliveries read for the count; past it the count says "at least".
pub const MAX_CONDITION_ERRORS: usize = 1000;
/// Most pages read for it (each a bounded scan of the store), so a busy day's log cannot
/// make the dashboard slow.
const MAX_PAGES: usize = 3;

/// A rule whose condition could not be evaluated for some events in the window.
pub struct ConditionErrors {
    pub count: usize,
    /// When the latest such delivery was made.
    pub latest_at: i64,
}

pub struct Overview {
    /// (hour start in Unix ms, succeeded, failed) for the last 168 hours, oldest first.
    pub week: Vec<(i64, u64, u64)>,
    /// Failing rules of the workspace and since when, longest-failing first.
    pub failing: Vec<(Rule, i64)>,
    /// Rules whose condition could not be evaluated in the last 24 hours, most errors first.
    pub condition_errors: Vec<(Rule, ConditionErrors)>,
    /// `condition_error` deliveries made in the last 24 hours (at most `MAX_CONDITION_ERRORS`).
    pub condition_error_count: usize,
    /// Whether there were more than could be counted.
    pub condition_errors_capped: bool,
    pub rule_count: usize,
    /// Deliveries waiting for an attempt.
    pub open: u64,
}

/// The `condition_error` deliveries of the workspace made since `since`, newest first, read
/// page by page up to `MAX_CONDITION_ERRORS`; and whether more were left.
fn recent_condition_errors(
    store: &Store,
    workspace: &WorkspaceId,
    since: i64,
) -> Result<(HashMap<RuleId, ConditionErrors>, usize, bool), StoreError> {
    let mut by_rule: HashMap<RuleId, ConditionErrors> = HashMap::new();
    let mut count = 0;
    let mut before: Option<DeliveryId> = None;
    for _ in 0..MAX_PAGES {
        let filter = DeliveryFilter {
            status: Some(DeliveryStatus::ConditionError),
            since: Some(since),
            before: before.take(),
            limit: MAX_CONDITION_ERRORS - count,
            ..DeliveryFilter::default()
        };
        let (page, cursor) = store.list_deliveries(workspace, &filter)?;
        for d in &page {
            let e = by_rule.entry(d.rule_id.clone()).or_insert(ConditionErrors {
                count: 0,
                latest_at: d.created_at,
            });
            e.count += 1;
            e.latest_at = e.latest_at.max(d.created_at);
        }
        count += page.len();
        match cursor {
            Some(c) if count < MAX_CONDITION_ERRORS => before = Some(c),
            Some(_) => return Ok((by_rule, count, true)),
            None => return Ok((by_rule, count, false)),
        }
    }
    Ok((by_rule, count, true))
}

pub async fn overview(state: &AppState, workspace: WorkspaceId) -> Result<Overview, AppError> {
    let store = state.store.clone();
    let now = state.clock.now_ms();
    let (week, failing_since, rules, open, (by_rule, condition_error_count, capped)) =
        blocking(move || {
            Ok::<_, StoreError>((
                store.hourly_outcomes(&workspace, now, 168)?,
                store.rules_failing_since()?,
                store.rules(&workspace)?,
                store.open_count()?,
                recent_condition_errors(&store, &workspace, now - CONDITION_WINDOW_MS)?,
            ))
        })
        .await?;
    let rule_count = rules.len();
    let mut by_rule = by_rule;
    let mut failing = Vec::new();
    let mut condition_errors = Vec::new();
    for r in rules {
        let since = failing_since.get(&r.id).copied();
        let errors = by_rule.remove(&r.id);
        match (since, errors) {
            (Some(since), Some(errors)) => {
                condition_errors.push((r.clone(), errors));
                failing.push((r, since));
            }
            (Some(since), None) => failing.push((r, since)),
            (None, Some(errors)) => condition_errors.push((r, errors)),
            (None, None) => {}
        }
    }
    failing.sort_by_key(|(_, since)| *since);
    condition_errors.sort_by_key(|(_, e)| std::cmp::Reverse((e.count, e.latest_at)));
    Ok(Overview {
        week,
        failing,
        condition_errors,
        condition_error_count,
        condition_errors_capped: capped,
        rule_count,
        open,
    })
}
