//! A rule's `max_concurrency` for the nodes together (SPEC §10): each attempt holds one of the
//! rule's slots as a session-level advisory lock, `(rule key, slot number)`, taken with
//! `pg_try_advisory_lock` on this node's own connection. A node that dies loses its
//! connection, and PostgreSQL releases its slots with it: nothing to expire or clean up.
//!
//! Asking PostgreSQL for a slot and giving it back are two round trips, once per attempt
//! they were the node's busiest statements. So a slot this node is done with stays held,
//! idle, for its next attempt of the rule, up to the node's fair share of the rule's slots
//! (`max_concurrency` over the live nodes, rounded up); beyond the share, or idle for
//! `IDLE_KEEP`, it is given back, so another node with work for the rule gets it. A cut
//! session is noticed by the next tending (at most `SLOT_TENDING`, 250 ms, later): until
//! then an idle slot of it could still be used, the one window where a rule could have one
//! attempt more in flight than its limit.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use postgres::Client;
use postgres::types::Type;

use super::connect;
use crate::domain::ids::RuleId;
use crate::store::Slot;

/// How long a slot this node is not using stays held for its next attempt of the rule.
const IDLE_KEEP: Duration = Duration::from_secs(1);

/// Advisory locks' first key for slots: the rule id's hash, kept apart from the migration
/// lock by living in the two-key space.
fn rule_key(rule: &RuleId) -> i32 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(rule.as_str().as_bytes());
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// This node's slot connection and what it holds; replaced when it breaks (its slots were
/// released with it).
pub(super) struct Slots {
    url: String,
    /// Nodes with a live heartbeat, this one included (nodes.rs counts them every
    /// `SLOT_TENDING`).
    live_nodes: AtomicUsize,
    client: Mutex<Connection>,
}

#[derive(Default)]
struct Connection {
    client: Option<Client>,
    /// Counts the sessions: a slot taken on one that has broken since is not released on
    /// the next (where the same number may be held again).
    session: u64,
    rules: HashMap<i32, RuleSlots>,
}

impl Connection {
    /// Drops the session, which releases every slot it held.
    fn end_session(&mut self) {
        self.client = None;
        self.rules.clear();
        self.session += 1;
    }
}

/// One rule's slots held by this node's session. Session-level advisory locks stack within a
/// session, so a slot held here is never asked for again.
#[derive(Default)]
struct RuleSlots {
    /// The rule's `max_concurrency` at its latest attempt.
    limit: u32,
    in_use: Vec<i32>,
    /// Held for this node's next attempt, with when each was last given back.
    idle: Vec<(i32, Instant)>,
}

impl RuleSlots {
    fn held(&self) -> usize {
        self.in_use.len() + self.idle.len()
    }
}

impl Slots {
    pub(super) fn new(url: &str) -> Arc<Self> {
        Arc::new(Self {
            url: url.to_owned(),
            live_nodes: AtomicUsize::new(1),
            client: Mutex::new(Connection::default()),
        })
    }

    /// Told by the heartbeat thread how many nodes are live, so each keeps only its share.
    pub(super) fn set_live_nodes(&self, nodes: usize) {
        self.live_nodes.store(nodes.max(1), Ordering::Relaxed);
    }

    /// How many of a rule's slots this node may keep idle.
    fn share(&self, limit: u32) -> usize {
        let limit = usize::try_from(limit).unwrap_or(usize::MAX);
        limit.div_ceil(self.live_nodes.load(Ordering::Relaxed))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Connection> {
        self.client.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// One of the rule's slots: an idle one this node holds, else the first free one among
    /// the rest, asked for in one statement; `Busy` when all are held (or the database
    /// cannot be asked: then the attempt waits, rather than going over the limit).
    pub(super) fn take(self: &Arc<Self>, rule: &RuleId, limit: u32) -> Slot {
        let key = rule_key(rule);
        let mut guard = self.lock();
        let connection = &mut *guard;
        if connection.client.as_ref().is_none_or(Client::is_closed) {
            // A new session holds nothing.
            connection.end_session();
            match connect::client(&self.url) {
                Ok(c) => connection.client = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach PostgreSQL for a concurrency slot");
                    return Slot::Busy;
                }
            }
        }
        let session = connection.session;
        let client = connection.client.as_mut().expect("just connected");
        let slots = connection.rules.entry(key).or_default();
        slots.limit = limit;
        // Slots numbered past a lowered limit are not used again.
        let limit = i32::try_from(limit).unwrap_or(i32::MAX);
        if slots.idle.iter().any(|(s, _)| *s >= limit) {
            let (keep, beyond): (Vec<_>, Vec<_>) =
                slots.idle.drain(..).partition(|(s, _)| *s < limit);
            slots.idle = keep;
            for (slot, _) in beyond {
                if !unlock(client, key, slot) {
                    connection.end_session();
                    return Slot::Busy;
                }
            }
        }
        let slot = if let Some((slot, _)) = slots.idle.pop() {
            slot
        } else {
            let candidates: Vec<i32> = (0..limit).filter(|s| !slots.in_use.contains(s)).collect();
            if candidates.is_empty() {
                return Slot::Busy;
            }
            // The scan stops at the first slot locked, so no other is taken along.
            match client.query_typed_opt(
                "SELECT s FROM unnest($2::int4[]) AS s WHERE pg_try_advisory_lock($1, s) LIMIT 1",
                &[(&key, Type::INT4), (&candidates, Type::INT4_ARRAY)],
            ) {
                Ok(Some(row)) => row.get(0),
                Ok(None) => return Slot::Busy,
                Err(e) => {
                    tracing::warn!(error = %e, "a concurrency slot could not be taken");
                    connection.end_session();
                    return Slot::Busy;
                }
            }
        };
        slots.in_use.push(slot);
        Slot::Held(Box::new(Held {
            slots: Arc::clone(self),
            session,
            key,
            slot,
        }))
    }

    /// An attempt is done with its slot: kept idle within the node's share, else given back.
    fn done(&self, session: u64, key: i32, slot: i32) {
        let mut guard = self.lock();
        let connection = &mut *guard;
        if connection.session != session {
            return; // released with the session it was taken on
        }
        let Some(slots) = connection.rules.get_mut(&key) else {
            return;
        };
        slots.in_use.retain(|s| *s != slot);
        if slots.held() < self.share(slots.limit) {
            slots.idle.push((slot, Instant::now()));
            return;
        }
        if let Some(client) = connection.client.as_mut().filter(|c| !c.is_closed())
            && !unlock(client, key, slot)
        {
            connection.end_session();
        }
    }

    /// Checks that the session holding this node's slots is still there (a cut one released
    /// them, and an idle slot of it must not be used), then gives back the slots idle past
    /// `IDLE_KEEP` or beyond the node's share (the number of live nodes grew). The heartbeat
    /// thread calls it every `SLOT_TENDING` (nodes.rs).
    pub(super) fn tend(&self) {
        let mut guard = self.lock();
        let connection = &mut *guard;
        if connection.rules.is_empty() {
            return;
        }
        let Some(client) = connection.client.as_mut() else {
            return;
        };
        if let Err(e) = client.simple_query("") {
            tracing::warn!(error = %e, "the session holding this node's concurrency slots was cut; they were released with it");
            connection.end_session();
            return;
        }
        let now = Instant::now();
        let mut broken = false;
        'rules: for (key, slots) in &mut connection.rules {
            let share = self.share(slots.limit);
            // The least recently used go first.
            slots.idle.sort_by_key(|(_, at)| *at);
            while let Some(&(slot, at)) = slots.idle.first() {
                if slots.held() <= share && now.duration_since(at) < IDLE_KEEP {
                    break;
                }
                slots.idle.remove(0);
                if !unlock(client, *key, slot) {
                    broken = true;
                    break 'rules;
                }
            }
        }
        if broken {
            connection.end_session();
        } else {
            connection.rules.retain(|_, slots| slots.held() > 0);
        }
    }
}

/// Releases one slot; false if the connection failed (dropping it releases them all).
fn unlock(client: &mut Client, key: i32, slot: i32) -> bool {
    match client.execute_typed(
        "SELECT pg_advisory_unlock($1, $2)",
        &[(&key, Type::INT4), (&slot, Type::INT4)],
    ) {
        Ok(_) => true,
        Err(e) => {
            tracing::warn!(error = %e, "a concurrency slot could not be released; dropping the connection releases it");
            false
        }
    }
}

/// A slot taken, handed back (kept idle or released) when dropped.
struct Held {
    slots: Arc<Slots>,
    session: u64,
    key: i32,
    slot: i32,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.slots.done(self.session, self.key, self.slot);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::postgres::tests::TempDb;

    fn held(slot: &Slot) -> bool {
        matches!(slot, Slot::Held(_))
    }

    /// Two nodes' slot keepers on one database, each told two nodes are live.
    fn two_nodes(db: &TempDb) -> (Arc<Slots>, Arc<Slots>) {
        let (a, b) = (Slots::new(&db.url), Slots::new(&db.url));
        a.set_live_nodes(2);
        b.set_live_nodes(2);
        (a, b)
    }

    #[test]
    fn a_rules_slots_are_shared_and_each_node_keeps_only_its_share_idle() {
        let Some(db) = TempDb::new() else { return };
        let (a, b) = two_nodes(&db);
        let rule = RuleId::generate(1);
        let a1 = a.take(&rule, 2);
        let b1 = b.take(&rule, 2);
        assert!(held(&a1) && held(&b1), "one slot each");
        assert!(
            !held(&a.take(&rule, 2)) && !held(&b.take(&rule, 2)),
            "two at most"
        );

        // Done with it, A keeps its one slot (its share of two over two nodes) for its
        // next attempt: B still cannot have a third.
        drop(a1);
        assert!(!held(&b.take(&rule, 2)), "A's idle slot is still A's");
        let a2 = a.take(&rule, 2);
        assert!(held(&a2), "A's next attempt has its idle slot");
        drop(a2);

        // Idle past IDLE_KEEP, it is given back, and B may have it.
        std::thread::sleep(IDLE_KEEP + Duration::from_millis(100));
        a.tend();
        let b2 = b.take(&rule, 2);
        assert!(held(&b2), "A gave back its idle slot");
        assert!(!held(&a.take(&rule, 2)), "B holds both now");
    }

    #[test]
    fn a_node_alone_keeps_every_slot_and_gives_back_its_excess_when_another_joins() {
        let Some(db) = TempDb::new() else { return };
        let (a, b) = two_nodes(&db);
        a.set_live_nodes(1);
        let rule = RuleId::generate(2);
        let (a1, a2) = (a.take(&rule, 2), a.take(&rule, 2));
        assert!(held(&a1) && held(&a2));
        drop((a1, a2));
        assert!(!held(&b.take(&rule, 2)), "alone, A keeps both idle");

        // A learns of B: it keeps one, and gives the other back at once.
        a.set_live_nodes(2);
        a.tend();
        let b1 = b.take(&rule, 2);
        assert!(held(&b1), "A gave back what was beyond its share");
        assert!(!held(&b.take(&rule, 2)), "and kept its share");
        assert!(held(&a.take(&rule, 2)), "which its next attempt has");
    }

    #[test]
    fn a_lowered_limit_gives_back_the_slots_beyond_it() {
        let Some(db) = TempDb::new() else { return };
        let (a, b) = two_nodes(&db);
        a.set_live_nodes(1);
        let rule = RuleId::generate(3);
        let (a1, a2) = (a.take(&rule, 2), a.take(&rule, 2));
        assert!(held(&a1) && held(&a2));
        drop((a1, a2));
        // The rule now allows one at a time: A's idle slot numbered 1 is let go, slot 0 used.
        let a3 = a.take(&rule, 1);
        assert!(held(&a3));
        assert!(!held(&a.take(&rule, 1)), "one at a time");
        assert!(!held(&b.take(&rule, 1)), "for the nodes together");
        assert!(
            held(&b.take(&rule, 2)),
            "slot 1 was given back, not kept stacked"
        );
    }

    #[test]
    fn a_broken_session_is_replaced_and_its_slots_are_free_again() {
        let Some(db) = TempDb::new() else { return };
        let (a, b) = two_nodes(&db);
        let rule = RuleId::generate(4);
        let a1 = a.take(&rule, 1);
        assert!(held(&a1));
        assert!(!held(&b.take(&rule, 1)));
        // A's session is cut (as when PostgreSQL restarts): its slot is released with it.
        let mut admin = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
        admin
            .batch_execute(
                "SELECT pg_terminate_backend(pid) FROM pg_stat_activity
                 WHERE datname = current_database() AND pid <> pg_backend_pid()",
            )
            .unwrap();
        // Done with it, A would keep it idle, but its tending finds the session gone.
        drop(a1);
        a.tend();
        // B's session was cut too: a take that finds that out answers Busy, the next asks
        // on a new one.
        let b1 = b.take(&rule, 1);
        let b1 = if held(&b1) { b1 } else { b.take(&rule, 1) };
        assert!(held(&b1), "A's slot went with its session");
        assert!(
            !held(&a.take(&rule, 1)),
            "A's next attempt asks anew, and B holds it"
        );
    }
}
