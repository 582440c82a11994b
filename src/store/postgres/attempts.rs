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

/// An attempt's log row, the delivery's new state, its place in the queue and the hourly
/// counter, in one statement: one round trip, where the writer is the serial point of every
/// write.
fn record(
    txn: &mut PgTxn,
    d: &Delivery,
    number: i32,
    encoded_attempt: &str,
    node: &str,
) -> Result<(), StoreError> {
    let finished = finished(d);
    let (ok, bad) = match finished {
        Some(true) => (0_i64, 1_i64),
        Some(false) => (1, 0),
        None => (0, 0),
    };
    txn.execute(
        "WITH a AS (
             INSERT INTO attempts (delivery_id, number, row) VALUES ($1, $2, $3::text::json)
             ON CONFLICT (delivery_id, number) DO UPDATE SET row = EXCLUDED.row
         ), d AS (
             UPDATE deliveries SET status = $4, row = $5::text::json WHERE id = $1
         ), q AS (
             INSERT INTO open_deliveries (delivery_id, rule_id, due_at, node, ordering_key)
             SELECT $1::text, $6::text, $7::bigint, $8::text, $9::text WHERE $7::bigint IS NOT NULL
             ON CONFLICT (delivery_id) DO UPDATE SET due_at = EXCLUDED.due_at, node = EXCLUDED.node
         ), x AS (
             DELETE FROM open_deliveries WHERE delivery_id = $1 AND $7::bigint IS NULL
         )
         INSERT INTO hourly_outcomes (workspace_id, hour, succeeded, failed)
         SELECT $10::text, $11::bigint, $12::bigint, $13::bigint WHERE $14::boolean
         ON CONFLICT (workspace_id, hour) DO UPDATE SET
             succeeded = hourly_outcomes.succeeded + EXCLUDED.succeeded,
             failed = hourly_outcomes.failed + EXCLUDED.failed",
        &[
            &d.id.as_str(),
            &number,
            &encoded_attempt,
            &d.status.as_str(),
            &encode_str(d),
            &d.rule_id.as_str(),
            &queue_due(d),
            &node,
            &d.ordering_key.as_deref(),
            &d.workspace_id.as_str(),
            &d.updated_at.div_euclid(HOUR_MS),
            &ok,
            &bad,
            &finished.is_some(),
        ],
    )?;
    Ok(())
}

impl AttemptStore for PgStore {
    fn record_attempt(&self, delivery: &Delivery, attempt: &Attempt, done: WriteDone) {
        // Sealed here, off the writer's thread.
        let encoded_attempt = match self.seal.attempt(attempt) {
            Ok(bytes) => json_text(bytes),
            Err(e) => return done(Err(e)),
        };
        let number = i32::try_from(attempt.number).unwrap_or(i32::MAX);
        let (delivery, node) = (delivery.clone(), self.node.clone());
        // A subject's delivery also keeps its disclosure record, which names the rule as
        // it was when the data went out.
        let subject_part = delivery.subject.is_some().then(|| {
            let rule_name = self
                .cached_rule(&delivery.rule_id)
                .map(|r| r.name.clone())
                .unwrap_or_default();
            (rule_name, attempt.clone(), self.seal.clone())
        });
        self.writer.submit_lazy_rerunnable(
            move |txn| {
                let Some((rule_name, attempt, seal)) = &subject_part else {
                    return record(txn, &delivery, number, &encoded_attempt, &node);
                };
                let (delivery, encoded_attempt) = subjects::record_subject_attempt(
                    txn,
                    seal,
                    delivery.clone(),
                    attempt,
                    rule_name,
                    encoded_attempt.clone(),
                )?;
                record(txn, &delivery, number, &encoded_attempt, &node)
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
