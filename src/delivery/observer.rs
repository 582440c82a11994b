//! What the dispatcher tells whoever watches it (the alerts monitor): each finished attempt
//! and each rule it turned off. A bounded channel, sent to without blocking: a worker never
//! waits on the watcher, and a watcher that falls far behind loses observations (logged), not
//! deliveries.

use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use crate::domain::delivery::ErrorKind;
use crate::domain::ids::RuleId;

/// Observations waiting for the watcher; past this, new ones are dropped.
const BOUND: usize = 4096;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Observation {
    /// An attempt finished (its log write may still be on the way).
    Attempt {
        rule_id: RuleId,
        at: i64,
        succeeded: bool,
        error_kind: Option<ErrorKind>,
        status_code: Option<u16>,
        /// A test delivery's attempt (it says nothing about the rule's real traffic).
        test: bool,
        /// The delivery carries a system event (`tidings:…`): alerts must not feed on it.
        system_event: bool,
    },
    /// The dispatcher turned a rule off (a 410 answer, or `alerts.disable_after`).
    Deactivated {
        rule_id: RuleId,
        reason: String,
        /// It was a system event's delivery that was answered 410.
        system_event: bool,
    },
}

/// The dispatcher's end; cheap to clone.
#[derive(Clone)]
pub struct Observer(SyncSender<Observation>);

impl Observer {
    pub fn send(&self, observation: Observation) {
        match self.0.try_send(observation) {
            Ok(()) | Err(TrySendError::Disconnected(_)) => {}
            Err(TrySendError::Full(_)) => {
                tracing::warn!("the alerts monitor is behind: an attempt was not counted");
            }
        }
    }
}

/// A new channel: the dispatcher's end and the watcher's.
pub fn channel() -> (Observer, Receiver<Observation>) {
    let (tx, rx) = sync_channel(BOUND);
    (Observer(tx), rx)
}
