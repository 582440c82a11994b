//! Compact forms of the ids the dispatcher queues, so that a backlog of a million owed
//! deliveries costs tens of megabytes rather than hundreds: a delivery as the number its 28
//! hex digits spell (16 bytes, no heap allocation), a rule as its place in a table of the
//! rules this process has queued for (4 bytes).

use std::collections::HashMap;

use crate::domain::ids::{DeliveryId, RuleId};

/// A queued delivery's id. Ids of the usual shape (`dlv_` and 28 lowercase hex digits) are
/// their own number; any other (none are made, but a store may hold what it holds) gets a
/// number with the top bit set, kept in `Compact::odd` while it is queued. Two halves rather
/// than a `u128`, so that a queue entry beside an `i64` is 24 bytes, not 32 (u128 aligns to 16).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct QueuedId {
    high: u64,
    low: u64,
}

impl QueuedId {
    fn new(n: u128) -> Self {
        let [high, low] = [n >> 64, n & u128::from(u64::MAX)]
            .map(|half| u64::try_from(half).expect("64 bits each"));
        Self { high, low }
    }

    fn number(self) -> u128 {
        (u128::from(self.high) << 64) | u128::from(self.low)
    }
}

/// A rule's place in `Compact::rules`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct RuleIx(u32);

const ODD: u128 = 1 << 127;
const DIGITS: usize = 28;

#[derive(Default)]
pub(super) struct Compact {
    /// Every rule queued for since the start. Rules are few and the table never shrinks, so
    /// an index stays valid while deliveries of a deleted rule are still queued.
    rules: Vec<RuleId>,
    rule_index: HashMap<RuleId, RuleIx>,
    /// Queued ids of another shape, by their number.
    odd: HashMap<QueuedId, DeliveryId>,
    odd_seq: u128,
}

impl Compact {
    pub fn rule(&mut self, id: &RuleId) -> RuleIx {
        if let Some(ix) = self.rule_index.get(id) {
            return *ix;
        }
        let ix = RuleIx(u32::try_from(self.rules.len()).expect("fewer than 2^32 rules"));
        self.rules.push(id.clone());
        self.rule_index.insert(id.clone(), ix);
        ix
    }

    pub fn rule_id(&self, ix: RuleIx) -> &RuleId {
        &self.rules[ix.0 as usize]
    }

    /// The compact form of `id`: the same number each time for an id of the usual shape.
    /// An odd id gets a new number, held until `take` gives it back.
    pub fn delivery(&mut self, id: &DeliveryId) -> QueuedId {
        if let Some(n) = packed(id) {
            return QueuedId::new(n);
        }
        if let Some((n, _)) = self.odd.iter().find(|(_, d)| *d == id) {
            return *n;
        }
        self.odd_seq += 1;
        let n = QueuedId::new(ODD | self.odd_seq);
        self.odd.insert(n, id.clone());
        n
    }

    /// The delivery id again, as it leaves the queue.
    pub fn take(&mut self, n: QueuedId) -> DeliveryId {
        if n.number() & ODD == 0 {
            return DeliveryId::parse(&format!("{}{:0DIGITS$x}", DeliveryId::PREFIX, n.number()))
                .expect("a packed id is a delivery id");
        }
        self.odd.remove(&n).expect("an odd id is kept while queued")
    }
}

/// The 28 hex digits of an id made by `DeliveryId::generate`, as a number; None for any other
/// shape, including upper-case digits (which would not come back the same).
fn packed(id: &DeliveryId) -> Option<u128> {
    let digits = id.as_str().strip_prefix(DeliveryId::PREFIX)?;
    if digits.len() != DIGITS
        || !digits
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    {
        return None;
    }
    u128::from_str_radix(digits, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn made_ids_pack_into_their_number_and_come_back_the_same() {
        let mut c = Compact::default();
        let a = DeliveryId::generate(1_700_000_000_000);
        let b = DeliveryId::generate(1_700_000_000_001);
        let (na, nb) = (c.delivery(&a), c.delivery(&b));
        assert_eq!(na, c.delivery(&a), "the same id, the same number");
        assert!(na < nb, "numbers keep the ids' order");
        assert_eq!(c.take(na), a);
        assert_eq!(c.take(nb), b);
        assert!(c.odd.is_empty(), "nothing held for ids of the usual shape");
    }

    #[test]
    fn ids_of_another_shape_are_held_while_queued_and_given_back_exactly() {
        let mut c = Compact::default();
        for odd in ["dlv_0123456789ABCDEF0123456789AB", "dlv_short", "dlv_zz"] {
            let id = DeliveryId::parse(odd).expect("a delivery id");
            let n = c.delivery(&id);
            assert_eq!(c.delivery(&id), n, "{odd}: queued twice, one number");
            assert_eq!(c.take(n), id, "{odd}");
        }
        assert!(c.odd.is_empty(), "given back, no longer held");
    }

    #[test]
    fn a_queue_entry_is_24_bytes() {
        assert_eq!(std::mem::size_of::<(i64, QueuedId)>(), 24);
    }

    #[test]
    fn rules_keep_their_index() {
        let mut c = Compact::default();
        let (r1, r2) = (RuleId::generate(1), RuleId::generate(2));
        let (i1, i2) = (c.rule(&r1), c.rule(&r2));
        assert_ne!(i1, i2);
        assert_eq!(c.rule(&r1), i1);
        assert_eq!(c.rule_id(i2), &r2);
    }
}
