//! Health, retention, backup and shutdown: readiness's ping, the open-delivery count, the
//! pruning of old delivery logs, and the end of the writer.

use std::path::Path;

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::RedbStore;
use super::delivery_rows::DeliveryTables;
use super::events::IdempotencyRecord;
use super::rows::id_at;
use super::tables::{
    ATTEMPTS, DELIVERIES, DELIVERIES_BY_EVENT, DELIVERIES_BY_RULE, EVENTS, IDEMPOTENCY,
    OPEN_DELIVERIES, WORKSPACES,
};
use crate::domain::delivery::Delivery;
use crate::domain::ids::{DeliveryId, EventId, RuleId};
use crate::store::codec;
use crate::store::{MaintenanceStore, StoreError};

/// Rows one pruning transaction removes, so delivery never waits long behind it.
const CHUNK: usize = 500;

impl MaintenanceStore for RedbStore {
    fn ping(&self) -> Result<(), StoreError> {
        let txn = self.read()?;
        txn.open_table(WORKSPACES)?;
        self.writer.failure().map_or(Ok(()), Err)
    }

    fn open_count(&self) -> Result<u64, StoreError> {
        Ok(self.read()?.open_table(OPEN_DELIVERIES)?.len()?)
    }

    /// In small transactions, oldest first.
    fn prune_before(&self, cutoff_ms: i64) -> Result<(usize, usize), StoreError> {
        let deliveries = self.prune_deliveries(&id_at(cutoff_ms))?;
        let upper_event = format!(
            "{}{}",
            EventId::PREFIX,
            &id_at(cutoff_ms)[DeliveryId::PREFIX.len()..]
        );
        let events = self.prune_events(&upper_event)?;
        let clock = self.clock.clone();
        self.writer.write(move |txn| {
            let now = clock.now_ms();
            txn.open_table(IDEMPOTENCY)?.retain(|_, v| {
                codec::decode::<IdempotencyRecord>("idempotency", v)
                    .is_ok_and(|r| r.expires_at > now)
            })?;
            super::stats::prune_condition_errors(txn, cutoff_ms)
        })?;
        Ok((deliveries, events))
    }

    fn prune_rule_before(
        &self,
        rule: &RuleId,
        cutoff_ms: i64,
    ) -> Result<(usize, usize), StoreError> {
        self.prune_rule_deliveries(rule, &id_at(cutoff_ms))
    }

    fn backup_to(&self, path: &Path) -> Result<u64, StoreError> {
        // The inherent one, in store/backup.rs.
        RedbStore::backup_to(self, path)
    }

    fn shutdown(&self) {
        self.writer.shutdown();
    }
}

impl RedbStore {
    /// Finished deliveries below `upper` with their attempts and index entries; returns how
    /// many. A resume point skips the open ones already passed over.
    fn prune_deliveries(&self, upper: &str) -> Result<usize, StoreError> {
        let mut removed = 0;
        let mut from = DeliveryId::PREFIX.to_owned();
        loop {
            let (batch, next) = {
                let txn = self.read()?;
                let table = txn.open_table(DELIVERIES)?;
                let mut batch = Vec::new();
                let mut next = None;
                for entry in table.range(from.as_str()..upper)? {
                    let (key, value) = entry?;
                    let d: Delivery = codec::decode("deliveries", value.value())?;
                    next = Some(format!("{}~", key.value()));
                    if !d.status.is_open() {
                        batch.push(d);
                    }
                    if batch.len() >= CHUNK {
                        break;
                    }
                }
                (batch, next)
            };
            if !batch.is_empty() {
                removed += self
                    .writer
                    .write(move |txn| remove_deliveries(txn, &batch))?;
            }
            match next {
                Some(n) if n != from => from = n,
                _ => return Ok(removed),
            }
        }
    }

    /// Events below `upper` with no delivery left; returns how many.
    fn prune_events(&self, upper: &str) -> Result<usize, StoreError> {
        let mut removed = 0;
        let mut from = EventId::PREFIX.to_owned();
        loop {
            let (batch, next) = {
                let txn = self.read()?;
                let events = txn.open_table(EVENTS)?;
                let by_event = txn.open_table(DELIVERIES_BY_EVENT)?;
                let mut batch = Vec::new();
                let mut next = None;
                for entry in events.range(from.as_str()..upper)? {
                    let (key, _) = entry?;
                    let id = key.value().to_owned();
                    next = Some(format!("{id}~"));
                    if by_event
                        .range((id.as_str(), "")..)?
                        .next()
                        .transpose()?
                        .is_none_or(|(k, _)| k.value().0 != id)
                    {
                        batch.push(id);
                    }
                    if batch.len() >= CHUNK {
                        break;
                    }
                }
                (batch, next)
            };
            if !batch.is_empty() {
                removed += batch.len();
                self.writer.write(move |txn| remove_events(txn, &batch))?;
            }
            match next {
                Some(n) if n != from => from = n,
                _ => return Ok(removed),
            }
        }
    }
}

impl RedbStore {
    /// One rule's finished deliveries below `upper`, a chunk per write, each with the
    /// events it leaves without a delivery; returns (deliveries, events).
    fn prune_rule_deliveries(
        &self,
        rule: &RuleId,
        upper: &str,
    ) -> Result<(usize, usize), StoreError> {
        let (mut deliveries, mut events) = (0, 0);
        let mut from = DeliveryId::PREFIX.to_owned();
        loop {
            let (batch, next) = {
                let txn = self.read()?;
                let by_rule = txn.open_table(DELIVERIES_BY_RULE)?;
                let table = txn.open_table(DELIVERIES)?;
                let mut batch = Vec::new();
                let mut next = None;
                for entry in
                    by_rule.range((rule.as_str(), from.as_str())..(rule.as_str(), upper))?
                {
                    let (key, _) = entry?;
                    let id = key.value().1.to_owned();
                    next = Some(format!("{id}~"));
                    let Some(value) = table.get(id.as_str())? else {
                        continue;
                    };
                    let d: Delivery = codec::decode("deliveries", value.value())?;
                    if !d.status.is_open() {
                        batch.push(d);
                    }
                    if batch.len() >= CHUNK {
                        break;
                    }
                }
                (batch, next)
            };
            if !batch.is_empty() {
                let (gone, orphaned) = self.writer.write(move |txn| {
                    let gone = remove_deliveries(txn, &batch)?;
                    let mut orphans: Vec<String> = Vec::new();
                    {
                        let by_event = txn.open_table(DELIVERIES_BY_EVENT)?;
                        for d in &batch {
                            let event = d.event_id.as_str();
                            let left = by_event
                                .range((event, "")..(event, "~"))?
                                .next()
                                .transpose()?
                                .is_some();
                            if !left && !orphans.iter().any(|o| o == event) {
                                orphans.push(event.to_owned());
                            }
                        }
                    }
                    remove_events(txn, &orphans)?;
                    Ok((gone, orphans.len()))
                })?;
                deliveries += gone;
                events += orphaned;
            }
            match next {
                Some(n) if n != from => from = n,
                _ => return Ok((deliveries, events)),
            }
        }
    }
}

/// Removes finished deliveries with their attempts and index entries; returns how many (one
/// re-sent since the batch was read stays, open).
fn remove_deliveries(txn: &WriteTransaction, batch: &[Delivery]) -> Result<usize, StoreError> {
    let mut rows = DeliveryTables::open(txn)?;
    let mut attempts = txn.open_table(ATTEMPTS)?;
    let mut by_rule = txn.open_table(DELIVERIES_BY_RULE)?;
    let mut by_event = txn.open_table(DELIVERIES_BY_EVENT)?;
    let mut removed = 0;
    for d in batch {
        let id = d.id.as_str();
        if !rows.remove_finished(id)? {
            continue;
        }
        removed += 1;
        attempts.retain_in((id, 0)..=(id, u32::MAX), |_, _| false)?;
        by_rule.remove((d.rule_id.as_str(), id))?;
        by_event.remove((d.event_id.as_str(), id))?;
    }
    Ok(removed)
}

/// Removes events, taking them out of their subject's index.
fn remove_events(txn: &WriteTransaction, ids: &[String]) -> Result<(), StoreError> {
    let mut events = txn.open_table(EVENTS)?;
    for id in ids {
        let row = events.remove(id.as_str())?.map(|v| v.value().to_vec());
        if let Some(row) = row {
            super::subjects::unindex_event(txn, id, &row)?;
        }
    }
    Ok(())
}
