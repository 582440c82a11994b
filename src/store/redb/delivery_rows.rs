//! A delivery's row and what is derived from its status, written together so they never
//! disagree: the log's status index (`DELIVERIES_BY_STATUS`, of the rarer statuses), the
//! durable queue of open deliveries (`OPEN_DELIVERIES`) and the ordered ones' index. Every
//! write of a delivery row goes through `DeliveryTables::store`, every removal through
//! `DeliveryTables::remove_finished`.

use redb::{ReadableTable, Table, WriteTransaction};
use serde::Deserialize;

use super::tables::{DELIVERIES, DELIVERIES_BY_STATUS, OPEN_BY_ORDERING_KEY, OPEN_DELIVERIES};
use crate::domain::delivery::{Delivery, DeliveryStatus};
use crate::store::types::status_indexed;
use crate::store::{StoreError, codec};

/// A stored row's status, read without building the rest of the delivery.
fn status_of(row: &[u8]) -> Result<DeliveryStatus, StoreError> {
    #[derive(Deserialize)]
    struct Status {
        status: DeliveryStatus,
    }
    Ok(codec::decode::<Status>("deliveries", row)?.status)
}

/// A stored row's workspace and status: where it sits in the status index.
#[derive(Deserialize)]
struct Placed {
    workspace_id: String,
    status: DeliveryStatus,
}

fn placed(row: &[u8]) -> Result<Placed, StoreError> {
    codec::decode("deliveries", row)
}

/// Encodes `d` and stores it; see `DeliveryTables::store`.
pub(super) fn put_delivery(txn: &WriteTransaction, d: &Delivery) -> Result<(), StoreError> {
    store_delivery(txn, d, &codec::encode(d))
}

/// Stores one delivery; see `DeliveryTables::store`.
pub(super) fn store_delivery(
    txn: &WriteTransaction,
    d: &Delivery,
    encoded: &[u8],
) -> Result<(), StoreError> {
    DeliveryTables::open(txn)?.store(d, encoded)
}

/// The tables every write of a delivery row touches, opened once for a run of writes (an
/// event's fan-out): each `open_table` looks its table up in redb's table tree, and with
/// ten rules that was a tenth of the writer's time. While it is held, these tables cannot
/// be opened again in the transaction.
pub(super) struct DeliveryTables<'txn> {
    txn: &'txn WriteTransaction,
    deliveries: Table<'txn, &'static str, &'static [u8]>,
    /// Opened at the first write that changes it: most never do.
    by_status: Option<Table<'txn, (&'static str, &'static str, &'static str), ()>>,
    open: Table<'txn, &'static str, i64>,
}

impl<'txn> DeliveryTables<'txn> {
    pub(super) fn open(txn: &'txn WriteTransaction) -> Result<Self, StoreError> {
        Ok(Self {
            txn,
            deliveries: txn.open_table(DELIVERIES)?,
            by_status: None,
            open: txn.open_table(OPEN_DELIVERIES)?,
        })
    }

    /// Stores `d` (`encoded` is its row) and moves it in the status index and the queue to
    /// where its status now puts it.
    pub(super) fn store(&mut self, d: &Delivery, encoded: &[u8]) -> Result<(), StoreError> {
        let was = self
            .deliveries
            .insert(d.id.as_str(), encoded)?
            .map(|old| status_of(old.value()))
            .transpose()?;
        if was == Some(d.status) {
            return self.set_open(d);
        }
        let (workspace, id) = (d.workspace_id.as_str(), d.id.as_str());
        if let Some(was) = was.filter(|w| status_indexed(*w)) {
            self.by_status()?.remove((workspace, was.as_str(), id))?;
        }
        if status_indexed(d.status) {
            self.by_status()?
                .insert((workspace, d.status.as_str(), id), ())?;
        }
        self.set_open(d)
    }

    /// Removes a finished delivery's row and its status index entry; false if it is gone,
    /// or open again (re-sent since the caller chose it), and then left as it is.
    pub(super) fn remove_finished(&mut self, id: &str) -> Result<bool, StoreError> {
        let Some(was) = self
            .deliveries
            .get(id)?
            .map(|row| placed(row.value()))
            .transpose()?
        else {
            return Ok(false);
        };
        if was.status.is_open() {
            return Ok(false);
        }
        self.deliveries.remove(id)?;
        if status_indexed(was.status) {
            let entry = (was.workspace_id.as_str(), was.status.as_str(), id);
            self.by_status()?.remove(entry)?;
        }
        Ok(true)
    }

    fn by_status(
        &mut self,
    ) -> Result<&mut Table<'txn, (&'static str, &'static str, &'static str), ()>, StoreError> {
        let table = match self.by_status.take() {
            Some(table) => table,
            None => self.txn.open_table(DELIVERIES_BY_STATUS)?,
        };
        Ok(self.by_status.insert(table))
    }

    /// Keeps the durable queue equal to "open deliveries and when they are due", and the
    /// ordered ones' index with it.
    fn set_open(&mut self, d: &Delivery) -> Result<(), StoreError> {
        let queued = if let (true, Some(due)) = (d.status.is_open(), d.next_attempt_at) {
            if self.open.insert(d.id.as_str(), due)?.is_none() {
                super::stats::count_open(self.txn, &d.workspace_id, true)?;
            }
            true
        } else {
            if self.open.remove(d.id.as_str())?.is_some() {
                super::stats::count_open(self.txn, &d.workspace_id, false)?;
            }
            false
        };
        if let Some(key) = &d.ordering_key {
            let mut ordered = self.txn.open_table(OPEN_BY_ORDERING_KEY)?;
            let entry = (d.rule_id.as_str(), key.as_str(), d.id.as_str());
            if queued {
                ordered.insert(entry, ())?;
            } else {
                ordered.remove(entry)?;
            }
        }
        Ok(())
    }
}

/// Indexes the stored deliveries by status: the migration that adds the index. Returns
/// how many it indexed.
pub(super) fn fill_status_index(txn: &WriteTransaction) -> Result<u64, StoreError> {
    let deliveries = txn.open_table(DELIVERIES)?;
    let mut index = txn.open_table(DELIVERIES_BY_STATUS)?;
    let mut rows = 0;
    for entry in deliveries.iter()? {
        let (id, row) = entry?;
        let of = placed(row.value())?;
        if status_indexed(of.status) {
            let key = (of.workspace_id.as_str(), of.status.as_str(), id.value());
            index.insert(key, ())?;
            rows += 1;
        }
    }
    Ok(rows)
}
