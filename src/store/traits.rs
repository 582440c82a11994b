//! The storage interface: narrow role traits, one per concern, and `Storage`, the umbrella
//! the service layer holds as `Store`. Every backend (redb, PostgreSQL) implements
//! them and passes the same contract suite (contract/).
//!
//! Reads are synchronous (callers on actix threads run them through `app::blocking`). Writes that
//! request handlers make return a `StoreFuture`, so no actix thread waits on a commit; the
//! others block until durable, for callers on plain threads (dispatcher, scheduler, CLI), or
//! are fire-and-forget. No type here belongs to a database.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use serde_json::{Map, Value};

use super::types::{
    ConditionErrorCount, DeliveryFilter, DisclosureFilter, DueDelivery, IngestOutcome, NewEvent,
    ReclaimSink, Slot, StoreError, StoreFuture, UserChange, WriteDone,
};
use crate::domain::access::{ApiKey, Workspace};
use crate::domain::alert::RuleAlertState;
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::catalog::{Declared, StoredType};
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::event::{Event, EventType};
use crate::domain::ids::{ApiKeyId, AuditId, DeliveryId, EventId, RuleId, UserId, WorkspaceId};
use crate::domain::rule::{Rule, RuleDraft, RuleVersion};
use crate::domain::subject::{Disclosure, Erased, SubjectHash, SubjectPath};
use crate::domain::user::{Session, User};

/// Event rules and routines, with the in-memory view every ingest and attempt reads.
pub trait RuleStore {
    /// A rule from the cache, which every rule write on this store refreshes before it returns.
    fn cached_rule(&self, id: &RuleId) -> Option<Arc<Rule>>;

    /// Active rules of a workspace whose trigger matches the event type, by id.
    fn matching_rules(&self, workspace: &WorkspaceId, event_type: &EventType) -> Vec<Arc<Rule>>;

    /// Active routines (rules with a schedule trigger), from the cache.
    fn routines(&self) -> Vec<Arc<Rule>>;

    /// Every cached rule with a `log.retention_days` of its own, and those days (from cache).
    fn rules_with_retention(&self) -> Vec<(RuleId, u32)>;

    /// A workspace's rule; another workspace's is `NotFound`.
    fn rule(&self, workspace: &WorkspaceId, id: &RuleId) -> Result<Rule, StoreError>;

    fn rules(&self, workspace: &WorkspaceId) -> Result<Vec<Rule>, StoreError>;

    /// Inserts a new rule or replaces one, with its audit entry. `expect_existing` guards an
    /// update against a concurrent delete (`NotFound`); without it an existing id is a
    /// `Conflict`.
    fn save_rule(&self, rule: Rule, expect_existing: bool, audit: AuditEntry) -> StoreFuture<Rule>;

    /// Removes a workspace's rule with its audit entry; returns what was removed.
    fn delete_rule(
        &self,
        workspace: WorkspaceId,
        id: RuleId,
        audit: AuditEntry,
    ) -> StoreFuture<Rule>;

    /// Turns a rule off on tidings' own account (a 410 answer), recording why; an unknown
    /// rule is no error.
    fn deactivate_rule(&self, id: &RuleId, reason: String) -> Result<(), StoreError>;

    /// Since when each failing rule has failed (first failed attempt after its last success).
    fn rules_failing_since(&self) -> Result<HashMap<RuleId, i64>, StoreError>;

    /// Starts (`Some`) or clears (`None`) a rule's failing clock; fire-and-forget.
    fn set_rule_failing_since(&self, id: &RuleId, since: Option<i64>);

    /// What alerts remember about each rule (its failing episode, its last mail).
    fn rule_alert_states(&self) -> Result<HashMap<RuleId, RuleAlertState>, StoreError>;

    /// Stores (`Some`) or forgets (`None`) a rule's alert state, blocking until durable: an
    /// alert that went out must not go out again after a restart.
    fn set_rule_alert_state(
        &self,
        id: &RuleId,
        state: Option<RuleAlertState>,
    ) -> Result<(), StoreError>;
}

/// Rule versions and drafts (SPEC §14). Versions and the draft go with their rule when it
/// is deleted.
pub trait RuleVersionStore {
    /// A rule's published versions, oldest first (none for an unknown rule).
    fn rule_versions(&self, id: &RuleId) -> Result<Vec<RuleVersion>, StoreError>;

    /// A rule's draft, if it has one.
    fn rule_draft(&self, id: &RuleId) -> Result<Option<RuleDraft>, StoreError>;

    /// Stores a draft (replacing any other) with its audit entry; `NotFound` when its rule
    /// is not there in the draft's workspace.
    fn save_rule_draft(&self, draft: RuleDraft, audit: AuditEntry) -> StoreFuture<RuleDraft>;

    /// Discards a rule's draft with its audit entry; `NotFound` when it has none.
    fn delete_rule_draft(
        &self,
        workspace: WorkspaceId,
        id: RuleId,
        audit: AuditEntry,
    ) -> StoreFuture<RuleDraft>;

    /// Makes `publish.rule` live as its next version in one step: sets its `version`, writes
    /// the rule, its version row (see `domain::rule::versions_to_write`) and the audit entry,
    /// and, publishing a draft, removes that draft. `expect_existing` is as for `save_rule`;
    /// a draft that is gone or was saved again since (`from_draft` is its `saved_at`) is a
    /// `Conflict`, and nothing changes. Returns the version written.
    fn publish_rule(&self, publish: Publish, audit: AuditEntry) -> StoreFuture<RuleVersion>;
}

/// A rule going live as its next version (`RuleVersionStore::publish_rule`).
#[derive(Debug, Clone)]
pub struct Publish {
    pub rule: Rule,
    pub by: Actor,
    pub expect_existing: bool,
    /// The `saved_at` of the draft this publishes, which goes with it.
    pub from_draft: Option<i64>,
}

/// Events, their deliveries, and the durable queue of open deliveries.
pub trait EventStore {
    /// Stores an event with its deliveries and queue entries in one durable step, unless its
    /// idempotency key was seen within `IDEMPOTENCY_TTL_MS` of its `received_at`, or its
    /// routine slot is not later than the last one recorded (then `Duplicate`).
    fn ingest(&self, new: NewEvent) -> StoreFuture<IngestOutcome>;

    /// `ingest` for a caller on a plain thread (the routine scheduler).
    fn ingest_blocking(&self, new: NewEvent) -> Result<IngestOutcome, StoreError>;

    /// Writes a finished test delivery (event, delivery and its one attempt) for the log.
    fn insert_test_delivery(
        &self,
        event: Event,
        delivery: Delivery,
        attempt: Attempt,
    ) -> StoreFuture<()>;

    /// A workspace's event; another workspace's is `NotFound`.
    fn event(&self, workspace: &WorkspaceId, id: &EventId) -> Result<Event, StoreError>;

    /// An event's deliveries, by delivery id.
    fn event_deliveries(&self, id: &EventId) -> Result<Vec<Delivery>, StoreError>;

    /// A workspace's delivery; another workspace's is `NotFound`.
    fn delivery(&self, workspace: &WorkspaceId, id: &DeliveryId) -> Result<Delivery, StoreError>;

    /// Newest first. Returns the page and, if more may follow, the cursor (last id examined),
    /// which goes in `filter.before` for the next page.
    fn list_deliveries(
        &self,
        workspace: &WorkspaceId,
        filter: &DeliveryFilter,
    ) -> Result<(Vec<Delivery>, Option<DeliveryId>), StoreError>;

    /// Every open delivery this node may send and when it is due, for the dispatcher to
    /// pick up at start. On a store shared by several nodes: those this node holds, claimed
    /// for it, not those another live node holds.
    fn open_deliveries(&self) -> Result<Vec<DueDelivery>, StoreError>;

    /// From now on, open deliveries taken over from a node that stopped renewing its lease
    /// go to `sink`. A one-node backend never calls it.
    fn on_reclaimed(&self, sink: ReclaimSink);

    /// Takes one of `rule`'s `limit` concurrency slots for an attempt about to start, shared
    /// by every node of the store (SPEC §10: `max_concurrency` holds for the nodes
    /// together); `Slot::Local` where one process owns the store. Never blocks for long.
    fn concurrency_slot(&self, rule: &RuleId, limit: u32) -> Slot;

    /// The oldest open delivery of `rule` whose ordering key (hash) is `key` (SPEC §15): the
    /// one that may be sent; the others of that key wait for it. Every node sees the same.
    fn ordering_head(&self, rule: &RuleId, key: &str) -> Result<Option<DeliveryId>, StoreError>;

    /// A delivery and its event, read together for an attempt. The event is shared: the
    /// attempts of its fan-out may get the same one.
    fn delivery_with_event(
        &self,
        id: &DeliveryId,
    ) -> Result<Option<(Delivery, Arc<Event>)>, StoreError>;

    /// Closes an open delivery without an attempt (its rule was deleted).
    fn close_delivery(&self, id: &DeliveryId, status: DeliveryStatus) -> Result<(), StoreError>;

    /// Queues one more attempt, due now, for a finished delivery (a manual re-send); an open
    /// one is a `Conflict`.
    fn redeliver(&self, workspace: WorkspaceId, id: DeliveryId) -> StoreFuture<Delivery>;

    /// Re-sends every failed (non-test) delivery of a rule created in `[since, until]`.
    fn redeliver_failed(
        &self,
        workspace: WorkspaceId,
        rule_id: RuleId,
        since: i64,
        until: i64,
    ) -> StoreFuture<Vec<Delivery>>;
}

/// The attempt log.
pub trait AttemptStore {
    /// Logs an attempt and stores the delivery as it stands after it (leaving the open queue
    /// when it is finished, and counting it in the hourly outcomes); `done` runs once both are
    /// committed. The caller owns the open delivery while attempting it, so it passes the
    /// updated record. The write may be lazy: a crash before the next sync repeats the
    /// attempt rather than losing it.
    fn record_attempt(&self, delivery: &Delivery, attempt: &Attempt, done: WriteDone);

    /// A delivery's attempts, by number.
    fn attempts(&self, id: &DeliveryId) -> Result<Vec<Attempt>, StoreError>;
}

/// Workspaces and API keys.
pub trait KeyStore {
    /// The workspace everything belongs to until there are more.
    fn default_workspace(&self) -> &WorkspaceId;

    fn workspace(&self, id: &WorkspaceId) -> Result<Workspace, StoreError>;

    /// A workspace's name (what payloads and conditions show), from memory after first use.
    fn workspace_name(&self, id: &WorkspaceId) -> Result<String, StoreError>;

    /// Every workspace, oldest first.
    fn workspaces(&self) -> Result<Vec<Workspace>, StoreError>;

    /// Adds a workspace with its audit entry; a name another workspace has (ignoring case)
    /// is a `Conflict`.
    fn insert_workspace(&self, workspace: Workspace, audit: AuditEntry) -> StoreFuture<Workspace>;

    /// The key a bearer token names, if any; answered from memory.
    fn api_key_for_token(&self, token: &str) -> Option<ApiKey>;

    fn api_keys(&self, workspace: &WorkspaceId) -> Result<Vec<ApiKey>, StoreError>;

    /// Stores a new key and its audit entry together, blocking until durable.
    fn insert_api_key(&self, key: ApiKey, audit: AuditEntry) -> Result<(), StoreError>;

    fn insert_api_key_async(&self, key: ApiKey, audit: AuditEntry) -> StoreFuture<()>;

    /// Removes a workspace's key (another workspace's is `NotFound`) with its audit entry.
    fn delete_api_key(
        &self,
        workspace: WorkspaceId,
        id: ApiKeyId,
        audit: AuditEntry,
    ) -> StoreFuture<()>;
}

/// Admin UI users and their sessions.
pub trait UserStore {
    /// How many users exist; zero means the first-run setup link is live.
    fn user_count(&self) -> Result<u64, StoreError>;

    fn users(&self, workspace: &WorkspaceId) -> Result<Vec<User>, StoreError>;

    fn user(&self, id: &UserId) -> Result<Option<User>, StoreError>;

    fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError>;

    /// Adds a user; a taken username is a `Conflict`. With `only_if_none`, refuses unless no
    /// user exists yet, checked in the same transaction (first-run setup cannot run twice).
    fn insert_user(
        &self,
        user: User,
        only_if_none: bool,
        audit: AuditEntry,
    ) -> Result<User, StoreError>;

    /// Removes a user and every session they have; refuses to leave a workspace with no
    /// admin (a group admin is an admin of every workspace).
    fn delete_user(
        &self,
        workspace: WorkspaceId,
        id: UserId,
        audit: AuditEntry,
    ) -> Result<User, StoreError>;

    /// Changes a user's role or password and ends their sessions (an alert-mail address
    /// change keeps them); refuses a role or membership change that leaves a workspace with
    /// no admin.
    fn update_user(
        &self,
        workspace: WorkspaceId,
        id: UserId,
        change: UserChange,
        audit: AuditEntry,
    ) -> Result<User, StoreError>;

    /// Stores a new session under its cookie value's hash, dropping expired ones.
    fn create_session(
        &self,
        cookie: &str,
        session: Session,
        audit: AuditEntry,
    ) -> Result<(), StoreError>;

    /// The live session a cookie names, if it has not expired (by the store's clock).
    fn session(&self, cookie: &str) -> Result<Option<Session>, StoreError>;

    fn delete_session(&self, cookie: &str, audit: Option<AuditEntry>) -> Result<(), StoreError>;

    /// The failed sign-ins counted for `key` (a username and the address they came from) in
    /// its window open at `now` (`window_ms` long), and when that window began; `None` if
    /// none is open. Every node of a store counts together.
    fn sign_in_failures(
        &self,
        key: &str,
        now: i64,
        window_ms: i64,
    ) -> Result<Option<(u32, i64)>, StoreError>;

    /// Counts a failed sign-in for `key`, opening a window at `now` if none is open.
    fn note_sign_in_failure(&self, key: &str, now: i64, window_ms: i64) -> Result<(), StoreError>;

    /// Forgets `key`'s failures (it has signed in).
    fn clear_sign_in_failures(&self, key: &str) -> Result<(), StoreError>;
}

/// The append-only audit log.
pub trait AuditStore {
    /// Records an action that changes nothing else (such as viewing a secret).
    fn audit(&self, entry: AuditEntry) -> StoreFuture<()>;

    /// `audit`, blocking until durable (a sign-in failure, on a plain thread).
    fn audit_now(&self, entry: AuditEntry) -> Result<(), StoreError>;

    /// A workspace's entries, newest first, before the cursor; returns the page and the next
    /// cursor (None once the log is exhausted).
    fn audit_log(
        &self,
        workspace: &WorkspaceId,
        before: Option<&AuditId>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<AuditId>), StoreError>;
}

/// The event catalog and routines' last fired slots.
pub trait CatalogStore {
    /// Every stored catalog row of a workspace, by type name.
    fn event_types(
        &self,
        workspace: &WorkspaceId,
    ) -> Result<Vec<(EventType, StoredType)>, StoreError>;

    fn event_type(
        &self,
        workspace: &WorkspaceId,
        name: &EventType,
    ) -> Result<Option<StoredType>, StoreError>;

    /// The type's declared `subject_path`, from memory: every ingest posted without a
    /// subject asks. Kept true by `declare_event_type`, and on a shared store across nodes
    /// within a second.
    fn subject_path(&self, workspace: &WorkspaceId, name: &EventType) -> Option<SubjectPath>;

    /// Declares (or re-declares) a type with its description and sample; returns the row.
    fn declare_event_type(
        &self,
        workspace: WorkspaceId,
        name: EventType,
        declared: Declared,
        audit: AuditEntry,
    ) -> StoreFuture<StoredType>;

    /// Records that an event of this type arrived at `now`, keeping its data as the type's
    /// latest sample (only its key structure when `keep_values` is false). Fire-and-forget
    /// and throttled: a lost or skipped update only leaves an older sample.
    fn note_event_seen(
        &self,
        workspace: &WorkspaceId,
        name: &EventType,
        data: &Map<String, Value>,
        keep_values: bool,
        now: i64,
    );

    /// Records why an event of this type, posted without a subject, got none from the
    /// type's declared `subject_path` (shown in the catalog until the type is re-declared).
    /// Fire-and-forget and throttled like `note_event_seen`.
    fn note_subject_missing(
        &self,
        workspace: &WorkspaceId,
        name: &EventType,
        reason: String,
        now: i64,
    );

    /// The last slot each routine fired for (recorded by `ingest`).
    fn routine_last_fired(&self) -> Result<HashMap<RuleId, i64>, StoreError>;
}

/// The dashboard's counters.
pub trait StatsStore {
    /// (hour start in Unix ms, succeeded, failed) for each of the `hours` hours up to and
    /// including the one holding `now_ms`, oldest first; hours without traffic are zeros.
    fn hourly_outcomes(
        &self,
        workspace: &WorkspaceId,
        now_ms: i64,
        hours: i64,
    ) -> Result<Vec<(i64, u64, u64)>, StoreError>;

    /// How many of a workspace's deliveries are waiting for an attempt. Kept as a count, not
    /// a scan, so the dashboard stays quick with a large backlog.
    fn open_count_in(&self, workspace: &WorkspaceId) -> Result<u64, StoreError>;

    /// A workspace's deliveries made `condition_error` from the start of the hour holding
    /// `since_ms` on, per rule, in no particular order. Counted when a delivery is made, so
    /// a later manual re-send of one does not take it back, and pruning the log does not
    /// either.
    fn condition_errors_since(
        &self,
        workspace: &WorkspaceId,
        since_ms: i64,
    ) -> Result<Vec<ConditionErrorCount>, StoreError>;
}

/// The people events are about (§13): who their data went to, and erasure. A backend keeps
/// the subject index (subject hash → events) in the event's own transaction and a
/// `Disclosure` for each delivery of a subject's event from the first attempt that may have
/// reached the receiver (a response or a timeout), updated by later attempts
/// (`AttemptStore::record_attempt`); those records outlive retention and erasure.
pub trait SubjectStore {
    /// A workspace's disclosures of a subject, by delivery id (oldest first), those whose
    /// first attempt lies in `[since, until]`, after the cursor. Returns the page and the
    /// cursor of the next one (the last delivery id returned) if more may follow.
    fn disclosures(
        &self,
        workspace: &WorkspaceId,
        subject: &SubjectHash,
        filter: &DisclosureFilter,
    ) -> Result<(Vec<Disclosure>, Option<DeliveryId>), StoreError>;

    /// Destroys a workspace's events about a subject, in one durable write with its audit
    /// entry: each event's data is emptied and it reads `erased`; every request and response
    /// body logged for its deliveries is removed; its open deliveries are closed `failed`
    /// without being sent, and no delivery of it is re-sent or logged with a body again.
    /// Then the store makes sure the destroyed bytes are gone from its files (redb: a
    /// compaction). Events erased before are not counted again; an unknown subject erases
    /// nothing and is no error. Disclosure records stay.
    fn erase_subject(
        &self,
        workspace: WorkspaceId,
        subject: SubjectHash,
        audit: AuditEntry,
    ) -> StoreFuture<Erased>;
}

/// Health, retention, backup and the end of the store's life.
pub trait MaintenanceStore {
    /// A cheap read that proves the database answers and that the last write committed.
    fn ping(&self) -> Result<(), StoreError>;

    /// How many deliveries are waiting for an attempt.
    fn open_count(&self) -> Result<u64, StoreError>;

    /// Deletes finished deliveries (with their attempts) and events created before
    /// `cutoff_ms`, and expired idempotency keys. Open deliveries, and the events they need,
    /// are kept. Returns (deliveries, events) removed.
    fn prune_before(&self, cutoff_ms: i64) -> Result<(usize, usize), StoreError>;

    /// Deletes one rule's finished deliveries (with their attempts) created before
    /// `cutoff_ms`, and each of their events that has no delivery left (a rule's shorter
    /// `log.retention_days`). Returns (deliveries, events) removed.
    fn prune_rule_before(
        &self,
        rule: &RuleId,
        cutoff_ms: i64,
    ) -> Result<(usize, usize), StoreError>;

    /// Writes a consistent snapshot of the whole store to `path` (which must not exist) and
    /// returns the number of rows in it; `Unsupported` (writing nothing) from a backend whose
    /// database has backups of its own (PostgreSQL: `pg_dump`).
    fn backup_to(&self, path: &Path) -> Result<u64, StoreError>;

    /// Finishes every write already queued, syncs, and stops the writer (joining its
    /// thread). Harmless twice; later writes get `StoreError::Closed`.
    fn shutdown(&self);
}

/// Everything the service layer needs from storage.
pub trait Storage:
    RuleStore
    + RuleVersionStore
    + EventStore
    + AttemptStore
    + KeyStore
    + UserStore
    + AuditStore
    + CatalogStore
    + StatsStore
    + SubjectStore
    + MaintenanceStore
    + Send
    + Sync
{
}

impl<T> Storage for T where
    T: RuleStore
        + RuleVersionStore
        + EventStore
        + AttemptStore
        + KeyStore
        + UserStore
        + AuditStore
        + CatalogStore
        + StatsStore
        + SubjectStore
        + MaintenanceStore
        + Send
        + Sync
{
}
