//! Typed rows over redb tables: put, get and scan of JSON values (codec.rs), the id bounds of
//! time ranges, and redb's errors as `StoreError`.

use std::collections::HashMap;

use redb::{ReadTransaction, ReadableTable, TableDefinition, TableHandle, WriteTransaction};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::domain::ids::{DeliveryId, RuleId};
use crate::store::StoreError;
use crate::store::codec;

macro_rules! storage_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Storage(e.to_string())
            }
        }
    )*};
}
storage_error!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError
);

/// The smallest id a delivery created at `ms` can have.
pub(super) fn id_at(ms: i64) -> String {
    let ms = u64::try_from(ms.max(0)).unwrap_or(0) & 0xffff_ffff_ffff;
    format!("{}{ms:012x}", DeliveryId::PREFIX)
}

pub(super) fn put<T: Serialize>(
    txn: &WriteTransaction,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    txn.open_table(table)?
        .insert(key, codec::encode(value).as_slice())?;
    Ok(())
}

pub(super) fn get_w<T: DeserializeOwned>(
    txn: &WriteTransaction,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let t = txn.open_table(table)?;
    get_from(&t, table.name(), key)
}

pub(super) fn get<T: DeserializeOwned>(
    txn: &ReadTransaction,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let t = txn.open_table(table)?;
    get_from(&t, table.name(), key)
}

pub(super) fn get_from<T: DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
    key: &str,
) -> Result<Option<T>, StoreError> {
    table
        .get(key)?
        .map(|v| codec::decode(name, v.value()))
        .transpose()
}

pub(super) fn scan<T: DeserializeOwned>(
    txn: &ReadTransaction,
    table: TableDefinition<&str, &[u8]>,
) -> Result<Vec<T>, StoreError> {
    let t = txn.open_table(table)?;
    let mut out = Vec::new();
    for entry in t.iter()? {
        let (_, v) = entry?;
        out.push(codec::decode(table.name(), v.value())?);
    }
    Ok(out)
}

/// `scan` inside a write transaction.
pub(super) fn scan_w<T: DeserializeOwned>(
    txn: &WriteTransaction,
    table: TableDefinition<&str, &[u8]>,
) -> Result<Vec<T>, StoreError> {
    let t = txn.open_table(table)?;
    let mut out = Vec::new();
    for entry in t.iter()? {
        let (_, v) = entry?;
        out.push(codec::decode(table.name(), v.value())?);
    }
    Ok(out)
}

/// A whole (rule id → Unix ms) table.
pub(super) fn time_by_rule(
    txn: &ReadTransaction,
    def: TableDefinition<&str, i64>,
) -> Result<HashMap<RuleId, i64>, StoreError> {
    let table = txn.open_table(def)?;
    let mut out = HashMap::new();
    for entry in table.iter()? {
        let (k, v) = entry?;
        if let Some(id) = RuleId::parse(k.value()) {
            out.insert(id, v.value());
        }
    }
    Ok(out)
}
