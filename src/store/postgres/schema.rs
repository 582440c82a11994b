//! The schema, in numbered migrations run at start inside one transaction under an advisory
//! lock, so nodes starting together do not race; and the master-key check every node passes
//! before it may read or write sealed values.
//!
//! Tables keep each record as the same JSON row redb keeps (`row`), beside the columns that
//! queries select and order by. Ids sort as bytes (`COLLATE "C"`): they begin with their
//! creation time, so a time window is an id range, as on redb.

use super::connect::{self, Pool};
use crate::domain::access::Workspace;
use crate::domain::ids::WorkspaceId;
use crate::security::crypto::{CryptoError, Keyring, MasterKey, Sealed, new_subject_seed};
use crate::store::seal::{CHECK_TEXT, SUBJECT_SEED, open_subject_seed};
use crate::store::{StoreError, codec};

/// `pg_advisory_xact_lock` key: "tidings" in ASCII, so other applications on the same
/// database are unlikely to share it.
pub(super) const MIGRATION_LOCK: i64 = 0x0074_6964_696e_6773;

/// Each step, applied once, in order; the schema's version is the number applied.
const MIGRATIONS: &[&str] = &[
    // 1: every table.
    r#"
CREATE TABLE tidings_meta (key text PRIMARY KEY, value text NOT NULL);
CREATE TABLE workspaces (id text COLLATE "C" PRIMARY KEY, row json NOT NULL);
CREATE TABLE api_keys (
    id text COLLATE "C" PRIMARY KEY,
    workspace_id text COLLATE "C" NOT NULL,
    hash text NOT NULL UNIQUE,
    row json NOT NULL
);
CREATE TABLE rules (
    id text COLLATE "C" PRIMARY KEY,
    workspace_id text COLLATE "C" NOT NULL,
    row json NOT NULL
);
CREATE TABLE rule_failing_since (rule_id text COLLATE "C" PRIMARY KEY, since bigint NOT NULL);
CREATE TABLE routine_last_fired (rule_id text COLLATE "C" PRIMARY KEY, slot bigint NOT NULL);
CREATE TABLE events (
    id text COLLATE "C" PRIMARY KEY,
    workspace_id text COLLATE "C" NOT NULL,
    row json NOT NULL
);
CREATE TABLE idempotency_keys (
    workspace_id text COLLATE "C" NOT NULL,
    key text NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    expires_at bigint NOT NULL,
    PRIMARY KEY (workspace_id, key)
);
CREATE INDEX idempotency_keys_expiry ON idempotency_keys (expires_at);
CREATE TABLE deliveries (
    id text COLLATE "C" PRIMARY KEY,
    workspace_id text COLLATE "C" NOT NULL,
    rule_id text COLLATE "C" NOT NULL,
    event_id text COLLATE "C" NOT NULL,
    event_type text NOT NULL,
    status text NOT NULL,
    test boolean NOT NULL,
    row json NOT NULL
);
CREATE INDEX deliveries_by_workspace ON deliveries (workspace_id, id);
CREATE INDEX deliveries_by_rule ON deliveries (rule_id, id);
CREATE INDEX deliveries_by_event ON deliveries (event_id);
-- The durable queue: every open delivery, when it is due, and the node that holds it.
CREATE TABLE open_deliveries (
    delivery_id text COLLATE "C" PRIMARY KEY,
    rule_id text COLLATE "C" NOT NULL,
    due_at bigint NOT NULL,
    node text COLLATE "C"
);
CREATE INDEX open_deliveries_by_node ON open_deliveries (node);
CREATE TABLE attempts (
    delivery_id text COLLATE "C" NOT NULL,
    number integer NOT NULL,
    row json NOT NULL,
    PRIMARY KEY (delivery_id, number)
);
CREATE TABLE audit_log (
    id text COLLATE "C" PRIMARY KEY,
    workspace_id text COLLATE "C" NOT NULL,
    row json NOT NULL
);
CREATE INDEX audit_log_by_workspace ON audit_log (workspace_id, id);
CREATE TABLE event_types (
    workspace_id text COLLATE "C" NOT NULL,
    name text COLLATE "C" NOT NULL,
    row json NOT NULL,
    PRIMARY KEY (workspace_id, name)
);
CREATE TABLE users (
    id text COLLATE "C" PRIMARY KEY,
    username text NOT NULL UNIQUE,
    workspace_id text COLLATE "C" NOT NULL,
    role text NOT NULL,
    row json NOT NULL
);
CREATE TABLE sessions (
    hash text PRIMARY KEY,
    user_id text COLLATE "C" NOT NULL,
    expires_at bigint NOT NULL,
    row json NOT NULL
);
CREATE TABLE hourly_outcomes (
    workspace_id text COLLATE "C" NOT NULL,
    hour bigint NOT NULL,
    succeeded bigint NOT NULL,
    failed bigint NOT NULL,
    PRIMARY KEY (workspace_id, hour)
);
-- Every serving node and its last heartbeat (the database's clock, Unix ms).
CREATE TABLE nodes (
    id text COLLATE "C" PRIMARY KEY,
    started_at bigint NOT NULL,
    heartbeat_at bigint NOT NULL
);
"#,
    // 2: what alerts remember about each rule (its failing episode, its last mail).
    r#"
CREATE TABLE rule_alerts (rule_id text COLLATE "C" PRIMARY KEY, row json NOT NULL);
"#,
    // 3: the subject index and the accounting of disclosures (§13). An event's index rows go
    // with it when retention prunes it; disclosures hold no event data and stay.
    r#"
CREATE TABLE subject_events (
    workspace_id text COLLATE "C" NOT NULL,
    subject text COLLATE "C" NOT NULL,
    event_id text COLLATE "C" NOT NULL REFERENCES events (id) ON DELETE CASCADE,
    PRIMARY KEY (workspace_id, subject, event_id)
);
CREATE INDEX subject_events_by_event ON subject_events (event_id);
CREATE TABLE disclosures (
    workspace_id text COLLATE "C" NOT NULL,
    subject text COLLATE "C" NOT NULL,
    delivery_id text COLLATE "C" NOT NULL,
    first_attempt_at bigint NOT NULL,
    row json NOT NULL,
    PRIMARY KEY (workspace_id, subject, delivery_id)
);
"#,
    // 4: failed sign-ins, counted by every node together.
    "
CREATE TABLE sign_in_failures (
    key text PRIMARY KEY,
    failures integer NOT NULL,
    window_start bigint NOT NULL
);
",
    // 5: the ordering key of each queued delivery of an ordered rule (§15), so the head of a
    // key (its oldest open delivery) is one index read. Older deliveries have none.
    r#"
ALTER TABLE open_deliveries ADD COLUMN ordering_key text COLLATE "C";
CREATE INDEX open_deliveries_by_ordering_key ON open_deliveries (rule_id, ordering_key, delivery_id)
    WHERE ordering_key IS NOT NULL;
"#,
    // 6: no two workspaces share a name, ignoring case, even when two nodes create one at
    // once.
    "
CREATE UNIQUE INDEX workspaces_by_name ON workspaces (lower(row->>'name'));
",
    // 7: rule versions and drafts (§14); both go with their rule. Rules stored before get
    // their first version when they are next changed (`domain::rule::versions_to_write`).
    r#"
CREATE TABLE rule_versions (
    rule_id text COLLATE "C" NOT NULL REFERENCES rules (id) ON DELETE CASCADE,
    version integer NOT NULL,
    row json NOT NULL,
    PRIMARY KEY (rule_id, version)
);
CREATE TABLE rule_drafts (
    rule_id text COLLATE "C" PRIMARY KEY REFERENCES rules (id) ON DELETE CASCADE,
    workspace_id text COLLATE "C" NOT NULL,
    row json NOT NULL
);
"#,
    // 8: the dashboard's condition errors: each delivery made `condition_error`, noted by a
    // trigger as the delivery is inserted (however it is inserted: ingest, import), so the
    // count of the last day reads those rows only, never the whole log. Insert-only, so nodes
    // never wait on each other for it. Pruned with the log.
    r#"
CREATE TABLE condition_error_log (
    delivery_id text COLLATE "C" PRIMARY KEY,
    workspace_id text COLLATE "C" NOT NULL,
    rule_id text COLLATE "C" NOT NULL,
    created_at bigint NOT NULL
);
CREATE INDEX condition_error_log_by_workspace ON condition_error_log (workspace_id, created_at);
INSERT INTO condition_error_log
    SELECT id, workspace_id, rule_id, (row->>'created_at')::bigint
    FROM deliveries WHERE status = 'condition_error';
CREATE FUNCTION tidings_log_condition_error() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO condition_error_log (delivery_id, workspace_id, rule_id, created_at)
        VALUES (NEW.id, NEW.workspace_id, NEW.rule_id, (NEW.row->>'created_at')::bigint)
        ON CONFLICT DO NOTHING;
    RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_log_condition_errors AFTER INSERT ON deliveries
    FOR EACH ROW WHEN (NEW.status = 'condition_error')
    EXECUTE FUNCTION tidings_log_condition_error();
"#,
    // 9: the hourly counters one row per node: with one row per hour, every node's writer
    // updated the same row and waited for the other's transaction to commit. Read summed.
    r#"
ALTER TABLE hourly_outcomes ADD COLUMN node text COLLATE "C" NOT NULL DEFAULT '';
ALTER TABLE hourly_outcomes DROP CONSTRAINT hourly_outcomes_pkey;
ALTER TABLE hourly_outcomes ADD PRIMARY KEY (workspace_id, hour, node);
"#,
    // 10: the delivery log's status filter for the rarer statuses (`store::types::
    // status_indexed`; in SQL, `tidings_status_indexed`), so `retrying` behind a million
    // `pending` is a range read. A side table kept by triggers, not an index on
    // `deliveries.status`: an indexed status would make every status change an update
    // PostgreSQL cannot do in place (measured 6 - 9 % slower on h), where this touches
    // only changes to or from these statuses.
    r#"
CREATE FUNCTION tidings_status_indexed(status text) RETURNS boolean
    LANGUAGE sql IMMUTABLE AS $$ SELECT status IN ('retrying', 'failed', 'blocked', 'condition_error') $$;
CREATE TABLE delivery_statuses (
    workspace_id text COLLATE "C" NOT NULL,
    status text NOT NULL,
    delivery_id text COLLATE "C" NOT NULL,
    PRIMARY KEY (workspace_id, status, delivery_id)
);
INSERT INTO delivery_statuses
    SELECT workspace_id, status, id FROM deliveries WHERE tidings_status_indexed(status);
CREATE FUNCTION tidings_track_delivery_status() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP <> 'INSERT' AND tidings_status_indexed(OLD.status) THEN
        DELETE FROM delivery_statuses
            WHERE workspace_id = OLD.workspace_id AND status = OLD.status AND delivery_id = OLD.id;
    END IF;
    IF TG_OP <> 'DELETE' AND tidings_status_indexed(NEW.status) THEN
        INSERT INTO delivery_statuses (workspace_id, status, delivery_id)
            VALUES (NEW.workspace_id, NEW.status, NEW.id) ON CONFLICT DO NOTHING;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER deliveries_track_status_insert AFTER INSERT ON deliveries
    FOR EACH ROW WHEN (tidings_status_indexed(NEW.status))
    EXECUTE FUNCTION tidings_track_delivery_status();
CREATE TRIGGER deliveries_track_status_update AFTER UPDATE OF status ON deliveries
    FOR EACH ROW WHEN (OLD.status IS DISTINCT FROM NEW.status
        AND (tidings_status_indexed(OLD.status) OR tidings_status_indexed(NEW.status)))
    EXECUTE FUNCTION tidings_track_delivery_status();
CREATE TRIGGER deliveries_track_status_delete AFTER DELETE ON deliveries
    FOR EACH ROW WHEN (tidings_status_indexed(OLD.status))
    EXECUTE FUNCTION tidings_track_delivery_status();
"#,
];

const DEFAULT_WORKSPACE_KEY: &str = "default_workspace";
pub(super) const KEY_CHECK: &str = "master_key_check";

/// Brings the schema up to date and returns the Default workspace's id (created with the
/// schema, dated `now`).
pub(super) fn migrate(pool: &Pool, now: i64) -> Result<WorkspaceId, StoreError> {
    let mut conn = connect::get(pool)?;
    let mut txn = conn.transaction()?;
    txn.execute("SELECT pg_advisory_xact_lock($1)", &[&MIGRATION_LOCK])?;
    txn.batch_execute(
        "CREATE TABLE IF NOT EXISTS tidings_schema (version integer PRIMARY KEY, applied_at bigint NOT NULL)",
    )?;
    let applied: i32 = txn
        .query_one("SELECT coalesce(max(version), 0) FROM tidings_schema", &[])?
        .get(0);
    let known = i32::try_from(MIGRATIONS.len()).expect("a handful of migrations");
    if applied > known {
        return Err(StoreError::Corrupt(format!(
            "the database has schema version {applied}, newer than this tidings understands ({known}); run a newer tidings"
        )));
    }
    for (version, sql) in (1..)
        .zip(MIGRATIONS)
        .skip(usize::try_from(applied).unwrap_or(0))
    {
        txn.batch_execute(sql)?;
        txn.execute(
            "INSERT INTO tidings_schema (version, applied_at) VALUES ($1, $2)",
            &[&version, &now],
        )?;
        tracing::info!(version, "PostgreSQL schema migrated");
    }
    let id = if let Some(id) = meta_get(&mut txn, DEFAULT_WORKSPACE_KEY)? {
        WorkspaceId::parse(&id)
            .ok_or_else(|| StoreError::Corrupt(format!("bad default workspace id {id:?}")))?
    } else {
        let workspace = Workspace {
            id: WorkspaceId::generate(now),
            name: "Default".into(),
            created_at: now,
        };
        txn.execute(
            "INSERT INTO workspaces (id, row) VALUES ($1, $2::text::json)",
            &[&workspace.id.as_str(), &codec::encode_str(&workspace)],
        )?;
        txn.execute(
            "INSERT INTO tidings_meta (key, value) VALUES ($1, $2)",
            &[&DEFAULT_WORKSPACE_KEY, &workspace.id.as_str()],
        )?;
        workspace.id
    };
    txn.commit()?;
    Ok(id)
}

fn meta_get(
    client: &mut impl postgres::GenericClient,
    key: &str,
) -> Result<Option<String>, StoreError> {
    Ok(client
        .query_opt("SELECT value FROM tidings_meta WHERE key = $1", &[&key])?
        .map(|row| row.get(0)))
}

/// Loads the keys and checks them against the store: the first node to start records a
/// known text sealed with its key; every later one must open it. A rotation (rotation.rs)
/// that committed but did not rename its new key file is finished here.
pub(super) fn check_master_key(
    pool: &Pool,
    keys: impl FnOnce() -> Result<Keyring, CryptoError>,
) -> Result<MasterKey, StoreError> {
    let mut conn = connect::get(pool)?;
    let check = meta_get(&mut **conn, KEY_CHECK)?;
    let keyring = keys()
        .and_then(|k| k.settle(check.is_some()))
        .map_err(|e| StoreError::MasterKey(e.to_string()))?;
    let opens_with =
        |key: &MasterKey, sealed: &str| Sealed::parse(sealed).is_some_and(|s| key.open(&s).is_ok());
    let key = match &keyring.next {
        None => keyring.current,
        // A rotation committed (rotation.rs) and died before renaming master.key.new.
        Some(next) if check.as_deref().is_some_and(|c| opens_with(next, c)) => keyring
            .finish_rotation()
            .map_err(|e| StoreError::MasterKey(e.to_string()))?,
        Some(_) => {
            return Err(StoreError::MasterKey(
                "a master-key rotation was started and not finished (master.key.new is there, or TIDINGS_NEW_MASTER_KEY is set): with every node stopped, run `tidings rotate-master-key` again to finish it, or unset TIDINGS_NEW_MASTER_KEY".into(),
            ));
        }
    };
    let opens = |sealed: &str| opens_with(&key, sealed);
    let stored = if let Some(check) = check {
        check
    } else {
        // Two nodes starting at once: the first insert wins and both check against it.
        let mine = key.seal(CHECK_TEXT).into_string();
        conn.execute(
            "INSERT INTO tidings_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
            &[&KEY_CHECK, &mine],
        )?;
        meta_get(&mut **conn, KEY_CHECK)?.unwrap_or(mine)
    };
    if !opens(&stored) {
        return Err(StoreError::MasterKey(
            "the master key does not open this PostgreSQL store: its values were sealed with another key; every node of one store needs the same TIDINGS_MASTER_KEY (or the same master.key)".into(),
        ));
    }
    // As the key check: the first node's seed wins and every node opens that one.
    let mine = key.seal(new_subject_seed().expose()).into_string();
    conn.execute(
        "INSERT INTO tidings_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO NOTHING",
        &[&SUBJECT_SEED, &mine],
    )?;
    let stored = meta_get(&mut **conn, SUBJECT_SEED)?.unwrap_or(mine);
    let seed = open_subject_seed(&stored, &[&key])?;
    Ok(key.with_subject_seed(&seed))
}
