//! Contract cases for `EventStore` and `AttemptStore`: ingest with deliveries, idempotency
//! and routine slots, the open queue, attempts, closing and re-sending, and the delivery log.

use std::collections::HashSet;

use super::{
    START, assert_conflict, assert_not_found, attempt, audit, block_on, delivery, event, ids,
    ingest_with, new_event, other_workspace, record, routine, rule,
};
use crate::domain::delivery::{AttemptOutcome, Delivery, DeliveryStatus};
use crate::domain::ids::{DeliveryId, EventId, RuleId};
use crate::domain::rule::Rule;
use crate::domain::time::Clock;
use crate::store::{DeliveryFilter, IDEMPOTENCY_TTL_MS, IngestOutcome, NewEvent, Store};

fn due(store: &Store) -> Vec<(DeliveryId, i64)> {
    let mut due: Vec<_> = store
        .open_deliveries()
        .unwrap()
        .into_iter()
        .map(|d| (d.id, d.due_at))
        .collect();
    due.sort();
    due
}

pub fn ingest_stores_the_event_with_its_deliveries(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let (a, b) = (rule(&ws, "a", &["x"]), rule(&ws, "b", &["x"]));
    let e = event(&ws, "patient.admitted", START);
    let made = ingest_with(store, &e, &[&a, &b], DeliveryStatus::Pending);

    let stored = store.event(&ws, &e.id).unwrap();
    assert_eq!(stored.data, e.data, "the payload reads back as sent");
    assert_eq!(stored.event_type, e.event_type);
    let mut of_event = ids(&store.event_deliveries(&e.id).unwrap());
    of_event.sort();
    let mut expected = ids(&made);
    expected.sort();
    assert_eq!(of_event, expected);
    for d in &made {
        let got = store.delivery(&ws, &d.id).unwrap();
        assert_eq!((got.rule_id, got.status), (d.rule_id.clone(), d.status));
        let (with, ev) = store.delivery_with_event(&d.id).unwrap().unwrap();
        assert_eq!((with.id, ev.id.clone()), (d.id.clone(), e.id.clone()));
    }
    assert_eq!(
        due(store),
        expected
            .iter()
            .map(|id| (id.clone(), START))
            .collect::<Vec<_>>()
    );
    assert_eq!(store.open_count().unwrap(), 2);

    // A condition_error delivery is stored finished: nothing is owed.
    let c = event(&ws, "patient.admitted", START + 1);
    ingest_with(store, &c, &[&a], DeliveryStatus::ConditionError);
    assert_eq!(store.open_count().unwrap(), 2);
    assert_eq!(store.event_deliveries(&c.id).unwrap().len(), 1);

    assert_not_found(store.event(&ws, &EventId::generate(START)), "event");
    assert!(
        store
            .event_deliveries(&EventId::generate(START))
            .unwrap()
            .is_empty()
    );
    assert!(
        store
            .delivery_with_event(&DeliveryId::generate(START))
            .unwrap()
            .is_none()
    );
}

pub fn ingest_blocking_stores_like_ingest(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let r = routine(&ws, "hourly");
    let e = event(&ws, "routine:fired", START);
    let d = delivery(&e, &r, DeliveryStatus::Pending);
    let outcome = store.ingest_blocking(NewEvent {
        routine_slot: Some((r.id.clone(), START)),
        ..new_event(e.clone(), vec![d.clone()])
    });
    assert_eq!(outcome.unwrap(), IngestOutcome::Created);
    assert_eq!(store.event(&ws, &e.id).unwrap().data, e.data);
    assert_eq!(due(store), [(d.id, START)]);
    assert_eq!(store.routine_last_fired().unwrap().get(&r.id), Some(&START));
}

pub fn events_and_deliveries_of_another_workspace_are_not_found(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let other = other_workspace();
    let r = rule(&other, "theirs", &["x"]);
    let e = event(&other, "patient.admitted", START);
    let made = ingest_with(store, &e, &[&r], DeliveryStatus::Failed);
    let id = made[0].id.clone();
    assert_not_found(store.event(&ws, &e.id), "event");
    assert_not_found(store.delivery(&ws, &id), "delivery");
    assert_not_found(
        block_on(store.redeliver(ws.clone(), id.clone())),
        "delivery",
    );
    let filter = DeliveryFilter {
        limit: 50,
        ..DeliveryFilter::default()
    };
    assert!(store.list_deliveries(&ws, &filter).unwrap().0.is_empty());
    assert_eq!(store.event(&other, &e.id).unwrap().id, e.id);
    assert_eq!(store.list_deliveries(&other, &filter).unwrap().0.len(), 1);
    assert_eq!(
        store.delivery(&other, &id).unwrap().status,
        DeliveryStatus::Failed,
        "the refused re-send changed nothing"
    );
}

pub fn idempotency_keys_dedupe_within_the_ttl_per_workspace(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let r = rule(&ws, "r", &["x"]);
    let keyed = |e: &crate::domain::event::Event| NewEvent {
        idempotency_key: Some("order-17".into()),
        ..new_event(e.clone(), vec![delivery(e, &r, DeliveryStatus::Pending)])
    };
    let first = event(&ws, "order.placed", START);
    assert_eq!(
        block_on(store.ingest(keyed(&first))).unwrap(),
        IngestOutcome::Created
    );

    let repeat = event(&ws, "order.placed", START + IDEMPOTENCY_TTL_MS - 1);
    assert_eq!(
        block_on(store.ingest(keyed(&repeat))).unwrap(),
        IngestOutcome::Duplicate(first.id.clone()),
        "a repeat within the TTL names the first event"
    );
    assert_not_found(store.event(&ws, &repeat.id), "event");
    assert!(store.event_deliveries(&repeat.id).unwrap().is_empty());
    assert_eq!(store.open_count().unwrap(), 1);

    let later = event(&ws, "order.placed", START + IDEMPOTENCY_TTL_MS);
    assert_eq!(
        block_on(store.ingest(keyed(&later))).unwrap(),
        IngestOutcome::Created
    );
    assert!(store.event(&ws, &later.id).is_ok());

    let elsewhere = event(&other_workspace(), "order.placed", START + 1);
    assert_eq!(
        block_on(store.ingest(keyed(&elsewhere))).unwrap(),
        IngestOutcome::Created,
        "keys are per workspace"
    );
}

pub fn routine_slots_are_recorded_once(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let r = routine(&ws, "hourly");
    let fire = |slot: i64| {
        let e = event(&ws, "routine:fired", slot + 10);
        let outcome = block_on(store.ingest(NewEvent {
            routine_slot: Some((r.id.clone(), slot)),
            ..new_event(e.clone(), vec![delivery(&e, &r, DeliveryStatus::Pending)])
        }))
        .unwrap();
        (outcome, e.id)
    };
    assert!(store.routine_last_fired().unwrap().is_empty());
    let (outcome, _) = fire(START);
    assert_eq!(outcome, IngestOutcome::Created);
    assert_eq!(store.routine_last_fired().unwrap().get(&r.id), Some(&START));
    let (outcome, id) = fire(START);
    assert_eq!(
        outcome,
        IngestOutcome::Duplicate(id.clone()),
        "the same slot again"
    );
    assert_not_found(store.event(&ws, &id), "event");
    let (outcome, _) = fire(START - 3_600_000);
    assert!(
        matches!(outcome, IngestOutcome::Duplicate(_)),
        "an earlier slot"
    );
    assert_eq!(store.open_count().unwrap(), 1);
    let (outcome, _) = fire(START + 3_600_000);
    assert_eq!(outcome, IngestOutcome::Created);
    assert_eq!(
        store.routine_last_fired().unwrap().get(&r.id),
        Some(&(START + 3_600_000))
    );
}

pub fn close_delivery_takes_it_off_the_queue(store: &Store, clock: &Clock) {
    let ws = store.default_workspace().clone();
    let r = rule(&ws, "r", &["x"]);
    let e = event(&ws, "x", START);
    let made = ingest_with(store, &e, &[&r], DeliveryStatus::Pending);
    clock.set(START + 42);
    store
        .close_delivery(&made[0].id, DeliveryStatus::Failed)
        .unwrap();
    let d = store.delivery(&ws, &made[0].id).unwrap();
    assert_eq!(d.status, DeliveryStatus::Failed);
    assert_eq!((d.next_attempt_at, d.attempts_left), (None, 0));
    assert_eq!(d.updated_at, START + 42, "stamped by the store's clock");
    assert!(due(store).is_empty());
    assert_eq!(store.open_count().unwrap(), 0);
    store
        .close_delivery(&DeliveryId::generate(START), DeliveryStatus::Failed)
        .unwrap();
}

pub fn record_attempt_logs_attempts_and_moves_the_delivery(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let r = rule(&ws, "r", &["x"]);
    let e = event(&ws, "x", START);
    let d = ingest_with(store, &e, &[&r], DeliveryStatus::Pending).remove(0);
    assert!(store.attempts(&d.id).unwrap().is_empty());

    let retrying = Delivery {
        status: DeliveryStatus::Retrying,
        attempts: 1,
        attempts_left: 2,
        next_attempt_at: Some(START + 60_000),
        updated_at: START + 100,
        ..d.clone()
    };
    record(store, &retrying, &attempt(1, START + 50, 503)).unwrap();
    assert_eq!(
        store.delivery(&ws, &d.id).unwrap().status,
        DeliveryStatus::Retrying
    );
    assert_eq!(due(store), [(d.id.clone(), START + 60_000)]);

    let done = Delivery {
        status: DeliveryStatus::Succeeded,
        attempts: 2,
        attempts_left: 0,
        next_attempt_at: None,
        updated_at: START + 60_100,
        ..d.clone()
    };
    record(store, &done, &attempt(2, START + 60_000, 200)).unwrap();
    let stored = store.delivery(&ws, &d.id).unwrap();
    assert_eq!(
        (stored.status, stored.attempts),
        (DeliveryStatus::Succeeded, 2)
    );
    assert!(due(store).is_empty());
    let attempts = store.attempts(&d.id).unwrap();
    let numbers: Vec<(u32, Option<u16>)> =
        attempts.iter().map(|a| (a.number, a.status_code)).collect();
    assert_eq!(numbers, [(1, Some(503)), (2, Some(200))]);
    assert_eq!(
        attempts[1].request.body.as_deref(),
        Some(r#"{"attempt":2}"#),
        "logged bodies read back"
    );
    assert!(
        store
            .attempts(&DeliveryId::generate(START))
            .unwrap()
            .is_empty()
    );
}

pub fn redeliver_refuses_open_deliveries_and_reopens_finished_ones(store: &Store, clock: &Clock) {
    let ws = store.default_workspace().clone();
    let r = rule(&ws, "r", &["x"]);
    let e = event(&ws, "x", START);
    let d = ingest_with(store, &e, &[&r], DeliveryStatus::Pending).remove(0);
    assert_conflict(block_on(store.redeliver(ws.clone(), d.id.clone())));
    store.close_delivery(&d.id, DeliveryStatus::Failed).unwrap();

    clock.set(START + 9_000);
    let again = block_on(store.redeliver(ws.clone(), d.id.clone())).unwrap();
    assert_eq!(again.status, DeliveryStatus::Pending);
    assert_eq!(again.attempts_left, 1, "a re-send is a round of one");
    assert_eq!(
        again.next_attempt_at,
        Some(START + 9_000),
        "due now, by the store's clock"
    );
    assert_eq!(
        store.delivery(&ws, &d.id).unwrap().status,
        DeliveryStatus::Pending
    );
    assert_eq!(due(store), [(d.id.clone(), START + 9_000)]);
    assert_conflict(block_on(store.redeliver(ws.clone(), d.id.clone())));
    assert_not_found(
        block_on(store.redeliver(ws, DeliveryId::generate(START))),
        "delivery",
    );
}

pub fn redeliver_failed_reopens_a_rules_failures_in_a_time_range(store: &Store, clock: &Clock) {
    let ws = store.default_workspace().clone();
    let (r, other_rule) = (rule(&ws, "r", &["x"]), rule(&ws, "o", &["x"]));
    let at = |n: i64| START + n * 1_000;
    let mut made = Vec::new();
    for (n, status) in [
        (1, DeliveryStatus::Failed),
        (2, DeliveryStatus::Failed),
        (3, DeliveryStatus::Succeeded),
        (4, DeliveryStatus::Failed),
    ] {
        made.extend(ingest_with(store, &event(&ws, "x", at(n)), &[&r], status));
    }
    let mut test_event = event(&ws, "x", at(2));
    test_event.test = true;
    ingest_with(store, &test_event, &[&r], DeliveryStatus::Failed);
    ingest_with(
        store,
        &event(&ws, "x", at(2)),
        &[&other_rule],
        DeliveryStatus::Failed,
    );
    block_on(store.save_rule(r.clone(), false, audit(&ws, "rule.create"))).unwrap();

    clock.set(at(10));
    let reopened =
        block_on(store.redeliver_failed(ws.clone(), r.id.clone(), at(1), at(3))).unwrap();
    let got: HashSet<DeliveryId> = ids(&reopened).into_iter().collect();
    assert_eq!(got, HashSet::from([made[0].id.clone(), made[1].id.clone()]));
    assert!(
        reopened
            .iter()
            .all(|d| d.status == DeliveryStatus::Pending && d.next_attempt_at == Some(at(10)))
    );
    assert_eq!(
        store.open_count().unwrap(),
        2,
        "test sends and other rules are left alone"
    );
    assert_eq!(
        store.delivery(&ws, &made[3].id).unwrap().status,
        DeliveryStatus::Failed,
        "outside the range"
    );
    let again = block_on(store.redeliver_failed(ws.clone(), r.id.clone(), at(1), at(3))).unwrap();
    assert!(again.is_empty(), "they are no longer failed");

    assert_not_found(
        block_on(store.redeliver_failed(ws.clone(), RuleId::generate(START), at(0), at(9))),
        "rule",
    );
    let theirs = rule(&other_workspace(), "theirs", &["x"]);
    block_on(store.save_rule(theirs.clone(), false, audit(&theirs.workspace_id, "c"))).unwrap();
    assert_not_found(
        block_on(store.redeliver_failed(ws, theirs.id, at(0), at(9))),
        "rule",
    );
}

pub fn list_deliveries_filters_and_pages_newest_first(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let (a, b) = (rule(&ws, "a", &["x"]), rule(&ws, "b", &["x"]));
    let at = |n: i64| START + n * 1_000;
    // Five deliveries, one per second: rules a,b,a,b,a; types x,y,x,y,x; failed on even n.
    let mut made = Vec::new();
    for n in 0..5 {
        let kind = if n % 2 == 0 { "x" } else { "y" };
        let status = if n % 2 == 0 {
            DeliveryStatus::Failed
        } else {
            DeliveryStatus::Succeeded
        };
        let r = if n % 2 == 0 { &a } else { &b };
        made.extend(ingest_with(store, &event(&ws, kind, at(n)), &[r], status));
    }
    ingest_with(
        store,
        &event(&other_workspace(), "x", at(2)),
        &[&a],
        DeliveryStatus::Failed,
    );
    let list = |filter: DeliveryFilter| {
        let (page, cursor) = store.list_deliveries(&ws, &filter).unwrap();
        (ids(&page), cursor)
    };
    let all = |limit| DeliveryFilter {
        limit,
        ..DeliveryFilter::default()
    };
    let id = |n: usize| made[n].id.clone();

    assert_eq!(
        list(all(50)),
        (vec![id(4), id(3), id(2), id(1), id(0)], None)
    );
    // Pages of two: each cursor is the last id of its page, the last page has none.
    let (page, cursor) = list(all(2));
    assert_eq!((page, cursor.clone()), (vec![id(4), id(3)], Some(id(3))));
    let next = DeliveryFilter {
        before: cursor,
        ..all(2)
    };
    let (page, cursor) = list(next);
    assert_eq!((page, cursor.clone()), (vec![id(2), id(1)], Some(id(1))));
    let (page, cursor) = list(DeliveryFilter {
        before: cursor,
        ..all(2)
    });
    assert_eq!((page, cursor), (vec![id(0)], None));

    let by = |f: fn(&mut DeliveryFilter)| {
        let mut filter = all(50);
        f(&mut filter);
        list(filter).0
    };
    let a_id = a.id.clone();
    let rule_a = list(DeliveryFilter {
        rule_id: Some(a_id.clone()),
        ..all(50)
    });
    assert_eq!(rule_a, (vec![id(4), id(2), id(0)], None));
    let (page, cursor) = list(DeliveryFilter {
        rule_id: Some(a_id.clone()),
        ..all(2)
    });
    assert_eq!((page, cursor.clone()), (vec![id(4), id(2)], Some(id(2))));
    let rest = list(DeliveryFilter {
        rule_id: Some(a_id),
        before: cursor,
        ..all(2)
    });
    assert_eq!(rest, (vec![id(0)], None));
    assert_eq!(
        by(|f| f.status = Some(DeliveryStatus::Succeeded)),
        [id(3), id(1)]
    );
    assert_eq!(
        by(|f| f.event_type = Some(super::event_type("y"))),
        [id(3), id(1)]
    );
    assert_eq!(
        by(|f| {
            f.since = Some(START + 1_000);
            f.until = Some(START + 3_000);
        }),
        [id(3), id(2), id(1)],
        "since and until are inclusive"
    );
}

/// A page of the default workspace's deliveries in `status`, and its cursor.
fn in_status(
    store: &Store,
    status: DeliveryStatus,
    before: Option<DeliveryId>,
    limit: usize,
) -> (Vec<DeliveryId>, Option<DeliveryId>) {
    let filter = DeliveryFilter {
        status: Some(status),
        before,
        limit,
        ..DeliveryFilter::default()
    };
    let (page, cursor) = store
        .list_deliveries(store.default_workspace(), &filter)
        .unwrap();
    (ids(&page), cursor)
}

/// The status filter follows each delivery through its life (created, tried, closed,
/// re-sent, erased, pruned) and pages like the unfiltered log.
pub fn the_status_filter_follows_a_delivery_through_its_life(store: &Store, clock: &Clock) {
    let ws = store.default_workspace().clone();
    let r = rule(&ws, "r", &["x"]);
    let at = |n: i64| START + n * 1_000;
    let made: Vec<Delivery> = (0..4)
        .flat_map(|n| {
            ingest_with(
                store,
                &event(&ws, "x", at(n)),
                &[&r],
                DeliveryStatus::Pending,
            )
        })
        .collect();
    ingest_with(
        store,
        &event(&other_workspace(), "x", at(1)),
        &[&r],
        DeliveryStatus::Retrying,
    );
    let broken = ingest_with(
        store,
        &event(&ws, "x", at(5)),
        &[&r],
        DeliveryStatus::ConditionError,
    )
    .remove(0);
    let with = |status, before, limit| in_status(store, status, before, limit);
    let status = |s| with(s, None, 50).0;
    let id = |n: usize| made[n].id.clone();
    assert_eq!(
        status(DeliveryStatus::Pending),
        [id(3), id(2), id(1), id(0)]
    );
    assert!(
        status(DeliveryStatus::Retrying).is_empty(),
        "another workspace's retrying delivery is not ours"
    );
    assert_eq!(
        status(DeliveryStatus::ConditionError),
        std::slice::from_ref(&broken.id)
    );

    let retrying = Delivery {
        status: DeliveryStatus::Retrying,
        attempts: 1,
        next_attempt_at: Some(at(60)),
        ..made[1].clone()
    };
    record(store, &retrying, &attempt(1, at(5), 503)).unwrap();
    record(store, &retrying, &attempt(2, at(6), 503)).unwrap();
    let succeeded = Delivery {
        status: DeliveryStatus::Succeeded,
        attempts: 1,
        attempts_left: 0,
        next_attempt_at: None,
        ..made[2].clone()
    };
    record(store, &succeeded, &attempt(1, at(7), 200)).unwrap();
    store
        .close_delivery(&id(3), DeliveryStatus::Failed)
        .unwrap();
    assert_eq!(status(DeliveryStatus::Pending), [id(0)]);
    assert_eq!(
        status(DeliveryStatus::Retrying),
        [id(1)],
        "still retrying after its second attempt: listed once"
    );
    assert_eq!(status(DeliveryStatus::Succeeded), [id(2)]);
    assert_eq!(status(DeliveryStatus::Failed), [id(3)]);

    clock.set(at(10));
    block_on(store.redeliver(ws.clone(), id(3))).unwrap();
    block_on(store.redeliver(ws.clone(), id(2))).unwrap();
    assert_eq!(status(DeliveryStatus::Pending), [id(3), id(2), id(0)]);
    assert!(status(DeliveryStatus::Failed).is_empty());
    assert!(status(DeliveryStatus::Succeeded).is_empty());
    // Pages of one, by cursor, as the unfiltered log pages.
    let (page, cursor) = with(DeliveryStatus::Pending, None, 1);
    assert_eq!((page, cursor.clone()), (vec![id(3)], Some(id(3))));
    let (page, cursor) = with(DeliveryStatus::Pending, cursor, 2);
    assert_eq!((page, cursor.clone()), (vec![id(2), id(0)], Some(id(0))));
    assert_eq!(with(DeliveryStatus::Pending, cursor, 2), (vec![], None));

    for n in [0, 2, 3] {
        store
            .close_delivery(&id(n), DeliveryStatus::Failed)
            .unwrap();
    }
    store
        .close_delivery(&id(1), DeliveryStatus::Blocked)
        .unwrap();
    assert_eq!(status(DeliveryStatus::Failed), [id(3), id(2), id(0)]);
    assert_eq!(status(DeliveryStatus::Blocked), [id(1)]);
    assert!(status(DeliveryStatus::Pending).is_empty());
    assert!(status(DeliveryStatus::Retrying).is_empty());
    assert_eq!(store.prune_before(at(3)).unwrap().0, 3);
    assert_eq!(status(DeliveryStatus::Failed), [id(3)]);
    assert!(
        status(DeliveryStatus::Blocked).is_empty(),
        "a pruned delivery leaves the filter"
    );
    assert_eq!(status(DeliveryStatus::ConditionError), [broken.id]);
}

pub fn test_deliveries_are_logged_finished(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let r = rule(&ws, "r", &["x"]);
    let mut e = event(&ws, "x", START);
    e.test = true;
    let d = Delivery {
        attempts: 1,
        ..delivery(&e, &r, DeliveryStatus::Succeeded)
    };
    block_on(store.insert_test_delivery(e.clone(), d.clone(), attempt(1, START, 204))).unwrap();
    assert!(store.event(&ws, &e.id).unwrap().test);
    let stored = store.delivery(&ws, &d.id).unwrap();
    assert!(stored.test);
    assert_eq!(stored.status, DeliveryStatus::Succeeded);
    assert_eq!(store.attempts(&d.id).unwrap()[0].status_code, Some(204));
    assert_eq!(ids(&store.event_deliveries(&e.id).unwrap()), [d.id]);
    assert_eq!(store.open_count().unwrap(), 0);
}

pub fn ordering_head_is_the_oldest_open_delivery_of_a_key(store: &Store, clock: &Clock) {
    let ws = store.default_workspace().clone();
    let (r, other_rule) = (rule(&ws, "r", &["x"]), rule(&ws, "o", &["x"]));
    let keyed = |n: i64, key: &str, rule: &Rule| {
        let e = event(&ws, "x", START + n);
        let mut d = delivery(&e, rule, DeliveryStatus::Pending);
        d.ordering_key = Some(key.to_owned());
        let outcome = block_on(store.ingest(new_event(e, vec![d.clone()])));
        assert_eq!(outcome.unwrap(), crate::store::IngestOutcome::Created);
        d
    };
    assert_eq!(store.ordering_head(&r.id, "a").unwrap(), None);
    let a1 = keyed(1, "a", &r);
    let b1 = keyed(2, "b", &r);
    let a2 = keyed(3, "a", &r);
    let elsewhere = keyed(0, "a", &other_rule);
    let head = |key: &str| store.ordering_head(&r.id, key).unwrap();
    assert_eq!(head("a"), Some(a1.id.clone()));
    assert_eq!(head("b"), Some(b1.id.clone()));
    assert_eq!(
        store.ordering_head(&other_rule.id, "a").unwrap(),
        Some(elsewhere.id.clone()),
        "keys are per rule"
    );

    // A retry keeps the head; a success hands it on.
    clock.set(START + 10);
    let retrying = a1.advanced(
        1,
        AttemptOutcome {
            status: DeliveryStatus::Retrying,
            next_attempt_at: Some(START + 60_000),
            attempts_left: 2,
        },
        START + 10,
    );
    record(store, &retrying, &attempt(1, START + 10, 500)).unwrap();
    assert_eq!(head("a"), Some(a1.id.clone()));
    let done = retrying.advanced(
        2,
        AttemptOutcome {
            status: DeliveryStatus::Succeeded,
            next_attempt_at: None,
            attempts_left: 0,
        },
        START + 20,
    );
    record(store, &done, &attempt(2, START + 20, 200)).unwrap();
    assert_eq!(head("a"), Some(a2.id.clone()));

    // Closed without an attempt, the last one leaves no head; a re-send makes it one again.
    store
        .close_delivery(&a2.id, DeliveryStatus::Failed)
        .unwrap();
    assert_eq!(head("a"), None);
    block_on(store.redeliver(ws, a2.id.clone())).unwrap();
    assert_eq!(head("a"), Some(a2.id));
}
