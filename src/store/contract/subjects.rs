//! Contract cases for `SubjectStore`: the subject index, disclosure records kept by the
//! attempt log (and kept through retention and erasure), their pages, and erasure.

use serde_json::json;

use super::{
    START, assert_conflict, attempt, audit, audit_actions, block_on, data, delivery, event,
    event_type, new_event, other_workspace, record, rule,
};
use crate::domain::catalog::Declared;
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus, ErrorKind, LoggedResponse};
use crate::domain::event::Event;
use crate::domain::ids::WorkspaceId;
use crate::domain::rule::Rule;
use crate::domain::subject::{Erased, SubjectHash};
use crate::domain::time::Clock;
use crate::store::{DisclosureFilter, IngestOutcome, Store};

fn subject(n: u8) -> SubjectHash {
    SubjectHash::from_hex(format!("{n:02x}").repeat(32)).expect("64 hex digits")
}

fn all() -> DisclosureFilter {
    DisclosureFilter {
        limit: 100,
        ..DisclosureFilter::default()
    }
}

/// A saved rule (its name is what disclosure records show).
fn saved_rule(store: &Store, ws: &WorkspaceId, name: &str) -> Rule {
    let r = rule(ws, name, &["patient.*"]);
    block_on(store.save_rule(r.clone(), false, audit(ws, "rule.create"))).unwrap()
}

/// Ingests an event about `who` with one pending delivery per rule.
fn ingest_about(
    store: &Store,
    ws: &WorkspaceId,
    who: &SubjectHash,
    at: i64,
    rules: &[&Rule],
) -> (Event, Vec<Delivery>) {
    let mut e = event(ws, "patient.admitted", at);
    e.subject = Some(who.clone());
    e.data = data(json!({"patient": "MARKER-Jane-Doe", "at": at}));
    let deliveries: Vec<Delivery> = rules
        .iter()
        .map(|r| {
            let mut d = delivery(&e, r, DeliveryStatus::Pending);
            d.subject = Some(who.clone());
            d
        })
        .collect();
    let outcome = block_on(store.ingest(new_event(e.clone(), deliveries.clone())));
    assert_eq!(outcome.unwrap(), IngestOutcome::Created);
    (e, deliveries)
}

/// Attempt `number` of `d` answered `status` (a success finishes it, else it retries).
fn answered(store: &Store, d: &Delivery, number: u32, at: i64, status: u16) -> Delivery {
    let mut a = attempt(number, at, status);
    a.response = Some(LoggedResponse {
        status,
        headers: vec![],
        body: Some("MARKER-response".into()),
        truncated: false,
    });
    let mut next = d.clone();
    next.attempts = number;
    if (200..300).contains(&status) {
        next.status = DeliveryStatus::Succeeded;
        next.next_attempt_at = None;
        next.attempts_left = 0;
    } else {
        next.status = DeliveryStatus::Retrying;
        next.next_attempt_at = Some(at + 10_000);
    }
    record(store, &next, &a).unwrap();
    next
}

fn refused(number: u32, at: i64) -> Attempt {
    let mut a = attempt(number, at, 0);
    a.status_code = None;
    a.error_kind = Some(ErrorKind::Connect);
    a.error = Some("connection refused".into());
    a
}

pub fn disclosures_are_recorded_from_the_first_attempt_that_may_reach_the_receiver(
    store: &Store,
    _clock: &Clock,
) {
    let ws = store.default_workspace().clone();
    let crm = saved_rule(store, &ws, "Notify CRM");
    let (who, other) = (subject(1), subject(2));
    let (e, ds) = ingest_about(store, &ws, &who, START, &[&crm]);
    let d = &ds[0];
    assert!(store.disclosures(&ws, &who, &all()).unwrap().0.is_empty());

    // Refused before a connection: nothing can have been disclosed.
    let mut retrying = d.clone();
    retrying.status = DeliveryStatus::Retrying;
    retrying.attempts = 1;
    record(store, &retrying, &refused(1, START + 1)).unwrap();
    assert!(
        store.disclosures(&ws, &who, &all()).unwrap().0.is_empty(),
        "a refused connection is no disclosure"
    );

    let retrying = answered(store, &retrying, 2, START + 2, 503);
    let (page, cursor) = store.disclosures(&ws, &who, &all()).unwrap();
    assert_eq!(cursor, None);
    assert_eq!(page.len(), 1);
    let r = &page[0];
    assert_eq!(
        (&r.delivery_id, &r.event_id, r.event_type.as_str()),
        (&d.id, &e.id, "patient.admitted")
    );
    assert_eq!((&r.rule_id, r.rule_name.as_str()), (&crm.id, "Notify CRM"));
    assert_eq!(r.destination, "https://receiver.example");
    assert_eq!(r.status, DeliveryStatus::Retrying);
    assert_eq!((r.first_attempt_at, r.succeeded_at), (START + 2, None));

    answered(store, &retrying, 3, START + 3, 200);
    let r = store.disclosures(&ws, &who, &all()).unwrap().0.remove(0);
    assert_eq!(r.status, DeliveryStatus::Succeeded);
    assert_eq!(
        (r.first_attempt_at, r.succeeded_at),
        (START + 2, Some(START + 3))
    );

    assert!(store.disclosures(&ws, &other, &all()).unwrap().0.is_empty());
    assert!(
        store
            .disclosures(&other_workspace(), &who, &all())
            .unwrap()
            .0
            .is_empty(),
        "another workspace's subject is another person"
    );
}

pub fn disclosures_page_oldest_first_and_filter_by_first_attempt(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let crm = saved_rule(store, &ws, "crm");
    let who = subject(3);
    let mut sent = Vec::new();
    for i in 0..3 {
        let at = START + i * 1000;
        let (_, ds) = ingest_about(store, &ws, &who, at, &[&crm]);
        answered(store, &ds[0], 1, at + 5, 200);
        sent.push(ds[0].id.clone());
    }
    let first = DisclosureFilter {
        limit: 2,
        ..DisclosureFilter::default()
    };
    let (page, cursor) = store.disclosures(&ws, &who, &first).unwrap();
    let ids: Vec<_> = page.iter().map(|r| r.delivery_id.clone()).collect();
    assert_eq!(ids, sent[..2]);
    let cursor = cursor.expect("a third disclosure follows");
    let next = DisclosureFilter {
        after: Some(cursor),
        ..first
    };
    let (page, cursor) = store.disclosures(&ws, &who, &next).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].delivery_id, sent[2]);
    assert_eq!(cursor, None, "no page after the last");

    let window = DisclosureFilter {
        since: Some(START + 1005),
        until: Some(START + 1005),
        limit: 100,
        after: None,
    };
    let (page, _) = store.disclosures(&ws, &who, &window).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(page[0].delivery_id, sent[1]);
}

pub fn erase_subject_destroys_data_and_bodies_closes_open_deliveries_and_keeps_disclosures(
    store: &Store,
    clock: &Clock,
) {
    let ws = store.default_workspace().clone();
    let (crm, lab) = (saved_rule(store, &ws, "crm"), saved_rule(store, &ws, "lab"));
    let (who, other) = (subject(4), subject(5));
    let (erased_event, ds) = ingest_about(store, &ws, &who, START, &[&crm, &lab]);
    let delivered = answered(store, &ds[0], 1, START + 1, 200);
    let retrying = answered(store, &ds[1], 1, START + 1, 500);
    let (kept_event, kept) = ingest_about(store, &ws, &other, START + 2, &[&crm]);
    answered(store, &kept[0], 1, START + 3, 200);
    let before = store.disclosures(&ws, &who, &all()).unwrap().0;
    assert_eq!(before.len(), 2);

    clock.advance(60_000);
    let counts =
        block_on(store.erase_subject(ws.clone(), who.clone(), audit(&ws, "subject.erase")))
            .unwrap();
    assert_eq!(
        counts,
        Erased {
            events: 1,
            deliveries: 2
        }
    );

    let gone = store.event(&ws, &erased_event.id).unwrap();
    assert!(gone.erased, "the event reads erased");
    assert!(gone.data.is_empty(), "its data is destroyed");
    for d in [&delivered, &retrying] {
        for a in store.attempts(&d.id).unwrap() {
            assert_eq!(a.request.body, None, "logged request bodies are destroyed");
            assert!(a.response.as_ref().is_none_or(|r| r.body.is_none()));
        }
    }
    let closed = store.delivery(&ws, &retrying.id).unwrap();
    assert_eq!(
        closed.status,
        DeliveryStatus::Failed,
        "closed without being sent"
    );
    assert_eq!(closed.next_attempt_at, None);
    assert!(
        store
            .open_deliveries()
            .unwrap()
            .iter()
            .all(|o| o.id != retrying.id),
        "off the open queue"
    );
    assert_eq!(
        store.delivery(&ws, &delivered.id).unwrap().status,
        DeliveryStatus::Succeeded,
        "what was sent stays sent"
    );
    assert_conflict(block_on(store.redeliver(ws.clone(), delivered.id.clone())));

    // An attempt under way during the erasure: logged without bodies, the delivery closed.
    let late = answered(store, &retrying, 2, START + 61_000, 500);
    let after = store.delivery(&ws, &late.id).unwrap();
    assert_eq!(after.status, DeliveryStatus::Failed);
    assert!(
        store
            .open_deliveries()
            .unwrap()
            .iter()
            .all(|o| o.id != late.id)
    );
    assert!(
        store
            .attempts(&late.id)
            .unwrap()
            .iter()
            .all(|a| a.request.body.is_none())
    );

    let untouched = store.event(&ws, &kept_event.id).unwrap();
    assert!(!untouched.erased);
    assert_eq!(
        untouched.data, kept_event.data,
        "another subject's event is untouched"
    );
    assert!(
        store.attempts(&kept[0].id).unwrap()[0]
            .request
            .body
            .is_some(),
        "another subject's log is untouched"
    );
    let mut after = store.disclosures(&ws, &who, &all()).unwrap().0;
    after.sort_by(|a, b| a.delivery_id.cmp(&b.delivery_id));
    let mut before = before;
    before.sort_by(|a, b| a.delivery_id.cmp(&b.delivery_id));
    assert_eq!(
        after
            .iter()
            .map(|r| (&r.delivery_id, r.first_attempt_at, r.succeeded_at))
            .collect::<Vec<_>>(),
        before
            .iter()
            .map(|r| (&r.delivery_id, r.first_attempt_at, r.succeeded_at))
            .collect::<Vec<_>>(),
        "the accounting still lists what was sent"
    );
    assert!(audit_actions(store, &ws).contains(&"subject.erase".to_owned()));

    let again = block_on(store.erase_subject(ws.clone(), who, audit(&ws, "subject.erase")));
    assert_eq!(again.unwrap(), Erased::default(), "nothing is erased twice");
}

/// An event read for an attempt before its subject's erasure (and kept opened for the
/// fan-out, see `store/opened_events.rs`) is read erased by the next attempt.
pub fn an_attempt_after_an_erasure_reads_the_event_erased(store: &Store, clock: &Clock) {
    let ws = store.default_workspace().clone();
    let (crm, lab) = (saved_rule(store, &ws, "crm"), saved_rule(store, &ws, "lab"));
    let who = subject(6);
    let (event, ds) = ingest_about(store, &ws, &who, START, &[&crm, &lab]);
    let (_, in_hand) = store.delivery_with_event(&ds[0].id).unwrap().unwrap();
    assert_eq!(in_hand.data, event.data);

    clock.advance(60_000);
    block_on(store.erase_subject(ws.clone(), who, audit(&ws, "subject.erase"))).unwrap();
    for d in &ds {
        let (_, read) = store.delivery_with_event(&d.id).unwrap().unwrap();
        assert!(read.erased, "read erased, not as opened before");
        assert!(read.data.is_empty());
    }
}

pub fn erase_of_an_unknown_subject_erases_nothing_and_is_audited(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let crm = saved_rule(store, &ws, "crm");
    let (e, _) = ingest_about(store, &ws, &subject(6), START, &[&crm]);
    let counts =
        block_on(store.erase_subject(ws.clone(), subject(7), audit(&ws, "subject.erase"))).unwrap();
    assert_eq!(counts, Erased::default());
    assert!(!store.event(&ws, &e.id).unwrap().erased);
    // The same subject in another workspace is another person.
    let counts =
        block_on(store.erase_subject(other_workspace(), subject(6), audit(&ws, "subject.erase")))
            .unwrap();
    assert_eq!(counts, Erased::default());
    assert!(!store.event(&ws, &e.id).unwrap().erased);
    assert_eq!(
        audit_actions(store, &ws)
            .iter()
            .filter(|a| *a == "subject.erase")
            .count(),
        2
    );
    let (entries, _) = store.audit_log(&ws, None, 10).unwrap();
    let erase = entries
        .iter()
        .find(|e| e.action == "subject.erase")
        .expect("audited");
    assert_eq!(
        erase.after,
        Some(serde_json::json!({"events": 0, "deliveries": 0})),
        "the counts are in the entry"
    );
}

pub fn disclosures_outlive_the_pruning_of_the_delivery_log(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let crm = saved_rule(store, &ws, "crm");
    let who = subject(8);
    let (e, ds) = ingest_about(store, &ws, &who, START, &[&crm]);
    answered(store, &ds[0], 1, START + 1, 200);
    let (deliveries, events) = store.prune_before(START + 3_600_000).unwrap();
    assert_eq!((deliveries, events), (1, 1));
    assert!(store.event(&ws, &e.id).is_err(), "the event is pruned");
    let page = store.disclosures(&ws, &who, &all()).unwrap().0;
    assert_eq!(page.len(), 1, "its disclosure is kept");
    assert_eq!(page[0].succeeded_at, Some(START + 1));
}

pub fn catalog_notes_why_a_subject_path_found_no_subject(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let t = event_type("patient.admitted");
    let declared = Declared {
        description: String::new(),
        sample: data(json!({"member": {"id": 1}})),
        declared_at: START,
        subject_path: Some(crate::domain::subject::SubjectPath::parse("member.id").unwrap()),
    };
    block_on(store.declare_event_type(ws.clone(), t.clone(), declared.clone(), audit(&ws, "d")))
        .unwrap();
    store.note_subject_missing(&ws, &t, "the event has no value at member.id".into(), START);
    super::eventually("the note", || {
        store
            .event_type(&ws, &t)
            .unwrap()
            .and_then(|row| row.subject_missing)
            .is_some_and(|(why, at)| why.contains("member.id") && at == START)
    });
    let row = block_on(store.declare_event_type(ws.clone(), t, declared, audit(&ws, "d"))).unwrap();
    assert_eq!(
        row.subject_missing, None,
        "a re-declaration clears the note"
    );
    assert!(row.declared.unwrap().subject_path.is_some());
}
