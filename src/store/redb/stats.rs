//! The dashboard's counters, kept in the transactions that change what they count: per-hour
//! outcomes (`HOURLY_OUTCOMES`), open deliveries per workspace (`OPEN_COUNTS`) and
//! condition errors per hour and rule (`CONDITION_ERRORS_BY_HOUR`).

use redb::{ReadableTable, WriteTransaction};

use super::RedbStore;
use super::rows::{get_from, id_at};
use super::tables::{
    CONDITION_ERRORS_BY_HOUR, DELIVERIES, HOURLY_OUTCOMES, OPEN_COUNTS, OPEN_DELIVERIES,
};
use crate::domain::delivery::{Delivery, DeliveryStatus};
use crate::domain::ids::{RuleId, WorkspaceId};
use crate::store::codec;
use crate::store::{ConditionErrorCount, StatsStore, StoreError};

const HOUR_MS: i64 = 3_600_000;

/// Counts a delivery that has just finished in the hour it finished. Test sends are left
/// out (they are not traffic), and so are open deliveries. A manual re-send that finishes
/// again is counted again: the chart shows outcomes per hour, not distinct deliveries.
pub(super) fn count_finished(txn: &WriteTransaction, d: &Delivery) -> Result<(), StoreError> {
    let failed = match d.status {
        DeliveryStatus::Succeeded => false,
        DeliveryStatus::Failed | DeliveryStatus::Blocked => true,
        _ => return Ok(()),
    };
    if d.test {
        return Ok(());
    }
    let key = (d.workspace_id.as_str(), d.updated_at.div_euclid(HOUR_MS));
    let mut table = txn.open_table(HOURLY_OUTCOMES)?;
    let (ok, bad) = table.get(key)?.map_or((0, 0), |v| v.value());
    let next = if failed { (ok, bad + 1) } else { (ok + 1, bad) };
    table.insert(key, next)?;
    Ok(())
}

/// One more (`queued`) or one fewer open delivery in the workspace; called by the queue's
/// only writer (`delivery_rows::set_open`) when an entry is added or removed.
pub(super) fn count_open(
    txn: &WriteTransaction,
    workspace: &WorkspaceId,
    queued: bool,
) -> Result<(), StoreError> {
    let mut table = txn.open_table(OPEN_COUNTS)?;
    let n = table.get(workspace.as_str())?.map_or(0, |v| v.value());
    let next = if queued { n + 1 } else { n.saturating_sub(1) };
    if next == 0 {
        table.remove(workspace.as_str())?;
    } else {
        table.insert(workspace.as_str(), next)?;
    }
    Ok(())
}

/// Counts a delivery made `condition_error` in the hour it was made.
pub(super) fn count_condition_error(
    txn: &WriteTransaction,
    d: &Delivery,
) -> Result<(), StoreError> {
    let key = (
        d.workspace_id.as_str(),
        d.created_at.div_euclid(HOUR_MS),
        d.rule_id.as_str(),
    );
    let mut table = txn.open_table(CONDITION_ERRORS_BY_HOUR)?;
    let (n, latest) = table.get(key)?.map_or((0, d.created_at), |v| v.value());
    table.insert(key, (n + 1, latest.max(d.created_at)))?;
    Ok(())
}

/// Forgets the condition-error counts of hours that ended before `cutoff_ms` (retention).
pub(super) fn prune_condition_errors(
    txn: &WriteTransaction,
    cutoff_ms: i64,
) -> Result<(), StoreError> {
    let before = cutoff_ms.div_euclid(HOUR_MS);
    txn.open_table(CONDITION_ERRORS_BY_HOUR)?
        .retain(|(_, hour, _), _| hour >= before)?;
    Ok(())
}

/// Fills the open and condition-error counters from the rows of a database made before they
/// existed (schema version 8): the queue as it stands, and the condition errors of the
/// deliveries made in the day before `now` (older hours are never shown).
pub(super) fn fill_counters(txn: &WriteTransaction, now: i64) -> Result<(), StoreError> {
    let deliveries = txn.open_table(DELIVERIES)?;
    for entry in txn.open_table(OPEN_DELIVERIES)?.iter()? {
        let (id, _) = entry?;
        if let Some(d) = get_from::<Delivery>(&deliveries, "deliveries", id.value())? {
            count_open(txn, &d.workspace_id, true)?;
        }
    }
    let since = (now - 24 * HOUR_MS).div_euclid(HOUR_MS) * HOUR_MS;
    for entry in deliveries.range(id_at(since).as_str()..)? {
        let (_, row) = entry?;
        let d: Delivery = codec::decode("deliveries", row.value())?;
        if d.status == DeliveryStatus::ConditionError {
            count_condition_error(txn, &d)?;
        }
    }
    Ok(())
}

impl StatsStore for RedbStore {
    fn hourly_outcomes(
        &self,
        workspace: &WorkspaceId,
        now_ms: i64,
        hours: i64,
    ) -> Result<Vec<(i64, u64, u64)>, StoreError> {
        let last = now_ms.div_euclid(HOUR_MS);
        let first = last - hours + 1;
        let txn = self.read()?;
        let table = txn.open_table(HOURLY_OUTCOMES)?;
        let mut out: Vec<(i64, u64, u64)> = (first..=last).map(|h| (h * HOUR_MS, 0, 0)).collect();
        let ws = workspace.as_str();
        for entry in table.range((ws, first)..=(ws, last))? {
            let (k, v) = entry?;
            let (_, hour) = k.value();
            let (ok, bad) = v.value();
            if let Some(slot) = usize::try_from(hour - first)
                .ok()
                .and_then(|i| out.get_mut(i))
            {
                slot.1 = ok;
                slot.2 = bad;
            }
        }
        Ok(out)
    }

    fn open_count_in(&self, workspace: &WorkspaceId) -> Result<u64, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(OPEN_COUNTS)?;
        Ok(table.get(workspace.as_str())?.map_or(0, |v| v.value()))
    }

    fn condition_errors_since(
        &self,
        workspace: &WorkspaceId,
        since_ms: i64,
    ) -> Result<Vec<ConditionErrorCount>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(CONDITION_ERRORS_BY_HOUR)?;
        let ws = workspace.as_str();
        let first = since_ms.div_euclid(HOUR_MS);
        let mut by_rule: Vec<ConditionErrorCount> = Vec::new();
        for entry in table.range((ws, first, "")..=(ws, i64::MAX, "\u{10ffff}"))? {
            let (k, v) = entry?;
            let (_, _, rule) = k.value();
            let (n, latest) = v.value();
            let Some(rule_id) = RuleId::parse(rule) else {
                continue;
            };
            match by_rule.iter_mut().find(|c| c.rule_id == rule_id) {
                Some(c) => {
                    c.count += n;
                    c.latest_at = c.latest_at.max(latest);
                }
                None => by_rule.push(ConditionErrorCount {
                    rule_id,
                    count: n,
                    latest_at: latest,
                }),
            }
        }
        Ok(by_rule)
    }
}
