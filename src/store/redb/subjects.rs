//! The people events are about: the subject index written at ingest, the disclosure records
//! the attempt log keeps, and erasure, which destroys a subject's event data and logged
//! bodies and then compacts the file so the destroyed bytes do not linger in free pages.

use redb::{ReadableTable, WriteTransaction};
use serde_json::Map;

use super::audit::append_audit;
use super::delivery_rows::put_delivery;
use super::rows::get_w;
use super::tables::{
    ATTEMPTS, DELIVERIES, DELIVERIES_BY_EVENT, DISCLOSURES, EVENTS, SUBJECT_EVENTS,
};
use super::{MAX_SCAN, RedbStore};
use crate::domain::audit::AuditEntry;
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::event::Event;
use crate::domain::ids::{DeliveryId, WorkspaceId};
use crate::domain::subject::{Disclosure, Erased, SubjectHash};
use crate::store::codec;
use crate::store::seal::RowSeal;
use crate::store::{DisclosureFilter, StoreError, StoreFuture, SubjectStore};

/// Upper end of a key range over ids (every id is ASCII below `~`).
const ID_END: &str = "~";

impl SubjectStore for RedbStore {
    fn disclosures(
        &self,
        workspace: &WorkspaceId,
        subject: &SubjectHash,
        filter: &DisclosureFilter,
    ) -> Result<(Vec<Disclosure>, Option<DeliveryId>), StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(DISCLOSURES)?;
        let (ws, subj) = (workspace.as_str(), subject.as_str());
        let from = filter.after.as_ref().map_or("", DeliveryId::as_str);
        let mut page = Vec::with_capacity(filter.limit.min(1000));
        let mut scanned = 0;
        for entry in table.range((ws, subj, from)..(ws, subj, ID_END))? {
            let (key, value) = entry?;
            let id = key.value().2.to_owned();
            if id.as_str() == from {
                continue;
            }
            scanned += 1;
            let d: Disclosure = codec::decode("disclosures", value.value())?;
            if filter.since.is_none_or(|s| d.first_attempt_at >= s)
                && filter.until.is_none_or(|u| d.first_attempt_at <= u)
            {
                page.push(d);
            }
            if page.len() >= filter.limit || scanned >= MAX_SCAN {
                return Ok((page, DeliveryId::parse(&id)));
            }
        }
        Ok((page, None))
    }

    fn erase_subject(
        &self,
        workspace: WorkspaceId,
        subject: SubjectHash,
        audit: AuditEntry,
    ) -> StoreFuture<Erased> {
        let (writer, seal, clock) = (self.writer.clone(), self.seal.clone(), self.clock.clone());
        let opened = self.seal.clone();
        Box::pin(async move {
            let erased = writer
                .write_async(move |txn| {
                    let erased = erase(txn, &seal, &workspace, &subject, clock.now_ms())?;
                    let audit = audit.after(serde_json::json!({
                        "events": erased.events,
                        "deliveries": erased.deliveries,
                    }));
                    append_audit(txn, &audit)?;
                    Ok(erased)
                })
                .await?;
            opened.forget_opened_events();
            // Always, even when nothing was erased now: an earlier erasure whose compaction
            // failed (a long backup held a snapshot) is finished by asking again.
            writer.compact_async().await?;
            Ok(erased)
        })
    }
}

/// Adds an event to its subject's index (in the ingest's transaction).
pub(super) fn index_event(txn: &WriteTransaction, event: &Event) -> Result<(), StoreError> {
    if let Some(subject) = &event.subject {
        txn.open_table(SUBJECT_EVENTS)?.insert(
            (
                event.workspace_id.as_str(),
                subject.as_str(),
                event.id.as_str(),
            ),
            (),
        )?;
    }
    Ok(())
}

/// The plain part of an event row that places it in the subject index (its sealed data is
/// never opened for this).
#[derive(serde::Deserialize)]
struct IndexedAs {
    workspace_id: String,
    #[serde(default)]
    subject: Option<String>,
}

/// Takes a pruned event (its row as stored) out of its subject's index.
pub(super) fn unindex_event(
    txn: &WriteTransaction,
    id: &str,
    row: &[u8],
) -> Result<(), StoreError> {
    let placed: IndexedAs = codec::decode("events", row)?;
    if let Some(subject) = placed.subject {
        txn.open_table(SUBJECT_EVENTS)?.remove((
            placed.workspace_id.as_str(),
            subject.as_str(),
            id,
        ))?;
    }
    Ok(())
}

/// The attempt log's part for a delivery of a subject's event, in the attempt's transaction:
/// its disclosure record, and, if the subject was erased while this attempt was under way,
/// the erasure kept (the delivery stays closed and the attempt is logged without bodies).
/// Returns the delivery and attempt rows to store.
pub(super) fn record_subject_attempt(
    txn: &WriteTransaction,
    seal: &RowSeal,
    delivery: &Delivery,
    attempt: &Attempt,
    rule_name: &str,
    encoded: (Vec<u8>, Vec<u8>),
) -> Result<(Delivery, Vec<u8>, Vec<u8>), StoreError> {
    let Some(subject) = &delivery.subject else {
        return Ok((delivery.clone(), encoded.0, encoded.1));
    };
    let key = (
        delivery.workspace_id.as_str(),
        subject.as_str(),
        delivery.id.as_str(),
    );
    let mut table = txn.open_table(DISCLOSURES)?;
    let previous = table
        .get(key)?
        .map(|v| codec::decode::<Disclosure>("disclosures", v.value()))
        .transpose()?;
    let stored: Option<Delivery> = get_w(txn, DELIVERIES, delivery.id.as_str())?;
    let (delivery, encoded) = match stored {
        Some(stored) if stored.erased => {
            let mut stripped = attempt.clone();
            strip_bodies(&mut stripped);
            let rows = (codec::encode(&stored), seal.attempt(&stripped)?);
            (stored, rows)
        }
        _ => (delivery.clone(), encoded),
    };
    if let Some(record) = Disclosure::after_attempt(previous, &delivery, attempt, rule_name) {
        table.insert(key, codec::encode(&record).as_slice())?;
    }
    Ok((delivery, encoded.0, encoded.1))
}

fn strip_bodies(attempt: &mut Attempt) {
    attempt.request.body = None;
    if let Some(response) = &mut attempt.response {
        response.body = None;
    }
}

/// Erases the subject's events not erased before; see `SubjectStore::erase_subject`.
fn erase(
    txn: &WriteTransaction,
    seal: &RowSeal,
    workspace: &WorkspaceId,
    subject: &SubjectHash,
    now: i64,
) -> Result<Erased, StoreError> {
    let (ws, subj) = (workspace.as_str(), subject.as_str());
    let event_ids: Vec<String> = {
        let index = txn.open_table(SUBJECT_EVENTS)?;
        index
            .range((ws, subj, "")..(ws, subj, ID_END))?
            .map(|entry| entry.map(|(k, _)| k.value().2.to_owned()))
            .collect::<Result<_, _>>()?
    };
    let mut erased = Erased::default();
    for event_id in event_ids {
        let mut events = txn.open_table(EVENTS)?;
        let Some(mut event) = events
            .get(event_id.as_str())?
            .map(|v| seal.open_event(v.value()))
            .transpose()?
        else {
            continue;
        };
        if event.erased || &event.workspace_id != workspace {
            continue;
        }
        event.data = Map::new();
        event.erased = true;
        events.insert(event_id.as_str(), seal.event(&event)?.as_slice())?;
        drop(events);
        erased.events += 1;
        super::catalog::scrub_seen_sample(txn, seal, workspace, &event.event_type)?;
        erased.deliveries += erase_deliveries(txn, seal, &event_id, now)?;
    }
    Ok(erased)
}

/// Closes an erased event's open deliveries unsent and empties every body logged for them;
/// returns how many deliveries it has.
fn erase_deliveries(
    txn: &WriteTransaction,
    seal: &RowSeal,
    event_id: &str,
    now: i64,
) -> Result<u64, StoreError> {
    let ids: Vec<String> = {
        let index = txn.open_table(DELIVERIES_BY_EVENT)?;
        index
            .range((event_id, "")..(event_id, ID_END))?
            .map(|entry| entry.map(|(k, _)| k.value().1.to_owned()))
            .collect::<Result<_, _>>()?
    };
    let mut count = 0;
    for id in ids {
        let Some(mut d) = get_w::<Delivery>(txn, DELIVERIES, &id)? else {
            continue;
        };
        count += 1;
        if d.status.is_open() {
            d.status = DeliveryStatus::Failed;
            d.next_attempt_at = None;
            d.attempts_left = 0;
        }
        d.erased = true;
        d.updated_at = now;
        put_delivery(txn, &d)?;
        let mut attempts = txn.open_table(ATTEMPTS)?;
        let logged: Vec<(u32, Attempt)> = attempts
            .range((id.as_str(), 0)..=(id.as_str(), u32::MAX))?
            .map(|entry| {
                let (k, v) = entry?;
                Ok((k.value().1, seal.open_attempt(v.value())?))
            })
            .collect::<Result<_, StoreError>>()?;
        for (number, mut attempt) in logged {
            strip_bodies(&mut attempt);
            attempts.insert((id.as_str(), number), seal.attempt(&attempt)?.as_slice())?;
        }
    }
    Ok(count)
}
