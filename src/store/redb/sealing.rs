//! Encryption at rest of the PHI in stored rows, and the passes that keep every sealed value
//! under the master key in use.
//!
//! Event payloads (`data`) and logged request and response bodies are sealed with the master
//! key where rows are encoded — on the caller's thread, before the writer thread (the one
//! serial point of every write) gets the bytes — and opened where rows are decoded. The rest
//! of each row stays plain JSON, so ids, types and statuses remain readable while debugging.
//!
//! A sealed field uses a JSON type its plain form never has, so a row says which form it is
//! in and rows from earlier versions (plain) still read: an event's `data`, always an object,
//! is stored as the sealed string; a body, a string or null, as `{"sealed": "xc1:…"}`.
//! Plain rows are sealed once, by a pass at open (`reconcile`), rather than read as-is until
//! pruned, because that would leave PHI in clear on disk for up to `logs.retention_days`.

use redb::{Database, ReadableDatabase, ReadableTable, TableDefinition};
use serde_json::{Map, Value};

use super::tables::{ATTEMPTS, EVENT_TYPES, EVENTS, META, RULES};
use super::{StoreError, codec};
use crate::domain::catalog::StoredType;
use crate::domain::delivery::Attempt;
use crate::domain::event::Event;
use crate::domain::rule::Rule;
use crate::security::crypto::{Keyring, MasterKey, Sealed};

/// Meta key: a known text sealed with the key the database's values are sealed with, so a
/// wrong key is refused at open instead of failing every delivery.
const KEY_CHECK: &str = "master_key_check";
/// Meta key: while a rotation is unfinished, the known text sealed with the key it moves to.
const ROTATING_TO: &str = "master_key_rotating_to";
/// Meta key: present once rows written before payload encryption have been sealed.
const PAYLOADS_SEALED: &str = "payloads_sealed";
const CHECK_TEXT: &str = "tidings master key check";
/// Rows re-encoded per durable transaction by the passes: bounds the memory a pass holds.
const BATCH: usize = 256;
/// The field a sealed body is kept under.
const SEALED_FIELD: &str = "sealed";
/// Where an attempt row keeps bodies.
const BODY_PATHS: [[&str; 2]; 2] = [["request", "body"], ["response", "body"]];
/// Where an event catalog row keeps samples (the latest seen one is real event data).
const SAMPLE_PATHS: [&[&str]; 2] = [&["seen_sample"], &["declared", "sample"]];

/// Seals and opens the PHI fields of rows. Without a key (a command such as `key create`
/// that never touches payloads), reading or writing them is refused.
#[derive(Clone)]
pub(super) struct RowSeal(Option<MasterKey>);

fn no_key() -> StoreError {
    StoreError::MasterKey(
        "this command opened the database without the master key, so it cannot read or write event payloads or logged bodies".into(),
    )
}

fn corrupt(table: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("a record in {table} does not decode: {e}"))
}

fn to_value<T: serde::Serialize>(row: &T) -> Value {
    serde_json::to_value(row).expect("stored types always serialise")
}

fn open_str(key: &MasterKey, table: &str, sealed: &str) -> Result<String, StoreError> {
    let sealed =
        Sealed::parse(sealed).ok_or_else(|| corrupt(table, "a sealed field is not sealed"))?;
    key.open(&sealed)
        .map(|plain| plain.expose().to_owned())
        .map_err(|e| StoreError::MasterKey(format!("a record in {table}: {e}")))
}

impl RowSeal {
    pub(super) fn new(key: Option<MasterKey>) -> Self {
        Self(key)
    }

    fn key(&self) -> Result<&MasterKey, StoreError> {
        self.0.as_ref().ok_or_else(no_key)
    }

    pub(super) fn event(&self, event: &Event) -> Result<Vec<u8>, StoreError> {
        let mut row = to_value(event);
        seal_event_row(&mut row, self.key()?);
        Ok(codec::encode(&row))
    }

    pub(super) fn open_event(&self, bytes: &[u8]) -> Result<Event, StoreError> {
        let mut row: Value = codec::decode("events", bytes)?;
        if let Some(data) = row.get_mut("data")
            && let Value::String(sealed) = data
        {
            let plain = open_str(self.key()?, "events", sealed)?;
            *data = serde_json::from_str(&plain).map_err(|e| corrupt("events", e))?;
        }
        serde_json::from_value(row).map_err(|e| corrupt("events", e))
    }

    pub(super) fn attempt(&self, attempt: &Attempt) -> Result<Vec<u8>, StoreError> {
        let mut row = to_value(attempt);
        seal_attempt_row(&mut row, self.key()?);
        Ok(codec::encode(&row))
    }

    pub(super) fn open_attempt(&self, bytes: &[u8]) -> Result<Attempt, StoreError> {
        let mut row: Value = codec::decode("attempts", bytes)?;
        for path in BODY_PATHS {
            if let Some(body) = field(&mut row, &path)
                && let Some(sealed) = body.get(SEALED_FIELD).and_then(Value::as_str)
            {
                let plain = open_str(self.key()?, "attempts", sealed)?;
                *body = Value::String(plain);
            }
        }
        serde_json::from_value(row).map_err(|e| corrupt("attempts", e))
    }
}

impl RowSeal {
    pub(super) fn event_type(&self, row: &StoredType) -> Result<Vec<u8>, StoreError> {
        let mut row = to_value(row);
        seal_event_type_row(&mut row, self.key()?);
        Ok(codec::encode(&row))
    }

    pub(super) fn open_event_type(&self, bytes: &[u8]) -> Result<StoredType, StoreError> {
        let mut row: Value = codec::decode("event-types", bytes)?;
        for path in SAMPLE_PATHS {
            if let Some(sample) = field(&mut row, path)
                && let Value::String(sealed) = sample
            {
                let plain = open_str(self.key()?, "event-types", sealed)?;
                *sample = serde_json::from_str(&plain).map_err(|e| corrupt("event-types", e))?;
            }
        }
        serde_json::from_value(row).map_err(|e| corrupt("event-types", e))
    }
}

/// Seals plain samples (objects) as strings; true if the row changed.
fn seal_event_type_row(row: &mut Value, key: &MasterKey) -> bool {
    let mut changed = false;
    for path in SAMPLE_PATHS {
        if let Some(sample @ Value::Object(_)) = field(row, path) {
            let plain = serde_json::to_string(sample).expect("JSON values serialise");
            *sample = Value::String(key.seal(&plain).into_string());
            changed = true;
        }
    }
    changed
}

fn field<'a>(row: &'a mut Value, path: &[&str]) -> Option<&'a mut Value> {
    path.iter().try_fold(row, |v, k| v.get_mut(*k))
}

/// Seals a plain `data`; true if the row changed.
fn seal_event_row(row: &mut Value, key: &MasterKey) -> bool {
    match row.get_mut("data") {
        Some(data @ Value::Object(_)) => {
            let plain = serde_json::to_string(data).expect("JSON values serialise");
            *data = Value::String(key.seal(&plain).into_string());
            true
        }
        _ => false,
    }
}

/// Seals plain bodies; true if the row changed.
fn seal_attempt_row(row: &mut Value, key: &MasterKey) -> bool {
    let mut changed = false;
    for path in BODY_PATHS {
        if let Some(body) = field(row, &path)
            && let Value::String(plain) = body
        {
            let sealed = key.seal(plain).into_string();
            *body = Value::Object(Map::from_iter([(
                SEALED_FIELD.to_owned(),
                Value::String(sealed),
            )]));
            changed = true;
        }
    }
    changed
}

/// Re-seals with `to` every sealed string in `v` that `from` opens (and `to` does not: it
/// may be re-sealed already). Walks the whole row, so a sealed field added to a row type
/// later is rotated too. Strings that merely look sealed (user text, which neither key opens)
/// are left alone. True if anything changed.
fn reseal_tree(v: &mut Value, from: &MasterKey, to: &MasterKey) -> bool {
    match v {
        Value::String(s) => {
            let Some(sealed) = Sealed::parse(s) else {
                return false;
            };
            if to.open(&sealed).is_ok() {
                return false;
            }
            match from.open(&sealed) {
                Ok(plain) => {
                    *s = to.seal(plain.expose()).into_string();
                    true
                }
                Err(_) => false,
            }
        }
        Value::Array(items) => items
            .iter_mut()
            .fold(false, |changed, item| reseal_tree(item, from, to) | changed),
        Value::Object(map) => map
            .values_mut()
            .fold(false, |changed, item| reseal_tree(item, from, to) | changed),
        _ => false,
    }
}

/// Which plain fields a table's rows may still carry.
#[derive(Clone, Copy)]
enum Rows {
    Events,
    Attempts,
    Rules,
    EventTypes,
}

/// Brings one row to its final form; the new bytes if it changed.
fn reseal_row(
    rows: Rows,
    bytes: &[u8],
    from: Option<&MasterKey>,
    to: &MasterKey,
) -> Option<Vec<u8>> {
    let mut row: Value = serde_json::from_slice(bytes).ok()?;
    let mut changed = from.is_some_and(|from| reseal_tree(&mut row, from, to));
    changed |= match rows {
        Rows::Events => seal_event_row(&mut row, to),
        Rows::Attempts => seal_attempt_row(&mut row, to),
        Rows::Rules => false,
        Rows::EventTypes => seal_event_type_row(&mut row, to),
    };
    changed.then(|| codec::encode(&row))
}

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
        meta_set(
            db,
            &[
                (KEY_CHECK, Some(&check)),
                (PAYLOADS_SEALED, Some("1")),
                (ROTATING_TO, None),
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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn key(n: u8) -> MasterKey {
        MasterKey::from_bytes(&[n; 32])
    }

    #[test]
    fn rows_round_trip_sealed_and_need_the_key() {
        let event: Event = serde_json::from_value(json!({
            "id": "evt_1", "workspace_id": "wsp_1", "type": "patient:admitted",
            "occurred_at": 1, "received_at": 2, "data": {"name": "Jane"},
        }))
        .unwrap();
        let seal = RowSeal::new(Some(key(1)));
        let bytes = seal.event(&event).unwrap();
        assert!(!String::from_utf8_lossy(&bytes).contains("Jane"));
        assert_eq!(seal.open_event(&bytes).unwrap().data["name"], "Jane");
        let plain = serde_json::to_vec(&event).unwrap();
        assert_eq!(
            seal.open_event(&plain).unwrap().data["name"],
            "Jane",
            "old rows read"
        );
        let keyless = RowSeal::new(None);
        assert!(matches!(
            keyless.event(&event),
            Err(StoreError::MasterKey(_))
        ));
        assert!(matches!(
            keyless.open_event(&bytes),
            Err(StoreError::MasterKey(_))
        ));
        let wrong = RowSeal::new(Some(key(9)));
        assert!(matches!(
            wrong.open_event(&bytes),
            Err(StoreError::MasterKey(_))
        ));
    }

    #[test]
    fn plain_rows_are_sealed_once_and_rotated_by_the_walk() {
        let (old, new) = (key(1), key(2));
        let event = serde_json::to_vec(&json!({"id": "evt_1", "data": {"name": "Jane"}})).unwrap();
        let sealed = reseal_row(Rows::Events, &event, None, &old).unwrap();
        assert!(!String::from_utf8_lossy(&sealed).contains("Jane"));
        assert!(
            reseal_row(Rows::Events, &sealed, None, &old).is_none(),
            "idempotent"
        );
        let rotated = reseal_row(Rows::Events, &sealed, Some(&old), &new).unwrap();
        assert!(
            reseal_row(Rows::Events, &rotated, Some(&old), &new).is_none(),
            "idempotent"
        );
        let row: Value = serde_json::from_slice(&rotated).unwrap();
        let s = Sealed::parse(row["data"].as_str().unwrap()).unwrap();
        assert!(old.open(&s).is_err());
        assert_eq!(new.open(&s).unwrap().expose(), r#"{"name":"Jane"}"#);

        let attempt = serde_json::to_vec(
            &json!({"request": {"body": "xc1:not really"}, "response": {"body": null}, "error": "xc1:x"}),
        )
        .unwrap();
        let sealed = reseal_row(Rows::Attempts, &attempt, None, &old).unwrap();
        let row: Value = serde_json::from_slice(&sealed).unwrap();
        assert!(row["request"]["body"]["sealed"].is_string());
        assert!(row["response"]["body"].is_null());
        assert_eq!(row["error"], "xc1:x", "look-alike user text is not touched");
        assert!(reseal_row(Rows::Attempts, &sealed, Some(&old), &new).is_some());
    }
}
