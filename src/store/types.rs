//! What every storage backend speaks: the store's error, the records that cross the interface
//! (a new event with its deliveries, an ingest's outcome, a due delivery, a log filter, a user
//! change) and the future and callback shapes of its writes. Nothing here knows a database.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use crate::domain::delivery::{Delivery, DeliveryStatus};
use crate::domain::event::{Event, EventType};
use crate::domain::ids::{DeliveryId, EventId, RuleId};
use crate::domain::user::UserRole;

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
    /// The backend does not do this; the message says what to use instead.
    #[error("{0}")]
    Unsupported(String),
    /// The write queue is full: a request handler is told at once (to answer 503 with
    /// `Retry-After`) instead of holding its thread until the disk catches up.
    #[error("too many writes are waiting for the disk; try again shortly")]
    Overloaded,
}

/// The conflict a second workspace of the same name is (names compare ignoring case), in
/// every backend's words.
pub(crate) fn workspace_name_taken(taken: &crate::domain::access::Workspace) -> StoreError {
    StoreError::Conflict(format!(
        "a workspace named {:?} exists already ({}); choose another name",
        taken.name, taken.id
    ))
}

/// Whether a backend keeps an index of deliveries in `status` for the log's status filter:
/// the statuses an admin looks for when something is wrong, rare in a healthy log. The two
/// every delivery passes through are left out, so a delivery that succeeds at its first
/// attempt writes no index entry: the pending ones are all in the queue of open
/// deliveries, which the filter reads instead, and succeeded is what most of a log is.
pub(crate) fn status_indexed(status: crate::domain::delivery::DeliveryStatus) -> bool {
    use crate::domain::delivery::DeliveryStatus;
    !matches!(status, DeliveryStatus::Pending | DeliveryStatus::Succeeded)
}

pub(crate) fn not_found(what: &'static str, id: &str) -> StoreError {
    StoreError::NotFound {
        what,
        id: id.to_owned(),
    }
}

/// A write that request handlers await: it holds no thread while the commit syncs, and is
/// `'static` so a backend can run it wherever its writes run.
pub type StoreFuture<T> = Pin<Box<dyn Future<Output = Result<T, StoreError>> + Send + 'static>>;

/// Told how a fire-and-forget write ended, once it is committed (or refused).
pub type WriteDone = Box<dyn FnOnce(Result<(), StoreError>) + Send + 'static>;

/// Where a backend shared by several nodes hands the open deliveries it took over from a
/// node whose lease ran out (the dispatcher queues them).
pub type ReclaimSink = Box<dyn Fn(Vec<DueDelivery>) + Send + Sync + 'static>;

/// One of a rule's `max_concurrency` slots, as the nodes of a shared store count them.
pub enum Slot {
    /// One process owns the store: its own count of attempts in flight is the whole count.
    Local,
    /// Held for every node until dropped (what it holds is the backend's).
    Held(Box<dyn Send>),
    /// Every slot is taken by some node: try again shortly.
    Busy,
}

/// How long a producer's idempotency key is remembered.
pub const IDEMPOTENCY_TTL_MS: i64 = 24 * 3600 * 1000;

/// An accepted event and the deliveries it owes, written together.
#[derive(Debug)]
pub struct NewEvent {
    /// Shared with the opened-event cache, which keeps it for the event's deliveries.
    pub event: Arc<Event>,
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

/// A page of a subject's disclosures, oldest first.
#[derive(Debug, Default, Clone)]
pub struct DisclosureFilter {
    /// Only disclosures first attempted at or after this (Unix ms).
    pub since: Option<i64>,
    /// Only disclosures first attempted at or before this (Unix ms).
    pub until: Option<i64>,
    /// Exclusive lower bound: the last delivery id of the previous page.
    pub after: Option<DeliveryId>,
    pub limit: usize,
}

/// What an admin may change about a user.
pub enum UserChange {
    Role(UserRole),
    /// An Argon2id hash (hashing is done by the caller, off the writer thread).
    PasswordHash(String),
    /// Where the admin gets alert mail (None: not at all); their sessions stay.
    AlertEmail(Option<String>),
    /// A role in a workspace other than the user's first (None: no longer a member); their
    /// sessions end, as for a role change.
    Membership(crate::domain::ids::WorkspaceId, Option<UserRole>),
}

/// One rule's `condition_error` deliveries in a window (`StatsStore::condition_errors_since`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConditionErrorCount {
    pub rule_id: RuleId,
    pub count: u64,
    /// When the latest of them was made.
    pub latest_at: i64,
}
