//! Group commit: one writer thread owns every write transaction. Writes queue up while the
//! previous commit is syncing to disk, and the next transaction takes all of them at once, so
//! a burst of ingests costs one fsync instead of one each.
//!
//! Writes whose loss a crash can only turn into a repeated attempt (attempt logs, delivery
//! progress) are queued as *lazy*: a batch of only lazy writes commits without an fsync, and
//! the next durable commit — at the latest `MAX_UNSYNCED` later — makes them durable too. A
//! crash in between rolls the store back to the last durable commit, whose open deliveries are
//! simply sent again: at-least-once holds, and the disk is synced far less often.

use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use redb::{Database, Durability, WriteTransaction};

use super::StoreError;

/// Runs after the batch's commit (or abort) with its outcome; on the writer thread, so keep it short.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Applies one write inside the batch's transaction. A storage failure poisons the batch.
type Apply = Box<dyn FnOnce(&WriteTransaction) -> (Completion, Option<StoreError>) + Send>;

struct Op {
    apply: Apply,
    /// Whether the caller needs this write on disk before it hears back.
    durable: bool,
}

/// Most writes one transaction takes; bounds commit latency under a flood.
const MAX_BATCH: usize = 2048;
const QUEUE_DEPTH: usize = 8192;
/// Longest a lazy write may stay unsynced.
const MAX_UNSYNCED: Duration = Duration::from_millis(200);

#[derive(Clone)]
pub struct Writer {
    tx: SyncSender<Op>,
    /// Why the last batch could not be committed, until one commits again. Reads may still
    /// answer from cache after an I/O error (redb then refuses every write until reopened),
    /// so readiness asks this too.
    failure: Arc<Mutex<Option<StoreError>>>,
}

impl Writer {
    pub fn start(db: Arc<Database>) -> Self {
        let (tx, rx) = sync_channel::<Op>(QUEUE_DEPTH);
        let failure = Arc::new(Mutex::new(None));
        let writer_failure = Arc::clone(&failure);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&db, &rx, &writer_failure))
            .expect("spawn store writer");
        Self { tx, failure }
    }

    /// The error of the last batch, if it failed to begin or commit (not a write's own refusal).
    pub fn failure(&self) -> Option<StoreError> {
        self.failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Queues `apply`; `done` gets its result once the batch holding it is durable.
    pub fn submit<T: Send + 'static>(
        &self,
        apply: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
        done: impl FnOnce(Result<T, StoreError>) + Send + 'static,
    ) {
        self.queue(apply, done, true);
    }

    /// Like `submit`, but `done` may run before the write is synced (see the module comment):
    /// only for writes that a crash may lose without losing a delivery.
    pub fn submit_lazy<T: Send + 'static>(
        &self,
        apply: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
        done: impl FnOnce(Result<T, StoreError>) + Send + 'static,
    ) {
        self.queue(apply, done, false);
    }

    fn queue<T: Send + 'static>(
        &self,
        apply: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
        done: impl FnOnce(Result<T, StoreError>) + Send + 'static,
        durable: bool,
    ) {
        let apply: Apply = Box::new(move |txn| {
            let result = apply(txn);
            let poison = match &result {
                Err(e @ (StoreError::Storage(_) | StoreError::Corrupt(_))) => Some(e.clone()),
                _ => None,
            };
            let completion: Completion = Box::new(move |commit| {
                done(commit.and(result));
            });
            (completion, poison)
        });
        let op = Op { apply, durable };
        // A write that cannot be queued is dropped with its `done`, whose reply channel then
        // closes: waiting callers see `StoreError::Closed`.
        if let Err(TrySendError::Full(op)) = self.tx.try_send(op) {
            // The queue is full: wait for room, which slows producers to the disk's pace.
            let _ = self.tx.send(op);
        }
    }

    /// Blocking write: returns once the change is on disk.
    pub fn write<T: Send + 'static>(
        &self,
        apply: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.submit(apply, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// Async write for request handlers: awaits durability without holding a thread.
    pub async fn write_async<T: Send + 'static>(
        &self,
        apply: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.submit(apply, move |r| {
            let _ = tx.send(r);
        });
        rx.await.unwrap_or(Err(StoreError::Closed))
    }
}

type Failure = Mutex<Option<StoreError>>;

fn run(db: &Database, rx: &Receiver<Op>, failure: &Failure) {
    let mut last_sync = Instant::now();
    let mut unsynced = false;
    loop {
        let first = if unsynced {
            match rx.recv_timeout(MAX_UNSYNCED.saturating_sub(last_sync.elapsed())) {
                Ok(op) => Some(op),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    sync(db, failure);
                    return;
                }
            }
        } else {
            match rx.recv() {
                Ok(op) => Some(op),
                Err(_) => return,
            }
        };
        let mut batch = Vec::with_capacity(64);
        batch.extend(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let durable = batch.is_empty()
            || batch.iter().any(|op| op.durable)
            || last_sync.elapsed() >= MAX_UNSYNCED;
        if commit_batch(db, batch, durable, failure) && durable {
            last_sync = Instant::now();
            unsynced = false;
        } else if !durable {
            unsynced = true;
        }
    }
}

/// Makes every earlier lazy commit durable (an empty durable commit).
fn sync(db: &Database, failure: &Failure) {
    commit_batch(db, Vec::new(), true, failure);
}

/// Applies and commits one batch, then tells every op how it went; true if it committed.
fn commit_batch(db: &Database, batch: Vec<Op>, durable: bool, failure: &Failure) -> bool {
    let set_failure = |e: Option<StoreError>| {
        *failure
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = e;
    };
    let mut txn = match db.begin_write() {
        Ok(txn) => txn,
        Err(e) => {
            tracing::error!(error = %e, "cannot begin a write transaction");
            set_failure(Some(StoreError::Storage(format!(
                "cannot begin a write transaction: {e}"
            ))));
            // Dropping the ops drops their reply channels, which callers see as Closed.
            return false;
        }
    };
    if !durable && let Err(e) = txn.set_durability(Durability::None) {
        tracing::warn!(error = %e, "cannot defer the sync of a lazy batch; syncing it");
    }
    let mut completions = Vec::with_capacity(batch.len());
    let mut poison = None;
    for op in batch {
        let (completion, poisoned) = (op.apply)(&txn);
        completions.push(completion);
        if poison.is_none() {
            poison = poisoned;
        }
    }
    let outcome = match poison {
        Some(e) => {
            tracing::error!(error = %e, "write batch aborted");
            let _ = txn.abort();
            Err(e)
        }
        None => txn
            .commit()
            .map_err(|e| StoreError::Storage(format!("commit failed: {e}"))),
    };
    let committed = outcome.is_ok();
    match &outcome {
        Ok(()) => set_failure(None),
        Err(e @ StoreError::Storage(_)) => set_failure(Some(e.clone())),
        // A damaged record poisoned the batch: that says nothing about the disk.
        Err(_) => {}
    }
    for completion in completions {
        completion(outcome.clone());
    }
    committed
}
