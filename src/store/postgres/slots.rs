//! A rule's `max_concurrency` for the nodes together (SPEC §10): each attempt holds one of the
//! rule's slots as a session-level advisory lock, `(rule key, slot number)`, taken with
//! `pg_try_advisory_lock` on this node's own connection and released after the attempt. A
//! node that dies loses its connection, and PostgreSQL releases its slots with it: nothing to
//! expire or clean up.

use std::collections::HashSet;
use std::sync::{Arc, Mutex, PoisonError};

use postgres::Client;

use super::connect;
use crate::domain::ids::RuleId;
use crate::store::Slot;

/// Advisory locks' first key for slots: the rule id's hash, kept apart from the migration
/// lock by living in the two-key space.
fn rule_key(rule: &RuleId) -> i32 {
    use sha2::Digest;
    let digest = sha2::Sha256::digest(rule.as_str().as_bytes());
    i32::from_be_bytes([digest[0], digest[1], digest[2], digest[3]])
}

/// This node's slot connection; replaced when it breaks (its slots were released with it).
/// Session-level advisory locks stack within a session (the same session may take one
/// again), so the slots this node holds are also kept here, and never asked for twice.
pub(super) struct Slots {
    url: String,
    client: Mutex<Connection>,
}

#[derive(Default)]
struct Connection {
    client: Option<Client>,
    held: HashSet<(i32, i32)>,
}

impl Slots {
    pub(super) fn new(url: &str) -> Arc<Self> {
        Arc::new(Self {
            url: url.to_owned(),
            client: Mutex::new(Connection::default()),
        })
    }

    /// Tries the rule's slots in turn; `Busy` when all are held (or the database cannot be
    /// asked: then the attempt waits, rather than going over the limit).
    pub(super) fn take(self: &Arc<Self>, rule: &RuleId, limit: u32) -> Slot {
        let key = rule_key(rule);
        let mut guard = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        let connection = &mut *guard;
        if connection.client.as_ref().is_none_or(Client::is_closed) {
            // A new session holds nothing.
            connection.held.clear();
            match connect::client(&self.url) {
                Ok(c) => connection.client = Some(c),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot reach PostgreSQL for a concurrency slot");
                    return Slot::Busy;
                }
            }
        }
        let conn = connection.client.as_mut().expect("just connected");
        for slot in 0..i32::try_from(limit).unwrap_or(i32::MAX) {
            if connection.held.contains(&(key, slot)) {
                continue;
            }
            match conn.query_one("SELECT pg_try_advisory_lock($1, $2)", &[&key, &slot]) {
                Ok(row) if row.get::<_, bool>(0) => {
                    connection.held.insert((key, slot));
                    return Slot::Held(Box::new(Held {
                        slots: Arc::clone(self),
                        key,
                        slot,
                    }));
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "a concurrency slot could not be taken");
                    return Slot::Busy;
                }
            }
        }
        Slot::Busy
    }

    fn release(&self, key: i32, slot: i32) {
        let mut guard = self.client.lock().unwrap_or_else(PoisonError::into_inner);
        let connection = &mut *guard;
        // Not held: taken on a session that has broken since, which released it.
        if !connection.held.remove(&(key, slot)) {
            return;
        }
        if let Some(conn) = connection.client.as_mut().filter(|c| !c.is_closed())
            && let Err(e) = conn.execute("SELECT pg_advisory_unlock($1, $2)", &[&key, &slot])
        {
            tracing::warn!(error = %e, "a concurrency slot could not be released; dropping the connection releases it");
            connection.client = None;
            connection.held.clear();
        }
    }
}

/// A slot taken, released when dropped.
struct Held {
    slots: Arc<Slots>,
    key: i32,
    slot: i32,
}

impl Drop for Held {
    fn drop(&mut self) {
        self.slots.release(self.key, self.slot);
    }
}
