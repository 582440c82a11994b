//! Events and their deliveries: ingest (with idempotency keys and routine slots), the
//! delivery log and its filters, and the durable queue of open deliveries
//! (`open_deliveries`, with the node that holds each) that every delivery write keeps in step.

use std::sync::Arc;

use postgres::types::Type;

use super::engine::PgTxn;

use super::ingests::{IngestRow, insert_event};
use super::{MAX_PAGE, PgStore, decode, json_text};
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::event::{Event, EventType};
use crate::domain::ids::{DeliveryId, EventId, RuleId, WorkspaceId};
use crate::store::codec::encode_str;
use crate::store::seal::RowSeal;
use crate::store::types::{not_found, status_indexed};
use crate::store::{
    DeliveryFilter, DueDelivery, EventStore, IDEMPOTENCY_TTL_MS, IngestOutcome, NewEvent,
    ReclaimSink, Slot, StoreError, StoreFuture,
};

/// The smallest delivery id created at `ms` (ids begin with their creation time).
pub(super) fn id_at(ms: i64) -> String {
    let ms = u64::try_from(ms.max(0)).unwrap_or(0) & 0xffff_ffff_ffff;
    format!("{}{ms:012x}", DeliveryId::PREFIX)
}

impl PgStore {
    fn open_event(&self, row: &postgres::Row) -> Result<Event, StoreError> {
        self.seal.open_event(row.get::<_, &str>("row").as_bytes())
    }
}

impl EventStore for PgStore {
    fn ingest(&self, new: NewEvent) -> StoreFuture<IngestOutcome> {
        // Sealed here, on the caller's thread, before the writer sees it.
        let encoded = EncodedIngest::new(&new, &self.seal);
        if new.idempotency_key.is_none() && new.routine_slot.is_none() {
            // Nothing to check first: stored with the other ingests waiting (ingests.rs).
            return match encoded {
                Ok(encoded) => self.queue_ingest(IngestRow { new, encoded }),
                Err(e) => Box::pin(async move { Err(e) }),
            };
        }
        let (writer, node) = (self.writer.clone(), self.node.clone());
        Box::pin(async move {
            let encoded = encoded?;
            writer
                .write_async_rerunnable(move |txn| ingest(txn, &new, &encoded, &node))
                .await
        })
    }

    fn ingest_blocking(&self, new: NewEvent) -> Result<IngestOutcome, StoreError> {
        let encoded = EncodedIngest::new(&new, &self.seal)?;
        let node = self.node.clone();
        self.writer
            .write_rerunnable(move |txn| ingest(txn, &new, &encoded, &node))
    }

    fn insert_test_delivery(
        &self,
        event: Event,
        delivery: Delivery,
        attempt: Attempt,
    ) -> StoreFuture<()> {
        let event = Arc::new(event);
        let deliveries = std::slice::from_ref(&delivery);
        let encoded = EncodedIngest::of(&event, deliveries, &self.seal)
            .and_then(|rows| Ok((rows, json_text(self.seal.attempt(&attempt)?))));
        let (writer, node) = (self.writer.clone(), self.node.clone());
        Box::pin(async move {
            let (encoded_rows, encoded_attempt) = encoded?;
            writer
                .write_async(move |txn| {
                    // A test send's event is in no subject's index.
                    insert_event(
                        txn,
                        &event,
                        &encoded_rows,
                        false,
                        std::slice::from_ref(&delivery),
                        &node,
                    )?;
                    txn.execute(
                        "INSERT INTO attempts (delivery_id, number, row) VALUES ($1, $2, $3::text::json)",
                        &[
                            &delivery.id.as_str(),
                            &i32::try_from(attempt.number).unwrap_or(i32::MAX),
                            &encoded_attempt,
                        ],
                    )?;
                    Ok(())
                })
                .await
        })
    }

    fn event(&self, workspace: &WorkspaceId, id: &EventId) -> Result<Event, StoreError> {
        let row = self.conn()?.query_opt(
            "SELECT row::text AS row FROM events WHERE id = $1 AND workspace_id = $2",
            &[&id.as_str(), &workspace.as_str()],
        )?;
        row.map(|r| self.open_event(&r))
            .transpose()?
            .ok_or_else(|| not_found("event", id.as_str()))
    }

    fn event_deliveries(&self, id: &EventId) -> Result<Vec<Delivery>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT row::text AS row FROM deliveries WHERE event_id = $1 ORDER BY id",
            &[&id.as_str()],
        )?;
        rows.iter().map(|r| decode("deliveries", r)).collect()
    }

    fn delivery(&self, workspace: &WorkspaceId, id: &DeliveryId) -> Result<Delivery, StoreError> {
        let row = self.conn()?.query_opt(
            "SELECT row::text AS row FROM deliveries WHERE id = $1 AND workspace_id = $2",
            &[&id.as_str(), &workspace.as_str()],
        )?;
        row.map(|r| decode("deliveries", &r))
            .transpose()?
            .ok_or_else(|| not_found("delivery", id.as_str()))
    }

    fn list_deliveries(
        &self,
        workspace: &WorkspaceId,
        filter: &DeliveryFilter,
    ) -> Result<(Vec<Delivery>, Option<DeliveryId>), StoreError> {
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
        let limit = i64::try_from(filter.limit.min(MAX_PAGE)).unwrap_or(i64::MAX);
        let (rule, event_type) = (
            filter.rule_id.as_ref().map(RuleId::as_str),
            filter.event_type.as_ref().map(EventType::as_str),
        );
        let ws = workspace.as_str();
        let mut conn = self.conn()?;
        // A status with no rule: the rarer ones from their side table, pending ones from
        // the queue (see `status_indexed`); everything else by workspace or rule.
        let rows = match filter.status {
            Some(status) if rule.is_none() && status_indexed(status) => conn.query(
                "SELECT d.row::text AS row FROM delivery_statuses s
                 JOIN deliveries d ON d.id = s.delivery_id
                 WHERE s.workspace_id = $1 AND s.status = $2
                   AND s.delivery_id >= $3 AND s.delivery_id < $4
                   AND ($5::text IS NULL OR d.event_type = $5)
                 ORDER BY s.delivery_id DESC LIMIT $6",
                &[&ws, &status.as_str(), &lower, &upper, &event_type, &limit],
            )?,
            Some(DeliveryStatus::Pending) if rule.is_none() => conn.query(
                "SELECT d.row::text AS row FROM open_deliveries o
                 JOIN deliveries d ON d.id = o.delivery_id
                 WHERE o.delivery_id >= $2 AND o.delivery_id < $3
                   AND d.workspace_id = $1 AND d.status = 'pending'
                   AND ($4::text IS NULL OR d.event_type = $4)
                 ORDER BY o.delivery_id DESC LIMIT $5",
                &[&ws, &lower, &upper, &event_type, &limit],
            )?,
            status => conn.query(
                "SELECT row::text AS row FROM deliveries
                 WHERE workspace_id = $1 AND id >= $2 AND id < $3
                   AND ($4::text IS NULL OR rule_id = $4)
                   AND ($5::text IS NULL OR status = $5)
                   AND ($6::text IS NULL OR event_type = $6)
                 ORDER BY id DESC LIMIT $7",
                &[
                    &ws,
                    &lower,
                    &upper,
                    &rule,
                    &status.map(DeliveryStatus::as_str),
                    &event_type,
                    &limit,
                ],
            )?,
        };
        let page: Vec<Delivery> = rows
            .iter()
            .map(|r| decode("deliveries", r))
            .collect::<Result<_, _>>()?;
        // A full page may have more below it: its last id is the cursor.
        let cursor = (limit > 0 && i64::try_from(page.len()) == Ok(limit))
            .then(|| page.last().map(|d| d.id.clone()))
            .flatten();
        Ok((page, cursor))
    }

    /// The open deliveries this node may send now: those it held before a restart under its
    /// id, those nobody holds, and those of nodes silent past the lease; all claimed for it.
    fn open_deliveries(&self) -> Result<Vec<DueDelivery>, StoreError> {
        // All at once: the dispatcher's queue must hold every one this node may send.
        self.take_over(true, i64::MAX)
    }

    fn on_reclaimed(&self, sink: ReclaimSink) {
        self.reclaimed.set(sink);
    }

    fn concurrency_slot(&self, rule: &RuleId, limit: u32) -> Slot {
        self.slots.take(rule, limit)
    }

    fn ordering_head(&self, rule: &RuleId, key: &str) -> Result<Option<DeliveryId>, StoreError> {
        let row = self.conn()?.query_opt(
            "SELECT delivery_id FROM open_deliveries WHERE rule_id = $1 AND ordering_key = $2
             ORDER BY delivery_id LIMIT 1",
            &[&rule.as_str(), &key],
        )?;
        Ok(row.and_then(|r| DeliveryId::parse(r.get::<_, &str>(0))))
    }

    fn delivery_with_event(
        &self,
        id: &DeliveryId,
    ) -> Result<Option<(Delivery, Arc<Event>)>, StoreError> {
        // Typed: parsed and run in one round trip (every attempt reads this).
        let rows = self.conn()?.query_typed(
            "SELECT d.row::text AS row, e.row::text AS event FROM deliveries d
             LEFT JOIN events e ON e.id = d.event_id WHERE d.id = $1",
            &[(&id.as_str(), Type::TEXT)],
        )?;
        let Some(row) = rows.first() else {
            return Ok(None);
        };
        let delivery: Delivery = decode("deliveries", row)?;
        let event = row
            .get::<_, Option<&str>>("event")
            .ok_or_else(|| not_found("event", delivery.event_id.as_str()))?;
        let event = self.seal.open_event_to_deliver(
            &delivery.event_id,
            event.as_bytes(),
            self.clock.now_ms(),
        )?;
        Ok(Some((delivery, event)))
    }

    fn close_delivery(&self, id: &DeliveryId, status: DeliveryStatus) -> Result<(), StoreError> {
        let (id, clock, node) = (id.clone(), self.clock.clone(), self.node.clone());
        self.writer.write(move |txn| {
            if let Some(mut d) = delivery_for_update(txn, &id)? {
                d.status = status;
                d.next_attempt_at = None;
                d.attempts_left = 0;
                d.updated_at = clock.now_ms();
                put_delivery(txn, &d, &node)?;
            }
            Ok(())
        })
    }

    fn redeliver(&self, workspace: WorkspaceId, id: DeliveryId) -> StoreFuture<Delivery> {
        let (writer, clock, node) = (self.writer.clone(), self.clock.clone(), self.node.clone());
        Box::pin(async move {
            writer
                .write_async(move |txn| {
                    let d = delivery_for_update(txn, &id)?
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
                    reopen(txn, d, clock.now_ms(), &node)
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
        let (writer, clock, node) = (self.writer.clone(), self.clock.clone(), self.node.clone());
        Box::pin(async move {
            writer
                .write_async(move |txn| {
                    let owned = txn.query_opt(
                        "SELECT 1 FROM rules WHERE id = $1 AND workspace_id = $2",
                        &[&rule_id.as_str(), &workspace.as_str()],
                    )?;
                    if owned.is_none() {
                        return Err(not_found("rule", rule_id.as_str()));
                    }
                    let rows = txn.query(
                        "SELECT row::text AS row FROM deliveries
                         WHERE rule_id = $1 AND id >= $2 AND id < $3 AND status = $4 AND NOT test
                           AND NOT coalesce((row->>'erased')::boolean, false)
                         ORDER BY id FOR UPDATE",
                        &[
                            &rule_id.as_str(),
                            &id_at(since),
                            &id_at(until.saturating_add(1)),
                            &DeliveryStatus::Failed.as_str(),
                        ],
                    )?;
                    let failed: Vec<Delivery> = rows
                        .iter()
                        .map(|r| decode("deliveries", r))
                        .collect::<Result<_, _>>()?;
                    let now = clock.now_ms();
                    failed
                        .into_iter()
                        .map(|d| reopen(txn, d, now, &node))
                        .collect()
                })
                .await
        })
    }
}

fn delivery_for_update(txn: &mut PgTxn, id: &DeliveryId) -> Result<Option<Delivery>, StoreError> {
    txn.query_opt(
        "SELECT row::text AS row FROM deliveries WHERE id = $1 FOR UPDATE",
        &[&id.as_str()],
    )?
    .map(|r| decode("deliveries", &r))
    .transpose()
}

fn reopen(txn: &mut PgTxn, mut d: Delivery, now: i64, node: &str) -> Result<Delivery, StoreError> {
    d.status = DeliveryStatus::Pending;
    d.attempts_left = 1;
    d.next_attempt_at = Some(now);
    d.updated_at = now;
    put_delivery(txn, &d, node)?;
    Ok(d)
}

/// An ingest's rows, serialised and sealed on the caller's thread so the writer (the one
/// serial point of every write) only sends text.
pub(super) struct EncodedIngest {
    pub(super) event: String,
    /// Each delivery's row, in the order of the deliveries.
    pub(super) deliveries: Vec<String>,
}

impl EncodedIngest {
    fn new(new: &NewEvent, seal: &RowSeal) -> Result<Self, StoreError> {
        Self::of(&new.event, &new.deliveries, seal)
    }

    fn of(event: &Arc<Event>, deliveries: &[Delivery], seal: &RowSeal) -> Result<Self, StoreError> {
        Ok(Self {
            event: json_text(seal.ingested_event(event, !deliveries.is_empty())?),
            deliveries: deliveries.iter().map(encode_str).collect(),
        })
    }
}

fn ingest(
    txn: &mut PgTxn,
    new: &NewEvent,
    encoded: &EncodedIngest,
    node: &str,
) -> Result<IngestOutcome, StoreError> {
    let event = &new.event;
    if let Some((routine, slot)) = &new.routine_slot {
        // The row lock makes two nodes firing one slot take turns; the second sees it taken.
        let fired = txn.query_opt(
            "INSERT INTO routine_last_fired (rule_id, slot) VALUES ($1, $2)
             ON CONFLICT (rule_id) DO UPDATE SET slot = EXCLUDED.slot
             WHERE routine_last_fired.slot < EXCLUDED.slot
             RETURNING slot",
            &[&routine.as_str(), slot],
        )?;
        if fired.is_none() {
            return Ok(IngestOutcome::Duplicate(event.id.clone()));
        }
    }
    if let Some(key) = &new.idempotency_key {
        let claimed = txn.query_opt(
            "INSERT INTO idempotency_keys (workspace_id, key, event_id, expires_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (workspace_id, key) DO UPDATE
                 SET event_id = EXCLUDED.event_id, expires_at = EXCLUDED.expires_at
                 WHERE idempotency_keys.expires_at <= $5
             RETURNING event_id",
            &[
                &event.workspace_id.as_str(),
                key,
                &event.id.as_str(),
                &(event.received_at + IDEMPOTENCY_TTL_MS),
                &event.received_at,
            ],
        )?;
        if claimed.is_none() {
            let seen: String = txn
                .query_one(
                    "SELECT event_id FROM idempotency_keys WHERE workspace_id = $1 AND key = $2",
                    &[&event.workspace_id.as_str(), key],
                )?
                .get(0);
            let seen = EventId::parse(&seen)
                .ok_or_else(|| StoreError::Corrupt(format!("bad event id {seen:?}")))?;
            return Ok(IngestOutcome::Duplicate(seen));
        }
    }
    insert_event(txn, event, encoded, true, &new.deliveries, node)?;
    Ok(IngestOutcome::Created)
}

/// When the durable queue holds `d` ("open deliveries and when they are due"), or `None`
/// when it holds no row for it.
pub(super) fn queue_due(d: &Delivery) -> Option<i64> {
    d.next_attempt_at.filter(|_| d.status.is_open())
}

/// Stores a delivery's new state (its status column with it) and keeps the queue in step
/// (a queued one is held by `node`), in one statement.
pub(super) fn put_delivery(txn: &mut PgTxn, d: &Delivery, node: &str) -> Result<(), StoreError> {
    txn.execute(
        "WITH d AS (
             UPDATE deliveries SET status = $2, row = $3::text::json WHERE id = $1
         ), q AS (
             INSERT INTO open_deliveries (delivery_id, rule_id, due_at, node, ordering_key)
             SELECT $1::text, $4::text, $5::bigint, $6::text, $7::text WHERE $5::bigint IS NOT NULL
             ON CONFLICT (delivery_id) DO UPDATE SET due_at = EXCLUDED.due_at, node = EXCLUDED.node
         )
         DELETE FROM open_deliveries WHERE delivery_id = $1 AND $5::bigint IS NULL",
        &[
            &d.id.as_str(),
            &d.status.as_str(),
            &encode_str(d),
            &d.rule_id.as_str(),
            &queue_due(d),
            &node,
            &d.ordering_key.as_deref(),
        ],
    )?;
    Ok(())
}
