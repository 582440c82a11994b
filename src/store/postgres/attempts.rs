//! The attempt log: each attempt's request and response (bodies sealed), written with the
//! delivery's new state, its place in the open queue and the hourly counters.

use super::engine::PgTxn;
use super::events::queue_due;
use super::{PgStore, json_text, subjects};
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::ids::DeliveryId;
use crate::store::codec::encode_str;
use crate::store::{AttemptStore, RuleStore, StoreError, WriteDone};

const HOUR_MS: i64 = 3_600_000;

/// Whether a delivery that has just finished counts in the hour it finished, as failed or
/// not (as redb's stats.rs: test sends, erased and open deliveries are left out; a re-send
/// that finishes again counts again).
fn finished(d: &Delivery) -> Option<bool> {
    let failed = match d.status {
        DeliveryStatus::Succeeded => false,
        DeliveryStatus::Failed | DeliveryStatus::Blocked => true,
        _ => return None,
    };
    (!d.test && !d.erased).then_some(failed)
}

/// One attempt's rows as the writer stores them: its log row, the delivery's new state and
/// place in the queue, and the hourly counter.
pub(super) struct AttemptRow {
    delivery: Delivery,
    /// The delivery's row, serialised off the writer's thread where it can be.
    encoded_delivery: String,
    number: i32,
    encoded_attempt: String,
}

impl AttemptRow {
    fn new(delivery: Delivery, number: i32, encoded_attempt: String) -> Self {
        Self {
            encoded_delivery: encode_str(&delivery),
            delivery,
            number,
            encoded_attempt,
        }
    }
}

/// Attempts' rows, the deliveries' new states, their places in the queue and the hourly
/// counters (this node's row of each hour: nodes do not wait on each other for it), for
/// many attempts in one statement: one round trip, where the writer is the
/// serial point of every write. No two rows may be of one delivery (`in_rounds`).
fn record_all(txn: &mut PgTxn, rows: &[&AttemptRow], node: &str) -> Result<(), StoreError> {
    let text = |f: fn(&AttemptRow) -> &str| rows.iter().map(|r| f(r)).collect::<Vec<&str>>();
    let ids = text(|r| r.delivery.id.as_str());
    let numbers: Vec<i32> = rows.iter().map(|r| r.number).collect();
    let attempts = text(|r| &r.encoded_attempt);
    let statuses = text(|r| r.delivery.status.as_str());
    let deliveries = text(|r| &r.encoded_delivery);
    let rules = text(|r| r.delivery.rule_id.as_str());
    let due: Vec<Option<i64>> = rows.iter().map(|r| queue_due(&r.delivery)).collect();
    let keys: Vec<Option<&str>> = rows
        .iter()
        .map(|r| r.delivery.ordering_key.as_deref())
        .collect();
    let workspaces = text(|r| r.delivery.workspace_id.as_str());
    let hours: Vec<i64> = rows
        .iter()
        .map(|r| r.delivery.updated_at.div_euclid(HOUR_MS))
        .collect();
    let outcome: Vec<Option<bool>> = rows.iter().map(|r| finished(&r.delivery)).collect();
    let ok: Vec<i64> = outcome
        .iter()
        .map(|f| i64::from(*f == Some(false)))
        .collect();
    let bad: Vec<i64> = outcome
        .iter()
        .map(|f| i64::from(*f == Some(true)))
        .collect();
    let counted: Vec<bool> = outcome.iter().map(Option::is_some).collect();
    txn.execute(
        "WITH i AS (
             SELECT * FROM unnest($1::text[], $2::int4[], $3::text[], $4::text[], $5::text[],
                                  $6::text[], $7::bigint[], $8::text[], $9::text[],
                                  $10::bigint[], $11::bigint[], $12::bigint[], $13::bool[])
                 AS i(delivery_id, number, attempt, status, row, rule_id, due_at,
                      ordering_key, workspace_id, hour, ok, bad, counted)
         ), a AS (
             INSERT INTO attempts (delivery_id, number, row)
             SELECT delivery_id, number, attempt::json FROM i
             ON CONFLICT (delivery_id, number) DO UPDATE SET row = EXCLUDED.row
         ), d AS (
             UPDATE deliveries d SET status = i.status, row = i.row::json
             FROM i WHERE d.id = i.delivery_id
         ), q AS (
             INSERT INTO open_deliveries (delivery_id, rule_id, due_at, node, ordering_key)
             SELECT delivery_id, rule_id, due_at, $14::text, ordering_key FROM i
             WHERE due_at IS NOT NULL
             ON CONFLICT (delivery_id) DO UPDATE SET due_at = EXCLUDED.due_at, node = EXCLUDED.node
         ), x AS (
             DELETE FROM open_deliveries o USING i
             WHERE o.delivery_id = i.delivery_id AND i.due_at IS NULL
         )
         INSERT INTO hourly_outcomes (workspace_id, hour, node, succeeded, failed)
         SELECT workspace_id, hour, $14::text, sum(ok)::bigint, sum(bad)::bigint FROM i
         WHERE counted GROUP BY workspace_id, hour
         ON CONFLICT (workspace_id, hour, node) DO UPDATE SET
             succeeded = hourly_outcomes.succeeded + EXCLUDED.succeeded,
             failed = hourly_outcomes.failed + EXCLUDED.failed",
        &[
            &ids,
            &numbers,
            &attempts,
            &statuses,
            &deliveries,
            &rules,
            &due,
            &keys,
            &workspaces,
            &hours,
            &ok,
            &bad,
            &counted,
            &node,
        ],
    )?;
    Ok(())
}

/// Splits rows so that no statement holds two of one delivery (a row may not be changed
/// twice by one statement). The dispatcher logs an attempt before it makes the next, so
/// one round is the rule; a second is only for safety.
fn in_rounds(rows: &[AttemptRow]) -> Vec<Vec<&AttemptRow>> {
    let mut rounds: Vec<(std::collections::HashSet<&str>, Vec<&AttemptRow>)> = Vec::new();
    for row in rows {
        let id = row.delivery.id.as_str();
        match rounds.iter_mut().find(|(ids, _)| !ids.contains(id)) {
            Some((ids, round)) => {
                ids.insert(id);
                round.push(row);
            }
            None => rounds.push((std::iter::once(id).collect(), vec![row])),
        }
    }
    rounds.into_iter().map(|(_, round)| round).collect()
}

impl PgStore {
    /// Queues the attempt with the others waiting for the writer (gather.rs).
    fn queue_attempt(&self, row: AttemptRow, done: WriteDone) {
        let node = self.node.clone();
        let write = self.pending_attempts.add(row, done, move |txn, rows| {
            for round in in_rounds(rows) {
                record_all(txn, &round, &node)?;
            }
            Ok(())
        });
        if let Some((apply, done)) = write {
            self.writer.submit_lazy_rerunnable(apply, done);
        }
    }
}

impl AttemptStore for PgStore {
    fn record_attempt(&self, delivery: &Delivery, attempt: &Attempt, done: WriteDone) {
        // Sealed here, off the writer's thread.
        let encoded_attempt = match self.seal.attempt(attempt) {
            Ok(bytes) => json_text(bytes),
            Err(e) => return done(Err(e)),
        };
        let number = i32::try_from(attempt.number).unwrap_or(i32::MAX);
        if delivery.subject.is_none() {
            let row = AttemptRow::new(delivery.clone(), number, encoded_attempt);
            return self.queue_attempt(row, done);
        }
        // A subject's delivery also keeps its disclosure record, which names the rule as
        // it was when the data went out.
        let rule_name = self
            .cached_rule(&delivery.rule_id)
            .map(|r| r.name.clone())
            .unwrap_or_default();
        let (delivery, attempt, seal, node) = (
            delivery.clone(),
            attempt.clone(),
            self.seal.clone(),
            self.node.clone(),
        );
        self.writer.submit_lazy_rerunnable(
            move |txn| {
                let (delivery, encoded_attempt) = subjects::record_subject_attempt(
                    txn,
                    &seal,
                    delivery.clone(),
                    &attempt,
                    &rule_name,
                    encoded_attempt.clone(),
                )?;
                // Its row changed in the transaction: serialised here.
                let row = AttemptRow::new(delivery, number, encoded_attempt);
                record_all(txn, &[&row], &node)
            },
            done,
        );
    }

    fn attempts(&self, id: &DeliveryId) -> Result<Vec<Attempt>, StoreError> {
        let rows = self.conn()?.query(
            "SELECT row::text AS row FROM attempts WHERE delivery_id = $1 ORDER BY number",
            &[&id.as_str()],
        )?;
        rows.iter()
            .map(|r| self.seal.open_attempt(r.get::<_, &str>("row").as_bytes()))
            .collect()
    }
}
