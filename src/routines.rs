//! The routine scheduler: one thread that fires each active routine (a rule with a schedule
//! trigger) when its next slot comes, as a `routine:fired` event addressed to that routine
//! alone and delivered like any other event.
//!
//! Each firing records its slot in the same transaction as its event, and the next slot is
//! computed from the later of that record and the rule's last change. So a restart never
//! fires a slot twice, and slots missed while tidings was down (or the thread was late) fire
//! once, for the latest of them, rather than once each.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{RecvTimeoutError, Sender, channel};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::app::intake::{Accepted, Intake, Recipients};
use crate::domain::event::{Event, EventType};
use crate::domain::ids::{EventId, RuleId};
use crate::domain::rule::{ROUTINE_FIRED, Rule};
use crate::domain::time::{Clock, to_rfc3339};
use crate::store::{Store, StoreError};

/// Longest the thread sleeps without looking again, so new or edited routines, a manual
/// clock's jumps and shutdown are noticed within this.
const MAX_WAIT: Duration = Duration::from_secs(1);

pub struct Routines {
    stop: Option<Sender<()>>,
    thread: Option<JoinHandle<()>>,
}

struct Scheduler {
    store: Store,
    intake: Intake,
    clock: Clock,
    /// Mirror of the durable last-fired table.
    last_fired: HashMap<RuleId, i64>,
}

impl Routines {
    pub fn start(store: Store, intake: Intake, clock: Clock) -> Result<Self, StoreError> {
        let last_fired = store.routine_last_fired()?;
        let mut scheduler = Scheduler {
            store,
            intake,
            clock,
            last_fired,
        };
        let (stop, stopped) = channel::<()>();
        let thread = std::thread::Builder::new()
            .name("routines".into())
            .spawn(move || {
                loop {
                    let wait = scheduler.tick();
                    // A message or a dropped sender both mean: stop.
                    if !matches!(stopped.recv_timeout(wait), Err(RecvTimeoutError::Timeout)) {
                        return;
                    }
                }
            })
            .map_err(|e| StoreError::Storage(format!("cannot start the routine scheduler: {e}")))?;
        Ok(Self {
            stop: Some(stop),
            thread: Some(thread),
        })
    }

    pub fn stop(&mut self) {
        self.stop.take();
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Scheduler {
    /// Fires every routine that is due and returns how long to sleep.
    fn tick(&mut self) -> Duration {
        let now = self.clock.now_ms();
        let mut next_due: Option<i64> = None;
        for rule in self.store.routines() {
            let Some(schedule) = rule.trigger.schedule() else {
                continue;
            };
            let since = self
                .last_fired
                .get(&rule.id)
                .copied()
                .unwrap_or(i64::MIN)
                .max(rule.updated_at);
            let Some(next) = schedule.next_after(since) else {
                continue;
            };
            if next > now {
                next_due = Some(next_due.map_or(next, |d| d.min(next)));
                continue;
            }
            // Due, perhaps several times over: one firing, for the latest slot passed.
            let slot = schedule.latest_at_or_before(now).unwrap_or(next).max(next);
            match self.fire(&rule, slot) {
                Ok(()) => {
                    self.last_fired.insert(rule.id.clone(), slot);
                }
                Err(e) => {
                    tracing::error!(rule = %rule.id, slot = %to_rfc3339(slot), error = %e, "routine could not fire; will try again");
                }
            }
        }
        next_due.map_or(MAX_WAIT, |due| {
            Duration::from_millis(u64::try_from(due - now).unwrap_or(0)).min(MAX_WAIT)
        })
    }

    fn fire(&self, rule: &Arc<Rule>, slot: i64) -> Result<(), StoreError> {
        let received_at = self.clock.now_ms();
        let event = Event {
            id: EventId::generate(received_at),
            workspace_id: rule.workspace_id.clone(),
            event_type: EventType::parse(ROUTINE_FIRED).expect("routine:fired is a valid type"),
            occurred_at: slot,
            received_at,
            data: rule.firing_data(slot),
            test: false,
            subject: None,
            erased: false,
        };
        let recipients = Recipients::Routine {
            rule: Arc::clone(rule),
            slot,
        };
        if let Accepted::Created { deliveries } =
            self.intake.accept_blocking(event, recipients, None)?
        {
            tracing::info!(rule = %rule.id, slot = %to_rfc3339(slot), deliveries, "routine fired");
        }
        Ok(())
    }
}
