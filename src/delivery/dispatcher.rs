//! The dispatcher: an in-memory due-queue mirrored from the durable one, worker threads that
//! take due deliveries (respecting each rule's `max_concurrency`), and the bookkeeping after
//! each attempt. A retry is queued only once its attempt is on disk, so a crash can repeat an
//! attempt (at-least-once) but never lose a delivery.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::delivery::attempt::{Env, PrepareError, perform, prepare, template_failure};
use crate::delivery::outcome::{Judged, Verdict};
use crate::delivery::retry::RetryPolicy;
use crate::delivery::transport::Transport;
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::ids::{DeliveryId, RuleId};
use crate::domain::rule::{DEFAULT_MAX_CONCURRENCY, Rule};
use crate::domain::time::{Clock, to_rfc3339};
use crate::security::crypto::MasterKey;
use crate::security::ssrf::AddressPolicy;
use crate::store::{DueDelivery, Store};
use crate::telemetry::Metrics;

/// Worker threads: each holds one blocking request at a time, so this bounds requests in flight.
pub const WORKERS: usize = 32;
/// The longest a waiting worker sleeps without re-checking, so shutdown and health stay prompt.
/// (A manual clock wakes the workers whenever it moves.)
const MAX_WAIT: Duration = Duration::from_secs(1);

/// What the dispatcher needs besides the store.
#[derive(Clone)]
pub struct Settings {
    pub retry: RetryPolicy,
    pub policy: Arc<AddressPolicy>,
    pub master_key: MasterKey,
    pub store_bodies: bool,
    /// A rule whose attempts have all failed this long is deactivated (`alerts.disable_after`).
    pub disable_after: Duration,
    /// A due delivery this overdue while no attempt finishes means the dispatcher is stuck
    /// (`alerts.dispatcher_stuck_after`).
    pub stuck_after: Duration,
    pub metrics: Metrics,
    /// How attempts reach receivers; each worker sends through its own `for_worker` copy.
    pub transport: Arc<dyn Transport>,
    /// Every time the dispatcher stamps or waits for: attempts, retries, health.
    pub clock: Clock,
}

#[derive(Default)]
struct Queue {
    /// (due ms, insertion order, delivery, rule), earliest first.
    due: BinaryHeap<Reverse<(i64, u64, DeliveryId, RuleId)>>,
    /// Deliveries in `due` or parked, so one is never queued twice.
    queued: HashSet<DeliveryId>,
    in_flight: HashMap<RuleId, u32>,
    /// Due deliveries waiting for a free slot under their rule's `max_concurrency`.
    parked: HashMap<RuleId, VecDeque<DeliveryId>>,
    seq: u64,
    shutdown: bool,
    last_progress_ms: i64,
}

struct Shared {
    queue: Mutex<Queue>,
    wake: Condvar,
    store: Store,
    settings: Settings,
    /// Mirror of the store's failing-since table, so only changes are written.
    failing_since: Mutex<HashMap<RuleId, i64>>,
}

/// Handle to the running dispatcher; cheap to clone.
#[derive(Clone)]
pub struct Dispatcher {
    shared: Arc<Shared>,
    threads: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Dispatcher {
    /// Loads every open delivery from the store and starts the workers.
    pub fn start(store: Store, settings: Settings) -> Result<Self, crate::store::StoreError> {
        let open = store.open_deliveries()?;
        let failing_since = Mutex::new(store.rules_failing_since()?);
        let shared = Arc::new(Shared {
            queue: Mutex::new(Queue {
                last_progress_ms: settings.clock.now_ms(),
                ..Queue::default()
            }),
            wake: Condvar::new(),
            store,
            settings,
            failing_since,
        });
        // Waiting workers wake when a manual clock moves, so a delivery it made due goes out
        // now rather than at their next re-check.
        let watched = Arc::downgrade(&shared);
        shared.settings.clock.on_move(move || {
            watched.upgrade().is_some_and(|shared| {
                shared.clock_moved();
                true
            })
        });
        if !open.is_empty() {
            tracing::info!(count = open.len(), "resuming open deliveries");
        }
        let dispatcher = Self {
            shared,
            threads: Arc::default(),
        };
        dispatcher.enqueue(open);
        let mut threads = Vec::with_capacity(WORKERS);
        for i in 0..WORKERS {
            let shared = Arc::clone(&dispatcher.shared);
            let handle = std::thread::Builder::new()
                .name(format!("deliver-{i}"))
                .spawn(move || worker(&shared))
                .expect("spawn delivery worker");
            threads.push(handle);
        }
        *dispatcher.threads.lock().expect("threads lock") = threads;
        Ok(dispatcher)
    }

    /// Hands deliveries (already durable) to the workers.
    pub fn enqueue(&self, deliveries: impl IntoIterator<Item = DueDelivery>) {
        self.shared.enqueue(deliveries);
    }

    /// Convenience for freshly created or re-opened deliveries.
    pub fn enqueue_deliveries<'a>(&self, deliveries: impl IntoIterator<Item = &'a Delivery>) {
        self.enqueue(
            deliveries
                .into_iter()
                .filter(|d| d.status.is_open())
                .map(|d| DueDelivery {
                    id: d.id.clone(),
                    rule_id: d.rule_id.clone(),
                    due_at: d.next_attempt_at.unwrap_or(0),
                }),
        );
    }

    /// Whether workers are alive and keeping up: false after shutdown, or when a due delivery
    /// has waited over `stuck_after` while no attempt finished.
    pub fn is_healthy(&self) -> bool {
        let stuck_after =
            i64::try_from(self.shared.settings.stuck_after.as_millis()).unwrap_or(i64::MAX);
        let q = self.shared.lock();
        if q.shutdown {
            return false;
        }
        let now = self.shared.settings.clock.now_ms();
        let oldest_due = q.due.peek().map(|Reverse((due, ..))| *due);
        let overdue = oldest_due.is_some_and(|due| now - due > stuck_after);
        !(overdue && now - q.last_progress_ms > stuck_after)
    }

    /// Deliveries waiting in memory (due or parked), and since when the most overdue one has
    /// been due (Unix ms), for metrics.
    pub fn backlog(&self) -> (usize, Option<i64>) {
        let q = self.shared.lock();
        let oldest = q.due.peek().map(|Reverse((due, ..))| *due);
        (q.queued.len(), oldest)
    }

    /// Stops the workers after their current attempt and waits for them.
    pub fn shutdown(&self) {
        self.shared.lock().shutdown = true;
        self.shared.wake.notify_all();
        let threads = std::mem::take(&mut *self.threads.lock().expect("threads lock"));
        for t in threads {
            let _ = t.join();
        }
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A worker that panicked while holding the lock leaves the queue usable.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn enqueue(&self, deliveries: impl IntoIterator<Item = DueDelivery>) {
        let mut q = self.lock();
        let mut added = 0;
        for d in deliveries {
            if q.queued.insert(d.id.clone()) {
                q.seq += 1;
                let seq = q.seq;
                q.due.push(Reverse((d.due_at, seq, d.id, d.rule_id)));
                added += 1;
            }
        }
        drop(q);
        match added {
            0 => {}
            1 => self.wake.notify_one(),
            _ => self.wake.notify_all(),
        }
    }

    fn limit_for(&self, rule: &RuleId) -> u32 {
        self.store
            .cached_rule(rule)
            .map_or(DEFAULT_MAX_CONCURRENCY, |r| r.max_concurrency)
    }

    /// Blocks until a delivery is due and its rule has a free slot; None on shutdown.
    fn next_job(&self) -> Option<(DeliveryId, RuleId)> {
        let mut q = self.lock();
        loop {
            if q.shutdown {
                return None;
            }
            let now = self.settings.clock.now_ms();
            while let Some(Reverse((due, ..))) = q.due.peek() {
                if *due > now {
                    break;
                }
                let Reverse((_, _, id, rule)) = q.due.pop().expect("peeked");
                let running = q.in_flight.get(&rule).copied().unwrap_or(0);
                if running < self.limit_for(&rule) {
                    *q.in_flight.entry(rule.clone()).or_default() += 1;
                    q.queued.remove(&id);
                    return Some((id, rule));
                }
                q.parked.entry(rule).or_default().push_back(id);
            }
            let wait = q.due.peek().map_or(MAX_WAIT, |Reverse((due, ..))| {
                Duration::from_millis(u64::try_from(due - now).unwrap_or(0)).min(MAX_WAIT)
            });
            q = self
                .wake
                .wait_timeout(q, wait)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
        }
    }

    /// Wakes every waiting worker to look at the time again. Taking the lock first means a
    /// worker that read the time before the move is already waiting, so it hears this.
    fn clock_moved(&self) {
        drop(self.lock());
        self.wake.notify_all();
    }

    /// Frees the rule's slot and lets the next parked delivery of that rule go.
    fn finish(&self, rule: &RuleId) {
        let mut q = self.lock();
        q.last_progress_ms = self.settings.clock.now_ms();
        if let Some(n) = q.in_flight.get_mut(rule) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                q.in_flight.remove(rule);
            }
        }
        let next = q.parked.get_mut(rule).and_then(VecDeque::pop_front);
        if q.parked.get(rule).is_some_and(VecDeque::is_empty) {
            q.parked.remove(rule);
        }
        if let Some(id) = next {
            q.seq += 1;
            let seq = q.seq;
            q.due.push(Reverse((0, seq, id, rule.clone())));
            drop(q);
            self.wake.notify_one();
        }
    }
}

fn worker(shared: &Arc<Shared>) {
    let transport = shared.settings.transport.for_worker();
    while let Some((id, rule_id)) = shared.next_job() {
        // A panic must not take the worker, or the rule's concurrency slot, with it.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            deliver(shared, &*transport, &id, &rule_id)
        }));
        match outcome {
            Ok(Ok(())) => {}
            // The delivery stays in the durable queue and is retried after a restart.
            Ok(Err(e)) => {
                tracing::error!(delivery = %id, error = %e, "delivery attempt could not be processed");
            }
            Err(_) => tracing::error!(delivery = %id, "delivery attempt panicked"),
        }
        shared.finish(&rule_id);
    }
}

fn deliver(
    shared: &Arc<Shared>,
    transport: &dyn Transport,
    id: &DeliveryId,
    rule_id: &RuleId,
) -> Result<(), Box<dyn std::error::Error>> {
    let store = &shared.store;
    let settings = &shared.settings;
    let Some((delivery, event)) = store.delivery_with_event(id)? else {
        return Ok(());
    };
    if !delivery.status.is_open() {
        return Ok(());
    }
    let rule = match store.cached_rule(rule_id) {
        Some(rule) if rule.active => rule,
        // Deleted or deactivated rules deliver nothing more.
        _ => {
            store.close_delivery(id, DeliveryStatus::Failed)?;
            return Ok(());
        }
    };
    let workspace_name = store.workspace_name(&event.workspace_id)?;
    let env = Env {
        transport,
        policy: &settings.policy,
        retry: &settings.retry,
        clock: &settings.clock,
        store_bodies: settings.store_bodies,
    };
    let Judged { attempt, verdict } = match prepare(
        &rule,
        &event,
        &workspace_name,
        id.as_str(),
        &settings.master_key,
        settings.clock.now_ms(),
    ) {
        Ok(request) => perform(&env, &rule, &request, &delivery),
        Err(PrepareError::Template(e)) => template_failure(&env, &rule, &delivery, &e),
        Err(PrepareError::Crypto(e)) => {
            // A secret that does not decrypt cannot sign; retrying will not change that.
            return Err(Box::new(e));
        }
    };
    if verdict == Verdict::Gone {
        let reason = format!(
            "deactivated after the receiver answered 410 Gone to delivery {} at {}",
            delivery.id,
            to_rfc3339(attempt.started_at)
        );
        deactivate(store, &rule, reason);
    } else {
        track_failing(shared, &rule, &attempt);
    }
    let outcome = verdict.next_state();
    let retry = outcome.next_attempt_at.map(|due| DueDelivery {
        id: id.clone(),
        rule_id: rule_id.clone(),
        due_at: due,
    });
    let shared_after = Arc::clone(shared);
    let delivery_id = id.clone();
    let updated = delivery.advanced(attempt.number, outcome, settings.clock.now_ms());
    #[allow(clippy::cast_precision_loss)] // milliseconds well within f64's exact range
    let seconds = attempt.duration_ms as f64 / 1000.0;
    settings
        .metrics
        .attempt(updated.status.as_str(), rule_id.as_str(), seconds);
    store.record_attempt(
        &updated,
        &attempt,
        Box::new(move |r| match r {
            Ok(()) => shared_after.enqueue(retry),
            Err(e) => {
                tracing::error!(delivery = %delivery_id, error = %e, "attempt could not be logged");
            }
        }),
    );
    Ok(())
}

/// Keeps each rule's failing clock: started by a failed attempt, cleared by a success, and a
/// rule that has failed for `alerts.disable_after` is deactivated so a dead endpoint stops
/// taking worker time.
fn track_failing(shared: &Shared, rule: &Rule, attempt: &Attempt) {
    let mut failing = shared
        .failing_since
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    if attempt.succeeded() {
        if failing.remove(&rule.id).is_some() {
            shared.store.set_rule_failing_since(&rule.id, None);
        }
        return;
    }
    let Some(&since) = failing.get(&rule.id) else {
        failing.insert(rule.id.clone(), attempt.started_at);
        shared
            .store
            .set_rule_failing_since(&rule.id, Some(attempt.started_at));
        return;
    };
    let limit = i64::try_from(shared.settings.disable_after.as_millis()).unwrap_or(i64::MAX);
    if attempt.started_at - since >= limit {
        failing.remove(&rule.id);
        drop(failing);
        shared.store.set_rule_failing_since(&rule.id, None);
        let reason = format!(
            "deactivated because every attempt has failed since {} (alerts.disable_after = {})",
            to_rfc3339(since),
            humantime::format_duration(shared.settings.disable_after)
        );
        deactivate(&shared.store, rule, reason);
    }
}

fn deactivate(store: &Store, rule: &Rule, reason: String) {
    tracing::warn!(rule = %rule.id, "{reason}");
    if let Err(e) = store.deactivate_rule(&rule.id, reason) {
        tracing::error!(rule = %rule.id, error = %e, "could not deactivate rule");
    }
}
