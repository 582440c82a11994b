//! The redb backend's passes that keep every sealed value under the master key in use: the
//! key check at open, master-key rotation, and sealing rows that earlier versions stored
//! plain. Plain rows are sealed once, by a pass at open (`reconcile`), rather than read as-is
//! until pruned, because that would leave PHI in clear on disk for up to
//! `logs.retention_days`. How a row is sealed is the store's shared `seal.rs`.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};

use super::tables::{ATTEMPTS, EVENT_TYPES, EVENTS, META, RULE_DRAFTS, RULE_VERSIONS, RULES};
use crate::domain::rule::Rule;
use crate::security::crypto::{Keyring, MasterKey, Sealed, new_subject_seed};
use crate::store::seal::{CHECK_TEXT, Rows, SUBJECT_SEED, open_subject_seed, reseal_row};
use crate::store::{StoreError, codec};

/// Meta key: a known text sealed with the key the database's values are sealed with, so a
/// wrong key is refused at open instead of failing every delivery.
const KEY_CHECK: &str = "master_key_check";
/// Meta key: while a rotation is unfinished, the known text sealed with the key it moves to.
const ROTATING_TO: &str = "master_key_rotating_to";
/// Meta key: present once rows written before payload encryption have been sealed.
const PAYLOADS_SEALED: &str = "payloads_sealed";
/// Rows re-encoded per durable transaction by the passes: bounds the memory a pass holds.
const BATCH: usize = 256;

/// One pass over a table that holds sealed values, reading from one snapshot and writing
/// changed rows in durable batches. Rows already in final form are left alone, so a pass cut
/// short by a crash is simply run again. Returns the rows changed.
fn reseal_table<K: redb::Key + 'static>(
    db: &Database,
    def: TableDefinition<K, &'static [u8]>,
    rows: Rows,
    from: Option<&MasterKey>,
    to: &MasterKey,
) -> Result<u64, StoreError> {
    let write = |batch: &mut Vec<(Vec<u8>, Vec<u8>)>| -> Result<(), StoreError> {
        let txn = db.begin_write()?;
        {
            let mut table = txn.open_table(def)?;
            for (k, v) in batch.iter() {
                table.insert(K::from_bytes(k), v.as_slice())?;
            }
        }
        txn.commit()?;
        batch.clear();
        Ok(())
    };
    let snapshot = db.begin_read()?;
    let table = snapshot.open_table(def)?;
    let mut batch = Vec::with_capacity(BATCH);
    let mut changed = 0;
    for entry in table.iter()? {
        let (k, v) = entry?;
        if let Some(new) = reseal_row(rows, v.value(), from, to) {
            batch.push((K::as_bytes(&k.value()).as_ref().to_vec(), new));
            changed += 1;
            if batch.len() >= BATCH {
                write(&mut batch)?;
            }
        }
    }
    if !batch.is_empty() {
        write(&mut batch)?;
    }
    Ok(changed)
}

/// Every table holding sealed values. A table that stores a `Sealed` value must be listed
/// here, or a master-key rotation would leave it sealed with a key that is then gone.
fn reseal_all(db: &Database, from: Option<&MasterKey>, to: &MasterKey) -> Result<u64, StoreError> {
    Ok(reseal_table(db, RULES, Rows::Rules, from, to)?
        + reseal_table(db, RULE_VERSIONS, Rows::Rules, from, to)?
        + reseal_table(db, RULE_DRAFTS, Rows::Rules, from, to)?
        + reseal_table(db, EVENTS, Rows::Events, from, to)?
        + reseal_table(db, ATTEMPTS, Rows::Attempts, from, to)?
        + reseal_table(db, EVENT_TYPES, Rows::EventTypes, from, to)?)
}

fn meta_get(db: &Database, key: &str) -> Result<Option<String>, StoreError> {
    let txn = db.begin_read()?;
    let meta = txn.open_table(META)?;
    Ok(meta.get(key)?.map(|v| v.value().to_owned()))
}

/// Sets (`Some`) or removes (`None`) meta entries in one durable transaction.
fn meta_set(db: &Database, entries: &[(&str, Option<&str>)]) -> Result<(), StoreError> {
    let txn = db.begin_write()?;
    {
        let mut meta = txn.open_table(META)?;
        for (k, v) in entries {
            match v {
                Some(v) => meta.insert(*k, *v)?,
                None => meta.remove(*k)?,
            };
        }
    }
    txn.commit()?;
    Ok(())
}

fn opens(key: &MasterKey, sealed: Option<&str>) -> bool {
    sealed
        .and_then(Sealed::parse)
        .is_some_and(|s| key.open(&s).is_ok())
}

/// Whether a rotation is unfinished (an offline backup then would need both keys).
pub(in crate::store) fn rotation_pending(db: &Database) -> Result<bool, StoreError> {
    Ok(meta_get(db, ROTATING_TO)?.is_some())
}

/// Whether an open starts a master-key rotation.
#[derive(Clone, Copy)]
pub(super) enum Rotation<'a> {
    No,
    /// Start one (`rotate-master-key`), with `TIDINGS_NEW_MASTER_KEY` if it is set.
    Begin(Option<&'a str>),
}

/// Run at open, before anyone else may read or write: checks the keys against the database,
/// starts a rotation if `rotate` says so (only once the keys are known to be right, so a
/// refused rotation leaves no new key behind), finishes a rotation that was started or
/// interrupted, and seals rows written before payload encryption. Returns the key every
/// value is now sealed with and how many rows were rewritten.
pub(super) fn reconcile(
    db: &Database,
    keyring: Keyring,
    rotate: Rotation<'_>,
) -> Result<(MasterKey, u64), StoreError> {
    let check = meta_get(db, KEY_CHECK)?;
    let keyring = keyring
        .settle(check.is_some())
        .map_err(|e| StoreError::MasterKey(e.to_string()))?;
    let rotating_to = meta_get(db, ROTATING_TO)?;
    let current = &keyring.current;
    let check_opens_with_next = keyring
        .next
        .as_ref()
        .is_some_and(|n| opens(n, check.as_deref()));
    if check.is_some() && !opens(current, check.as_deref()) && !check_opens_with_next {
        return Err(StoreError::MasterKey(
            if opens(current, rotating_to.as_deref()) {
                "the master key given is the new key of an unfinished master-key rotation; run `tidings rotate-master-key` with the old key as TIDINGS_MASTER_KEY and this one as TIDINGS_NEW_MASTER_KEY to finish it".into()
            } else {
                "the master key does not open this database: its values were sealed with another key (check TIDINGS_MASTER_KEY, or put back the data dir's original master.key; after a rotation with TIDINGS_NEW_MASTER_KEY, that is the key to use now)".into()
            },
        ));
    }
    if check.is_none() {
        check_legacy_rules(db, current)?;
    }
    if rotating_to.is_some() && keyring.next.is_none() && keyring.uses_files() {
        // Checked before a rotation could write a fresh master.key.new in its place.
        return Err(StoreError::MasterKey(
            "a master-key rotation was interrupted and its new key, master.key.new, is missing from the data dir: put it back (some values are sealed with it)".into(),
        ));
    }
    let keyring = match rotate {
        Rotation::Begin(new_env_key) => keyring
            .begin_rotation(new_env_key)
            .map_err(|e| StoreError::MasterKey(e.to_string()))?,
        Rotation::No => keyring,
    };
    let current = &keyring.current;
    let next = keyring.next.as_ref();
    if rotating_to.is_some() {
        match next {
            Some(n) if opens(n, rotating_to.as_deref()) => {}
            Some(_) => {
                return Err(StoreError::MasterKey(
                    "an unfinished master-key rotation was moving to a different new key; give that key (TIDINGS_NEW_MASTER_KEY) to finish it".into(),
                ));
            }
            None => {
                return Err(StoreError::MasterKey(
                    "a master-key rotation was interrupted; run `tidings rotate-master-key` again with the same TIDINGS_MASTER_KEY and TIDINGS_NEW_MASTER_KEY to finish it (some values are already sealed with the new key)".into(),
                ));
            }
        }
    }
    let payloads_sealed = meta_get(db, PAYLOADS_SEALED)?.is_some();
    if let Some(next) = next {
        if rotating_to.is_none() {
            let marker = next.seal(CHECK_TEXT).into_string();
            meta_set(db, &[(ROTATING_TO, Some(&marker))])?;
        }
        let changed = reseal_all(db, Some(current), next)?;
        let check = next.seal(CHECK_TEXT).into_string();
        // Re-sealed in the same write that ends the rotation; a pass cut short before it
        // finds the seed still under the old key, which it is given again.
        let seed = meta_get(db, SUBJECT_SEED)?
            .map(|stored| open_subject_seed(&stored, &[current, next]))
            .transpose()?
            .map(|seed| next.seal(seed.expose()).into_string());
        meta_set(
            db,
            &[
                (KEY_CHECK, Some(&check)),
                (PAYLOADS_SEALED, Some("1")),
                (ROTATING_TO, None),
                (SUBJECT_SEED, seed.as_deref()),
            ],
        )?;
        tracing::info!(
            rows = changed,
            "re-sealed stored values with the new master key"
        );
        let key = keyring
            .finish_rotation()
            .map_err(|e| StoreError::MasterKey(e.to_string()))?;
        return Ok((key, changed));
    }
    let mut changed = 0;
    if !payloads_sealed {
        changed = reseal_all(db, None, current)?;
        if changed > 0 {
            tracing::info!(
                rows = changed,
                "sealed event payloads and logged bodies stored by an earlier version"
            );
        }
    }
    if check.is_none() || !payloads_sealed {
        let check = check.unwrap_or_else(|| current.seal(CHECK_TEXT).into_string());
        meta_set(
            db,
            &[(KEY_CHECK, Some(&check)), (PAYLOADS_SEALED, Some("1"))],
        )?;
    }
    Ok((keyring.current, changed))
}

/// The key with the database's subject key seed set, made (and stored sealed) the first time.
pub(super) fn settle_subject_seed(db: &Database, key: MasterKey) -> Result<MasterKey, StoreError> {
    let seed = if let Some(stored) = meta_get(db, SUBJECT_SEED)? {
        open_subject_seed(&stored, &[&key])?
    } else {
        let seed = new_subject_seed();
        meta_set(
            db,
            &[(SUBJECT_SEED, Some(&key.seal(seed.expose()).into_string()))],
        )?;
        seed
    };
    Ok(key.with_subject_seed(&seed))
}

/// A database from before the key check: its rules' signing secrets must open with the key,
/// or the key is the wrong one (and sealing payloads with it would mix two keys).
fn check_legacy_rules(db: &Database, key: &MasterKey) -> Result<(), StoreError> {
    let txn = db.begin_read()?;
    let table = txn.open_table(RULES)?;
    for entry in table.iter()? {
        let (_, v) = entry?;
        let rule: Rule = codec::decode("rules", v.value())?;
        if rule
            .signing_secrets
            .iter()
            .any(|s| key.open(&s.sealed).is_err())
        {
            return Err(StoreError::MasterKey(format!(
                "the master key does not open the signing secret of rule {}: check TIDINGS_MASTER_KEY, or put back the data dir's original master.key",
                rule.id
            )));
        }
    }
    Ok(())
}
