//! Storing new events: each with its deliveries, each delivery queued if it is due, and its
//! subject's index row. Ingests that need nothing checked first (no idempotency key, no
//! routine slot) wait for the writer together and are stored in one statement (gather.rs).

use super::events::{EncodedIngest, queue_due};
use super::{PgStore, engine::PgTxn};
use crate::domain::delivery::Delivery;
use crate::domain::event::Event;
use crate::domain::subject::SubjectHash;
use crate::store::{IngestOutcome, NewEvent, StoreError, StoreFuture};

/// An ingest as it waits to be stored with the others.
pub(super) struct IngestRow {
    pub(super) new: NewEvent,
    pub(super) encoded: EncodedIngest,
}

impl PgStore {
    /// Queues the ingest with the others waiting for the writer; the future says once the
    /// batch holding it has committed (durably: a 202 follows).
    pub(super) fn queue_ingest(&self, row: IngestRow) -> StoreFuture<IngestOutcome> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done = Box::new(move |r| {
            let _ = tx.send(r);
        });
        let node = self.node.clone();
        let write = self.pending_ingests.add(row, done, move |txn, rows| {
            let events: Vec<NewRows<'_>> = rows
                .iter()
                .map(|r| NewRows {
                    event: &r.new.event,
                    encoded: &r.encoded,
                    indexed: true,
                    deliveries: &r.new.deliveries,
                })
                .collect();
            insert_events(txn, &events, &node)
        });
        if let Some((apply, done)) = write {
            self.writer.try_submit_rerunnable(apply, done);
        }
        Box::pin(async move {
            rx.await
                .unwrap_or(Err(StoreError::Closed))
                .map(|()| IngestOutcome::Created)
        })
    }
}

/// One new event's rows.
pub(super) struct NewRows<'a> {
    pub(super) event: &'a Event,
    /// The event's sealed row and its deliveries' rows.
    pub(super) encoded: &'a EncodedIngest,
    /// Whether its subject (if any) gets an index row (a test send's does not).
    pub(super) indexed: bool,
    pub(super) deliveries: &'a [Delivery],
}

/// One event with its deliveries (`insert_events`).
pub(super) fn insert_event(
    txn: &mut PgTxn,
    event: &Event,
    encoded: &EncodedIngest,
    indexed: bool,
    deliveries: &[Delivery],
    node: &str,
) -> Result<(), StoreError> {
    let rows = NewRows {
        event,
        encoded,
        indexed,
        deliveries,
    };
    insert_events(txn, &[rows], node)
}

/// Events with their deliveries, each queued if it is due (held by `node`), and their
/// subjects' index rows, in one statement: one round trip, where the writer is the serial
/// point of every write. A new delivery has no queue row to remove, so one not due is only
/// stored.
pub(super) fn insert_events(
    txn: &mut PgTxn,
    events: &[NewRows<'_>],
    node: &str,
) -> Result<(), StoreError> {
    let ids: Vec<&str> = events.iter().map(|e| e.event.id.as_str()).collect();
    let workspaces: Vec<&str> = events
        .iter()
        .map(|e| e.event.workspace_id.as_str())
        .collect();
    let encoded: Vec<&str> = events.iter().map(|e| e.encoded.event.as_str()).collect();
    let subjects: Vec<Option<&str>> = events
        .iter()
        .map(|e| {
            e.event
                .subject
                .as_ref()
                .filter(|_| e.indexed)
                .map(SubjectHash::as_str)
        })
        .collect();
    let all: Vec<&Delivery> = events.iter().flat_map(|e| e.deliveries).collect();
    let encoded_deliveries = events
        .iter()
        .flat_map(|e| &e.encoded.deliveries)
        .map(String::as_str)
        .collect();
    let d = DeliveryColumns::new(&all, encoded_deliveries);
    let queued: Vec<&Delivery> = all
        .iter()
        .copied()
        .filter(|d| queue_due(d).is_some())
        .collect();
    let queued_ids: Vec<&str> = queued.iter().map(|d| d.id.as_str()).collect();
    let queued_rules: Vec<&str> = queued.iter().map(|d| d.rule_id.as_str()).collect();
    let queued_due: Vec<i64> = queued.iter().filter_map(|d| queue_due(d)).collect();
    let queued_keys: Vec<Option<&str>> = queued.iter().map(|d| d.ordering_key.as_deref()).collect();
    txn.execute(
        "WITH e AS (
               INSERT INTO events (id, workspace_id, row)
               SELECT id, workspace_id, row::json
               FROM unnest($1::text[], $2::text[], $3::text[]) AS e(id, workspace_id, row)
           ), s AS (
               INSERT INTO subject_events (workspace_id, subject, event_id)
               SELECT workspace_id, subject, id
               FROM unnest($1::text[], $2::text[], $4::text[]) AS s(id, workspace_id, subject)
               WHERE subject IS NOT NULL
               ON CONFLICT DO NOTHING
           ), d AS (
               INSERT INTO deliveries
                   (id, workspace_id, rule_id, event_id, event_type, status, test, row)
               SELECT id, workspace_id, rule_id, event_id, event_type, status, test, row::json
               FROM unnest($5::text[], $6::text[], $7::text[], $8::text[], $9::text[],
                           $10::text[], $11::bool[], $12::text[])
                   AS d(id, workspace_id, rule_id, event_id, event_type, status, test, row)
           )
           INSERT INTO open_deliveries (delivery_id, rule_id, due_at, node, ordering_key)
           SELECT id, rule_id, due_at, $13::text, ordering_key
           FROM unnest($14::text[], $15::text[], $16::bigint[], $17::text[])
               AS q(id, rule_id, due_at, ordering_key)
           ON CONFLICT (delivery_id) DO UPDATE SET due_at = EXCLUDED.due_at, node = EXCLUDED.node",
        &[
            &ids,
            &workspaces,
            &encoded,
            &subjects,
            &d.ids,
            &d.workspaces,
            &d.rules,
            &d.events,
            &d.types,
            &d.statuses,
            &d.tests,
            &d.rows,
            &node,
            &queued_ids,
            &queued_rules,
            &queued_due,
            &queued_keys,
        ],
    )?;
    Ok(())
}

/// Deliveries as one array per column, for `unnest`.
struct DeliveryColumns<'a> {
    ids: Vec<&'a str>,
    workspaces: Vec<&'a str>,
    rules: Vec<&'a str>,
    events: Vec<&'a str>,
    types: Vec<&'a str>,
    statuses: Vec<&'a str>,
    tests: Vec<bool>,
    /// Serialised on the caller's thread (`EncodedIngest`), not the writer's.
    rows: Vec<&'a str>,
}

impl<'a> DeliveryColumns<'a> {
    fn new(deliveries: &[&'a Delivery], rows: Vec<&'a str>) -> Self {
        Self {
            ids: deliveries.iter().map(|d| d.id.as_str()).collect(),
            workspaces: deliveries.iter().map(|d| d.workspace_id.as_str()).collect(),
            rules: deliveries.iter().map(|d| d.rule_id.as_str()).collect(),
            events: deliveries.iter().map(|d| d.event_id.as_str()).collect(),
            types: deliveries.iter().map(|d| d.event_type.as_str()).collect(),
            statuses: deliveries.iter().map(|d| d.status.as_str()).collect(),
            tests: deliveries.iter().map(|d| d.test).collect(),
            rows,
        }
    }
}
