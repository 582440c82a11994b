//! Group commit: one writer thread owns every write transaction. Writes queue up while the
//! previous commit is syncing to disk, and the next transaction takes all of them at once, so
//! a burst of ingests costs one fsync instead of one each.

use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use redb::{Database, WriteTransaction};

use super::StoreError;

/// Runs after the batch's commit (or abort) with its outcome; on the writer thread, so keep it short.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// Applies one write inside the batch's transaction. A storage failure poisons the batch.
type Op = Box<dyn FnOnce(&WriteTransaction) -> (Completion, Option<StoreError>) + Send>;

/// Most writes one transaction takes; bounds commit latency under a flood.
const MAX_BATCH: usize = 2048;
const QUEUE_DEPTH: usize = 8192;

#[derive(Clone)]
pub struct Writer {
    tx: SyncSender<Op>,
}

impl Writer {
    pub fn start(db: Arc<Database>) -> Self {
        let (tx, rx) = sync_channel::<Op>(QUEUE_DEPTH);
        std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || run(&db, &rx))
            .expect("spawn store writer");
        Self { tx }
    }

    /// Queues `apply`; `done` gets its result once the batch holding it is durable.
    pub fn submit<T: Send + 'static>(
        &self,
        apply: impl FnOnce(&WriteTransaction) -> Result<T, StoreError> + Send + 'static,
        done: impl FnOnce(Result<T, StoreError>) + Send + 'static,
    ) {
        let op: Op = Box::new(move |txn| {
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

fn run(db: &Database, rx: &Receiver<Op>) {
    while let Ok(first) = rx.recv() {
        let mut batch = Vec::with_capacity(64);
        batch.push(first);
        while batch.len() < MAX_BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        let txn = match db.begin_write() {
            Ok(txn) => txn,
            Err(e) => {
                tracing::error!(error = %e, "cannot begin a write transaction");
                // Dropping the ops drops their reply channels, which callers see as Closed.
                continue;
            }
        };
        let mut completions = Vec::with_capacity(batch.len());
        let mut poison = None;
        for op in batch {
            let (completion, poisoned) = op(&txn);
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
        for completion in completions {
            completion(outcome.clone());
        }
    }
}
