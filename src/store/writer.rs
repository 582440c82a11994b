//! Group commit, for every backend: one writer thread owns every write transaction. Writes queue up while the
//! previous commit is syncing to disk, and the next transaction takes all of them at once, so
//! a burst of ingests costs one fsync instead of one each.
//!
//! Writes whose loss a crash can only turn into a repeated attempt (attempt logs, delivery
//! progress) are queued as *lazy*: a batch of only lazy writes commits without an fsync, and
//! the next durable commit — at the latest `MAX_UNSYNCED` later — makes them durable too. A
//! crash in between rolls the store back to the last durable commit, whose open deliveries are
//! simply sent again: at-least-once holds, and the disk is synced far less often.
//!
//! The queue is bounded. When it is full, a request handler's write (`write_async`, or a
//! `try_` submission) is refused at once with `StoreError::Overloaded` rather than holding
//! an actix thread; writers on plain threads wait for room, which slows them to the disk's
//! pace, and may hold only a share of the queue (`gate.rs`), so that a drain's attempt logs
//! never leave an ingest without room. `shutdown` commits what is queued, syncs and joins
//! the thread.
//!
//! What a transaction is belongs to the backend, behind `Engine`: redb's write transaction,
//! or a PostgreSQL connection inside `BEGIN`.

use std::collections::VecDeque;
use std::marker::PhantomData;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::{JoinHandle, ThreadId};
use std::time::{Duration, Instant};

use crate::store::StoreError;

mod gate;
use gate::Gate;

/// A backend's side of the writer: how a batch's transaction begins, isolates each write,
/// and commits.
pub(in crate::store) trait Engine: Send + 'static {
    /// What a write is applied to.
    type Txn;

    /// Runs `apply` inside one transaction and commits it unless `apply` returns an error
    /// (which aborts it). Without `durable`, the commit may skip the sync to disk.
    fn batch(
        &mut self,
        durable: bool,
        apply: &mut dyn FnMut(&mut Self::Txn) -> Option<StoreError>,
    ) -> Result<(), StoreError>;

    /// Whether a batch's rerunnable writes (`Writer::write_rerunnable` and the like) are
    /// first applied without `isolated`, all or nothing: when one of them is refused, the
    /// batch is rolled back and applied again with every write isolated. For an engine whose
    /// isolation costs something (a PostgreSQL savepoint is two round trips a write).
    const TRY_UNISOLATED: bool = false;

    /// Applies one write so that its refusal (an `Err`) leaves the transaction as it found
    /// it. redb writes check before they change anything; PostgreSQL needs a savepoint.
    fn isolated<T>(
        txn: &mut Self::Txn,
        write: impl FnOnce(&mut Self::Txn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError>;

    /// Makes the space of deleted rows unreadable, not merely free (an erasure's promise),
    /// between batches; synced when it returns.
    fn compact(&mut self) -> Result<(), StoreError>;
}

/// Runs after the batch's commit (or abort) with its outcome; on the writer thread, so keep it short.
type Completion = Box<dyn FnOnce(Result<(), StoreError>) + Send>;

/// One queued write: applied inside the batch's transaction, or refused unapplied.
trait Job<E: Engine>: Send {
    /// Applies the write, isolated; a storage failure poisons the batch.
    fn apply(self: Box<Self>, txn: &mut E::Txn) -> (Completion, Option<StoreError>);
    /// Tells the caller the write was never applied, and why.
    fn refuse(self: Box<Self>, why: StoreError);
}

/// A queued write that may be applied more than once: it changes nothing but the
/// transaction, so a batch rolled back may apply it again.
trait Rerun<E: Engine>: Job<E> {
    /// Applies it without isolation, keeping its result for `finish`; false if it was
    /// refused (the transaction must then be rolled back: it may hold part of the write).
    fn try_apply(&mut self, txn: &mut E::Txn) -> bool;
    /// Tells the caller how the batch that `try_apply` applied it in ended.
    fn finish(self: Box<Self>, commit: Result<(), StoreError>);
}

/// A write as the writer holds it: applied once, or possibly again.
enum Queued<E: Engine> {
    Once(Box<dyn Job<E>>),
    Again(Box<dyn Rerun<E>>),
}

impl<E: Engine> Queued<E> {
    fn refuse(self, why: StoreError) {
        match self {
            Self::Once(job) => job.refuse(why),
            Self::Again(job) => job.refuse(why),
        }
    }

    fn into_job(self) -> Box<dyn Job<E>> {
        match self {
            Self::Once(job) => job,
            Self::Again(job) => job,
        }
    }
}

/// Applies `apply` isolated; its outcome goes to `done` once the batch has committed.
fn apply_isolated<E, T>(
    txn: &mut E::Txn,
    apply: impl FnOnce(&mut E::Txn) -> Result<T, StoreError>,
    done: impl FnOnce(Result<T, StoreError>) + Send + 'static,
) -> (Completion, Option<StoreError>)
where
    E: Engine,
    T: Send + 'static,
{
    let result = E::isolated(txn, apply);
    let poison = match &result {
        Err(e @ (StoreError::Storage(_) | StoreError::Corrupt(_))) => Some(e.clone()),
        _ => None,
    };
    let completion: Completion = Box::new(move |commit| {
        done(commit.and(result));
    });
    (completion, poison)
}

struct Write<A, D, T> {
    apply: A,
    done: D,
    result: PhantomData<fn() -> T>,
}

impl<E, A, D, T> Job<E> for Write<A, D, T>
where
    E: Engine,
    A: FnOnce(&mut E::Txn) -> Result<T, StoreError> + Send,
    D: FnOnce(Result<T, StoreError>) + Send + 'static,
    T: Send + 'static,
{
    fn apply(self: Box<Self>, txn: &mut E::Txn) -> (Completion, Option<StoreError>) {
        let Self { apply, done, .. } = *self;
        apply_isolated::<E, T>(txn, apply, done)
    }

    fn refuse(self: Box<Self>, why: StoreError) {
        (self.done)(Err(why));
    }
}

/// A rerunnable write, with the result of its last unisolated application.
struct RerunWrite<A, D, T> {
    apply: A,
    done: D,
    result: Option<Result<T, StoreError>>,
}

impl<E, A, D, T> Job<E> for RerunWrite<A, D, T>
where
    E: Engine,
    A: Fn(&mut E::Txn) -> Result<T, StoreError> + Send,
    D: FnOnce(Result<T, StoreError>) + Send + 'static,
    T: Send + 'static,
{
    fn apply(self: Box<Self>, txn: &mut E::Txn) -> (Completion, Option<StoreError>) {
        let Self { apply, done, .. } = *self;
        apply_isolated::<E, T>(txn, apply, done)
    }

    fn refuse(self: Box<Self>, why: StoreError) {
        (self.done)(Err(why));
    }
}

impl<E, A, D, T> Rerun<E> for RerunWrite<A, D, T>
where
    E: Engine,
    A: Fn(&mut E::Txn) -> Result<T, StoreError> + Send,
    D: FnOnce(Result<T, StoreError>) + Send + 'static,
    T: Send + 'static,
{
    fn try_apply(&mut self, txn: &mut E::Txn) -> bool {
        let result = (self.apply)(txn);
        let applied = result.is_ok();
        self.result = Some(result);
        applied
    }

    fn finish(self: Box<Self>, commit: Result<(), StoreError>) {
        let result = self
            .result
            .unwrap_or_else(|| Err(StoreError::Storage("the write was never applied".into())));
        (self.done)(commit.and(result));
    }
}

enum Msg<E: Engine> {
    Write {
        job: Queued<E>,
        /// Whether the caller needs this write on disk before it hears back.
        durable: bool,
        /// It holds a place in the waiting writers' share (`Gate`), freed when it is taken.
        gated: bool,
    },
    /// Reclaim the space of deleted rows between batches (see `compact_async`).
    Compact(tokio::sync::oneshot::Sender<Result<(), StoreError>>),
    /// Commit what is queued, sync, and end the thread.
    Stop,
}

/// Whether a full queue makes the caller wait for room or refuses its write at once.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Full {
    Wait,
    Refuse,
}

/// Most writes one transaction takes; bounds commit latency under a flood, and the pages a
/// transaction holds dirty in memory (a backlog's drain peaked 22 MiB higher at 2048, one
/// pair of runs).
const MAX_BATCH: usize = 512;
const QUEUE_DEPTH: usize = 8192;
/// Of `QUEUE_DEPTH`, what writers that wait for room may hold: two full batches, so the
/// writer never waits for them, and a few MiB of queued rows rather than tens.
const WAITING_SHARE: usize = 2 * MAX_BATCH;
/// Longest a lazy write may stay unsynced.
const MAX_UNSYNCED: Duration = Duration::from_millis(200);
pub struct Writer<E: Engine> {
    tx: SyncSender<Msg<E>>,
    gate: Arc<Gate>,
    /// Why the last batch could not be committed, until one commits again. Reads may still
    /// answer from cache after an I/O error (redb then refuses every write until reopened),
    /// so readiness asks this too. `Closed` once the writer has been shut down.
    failure: Arc<Mutex<Option<StoreError>>>,
    /// Taken (and joined) by the first `shutdown`.
    thread: Arc<Mutex<Option<JoinHandle<()>>>>,
    thread_id: ThreadId,
}

// By hand: a derived Clone would ask `E: Clone`.
impl<E: Engine> Clone for Writer<E> {
    fn clone(&self) -> Self {
        Self {
            tx: self.tx.clone(),
            gate: Arc::clone(&self.gate),
            failure: Arc::clone(&self.failure),
            thread: Arc::clone(&self.thread),
            thread_id: self.thread_id,
        }
    }
}

/// The closure a write is: applied to the batch's transaction.
pub(in crate::store) trait Apply<E: Engine, T>:
    FnOnce(&mut E::Txn) -> Result<T, StoreError> + Send + 'static
{
}

impl<E: Engine, T, F> Apply<E, T> for F where
    F: FnOnce(&mut E::Txn) -> Result<T, StoreError> + Send + 'static
{
}

/// A write that may be applied more than once (see `Engine::TRY_UNISOLATED`): it changes
/// nothing but the transaction it is given, and gives the same result from the same rows.
pub(in crate::store) trait Rerunnable<E: Engine, T>:
    Fn(&mut E::Txn) -> Result<T, StoreError> + Send + 'static
{
}

impl<E: Engine, T, F> Rerunnable<E, T> for F where
    F: Fn(&mut E::Txn) -> Result<T, StoreError> + Send + 'static
{
}

impl<E: Engine> Writer<E> {
    pub fn start(engine: E) -> Self {
        Self::with_limits(engine, QUEUE_DEPTH, WAITING_SHARE)
    }

    /// A writer whose queue holds `depth` writes, all of which writers that wait for room
    /// may take (tests fill a small one).
    #[cfg(test)]
    pub(in crate::store) fn with_depth(engine: E, depth: usize) -> Self {
        Self::with_limits(engine, depth, depth)
    }

    /// A writer whose queue holds `depth` writes, of which writers that wait for room may
    /// hold `waiting_share`.
    pub(in crate::store) fn with_limits(mut engine: E, depth: usize, waiting_share: usize) -> Self {
        let (tx, rx) = sync_channel::<Msg<E>>(depth);
        let gate = Arc::new(Gate::new(waiting_share));
        let failure = Arc::new(Mutex::new(None));
        let writer_failure = Arc::clone(&failure);
        let writer_gate = Arc::clone(&gate);
        let thread = std::thread::Builder::new()
            .name("store-writer".into())
            .spawn(move || {
                run(&mut engine, &rx, &writer_failure, &writer_gate);
                writer_gate.close();
            })
            .expect("spawn store writer");
        Self {
            tx,
            gate,
            failure,
            thread_id: thread.thread().id(),
            thread: Arc::new(Mutex::new(Some(thread))),
        }
    }

    /// The error of the last batch, if it failed to begin or commit (not a write's own
    /// refusal); `Closed` after `shutdown`.
    pub fn failure(&self) -> Option<StoreError> {
        self.failure
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }

    /// Commits every write queued so far, syncs, and joins the writer thread. Writes queued
    /// after it are refused with `Closed`. A second call (or one from the writer thread
    /// itself, in a completion) only waits for nothing.
    pub fn shutdown(&self) {
        let Some(thread) = self
            .thread
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take()
        else {
            return;
        };
        if std::thread::current().id() == self.thread_id {
            // Joining itself would never return; the thread ends after this batch.
            let _ = self.tx.try_send(Msg::Stop);
            return;
        }
        // Waits for room if the queue is full: the writer is draining it.
        let _ = self.tx.send(Msg::Stop);
        if thread.join().is_err() {
            tracing::error!("the store writer thread panicked");
        }
        *self.failure.lock().unwrap_or_else(PoisonError::into_inner) = Some(StoreError::Closed);
    }

    /// Queues `apply`; `done` gets its result once the batch holding it is durable.
    pub fn submit<T: Send + 'static>(
        &self,
        apply: impl Apply<E, T>,
        done: impl FnOnce(Result<T, StoreError>) + Send + 'static,
    ) {
        self.queue(apply, done, true, Full::Wait);
    }

    /// Like `submit`, but `done` may run before the write is synced (see the module comment):
    /// only for writes that a crash may lose without losing a delivery.
    pub fn submit_lazy<T: Send + 'static>(
        &self,
        apply: impl Apply<E, T>,
        done: impl FnOnce(Result<T, StoreError>) + Send + 'static,
    ) {
        self.queue(apply, done, false, Full::Wait);
    }

    /// `submit_lazy` for a request thread: a full queue refuses the write (`done` gets
    /// `Overloaded`) instead of waiting.
    pub fn try_submit_lazy<T: Send + 'static>(
        &self,
        apply: impl Apply<E, T>,
        done: impl FnOnce(Result<T, StoreError>) + Send + 'static,
    ) {
        self.queue(apply, done, false, Full::Refuse);
    }

    /// `submit_lazy` of a write that may be applied more than once, which spares it its
    /// isolation where that costs something (`Engine::TRY_UNISOLATED`).
    pub fn submit_lazy_rerunnable<T: Send + 'static>(
        &self,
        apply: impl Rerunnable<E, T>,
        done: impl FnOnce(Result<T, StoreError>) + Send + 'static,
    ) {
        self.queue_job(rerun(apply, done), false, Full::Wait);
    }

    /// `submit` of a write that may be applied more than once (`submit_lazy_rerunnable`),
    /// for a request thread: a full queue refuses it (`done` gets `Overloaded`).
    pub fn try_submit_rerunnable<T: Send + 'static>(
        &self,
        apply: impl Rerunnable<E, T>,
        done: impl FnOnce(Result<T, StoreError>) + Send + 'static,
    ) {
        self.queue_job(rerun(apply, done), true, Full::Refuse);
    }

    /// `write` of a write that may be applied more than once (`submit_lazy_rerunnable`).
    pub fn write_rerunnable<T: Send + 'static>(
        &self,
        apply: impl Rerunnable<E, T>,
    ) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        let done = move |r| {
            let _ = tx.send(r);
        };
        self.queue_job(rerun(apply, done), true, Full::Wait);
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// `write_async` of a write that may be applied more than once (`submit_lazy_rerunnable`).
    pub async fn write_async_rerunnable<T: Send + 'static>(
        &self,
        apply: impl Rerunnable<E, T>,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let done = move |r| {
            let _ = tx.send(r);
        };
        self.queue_job(rerun(apply, done), true, Full::Refuse);
        rx.await.unwrap_or(Err(StoreError::Closed))
    }

    fn queue<T: Send + 'static>(
        &self,
        apply: impl Apply<E, T>,
        done: impl FnOnce(Result<T, StoreError>) + Send + 'static,
        durable: bool,
        full: Full,
    ) {
        let job = Queued::Once(Box::new(Write {
            apply,
            done,
            result: PhantomData,
        }));
        self.queue_job(job, durable, full);
    }

    fn queue_job(&self, job: Queued<E>, durable: bool, full: Full) {
        // The writer thread itself (a completion that writes again) must not wait at the
        // gate: only it frees the places it would wait for.
        let gated = full == Full::Wait && std::thread::current().id() != self.thread_id;
        if gated {
            self.gate.enter();
        }
        let msg = Msg::Write {
            job,
            durable,
            gated,
        };
        let refused = match self.tx.try_send(msg) {
            Ok(()) => return,
            Err(TrySendError::Disconnected(msg)) => (msg, StoreError::Closed),
            Err(TrySendError::Full(msg)) if full == Full::Refuse => (msg, StoreError::Overloaded),
            // The queue is full: wait for room, which slows producers to the disk's pace.
            Err(TrySendError::Full(msg)) => match self.tx.send(msg) {
                Ok(()) => return,
                Err(back) => (back.0, StoreError::Closed),
            },
        };
        if let (Msg::Write { job, .. }, why) = refused {
            job.refuse(why);
        }
    }

    /// Blocking write: returns once the change is on disk.
    pub fn write<T: Send + 'static>(&self, apply: impl Apply<E, T>) -> Result<T, StoreError> {
        let (tx, rx) = std::sync::mpsc::sync_channel(1);
        self.submit(apply, move |r| {
            let _ = tx.send(r);
        });
        rx.recv().unwrap_or(Err(StoreError::Closed))
    }

    /// Compacts the database file once every write queued before it is committed, so pages
    /// that held deleted rows are overwritten or cut off the file rather than left free
    /// with their old bytes (an erasure's promise). Reads wait while it runs.
    pub async fn compact_async(&self) -> Result<(), StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        let refused = match self.tx.try_send(Msg::Compact(tx)) {
            Ok(()) => None,
            Err(TrySendError::Full(_)) => Some(StoreError::Overloaded),
            Err(TrySendError::Disconnected(_)) => Some(StoreError::Closed),
        };
        if let Some(why) = refused {
            return Err(why);
        }
        rx.await.unwrap_or(Err(StoreError::Closed))
    }

    /// Async write for request handlers: awaits durability without holding a thread, and
    /// fails at once with `Overloaded` when the queue is full.
    pub async fn write_async<T: Send + 'static>(
        &self,
        apply: impl Apply<E, T>,
    ) -> Result<T, StoreError> {
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.queue(
            apply,
            move |r| {
                let _ = tx.send(r);
            },
            true,
            Full::Refuse,
        );
        rx.await.unwrap_or(Err(StoreError::Closed))
    }
}

fn rerun<E: Engine, T: Send + 'static>(
    apply: impl Rerunnable<E, T>,
    done: impl FnOnce(Result<T, StoreError>) + Send + 'static,
) -> Queued<E> {
    Queued::Again(Box::new(RerunWrite {
        apply,
        done,
        result: None,
    }))
}

type Failure = Mutex<Option<StoreError>>;

fn run<E: Engine>(engine: &mut E, rx: &Receiver<Msg<E>>, failure: &Failure, gate: &Gate) {
    let mut last_sync = Instant::now();
    let mut unsynced = false;
    let mut stopping = false;
    loop {
        let first = if stopping {
            // Draining after `Stop`: whatever is still queued, then the end.
            match rx.try_recv() {
                Ok(msg) => Some(msg),
                Err(_) => return,
            }
        } else if unsynced {
            match rx.recv_timeout(MAX_UNSYNCED.saturating_sub(last_sync.elapsed())) {
                Ok(msg) => Some(msg),
                Err(RecvTimeoutError::Timeout) => None,
                Err(RecvTimeoutError::Disconnected) => {
                    sync(engine, failure);
                    return;
                }
            }
        } else {
            match rx.recv() {
                Ok(msg) => Some(msg),
                Err(_) => return,
            }
        };
        let mut batch = Vec::with_capacity(64);
        let mut compactions = Vec::new();
        let mut taken_through_gate = 0;
        let mut next = first;
        loop {
            match next {
                Some(Msg::Write {
                    job,
                    durable,
                    gated,
                }) => {
                    taken_through_gate += usize::from(gated);
                    batch.push((job, durable));
                }
                Some(Msg::Compact(reply)) => {
                    compactions.push(reply);
                    // Writes queued after it wait for the compaction.
                    break;
                }
                Some(Msg::Stop) => stopping = true,
                None => {}
            }
            if batch.len() >= MAX_BATCH {
                break;
            }
            match rx.try_recv() {
                Ok(msg) => next = Some(msg),
                Err(_) => break,
            }
        }
        // Their places free before the commit, so waiting writers queue the next batch
        // while this one commits.
        gate.leave(taken_through_gate);
        // Once stopping, every batch is synced, so the last one leaves nothing unsynced.
        let durable = stopping
            || batch.is_empty()
            || batch.iter().any(|(_, durable)| *durable)
            || last_sync.elapsed() >= MAX_UNSYNCED;
        if commit_batch(engine, batch, durable, failure) && durable {
            last_sync = Instant::now();
            unsynced = false;
        } else if !durable {
            unsynced = true;
        }
        for reply in compactions {
            // Compaction's own commits are durable: nothing is left unsynced after it.
            let outcome = engine.compact();
            if outcome.is_ok() {
                last_sync = Instant::now();
                unsynced = false;
            }
            let _ = reply.send(outcome);
        }
    }
}

/// Makes every earlier lazy commit durable (an empty durable commit).
fn sync<E: Engine>(engine: &mut E, failure: &Failure) {
    commit_batch(engine, Vec::new(), true, failure);
}

/// Applies and commits one batch, then tells every op how it went; true if it committed.
///
/// Where the engine asks for it (`TRY_UNISOLATED`), the rerunnable writes at the batch's
/// head, up to its first write that runs only once, are applied without isolation. If one of
/// them is refused, the transaction is rolled back (nothing that runs once has been applied
/// yet) and the batch is applied again with every write isolated, so that write alone is
/// undone and the others commit.
fn commit_batch<E: Engine>(
    engine: &mut E,
    batch: Vec<(Queued<E>, bool)>,
    durable: bool,
    failure: &Failure,
) -> bool {
    let mut queue: VecDeque<Queued<E>> = batch.into_iter().map(|(job, _)| job).collect();
    let mut isolate_all = !E::TRY_UNISOLATED;
    loop {
        let mut tried: Vec<Box<dyn Rerun<E>>> = Vec::new();
        let mut completions = Vec::new();
        let mut refused = false;
        let outcome = engine.batch(durable, &mut |txn| {
            let mut poison = None;
            let mut isolate = isolate_all;
            while let Some(job) = queue.pop_front() {
                match job {
                    Queued::Again(mut job) if !isolate => {
                        let applied = job.try_apply(txn);
                        tried.push(job);
                        if !applied {
                            refused = true;
                            return Some(StoreError::Conflict(
                                "a write was refused: the batch is applied again, each write isolated"
                                    .into(),
                            ));
                        }
                    }
                    job => {
                        isolate = true;
                        let (completion, poisoned) = job.into_job().apply(txn);
                        completions.push(completion);
                        if poison.is_none() {
                            poison = poisoned;
                        }
                    }
                }
            }
            poison
        });
        if refused {
            // Only the unisolated head was applied: back to the front of the queue, in order.
            for job in tried.into_iter().rev() {
                queue.push_front(Queued::Again(job));
            }
            isolate_all = true;
            continue;
        }
        if let Err(e) = &outcome {
            tracing::error!(error = %e, "write batch not committed");
        }
        let committed = outcome.is_ok();
        let mut failure = failure.lock().unwrap_or_else(PoisonError::into_inner);
        match &outcome {
            Ok(()) => *failure = None,
            Err(e @ StoreError::Storage(_)) => *failure = Some(e.clone()),
            // A damaged record poisoned the batch: that says nothing about the disk.
            Err(_) => {}
        }
        drop(failure);
        // Writes the batch never reached (it could not begin: the database away) are told
        // so, as a refused write is: a lazy write's caller has no reply channel to see close.
        if let Err(e) = &outcome {
            for job in queue {
                job.refuse(e.clone());
            }
        }
        // In the order they were applied: the unisolated head came first.
        for job in tried {
            job.finish(outcome.clone());
        }
        for completion in completions {
            completion(outcome.clone());
        }
        return committed;
    }
}
