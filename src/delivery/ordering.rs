//! The dispatcher's side of ordered delivery (SPEC §15): deliveries of an ordered rule that
//! found an older open delivery of their key ahead of them wait here, by (rule, key hash),
//! until that one finishes or it is time to look again. Pure bookkeeping under the
//! dispatcher's lock; the store says which delivery is a key's head.

use std::collections::{BTreeSet, HashMap};

use crate::domain::ids::{DeliveryId, RuleId};

/// How often the first waiting delivery of an ordering key is looked at again without being
/// told that the one ahead of it finished: that one may be on another node, or closed by
/// something else than an attempt (its rule deleted, its subject erased).
const RECHECK_MS: i64 = 1_000;

#[derive(Default)]
pub struct OrderingWaits {
    waiting: HashMap<(RuleId, String), Waiting>,
    /// Counts releases of keys, so a delivery found blocked just before the one ahead of it
    /// finished is looked at again rather than set aside.
    epoch: u64,
}

/// The waiting deliveries of one key, in ingest (id) order.
struct Waiting {
    ids: BTreeSet<DeliveryId>,
    /// When the first of them is looked at again anyway.
    recheck_at: i64,
}

impl OrderingWaits {
    /// Read before asking the store for a key's head, handed to `wait`.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// Sets `id` aside until the one ahead of it finishes; false (not set aside) when a key
    /// was released since `epoch`, since the head read may then be stale.
    pub fn wait(
        &mut self,
        rule: &RuleId,
        key: &str,
        id: &DeliveryId,
        epoch: u64,
        now: i64,
    ) -> bool {
        if self.epoch != epoch {
            return false;
        }
        self.waiting
            .entry((rule.clone(), key.to_owned()))
            .or_insert_with(|| Waiting {
                ids: BTreeSet::new(),
                recheck_at: now + RECHECK_MS,
            })
            .ids
            .insert(id.clone());
        true
    }

    /// A delivery of `key` finished for good: the next one waiting, which may go now.
    pub fn release(&mut self, rule: &RuleId, key: &str) -> Option<DeliveryId> {
        self.epoch += 1;
        let slot = (rule.clone(), key.to_owned());
        let waiting = self.waiting.get_mut(&slot)?;
        let next = waiting.ids.pop_first();
        if waiting.ids.is_empty() {
            self.waiting.remove(&slot);
        }
        next
    }

    /// The first waiting delivery of each key whose time to look again has come, to queue
    /// again; and the earliest such time still ahead.
    pub fn due_rechecks(&mut self, now: i64) -> (Vec<(DeliveryId, RuleId)>, Option<i64>) {
        let mut freed = Vec::new();
        let mut next = None::<i64>;
        for ((rule, _), waiting) in &mut self.waiting {
            if waiting.recheck_at <= now {
                if let Some(id) = waiting.ids.pop_first() {
                    freed.push((id, rule.clone()));
                }
                waiting.recheck_at = now + RECHECK_MS;
            }
            next = Some(next.map_or(waiting.recheck_at, |n| n.min(waiting.recheck_at)));
        }
        self.waiting.retain(|_, w| !w.ids.is_empty());
        (freed, next)
    }
}
