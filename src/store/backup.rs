//! Online backup: a consistent copy of every table, taken from one read transaction (redb's
//! MVCC snapshot) while writes go on, into a new redb file; and the check a restore runs.

use std::path::Path;

use redb::{
    Database, ReadOnlyDatabase, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition,
    WriteTransaction,
};

use super::tables::{
    API_KEY_HASHES, API_KEYS, ATTEMPTS, AUDIT, CONDITION_ERRORS_BY_HOUR, DELIVERIES,
    DELIVERIES_BY_EVENT, DELIVERIES_BY_RULE, DELIVERIES_BY_STATUS, DISCLOSURES, EVENT_TYPES,
    EVENTS, HOURLY_OUTCOMES, IDEMPOTENCY, META, OPEN_BY_ORDERING_KEY, OPEN_COUNTS, OPEN_DELIVERIES,
    ROUTINE_LAST_FIRED, RULE_ALERTS, RULE_DRAFTS, RULE_FAILING_SINCE, RULE_VERSIONS, RULES,
    SESSIONS, SUBJECT_EVENTS, USERS, USERS_BY_NAME, WORKSPACES,
};
use super::{RedbStore, StoreError};
use crate::security::files::PartialFile;

fn copy_table<K: redb::Key + 'static, V: redb::Value + 'static>(
    from: &ReadTransaction,
    to: &WriteTransaction,
    def: TableDefinition<K, V>,
) -> Result<u64, StoreError> {
    let source = from.open_table(def)?;
    let mut target = to.open_table(def)?;
    let mut rows = 0;
    for entry in source.iter()? {
        let (k, v) = entry?;
        target.insert(k.value(), v.value())?;
        rows += 1;
    }
    Ok(rows)
}

/// Copies every table of `from` into `to` (a fresh database); returns the rows copied. A
/// table added to the schema must be added here too: `a_backup_holds_every_table` fails
/// until it is.
fn copy_all(from: &ReadTransaction, to: &WriteTransaction) -> Result<u64, StoreError> {
    Ok(copy_table(from, to, META)?
        + copy_table(from, to, WORKSPACES)?
        + copy_table(from, to, API_KEYS)?
        + copy_table(from, to, API_KEY_HASHES)?
        + copy_table(from, to, RULES)?
        + copy_table(from, to, EVENTS)?
        + copy_table(from, to, IDEMPOTENCY)?
        + copy_table(from, to, DELIVERIES)?
        + copy_table(from, to, DELIVERIES_BY_RULE)?
        + copy_table(from, to, DELIVERIES_BY_EVENT)?
        + copy_table(from, to, DELIVERIES_BY_STATUS)?
        + copy_table(from, to, ATTEMPTS)?
        + copy_table(from, to, AUDIT)?
        + copy_table(from, to, RULE_FAILING_SINCE)?
        + copy_table(from, to, RULE_ALERTS)?
        + copy_table(from, to, OPEN_DELIVERIES)?
        + copy_table(from, to, EVENT_TYPES)?
        + copy_table(from, to, ROUTINE_LAST_FIRED)?
        + copy_table(from, to, USERS)?
        + copy_table(from, to, USERS_BY_NAME)?
        + copy_table(from, to, SESSIONS)?
        + copy_table(from, to, HOURLY_OUTCOMES)?
        + copy_table(from, to, SUBJECT_EVENTS)?
        + copy_table(from, to, DISCLOSURES)?
        + copy_table(from, to, OPEN_BY_ORDERING_KEY)?
        + copy_table(from, to, RULE_VERSIONS)?
        + copy_table(from, to, RULE_DRAFTS)?
        + copy_table(from, to, OPEN_COUNTS)?
        + copy_table(from, to, CONDITION_ERRORS_BY_HOUR)?)
}

impl RedbStore {
    /// Writes a consistent snapshot of the whole store to `path` (which must not exist) and
    /// returns the number of rows in it. Delivery continues meanwhile: only a read
    /// transaction is held on the live database.
    ///
    /// The snapshot is written owner-only under a temporary name beside `path` and renamed
    /// once complete and synced, so an interrupted backup never leaves a partial file at
    /// `path`; what earlier interrupted ones left in that folder is removed first.
    pub fn backup_to(&self, path: &Path) -> Result<u64, StoreError> {
        if path.exists() {
            return Err(StoreError::Conflict(format!(
                "{} already exists",
                path.display()
            )));
        }
        if super::reseal::rotation_pending(&self.shared_db())? {
            // Values are sealed partly with each key: a copy would need both to be read.
            return Err(StoreError::Conflict(
                "a master-key rotation is unfinished; finish it first (start `tidings serve`, or run `tidings rotate-master-key` again)".into(),
            ));
        }
        let cannot = |e: &dyn std::fmt::Display| {
            StoreError::Storage(format!("cannot write {}: {e}", path.display()))
        };
        let (partial, file) = PartialFile::create(path).map_err(|e| cannot(&e))?;
        // redb opens the file itself (and takes its lock); the empty file is its to fill.
        drop(file);
        let snapshot = self.read_snapshot()?;
        let target = Database::create(partial.path()).map_err(|e| cannot(&e))?;
        let txn = target.begin_write()?;
        let rows = copy_all(&snapshot, &txn)?;
        txn.commit()?;
        // Closed before the rename: redb writes its last pages when the database is dropped.
        drop(target);
        partial.finish().map_err(|e| cannot(&e))?;
        Ok(rows)
    }
}

/// Checks that `file` is a complete tidings database this version can open (for `tidings
/// restore`, which checks its own copy of the file given: messages name `shown_as`, that
/// file). Opened read-only: a read-write open would "repair" a damaged file in place,
/// rewriting it (and keeping what redb could salvage, which may be next to nothing), whereas
/// a file that needs repair is not a finished backup and is refused.
pub fn check_backup(file: &Path, shown_as: &Path) -> Result<(), StoreError> {
    let name = shown_as.display();
    let not_ours = |e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!("{name} is not a tidings database: {e}"))
    };
    let db = ReadOnlyDatabase::open(file).map_err(|e| match e {
        redb::DatabaseError::RepairAborted => StoreError::Corrupt(format!(
            "{name} was not closed cleanly (copied while a tidings process was writing it, or cut short), so it is not a complete backup; take one with `tidings backup`"
        )),
        e => not_ours(&e),
    })?;
    let txn = db.begin_read()?;
    let meta = txn.open_table(META).map_err(|e| not_ours(&e))?;
    let version = meta
        .get("schema_version")?
        .map(|v| v.value().to_owned())
        .ok_or_else(|| StoreError::Corrupt(format!("{name} has no schema version")))?;
    let version: u32 = version.parse().unwrap_or(u32::MAX);
    if version > super::migrations::SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "{name} was written by a newer tidings (schema {version}); restore it with that version"
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeSet;

    use redb::{ReadOnlyDatabase, ReadTransaction, ReadableDatabase, TableHandle};

    use crate::domain::time::Clock;
    use crate::security::crypto::Keyring;
    use crate::store::RedbStore;

    fn table_names(txn: &ReadTransaction) -> BTreeSet<String> {
        txn.list_tables()
            .unwrap()
            .map(|t| t.name().to_owned())
            .collect()
    }

    /// The schema's migrations create every table; the backup must hold each of them, or a
    /// restore silently loses what the missing one held (rule versions were once left out).
    #[test]
    fn a_backup_holds_every_table() {
        let dir = std::env::temp_dir().join(format!(
            "tidings-backup-tables-{}-{:x}",
            std::process::id(),
            rand::random::<u64>()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        let (store, _) = RedbStore::open_with_keys(
            &dir,
            || Keyring::load(&dir, None),
            Clock::manual(1_800_000_000_000),
        )
        .unwrap();
        let copy = dir.join("copy.redb");
        let rows = store.backup_to(&copy);
        store.shutdown();
        drop(store);
        rows.unwrap();
        let names = |file: &std::path::Path| {
            table_names(&ReadOnlyDatabase::open(file).unwrap().begin_read().unwrap())
        };
        let (live, backed_up) = (names(&dir.join("tidings.redb")), names(&copy));
        std::fs::remove_dir_all(&dir).ok();
        assert!(live.len() > 20, "the schema's tables: {live:?}");
        assert_eq!(backed_up, live);
    }
}
