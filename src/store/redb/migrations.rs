//! Numbered, idempotent schema steps, recorded in the meta table so each runs once.

use redb::{Database, ReadableTable};

use super::StoreError;
use super::tables::{
    API_KEY_HASHES, API_KEYS, ATTEMPTS, AUDIT, CONDITION_ERRORS_BY_HOUR, DELIVERIES,
    DELIVERIES_BY_EVENT, DELIVERIES_BY_RULE, DISCLOSURES, EVENT_TYPES, EVENTS, HOURLY_OUTCOMES,
    IDEMPOTENCY, META, OPEN_BY_ORDERING_KEY, OPEN_COUNTS, OPEN_DELIVERIES, ROUTINE_LAST_FIRED,
    RULE_ALERTS, RULE_DRAFTS, RULE_FAILING_SINCE, RULE_VERSIONS, RULES, SESSIONS, SUBJECT_EVENTS,
    USERS, USERS_BY_NAME, WORKSPACES,
};
use crate::domain::access::Workspace;
use crate::domain::ids::WorkspaceId;
use crate::store::codec;

pub const SCHEMA_VERSION: u32 = 9;
pub const DEFAULT_WORKSPACE_KEY: &str = "default_workspace";

/// Brings a new or older database up to `SCHEMA_VERSION`; returns the Default workspace id.
/// `now` (the store's clock) dates a Default workspace created here.
pub fn migrate(db: &Database, now: i64) -> Result<WorkspaceId, StoreError> {
    let txn = db.begin_write()?;
    let version: u32 = {
        let meta = txn.open_table(META)?;
        let v = meta.get("schema_version")?.map(|v| v.value().to_owned());
        v.and_then(|v| v.parse().ok()).unwrap_or(0)
    };
    if version > SCHEMA_VERSION {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {version}, newer than this tidings understands ({SCHEMA_VERSION}); run a newer tidings"
        )));
    }
    if version < 1 {
        // Version 1: every table exists and a Default workspace is recorded.
        txn.open_table(WORKSPACES)?;
        txn.open_table(API_KEYS)?;
        txn.open_table(API_KEY_HASHES)?;
        txn.open_table(RULES)?;
        txn.open_table(EVENTS)?;
        txn.open_table(IDEMPOTENCY)?;
        txn.open_table(DELIVERIES)?;
        txn.open_table(DELIVERIES_BY_RULE)?;
        txn.open_table(DELIVERIES_BY_EVENT)?;
        txn.open_table(ATTEMPTS)?;
        txn.open_table(OPEN_DELIVERIES)?;
        txn.open_table(RULE_FAILING_SINCE)?;
        txn.open_table(AUDIT)?;
        let mut meta = txn.open_table(META)?;
        if meta.get(DEFAULT_WORKSPACE_KEY)?.is_none() {
            let workspace = Workspace {
                id: WorkspaceId::generate(now),
                name: "Default".into(),
                created_at: now,
            };
            txn.open_table(WORKSPACES)?
                .insert(workspace.id.as_str(), codec::encode(&workspace).as_slice())?;
            meta.insert(DEFAULT_WORKSPACE_KEY, workspace.id.as_str())?;
        }
        meta.insert("schema_version", "1")?;
    }
    if version < 2 {
        // Version 2: the event catalog and routines' last fired slots.
        txn.open_table(EVENT_TYPES)?;
        txn.open_table(ROUTINE_LAST_FIRED)?;
        txn.open_table(META)?.insert("schema_version", "2")?;
    }
    if version < 3 {
        // Version 3: admin UI users and sessions, and the dashboard's hourly counters.
        txn.open_table(USERS)?;
        txn.open_table(USERS_BY_NAME)?;
        txn.open_table(SESSIONS)?;
        txn.open_table(HOURLY_OUTCOMES)?;
        txn.open_table(META)?.insert("schema_version", "3")?;
    }
    if version < 4 {
        // Version 4: what alerts remember about each rule.
        txn.open_table(RULE_ALERTS)?;
        txn.open_table(META)?.insert("schema_version", "4")?;
    }
    if version < 5 {
        // Version 5: the subject index and the accounting of disclosures (§13).
        txn.open_table(SUBJECT_EVENTS)?;
        txn.open_table(DISCLOSURES)?;
        txn.open_table(META)?.insert("schema_version", "5")?;
    }
    if version < 6 {
        // Version 6: the open deliveries of ordered rules by key (§15). Deliveries stored
        // before it have no ordering key, so there is nothing to fill in.
        txn.open_table(OPEN_BY_ORDERING_KEY)?;
        txn.open_table(META)?.insert("schema_version", "6")?;
    }
    if version < 7 {
        // Version 7: rule versions and drafts (§14). Rules stored before get their first
        // version when they are next changed (`domain::rule::versions_to_write`).
        txn.open_table(RULE_VERSIONS)?;
        txn.open_table(RULE_DRAFTS)?;
        txn.open_table(META)?.insert("schema_version", "7")?;
    }
    if version < 8 {
        // Version 8: the dashboard's open deliveries per workspace and condition errors per
        // hour, counted from the rows already there.
        txn.open_table(OPEN_COUNTS)?;
        txn.open_table(CONDITION_ERRORS_BY_HOUR)?;
        super::stats::fill_counters(&txn, now)?;
        txn.open_table(META)?.insert("schema_version", "8")?;
    }
    if version < 9 {
        // Version 9: the delivery log's status index, filled from the rows already there
        // (a few seconds for a million).
        let rows = super::delivery_rows::fill_status_index(&txn)?;
        tracing::info!(rows, "deliveries indexed by status");
        txn.open_table(META)?.insert("schema_version", "9")?;
    }
    let id = {
        let meta = txn.open_table(META)?;
        let id = meta
            .get(DEFAULT_WORKSPACE_KEY)?
            .map(|v| v.value().to_owned())
            .ok_or_else(|| StoreError::Corrupt("no default workspace recorded".into()))?;
        WorkspaceId::parse(&id)
            .ok_or_else(|| StoreError::Corrupt(format!("bad default workspace id {id:?}")))?
    };
    txn.commit()?;
    Ok(id)
}
