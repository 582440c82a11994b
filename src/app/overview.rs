//! The dashboard's figures: a week of per-hour outcomes, the rules failing now, how many
//! rules there are and how many deliveries are waiting.

use super::{AppState, blocking};
use crate::domain::ids::WorkspaceId;
use crate::domain::rule::Rule;
use crate::error::AppError;
use crate::store::StoreError;

pub struct Overview {
    /// (hour start in Unix ms, succeeded, failed) for the last 168 hours, oldest first.
    pub week: Vec<(i64, u64, u64)>,
    /// Failing rules of the workspace and since when, longest-failing first.
    pub failing: Vec<(Rule, i64)>,
    pub rule_count: usize,
    /// Deliveries waiting for an attempt.
    pub open: u64,
}

pub async fn overview(state: &AppState, workspace: WorkspaceId) -> Result<Overview, AppError> {
    let store = state.store.clone();
    let now = state.clock.now_ms();
    let (week, failing_since, rules, open) = blocking(move || {
        Ok::<_, StoreError>((
            store.hourly_outcomes(&workspace, now, 168)?,
            store.rules_failing_since()?,
            store.rules(&workspace)?,
            store.open_count()?,
        ))
    })
    .await?;
    let rule_count = rules.len();
    let mut failing: Vec<(Rule, i64)> = rules
        .into_iter()
        .filter_map(|r| failing_since.get(&r.id).map(|&since| (r, since)))
        .collect();
    failing.sort_by_key(|(_, since)| *since);
    Ok(Overview {
        week,
        failing,
        rule_count,
        open,
    })
}
