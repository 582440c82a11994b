//! Writes of one kind gathered while they wait for the writer, and applied together: the
//! first one added when none waits makes one write; that write, when the writer applies it,
//! takes every one waiting by then and stores them with one statement, and tells each how
//! its batch ended. A busy writer (the one serial point of a node's writes, where each
//! round trip is a wait) thus makes one round trip for many ingests or attempts.

use std::sync::{Arc, Mutex, PoisonError};

use super::engine::PgTxn;
use crate::store::{StoreError, WriteDone};

/// The rows waiting, each with whom to tell.
pub(super) struct Gathered<R> {
    waiting: Mutex<Vec<(R, WriteDone)>>,
}

impl<R> Default for Gathered<R> {
    fn default() -> Self {
        Self {
            waiting: Mutex::new(Vec::new()),
        }
    }
}

/// What one write took from the waiting rows (kept, should its batch be applied again).
struct Taken<R> {
    rows: Option<Vec<R>>,
    dones: Vec<WriteDone>,
}

impl<R: Send + 'static> Gathered<R> {
    fn take_waiting(&self) -> Vec<(R, WriteDone)> {
        std::mem::take(&mut *self.waiting.lock().unwrap_or_else(PoisonError::into_inner))
    }

    /// Adds `row`. If it is the first waiting, returns the write to queue (rerunnable: it
    /// changes only the transaction) and its completion: `store` gets every row waiting
    /// when the write is applied. Otherwise the write already queued takes this row too.
    // The two closures' types cannot be named (`impl Fn` types cannot be aliased).
    #[allow(clippy::type_complexity)]
    pub(super) fn add(
        self: &Arc<Self>,
        row: R,
        done: WriteDone,
        store: impl Fn(&mut PgTxn, &[R]) -> Result<(), StoreError> + Send + 'static,
    ) -> Option<(
        impl Fn(&mut PgTxn) -> Result<(), StoreError> + Send + 'static,
        impl FnOnce(Result<(), StoreError>) + Send + 'static,
    )> {
        let first = {
            let mut waiting = self.waiting.lock().unwrap_or_else(PoisonError::into_inner);
            waiting.push((row, done));
            waiting.len() == 1
        };
        if !first {
            return None;
        }
        let taken = Arc::new(Mutex::new(Taken {
            rows: None,
            dones: Vec::new(),
        }));
        let (apply_taken, done_taken) = (Arc::clone(&taken), taken);
        let (apply_gathered, done_gathered) = (Arc::clone(self), Arc::clone(self));
        let apply = move |txn: &mut PgTxn| {
            let mut taken = apply_taken.lock().unwrap_or_else(PoisonError::into_inner);
            if taken.rows.is_none() {
                let (rows, dones) = apply_gathered.take_waiting().into_iter().unzip();
                taken.rows = Some(rows);
                taken.dones = dones;
            }
            store(txn, taken.rows.as_deref().unwrap_or_default())
        };
        let done = move |result: Result<(), StoreError>| {
            let mut taken = done_taken.lock().unwrap_or_else(PoisonError::into_inner);
            let dones = if taken.rows.is_some() {
                std::mem::take(&mut taken.dones)
            } else {
                // Refused before it was applied (the queue full, the database away, the
                // store shut down): the rows waiting for it hear so, and the next one added
                // makes a write of its own.
                done_gathered
                    .take_waiting()
                    .into_iter()
                    .map(|(_, done)| done)
                    .collect()
            };
            drop(taken);
            for done in dones {
                done(result.clone());
            }
        };
        Some((apply, done))
    }
}
