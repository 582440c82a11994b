//! Events and their deliveries: ingest (with idempotency keys and routine slots), the
//! delivery log and its filters, the open deliveries (`OPEN_DELIVERIES`) a restart resumes,
//! closing and re-sending. Rows are written through `delivery_rows`.

use std::sync::Arc;

use redb::{ReadTransaction, ReadableTable, WriteTransaction};
use serde::{Deserialize, Serialize};

use super::delivery_rows::{DeliveryTables, put_delivery};
use super::rows::{get, get_from, get_w, id_at};
use super::tables::{
    ATTEMPTS, DELIVERIES, DELIVERIES_BY_EVENT, DELIVERIES_BY_RULE, DELIVERIES_BY_STATUS, EVENTS,
    IDEMPOTENCY, OPEN_BY_ORDERING_KEY, OPEN_DELIVERIES, ROUTINE_LAST_FIRED, RULES,
};
use super::{MAX_SCAN, RedbStore};
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::event::Event;
use crate::domain::ids::{DeliveryId, EventId, RuleId, WorkspaceId};
use crate::domain::rule::Rule;
use crate::store::codec;
use crate::store::seal::RowSeal;
use crate::store::types::{not_found, status_indexed};
use crate::store::{
    DeliveryFilter, DueDelivery, EventStore, IDEMPOTENCY_TTL_MS, IngestOutcome, NewEvent,
    ReclaimSink, Slot, StoreError, StoreFuture,
};

#[derive(Debug, Serialize, Deserialize)]
pub(super) struct IdempotencyRecord {
    event_id: EventId,
    pub(super) expires_at: i64,
}

impl RedbStore {
    fn get_event(&self, txn: &ReadTransaction, id: &EventId) -> Result<Option<Event>, StoreError> {
        let table = txn.open_table(EVENTS)?;
        table
            .get(id.as_str())?
            .map(|v| self.seal.open_event(v.value()))
            .transpose()
    }
}

impl EventStore for RedbStore {
    fn ingest(&self, new: NewEvent) -> StoreFuture<IngestOutcome> {
        // Encoded and sealed here, on the caller's thread, as before the first poll.
        let encoded = EncodedIngest::new(&new, &self.seal);
        let writer = self.writer.clone();
        Box::pin(async move {
            let encoded = encoded?;
            writer
                .write_async(move |txn| ingest(txn, &new, &encoded))
                .await
        })
    }

    fn ingest_blocking(&self, new: NewEvent) -> Result<IngestOutcome, StoreError> {
        let encoded = EncodedIngest::new(&new, &self.seal)?;
        self.writer.write(move |txn| ingest(txn, &new, &encoded))
    }

    fn insert_test_delivery(
        &self,
        event: Event,
        delivery: Delivery,
        attempt: Attempt,
    ) -> StoreFuture<()> {
        // Sealed here, off the writer thread.
        let encoded = self
            .seal
            .event(&event)
            .and_then(|e| Ok((e, self.seal.attempt(&attempt)?)));
        let writer = self.writer.clone();
        Box::pin(async move {
            let (encoded_event, encoded_attempt) = encoded?;
            writer
                .write_async(move |txn| {
                    txn.open_table(EVENTS)?
                        .insert(event.id.as_str(), encoded_event.as_slice())?;
                    let row = codec::encode(&delivery);
                    insert_deliveries(txn, std::iter::once((&delivery, &row)))?;
                    txn.open_table(ATTEMPTS)?.insert(
                        (delivery.id.as_str(), attempt.number),
                        encoded_attempt.as_slice(),
                    )?;
                    Ok(())
                })
                .await
        })
    }

    fn event(&self, workspace: &WorkspaceId, id: &EventId) -> Result<Event, StoreError> {
        self.get_event(&self.read()?, id)?
            .filter(|e| &e.workspace_id == workspace)
            .ok_or_else(|| not_found("event", id.as_str()))
    }

    fn event_deliveries(&self, id: &EventId) -> Result<Vec<Delivery>, StoreError> {
        let txn = self.read()?;
        let index = txn.open_table(DELIVERIES_BY_EVENT)?;
        let mut out = Vec::new();
        for entry in index.range((id.as_str(), "")..)? {
            let (key, ()) = entry.map(|(k, v)| (k, v.value()))?;
            let (event, delivery) = key.value();
            if event != id.as_str() {
                break;
            }
            if let Some(d) = get(&txn, DELIVERIES, delivery)? {
                out.push(d);
            }
        }
        Ok(out)
    }

    fn delivery(&self, workspace: &WorkspaceId, id: &DeliveryId) -> Result<Delivery, StoreError> {
        get::<Delivery>(&self.read()?, DELIVERIES, id.as_str())?
            .filter(|d| &d.workspace_id == workspace)
            .ok_or_else(|| not_found("delivery", id.as_str()))
    }

    fn list_deliveries(
        &self,
        workspace: &WorkspaceId,
        filter: &DeliveryFilter,
    ) -> Result<(Vec<Delivery>, Option<DeliveryId>), StoreError> {
        let txn = self.read()?;
        let deliveries = txn.open_table(DELIVERIES)?;
        // Ids start with their creation time, so the time window is a key range.
        let lower = filter
            .since
            .map_or_else(|| DeliveryId::PREFIX.to_owned(), id_at);
        let mut upper = filter
            .until
            .map_or_else(|| format!("{}~", DeliveryId::PREFIX), |ms| id_at(ms + 1));
        if let Some(before) = &filter.before
            && before.as_str() < upper.as_str()
        {
            before.as_str().clone_into(&mut upper);
        }
        let keep = |d: &Delivery| {
            &d.workspace_id == workspace
                && filter.status.is_none_or(|s| d.status == s)
                && filter
                    .event_type
                    .as_ref()
                    .is_none_or(|t| &d.event_type == t)
        };
        let mut page = Vec::with_capacity(filter.limit);
        let mut scanned = 0;
        let mut last_seen: Option<String> = None;
        let mut exhausted = true;
        // Through an index when the filter names a rule or a status, newest first: each
        // entry a delivery id whose row is then read. Pending ones are all in the queue;
        // succeeded, the bulk of the log, is a scan (see `status_indexed`).
        let by_rule = txn.open_table(DELIVERIES_BY_RULE)?;
        let by_status = txn.open_table(DELIVERIES_BY_STATUS)?;
        let open = txn.open_table(OPEN_DELIVERIES)?;
        let indexed: Option<Box<dyn Iterator<Item = Result<String, StoreError>>>> =
            if let Some(rule) = &filter.rule_id {
                let range = by_rule
                    .range((rule.as_str(), lower.as_str())..(rule.as_str(), upper.as_str()))?;
                Some(Box::new(range.rev().map(|entry| {
                    Ok(entry.map(|(key, _)| key.value().1.to_owned())?)
                })))
            } else if filter.status == Some(DeliveryStatus::Pending) {
                let range = open.range(lower.as_str()..upper.as_str())?;
                Some(Box::new(range.rev().map(|entry| {
                    Ok(entry.map(|(key, _)| key.value().to_owned())?)
                })))
            } else if let Some(status) = filter.status.filter(|s| status_indexed(*s)) {
                let (ws, status) = (workspace.as_str(), status.as_str());
                let range =
                    by_status.range((ws, status, lower.as_str())..(ws, status, upper.as_str()))?;
                Some(Box::new(range.rev().map(|entry| {
                    Ok(entry.map(|(key, _)| key.value().2.to_owned())?)
                })))
            } else {
                None
            };
        if let Some(ids) = indexed {
            for id in ids {
                let id = id?;
                scanned += 1;
                if let Some(d) = get_from::<Delivery>(&deliveries, "deliveries", &id)?
                    && keep(&d)
                {
                    page.push(d);
                }
                last_seen = Some(id);
                if page.len() >= filter.limit || scanned >= MAX_SCAN {
                    exhausted = false;
                    break;
                }
            }
        } else {
            for entry in deliveries.range(lower.as_str()..upper.as_str())?.rev() {
                let (key, value) = entry?;
                scanned += 1;
                let d: Delivery = codec::decode("deliveries", value.value())?;
                last_seen = Some(key.value().to_owned());
                if keep(&d) {
                    page.push(d);
                }
                if page.len() >= filter.limit || scanned >= MAX_SCAN {
                    exhausted = false;
                    break;
                }
            }
        }
        let cursor = if exhausted {
            None
        } else {
            last_seen.and_then(|id| DeliveryId::parse(&id))
        };
        Ok((page, cursor))
    }

    fn open_deliveries(&self) -> Result<Vec<DueDelivery>, StoreError> {
        let txn = self.read()?;
        let open = txn.open_table(OPEN_DELIVERIES)?;
        let deliveries = txn.open_table(DELIVERIES)?;
        let mut out = Vec::new();
        for entry in open.iter()? {
            let (key, due) = entry?;
            if let Some(d) = get_from::<Delivery>(&deliveries, "deliveries", key.value())? {
                out.push(DueDelivery {
                    id: d.id,
                    rule_id: d.rule_id,
                    due_at: due.value(),
                });
            }
        }
        Ok(out)
    }

    /// One node owns the file: nothing is ever taken over.
    fn on_reclaimed(&self, _sink: ReclaimSink) {}

    fn concurrency_slot(&self, _rule: &RuleId, _limit: u32) -> Slot {
        Slot::Local
    }

    fn ordering_head(&self, rule: &RuleId, key: &str) -> Result<Option<DeliveryId>, StoreError> {
        let txn = self.read()?;
        let ordered = txn.open_table(OPEN_BY_ORDERING_KEY)?;
        let first = ordered
            .range((rule.as_str(), key, "")..)?
            .next()
            .transpose()?;
        Ok(first.and_then(|(entry, _)| {
            let (r, k, id) = entry.value();
            (r == rule.as_str() && k == key)
                .then(|| DeliveryId::parse(id))
                .flatten()
        }))
    }

    fn delivery_with_event(
        &self,
        id: &DeliveryId,
    ) -> Result<Option<(Delivery, Arc<Event>)>, StoreError> {
        let txn = self.read()?;
        let Some(delivery) = get::<Delivery>(&txn, DELIVERIES, id.as_str())? else {
            return Ok(None);
        };
        let event_id = &delivery.event_id;
        let event = txn
            .open_table(EVENTS)?
            .get(event_id.as_str())?
            .map(|row| {
                self.seal
                    .open_event_to_deliver(event_id, row.value(), self.clock.now_ms())
            })
            .transpose()?
            .ok_or_else(|| not_found("event", event_id.as_str()))?;
        Ok(Some((delivery, event)))
    }

    fn close_delivery(&self, id: &DeliveryId, status: DeliveryStatus) -> Result<(), StoreError> {
        let (id, clock) = (id.clone(), self.clock.clone());
        self.writer.write(move |txn| {
            if let Some(mut d) = get_w::<Delivery>(txn, DELIVERIES, id.as_str())? {
                d.status = status;
                d.next_attempt_at = None;
                d.attempts_left = 0;
                d.updated_at = clock.now_ms();
                put_delivery(txn, &d)?;
            }
            Ok(())
        })
    }

    fn redeliver(&self, workspace: WorkspaceId, id: DeliveryId) -> StoreFuture<Delivery> {
        let (writer, clock) = (self.writer.clone(), self.clock.clone());
        Box::pin(async move {
            writer
                .write_async(move |txn| {
                    let d: Delivery = get_w::<Delivery>(txn, DELIVERIES, id.as_str())?
                        .filter(|d| d.workspace_id == workspace)
                        .ok_or_else(|| not_found("delivery", id.as_str()))?;
                    if d.erased {
                        return Err(StoreError::Conflict(format!(
                            "delivery {id} belongs to an erased subject: its event's data is destroyed and cannot be sent again"
                        )));
                    }
                    if d.status.is_open() {
                        return Err(StoreError::Conflict(format!(
                            "delivery {id} is still {} and will be attempted again; re-send it once it has succeeded or failed",
                            d.status.as_str()
                        )));
                    }
                    reopen(txn, d, clock.now_ms())
                })
                .await
        })
    }

    fn redeliver_failed(
        &self,
        workspace: WorkspaceId,
        rule_id: RuleId,
        since: i64,
        until: i64,
    ) -> StoreFuture<Vec<Delivery>> {
        let (writer, clock) = (self.writer.clone(), self.clock.clone());
        Box::pin(async move {
            writer
                .write_async(move |txn| {
                    let rule: Option<Rule> = get_w(txn, RULES, rule_id.as_str())?;
                    if rule.is_none_or(|r| r.workspace_id != workspace) {
                        return Err(not_found("rule", rule_id.as_str()));
                    }
                    let failed = failed_in(txn, &rule_id, since, until)?;
                    let now = clock.now_ms();
                    failed.into_iter().map(|d| reopen(txn, d, now)).collect()
                })
                .await
        })
    }
}

/// A rule's failed (non-test) deliveries created in `[since, until]`.
fn failed_in(
    txn: &WriteTransaction,
    rule_id: &RuleId,
    since: i64,
    until: i64,
) -> Result<Vec<Delivery>, StoreError> {
    let index = txn.open_table(DELIVERIES_BY_RULE)?;
    let deliveries = txn.open_table(DELIVERIES)?;
    let (lo, hi) = (id_at(since), id_at(until.saturating_add(1)));
    let mut out = Vec::new();
    for entry in index.range((rule_id.as_str(), lo.as_str())..(rule_id.as_str(), hi.as_str()))? {
        let (key, ()) = entry.map(|(k, v)| (k, v.value()))?;
        if let Some(d) = get_from::<Delivery>(&deliveries, "deliveries", key.value().1)?
            && d.status == DeliveryStatus::Failed
            && !d.test
            && !d.erased
        {
            out.push(d);
        }
    }
    Ok(out)
}

fn reopen(txn: &WriteTransaction, mut d: Delivery, now: i64) -> Result<Delivery, StoreError> {
    d.status = DeliveryStatus::Pending;
    d.attempts_left = 1;
    d.next_attempt_at = Some(now);
    d.updated_at = now;
    put_delivery(txn, &d)?;
    Ok(d)
}

/// An ingest's rows, serialised on the caller's thread so the writer thread (the one serial
/// point of every write) only copies bytes.
struct EncodedIngest {
    event: Vec<u8>,
    deliveries: Vec<Vec<u8>>,
}

impl EncodedIngest {
    fn new(new: &NewEvent, seal: &RowSeal) -> Result<Self, StoreError> {
        Ok(Self {
            event: seal.ingested_event(&new.event, !new.deliveries.is_empty())?,
            deliveries: new.deliveries.iter().map(codec::encode).collect(),
        })
    }
}

fn ingest(
    txn: &WriteTransaction,
    new: &NewEvent,
    encoded: &EncodedIngest,
) -> Result<IngestOutcome, StoreError> {
    let event = &new.event;
    if let Some((routine, slot)) = &new.routine_slot {
        let mut table = txn.open_table(ROUTINE_LAST_FIRED)?;
        let last = table.get(routine.as_str())?.map(|v| v.value());
        if last.is_some_and(|last| last >= *slot) {
            return Ok(IngestOutcome::Duplicate(event.id.clone()));
        }
        table.insert(routine.as_str(), *slot)?;
    }
    if let Some(key) = &new.idempotency_key {
        let mut table = txn.open_table(IDEMPOTENCY)?;
        let seen = table
            .get((event.workspace_id.as_str(), key.as_str()))?
            .map(|v| codec::decode::<IdempotencyRecord>("idempotency", v.value()))
            .transpose()?;
        if let Some(seen) = seen.filter(|s| s.expires_at > event.received_at) {
            return Ok(IngestOutcome::Duplicate(seen.event_id));
        }
        let record = IdempotencyRecord {
            event_id: event.id.clone(),
            expires_at: event.received_at + IDEMPOTENCY_TTL_MS,
        };
        table.insert(
            (event.workspace_id.as_str(), key.as_str()),
            codec::encode(&record).as_slice(),
        )?;
    }
    txn.open_table(EVENTS)?
        .insert(event.id.as_str(), encoded.event.as_slice())?;
    super::subjects::index_event(txn, event)?;
    insert_deliveries(txn, new.deliveries.iter().zip(&encoded.deliveries))?;
    Ok(IngestOutcome::Created)
}

/// New deliveries (each with its encoded row), with their indexes; the tables opened once
/// for all of them.
fn insert_deliveries<'a>(
    txn: &WriteTransaction,
    deliveries: impl Iterator<Item = (&'a Delivery, &'a Vec<u8>)>,
) -> Result<(), StoreError> {
    let mut rows = DeliveryTables::open(txn)?;
    let mut by_rule = txn.open_table(DELIVERIES_BY_RULE)?;
    let mut by_event = txn.open_table(DELIVERIES_BY_EVENT)?;
    for (d, encoded) in deliveries {
        rows.store(d, encoded)?;
        by_rule.insert((d.rule_id.as_str(), d.id.as_str()), ())?;
        by_event.insert((d.event_id.as_str(), d.id.as_str()), ())?;
        if d.status == DeliveryStatus::ConditionError {
            super::stats::count_condition_error(txn, d)?;
        }
    }
    Ok(())
}
