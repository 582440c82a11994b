//! Events lately opened for delivery, so an event's fan-out opens it once: with ten rules
//! an event is read for ten attempts, and opening it (decrypting `data`, parsing the row)
//! was a tenth of a delivery worker's time. Ingest puts in each event it seals that has
//! deliveries, so even a single attempt does not open what ingest had in hand.
//!
//! An entry is used only while the stored row is byte for byte the one it was opened from:
//! the row is still read from the store for every attempt, so an event erased or re-sealed
//! since (on this node or another) reads as new bytes and is opened afresh. What a cached
//! entry returns is therefore exactly what opening the row would. An erasure also clears
//! the cache, so erased payloads do not linger in memory. The cache is small and
//! bounded in bytes (payloads are PHI: it holds no more of them than the fan-outs in flight
//! need), and an event too large to keep is simply opened every time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use crate::domain::event::Event;
use crate::domain::ids::EventId;
use crate::store::StoreError;

/// How many stored bytes (rows as read) the cache keeps, all entries together: a few
/// hundred small events, enough for the fan-outs in flight (an event's deliveries are
/// queued together and taken within moments). Small on purpose, since entries coming and
/// going among the attempts' short-lived data pin the allocator's pages: at 1 MiB, with
/// every attempt putting its event in, a backlog's drain peaked 46 MiB higher.
const BUDGET_BYTES: usize = 256 * 1024;
/// An event opened by an attempt is kept only if it was received this recently: a fresh
/// event's fan-out is under way, while an old one's attempts (retries, a backlog's drain)
/// are spread out and would only churn the cache.
const FRESH_MS: i64 = 10_000;
/// Rows larger than this are not kept: a few large events would push out every small one.
const LARGEST_ROW: usize = 16 * 1024;

#[derive(Default)]
pub(in crate::store) struct OpenedEvents {
    inner: Mutex<Entries>,
}

#[derive(Default)]
struct Entries {
    by_id: HashMap<EventId, Entry>,
    /// Oldest first: fan-out reads an event within moments, so first in, first out.
    order: VecDeque<EventId>,
    bytes: usize,
}

struct Entry {
    row: Vec<u8>,
    event: Arc<Event>,
}

impl OpenedEvents {
    /// The event stored as `row`, opened by `open` unless this very row was opened lately.
    pub(in crate::store) fn open(
        &self,
        id: &EventId,
        row: &[u8],
        now_ms: i64,
        open: impl FnOnce(&[u8]) -> Result<Event, StoreError>,
    ) -> Result<Arc<Event>, StoreError> {
        if let Some(entry) = self.lock().by_id.get(id)
            && entry.row == row
        {
            return Ok(Arc::clone(&entry.event));
        }
        let event = Arc::new(open(row)?);
        if row.len() <= LARGEST_ROW && event.received_at >= now_ms - FRESH_MS {
            self.lock().keep(id, row, &event);
        }
        Ok(event)
    }

    /// Keeps `event`, just sealed as `row` at ingest, so its first attempts need not open
    /// what was in hand. Kept before the row is written: should the write fail, no row
    /// with these bytes exists to be served for.
    pub(in crate::store) fn remember(&self, row: &[u8], event: &Arc<Event>) {
        if row.len() <= LARGEST_ROW {
            self.lock().keep(&event.id, row, event);
        }
    }

    /// Drops every entry: after an erasure, so the plain payloads of the erased events do
    /// not stay in memory until traffic pushes them out (an entry is never served for a
    /// changed row anyway). Another node's entries leave with its next few hundred events.
    pub(in crate::store) fn clear(&self) {
        *self.lock() = Entries::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Entries> {
        self.inner.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

impl Entries {
    fn keep(&mut self, id: &EventId, row: &[u8], event: &Arc<Event>) {
        let entry = Entry {
            row: row.to_vec(),
            event: Arc::clone(event),
        };
        match self.by_id.insert(id.clone(), entry) {
            // Opened anew (a changed row, or two workers at once): the id keeps its place.
            Some(old) => self.bytes -= old.row.len(),
            None => self.order.push_back(id.clone()),
        }
        self.bytes += row.len();
        while self.bytes > BUDGET_BYTES {
            let Some(oldest) = self.order.pop_front() else {
                break;
            };
            if let Some(gone) = self.by_id.remove(&oldest) {
                self.bytes -= gone.row.len();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::Cell;

    use serde_json::json;

    use super::*;

    fn event(id: &str, name: &str) -> (EventId, Vec<u8>) {
        let id = EventId::parse(id).unwrap();
        let row = serde_json::to_vec(&json!({
            "id": id, "workspace_id": "ws_default", "type": "patient.created",
            "data": {"name": name}, "occurred_at": 1, "received_at": 1
        }))
        .unwrap();
        (id, row)
    }

    fn decode(row: &[u8]) -> Result<Event, StoreError> {
        serde_json::from_slice(row).map_err(|e| StoreError::Corrupt(e.to_string()))
    }

    #[test]
    fn a_row_is_opened_once_and_a_changed_row_is_opened_again() {
        let cache = OpenedEvents::default();
        let opened = Cell::new(0);
        let counting = |row: &[u8]| {
            opened.set(opened.get() + 1);
            decode(row)
        };
        let (id, row) = event("evt_0000000000000000000000001", "Jane");
        let first = cache.open(&id, &row, 1, counting).unwrap();
        let again = cache.open(&id, &row, 1, counting).unwrap();
        assert_eq!(opened.get(), 1);
        assert!(Arc::ptr_eq(&first, &again));

        // Erased (or re-sealed) since: the new bytes are opened, never the old event.
        let (_, erased) = event("evt_0000000000000000000000001", "");
        let after = cache.open(&id, &erased, 1, counting).unwrap();
        assert_eq!(opened.get(), 2);
        assert_eq!(after.data["name"], "");
    }

    #[test]
    fn an_old_event_opened_by_an_attempt_is_not_kept() {
        let cache = OpenedEvents::default();
        let (id, row) = event("evt_0000000000000000000000003", "Jane");
        // received_at is 1: seen from FRESH_MS later it is old, a retry or a backlog's.
        cache.open(&id, &row, 1 + FRESH_MS + 1, decode).unwrap();
        assert!(!cache.lock().by_id.contains_key(&id));
        cache.open(&id, &row, 1 + FRESH_MS, decode).unwrap();
        assert!(cache.lock().by_id.contains_key(&id));
    }

    #[test]
    fn an_event_remembered_at_ingest_is_not_opened_again() {
        let cache = OpenedEvents::default();
        let (id, row) = event("evt_0000000000000000000000002", "Jane");
        cache.remember(&row, &Arc::new(decode(&row).unwrap()));
        let opened = cache
            .open(&id, &row, 1, |_| panic!("opened what ingest had in hand"))
            .unwrap();
        assert_eq!(opened.data["name"], "Jane");
    }

    #[test]
    fn clearing_drops_every_entry() {
        let cache = OpenedEvents::default();
        let (id, row) = event("evt_0000000000000000000000004", "Jane");
        cache.open(&id, &row, 1, decode).unwrap();
        cache.clear();
        let held = cache.lock();
        assert!(held.by_id.is_empty() && held.order.is_empty() && held.bytes == 0);
    }

    #[test]
    fn the_cache_stays_within_its_budget_and_skips_large_rows() {
        let cache = OpenedEvents::default();
        for n in 0..5_000 {
            let (id, row) = event(&format!("evt_{n:025}"), "Jane");
            cache.open(&id, &row, 1, decode).unwrap();
        }
        let held = cache.lock();
        assert!(held.bytes <= BUDGET_BYTES);
        assert_eq!(held.by_id.len(), held.order.len());
        assert_eq!(
            held.bytes,
            held.by_id.values().map(|e| e.row.len()).sum::<usize>()
        );
        drop(held);

        let (id, row) = event("evt_9999999999999999999999999", &"x".repeat(LARGEST_ROW));
        cache.open(&id, &row, 1, decode).unwrap();
        assert!(!cache.lock().by_id.contains_key(&id));
    }
}
