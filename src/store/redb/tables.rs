//! Every redb table, with its key and value. Values are JSON (see codec.rs); names carry a
//! version so a changed layout gets a new table and a migration, never a silent reinterpretation.

use redb::TableDefinition;

/// Key: setting name. Value: setting (schema version, default workspace id, master-key check
/// and rotation state).
pub const META: TableDefinition<&str, &str> = TableDefinition::new("meta-v1");

/// Key: workspace id. Value: `Workspace`.
pub const WORKSPACES: TableDefinition<&str, &[u8]> = TableDefinition::new("workspaces-v1");

/// Key: API key id. Value: `ApiKey` (hash only).
pub const API_KEYS: TableDefinition<&str, &[u8]> = TableDefinition::new("api-keys-v1");

/// Key: SHA-256 hex of an API key. Value: API key id.
pub const API_KEY_HASHES: TableDefinition<&str, &str> = TableDefinition::new("api-key-hashes-v1");

/// Key: rule id. Value: `Rule` (secrets sealed).
pub const RULES: TableDefinition<&str, &[u8]> = TableDefinition::new("rules-v1");

/// Key: event id. Value: `Event`, its `data` sealed (see store/seal/).
pub const EVENTS: TableDefinition<&str, &[u8]> = TableDefinition::new("events-v1");

/// Key: (workspace id, idempotency key). Value: `IdempotencyRecord`.
pub const IDEMPOTENCY: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("idempotency-v1");

/// Key: delivery id (time-sortable). Value: `Delivery`.
pub const DELIVERIES: TableDefinition<&str, &[u8]> = TableDefinition::new("deliveries-v1");

/// Key: (rule id, delivery id). Value: nothing. Index for a rule's delivery history.
pub const DELIVERIES_BY_RULE: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("deliveries-by-rule-v1");

/// Key: (workspace id, status, delivery id). Value: nothing. Index for the delivery log's
/// status filter, so a status that matches little is a range read, not a scan of the log:
/// of `retrying`, `failed`, `blocked` and `condition_error` only (`store::types::status_indexed`).
/// Written with every delivery row (`delivery_rows`).
pub const DELIVERIES_BY_STATUS: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("deliveries-by-status-v1");

/// Key: (event id, delivery id). Value: nothing. Index for an event's deliveries.
pub const DELIVERIES_BY_EVENT: TableDefinition<(&str, &str), ()> =
    TableDefinition::new("deliveries-by-event-v1");

/// Key: (delivery id, attempt number). Value: `Attempt`, its request and response bodies
/// sealed (see store/seal/).
pub const ATTEMPTS: TableDefinition<(&str, u32), &[u8]> = TableDefinition::new("attempts-v1");

/// Key: audit entry id (time-sortable). Value: `AuditEntry`. Append-only.
pub const AUDIT: TableDefinition<&str, &[u8]> = TableDefinition::new("audit-v1");

/// Key: rule id. Value: Unix ms of the first failed attempt since the rule's last success.
/// Present only while a rule is failing; feeds `alerts.disable_after`.
pub const RULE_FAILING_SINCE: TableDefinition<&str, i64> =
    TableDefinition::new("rule-failing-since-v1");

/// Key: rule id. Value: `RuleAlertState` (the failing episode under way, the last alert
/// mail). Present only while there is something to remember.
pub const RULE_ALERTS: TableDefinition<&str, &[u8]> = TableDefinition::new("rule-alerts-v1");

/// Key: delivery id. Value: Unix ms the next attempt is due. The durable queue: every open
/// delivery is here until it succeeds or fails for good, so a restart picks all of them up.
pub const OPEN_DELIVERIES: TableDefinition<&str, i64> = TableDefinition::new("open-deliveries-v1");

/// Key: (rule id, ordering key hash, delivery id). The open deliveries of rules with an
/// `ordering_key` (SPEC §15), so the head of each key (its oldest open delivery) is one
/// range read. Kept with `OPEN_DELIVERIES`.
pub const OPEN_BY_ORDERING_KEY: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("open-by-ordering-key-v1");

/// Key: (workspace id, event type). Value: `StoredType`: the admin's declaration (description,
/// sample) and the latest sample seen at ingest. The event catalog.
pub const EVENT_TYPES: TableDefinition<(&str, &str), &[u8]> =
    TableDefinition::new("event-types-v1");

/// Key: routine (rule) id. Value: Unix ms of the last slot it fired for; written in the same
/// transaction as the firing's event, so a restart never fires a slot twice.
pub const ROUTINE_LAST_FIRED: TableDefinition<&str, i64> =
    TableDefinition::new("routine-last-fired-v1");

/// Key: user id. Value: `User` (Argon2id hash only).
pub const USERS: TableDefinition<&str, &[u8]> = TableDefinition::new("users-v1");

/// Key: username (lower-case). Value: user id. Sign-in looks a person up by name.
pub const USERS_BY_NAME: TableDefinition<&str, &str> = TableDefinition::new("users-by-name-v1");

/// Key: SHA-256 hex of a session cookie value. Value: `Session`.
pub const SESSIONS: TableDefinition<&str, &[u8]> = TableDefinition::new("sessions-v1");

/// Key: (workspace id, Unix hour). Value: (succeeded, failed) deliveries that finished in
/// that hour. Kept by the attempt log as deliveries finish, so the dashboard chart reads at
/// most 168 rows instead of scanning a week of the delivery log.
pub const HOURLY_OUTCOMES: TableDefinition<(&str, i64), (u64, u64)> =
    TableDefinition::new("hourly-outcomes-v1");

/// Key: (workspace id, subject hash, event id). Value: nothing. A subject's events, written
/// in the transaction of the event; what an erasure walks.
pub const SUBJECT_EVENTS: TableDefinition<(&str, &str, &str), ()> =
    TableDefinition::new("subject-events-v1");

/// Key: (workspace id, subject hash, delivery id). Value: `Disclosure`. The accounting of
/// disclosures: written with the attempt that may first have carried a subject's data to a
/// receiver and kept up to date by later ones; neither retention nor erasure removes it
/// (it holds no event data).
pub const DISCLOSURES: TableDefinition<(&str, &str, &str), &[u8]> =
    TableDefinition::new("disclosures-v1");

/// Key: (rule id, version). Value: `RuleVersion` (the rule as it went live, secrets sealed).
/// Written with each publish; removed with the rule.
pub const RULE_VERSIONS: TableDefinition<(&str, u32), &[u8]> =
    TableDefinition::new("rule-versions-v1");

/// Key: rule id. Value: `RuleDraft` (secrets sealed). At most one per rule; removed when it
/// is published or discarded, and with the rule.
pub const RULE_DRAFTS: TableDefinition<&str, &[u8]> = TableDefinition::new("rule-drafts-v1");

/// Key: workspace id. Value: how many of its deliveries `OPEN_DELIVERIES` holds. Kept with
/// the queue (`delivery_rows::set_open`), so the dashboard's "waiting" figure is one read per
/// workspace instead of a walk of a backlog that may hold a million rows.
pub const OPEN_COUNTS: TableDefinition<&str, u64> = TableDefinition::new("open-counts-v1");

/// Key: (workspace id, Unix hour, rule id). Value: (deliveries made `condition_error` in that
/// hour, when the latest was made). Written with each such delivery, so the dashboard's "last
/// 24 hours" reads a handful of rows instead of scanning the log; pruned with it.
pub const CONDITION_ERRORS_BY_HOUR: TableDefinition<(&str, i64, &str), (u64, i64)> =
    TableDefinition::new("condition-errors-by-hour-v1");
