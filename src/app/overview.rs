//! The dashboard's figures: a week of per-hour outcomes, the rules failing now, the rules
//! whose condition could not be evaluated lately, the rules and how many of
//! the workspace's deliveries are waiting. Every figure is a counter the store keeps, never
//! a scan of the delivery log, so the page stays quick with a large backlog.

use std::collections::HashMap;

use super::{AppState, blocking};
use crate::domain::ids::WorkspaceId;
use crate::domain::rule::Rule;
use crate::error::AppError;
use crate::store::{ConditionErrorCount, StoreError};

/// The window condition errors are counted over: the dashboard's "last 24 hours" (from the
/// start of the hour a day ago: the store counts them by the hour).
pub const CONDITION_WINDOW_MS: i64 = 24 * 60 * 60 * 1000;

pub struct Overview {
    /// (hour start in Unix ms, succeeded, failed) for the last 168 hours, oldest first.
    pub week: Vec<(i64, u64, u64)>,
    /// Failing rules of the workspace and since when, longest-failing first.
    pub failing: Vec<(Rule, i64)>,
    /// Rules whose condition could not be evaluated in the last 24 hours, most errors first.
    pub condition_errors: Vec<(Rule, ConditionErrorCount)>,
    /// `condition_error` deliveries of the workspace's rules made in the last 24 hours.
    pub condition_error_count: u64,
    /// The workspace's rules, by name.
    pub rules: Vec<Rule>,
    /// The workspace's deliveries waiting for an attempt.
    pub open: u64,
}

pub async fn overview(state: &AppState, workspace: WorkspaceId) -> Result<Overview, AppError> {
    let store = state.store.clone();
    let now = state.clock.now_ms();
    let (week, failing_since, rules, open, errors) = blocking(move || {
        Ok::<_, StoreError>((
            store.hourly_outcomes(&workspace, now, 168)?,
            store.rules_failing_since()?,
            store.rules(&workspace)?,
            store.open_count_in(&workspace)?,
            store.condition_errors_since(&workspace, now - CONDITION_WINDOW_MS)?,
        ))
    })
    .await?;
    let mut by_rule: HashMap<_, ConditionErrorCount> =
        errors.into_iter().map(|c| (c.rule_id.clone(), c)).collect();
    let mut failing = Vec::new();
    let mut condition_errors = Vec::new();
    for r in &rules {
        // Counts of deleted rules are left out with them.
        if let Some(errors) = by_rule.remove(&r.id) {
            condition_errors.push((r.clone(), errors));
        }
        if let Some(since) = failing_since.get(&r.id).copied() {
            failing.push((r.clone(), since));
        }
    }
    failing.sort_by_key(|(_, since)| *since);
    condition_errors.sort_by_key(|(_, e)| std::cmp::Reverse((e.count, e.latest_at)));
    let mut rules = rules;
    rules.sort_by_key(|r| r.name.to_lowercase());
    let condition_error_count = condition_errors.iter().map(|(_, e)| e.count).sum();
    Ok(Overview {
        week,
        failing,
        condition_errors,
        condition_error_count,
        rules,
        open,
    })
}
