//! How much of the writer's queue the writers that wait for room (delivery workers, upkeep,
//! the CLI) may hold at once. Without it, 32 workers draining a backlog may fill the whole
//! queue with attempt logs: thousands of sealed rows waiting in memory, and a request's
//! write refused (`Overloaded`) for want of room. With it, waiting writers queue up to their
//! share and then wait their turn here; the rest of the queue stays for request handlers,
//! which are refused rather than kept waiting.

use std::sync::{Condvar, Mutex, PoisonError};

pub(super) struct Gate {
    /// Writes let through and not yet taken by the writer thread; None once it has ended.
    held: Mutex<Option<usize>>,
    room: Condvar,
    share: usize,
}

impl Gate {
    pub fn new(share: usize) -> Self {
        Self {
            held: Mutex::new(Some(0)),
            room: Condvar::new(),
            share: share.max(1),
        }
    }

    /// Waits until the share has room and takes a place in it; at once once the writer has
    /// ended (its queue then refuses the write as `Closed`).
    pub fn enter(&self) {
        let held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let mut held = self
            .room
            .wait_while(held, |held| held.is_some_and(|n| n >= self.share))
            .unwrap_or_else(PoisonError::into_inner);
        if let Some(n) = held.as_mut() {
            *n += 1;
        }
    }

    /// The writer thread took a write that entered: its place is free again. Only a full
    /// share can have writers waiting, so only then is one woken: a wake-up is a system
    /// call, and this runs for every write the writer takes.
    pub fn leave(&self) {
        let mut held = self.held.lock().unwrap_or_else(PoisonError::into_inner);
        let Some(n) = held.as_mut() else {
            return;
        };
        let was_full = *n >= self.share;
        *n = n.saturating_sub(1);
        drop(held);
        if was_full {
            self.room.notify_one();
        }
    }

    /// The writer thread has ended: nobody waits for room any more.
    pub fn close(&self) {
        *self.held.lock().unwrap_or_else(PoisonError::into_inner) = None;
        self.room.notify_all();
    }
}
