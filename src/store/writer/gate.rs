//! How much of the writer's queue the writers that wait for room (delivery workers, upkeep,
//! the CLI) may hold at once. Without it, 32 workers draining a backlog may fill the whole
//! queue with attempt logs: thousands of sealed rows waiting in memory, and a request's
//! write refused (`Overloaded`) for want of room. With it, waiting writers queue up to their
//! share and then wait their turn here; the rest of the queue stays for request handlers,
//! which are refused rather than kept waiting.

use std::sync::{Condvar, Mutex, PoisonError};

/// Places taken and writers waiting; `closed` once the writer thread has ended.
#[derive(Default)]
struct State {
    /// Writes let through and not yet taken by the writer thread.
    held: usize,
    /// Writers asleep in `enter`, waiting for a place.
    waiting: usize,
    closed: bool,
}

pub(super) struct Gate {
    state: Mutex<State>,
    room: Condvar,
    share: usize,
}

impl Gate {
    pub fn new(share: usize) -> Self {
        Self {
            state: Mutex::new(State::default()),
            room: Condvar::new(),
            share: share.max(1),
        }
    }

    /// Waits until the share has room and takes a place in it; at once once the writer has
    /// ended (its queue then refuses the write as `Closed`).
    pub fn enter(&self) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        while !state.closed && state.held >= self.share {
            state.waiting += 1;
            state = self
                .room
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
            state.waiting -= 1;
        }
        if !state.closed {
            state.held += 1;
        }
    }

    /// The writer thread took `taken` writes that entered: their places are free again.
    /// Called once per batch, not per write, and it wakes writers only when some wait (a
    /// wake-up is a system call): as many as there are places freed, since a woken writer
    /// takes one place and wakes nobody. (Waking only when the share had been full, one
    /// writer for a batch's worth of freed places, left all but one delivery worker asleep
    /// behind a full share that never filled again.)
    pub fn leave(&self, taken: usize) {
        if taken == 0 {
            return;
        }
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.held = state.held.saturating_sub(taken);
        let waiting = state.waiting;
        drop(state);
        if waiting == 0 {
            return;
        }
        if taken >= waiting {
            self.room.notify_all();
        } else {
            for _ in 0..taken {
                self.room.notify_one();
            }
        }
    }

    /// The writer thread has ended: nobody waits for room any more.
    pub fn close(&self) {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .closed = true;
        self.room.notify_all();
    }
}
