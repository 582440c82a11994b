//! The dashboard's per-hour delivery counters (`HOURLY_OUTCOMES`).

use redb::{ReadableTable, WriteTransaction};

use super::RedbStore;
use super::tables::HOURLY_OUTCOMES;
use crate::domain::delivery::{Delivery, DeliveryStatus};
use crate::domain::ids::WorkspaceId;
use crate::store::{StatsStore, StoreError};

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
}
