//! Contract cases for `CatalogStore`, `StatsStore` and `MaintenanceStore`: the event catalog,
//! hourly outcomes, pruning, ping, backup and shutdown.

use serde_json::json;

use super::{
    HOUR, START, assert_conflict, assert_not_found, attempt, audit, block_on, data, event,
    event_type, eventually, ingest_with, new_event, other_workspace, record, rule,
};
use crate::domain::catalog::{Declared, structure_only};
use crate::domain::delivery::{Delivery, DeliveryStatus};
use crate::domain::ids::WorkspaceId;
use crate::domain::rule::Rule;
use crate::domain::time::Clock;
use crate::store::{
    DeliveryFilter, IDEMPOTENCY_TTL_MS, IngestOutcome, NewEvent, Store, StoreError,
};

pub fn catalog_declares_types_and_notes_seen_ones(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let (booked, seen, shaped) = (
        event_type("appointment.booked"),
        event_type("patient.admitted"),
        event_type("lab.result"),
    );
    let declared = Declared {
        description: "An appointment was booked".into(),
        sample: data(json!({"slot": "09:00"})),
        declared_at: START,
        subject_path: None,
    };
    let row = block_on(store.declare_event_type(
        ws.clone(),
        booked.clone(),
        declared,
        audit(&ws, "event_type.declare"),
    ))
    .unwrap();
    assert_eq!(
        row.declared.as_ref().unwrap().description,
        "An appointment was booked"
    );
    let stored = store.event_type(&ws, &booked).unwrap().unwrap();
    assert_eq!(stored.declared.unwrap().sample["slot"], "09:00");
    assert!(
        store
            .event_type(&other_workspace(), &booked)
            .unwrap()
            .is_none()
    );
    assert!(store.event_type(&ws, &seen).unwrap().is_none());

    let payload = data(json!({"name": "Jane Doe", "ward": {"bed": 4}}));
    store.note_event_seen(&ws, &seen, &payload, true, START);
    store.note_event_seen(&ws, &shaped, &payload, false, START);
    eventually("both seen samples", || {
        store.event_types(&ws).unwrap().len() == 3
    });
    let row = store.event_type(&ws, &seen).unwrap().unwrap();
    assert_eq!(row.seen_sample.as_ref(), Some(&payload));
    assert_eq!(
        (row.first_seen_at, row.last_seen_at),
        (Some(START), Some(START))
    );
    let row = store.event_type(&ws, &shaped).unwrap().unwrap();
    assert_eq!(row.seen_sample, Some(structure_only(&payload)));
    assert_ne!(
        row.seen_sample,
        Some(payload.clone()),
        "values are not kept"
    );

    // A later sighting moves the sample and last_seen_at, not first_seen_at.
    let later = data(json!({"name": "John Roe"}));
    store.note_event_seen(&ws, &seen, &later, true, START + 2 * 60_000);
    eventually("the newer sample", || {
        store.event_type(&ws, &seen).unwrap().unwrap().last_seen_at == Some(START + 2 * 60_000)
    });
    let row = store.event_type(&ws, &seen).unwrap().unwrap();
    assert_eq!(
        (row.first_seen_at, row.seen_sample),
        (Some(START), Some(later))
    );

    // Declaring a seen type keeps what was seen.
    let declared = Declared {
        description: "Admitted".into(),
        sample: data(json!({"name": "Sample"})),
        declared_at: START,
        subject_path: None,
    };
    let row =
        block_on(store.declare_event_type(ws.clone(), seen.clone(), declared, audit(&ws, "d")))
            .unwrap();
    assert!(row.declared.is_some() && row.seen_sample.is_some());
    let names: Vec<String> = store
        .event_types(&ws)
        .unwrap()
        .into_iter()
        .map(|(name, _)| name.to_string())
        .collect();
    let mut sorted = names.clone();
    sorted.sort();
    assert_eq!(names, sorted, "by type name");
    assert_eq!(
        names,
        ["appointment.booked", "lab.result", "patient.admitted"]
    );
    assert!(store.event_types(&other_workspace()).unwrap().is_empty());
}

pub fn hourly_outcomes_count_finished_deliveries(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let r = rule(&ws, "r", &["x"]);
    let finish = |at: i64, status: DeliveryStatus, test: bool| {
        let mut e = event(&ws, "x", at - 5);
        e.test = test;
        let d = ingest_with(store, &e, &[&r], DeliveryStatus::Pending).remove(0);
        let next_attempt_at = status.is_open().then_some(at + 60_000);
        let after = Delivery {
            status,
            attempts: 1,
            attempts_left: u32::from(status.is_open()),
            next_attempt_at,
            updated_at: at,
            ..d
        };
        record(store, &after, &attempt(1, at - 1, 200)).unwrap();
    };
    finish(START + 10, DeliveryStatus::Succeeded, false);
    finish(START + 20, DeliveryStatus::Blocked, false);
    finish(START + 30, DeliveryStatus::Succeeded, true);
    finish(START + 40, DeliveryStatus::Retrying, false);
    finish(START - 10, DeliveryStatus::Failed, false);
    assert_eq!(
        store.hourly_outcomes(&ws, START + 50, 3).unwrap(),
        [
            (START - 2 * HOUR, 0, 0),
            (START - HOUR, 0, 1),
            (START, 1, 1)
        ],
        "blocked counts as failed; test sends and open deliveries not at all"
    );
    assert_eq!(
        store.hourly_outcomes(&other_workspace(), START, 1).unwrap(),
        [(START, 0, 0)]
    );
}

pub fn prune_keeps_open_deliveries_and_their_events(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let r = rule(&ws, "r", &["x"]);
    let old = START - 10 * 24 * HOUR;
    let finished_event = event(&ws, "x", old);
    let finished = ingest_with(store, &finished_event, &[&r], DeliveryStatus::Pending).remove(0);
    let failed = Delivery {
        status: DeliveryStatus::Failed,
        attempts: 1,
        attempts_left: 0,
        next_attempt_at: None,
        ..finished.clone()
    };
    record(store, &failed, &attempt(1, old, 500)).unwrap();
    let open_event = event(&ws, "x", old + 1);
    let open = ingest_with(store, &open_event, &[&r], DeliveryStatus::Retrying).remove(0);
    let lonely = event(&ws, "x", old + 2);
    block_on(store.ingest(new_event(lonely.clone(), Vec::new()))).unwrap();
    let recent_event = event(&ws, "x", START);
    let recent = ingest_with(store, &recent_event, &[&r], DeliveryStatus::Succeeded).remove(0);

    assert_eq!(store.prune_before(START - 24 * HOUR).unwrap(), (1, 2));
    assert_not_found(store.delivery(&ws, &finished.id), "delivery");
    assert!(store.attempts(&finished.id).unwrap().is_empty());
    assert_not_found(store.event(&ws, &finished_event.id), "event");
    assert_not_found(store.event(&ws, &lonely.id), "event");
    assert_eq!(
        store.delivery(&ws, &open.id).unwrap().status,
        DeliveryStatus::Retrying
    );
    assert!(
        store.event(&ws, &open_event.id).is_ok(),
        "an open delivery keeps its event"
    );
    assert_eq!(store.open_deliveries().unwrap()[0].id, open.id);
    assert!(store.delivery(&ws, &recent.id).is_ok());
    assert!(store.event(&ws, &recent_event.id).is_ok());
    let filter = DeliveryFilter {
        limit: 10,
        ..DeliveryFilter::default()
    };
    assert_eq!(store.list_deliveries(&ws, &filter).unwrap().0.len(), 2);
    assert_eq!(store.prune_before(START - 24 * HOUR).unwrap(), (0, 0));
}

/// A rule's shorter `log.retention_days`: only its finished deliveries go, and only the
/// events left without any delivery.
pub fn prune_of_one_rule_keeps_other_rules_open_deliveries_and_shared_events(
    store: &Store,
    _clock: &Clock,
) {
    let ws = store.default_workspace().clone();
    let mut short = rule(&ws, "short", &["x"]);
    short.log.retention_days = Some(1);
    block_on(store.save_rule(short.clone(), false, audit(&ws, "rule.create"))).unwrap();
    let other = rule(&ws, "other", &["x"]);
    assert_eq!(store.rules_with_retention(), vec![(short.id.clone(), 1)]);

    let old = START - 10 * 24 * HOUR;
    let alone = event(&ws, "x", old);
    let alone_d = ingest_with(store, &alone, &[&short], DeliveryStatus::Succeeded).remove(0);
    let shared = event(&ws, "x", old + 1);
    let shared_d = ingest_with(store, &shared, &[&short, &other], DeliveryStatus::Failed);
    let open = event(&ws, "x", old + 2);
    let open_d = ingest_with(store, &open, &[&short], DeliveryStatus::Retrying).remove(0);
    let recent = event(&ws, "x", START);
    let recent_d = ingest_with(store, &recent, &[&short], DeliveryStatus::Succeeded).remove(0);

    assert_eq!(
        store
            .prune_rule_before(&short.id, START - 24 * HOUR)
            .unwrap(),
        (2, 1)
    );
    assert_not_found(store.delivery(&ws, &alone_d.id), "delivery");
    assert_not_found(store.event(&ws, &alone.id), "event");
    assert_not_found(store.delivery(&ws, &shared_d[0].id), "delivery");
    assert!(
        store.delivery(&ws, &shared_d[1].id).is_ok(),
        "the other rule's"
    );
    assert!(store.event(&ws, &shared.id).is_ok(), "still has a delivery");
    assert!(store.delivery(&ws, &open_d.id).is_ok(), "open");
    assert!(store.event(&ws, &open.id).is_ok());
    assert!(store.delivery(&ws, &recent_d.id).is_ok(), "recent");
    assert_eq!(
        store
            .prune_rule_before(&short.id, START - 24 * HOUR)
            .unwrap(),
        (0, 0)
    );
    assert_eq!(
        store
            .prune_rule_before(&other.id, START - 24 * HOUR)
            .unwrap(),
        (1, 1),
        "the other rule's own prune then takes the shared event"
    );
}

pub fn prune_forgets_expired_idempotency_keys_by_the_clock(store: &Store, clock: &Clock) {
    let ws = store.default_workspace().clone();
    let keyed = |at: i64| {
        let outcome = block_on(store.ingest(NewEvent {
            idempotency_key: Some("k".into()),
            ..new_event(event(&ws, "x", at), Vec::new())
        }));
        outcome.unwrap()
    };
    assert_eq!(keyed(START), IngestOutcome::Created);
    store.prune_before(0).unwrap();
    assert!(
        matches!(keyed(START + 1), IngestOutcome::Duplicate(_)),
        "not expired yet"
    );
    clock.set(START + IDEMPOTENCY_TTL_MS + 1);
    store.prune_before(0).unwrap();
    assert_eq!(
        keyed(START + 2),
        IngestOutcome::Created,
        "the expired key was forgotten"
    );
}

pub fn ping_open_count_and_backup(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    store.ping().unwrap();
    assert_eq!(store.open_count().unwrap(), 0);
    ingest_with(
        store,
        &event(&ws, "x", START),
        &[&rule(&ws, "r", &["x"])],
        DeliveryStatus::Pending,
    );
    assert_eq!(store.open_count().unwrap(), 1);

    let path = std::env::temp_dir().join(format!(
        "tidings-contract-backup-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    let rows = store.backup_to(&path);
    let exists = path.exists();
    if let Err(StoreError::Unsupported(why)) = &rows {
        assert!(!exists, "a refused backup writes nothing");
        assert!(why.contains("pg_dump"), "says what to use instead: {why}");
        return;
    }
    let again = store.backup_to(&path);
    std::fs::remove_file(&path).ok();
    assert!(rows.unwrap() > 0);
    assert!(exists);
    assert_conflict(again);
}

pub fn shutdown_finishes_queued_writes_and_refuses_later_ones(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let r = rule(&ws, "r", &["x"]);
    let d = ingest_with(
        store,
        &event(&ws, "x", START),
        &[&r],
        DeliveryStatus::Pending,
    )
    .remove(0);
    // Fire-and-forget writes still queued when shutdown is called are finished by it.
    store.set_rule_failing_since(&r.id, Some(START));
    store.shutdown();
    assert_eq!(
        store.rules_failing_since().unwrap().get(&r.id),
        Some(&START)
    );
    store.shutdown();

    let closed = |result: Result<(), StoreError>| {
        assert!(matches!(result, Err(StoreError::Closed)), "{result:?}");
    };
    closed(store.audit_now(audit(&ws, "late")));
    closed(block_on(store.audit(audit(&ws, "late"))));
    closed(block_on(store.save_rule(r.clone(), false, audit(&ws, "late"))).map(drop));
    closed(
        store
            .ingest_blocking(new_event(event(&ws, "x", START), Vec::new()))
            .map(drop),
    );
    closed(record(store, &d, &attempt(1, START, 200)));
    assert!(store.ping().is_err(), "a shut-down store is not ready");
    // Reads still answer, and nothing late was written.
    assert_not_found(store.rule(&ws, &r.id), "rule");
    assert!(store.attempts(&d.id).unwrap().is_empty());
}

pub fn open_count_in_counts_each_workspaces_waiting_deliveries(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let other = other_workspace();
    let (r, s) = (rule(&ws, "r", &["x"]), rule(&other, "s", &["x"]));
    let first = ingest_with(
        store,
        &event(&ws, "x", START),
        &[&r],
        DeliveryStatus::Pending,
    );
    let second = ingest_with(
        store,
        &event(&ws, "x", START + 1),
        &[&r],
        DeliveryStatus::Retrying,
    );
    ingest_with(
        store,
        &event(&ws, "x", START + 2),
        &[&r],
        DeliveryStatus::ConditionError,
    );
    let theirs = ingest_with(
        store,
        &event(&other, "x", START + 3),
        &[&s],
        DeliveryStatus::Pending,
    );
    let counts = || {
        (
            store.open_count_in(&ws).unwrap(),
            store.open_count_in(&other).unwrap(),
            store.open_count().unwrap(),
        )
    };
    assert_eq!(counts(), (2, 1, 3), "a condition error waits for nothing");

    let retried = Delivery {
        status: DeliveryStatus::Retrying,
        attempts: 1,
        attempts_left: 2,
        next_attempt_at: Some(START + 60_000),
        updated_at: START + 10,
        ..first[0].clone()
    };
    record(store, &retried, &attempt(1, START + 5, 500)).unwrap();
    assert_eq!(counts(), (2, 1, 3), "a retry stays one waiting delivery");
    let done = Delivery {
        status: DeliveryStatus::Succeeded,
        attempts: 1,
        attempts_left: 0,
        next_attempt_at: None,
        updated_at: START + 20,
        ..second[0].clone()
    };
    record(store, &done, &attempt(1, START + 15, 200)).unwrap();
    assert_eq!(counts(), (1, 1, 2));
    store
        .close_delivery(&theirs[0].id, DeliveryStatus::Failed)
        .unwrap();
    assert_eq!(counts(), (1, 0, 1));
    block_on(store.redeliver(ws.clone(), done.id.clone())).unwrap();
    assert_eq!(counts(), (2, 0, 2), "a re-send waits again");
}

pub fn condition_errors_are_counted_per_rule_by_the_hour_and_pruned(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let other = other_workspace();
    let (a, b, c) = (
        rule(&ws, "a", &["x"]),
        rule(&ws, "b", &["x"]),
        rule(&other, "c", &["x"]),
    );
    let error_at = |workspace: &WorkspaceId, r: &Rule, at: i64| {
        ingest_with(
            store,
            &event(workspace, "x", at),
            &[r],
            DeliveryStatus::ConditionError,
        );
    };
    error_at(&ws, &a, START + 10);
    error_at(&ws, &a, START + 20);
    error_at(&ws, &b, START - HOUR + 5);
    error_at(&ws, &a, START - 3 * HOUR);
    error_at(&other, &c, START + 30);
    // Deliveries that were sent, or waited, are no condition errors.
    ingest_with(
        store,
        &event(&ws, "x", START + 40),
        &[&a],
        DeliveryStatus::Pending,
    );
    let counted = |since: i64| {
        let mut counts: Vec<(String, u64, i64)> = store
            .condition_errors_since(&ws, since)
            .unwrap()
            .into_iter()
            .map(|c| (c.rule_id.as_str().to_owned(), c.count, c.latest_at))
            .collect();
        counts.sort();
        counts
    };
    let (a_id, b_id) = (a.id.as_str().to_owned(), b.id.as_str().to_owned());
    let mut expected = vec![
        (a_id.clone(), 2, START + 20),
        (b_id.clone(), 1, START - HOUR + 5),
    ];
    expected.sort();
    assert_eq!(
        counted(START - HOUR + 30),
        expected,
        "from the start of the hour holding `since`, per rule, with the latest"
    );
    assert_eq!(counted(START - 3 * HOUR)[..].len(), 2);
    assert!(
        counted(START - 3 * HOUR).contains(&(a_id.clone(), 3, START + 20)),
        "{:?}",
        counted(START - 3 * HOUR)
    );
    let theirs = store.condition_errors_since(&other, START - HOUR).unwrap();
    assert_eq!(theirs.len(), 1);
    assert_eq!((theirs[0].count, theirs[0].latest_at), (1, START + 30));

    store.prune_before(START).unwrap();
    assert_eq!(
        counted(START - 3 * HOUR),
        vec![(a_id, 2, START + 20)],
        "retention forgets the hours before its cutoff"
    );
}
