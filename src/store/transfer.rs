//! `tidings migrate`: the rows of one backend handed to another as they are stored, sealed
//! values still sealed (nothing is opened on the way). The embedded database exports
//! (redb/export.rs), PostgreSQL imports (postgres/import.rs); each row is its table's key
//! and stored value, and the importer reads the columns it needs from the value.

use std::collections::BTreeMap;

/// One stored row. `row` is the stored JSON text.
pub(in crate::store) enum Row {
    /// A setting the importer carries over (default workspace, key check, subject seed).
    Meta {
        key: String,
        value: String,
    },
    Workspace {
        row: String,
    },
    ApiKey {
        row: String,
    },
    Rule {
        row: String,
    },
    /// A published version of a rule (after its rule).
    RuleVersion {
        rule_id: String,
        version: u32,
        row: String,
    },
    /// A rule's draft (after its rule).
    RuleDraft {
        rule_id: String,
        row: String,
    },
    RuleFailingSince {
        rule_id: String,
        since: i64,
    },
    RuleAlert {
        rule_id: String,
        row: String,
    },
    RoutineLastFired {
        rule_id: String,
        slot: i64,
    },
    Event {
        row: String,
    },
    Idempotency {
        workspace_id: String,
        key: String,
        row: String,
    },
    Delivery {
        row: String,
    },
    /// An open delivery and when it is due (the durable queue).
    Open {
        delivery_id: String,
        due_at: i64,
    },
    Attempt {
        delivery_id: String,
        number: u32,
        row: String,
    },
    Audit {
        row: String,
    },
    EventType {
        workspace_id: String,
        name: String,
        row: String,
    },
    User {
        row: String,
    },
    Session {
        hash: String,
        row: String,
    },
    Hourly {
        workspace_id: String,
        hour: i64,
        succeeded: u64,
        failed: u64,
    },
    SubjectEvent {
        workspace_id: String,
        subject: String,
        event_id: String,
    },
    Disclosure {
        workspace_id: String,
        subject: String,
        delivery_id: String,
        row: String,
    },
}

/// Where an export sends its rows, in an order the importer can follow (a row after what it
/// refers to: events before their subject index, deliveries before their queue entries).
pub(in crate::store) type Sink<'a> = dyn FnMut(Row) -> Result<(), super::StoreError> + 'a;

/// What a migration copied: rows per table, by the importer's table names.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Copied(pub BTreeMap<&'static str, u64>);

impl Copied {
    pub fn total(&self) -> u64 {
        self.0.values().sum()
    }
}

impl std::fmt::Display for Copied {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(t, n)| format!("{t} {n}")).collect();
        write!(f, "{} rows ({})", self.total(), parts.join(", "))
    }
}
