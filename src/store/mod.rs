//! The only code that touches redb. `Store` offers typed reads (concurrent, from any thread)
//! and writes that go through the group-commit writer. It knows nothing about HTTP.

pub mod backup;
mod catalog;
mod codec;
mod migrations;
mod sealing;
mod stats;
mod tables;
mod users;
mod writer;

pub use users::UserChange;

use std::collections::HashMap;
use std::path::Path;
use std::sync::{Arc, RwLock};

use redb::{
    Database, ReadTransaction, ReadableDatabase, ReadableTable, TableDefinition, TableHandle,
    WriteTransaction,
};
use serde::{Deserialize, Serialize};

use crate::domain::access::{ApiKey, Workspace};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::event::{Event, EventType};
use crate::domain::ids::{ApiKeyId, AuditId, DeliveryId, EventId, RuleId, WorkspaceId};
use crate::domain::rule::Rule;
use crate::domain::time::now_ms;
use crate::security::crypto::{CryptoError, Keyring, MasterKey, api_key_hash};
use sealing::{Rotation, RowSeal};
use tables::{
    API_KEY_HASHES, API_KEYS, ATTEMPTS, AUDIT, DELIVERIES, DELIVERIES_BY_EVENT, DELIVERIES_BY_RULE,
    EVENTS, IDEMPOTENCY, OPEN_DELIVERIES, ROUTINE_LAST_FIRED, RULE_FAILING_SINCE, RULES,
    WORKSPACES,
};
use writer::Writer;

#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    #[error("no {what} with id {id:?}")]
    NotFound { what: &'static str, id: String },
    #[error("{0}")]
    Conflict(String),
    #[error(
        "the database {0} is in use by another tidings process (is `tidings serve` running?); stop it, or use the API or admin UI instead"
    )]
    InUse(String),
    #[error("storage error: {0}")]
    Storage(String),
    #[error("stored data is damaged: {0}")]
    Corrupt(String),
    #[error("master key: {0}")]
    MasterKey(String),
    #[error("the store is shut down")]
    Closed,
}

macro_rules! storage_error {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                Self::Storage(e.to_string())
            }
        }
    )*};
}
storage_error!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError
);

fn not_found(what: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_owned(),
    }
}

/// redb's page cache. Its default (1 GiB) would let a years-old delivery log grow the
/// process to that size on a small clinic server; the hot data (open deliveries, recent
/// log pages, rules) fits well within this.
const CACHE_BYTES: usize = 32 * 1024 * 1024;

/// How long a producer's idempotency key is remembered.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;
/// Most rows one delivery-list page may examine, so a filter that matches little cannot turn
/// one request into a scan of the whole log; the cursor then resumes where the scan stopped.
const MAX_SCAN: usize = 20_000;

#[derive(Debug, Serialize, Deserialize)]
struct IdempotencyRecord {
    event_id: EventId,
    expires_at: i64,
}

/// An accepted event and the deliveries it owes, written together.
#[derive(Debug)]
pub struct NewEvent {
    pub event: Event,
    pub deliveries: Vec<Delivery>,
    pub idempotency_key: Option<String>,
    /// For a routine's firing: the routine and the slot fired, recorded with the event so a
    /// slot is never fired twice (a repeat of a recorded slot is a duplicate).
    pub routine_slot: Option<(RuleId, i64)>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IngestOutcome {
    Created,
    Duplicate(EventId),
}

/// A delivery the dispatcher owes a request, as loaded at start-up or after a re-send.
#[derive(Debug, Clone)]
pub struct DueDelivery {
    pub id: DeliveryId,
    pub rule_id: RuleId,
    pub due_at: i64,
}

#[derive(Debug, Default, Clone)]
pub struct DeliveryFilter {
    pub rule_id: Option<RuleId>,
    pub status: Option<DeliveryStatus>,
    pub event_type: Option<EventType>,
    pub since: Option<i64>,
    pub until: Option<i64>,
    /// Exclusive upper bound: the last id of the previous page.
    pub before: Option<DeliveryId>,
    pub limit: usize,
}

/// Active rules, in memory: matched on every ingest and read on every attempt.
#[derive(Debug, Default)]
struct RuleCache {
    by_id: HashMap<RuleId, Arc<Rule>>,
}

#[derive(Clone)]
pub struct Store {
    db: Arc<Database>,
    writer: Writer,
    rules: Arc<RwLock<Arc<RuleCache>>>,
    /// API keys by hash: every request authenticates without touching the disk.
    keys: Arc<RwLock<HashMap<String, ApiKey>>>,
    default_workspace: WorkspaceId,
    /// Workspace names, read on every delivery and conditioned ingest; workspaces are only
    /// written by migrations, so a name never goes stale.
    workspace_names: Arc<RwLock<HashMap<WorkspaceId, String>>>,
    /// When each event type's seen sample was last written (see catalog.rs).
    seen_types: Arc<std::sync::Mutex<HashMap<(WorkspaceId, EventType), i64>>>,
    /// Seals event payloads and logged bodies as rows are encoded, opens them when decoded.
    seal: RowSeal,
}

impl Store {
    /// Opens (creating if needed) `tidings.redb` in `data_dir` and brings its schema up to
    /// date, without the master key: for commands that never touch event payloads or logged
    /// bodies (`key create`, an offline backup), which are refused on such a store.
    pub fn open(data_dir: &Path) -> Result<Self, StoreError> {
        let (db, workspace) = Self::open_db(data_dir)?;
        Self::start(db, workspace, RowSeal::new(None))
    }

    /// Opens the store with its master keys, loaded by `keys` once the database is locked.
    /// Before anyone can read or write, it checks the key against the database, finishes a
    /// master-key rotation an interrupted `rotate-master-key` left (its `master.key.new`), and
    /// seals payloads stored by earlier versions. Returns the store and the key every value is
    /// now sealed with.
    pub fn open_with_keys(
        data_dir: &Path,
        keys: impl FnOnce() -> Result<Keyring, CryptoError>,
    ) -> Result<(Self, MasterKey), StoreError> {
        let (mut db, workspace) = Self::open_db(data_dir)?;
        let key = reconcile(&mut db, keys, Rotation::No)?;
        let store = Self::start(db, workspace, RowSeal::new(Some(key.clone())))?;
        Ok((store, key))
    }

    /// `tidings rotate-master-key`: with the server stopped, re-seals every sealed value (rule
    /// signing secrets and secret headers, event payloads, logged bodies) with a new master
    /// key, crash-safely (see `Keyring`). `new_env_key` is `TIDINGS_NEW_MASTER_KEY`, needed
    /// when the keys come from the environment. Returns the new key.
    pub fn rotate_master_key(
        data_dir: &Path,
        keys: impl FnOnce() -> Result<Keyring, CryptoError>,
        new_env_key: Option<&str>,
    ) -> Result<MasterKey, StoreError> {
        let (mut db, _) = Self::open_db(data_dir)?;
        reconcile(&mut db, keys, Rotation::Begin(new_env_key))
    }

    /// The database, locked against other processes, with its schema up to date; and the
    /// Default workspace's id.
    fn open_db(data_dir: &Path) -> Result<(Database, WorkspaceId), StoreError> {
        std::fs::create_dir_all(data_dir).map_err(|e| {
            StoreError::Storage(format!(
                "cannot create data dir {}: {e}",
                data_dir.display()
            ))
        })?;
        let path = data_dir.join("tidings.redb");
        crate::security::files::prepare_private(&path).map_err(StoreError::Storage)?;
        crate::security::files::tidy_data_dir(data_dir);
        let db = Database::builder()
            .set_cache_size(CACHE_BYTES)
            .create(&path)
            .map_err(|e| match e {
                redb::DatabaseError::DatabaseAlreadyOpen => {
                    StoreError::InUse(path.display().to_string())
                }
                other => StoreError::Storage(format!("cannot open {}: {other}", path.display())),
            })?;
        let workspace = migrations::migrate(&db)?;
        Ok((db, workspace))
    }

    fn start(
        db: Database,
        default_workspace: WorkspaceId,
        seal: RowSeal,
    ) -> Result<Self, StoreError> {
        let db = Arc::new(db);
        // The writer thread ends by itself once the last Store clone (its last sender) is gone.
        let writer = Writer::start(Arc::clone(&db));
        let store = Self {
            db,
            writer,
            rules: Arc::default(),
            keys: Arc::default(),
            default_workspace,
            workspace_names: Arc::default(),
            seen_types: Arc::default(),
            seal,
        };
        store.refresh_rules()?;
        store.refresh_keys()?;
        Ok(store)
    }

    pub fn default_workspace(&self) -> &WorkspaceId {
        &self.default_workspace
    }

    fn read(&self) -> Result<ReadTransaction, StoreError> {
        Ok(self.db.begin_read()?)
    }

    /// A cheap read that proves the database answers, and that the last write batch
    /// committed; for readiness checks.
    pub fn ping(&self) -> Result<(), StoreError> {
        let txn = self.read()?;
        txn.open_table(WORKSPACES)?;
        self.writer.failure().map_or(Ok(()), Err)
    }

    // ---- workspaces and API keys ----

    pub fn workspace(&self, id: &WorkspaceId) -> Result<Workspace, StoreError> {
        get(&self.read()?, WORKSPACES, id.as_str())?
            .ok_or_else(|| not_found("workspace", id.as_str()))
    }

    /// A workspace's name (what payloads and conditions show), from memory after first use.
    pub fn workspace_name(&self, id: &WorkspaceId) -> Result<String, StoreError> {
        if let Some(name) = self
            .workspace_names
            .read()
            .ok()
            .and_then(|m| m.get(id).cloned())
        {
            return Ok(name);
        }
        let name = self.workspace(id)?.name;
        if let Ok(mut names) = self.workspace_names.write() {
            names.insert(id.clone(), name.clone());
        }
        Ok(name)
    }

    /// The key a bearer token names, if any.
    pub fn api_key_for_token(&self, token: &str) -> Option<ApiKey> {
        let hash = api_key_hash(token);
        self.keys.read().ok()?.get(&hash).cloned()
    }

    fn refresh_keys(&self) -> Result<(), StoreError> {
        let keys: Vec<ApiKey> = scan(&self.read()?, API_KEYS)?;
        if let Ok(mut slot) = self.keys.write() {
            *slot = keys.into_iter().map(|k| (k.hash.clone(), k)).collect();
        }
        Ok(())
    }

    pub fn api_keys(&self, workspace: &WorkspaceId) -> Result<Vec<ApiKey>, StoreError> {
        let keys: Vec<ApiKey> = scan(&self.read()?, API_KEYS)?;
        Ok(keys
            .into_iter()
            .filter(|k| &k.workspace_id == workspace)
            .collect())
    }

    /// Stores a new key and its audit entry together.
    pub fn insert_api_key(&self, key: ApiKey, audit: AuditEntry) -> Result<(), StoreError> {
        self.writer.write(move |txn| {
            insert_api_key(txn, &key)?;
            append_audit(txn, &audit)
        })?;
        self.refresh_keys()
    }

    pub async fn insert_api_key_async(
        &self,
        key: ApiKey,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        self.writer
            .write_async(move |txn| {
                insert_api_key(txn, &key)?;
                append_audit(txn, &audit)
            })
            .await?;
        self.refresh_keys()
    }

    pub async fn delete_api_key(
        &self,
        workspace: WorkspaceId,
        id: ApiKeyId,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        self.writer
            .write_async(move |txn| {
                let key: ApiKey = get_w(txn, API_KEYS, id.as_str())?
                    .filter(|k: &ApiKey| k.workspace_id == workspace)
                    .ok_or_else(|| not_found("API key", id.as_str()))?;
                txn.open_table(API_KEYS)?.remove(id.as_str())?;
                txn.open_table(API_KEY_HASHES)?.remove(key.hash.as_str())?;
                append_audit(txn, &audit)
            })
            .await?;
        self.refresh_keys()
    }

    // ---- audit log ----

    /// Records an action that changes nothing else (such as viewing a secret).
    pub async fn audit(&self, entry: AuditEntry) -> Result<(), StoreError> {
        self.writer
            .write_async(move |txn| append_audit(txn, &entry))
            .await
    }

    /// Newest first, before the cursor; returns the page and the next cursor.
    pub fn audit_log(
        &self,
        workspace: &WorkspaceId,
        before: Option<&AuditId>,
        limit: usize,
    ) -> Result<(Vec<AuditEntry>, Option<AuditId>), StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(AUDIT)?;
        let upper = before.map_or_else(|| format!("{}~", AuditId::PREFIX), ToString::to_string);
        let mut page = Vec::with_capacity(limit);
        for (scanned, entry) in table
            .range(AuditId::PREFIX..upper.as_str())?
            .rev()
            .enumerate()
        {
            let (key, value) = entry?;
            let e: AuditEntry = codec::decode("audit", value.value())?;
            if &e.workspace_id == workspace {
                page.push(e);
            }
            if page.len() >= limit || scanned + 1 >= MAX_SCAN {
                // The cursor is the last id examined; the next page starts below it.
                return Ok((page, AuditId::parse(key.value())));
            }
        }
        Ok((page, None))
    }

    // ---- rules ----

    /// A rule from the in-memory cache (kept equal to the table after every rule write).
    pub fn cached_rule(&self, id: &RuleId) -> Option<Arc<Rule>> {
        self.rules.read().ok()?.by_id.get(id).cloned()
    }

    /// Active rules of a workspace whose trigger matches the event type.
    pub fn matching_rules(
        &self,
        workspace: &WorkspaceId,
        event_type: &EventType,
    ) -> Vec<Arc<Rule>> {
        let Ok(cache) = self.rules.read() else {
            return Vec::new();
        };
        let mut rules: Vec<Arc<Rule>> = cache
            .by_id
            .values()
            .filter(|r| r.active && &r.workspace_id == workspace && r.trigger.matches(event_type))
            .cloned()
            .collect();
        rules.sort_by(|a, b| a.id.cmp(&b.id));
        rules
    }

    /// Active routines (rules with a schedule trigger), from the cache.
    pub fn routines(&self) -> Vec<Arc<Rule>> {
        let Ok(cache) = self.rules.read() else {
            return Vec::new();
        };
        cache
            .by_id
            .values()
            .filter(|r| {
                r.active && matches!(r.trigger, crate::domain::rule::Trigger::Schedule { .. })
            })
            .cloned()
            .collect()
    }

    pub fn rule(&self, workspace: &WorkspaceId, id: &RuleId) -> Result<Rule, StoreError> {
        get::<Rule>(&self.read()?, RULES, id.as_str())?
            .filter(|r| &r.workspace_id == workspace)
            .ok_or_else(|| not_found("rule", id.as_str()))
    }

    pub fn rules(&self, workspace: &WorkspaceId) -> Result<Vec<Rule>, StoreError> {
        let rules: Vec<Rule> = scan(&self.read()?, RULES)?;
        Ok(rules
            .into_iter()
            .filter(|r| &r.workspace_id == workspace)
            .collect())
    }

    /// Inserts a new rule or replaces one; `expect_existing` guards updates against a
    /// concurrent delete.
    pub async fn save_rule(
        &self,
        rule: Rule,
        expect_existing: bool,
        audit: AuditEntry,
    ) -> Result<Rule, StoreError> {
        let saved = self
            .writer
            .write_async(move |txn| {
                let existing: Option<Rule> = get_w(txn, RULES, rule.id.as_str())?;
                match (&existing, expect_existing) {
                    (None, true) => return Err(not_found("rule", rule.id.as_str())),
                    (Some(_), false) => {
                        return Err(StoreError::Conflict(format!(
                            "rule {} already exists",
                            rule.id
                        )));
                    }
                    _ => {}
                }
                put(txn, RULES, rule.id.as_str(), &rule)?;
                append_audit(txn, &audit)?;
                Ok(rule)
            })
            .await?;
        self.refresh_rules()?;
        Ok(saved)
    }

    pub async fn delete_rule(
        &self,
        workspace: WorkspaceId,
        id: RuleId,
        audit: AuditEntry,
    ) -> Result<Rule, StoreError> {
        let removed = self
            .writer
            .write_async(move |txn| {
                let rule: Rule = get_w::<Rule>(txn, RULES, id.as_str())?
                    .filter(|r| r.workspace_id == workspace)
                    .ok_or_else(|| not_found("rule", id.as_str()))?;
                txn.open_table(RULES)?.remove(id.as_str())?;
                append_audit(txn, &audit)?;
                Ok(rule)
            })
            .await?;
        self.refresh_rules()?;
        Ok(removed)
    }

    /// Turns a rule off on tidings' own account (a 410 answer), recording why.
    pub fn deactivate_rule(&self, id: &RuleId, reason: String) -> Result<(), StoreError> {
        let id = id.clone();
        self.writer.write(move |txn| {
            if let Some(mut rule) = get_w::<Rule>(txn, RULES, id.as_str())? {
                let audit = AuditEntry::new(
                    &rule.workspace_id,
                    Actor::System,
                    "rule.deactivate",
                    "rule",
                    id.as_str(),
                )
                .detail(reason.clone());
                rule.active = false;
                rule.status_reason = Some(reason);
                rule.updated_at = now_ms();
                put(txn, RULES, id.as_str(), &rule)?;
                append_audit(txn, &audit)?;
            }
            Ok(())
        })?;
        self.refresh_rules()
    }

    /// Since when each failing rule has failed (first failed attempt after its last success).
    pub fn rules_failing_since(&self) -> Result<HashMap<RuleId, i64>, StoreError> {
        self.time_by_rule(RULE_FAILING_SINCE)
    }

    /// A whole (rule id → Unix ms) table.
    fn time_by_rule(
        &self,
        def: TableDefinition<&str, i64>,
    ) -> Result<HashMap<RuleId, i64>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(def)?;
        let mut out = HashMap::new();
        for entry in table.iter()? {
            let (k, v) = entry?;
            if let Some(id) = RuleId::parse(k.value()) {
                out.insert(id, v.value());
            }
        }
        Ok(out)
    }

    /// Starts (`Some`) or clears (`None`) a rule's failing clock; fire-and-forget.
    pub fn set_rule_failing_since(&self, id: &RuleId, since: Option<i64>) {
        let id = id.clone();
        self.writer.submit_lazy(
            move |txn| {
                let mut table = txn.open_table(RULE_FAILING_SINCE)?;
                match since {
                    Some(at) => table.insert(id.as_str(), at)?,
                    None => table.remove(id.as_str())?,
                };
                Ok(())
            },
            |r| {
                if let Err(e) = r {
                    tracing::error!(error = %e, "could not record rule failure state");
                }
            },
        );
    }

    fn refresh_rules(&self) -> Result<(), StoreError> {
        let rules: Vec<Rule> = scan(&self.read()?, RULES)?;
        let by_id = rules
            .into_iter()
            .map(|r| (r.id.clone(), Arc::new(r)))
            .collect();
        if let Ok(mut slot) = self.rules.write() {
            *slot = Arc::new(RuleCache { by_id });
        }
        Ok(())
    }

    // ---- events ----

    /// Stores an event with its deliveries and queue entries in one durable step, unless its
    /// idempotency key was seen in the last 24 hours.
    pub async fn ingest(&self, new: NewEvent) -> Result<IngestOutcome, StoreError> {
        let encoded = EncodedIngest::new(&new, &self.seal)?;
        self.writer
            .write_async(move |txn| ingest(txn, &new, &encoded))
            .await
    }

    /// `ingest` for a caller on a plain thread (the routine scheduler).
    pub fn ingest_blocking(&self, new: NewEvent) -> Result<IngestOutcome, StoreError> {
        let encoded = EncodedIngest::new(&new, &self.seal)?;
        self.writer.write(move |txn| ingest(txn, &new, &encoded))
    }

    /// Writes a finished test delivery (event, delivery and its one attempt) for the log.
    pub async fn insert_test_delivery(
        &self,
        event: Event,
        delivery: Delivery,
        attempt: Attempt,
    ) -> Result<(), StoreError> {
        // Sealed here, off the writer thread.
        let encoded_event = self.seal.event(&event)?;
        let encoded_attempt = self.seal.attempt(&attempt)?;
        self.writer
            .write_async(move |txn| {
                txn.open_table(EVENTS)?
                    .insert(event.id.as_str(), encoded_event.as_slice())?;
                insert_delivery(txn, &delivery, &codec::encode(&delivery))?;
                txn.open_table(ATTEMPTS)?.insert(
                    (delivery.id.as_str(), attempt.number),
                    encoded_attempt.as_slice(),
                )?;
                Ok(())
            })
            .await
    }

    pub fn event(&self, workspace: &WorkspaceId, id: &EventId) -> Result<Event, StoreError> {
        self.get_event(&self.read()?, id)?
            .filter(|e| &e.workspace_id == workspace)
            .ok_or_else(|| not_found("event", id.as_str()))
    }

    fn get_event(&self, txn: &ReadTransaction, id: &EventId) -> Result<Option<Event>, StoreError> {
        let table = txn.open_table(EVENTS)?;
        table
            .get(id.as_str())?
            .map(|v| self.seal.open_event(v.value()))
            .transpose()
    }

    pub fn event_deliveries(&self, id: &EventId) -> Result<Vec<Delivery>, StoreError> {
        let txn = self.read()?;
        let index = txn.open_table(DELIVERIES_BY_EVENT)?;
        let mut out = Vec::new();
        for entry in index.range((id.as_str(), "")..)? {
            let (key, ()) = entry.map(|(k, v)| (k, v.value()))?;
            let (event, delivery) = key.value();
            if event != id.as_str() {
                break;
            }
            if let Some(d) = get(&txn, DELIVERIES, delivery)? {
                out.push(d);
            }
        }
        Ok(out)
    }

    // ---- deliveries ----

    pub fn delivery(
        &self,
        workspace: &WorkspaceId,
        id: &DeliveryId,
    ) -> Result<Delivery, StoreError> {
        get::<Delivery>(&self.read()?, DELIVERIES, id.as_str())?
            .filter(|d| &d.workspace_id == workspace)
            .ok_or_else(|| not_found("delivery", id.as_str()))
    }

    pub fn attempts(&self, id: &DeliveryId) -> Result<Vec<Attempt>, StoreError> {
        let txn = self.read()?;
        let table = txn.open_table(ATTEMPTS)?;
        let mut out = Vec::new();
        for entry in table.range((id.as_str(), 0)..=(id.as_str(), u32::MAX))? {
            let (_, v) = entry?;
            out.push(self.seal.open_attempt(v.value())?);
        }
        Ok(out)
    }

    /// Newest first. Returns the page and, if more may follow, the cursor (last id examined).
    pub fn list_deliveries(
        &self,
        workspace: &WorkspaceId,
        filter: &DeliveryFilter,
    ) -> Result<(Vec<Delivery>, Option<DeliveryId>), StoreError> {
        let txn = self.read()?;
        let deliveries = txn.open_table(DELIVERIES)?;
        // Ids start with their creation time, so the time window is a key range.
        let lower = filter
            .since
            .map_or_else(|| DeliveryId::PREFIX.to_owned(), id_at);
        let mut upper = filter
            .until
            .map_or_else(|| format!("{}~", DeliveryId::PREFIX), |ms| id_at(ms + 1));
        if let Some(before) = &filter.before
            && before.as_str() < upper.as_str()
        {
            before.as_str().clone_into(&mut upper);
        }
        let keep = |d: &Delivery| {
            &d.workspace_id == workspace
                && filter.status.is_none_or(|s| d.status == s)
                && filter
                    .event_type
                    .as_ref()
                    .is_none_or(|t| &d.event_type == t)
        };
        let mut page = Vec::with_capacity(filter.limit);
        let mut scanned = 0;
        let mut last_seen: Option<String> = None;
        let mut exhausted = true;
        if let Some(rule) = &filter.rule_id {
            let index = txn.open_table(DELIVERIES_BY_RULE)?;
            let range =
                index.range((rule.as_str(), lower.as_str())..(rule.as_str(), upper.as_str()))?;
            for entry in range.rev() {
                let (key, ()) = entry.map(|(k, v)| (k, v.value()))?;
                let id = key.value().1.to_owned();
                scanned += 1;
                if let Some(d) = get_from::<Delivery>(&deliveries, "deliveries", &id)?
                    && keep(&d)
                {
                    page.push(d);
                }
                last_seen = Some(id);
                if page.len() >= filter.limit || scanned >= MAX_SCAN {
                    exhausted = false;
                    break;
                }
            }
        } else {
            for entry in deliveries.range(lower.as_str()..upper.as_str())?.rev() {
                let (key, value) = entry?;
                scanned += 1;
                let d: Delivery = codec::decode("deliveries", value.value())?;
                last_seen = Some(key.value().to_owned());
                if keep(&d) {
                    page.push(d);
                }
                if page.len() >= filter.limit || scanned >= MAX_SCAN {
                    exhausted = false;
                    break;
                }
            }
        }
        let cursor = if exhausted {
            None
        } else {
            last_seen.and_then(|id| DeliveryId::parse(&id))
        };
        Ok((page, cursor))
    }

    /// Every open delivery, for the dispatcher to pick up at start.
    pub fn open_deliveries(&self) -> Result<Vec<DueDelivery>, StoreError> {
        let txn = self.read()?;
        let open = txn.open_table(OPEN_DELIVERIES)?;
        let deliveries = txn.open_table(DELIVERIES)?;
        let mut out = Vec::new();
        for entry in open.iter()? {
            let (key, due) = entry?;
            if let Some(d) = get_from::<Delivery>(&deliveries, "deliveries", key.value())? {
                out.push(DueDelivery {
                    id: d.id,
                    rule_id: d.rule_id,
                    due_at: due.value(),
                });
            }
        }
        Ok(out)
    }

    /// Deletes finished deliveries (with their attempts and index entries) and events created
    /// before `cutoff_ms`, and expired idempotency keys, in small transactions so delivery
    /// never waits long behind it. Open deliveries, and the events they need, are kept.
    /// Returns (deliveries, events) removed.
    pub fn prune_before(&self, cutoff_ms: i64) -> Result<(usize, usize), StoreError> {
        const CHUNK: usize = 500;
        let upper_delivery = id_at(cutoff_ms);
        let upper_event = format!(
            "{}{}",
            EventId::PREFIX,
            &upper_delivery[DeliveryId::PREFIX.len()..]
        );
        let mut removed = (0, 0);
        // Deliveries, oldest first; a resume point skips the open ones already passed over.
        let mut from = DeliveryId::PREFIX.to_owned();
        loop {
            let (batch, next) = {
                let txn = self.read()?;
                let table = txn.open_table(DELIVERIES)?;
                let mut batch = Vec::new();
                let mut next = None;
                for entry in table.range(from.as_str()..upper_delivery.as_str())? {
                    let (key, value) = entry?;
                    let d: Delivery = codec::decode("deliveries", value.value())?;
                    next = Some(format!("{}~", key.value()));
                    if !d.status.is_open() {
                        batch.push(d);
                    }
                    if batch.len() >= CHUNK {
                        break;
                    }
                }
                (batch, next)
            };
            if !batch.is_empty() {
                removed.0 += batch.len();
                self.writer.write(move |txn| {
                    let mut deliveries = txn.open_table(DELIVERIES)?;
                    let mut attempts = txn.open_table(ATTEMPTS)?;
                    let mut by_rule = txn.open_table(DELIVERIES_BY_RULE)?;
                    let mut by_event = txn.open_table(DELIVERIES_BY_EVENT)?;
                    for d in &batch {
                        let id = d.id.as_str();
                        deliveries.remove(id)?;
                        attempts.retain_in((id, 0)..=(id, u32::MAX), |_, _| false)?;
                        by_rule.remove((d.rule_id.as_str(), id))?;
                        by_event.remove((d.event_id.as_str(), id))?;
                    }
                    Ok(())
                })?;
            }
            match next {
                Some(n) if n != from => from = n,
                _ => break,
            }
        }
        // Events with no delivery left.
        let mut from = EventId::PREFIX.to_owned();
        loop {
            let (batch, next) = {
                let txn = self.read()?;
                let events = txn.open_table(EVENTS)?;
                let by_event = txn.open_table(DELIVERIES_BY_EVENT)?;
                let mut batch = Vec::new();
                let mut next = None;
                for entry in events.range(from.as_str()..upper_event.as_str())? {
                    let (key, _) = entry?;
                    let id = key.value().to_owned();
                    next = Some(format!("{id}~"));
                    if by_event
                        .range((id.as_str(), "")..)?
                        .next()
                        .transpose()?
                        .is_none_or(|(k, _)| k.value().0 != id)
                    {
                        batch.push(id);
                    }
                    if batch.len() >= CHUNK {
                        break;
                    }
                }
                (batch, next)
            };
            if !batch.is_empty() {
                removed.1 += batch.len();
                self.writer.write(move |txn| {
                    let mut events = txn.open_table(EVENTS)?;
                    for id in &batch {
                        events.remove(id.as_str())?;
                    }
                    Ok(())
                })?;
            }
            match next {
                Some(n) if n != from => from = n,
                _ => break,
            }
        }
        let now = now_ms();
        self.writer.write(move |txn| {
            txn.open_table(IDEMPOTENCY)?.retain(|_, v| {
                codec::decode::<IdempotencyRecord>("idempotency", v)
                    .is_ok_and(|r| r.expires_at > now)
            })?;
            Ok(())
        })?;
        Ok(removed)
    }

    /// How many deliveries are waiting for an attempt.
    pub fn open_count(&self) -> Result<u64, StoreError> {
        use redb::ReadableTableMetadata;
        Ok(self.read()?.open_table(OPEN_DELIVERIES)?.len()?)
    }

    /// Logs an attempt and stores the delivery as it stands after it; `done` runs once both
    /// are committed. The caller owns the open delivery while attempting it (re-sends refuse
    /// open deliveries), so it passes the updated record rather than the writer re-reading it.
    /// The write is lazy: a crash before the next sync repeats the attempt rather than
    /// losing it.
    pub fn record_attempt(
        &self,
        delivery: &Delivery,
        attempt: &Attempt,
        done: impl FnOnce(Result<(), StoreError>) + Send + 'static,
    ) {
        // Encoded and sealed here, off the writer thread, which is the one serial point of
        // every write.
        let encoded_attempt = match self.seal.attempt(attempt) {
            Ok(bytes) => bytes,
            Err(e) => return done(Err(e)),
        };
        let encoded_delivery = codec::encode(delivery);
        let number = attempt.number;
        let delivery = delivery.clone();
        self.writer.submit_lazy(
            move |txn| {
                let id = delivery.id.as_str();
                txn.open_table(ATTEMPTS)?
                    .insert((id, number), encoded_attempt.as_slice())?;
                txn.open_table(DELIVERIES)?
                    .insert(id, encoded_delivery.as_slice())?;
                stats::count_finished(txn, &delivery)?;
                set_open(txn, &delivery)
            },
            done,
        );
    }

    /// A delivery and its event, read together for an attempt.
    pub fn delivery_with_event(
        &self,
        id: &DeliveryId,
    ) -> Result<Option<(Delivery, Event)>, StoreError> {
        let txn = self.read()?;
        let Some(delivery) = get::<Delivery>(&txn, DELIVERIES, id.as_str())? else {
            return Ok(None);
        };
        let event = self
            .get_event(&txn, &delivery.event_id)?
            .ok_or_else(|| not_found("event", delivery.event_id.as_str()))?;
        Ok(Some((delivery, event)))
    }

    /// Closes an open delivery without an attempt (its rule was deleted).
    pub fn close_delivery(
        &self,
        id: &DeliveryId,
        status: DeliveryStatus,
    ) -> Result<(), StoreError> {
        let id = id.clone();
        self.writer.write(move |txn| {
            if let Some(mut d) = get_w::<Delivery>(txn, DELIVERIES, id.as_str())? {
                d.status = status;
                d.next_attempt_at = None;
                d.attempts_left = 0;
                d.updated_at = now_ms();
                put(txn, DELIVERIES, id.as_str(), &d)?;
                set_open(txn, &d)?;
            }
            Ok(())
        })
    }

    /// Queues one more attempt for a finished delivery (a manual re-send).
    pub async fn redeliver(
        &self,
        workspace: WorkspaceId,
        id: DeliveryId,
    ) -> Result<Delivery, StoreError> {
        self.writer
            .write_async(move |txn| {
                let d: Delivery = get_w::<Delivery>(txn, DELIVERIES, id.as_str())?
                    .filter(|d| d.workspace_id == workspace)
                    .ok_or_else(|| not_found("delivery", id.as_str()))?;
                if d.status.is_open() {
                    return Err(StoreError::Conflict(format!(
                        "delivery {id} is still {} and will be attempted again; re-send it once it has succeeded or failed",
                        d.status.as_str()
                    )));
                }
                reopen(txn, d)
            })
            .await
    }

    /// Re-sends every failed delivery of a rule created in `[since, until]`.
    pub async fn redeliver_failed(
        &self,
        workspace: WorkspaceId,
        rule_id: RuleId,
        since: i64,
        until: i64,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.writer
            .write_async(move |txn| {
                let rule: Option<Rule> = get_w(txn, RULES, rule_id.as_str())?;
                if rule.is_none_or(|r| r.workspace_id != workspace) {
                    return Err(not_found("rule", rule_id.as_str()));
                }
                let failed: Vec<Delivery> = {
                    let index = txn.open_table(DELIVERIES_BY_RULE)?;
                    let deliveries = txn.open_table(DELIVERIES)?;
                    let (lo, hi) = (id_at(since), id_at(until.saturating_add(1)));
                    let mut out = Vec::new();
                    for entry in index
                        .range((rule_id.as_str(), lo.as_str())..(rule_id.as_str(), hi.as_str()))?
                    {
                        let (key, ()) = entry.map(|(k, v)| (k, v.value()))?;
                        if let Some(d) =
                            get_from::<Delivery>(&deliveries, "deliveries", key.value().1)?
                            && d.status == DeliveryStatus::Failed
                            && !d.test
                        {
                            out.push(d);
                        }
                    }
                    out
                };
                failed.into_iter().map(|d| reopen(txn, d)).collect()
            })
            .await
    }
}

/// Loads the keys (only now that the database is locked, so a command refused because a
/// server holds it has changed nothing, not even a key file) and brings every sealed value
/// under one key; see `sealing::reconcile`.
fn reconcile(
    db: &mut Database,
    keys: impl FnOnce() -> Result<Keyring, CryptoError>,
    rotate: Rotation<'_>,
) -> Result<MasterKey, StoreError> {
    let keyring = keys().map_err(|e| StoreError::MasterKey(e.to_string()))?;
    let (key, rewritten) = sealing::reconcile(db, keyring, rotate)?;
    if rewritten > 0 {
        // The rows replaced (plain PHI, or values under a retired key) live on in freed
        // pages until reused; compaction moves live pages down and cuts the file there.
        db.compact()
            .map_err(|e| StoreError::Storage(format!("compacting after re-sealing: {e}")))?;
    }
    Ok(key)
}

/// The smallest id a delivery created at `ms` can have.
fn id_at(ms: i64) -> String {
    let ms = u64::try_from(ms.max(0)).unwrap_or(0) & 0xffff_ffff_ffff;
    format!("{}{ms:012x}", DeliveryId::PREFIX)
}

fn reopen(txn: &WriteTransaction, mut d: Delivery) -> Result<Delivery, StoreError> {
    let now = now_ms();
    d.status = DeliveryStatus::Pending;
    d.attempts_left = 1;
    d.next_attempt_at = Some(now);
    d.updated_at = now;
    put(txn, DELIVERIES, d.id.as_str(), &d)?;
    set_open(txn, &d)?;
    Ok(d)
}

/// An ingest's rows, serialised on the caller's thread so the writer thread (the one serial
/// point of every write) only copies bytes.
struct EncodedIngest {
    event: Vec<u8>,
    deliveries: Vec<Vec<u8>>,
}

impl EncodedIngest {
    fn new(new: &NewEvent, seal: &RowSeal) -> Result<Self, StoreError> {
        Ok(Self {
            event: seal.event(&new.event)?,
            deliveries: new.deliveries.iter().map(codec::encode).collect(),
        })
    }
}

fn ingest(
    txn: &WriteTransaction,
    new: &NewEvent,
    encoded: &EncodedIngest,
) -> Result<IngestOutcome, StoreError> {
    let event = &new.event;
    if let Some((routine, slot)) = &new.routine_slot {
        let mut table = txn.open_table(ROUTINE_LAST_FIRED)?;
        let last = table.get(routine.as_str())?.map(|v| v.value());
        if last.is_some_and(|last| last >= *slot) {
            return Ok(IngestOutcome::Duplicate(event.id.clone()));
        }
        table.insert(routine.as_str(), *slot)?;
    }
    if let Some(key) = &new.idempotency_key {
        let mut table = txn.open_table(IDEMPOTENCY)?;
        let seen = table
            .get((event.workspace_id.as_str(), key.as_str()))?
            .map(|v| codec::decode::<IdempotencyRecord>("idempotency", v.value()))
            .transpose()?;
        if let Some(seen) = seen.filter(|s| s.expires_at > event.received_at) {
            return Ok(IngestOutcome::Duplicate(seen.event_id));
        }
        let record = IdempotencyRecord {
            event_id: event.id.clone(),
            expires_at: event.received_at + IDEMPOTENCY_TTL_MS,
        };
        table.insert(
            (event.workspace_id.as_str(), key.as_str()),
            codec::encode(&record).as_slice(),
        )?;
    }
    txn.open_table(EVENTS)?
        .insert(event.id.as_str(), encoded.event.as_slice())?;
    for (d, bytes) in new.deliveries.iter().zip(&encoded.deliveries) {
        insert_delivery(txn, d, bytes)?;
    }
    Ok(IngestOutcome::Created)
}

fn insert_delivery(txn: &WriteTransaction, d: &Delivery, encoded: &[u8]) -> Result<(), StoreError> {
    txn.open_table(DELIVERIES)?.insert(d.id.as_str(), encoded)?;
    txn.open_table(DELIVERIES_BY_RULE)?
        .insert((d.rule_id.as_str(), d.id.as_str()), ())?;
    txn.open_table(DELIVERIES_BY_EVENT)?
        .insert((d.event_id.as_str(), d.id.as_str()), ())?;
    set_open(txn, d)
}

/// Keeps the durable queue equal to "open deliveries and when they are due".
fn set_open(txn: &WriteTransaction, d: &Delivery) -> Result<(), StoreError> {
    let mut open = txn.open_table(OPEN_DELIVERIES)?;
    match (d.status.is_open(), d.next_attempt_at) {
        (true, Some(due)) => {
            open.insert(d.id.as_str(), due)?;
        }
        _ => {
            open.remove(d.id.as_str())?;
        }
    }
    Ok(())
}

fn append_audit(txn: &WriteTransaction, entry: &AuditEntry) -> Result<(), StoreError> {
    put(txn, AUDIT, entry.id.as_str(), entry)
}

fn insert_api_key(txn: &WriteTransaction, key: &ApiKey) -> Result<(), StoreError> {
    put(txn, API_KEYS, key.id.as_str(), key)?;
    txn.open_table(API_KEY_HASHES)?
        .insert(key.hash.as_str(), key.id.as_str())?;
    Ok(())
}

fn put<T: Serialize>(
    txn: &WriteTransaction,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
    value: &T,
) -> Result<(), StoreError> {
    txn.open_table(table)?
        .insert(key, codec::encode(value).as_slice())?;
    Ok(())
}

fn get_w<T: serde::de::DeserializeOwned>(
    txn: &WriteTransaction,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let t = txn.open_table(table)?;
    get_from(&t, table.name(), key)
}

fn get<T: serde::de::DeserializeOwned>(
    txn: &ReadTransaction,
    table: TableDefinition<&str, &[u8]>,
    key: &str,
) -> Result<Option<T>, StoreError> {
    let t = txn.open_table(table)?;
    get_from(&t, table.name(), key)
}

fn get_from<T: serde::de::DeserializeOwned>(
    table: &impl ReadableTable<&'static str, &'static [u8]>,
    name: &str,
    key: &str,
) -> Result<Option<T>, StoreError> {
    table
        .get(key)?
        .map(|v| codec::decode(name, v.value()))
        .transpose()
}

fn scan<T: serde::de::DeserializeOwned>(
    txn: &ReadTransaction,
    table: TableDefinition<&str, &[u8]>,
) -> Result<Vec<T>, StoreError> {
    let t = txn.open_table(table)?;
    let mut out = Vec::new();
    for entry in t.iter()? {
        let (_, v) = entry?;
        out.push(codec::decode(table.name(), v.value())?);
    }
    Ok(out)
}
