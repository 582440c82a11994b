//! A delivery worker: the loop that takes due deliveries from the dispatcher's queue, and one
//! attempt's bookkeeping (the concurrency slot, the ordering check, the attempt log, the
//! rule's failing clock, and the retry queued once the log is on disk).

use std::sync::Arc;

use super::Shared;
use crate::delivery::attempt::{Env, PrepareError, perform, prepare, template_failure};
use crate::delivery::breaker::Signal;
use crate::delivery::observer::Observation;
use crate::delivery::outcome::{Judged, Verdict};
use crate::delivery::transport::Transport;
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::ids::{DeliveryId, RuleId};
use crate::domain::rule::Rule;
use crate::domain::system::is_system;
use crate::domain::time::to_rfc3339;
use crate::store::{DueDelivery, Slot, StoreError};

/// How long a rule that had no slot free on any node is held to what it has in flight
/// here, before a worker asks the store for a slot again.
const SLOT_RETRY_MS: i64 = 50;
/// How soon a delivery that could not be read from the store is tried again.
const STORE_RETRY_MS: i64 = 1_000;
/// How soon a delivery whose attempt could not be logged is sent again. Its receiver may
/// have had it (a duplicate, as at least once allows), so not every second while a store
/// stays broken (redb refuses every write after a failed one until it is reopened).
const LOG_RETRY_MS: i64 = 10_000;

/// A worker thread: takes jobs until shutdown, one attempt each.
pub(super) fn run(shared: &Arc<Shared>) {
    let transport = shared.settings.transport.for_worker();
    while let Some(job) = shared.next_job() {
        let id = &job.id;
        // The rule's slot among every node of a shared store, held through the attempt.
        let _slot = match shared
            .store
            .concurrency_slot(&job.rule, job.max_concurrency)
        {
            Slot::Busy => {
                shared.finish(&job, None);
                shared.slot_busy(&job, SLOT_RETRY_MS);
                continue;
            }
            held => held,
        };
        // A panic must not take the worker, or the rule's concurrency slot, with it.
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            deliver(shared, &*transport, id, &job.rule)
        }));
        let signal = match outcome {
            Ok(Ok(signal)) => signal,
            // The store could not be read (PostgreSQL away, a connection cut): asked again
            // shortly, as often as it takes; the delivery is still owed.
            Ok(Err(e)) if matches!(e.downcast_ref(), Some(StoreError::Storage(_))) => {
                tracing::warn!(delivery = %id, error = %e, "delivery could not be read; trying again shortly");
                shared.finish(&job, None);
                shared.hold_back(&job, STORE_RETRY_MS);
                continue;
            }
            // The delivery stays in the durable queue and is retried after a restart.
            Ok(Err(e)) => {
                tracing::error!(delivery = %id, error = %e, "delivery attempt could not be processed");
                None
            }
            Err(_) => {
                tracing::error!(delivery = %id, "delivery attempt panicked");
                None
            }
        };
        shared.finish(&job, signal);
    }
}

fn deliver(
    shared: &Arc<Shared>,
    transport: &dyn Transport,
    id: &DeliveryId,
    rule_id: &RuleId,
) -> Result<Option<Signal>, Box<dyn std::error::Error>> {
    let store = &shared.store;
    let settings = &shared.settings;
    let Some((delivery, event)) = store.delivery_with_event(id)? else {
        return Ok(None);
    };
    if !delivery.status.is_open() {
        return Ok(None);
    }
    let rule = match store.cached_rule(rule_id) {
        Some(rule) if rule.active => rule,
        // Deleted or deactivated rules deliver nothing more.
        _ => {
            store.close_delivery(id, DeliveryStatus::Failed)?;
            return Ok(None);
        }
    };
    if waits_its_turn(shared, &delivery)? {
        return Ok(None);
    }
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
        &settings.secrets,
        settings.clock.now_ms(),
    ) {
        Ok(request) => perform(&env, &rule, &request, &delivery),
        Err(PrepareError::Template(e)) => template_failure(&env, &rule, &delivery, &e),
        Err(PrepareError::Crypto(e)) => {
            // A secret that does not decrypt cannot sign; retrying will not change that.
            return Err(Box::new(e));
        }
    };
    let system_event = is_system(&delivery.event_type);
    shared.observe(Observation::Attempt {
        rule_id: rule.id.clone(),
        at: attempt.started_at,
        succeeded: attempt.succeeded(),
        error_kind: attempt.error_kind,
        status_code: attempt.status_code,
        test: delivery.test,
        system_event,
    });
    if verdict == Verdict::Gone {
        let reason = format!(
            "deactivated after the receiver answered 410 Gone to delivery {} at {}",
            delivery.id,
            to_rfc3339(attempt.started_at)
        );
        deactivate(shared, &rule, reason, system_event);
    } else {
        track_failing(shared, &rule, &attempt, system_event);
    }
    let signal = Signal::of(&attempt);
    let updated = delivery.advanced(
        attempt.number,
        verdict.next_state(),
        settings.clock.now_ms(),
    );
    #[allow(clippy::cast_precision_loss)] // milliseconds well within f64's exact range
    let seconds = attempt.duration_ms as f64 / 1000.0;
    settings.metrics.attempt(
        updated.status.as_str(),
        updated.workspace_id.as_str(),
        rule_id.as_str(),
        seconds,
    );
    log_attempt(shared, &updated, &attempt);
    Ok(Some(signal))
}

/// Logs the attempt with the delivery's new state; once that is stored, queues its retry
/// and frees its ordering key. If it cannot be stored, the delivery is still open in the
/// store as it was before the attempt, and is sent again later.
fn log_attempt(shared: &Arc<Shared>, updated: &Delivery, attempt: &Attempt) {
    let shared_after = Arc::clone(shared);
    let retry = updated.next_attempt_at.map(|due_at| DueDelivery {
        id: updated.id.clone(),
        rule_id: updated.rule_id.clone(),
        due_at,
    });
    // Finished for good: the next delivery of its ordering key may go once this is on disk.
    let released = updated
        .ordering_key
        .clone()
        .filter(|_| !updated.status.is_open())
        .map(|key| (updated.rule_id.clone(), key));
    let (id, rule_id) = (updated.id.clone(), updated.rule_id.clone());
    shared.store.record_attempt(
        updated,
        attempt,
        Box::new(move |r| match r {
            Ok(()) => {
                shared_after.enqueue(retry);
                if let Some((rule, key)) = released {
                    shared_after.release_key(&rule, &key);
                }
            }
            Err(e) => {
                tracing::error!(delivery = %id, error = %e, "attempt could not be logged; sending it again in 10 s");
                let due_at = shared_after.settings.clock.now_ms() + LOG_RETRY_MS;
                shared_after.enqueue([DueDelivery { id, rule_id, due_at }]);
            }
        }),
    );
}

/// Whether an ordered delivery must wait for an older open one of its key (SPEC §15); if so,
/// it is parked until that one is closed.
fn waits_its_turn(shared: &Shared, delivery: &Delivery) -> Result<bool, StoreError> {
    let Some(key) = &delivery.ordering_key else {
        return Ok(false);
    };
    let epoch = shared.order_epoch();
    let head = shared.store.ordering_head(&delivery.rule_id, key)?;
    if head.is_some_and(|head| head != delivery.id) {
        shared.park(&delivery.rule_id, key, &delivery.id, epoch);
        return Ok(true);
    }
    Ok(false)
}

/// Keeps each rule's failing clock: started by a failed attempt, cleared by a success, and a
/// rule that has failed for `alerts.disable_after` is deactivated so a dead endpoint stops
/// taking worker time.
fn track_failing(shared: &Shared, rule: &Rule, attempt: &Attempt, system_event: bool) {
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
        deactivate(shared, rule, reason, system_event);
    }
}

fn deactivate(shared: &Shared, rule: &Rule, reason: String, system_event: bool) {
    tracing::warn!(rule = %rule.id, "{reason}");
    match shared.store.deactivate_rule(&rule.id, reason.clone()) {
        Ok(()) => shared.observe(Observation::Deactivated {
            rule_id: rule.id.clone(),
            reason,
            system_event,
        }),
        Err(e) => tracing::error!(rule = %rule.id, error = %e, "could not deactivate rule"),
    }
}
