//! The attempt log: each attempt's request and response (bodies sealed), written with the
//! delivery's new state, its place in the open queue and the hourly counters.

use super::delivery_rows::store_delivery;
use super::tables::ATTEMPTS;
use super::{RedbStore, stats, subjects};
use crate::domain::delivery::{Attempt, Delivery};
use crate::domain::ids::DeliveryId;
use crate::store::{AttemptStore, StoreError, WriteDone};
use crate::store::{RuleStore, codec};

impl AttemptStore for RedbStore {
    fn record_attempt(&self, delivery: &Delivery, attempt: &Attempt, done: WriteDone) {
        // Encoded and sealed here, off the writer thread, which is the one serial point of
        // every write.
        let encoded_attempt = match self.seal.attempt(attempt) {
            Ok(bytes) => bytes,
            Err(e) => return done(Err(e)),
        };
        let encoded_delivery = codec::encode(delivery);
        let number = attempt.number;
        let delivery = delivery.clone();
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
                let (delivery, encoded_delivery, encoded_attempt) = match subject_part {
                    None => (delivery, encoded_delivery, encoded_attempt),
                    Some((rule_name, attempt, seal)) => subjects::record_subject_attempt(
                        txn,
                        &seal,
                        &delivery,
                        &attempt,
                        &rule_name,
                        (encoded_delivery, encoded_attempt),
                    )?,
                };
                let id = delivery.id.as_str();
                txn.open_table(ATTEMPTS)?
                    .insert((id, number), encoded_attempt.as_slice())?;
                if !delivery.erased {
                    stats::count_finished(txn, &delivery)?;
                }
                store_delivery(txn, &delivery, &encoded_delivery)
            },
            done,
        );
    }

    fn attempts(&self, id: &DeliveryId) -> Result<Vec<Attempt>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(ATTEMPTS)?;
        let mut out = Vec::new();
        for entry in table.range((id.as_str(), 0)..=(id.as_str(), u32::MAX))? {
            let (_, v) = entry?;
            out.push(self.seal.open_attempt(v.value())?);
        }
        Ok(out)
    }
}
