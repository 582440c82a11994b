//! The embedded database's rows for `tidings migrate` (store/transfer.rs), read from one
//! snapshot, as stored. Indexes the importer rebuilds from the rows themselves (API key
//! hashes, users by name, deliveries by rule, event and status) are not exported.

use redb::{ReadTransaction, ReadableTable, TableDefinition};

use super::tables::{
    API_KEYS, ATTEMPTS, AUDIT, DELIVERIES, DISCLOSURES, EVENT_TYPES, EVENTS, HOURLY_OUTCOMES,
    IDEMPOTENCY, META, OPEN_DELIVERIES, ROUTINE_LAST_FIRED, RULE_ALERTS, RULE_DRAFTS,
    RULE_FAILING_SINCE, RULE_VERSIONS, RULES, SESSIONS, SUBJECT_EVENTS, USERS, WORKSPACES,
};
use crate::store::StoreError;
use crate::store::transfer::{Row, Sink};

/// Settings that belong to the data, not to this file: the importer carries them over.
const CARRIED_META: [&str; 3] = ["default_workspace", "master_key_check", "subject_key_seed"];

/// A stored value as the JSON text it is.
fn text(table: &str, bytes: &[u8]) -> Result<String, StoreError> {
    String::from_utf8(bytes.to_vec())
        .map_err(|_| StoreError::Corrupt(format!("a row of {table} is not UTF-8 JSON")))
}

/// Every row of a table keyed by one id, as `make(row text)`.
fn by_id(
    txn: &ReadTransaction,
    def: TableDefinition<&str, &[u8]>,
    name: &str,
    sink: &mut Sink<'_>,
    make: fn(String) -> Row,
) -> Result<(), StoreError> {
    for entry in txn.open_table(def)?.iter()? {
        let (_, v) = entry?;
        sink(make(text(name, v.value())?))?;
    }
    Ok(())
}

/// Sends every row of the snapshot to `sink`, referenced rows first.
pub(super) fn export(txn: &ReadTransaction, sink: &mut Sink<'_>) -> Result<(), StoreError> {
    export_settings(txn, sink)?;
    export_history(txn, sink)
}

/// What admins set up: settings, workspaces, keys, rules and what tidings keeps per rule.
fn export_settings(txn: &ReadTransaction, sink: &mut Sink<'_>) -> Result<(), StoreError> {
    let meta = txn.open_table(META)?;
    for key in CARRIED_META {
        if let Some(value) = meta.get(key)? {
            sink(Row::Meta {
                key: key.to_owned(),
                value: value.value().to_owned(),
            })?;
        }
    }
    by_id(txn, WORKSPACES, "workspaces", sink, |row| Row::Workspace {
        row,
    })?;
    by_id(txn, API_KEYS, "api_keys", sink, |row| Row::ApiKey { row })?;
    by_id(txn, RULES, "rules", sink, |row| Row::Rule { row })?;
    for entry in txn.open_table(RULE_VERSIONS)?.iter()? {
        let (k, v) = entry?;
        let (rule_id, version) = k.value();
        sink(Row::RuleVersion {
            rule_id: rule_id.to_owned(),
            version,
            row: text("rule_versions", v.value())?,
        })?;
    }
    for entry in txn.open_table(RULE_DRAFTS)?.iter()? {
        let (k, v) = entry?;
        sink(Row::RuleDraft {
            rule_id: k.value().to_owned(),
            row: text("rule_drafts", v.value())?,
        })?;
    }
    for entry in txn.open_table(RULE_FAILING_SINCE)?.iter()? {
        let (k, v) = entry?;
        sink(Row::RuleFailingSince {
            rule_id: k.value().to_owned(),
            since: v.value(),
        })?;
    }
    for entry in txn.open_table(RULE_ALERTS)?.iter()? {
        let (k, v) = entry?;
        sink(Row::RuleAlert {
            rule_id: k.value().to_owned(),
            row: text("rule_alerts", v.value())?,
        })?;
    }
    for entry in txn.open_table(ROUTINE_LAST_FIRED)?.iter()? {
        let (k, v) = entry?;
        sink(Row::RoutineLastFired {
            rule_id: k.value().to_owned(),
            slot: v.value(),
        })?;
    }
    by_id(txn, USERS, "users", sink, |row| Row::User { row })?;
    for entry in txn.open_table(SESSIONS)?.iter()? {
        let (k, v) = entry?;
        sink(Row::Session {
            hash: k.value().to_owned(),
            row: text("sessions", v.value())?,
        })?;
    }
    Ok(())
}

/// What happened: events, deliveries, attempts, the audit log, the catalog, the counters and
/// the subjects' records.
fn export_history(txn: &ReadTransaction, sink: &mut Sink<'_>) -> Result<(), StoreError> {
    by_id(txn, EVENTS, "events", sink, |row| Row::Event { row })?;
    for entry in txn.open_table(IDEMPOTENCY)?.iter()? {
        let (k, v) = entry?;
        let (workspace_id, key) = k.value();
        sink(Row::Idempotency {
            workspace_id: workspace_id.to_owned(),
            key: key.to_owned(),
            row: text("idempotency", v.value())?,
        })?;
    }
    by_id(txn, DELIVERIES, "deliveries", sink, |row| Row::Delivery {
        row,
    })?;
    for entry in txn.open_table(OPEN_DELIVERIES)?.iter()? {
        let (k, v) = entry?;
        sink(Row::Open {
            delivery_id: k.value().to_owned(),
            due_at: v.value(),
        })?;
    }
    for entry in txn.open_table(ATTEMPTS)?.iter()? {
        let (k, v) = entry?;
        let (delivery_id, number) = k.value();
        sink(Row::Attempt {
            delivery_id: delivery_id.to_owned(),
            number,
            row: text("attempts", v.value())?,
        })?;
    }
    by_id(txn, AUDIT, "audit", sink, |row| Row::Audit { row })?;
    for entry in txn.open_table(EVENT_TYPES)?.iter()? {
        let (k, v) = entry?;
        let (workspace_id, name) = k.value();
        sink(Row::EventType {
            workspace_id: workspace_id.to_owned(),
            name: name.to_owned(),
            row: text("event_types", v.value())?,
        })?;
    }
    for entry in txn.open_table(HOURLY_OUTCOMES)?.iter()? {
        let (k, v) = entry?;
        let (workspace_id, hour) = k.value();
        let (succeeded, failed) = v.value();
        sink(Row::Hourly {
            workspace_id: workspace_id.to_owned(),
            hour,
            succeeded,
            failed,
        })?;
    }
    for entry in txn.open_table(SUBJECT_EVENTS)?.iter()? {
        let (k, _) = entry?;
        let (workspace_id, subject, event_id) = k.value();
        sink(Row::SubjectEvent {
            workspace_id: workspace_id.to_owned(),
            subject: subject.to_owned(),
            event_id: event_id.to_owned(),
        })?;
    }
    for entry in txn.open_table(DISCLOSURES)?.iter()? {
        let (k, v) = entry?;
        let (workspace_id, subject, delivery_id) = k.value();
        sink(Row::Disclosure {
            workspace_id: workspace_id.to_owned(),
            subject: subject.to_owned(),
            delivery_id: delivery_id.to_owned(),
            row: text("disclosures", v.value())?,
        })?;
    }
    Ok(())
}
