//! The people events are about (§13), as on redb (redb/subjects.rs): the subject index written
//! with each event (`subject_events`, dropped with the event by its foreign key when retention
//! prunes it), the disclosure records the attempt log keeps (`disclosures`, kept through
//! pruning and erasure), and erasure, which destroys a subject's event data and logged bodies
//! and then VACUUMs the tables, so the old row versions are removed, not merely dead.

use super::engine::PgTxn;
use serde_json::Map;

use super::audit::append_audit;
use super::catalog::scrub_seen_sample;
use super::events::put_delivery;
use super::{MAX_PAGE, PgStore, decode, json_text};
use crate::domain::audit::AuditEntry;
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::ids::{DeliveryId, WorkspaceId};
use crate::domain::subject::{Disclosure, Erased, SubjectHash};
use crate::store::codec::encode_str;
use crate::store::seal::RowSeal;
use crate::store::{DisclosureFilter, StoreError, StoreFuture, SubjectStore};

/// The tables an erasure rewrites; VACUUM removes the versions it left dead.
const ERASED_TABLES: &str = "events, deliveries, attempts, event_types";

impl SubjectStore for PgStore {
    fn disclosures(
        &self,
        workspace: &WorkspaceId,
        subject: &SubjectHash,
        filter: &DisclosureFilter,
    ) -> Result<(Vec<Disclosure>, Option<DeliveryId>), StoreError> {
        let limit = filter.limit.min(MAX_PAGE);
        let rows = self.conn()?.query(
            "SELECT row::text AS row FROM disclosures
             WHERE workspace_id = $1 AND subject = $2 AND delivery_id > $3
               AND ($4::bigint IS NULL OR first_attempt_at >= $4)
               AND ($5::bigint IS NULL OR first_attempt_at <= $5)
             ORDER BY delivery_id LIMIT $6",
            &[
                &workspace.as_str(),
                &subject.as_str(),
                &filter.after.as_ref().map_or("", DeliveryId::as_str),
                &filter.since,
                &filter.until,
                &i64::try_from(limit).unwrap_or(i64::MAX),
            ],
        )?;
        let page: Vec<Disclosure> = rows
            .iter()
            .map(|r| decode("disclosures", r))
            .collect::<Result<_, _>>()?;
        let cursor = (limit > 0 && page.len() == limit)
            .then(|| page.last().map(|d| d.delivery_id.clone()))
            .flatten();
        Ok((page, cursor))
    }

    fn erase_subject(
        &self,
        workspace: WorkspaceId,
        subject: SubjectHash,
        audit: AuditEntry,
    ) -> StoreFuture<Erased> {
        let (writer, seal, clock, node) = (
            self.writer.clone(),
            self.seal.clone(),
            self.clock.clone(),
            self.node.clone(),
        );
        let pool = self.pool.clone();
        let opened = self.seal.clone();
        Box::pin(async move {
            let erased = writer
                .write_async(move |txn| {
                    let erased = erase(txn, &seal, &workspace, &subject, clock.now_ms(), &node)?;
                    let audit = audit.after(serde_json::json!({
                        "events": erased.events,
                        "deliveries": erased.deliveries,
                    }));
                    append_audit(txn, &audit)?;
                    Ok(erased)
                })
                .await?;
            opened.forget_opened_events();
            // On a pool connection, not the writer's: a VACUUM of a large delivery log takes
            // a while, and writes need not wait for it (it locks out no reader or writer).
            // Always, even when nothing was erased now, so asking again finishes the job.
            // Its own thread: store futures run on any executor, not only tokio's.
            let (tx, rx) = tokio::sync::oneshot::channel();
            std::thread::spawn(move || {
                let vacuumed = super::connect::get(&pool).and_then(|mut conn| {
                    Ok(conn.batch_execute(&format!("VACUUM {ERASED_TABLES}"))?)
                });
                let _ = tx.send(vacuumed);
            });
            rx.await.unwrap_or(Err(StoreError::Closed))?;
            Ok(erased)
        })
    }
}

/// The attempt log's part for a delivery of a subject's event, in the attempt's transaction:
/// its disclosure record, and, if the subject was erased while this attempt was under way,
/// the erasure kept (the delivery stays as erased and the attempt is logged without bodies).
/// Returns the delivery and the encoded attempt to store.
pub(super) fn record_subject_attempt(
    txn: &mut PgTxn,
    seal: &RowSeal,
    delivery: Delivery,
    attempt: &Attempt,
    rule_name: &str,
    encoded_attempt: String,
) -> Result<(Delivery, String), StoreError> {
    let Some(subject) = delivery.subject.clone() else {
        return Ok((delivery, encoded_attempt));
    };
    let stored = txn
        .query_opt(
            "SELECT row::text AS row FROM deliveries WHERE id = $1 FOR UPDATE",
            &[&delivery.id.as_str()],
        )?
        .map(|r| decode::<Delivery>("deliveries", &r))
        .transpose()?;
    let (delivery, encoded_attempt) = match stored {
        Some(stored) if stored.erased => {
            let mut stripped = attempt.clone();
            strip_bodies(&mut stripped);
            (stored, json_text(seal.attempt(&stripped)?))
        }
        _ => (delivery, encoded_attempt),
    };
    let previous = txn
        .query_opt(
            "SELECT row::text AS row FROM disclosures
             WHERE workspace_id = $1 AND subject = $2 AND delivery_id = $3 FOR UPDATE",
            &[
                &delivery.workspace_id.as_str(),
                &subject.as_str(),
                &delivery.id.as_str(),
            ],
        )?
        .map(|r| decode::<Disclosure>("disclosures", &r))
        .transpose()?;
    if let Some(record) = Disclosure::after_attempt(previous, &delivery, attempt, rule_name) {
        txn.execute(
            "INSERT INTO disclosures (workspace_id, subject, delivery_id, first_attempt_at, row)
             VALUES ($1, $2, $3, $4, $5::text::json)
             ON CONFLICT (workspace_id, subject, delivery_id) DO UPDATE SET row = EXCLUDED.row",
            &[
                &delivery.workspace_id.as_str(),
                &subject.as_str(),
                &delivery.id.as_str(),
                &record.first_attempt_at,
                &encode_str(&record),
            ],
        )?;
    }
    Ok((delivery, encoded_attempt))
}

fn strip_bodies(attempt: &mut Attempt) {
    attempt.request.body = None;
    if let Some(response) = &mut attempt.response {
        response.body = None;
    }
}

/// Erases the subject's events not erased before; see `SubjectStore::erase_subject`.
fn erase(
    txn: &mut PgTxn,
    seal: &RowSeal,
    workspace: &WorkspaceId,
    subject: &SubjectHash,
    now: i64,
    node: &str,
) -> Result<Erased, StoreError> {
    let rows = txn.query(
        "SELECT e.id, e.row::text AS row FROM subject_events s JOIN events e ON e.id = s.event_id
         WHERE s.workspace_id = $1 AND s.subject = $2 AND e.workspace_id = $1
         ORDER BY e.id FOR UPDATE OF e",
        &[&workspace.as_str(), &subject.as_str()],
    )?;
    let mut erased = Erased::default();
    for row in &rows {
        let mut event = seal.open_event(row.get::<_, &str>("row").as_bytes())?;
        if event.erased {
            continue;
        }
        event.data = Map::new();
        event.erased = true;
        txn.execute(
            "UPDATE events SET row = $2::text::json WHERE id = $1",
            &[&event.id.as_str(), &json_text(seal.event(&event)?)],
        )?;
        erased.events += 1;
        scrub_seen_sample(txn, seal, workspace, &event.event_type)?;
        erased.deliveries += erase_deliveries(txn, seal, event.id.as_str(), now, node)?;
    }
    Ok(erased)
}

/// Closes an erased event's open deliveries unsent and empties every body logged for them;
/// returns how many deliveries it has.
fn erase_deliveries(
    txn: &mut PgTxn,
    seal: &RowSeal,
    event_id: &str,
    now: i64,
    node: &str,
) -> Result<u64, StoreError> {
    let rows = txn.query(
        "SELECT row::text AS row FROM deliveries WHERE event_id = $1 ORDER BY id FOR UPDATE",
        &[&event_id],
    )?;
    let mut count = 0;
    for row in &rows {
        let mut d: Delivery = decode("deliveries", row)?;
        count += 1;
        if d.status.is_open() {
            d.status = DeliveryStatus::Failed;
            d.next_attempt_at = None;
            d.attempts_left = 0;
        }
        d.erased = true;
        d.updated_at = now;
        put_delivery(txn, &d, node)?;
        let logged = txn.query(
            "SELECT number, row::text AS row FROM attempts WHERE delivery_id = $1 FOR UPDATE",
            &[&d.id.as_str()],
        )?;
        for attempt_row in &logged {
            let number: i32 = attempt_row.get("number");
            let mut attempt = seal.open_attempt(attempt_row.get::<_, &str>("row").as_bytes())?;
            strip_bodies(&mut attempt);
            txn.execute(
                "UPDATE attempts SET row = $3::text::json WHERE delivery_id = $1 AND number = $2",
                &[&d.id.as_str(), &number, &json_text(seal.attempt(&attempt)?)],
            )?;
        }
    }
    Ok(count)
}
