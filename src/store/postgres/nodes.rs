//! Several nodes on one store. A serving node registers in `nodes` and renews its heartbeat
//! (the database's clock, so nodes' own clocks may disagree) every quarter lease. The open
//! deliveries a node queues are its claims (`open_deliveries.node`). When a node has been
//! silent for longer than `store.lease` — it died, or lost the database — the next heartbeat
//! of another node takes over its claims (`FOR UPDATE SKIP LOCKED`, so two survivors never
//! take the same one) and hands them to its dispatcher: at least once, as on one node.
//!
//! A node that stops cleanly zeroes its heartbeat, so the others take its claims at once.

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::PgStore;
use crate::domain::ids::{DeliveryId, RuleId};
use crate::store::{DueDelivery, ReclaimSink, StoreError};

/// The database's "now" in Unix ms.
pub(super) const DB_NOW_MS: &str = "(extract(epoch from clock_timestamp()) * 1000)::bigint";

/// How often the heartbeat thread counts the live nodes for the concurrency slots' shares: a
/// node that joins gets its share of a busy rule's slots within about this long.
pub(super) const SLOT_TENDING: Duration = Duration::from_millis(250);

/// Most claims one takeover moves; the next heartbeat takes the rest.
const TAKEOVER_BATCH: i64 = 10_000;

/// Where taken-over claims go; empty until the dispatcher starts listening.
#[derive(Clone, Default)]
pub(super) struct Reclaimed(Arc<Mutex<Option<ReclaimSink>>>);

impl Reclaimed {
    pub(super) fn set(&self, sink: ReclaimSink) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(sink);
    }

    /// Hands deliveries over; false (keep them for later) while nobody listens.
    fn hand_over(&self, due: Vec<DueDelivery>) -> bool {
        match &*self.0.lock().unwrap_or_else(PoisonError::into_inner) {
            Some(sink) => {
                sink(due);
                true
            }
            None => false,
        }
    }
}

/// A node id: when it started and a random part, unique across restarts and hosts.
pub(super) fn new_node_id(now_ms: i64) -> String {
    format!("node_{now_ms:012x}{:08x}", rand::random::<u32>())
}

impl PgStore {
    pub(super) fn register_node(&self) -> Result<(), StoreError> {
        self.conn()?.execute(
            &format!(
                "INSERT INTO nodes (id, started_at, heartbeat_at) VALUES ($1, {DB_NOW_MS}, {DB_NOW_MS})"
            ),
            &[&&*self.node],
        )?;
        Ok(())
    }

    fn lease_ms(&self) -> i64 {
        i64::try_from(self.lease.as_millis()).unwrap_or(i64::MAX)
    }

    /// Renews this node's heartbeat and takes over the claims of silent nodes, every quarter
    /// lease, until `shutdown`; in between, every `SLOT_TENDING`, counts the live nodes and
    /// gives back the concurrency slots this node keeps beyond its share (slots.rs).
    pub(super) fn start_heartbeat(&self) -> JoinHandle<()> {
        let store = self.clone();
        let every = (self.lease / 4).max(Duration::from_millis(100));
        std::thread::Builder::new()
            .name("store-heartbeat".into())
            .spawn(move || {
                let mut next_beat = Instant::now();
                while !store.stopping.load(Ordering::Acquire) {
                    if Instant::now() >= next_beat {
                        if let Err(e) = store.beat() {
                            tracing::warn!(error = %e, "node heartbeat failed; retrying");
                        }
                        next_beat = Instant::now() + every;
                    }
                    if let Err(e) = store.tend_slots() {
                        tracing::warn!(error = %e, "could not count the live nodes");
                    }
                    sleep_unless_stopping(&store, SLOT_TENDING.min(every));
                }
            })
            .expect("spawn the store heartbeat")
    }

    /// Tells the slots how many nodes share each rule's, and lets them give back the idle.
    fn tend_slots(&self) -> Result<(), StoreError> {
        let live: i64 = self
            .conn()?
            .query_one(
                &format!("SELECT count(*) FROM nodes WHERE heartbeat_at > {DB_NOW_MS} - $1"),
                &[&self.lease_ms()],
            )?
            .get(0);
        self.slots
            .set_live_nodes(usize::try_from(live).unwrap_or(1));
        self.slots.tend();
        Ok(())
    }

    fn beat(&self) -> Result<(), StoreError> {
        let mut conn = self.conn()?;
        // A node that was declared dead (its row removed) registers again.
        conn.execute(
            &format!(
                "INSERT INTO nodes (id, started_at, heartbeat_at) VALUES ($1, {DB_NOW_MS}, {DB_NOW_MS})
                 ON CONFLICT (id) DO UPDATE SET heartbeat_at = {DB_NOW_MS}"
            ),
            &[&&*self.node],
        )?;
        drop(conn);
        let taken = self.take_over(false, TAKEOVER_BATCH)?;
        if !taken.is_empty() {
            tracing::warn!(
                count = taken.len(),
                "took over open deliveries of a node that stopped renewing its lease"
            );
            let ids: Vec<String> = taken.iter().map(|d| d.id.as_str().to_owned()).collect();
            if !self.reclaimed.hand_over(taken) {
                // Nobody to send them yet (the dispatcher is starting): release just these;
                // its start claims them again.
                self.conn()?.execute(
                    "UPDATE open_deliveries SET node = NULL WHERE delivery_id = ANY($1) AND node = $2",
                    &[&ids, &&*self.node],
                )?;
            }
        }
        Ok(())
    }

    /// Claims for this node the open deliveries nobody holds and those of nodes silent past
    /// the lease (with `include_own`, also the ones this node's id holds: at start, when
    /// its dispatcher loads everything it owns), at most `limit`. Returns them.
    pub(super) fn take_over(
        &self,
        include_own: bool,
        limit: i64,
    ) -> Result<Vec<DueDelivery>, StoreError> {
        let mut conn = self.conn()?;
        let rows = conn.query(
            &format!(
                "WITH silent AS (
                     SELECT id FROM nodes WHERE heartbeat_at < {DB_NOW_MS} - $2
                 ), claimable AS (
                     SELECT delivery_id FROM open_deliveries
                     WHERE node IS NULL OR node IN (SELECT id FROM silent)
                        OR ($3 AND node = $1)
                        OR node NOT IN (SELECT id FROM nodes)
                     LIMIT $4
                     FOR UPDATE SKIP LOCKED
                 )
                 UPDATE open_deliveries o SET node = $1
                 FROM claimable c WHERE o.delivery_id = c.delivery_id
                 RETURNING o.delivery_id, o.rule_id, o.due_at"
            ),
            &[&&*self.node, &self.lease_ms(), &include_own, &limit],
        )?;
        // Silent nodes with nothing left to take are forgotten.
        conn.execute(
            &format!(
                "DELETE FROM nodes n WHERE heartbeat_at < {DB_NOW_MS} - $1
                 AND NOT EXISTS (SELECT 1 FROM open_deliveries o WHERE o.node = n.id)"
            ),
            &[&self.lease_ms()],
        )?;
        Ok(rows
            .iter()
            .filter_map(|row| {
                Some(DueDelivery {
                    id: DeliveryId::parse(row.get(0))?,
                    rule_id: RuleId::parse(row.get(1))?,
                    due_at: row.get(2),
                })
            })
            .collect())
    }

    /// On shutdown: the others may take this node's claims at once.
    pub(super) fn retire_node(&self) {
        let result = self.conn().and_then(|mut conn| {
            conn.execute(
                "UPDATE nodes SET heartbeat_at = 0 WHERE id = $1",
                &[&&*self.node],
            )
            .map_err(StoreError::from)
        });
        if let Err(e) = result {
            tracing::warn!(error = %e, "could not retire this node; its claims pass on after the lease");
        }
    }
}

/// Sleeps `total` in short steps, returning early once the store is stopping.
pub(super) fn sleep_unless_stopping(store: &PgStore, total: Duration) {
    let step = Duration::from_millis(50);
    let mut left = total;
    while !left.is_zero() && !store.stopping.load(Ordering::Acquire) {
        let nap = left.min(step);
        std::thread::sleep(nap);
        left = left.saturating_sub(nap);
    }
}
