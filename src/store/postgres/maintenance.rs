//! Health, retention and shutdown: readiness's ping, the open-delivery count, the pruning of
//! old delivery logs, and the end of the writer and this node's background threads. Backup
//! of a PostgreSQL store is the operator's `pg_dump`.

use std::path::Path;
use std::sync::PoisonError;
use std::sync::atomic::Ordering;

use super::PgStore;
use super::events::id_at;
use crate::domain::delivery::DeliveryStatus;
use crate::domain::ids::{DeliveryId, EventId, RuleId};
use crate::store::{MaintenanceStore, StoreError};

/// Rows one pruning statement removes, so delivery never waits long behind it.
const CHUNK: i64 = 500;
const HOUR_MS: i64 = 3_600_000;

impl MaintenanceStore for PgStore {
    fn ping(&self) -> Result<(), StoreError> {
        self.conn()?.query_one("SELECT 1", &[])?;
        self.writer.failure().map_or(Ok(()), Err)
    }

    fn open_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()?
            .query_one("SELECT count(*) FROM open_deliveries", &[])?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// In small statements, oldest first.
    fn prune_before(&self, cutoff_ms: i64) -> Result<(usize, usize), StoreError> {
        // The statuses `DeliveryStatus::is_open` names: such deliveries, and their events, stay.
        let open = [
            DeliveryStatus::Pending.as_str(),
            DeliveryStatus::Retrying.as_str(),
        ];
        let upper = id_at(cutoff_ms);
        let upper_event = format!("{}{}", EventId::PREFIX, &upper[DeliveryId::PREFIX.len()..]);
        let mut conn = self.conn()?;
        let mut deliveries = 0;
        loop {
            let n = conn.execute(
                "WITH doomed AS (
                     SELECT id FROM deliveries WHERE id < $1 AND status <> ALL($2) ORDER BY id LIMIT $3
                 ), gone_attempts AS (
                     DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM doomed)
                 )
                 DELETE FROM deliveries WHERE id IN (SELECT id FROM doomed)",
                &[&upper, &&open[..], &CHUNK],
            )?;
            deliveries += usize::try_from(n).unwrap_or(0);
            if n == 0 {
                break;
            }
        }
        let mut events = 0;
        loop {
            let n = conn.execute(
                "DELETE FROM events WHERE id IN (
                     SELECT e.id FROM events e WHERE e.id < $1
                     AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id)
                     ORDER BY e.id LIMIT $2)",
                &[&upper_event, &CHUNK],
            )?;
            events += usize::try_from(n).unwrap_or(0);
            if n == 0 {
                break;
            }
        }
        conn.execute(
            "DELETE FROM idempotency_keys WHERE expires_at <= $1",
            &[&self.clock.now_ms()],
        )?;
        // The dashboard's condition errors go by the hour, as on redb.
        conn.execute(
            "DELETE FROM condition_error_log WHERE created_at < $1",
            &[&(cutoff_ms.div_euclid(HOUR_MS) * HOUR_MS)],
        )?;
        // No sign-in window outlives a day.
        conn.execute(
            "DELETE FROM sign_in_failures WHERE window_start < $1",
            &[&(self.clock.now_ms() - 86_400_000)],
        )?;
        Ok((deliveries, events))
    }

    /// A chunk per transaction: its deliveries, then the events they leave without any.
    fn prune_rule_before(
        &self,
        rule: &RuleId,
        cutoff_ms: i64,
    ) -> Result<(usize, usize), StoreError> {
        let open = [
            DeliveryStatus::Pending.as_str(),
            DeliveryStatus::Retrying.as_str(),
        ];
        let upper = id_at(cutoff_ms);
        let mut conn = self.conn()?;
        let (mut deliveries, mut events) = (0, 0);
        loop {
            let mut txn = conn.transaction()?;
            let touched: Vec<String> = txn
                .query(
                    "WITH doomed AS (
                         SELECT id FROM deliveries
                         WHERE rule_id = $1 AND id < $2 AND status <> ALL($3) ORDER BY id LIMIT $4
                     ), gone_attempts AS (
                         DELETE FROM attempts WHERE delivery_id IN (SELECT id FROM doomed)
                     )
                     DELETE FROM deliveries WHERE id IN (SELECT id FROM doomed) RETURNING event_id",
                    &[&rule.as_str(), &upper, &&open[..], &CHUNK],
                )?
                .iter()
                .map(|r| r.get(0))
                .collect();
            if touched.is_empty() {
                return Ok((deliveries, events));
            }
            deliveries += touched.len();
            let n = txn.execute(
                "DELETE FROM events e WHERE e.id = ANY($1)
                 AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = e.id)",
                &[&touched],
            )?;
            events += usize::try_from(n).unwrap_or(0);
            txn.commit()?;
        }
    }

    fn backup_to(&self, _path: &Path) -> Result<u64, StoreError> {
        Err(StoreError::Unsupported(
            "this store is PostgreSQL: back it up with pg_dump (or your database's own backups); `tidings backup` copies the embedded database only".into(),
        ))
    }

    fn shutdown(&self) {
        self.writer.shutdown();
        if self.stopping.swap(true, Ordering::AcqRel) {
            return;
        }
        let threads = std::mem::take(
            &mut *self
                .background
                .lock()
                .unwrap_or_else(PoisonError::into_inner),
        );
        let serving = !threads.is_empty();
        for t in threads {
            let _ = t.join();
        }
        // After the heartbeat has stopped, so it cannot renew what this retires.
        if serving {
            self.retire_node();
        }
    }
}
