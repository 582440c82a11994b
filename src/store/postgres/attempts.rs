//! The attempt log: each attempt's request and response (bodies sealed), written with the
//! delivery's new state, its place in the open queue and the hourly counters.

use super::engine::PgTxn;
use super::events::put_delivery;
use super::{PgStore, json_text, subjects};
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::ids::DeliveryId;
use crate::store::{AttemptStore, RuleStore, StoreError, WriteDone};

const HOUR_MS: i64 = 3_600_000;

/// Counts a delivery that has just finished in the hour it finished (as redb's stats.rs:
/// test sends and open deliveries are left out; a re-send that finishes again counts again).
fn count_finished(txn: &mut PgTxn, d: &Delivery) -> Result<(), StoreError> {
    let failed = match d.status {
        DeliveryStatus::Succeeded => false,
        DeliveryStatus::Failed | DeliveryStatus::Blocked => true,
        _ => return Ok(()),
    };
    if d.test {
        return Ok(());
    }
    let (ok, bad) = if failed { (0_i64, 1_i64) } else { (1, 0) };
    txn.execute(
        "INSERT INTO hourly_outcomes (workspace_id, hour, succeeded, failed) VALUES ($1, $2, $3, $4)
         ON CONFLICT (workspace_id, hour) DO UPDATE SET
             succeeded = hourly_outcomes.succeeded + EXCLUDED.succeeded,
             failed = hourly_outcomes.failed + EXCLUDED.failed",
        &[
            &d.workspace_id.as_str(),
            &d.updated_at.div_euclid(HOUR_MS),
            &ok,
            &bad,
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
        self.writer.submit_lazy(
            move |txn| {
                let (delivery, encoded_attempt) = match subject_part {
                    None => (delivery, encoded_attempt),
                    Some((rule_name, attempt, seal)) => subjects::record_subject_attempt(
                        txn,
                        &seal,
                        delivery,
                        &attempt,
                        &rule_name,
                        encoded_attempt,
                    )?,
                };
                txn.execute(
                    "INSERT INTO attempts (delivery_id, number, row) VALUES ($1, $2, $3::text::json)
                     ON CONFLICT (delivery_id, number) DO UPDATE SET row = EXCLUDED.row",
                    &[&delivery.id.as_str(), &number, &encoded_attempt],
                )?;
                put_delivery(txn, &delivery, &node)?;
                if delivery.erased {
                    return Ok(());
                }
                count_finished(txn, &delivery)
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
