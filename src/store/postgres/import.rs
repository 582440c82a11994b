//! `tidings migrate`: the embedded database's rows (store/transfer.rs) written into an unused
//! PostgreSQL store in one transaction, so a failed copy leaves nothing behind and can simply
//! be run again. Rows go in as stored (sealed values stay sealed); the columns beside them
//! are read from the rows, as the backend's own writes fill them.

use postgres::{Statement, Transaction};
use serde::Deserialize;

use super::connect;
use super::schema;
use crate::domain::access::ApiKey;
use crate::domain::delivery::Delivery;
use crate::domain::subject::Disclosure;
use crate::domain::user::{Session, User};
use crate::store::StoreError;
use crate::store::codec::decode_str;
use crate::store::transfer::{Copied, Row, Sink};

/// Tables whose rows mean the store is in use; the target must have none.
const USED_IF_ANY: [&str; 6] = [
    "rules",
    "events",
    "deliveries",
    "api_keys",
    "users",
    "audit_log",
];

#[derive(Deserialize)]
struct Id {
    id: String,
}

/// The id and workspace of a row, read without opening anything sealed in it.
#[derive(Deserialize)]
struct Placed {
    id: String,
    workspace_id: String,
}

/// A draft's workspace, read without opening anything sealed in it.
#[derive(Deserialize)]
struct DraftPlaced {
    workspace_id: String,
}

#[derive(Deserialize)]
struct Idempotency {
    event_id: String,
    expires_at: i64,
}

/// One prepared insert per table, so a large copy is one round trip per row.
struct Inserts {
    meta: Statement,
    workspace: Statement,
    api_key: Statement,
    rule: Statement,
    rule_version: Statement,
    rule_draft: Statement,
    failing_since: Statement,
    rule_alert: Statement,
    routine: Statement,
    event: Statement,
    idempotency: Statement,
    delivery: Statement,
    open: Statement,
    attempt: Statement,
    audit: Statement,
    event_type: Statement,
    user: Statement,
    session: Statement,
    hourly: Statement,
    subject_event: Statement,
    disclosure: Statement,
}

impl Inserts {
    fn prepare(txn: &mut Transaction<'_>) -> Result<Self, StoreError> {
        Ok(Self {
            meta: txn.prepare(
                "INSERT INTO tidings_meta (key, value) VALUES ($1, $2)
                 ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
            )?,
            workspace: txn.prepare("INSERT INTO workspaces (id, row) VALUES ($1, $2::text::json)")?,
            api_key: txn.prepare(
                "INSERT INTO api_keys (id, workspace_id, hash, row) VALUES ($1, $2, $3, $4::text::json)",
            )?,
            rule: txn.prepare(
                "INSERT INTO rules (id, workspace_id, row) VALUES ($1, $2, $3::text::json)",
            )?,
            rule_version: txn.prepare(
                "INSERT INTO rule_versions (rule_id, version, row) VALUES ($1, $2, $3::text::json)",
            )?,
            rule_draft: txn.prepare(
                "INSERT INTO rule_drafts (rule_id, workspace_id, row) VALUES ($1, $2, $3::text::json)",
            )?,
            failing_since: txn
                .prepare("INSERT INTO rule_failing_since (rule_id, since) VALUES ($1, $2)")?,
            rule_alert: txn
                .prepare("INSERT INTO rule_alerts (rule_id, row) VALUES ($1, $2::text::json)")?,
            routine: txn
                .prepare("INSERT INTO routine_last_fired (rule_id, slot) VALUES ($1, $2)")?,
            event: txn.prepare(
                "INSERT INTO events (id, workspace_id, row) VALUES ($1, $2, $3::text::json)",
            )?,
            idempotency: txn.prepare(
                "INSERT INTO idempotency_keys (workspace_id, key, event_id, expires_at) VALUES ($1, $2, $3, $4)",
            )?,
            delivery: txn.prepare(
                "INSERT INTO deliveries (id, workspace_id, rule_id, event_id, event_type, status, test, row)
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8::text::json)",
            )?,
            // Held by no node: the first node to start claims it.
            open: txn.prepare(
                "INSERT INTO open_deliveries (delivery_id, rule_id, due_at, node, ordering_key)
                 SELECT id, rule_id, $2, NULL, row->>'ordering_key' FROM deliveries WHERE id = $1",
            )?,
            attempt: txn.prepare(
                "INSERT INTO attempts (delivery_id, number, row) VALUES ($1, $2, $3::text::json)",
            )?,
            audit: txn.prepare(
                "INSERT INTO audit_log (id, workspace_id, row) VALUES ($1, $2, $3::text::json)",
            )?,
            event_type: txn.prepare(
                "INSERT INTO event_types (workspace_id, name, row) VALUES ($1, $2, $3::text::json)",
            )?,
            user: txn.prepare(
                "INSERT INTO users (id, username, workspace_id, role, row) VALUES ($1, $2, $3, $4, $5::text::json)",
            )?,
            session: txn.prepare(
                "INSERT INTO sessions (hash, user_id, expires_at, row) VALUES ($1, $2, $3, $4::text::json)",
            )?,
            hourly: txn.prepare(
                "INSERT INTO hourly_outcomes (workspace_id, hour, succeeded, failed) VALUES ($1, $2, $3, $4)",
            )?,
            subject_event: txn.prepare(
                "INSERT INTO subject_events (workspace_id, subject, event_id) VALUES ($1, $2, $3)",
            )?,
            disclosure: txn.prepare(
                "INSERT INTO disclosures (workspace_id, subject, delivery_id, first_attempt_at, row)
                 VALUES ($1, $2, $3, $4, $5::text::json)",
            )?,
        })
    }
}

/// Creates the schema in the database `url` names if needed, checks that the store there is
/// unused, and copies every row `export` produces into it, in one transaction.
pub(in crate::store) fn import(
    url: &str,
    now: i64,
    export: impl FnOnce(&mut Sink<'_>) -> Result<(), StoreError>,
) -> Result<Copied, StoreError> {
    let pool = connect::pool(url)?;
    schema::migrate(&pool, now)?;
    let mut conn = connect::get(&pool)?;
    let mut txn = conn.transaction()?;
    // Two imports at once (or a node starting) wait for each other here.
    txn.execute("LOCK TABLE workspaces, tidings_meta IN EXCLUSIVE MODE", &[])?;
    for table in USED_IF_ANY {
        let used = txn
            .query_opt(&format!("SELECT 1 FROM {table} LIMIT 1"), &[])?
            .is_some();
        if used {
            return Err(StoreError::Conflict(format!(
                "the PostgreSQL database already holds a tidings store in use (its {table} table has rows): migrate copies into an empty database only; create a new one (CREATE DATABASE …) and give its URL"
            )));
        }
    }
    // What a node that started on it by itself made: the source's take their place.
    txn.batch_execute("DELETE FROM workspaces; DELETE FROM tidings_meta; DELETE FROM nodes;")?;
    let inserts = Inserts::prepare(&mut txn)?;
    let mut copied = Copied::default();
    export(&mut |row| {
        let table = insert(&mut txn, &inserts, row)?;
        *copied.0.entry(table).or_default() += 1;
        Ok(())
    })?;
    txn.commit()?;
    Ok(copied)
}

/// Writes one row; returns the name of its table.
// One arm per table, each a line or two of columns: it reads best whole.
#[allow(clippy::too_many_lines)]
fn insert(txn: &mut Transaction<'_>, at: &Inserts, row: Row) -> Result<&'static str, StoreError> {
    Ok(match row {
        Row::Meta { key, value } => {
            txn.execute(&at.meta, &[&key, &value])?;
            "tidings_meta"
        }
        Row::Workspace { row } => {
            let workspace: Id = decode_str("workspaces", &row)?;
            txn.execute(&at.workspace, &[&workspace.id, &row])?;
            "workspaces"
        }
        Row::ApiKey { row } => {
            let key: ApiKey = decode_str("api_keys", &row)?;
            txn.execute(
                &at.api_key,
                &[
                    &key.id.as_str(),
                    &key.workspace_id.as_str(),
                    &key.hash,
                    &row,
                ],
            )?;
            "api_keys"
        }
        Row::Rule { row } => {
            let placed: Placed = decode_str("rules", &row)?;
            txn.execute(&at.rule, &[&placed.id, &placed.workspace_id, &row])?;
            "rules"
        }
        Row::RuleVersion {
            rule_id,
            version,
            row,
        } => {
            let version = i32::try_from(version).map_err(|_| {
                StoreError::Corrupt(format!("rule {rule_id} has version {version}"))
            })?;
            txn.execute(&at.rule_version, &[&rule_id, &version, &row])?;
            "rule_versions"
        }
        Row::RuleDraft { rule_id, row } => {
            let draft: DraftPlaced = decode_str("rule_drafts", &row)?;
            txn.execute(&at.rule_draft, &[&rule_id, &draft.workspace_id, &row])?;
            "rule_drafts"
        }
        Row::RuleFailingSince { rule_id, since } => {
            txn.execute(&at.failing_since, &[&rule_id, &since])?;
            "rule_failing_since"
        }
        Row::RuleAlert { rule_id, row } => {
            txn.execute(&at.rule_alert, &[&rule_id, &row])?;
            "rule_alerts"
        }
        Row::RoutineLastFired { rule_id, slot } => {
            txn.execute(&at.routine, &[&rule_id, &slot])?;
            "routine_last_fired"
        }
        Row::Event { row } => {
            let placed: Placed = decode_str("events", &row)?;
            txn.execute(&at.event, &[&placed.id, &placed.workspace_id, &row])?;
            "events"
        }
        Row::Idempotency {
            workspace_id,
            key,
            row,
        } => {
            let record: Idempotency = decode_str("idempotency", &row)?;
            txn.execute(
                &at.idempotency,
                &[&workspace_id, &key, &record.event_id, &record.expires_at],
            )?;
            "idempotency_keys"
        }
        Row::Delivery { row } => {
            let d: Delivery = decode_str("deliveries", &row)?;
            txn.execute(
                &at.delivery,
                &[
                    &d.id.as_str(),
                    &d.workspace_id.as_str(),
                    &d.rule_id.as_str(),
                    &d.event_id.as_str(),
                    &d.event_type.as_str(),
                    &d.status.as_str(),
                    &d.test,
                    &row,
                ],
            )?;
            "deliveries"
        }
        Row::Open {
            delivery_id,
            due_at,
        } => {
            if txn.execute(&at.open, &[&delivery_id, &due_at])? == 0 {
                return Err(StoreError::Corrupt(format!(
                    "the open delivery {delivery_id} has no delivery row"
                )));
            }
            "open_deliveries"
        }
        Row::Attempt {
            delivery_id,
            number,
            row,
        } => {
            let number = i32::try_from(number).unwrap_or(i32::MAX);
            txn.execute(&at.attempt, &[&delivery_id, &number, &row])?;
            "attempts"
        }
        Row::Audit { row } => {
            let placed: Placed = decode_str("audit", &row)?;
            txn.execute(&at.audit, &[&placed.id, &placed.workspace_id, &row])?;
            "audit_log"
        }
        Row::EventType {
            workspace_id,
            name,
            row,
        } => {
            txn.execute(&at.event_type, &[&workspace_id, &name, &row])?;
            "event_types"
        }
        Row::User { row } => {
            let user: User = decode_str("users", &row)?;
            txn.execute(
                &at.user,
                &[
                    &user.id.as_str(),
                    &user.username,
                    &user.workspace_id.as_str(),
                    &user.role.as_str(),
                    &row,
                ],
            )?;
            "users"
        }
        Row::Session { hash, row } => {
            let session: Session = decode_str("sessions", &row)?;
            txn.execute(
                &at.session,
                &[&hash, &session.user_id.as_str(), &session.expires_at, &row],
            )?;
            "sessions"
        }
        Row::Hourly {
            workspace_id,
            hour,
            succeeded,
            failed,
        } => {
            let count = |n: u64| i64::try_from(n).unwrap_or(i64::MAX);
            txn.execute(
                &at.hourly,
                &[&workspace_id, &hour, &count(succeeded), &count(failed)],
            )?;
            "hourly_outcomes"
        }
        Row::SubjectEvent {
            workspace_id,
            subject,
            event_id,
        } => {
            txn.execute(&at.subject_event, &[&workspace_id, &subject, &event_id])?;
            "subject_events"
        }
        Row::Disclosure {
            workspace_id,
            subject,
            delivery_id,
            row,
        } => {
            let record: Disclosure = decode_str("disclosures", &row)?;
            txn.execute(
                &at.disclosure,
                &[
                    &workspace_id,
                    &subject,
                    &delivery_id,
                    &record.first_attempt_at,
                    &row,
                ],
            )?;
            "disclosures"
        }
    })
}
