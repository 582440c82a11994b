//! The PostgreSQL backend (`store.url = "postgres://…"`): the same rows as redb (JSON, payloads
//! sealed by `store/seal/`) in plain SQL tables, so any number of `tidings serve` can share
//! one database. Reads come from a connection pool; every write goes through the group-commit
//! writer (`store/writer.rs`) on a connection of its own (engine.rs: one transaction a
//! batch, a savepoint per write where one is needed).
//!
//! Several nodes: each registers in `nodes` and renews its heartbeat (nodes.rs); the open
//! deliveries it queued are its claims until its heartbeat is older than `store.lease`, when
//! another node takes them over. Caches (rules, API keys) are refreshed on every node within
//! moments of a change by LISTEN/NOTIFY (changes.rs). Each role trait is in a file of its own.

mod attempts;
mod audit;
mod catalog;
mod changes;
mod connect;
mod engine;
mod events;
mod gather;
pub(super) mod import;
mod ingests;
mod keys;
mod maintenance;
mod nodes;
mod rotation;
mod rules;
mod schema;
mod slots;
mod subjects;
#[cfg(test)]
pub(crate) mod tests;
mod users;
mod versions;

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use crate::domain::access::ApiKey;
use crate::domain::ids::WorkspaceId;
use crate::domain::time::Clock;
use crate::security::crypto::{CryptoError, Keyring, MasterKey};
use crate::store::cache::{RuleCache, SeenThrottle, SubjectPaths};
use crate::store::seal::RowSeal;
use crate::store::{Store, StoreError};
use connect::{Pool, PooledClient};
use engine::{PgEngine, PgWriter};

/// Most rows one delivery-list or audit page returns in one query.
const MAX_PAGE: usize = 1_000;

/// How a PostgreSQL store is reached and how long a node's claims outlive its heartbeat.
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// `postgres://user:pass@host:port/db[?sslmode=require]`.
    pub url: String,
    /// `store.lease`: a node silent this long loses its claims to the others.
    pub lease: Duration,
}

#[derive(Clone)]
pub struct PgStore {
    pool: Pool,
    writer: PgWriter,
    /// The writer's exchanges with the server so far (engine.rs), which tests count per write.
    #[cfg(test)]
    writer_round_trips: Arc<AtomicU64>,
    rules: Arc<RwLock<Arc<RuleCache>>>,
    /// API keys by hash: every request authenticates without a query.
    keys: Arc<RwLock<HashMap<String, ApiKey>>>,
    /// Orders the snapshots the caches are filled from (see `Snapshots`).
    snapshots: Arc<Snapshots>,
    default_workspace: WorkspaceId,
    workspace_names: Arc<RwLock<HashMap<WorkspaceId, String>>>,
    seen_types: Arc<SeenThrottle>,
    /// Declared subject paths, read by every ingest posted without a subject; reloaded when
    /// any node declares a type (changes.rs).
    subject_paths: Arc<SubjectPaths>,
    /// This node's hold on rules' concurrency slots (slots.rs).
    slots: Arc<slots::Slots>,
    /// Attempts waiting for the writer, stored together (attempts.rs, gather.rs).
    pending_attempts: Arc<gather::Gathered<attempts::AttemptRow>>,
    /// Ingests waiting for the writer, stored together (ingests.rs, gather.rs).
    pending_ingests: Arc<gather::Gathered<ingests::IngestRow>>,
    /// When each event type's missing-subject note was last written (see catalog.rs).
    subject_misses: Arc<SeenThrottle>,
    seal: RowSeal,
    clock: Clock,
    /// This process's row in `nodes`: the owner of the claims it makes.
    node: Arc<str>,
    lease: Duration,
    /// Set by `shutdown`: the heartbeat and change listener end.
    stopping: Arc<AtomicBool>,
    /// Where claims taken over from a silent node go (the dispatcher), once it listens.
    reclaimed: nodes::Reclaimed,
    background: Arc<Mutex<Vec<std::thread::JoinHandle<()>>>>,
}

impl PgStore {
    /// `tidings rotate-master-key` with every node stopped: re-seals every sealed value with
    /// a new master key in one transaction (rotation.rs). `new_env_key` is
    /// `TIDINGS_NEW_MASTER_KEY`. Returns the new key and how many rows were re-sealed.
    pub fn rotate_master_key(
        options: &PgOptions,
        keys: impl FnOnce() -> Result<Keyring, CryptoError>,
        new_env_key: Option<&str>,
    ) -> Result<(MasterKey, u64), StoreError> {
        let keyring = keys().map_err(|e| StoreError::MasterKey(e.to_string()))?;
        let lease_ms = i64::try_from(options.lease.as_millis()).unwrap_or(i64::MAX);
        rotation::rotate(
            &options.url,
            keyring,
            new_env_key,
            lease_ms,
            Clock::system().now_ms(),
        )
    }

    /// Connects and brings the schema up to date, without the master key: for commands that
    /// never touch event payloads or logged bodies (`key create`, `user add`).
    pub fn open(options: &PgOptions, clock: Clock) -> Result<Store, StoreError> {
        let store = Self::start(options, RowSeal::new(None), clock, false)?;
        Ok(Arc::new(store))
    }

    /// Connects with the master key, which must open the value the first node sealed with
    /// its key (every node of one store uses the same key); starts this node's heartbeat
    /// and change listener. Returns the store and the key.
    pub fn open_with_keys(
        options: &PgOptions,
        keys: impl FnOnce() -> Result<Keyring, CryptoError>,
        clock: Clock,
    ) -> Result<(Store, MasterKey), StoreError> {
        let pool = connect::pool(&options.url)?;
        let workspace = schema::migrate(&pool, clock.now_ms())?;
        let key = schema::check_master_key(&pool, keys)?;
        let seal = RowSeal::new(Some(key.clone()));
        let store = Self::start_with_pool(pool, workspace, options, seal, clock, true)?;
        Ok((Arc::new(store), key))
    }

    fn start(
        options: &PgOptions,
        seal: RowSeal,
        clock: Clock,
        serve: bool,
    ) -> Result<Self, StoreError> {
        let pool = connect::pool(&options.url)?;
        let workspace = schema::migrate(&pool, clock.now_ms())?;
        Self::start_with_pool(pool, workspace, options, seal, clock, serve)
    }

    /// `serve`: this process delivers, so it registers as a node and keeps its claims alive.
    fn start_with_pool(
        pool: Pool,
        default_workspace: WorkspaceId,
        options: &PgOptions,
        seal: RowSeal,
        clock: Clock,
        serve: bool,
    ) -> Result<Self, StoreError> {
        let writer_round_trips = Arc::new(AtomicU64::new(0));
        let writer = PgWriter::start(PgEngine::new(
            &options.url,
            Arc::clone(&writer_round_trips),
        )?);
        let node: Arc<str> = Arc::from(nodes::new_node_id(clock.now_ms()).as_str());
        let store = Self {
            pool,
            writer,
            #[cfg(test)]
            writer_round_trips,
            rules: Arc::default(),
            keys: Arc::default(),
            snapshots: Arc::default(),
            default_workspace,
            workspace_names: Arc::default(),
            seen_types: Arc::default(),
            subject_paths: Arc::default(),
            slots: slots::Slots::new(&options.url),
            pending_attempts: Arc::default(),
            pending_ingests: Arc::default(),
            subject_misses: Arc::default(),
            seal,
            clock,
            node,
            lease: options.lease,
            stopping: Arc::default(),
            reclaimed: nodes::Reclaimed::default(),
            background: Arc::default(),
        };
        // Listening first: a change made while the caches load is announced to this node.
        if serve {
            let listener = changes::listen(&store, &options.url)?;
            store
                .background
                .lock()
                .expect("background lock")
                .push(listener);
        }
        store.refresh_rules()?;
        store.refresh_keys()?;
        store.refresh_subject_paths()?;
        store.load_workspace_names()?;
        if serve {
            store.register_node()?;
            let heartbeat = store.start_heartbeat();
            store
                .background
                .lock()
                .expect("background lock")
                .push(heartbeat);
        }
        Ok(store)
    }

    /// Names are read on async threads (payloads, conditions), where no query may run; they
    /// never change once a workspace exists.
    fn load_workspace_names(&self) -> Result<(), StoreError> {
        let rows = self
            .conn()?
            .query("SELECT row::text AS row FROM workspaces", &[])?;
        let mut names = self
            .workspace_names
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        for row in &rows {
            let w: crate::domain::access::Workspace = decode("workspaces", row)?;
            names.insert(w.id, w.name);
        }
        Ok(())
    }

    fn conn(&self) -> Result<PooledClient, StoreError> {
        connect::get(&self.pool)
    }
}

/// Caches are filled from snapshots read on several threads: a write's own (read in its
/// transaction on the writer thread, so a request handler never queries the database from
/// an async thread), a refresh's after a notification. Each read takes a ticket; a cache
/// takes a snapshot only if it is newer than the one it holds, so a late older one never
/// undoes a newer one. (A refresh that read just before a commit is followed by that
/// commit's own notification.)
#[derive(Default)]
struct Snapshots {
    next: std::sync::atomic::AtomicU64,
    rules: Mutex<u64>,
    keys: Mutex<u64>,
}

impl Snapshots {
    fn ticket(&self) -> u64 {
        self.next
            .fetch_add(1, std::sync::atomic::Ordering::AcqRel)
            .saturating_add(1)
    }

    /// Whether a snapshot with `ticket` is newer than the one `held` is at (and marks it held).
    fn newer(held: &Mutex<u64>, ticket: u64) -> bool {
        let mut held = held
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if ticket <= *held {
            return false;
        }
        *held = ticket;
        true
    }
}

/// A row encoded by `codec`/`RowSeal` (JSON bytes), as the text a `json` parameter takes.
fn json_text(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes).expect("rows encode as JSON, which is UTF-8")
}

/// `codec::decode` of a `row::text` column.
fn decode<T: serde::de::DeserializeOwned>(
    table: &str,
    row: &postgres::Row,
) -> Result<T, StoreError> {
    crate::store::codec::decode_str(table, row.get::<_, &str>("row"))
}
