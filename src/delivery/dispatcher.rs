//! The dispatcher: an in-memory due-queue mirrored from the durable one, worker threads that
//! take due deliveries, and (in `worker.rs`) the bookkeeping after each attempt. A retry is queued only once
//! its attempt is on disk, so a crash can repeat an attempt (at-least-once) but never lose a
//! delivery.
//!
//! The workers are shared so that no rule can starve the others: due deliveries wait in a
//! queue per rule and the rules take turns (round robin), not strict due-time order; a rule
//! holds at most its `max_concurrency`, a destination (host:port) at most
//! `delivery.max_workers_per_destination`, and the last `RESERVED_WORKERS` only go to a rule
//! with nothing in flight; a rule whose receiver hangs gets less through its circuit breaker
//! (`breaker.rs`), and such rules together hold at most `HANGING_SHARE`.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, HashSet, VecDeque};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::config::Config;
use crate::delivery::breaker::{Breaker, BreakerPolicy, Signal};
use crate::delivery::observer::{Observation, Observer};
use crate::delivery::ordering::OrderingWaits;
use crate::delivery::retry::RetryPolicy;
use crate::delivery::transport::Transport;
use crate::domain::delivery::Delivery;
use crate::domain::ids::{DeliveryId, RuleId};
use crate::domain::rule::{DEFAULT_MAX_CONCURRENCY, Rule};
use crate::domain::time::Clock;
use crate::security::opened_secrets::OpenedSecrets;
use crate::security::ssrf::AddressPolicy;
use crate::store::{DueDelivery, Store};
use crate::telemetry::Metrics;

mod compact;
mod worker;

use compact::{Compact, QueuedId, RuleIx};

/// Worker threads: each holds one blocking request at a time, so this bounds requests in flight.
pub const WORKERS: usize = 32;
/// Workers kept for rules with nothing in flight: however many rules hang on receivers that
/// never answer, a rule that has not got a worker yet finds one, so a healthy rule's
/// deliveries go out at once rather than after the hanging ones time out.
pub const RESERVED_WORKERS: usize = 4;
/// Workers that rules whose receivers hang (their last attempt timed out or could not
/// connect) may hold together: however many such rules there are, half the pool stays for
/// the others once each has hung once.
pub const HANGING_SHARE: usize = WORKERS / 2;
/// The longest a waiting worker sleeps without re-checking, so shutdown and health stay prompt.
/// (A manual clock wakes the workers whenever it moves.)
const MAX_WAIT: Duration = Duration::from_secs(1);

/// What the dispatcher needs besides the store.
#[derive(Clone)]
pub struct Settings {
    pub retry: RetryPolicy,
    pub policy: Arc<AddressPolicy>,
    /// The master key, remembering the rule secrets it has opened for attempts.
    pub secrets: OpenedSecrets,
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
    /// How the workers are shared between rules and destinations.
    pub fairness: Fairness,
    /// Told of every finished attempt and every rule turned off (the alerts monitor).
    pub observer: Option<Observer>,
}

/// The `[delivery]` settings and the delay `/readyz` reports (`alerts.deliveries_delayed_after`).
#[derive(Debug, Clone, Copy)]
pub struct Fairness {
    pub max_per_destination: u32,
    pub breaker: BreakerPolicy,
    pub delayed_after: Duration,
}

impl From<&Config> for Fairness {
    fn from(c: &Config) -> Self {
        Self {
            max_per_destination: u32::try_from(c.delivery.max_workers_per_destination)
                .unwrap_or(u32::MAX),
            breaker: BreakerPolicy {
                failures: c.delivery.breaker_failures,
                cooldown: c.delivery.breaker_cooldown,
            },
            delayed_after: c.alerts.deliveries_delayed_after,
        }
    }
}

/// A delivery taken by a worker, with what it holds.
struct Job {
    id: DeliveryId,
    rule: RuleId,
    rule_ix: RuleIx,
    /// The rule's `max_concurrency` when it was taken, for its slot among the nodes.
    max_concurrency: u32,
    destination: Option<Arc<str>>,
    /// Its rule's receiver was hanging when it started (counted in `HANGING_SHARE`).
    hanging: bool,
}

/// The in-memory queue. Deliveries and rules are held in their compact forms
/// (`compact.rs`): with a million deliveries owed, each costs about 60 bytes here.
#[derive(Default)]
struct Queue {
    /// Not yet due: (due ms, delivery, rule), earliest first (ids break ties in ingest order).
    due: BinaryHeap<Reverse<(i64, QueuedId, RuleIx)>>,
    /// Deliveries in `due` or `ready`, so one is never queued twice.
    queued: HashSet<QueuedId>,
    /// Due deliveries per rule, (due ms, delivery), in the order they fell due.
    ready: HashMap<RuleIx, VecDeque<(i64, QueuedId)>>,
    /// The rules with ready deliveries, the next to be offered a worker first.
    turns: VecDeque<RuleIx>,
    in_flight: HashMap<RuleIx, u32>,
    /// Attempts in flight per destination (host:port).
    at_destination: HashMap<Arc<str>, u32>,
    busy: usize,
    /// Workers waiting for work (in `next_job`'s wait), so a wake-up is sent only when one
    /// is there to hear it.
    idle: usize,
    /// Of `busy`, the attempts of rules whose breaker was not closed when they started.
    busy_hanging: usize,
    breakers: HashMap<RuleIx, Breaker>,
    /// Rules whose concurrency slots were all held (by other nodes of a shared store) when
    /// a worker asked: each runs no more than it had in flight then, until the time given,
    /// so idle workers do not ask the database again for every delivery of the rule.
    slot_caps: HashMap<RuleIx, (u32, i64)>,
    compact: Compact,
    /// What each rule's cached version allows, kept while the cache hands out the same
    /// version, so a turn does not parse the rule's URL again.
    admissions: HashMap<RuleIx, (Arc<Rule>, Admission)>,
    shutdown: bool,
    last_progress_ms: i64,
    /// Deliveries of ordered rules waiting for the one ahead of them with the same key
    /// (SPEC §15). They are in no other queue until released.
    ordering: OrderingWaits,
}

impl Queue {
    /// When the earliest delivery not yet due falls due.
    fn next_due(&self) -> Option<i64> {
        self.due.peek().map(|Reverse((due, ..))| *due)
    }

    /// Moves what has fallen due into its rule's ready queue.
    fn promote(&mut self, now: i64) {
        while let Some(Reverse((due, ..))) = self.due.peek() {
            if *due > now {
                break;
            }
            let Reverse((due, id, rule)) = self.due.pop().expect("peeked");
            self.make_ready(rule, due, id);
        }
        // A drained backlog gives its memory back.
        if self.due.capacity() > 1024 && self.due.len() < self.due.capacity() / 4 {
            self.due.shrink_to(self.due.len() * 2);
        }
    }

    /// Puts a delivery in the due queue unless it is queued already; whether it was added.
    fn push_due(&mut self, id: &DeliveryId, rule: &RuleId, due_at: i64) -> bool {
        let id = self.compact.delivery(id);
        if !self.queued.insert(id) {
            return false;
        }
        let rule = self.compact.rule(rule);
        self.due.push(Reverse((due_at, id, rule)));
        true
    }

    /// Hands the first waiting delivery of each ordering key whose time to look again has
    /// come back to the due queue; the earliest such time still ahead.
    fn recheck_parked(&mut self, now: i64) -> Option<i64> {
        let (freed, next) = self.ordering.due_rechecks(now);
        for (id, rule) in freed {
            self.push_due(&id, &rule, now);
        }
        next
    }

    fn make_ready(&mut self, rule: RuleIx, due: i64, id: QueuedId) {
        let queue = self.ready.entry(rule).or_default();
        if queue.is_empty() {
            self.turns.push_back(rule);
        }
        queue.push_back((due, id));
    }

    fn is_hanging(&self, rule: RuleIx) -> bool {
        self.breakers.get(&rule).is_some_and(|b| !b.is_closed())
    }

    fn allowance(&self, rule: RuleIx, now: i64) -> u32 {
        let breaker = self
            .breakers
            .get(&rule)
            .map_or(u32::MAX, |b| b.allowance(now));
        let slots = self
            .slot_caps
            .get(&rule)
            .filter(|(_, until)| *until > now)
            .map_or(u32::MAX, |(cap, _)| *cap);
        breaker.min(slots)
    }
}

/// What the dispatcher knows of a rule when deciding whether it may take a worker.
#[derive(Clone)]
struct Admission {
    max_concurrency: u32,
    destination: Option<Arc<str>>,
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
        // On a store shared by several nodes: deliveries taken over from a node that died.
        let taker = Arc::downgrade(&dispatcher.shared);
        dispatcher.shared.store.on_reclaimed(Box::new(move |due| {
            if let Some(shared) = taker.upgrade() {
                shared.enqueue(due);
            }
        }));
        let mut threads = Vec::with_capacity(WORKERS);
        for i in 0..WORKERS {
            let shared = Arc::clone(&dispatcher.shared);
            let handle = std::thread::Builder::new()
                .name(format!("deliver-{i}"))
                .spawn(move || worker::run(&shared))
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
    /// Deliveries held back by an open breaker, or by their own rule's `max_concurrency`,
    /// wait by design and do not count.
    pub fn is_healthy(&self) -> bool {
        let stuck_after =
            i64::try_from(self.shared.settings.stuck_after.as_millis()).unwrap_or(i64::MAX);
        let mut q = self.shared.lock();
        if q.shutdown {
            return false;
        }
        let now = self.shared.settings.clock.now_ms();
        let oldest_due = self.shared.oldest_starved(&mut q, now);
        let overdue = oldest_due.is_some_and(|due| now - due > stuck_after);
        !(overdue && now - q.last_progress_ms > stuck_after)
    }

    /// Whether due deliveries go out on time: false once one that only a saturated worker
    /// pool holds back has waited over `alerts.deliveries_delayed_after`.
    pub fn is_on_time(&self) -> bool {
        let limit = i64::try_from(self.shared.settings.fairness.delayed_after.as_millis())
            .unwrap_or(i64::MAX);
        let mut q = self.shared.lock();
        let now = self.shared.settings.clock.now_ms();
        self.shared
            .oldest_starved(&mut q, now)
            .is_none_or(|due| now - due <= limit)
    }

    /// Deliveries waiting in memory (not yet due, or due and waiting for a worker), and since
    /// when the most overdue one has been due (Unix ms), for metrics.
    pub fn backlog(&self) -> (usize, Option<i64>) {
        let q = self.shared.lock();
        let oldest = q
            .ready
            .values()
            .filter_map(|queue| queue.front().map(|(due, _)| *due))
            .chain(q.due.peek().map(|Reverse((due, ..))| *due))
            .min();
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
    fn observe(&self, observation: Observation) {
        if let Some(observer) = &self.settings.observer {
            observer.send(observation);
        }
    }

    fn lock(&self) -> MutexGuard<'_, Queue> {
        // A worker that panicked while holding the lock leaves the queue usable.
        self.queue
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn enqueue(&self, deliveries: impl IntoIterator<Item = DueDelivery>) {
        let mut q = self.lock();
        let head_before = q.next_due();
        let mut added = false;
        for d in deliveries {
            added |= q.push_due(&d.id, &d.rule_id, d.due_at);
        }
        if added {
            self.wake_one_for(q, head_before);
        }
    }

    /// Wakes one waiting worker if there is one and work it may start now, or a due time
    /// sooner than `head_before`, the one the waiting workers sleep until. One at a time: a
    /// worker that takes a job passes the wake-up on while more may start (`next_job`), so
    /// no worker is woken only to find the rule at its limit and sleep again (with 32
    /// workers and a rule held to 8, those wake-ups were about 15 % of tidings' CPU).
    fn wake_one_for(&self, mut q: MutexGuard<'_, Queue>, head_before: Option<i64>) {
        if q.idle == 0 {
            return;
        }
        let now = self.settings.clock.now_ms();
        q.promote(now);
        let sooner = q
            .next_due()
            .is_some_and(|due| head_before.is_none_or(|before| due < before));
        let wanted = sooner || self.any_may_start(&mut q, now);
        drop(q);
        if wanted {
            self.wake.notify_one();
        }
    }

    /// Whether any rule with due work may take a worker now.
    fn any_may_start(&self, q: &mut Queue, now: i64) -> bool {
        for i in 0..q.turns.len() {
            let rule = q.turns[i];
            let admission = self.admission(q, rule);
            if self.may_start(q, rule, &admission, now) {
                return true;
            }
        }
        false
    }

    /// What the rule's current version allows; a deleted rule gets the defaults (its
    /// deliveries close when attempted).
    fn admission(&self, q: &mut Queue, rule: RuleIx) -> Admission {
        let Some(cached) = self.store.cached_rule(q.compact.rule_id(rule)) else {
            q.admissions.remove(&rule);
            return Admission {
                max_concurrency: DEFAULT_MAX_CONCURRENCY,
                destination: None,
            };
        };
        if let Some((version, admission)) = q.admissions.get(&rule)
            && Arc::ptr_eq(version, &cached)
        {
            return admission.clone();
        }
        let admission = Admission {
            max_concurrency: cached.max_concurrency,
            destination: destination(&cached.webhook.url).map(Arc::from),
        };
        q.admissions.insert(rule, (cached, admission.clone()));
        admission
    }

    /// Whether `rule` may take a worker now; a deleted rule may (its deliveries close).
    fn may_start(&self, q: &Queue, rule: RuleIx, a: &Admission, now: i64) -> bool {
        let running = q.in_flight.get(&rule).copied().unwrap_or(0);
        let limit = a.max_concurrency.min(q.allowance(rule, now));
        let at_destination = a
            .destination
            .as_ref()
            .and_then(|d| q.at_destination.get(d))
            .copied()
            .unwrap_or(0);
        running < limit
            && at_destination < self.settings.fairness.max_per_destination
            && q.busy < WORKERS
            && (running == 0 || q.busy < WORKERS - RESERVED_WORKERS)
            && (!q.is_hanging(rule) || q.busy_hanging < HANGING_SHARE)
    }

    /// Since when (Unix ms) the longest-waiting due delivery has been due, among those that
    /// only a busy worker pool holds back: its rule, destination and breaker would let it go.
    /// A rule whose receiver hangs is left out: its deliveries wait on that receiver.
    fn oldest_starved(&self, q: &mut Queue, now: i64) -> Option<i64> {
        let waiting: Vec<(i64, RuleIx)> = q
            .ready
            .iter()
            .filter_map(|(rule, queue)| queue.front().map(|(due, _)| (*due, *rule)))
            .chain(
                q.due
                    .peek()
                    .map(|Reverse((due, _, rule))| (*due, *rule))
                    .filter(|(due, _)| *due <= now),
            )
            .collect();
        let mut free = |rule: RuleIx| {
            if q.is_hanging(rule) {
                return false;
            }
            let a = self.admission(q, rule);
            let running = q.in_flight.get(&rule).copied().unwrap_or(0);
            let at_destination = a
                .destination
                .as_ref()
                .and_then(|d| q.at_destination.get(d))
                .copied()
                .unwrap_or(0);
            running < a.max_concurrency.min(q.allowance(rule, now))
                && at_destination < self.settings.fairness.max_per_destination
        };
        waiting
            .into_iter()
            .filter(|(_, rule)| free(*rule))
            .map(|(due, _)| due)
            .min()
    }

    /// Blocks until a due delivery may start (see the module comment); None on shutdown.
    /// Rules take turns: the one offered a worker goes to the back of the line.
    fn next_job(&self) -> Option<Job> {
        let mut q = self.lock();
        loop {
            if q.shutdown {
                return None;
            }
            let now = self.settings.clock.now_ms();
            let recheck = q.recheck_parked(now);
            q.promote(now);
            for _ in 0..q.turns.len() {
                let rule = q.turns.pop_front().expect("counted");
                let admission = self.admission(&mut q, rule);
                if !self.may_start(&q, rule, &admission, now) {
                    q.turns.push_back(rule);
                    continue;
                }
                let queue = q
                    .ready
                    .get_mut(&rule)
                    .expect("a rule in turn has ready work");
                let (_, id) = queue.pop_front().expect("ready work is never empty");
                if queue.is_empty() {
                    q.ready.remove(&rule);
                } else {
                    q.turns.push_back(rule);
                }
                q.queued.remove(&id);
                *q.in_flight.entry(rule).or_default() += 1;
                if let Some(d) = &admission.destination {
                    *q.at_destination.entry(Arc::clone(d)).or_default() += 1;
                }
                q.busy += 1;
                let hanging = q.is_hanging(rule);
                q.busy_hanging += usize::from(hanging);
                let job = Job {
                    id: q.compact.take(id),
                    rule: q.compact.rule_id(rule).clone(),
                    rule_ix: rule,
                    max_concurrency: admission.max_concurrency,
                    destination: admission.destination,
                    hanging,
                };
                // Passes the wake-up on while more may start.
                let head = q.next_due();
                self.wake_one_for(q, head);
                return Some(job);
            }
            let next_due = q.next_due();
            let reopens = q
                .turns
                .iter()
                .filter_map(|r| q.breakers.get(r).and_then(|b| b.reopens_at(now)))
                .min();
            let slots_asked_again = q
                .turns
                .iter()
                .filter_map(|r| q.slot_caps.get(r).map(|(_, until)| *until))
                .filter(|until| *until > now)
                .min();
            let wait = next_due
                .into_iter()
                .chain(reopens)
                .chain(slots_asked_again)
                .chain(recheck)
                .min()
                .map_or(MAX_WAIT, |at| {
                    Duration::from_millis(u64::try_from(at - now).unwrap_or(0)).min(MAX_WAIT)
                });
            q.idle += 1;
            q = self
                .wake
                .wait_timeout(q, wait)
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .0;
            q.idle -= 1;
        }
    }

    /// Wakes every waiting worker to look at the time again. Taking the lock first means a
    /// worker that read the time before the move is already waiting, so it hears this.
    fn clock_moved(&self) {
        drop(self.lock());
        self.wake.notify_all();
    }

    /// The order epoch now: read before asking the store for a key's head, handed to `park`.
    fn order_epoch(&self) -> u64 {
        self.lock().ordering.epoch()
    }

    /// Sets aside an ordered delivery whose key has an older open delivery, until that one
    /// finishes (`release_key`) or the recheck time comes. If a key was released since
    /// `epoch`, the head read may be stale: the delivery goes back to the queue at once.
    fn park(&self, rule: &RuleId, key: &str, id: &DeliveryId, epoch: u64) {
        let mut q = self.lock();
        let now = self.settings.clock.now_ms();
        if q.ordering.wait(rule, key, id, epoch, now) {
            return;
        }
        let head_before = q.next_due();
        if q.push_due(id, rule, now) {
            self.wake_one_for(q, head_before);
        }
    }

    /// An ordered delivery of `key` finished for good (its closing write is on disk): the
    /// next one waiting for it may go now.
    fn release_key(&self, rule: &RuleId, key: &str) {
        let mut q = self.lock();
        let next = q.ordering.release(rule, key);
        let now = self.settings.clock.now_ms();
        let head_before = q.next_due();
        if next.is_some_and(|id| q.push_due(&id, rule, now)) {
            self.wake_one_for(q, head_before);
        }
    }

    /// A finished job whose rule had no slot free on any node: back in the queue, due now,
    /// and the rule held to what it has in flight on this node for `for_ms`, when a worker
    /// asks the store again.
    fn slot_busy(&self, job: &Job, for_ms: i64) {
        let mut q = self.lock();
        let now = self.settings.clock.now_ms();
        let running = q.in_flight.get(&job.rule_ix).copied().unwrap_or(0);
        q.slot_caps.insert(job.rule_ix, (running, now + for_ms));
        q.slot_caps.retain(|_, (_, until)| *until > now);
        let head_before = q.next_due();
        if q.push_due(&job.id, &job.rule, now) {
            self.wake_one_for(q, head_before);
        }
    }

    /// Puts a job that could not go now (the store could not be read) back in the queue,
    /// due `after_ms` from now.
    fn hold_back(&self, job: &Job, after_ms: i64) {
        let due_at = self.settings.clock.now_ms() + after_ms;
        self.enqueue([DueDelivery {
            id: job.id.clone(),
            rule_id: job.rule.clone(),
            due_at,
        }]);
    }

    /// Frees the job's worker and notes what the attempt said about the receiver (`signal`:
    /// None when no attempt was made).
    fn finish(&self, job: &Job, signal: Option<Signal>) {
        let mut q = self.lock();
        let now = self.settings.clock.now_ms();
        q.last_progress_ms = now;
        q.busy = q.busy.saturating_sub(1);
        if job.hanging {
            q.busy_hanging = q.busy_hanging.saturating_sub(1);
        }
        release(&mut q.in_flight, &job.rule_ix);
        if let Some(d) = &job.destination {
            release(&mut q.at_destination, d);
        }
        if let Some(signal) = signal {
            let breaker = q.breakers.entry(job.rule_ix).or_default();
            breaker.record(signal, now, &self.settings.fairness.breaker);
            if breaker.is_closed() {
                q.breakers.remove(&job.rule_ix);
            }
        }
        // No wake-up: this worker goes straight back to `next_job`, which takes what the
        // freed place (or a widened breaker) lets start and wakes another if more may.
    }
}

fn release<K: std::hash::Hash + Eq>(counts: &mut HashMap<K, u32>, key: &K) {
    if let Some(n) = counts.get_mut(key) {
        *n = n.saturating_sub(1);
        if *n == 0 {
            counts.remove(key);
        }
    }
}

/// A rule's destination as the per-destination cap counts it: host and port.
fn destination(url: &str) -> Option<String> {
    let url = url::Url::parse(url).ok()?;
    Some(format!(
        "{}:{}",
        url.host_str()?,
        url.port_or_known_default()?
    ))
}

#[cfg(test)]
mod tests {
    use super::destination;

    #[test]
    fn a_destination_is_host_and_port_with_the_scheme_default() {
        assert_eq!(
            destination("https://ehr.example/hooks?a=1").as_deref(),
            Some("ehr.example:443")
        );
        assert_eq!(
            destination("http://127.0.0.1:8080/x").as_deref(),
            Some("127.0.0.1:8080")
        );
        // Two rules on one receiver share its cap whatever their paths.
        assert_eq!(
            destination("https://ehr.example/a"),
            destination("https://EHR.example:443/b")
        );
        assert_eq!(destination("not a url"), None);
    }
}
