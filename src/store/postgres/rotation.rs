//! `tidings rotate-master-key` on PostgreSQL: every sealed value re-sealed with the new key
//! in one transaction, while no node runs. One transaction means no half-rotated store: a
//! crash before the commit leaves everything under the old key, after it under the new one,
//! and the key files follow (`Keyring::finish_rotation`) once it has committed. The migration
//! lock is held throughout, so a node that starts meanwhile waits, then meets the new key
//! check and refuses its old key.

use postgres::Transaction;

use super::connect;
use super::nodes::DB_NOW_MS;
use super::schema::{self, KEY_CHECK, MIGRATION_LOCK};
use crate::security::crypto::{Keyring, MasterKey, Sealed};
use crate::store::StoreError;
use crate::store::seal::{CHECK_TEXT, Rows, SUBJECT_SEED, open_subject_seed, reseal_row};

/// Rows fetched per round trip while re-sealing a table.
const BATCH: i32 = 256;

/// The columns of a table's primary key, with their SQL types.
type Key = &'static [(&'static str, &'static str)];

/// The tables whose rows hold sealed values, by primary key. A table that stores a `Sealed`
/// value must be listed here (as in redb/reseal.rs).
const SEALED_TABLES: [(&str, Key, Rows); 6] = [
    ("rules", &[("id", "text")], Rows::Rules),
    (
        "rule_versions",
        &[("rule_id", "text"), ("version", "integer")],
        Rows::Rules,
    ),
    ("rule_drafts", &[("rule_id", "text")], Rows::Rules),
    ("events", &[("id", "text")], Rows::Events),
    (
        "attempts",
        &[("delivery_id", "text"), ("number", "integer")],
        Rows::Attempts,
    ),
    (
        "event_types",
        &[("workspace_id", "text"), ("name", "text")],
        Rows::EventTypes,
    ),
];

/// Re-seals the store `url` names from `keyring.current` to a new key (see
/// `Keyring::begin_rotation`; `new_env_key` is `TIDINGS_NEW_MASTER_KEY`) and returns it with
/// the number of rows re-sealed. `lease_ms`: a node heard from within it counts as running.
pub(in crate::store) fn rotate(
    url: &str,
    keyring: Keyring,
    new_env_key: Option<&str>,
    lease_ms: i64,
    now: i64,
) -> Result<(MasterKey, u64), StoreError> {
    let pool = connect::pool(url)?;
    schema::migrate(&pool, now)?;
    let mut conn = connect::get(&pool)?;
    let mut txn = conn.transaction()?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    let running: i64 = txn
        .query_one(
            &format!("SELECT count(*) FROM nodes WHERE heartbeat_at > {DB_NOW_MS} - $1"),
            &[&lease_ms],
        )?
        .get(0);
    if running > 0 {
        return Err(StoreError::InUse(format!(
            "the PostgreSQL store ({running} node(s) running)"
        )));
    }
    let check = meta(&mut txn, KEY_CHECK)?;
    let keyring = keyring
        .settle(check.is_some())
        .map_err(|e| StoreError::MasterKey(e.to_string()))?;
    let opens = |key: &MasterKey| {
        check
            .as_deref()
            .and_then(Sealed::parse)
            .is_some_and(|s| key.open(&s).is_ok())
    };
    // An earlier run committed and died before renaming master.key.new: only that is left.
    if let Some(next) = &keyring.next
        && !opens(&keyring.current)
        && opens(next)
    {
        drop(txn);
        return finish(keyring, 0);
    }
    if check.is_some() && !opens(&keyring.current) {
        return Err(StoreError::MasterKey(
            "the master key does not open this PostgreSQL store: its values were sealed with another key (check TIDINGS_MASTER_KEY or master.key)".into(),
        ));
    }
    let keyring = keyring
        .begin_rotation(new_env_key)
        .map_err(|e| StoreError::MasterKey(e.to_string()))?;
    let next = keyring.next.as_ref().expect("a rotation has begun");
    let mut changed = 0;
    for (table, key, rows) in SEALED_TABLES {
        changed += reseal_table(&mut txn, table, key, rows, &keyring.current, next)?;
    }
    let seed = meta(&mut txn, SUBJECT_SEED)?
        .map(|stored| open_subject_seed(&stored, &[&keyring.current]))
        .transpose()?;
    set_meta(&mut txn, KEY_CHECK, &next.seal(CHECK_TEXT).into_string())?;
    if let Some(seed) = seed {
        set_meta(
            &mut txn,
            SUBJECT_SEED,
            &next.seal(seed.expose()).into_string(),
        )?;
    }
    txn.commit()?;
    finish(keyring, changed)
}

fn finish(keyring: Keyring, changed: u64) -> Result<(MasterKey, u64), StoreError> {
    let key = keyring
        .finish_rotation()
        .map_err(|e| StoreError::MasterKey(e.to_string()))?;
    Ok((key, changed))
}

fn meta(txn: &mut Transaction<'_>, key: &str) -> Result<Option<String>, StoreError> {
    Ok(txn
        .query_opt("SELECT value FROM tidings_meta WHERE key = $1", &[&key])?
        .map(|r| r.get(0)))
}

fn set_meta(txn: &mut Transaction<'_>, key: &str, value: &str) -> Result<(), StoreError> {
    txn.execute(
        "INSERT INTO tidings_meta (key, value) VALUES ($1, $2)
         ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        &[&key, &value],
    )?;
    Ok(())
}

/// Re-seals one table's rows, a batch per round trip through a portal, updating each row by
/// its primary key (read as text, cast back to the column's type so the index serves).
fn reseal_table(
    txn: &mut Transaction<'_>,
    table: &str,
    key: Key,
    rows: Rows,
    from: &MasterKey,
    to: &MasterKey,
) -> Result<u64, StoreError> {
    let columns: Vec<&str> = key.iter().map(|(column, _)| *column).collect();
    let select = format!(
        "SELECT {}, row::text AS row FROM {table} ORDER BY {}",
        columns
            .iter()
            .map(|c| format!("{c}::text AS {c}"))
            .collect::<Vec<_>>()
            .join(", "),
        columns.join(", ")
    );
    let matches = key
        .iter()
        .enumerate()
        .map(|(i, (column, ty))| format!("{column} = ${}::text::{ty}", i + 2))
        .collect::<Vec<_>>()
        .join(" AND ");
    let update = txn.prepare(&format!(
        "UPDATE {table} SET row = $1::text::json WHERE {matches}"
    ))?;
    let portal = txn.bind(&select, &[])?;
    let mut changed = 0;
    loop {
        let batch = txn.query_portal(&portal, BATCH)?;
        if batch.is_empty() {
            return Ok(changed);
        }
        for row in &batch {
            let stored: &str = row.get("row");
            let Some(new) = reseal_row(rows, stored.as_bytes(), Some(from), to) else {
                continue;
            };
            let new = String::from_utf8(new).expect("rows encode as JSON, which is UTF-8");
            let values: Vec<String> = columns.iter().map(|c| row.get::<_, String>(*c)).collect();
            let mut params: Vec<&(dyn postgres::types::ToSql + Sync)> = vec![&new];
            params.extend(
                values
                    .iter()
                    .map(|v| v as &(dyn postgres::types::ToSql + Sync)),
            );
            txn.execute(&update, &params)?;
            changed += 1;
        }
    }
}
