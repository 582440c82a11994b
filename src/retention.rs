//! The retention thread: prunes delivery logs older than `logs.retention_days` (or a rule's
//! shorter `log.retention_days`) at start and
//! then every hour, by the injected clock, so a test that moves a manual clock past the next
//! hour sees the prune happen instead of waiting for it.

use std::sync::mpsc::{RecvTimeoutError, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::domain::time::Clock;
use crate::store::Store;

/// How often the delivery log is pruned (and once at start).
const PRUNE_EVERY: Duration = Duration::from_secs(3600);
const PRUNE_EVERY_MS: i64 = 3_600_000;
const DAY_MS: i64 = 86_400_000;

/// The background thread that prunes delivery logs older than `logs.retention_days`.
pub struct Retention {
    tell: Option<SyncSender<Message>>,
    thread: Option<JoinHandle<()>>,
}

enum Message {
    /// A manual clock moved: prune if it passed the next pruning time.
    ClockMoved,
    Stop,
}

impl Retention {
    pub fn start(store: Store, days: u32, clock: Clock) -> Self {
        let (tell, told) = sync_channel::<Message>(1);
        let on_move = tell.clone();
        // A wake already waiting covers this move too.
        clock.on_move(move || {
            !matches!(
                on_move.try_send(Message::ClockMoved),
                Err(TrySendError::Disconnected(_))
            )
        });
        let thread = std::thread::Builder::new()
            .name("retention".into())
            .spawn(move || {
                let mut next = prune(&store, days, clock.now_ms());
                loop {
                    match told.recv_timeout(PRUNE_EVERY) {
                        Err(RecvTimeoutError::Timeout) => {
                            next = prune(&store, days, clock.now_ms());
                        }
                        Ok(Message::ClockMoved) => {
                            let now = clock.now_ms();
                            if now >= next {
                                next = prune(&store, days, now);
                            }
                        }
                        Ok(Message::Stop) | Err(RecvTimeoutError::Disconnected) => return,
                    }
                }
            })
            .ok();
        Self {
            tell: Some(tell),
            thread,
        }
    }

    pub fn stop(&mut self) {
        if let Some(tell) = self.tell.take() {
            let _ = tell.send(Message::Stop);
        }
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

impl Drop for Retention {
    /// Dropped without `stop`, the thread still ends (without being waited for): a manual
    /// clock's watcher keeps the channel open, so closing it alone would not.
    fn drop(&mut self) {
        if let Some(tell) = self.tell.take() {
            let _ = tell.send(Message::Stop);
        }
    }
}

/// Prunes what is older than `days` before `now`; returns when the next prune is due.
fn prune(store: &Store, days: u32, now: i64) -> i64 {
    match store.prune_before(now - i64::from(days) * DAY_MS) {
        Ok((0, 0)) => {}
        Ok((deliveries, events)) => {
            tracing::info!(deliveries, events, days, "pruned the delivery log");
        }
        Err(e) => tracing::error!(error = %e, "pruning the delivery log failed"),
    }
    // A rule's own log.retention_days counts only where it is the shorter.
    for (rule, rule_days) in store.rules_with_retention() {
        if rule_days >= days {
            continue;
        }
        match store.prune_rule_before(&rule, now - i64::from(rule_days) * DAY_MS) {
            Ok((0, 0)) => {}
            Ok((deliveries, events)) => {
                tracing::info!(%rule, deliveries, events, days = rule_days, "pruned a rule's delivery log");
            }
            Err(e) => tracing::error!(%rule, error = %e, "pruning a rule's delivery log failed"),
        }
    }
    now + PRUNE_EVERY_MS
}
