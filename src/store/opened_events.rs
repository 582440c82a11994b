//! Events lately opened for delivery, so an event's fan-out opens it once: with ten rules
//! an event is read for ten attempts, and opening it (decrypting `data`, parsing the row)
//! was a tenth of a delivery worker's time. Ingest puts in each event it seals that has
//! deliveries, so even a single attempt does not open what ingest had in hand.
//!
//! An entry is used only while the stored row is byte for byte the one it was opened from:
//! the row is still read from the store for every attempt, so an event erased or re-sealed
//! since (on this node or another) reads as new bytes and is opened afresh. What a cached
//! entry returns is therefore exactly what opening the row would. The cache is small and
//! bounded in bytes (payloads are PHI: it holds no more of them than a burst of fan-out
//! needs), and an event too large to keep is simply opened every time.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, PoisonError};

use crate::domain::event::Event;
use crate::domain::ids::EventId;
use crate::store::StoreError;

/// How many stored bytes (rows as read) the cache keeps, all entries together. A decoded
/// event is a few times its row, so this bounds the memory at a few MiB.
const BUDGET_BYTES: usize = 1024 * 1024;
/// Rows larger than this are not kept: a few large events would push out every small one.
const LARGEST_ROW: usize = 64 * 1024;

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
        open: impl FnOnce(&[u8]) -> Result<Event, StoreError>,
    ) -> Result<Arc<Event>, StoreError> {
        if let Some(entry) = self.lock().by_id.get(id)
            && entry.row == row
        {
            return Ok(Arc::clone(&entry.event));
        }
        let event = Arc::new(open(row)?);
        if row.len() <= LARGEST_ROW {
            self.lock().keep(id, row, &event);
        }
        Ok(event)
    }

    /// Keeps `event`, just sealed as `row` at ingest, so its first attempts need not open
    /// what was in hand. Kept before the row is written: should the write fail, no row
    /// with these bytes exists to be served for.
    pub(in crate::store) fn remember(&self, row: &[u8], event: Event) {
        if row.len() <= LARGEST_ROW {
            let id = event.id.clone();
            self.lock().keep(&id, row, &Arc::new(event));
        }
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
        let first = cache.open(&id, &row, counting).unwrap();
        let again = cache.open(&id, &row, counting).unwrap();
        assert_eq!(opened.get(), 1);
        assert!(Arc::ptr_eq(&first, &again));

        // Erased (or re-sealed) since: the new bytes are opened, never the old event.
        let (_, erased) = event("evt_0000000000000000000000001", "");
        let after = cache.open(&id, &erased, counting).unwrap();
        assert_eq!(opened.get(), 2);
        assert_eq!(after.data["name"], "");
    }

    #[test]
    fn an_event_remembered_at_ingest_is_not_opened_again() {
        let cache = OpenedEvents::default();
        let (id, row) = event("evt_0000000000000000000000002", "Jane");
        cache.remember(&row, decode(&row).unwrap());
        let opened = cache
            .open(&id, &row, |_| panic!("opened what ingest had in hand"))
            .unwrap();
        assert_eq!(opened.data["name"], "Jane");
    }

    #[test]
    fn the_cache_stays_within_its_budget_and_skips_large_rows() {
        let cache = OpenedEvents::default();
        for n in 0..5_000 {
            let (id, row) = event(&format!("evt_{n:025}"), "Jane");
            cache.open(&id, &row, decode).unwrap();
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
        cache.open(&id, &row, decode).unwrap();
        assert!(!cache.lock().by_id.contains_key(&id));
    }
}
