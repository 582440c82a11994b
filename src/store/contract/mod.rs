//! The storage contract: what every backend must do, written only against `Store`
//! (`Arc<dyn Storage>`), so the redb backend and the next one run the very same cases. A
//! backend runs the suite with `store_contract_tests!(open)`, where `open(clock)` returns a
//! fresh, empty store on that clock and a guard that removes whatever it made when dropped
//! (or `None`, to skip, when the backend's server is not available).
//!
//! Time is the injected manual clock, standing at `START` when each case begins. Writes that
//! report nothing back (`set_rule_failing_since`, `note_event_seen`) are awaited with
//! `eventually`, a bounded deadline loop.

mod access;
mod events;
mod rules;
mod subjects;
mod upkeep;
mod versions;

pub use access::*;
pub use events::*;
pub use rules::*;
pub use subjects::*;
pub use upkeep::*;
pub use versions::*;

use std::future::Future;
use std::sync::Arc;
use std::task::{Context, Poll, Wake, Waker};
use std::time::{Duration, Instant};

use serde_json::{Map, Value, json};

use super::{NewEvent, Store, StoreError};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus, LoggedRequest};
use crate::domain::event::{Event, EventType};
use crate::domain::ids::{AuditId, DeliveryId, EventId, RuleId, WorkspaceId};
use crate::domain::rule::Rule;

/// Where each case's clock stands at first: 2027-01-15T08:00:00Z, on the hour.
pub const START: i64 = 1_800_000_000_000;
pub const HOUR: i64 = 3_600_000;

/// Expands to one `#[test]` per contract case, each on a fresh store from `$open`.
macro_rules! store_contract_tests {
    ($open:expr) => {
        $crate::store::contract::store_contract_tests!(@cases $open;
            rules_save_replace_and_delete,
            rules_cache_matches_active_rules_and_lists_routines,
            rules_of_another_workspace_are_not_found,
            rules_deactivate_and_keep_failing_clocks,
            rules_keep_signing_keys_and_receiver_credentials_as_given,
            rules_alert_states_are_stored_and_forgotten,
            rule_versions_are_numbered_kept_and_go_with_the_rule,
            ingest_stores_the_event_with_its_deliveries,
            ingest_blocking_stores_like_ingest,
            events_and_deliveries_of_another_workspace_are_not_found,
            idempotency_keys_dedupe_within_the_ttl_per_workspace,
            routine_slots_are_recorded_once,
            close_delivery_takes_it_off_the_queue,
            record_attempt_logs_attempts_and_moves_the_delivery,
            redeliver_refuses_open_deliveries_and_reopens_finished_ones,
            ordering_head_is_the_oldest_open_delivery_of_a_key,
            redeliver_failed_reopens_a_rules_failures_in_a_time_range,
            list_deliveries_filters_and_pages_newest_first,
            the_status_filter_follows_a_delivery_through_its_life,
            test_deliveries_are_logged_finished,
            workspaces_start_with_the_default_one,
            workspaces_are_added_listed_and_named_once,
            api_keys_are_found_by_token_until_deleted,
            users_insert_update_and_delete_with_last_admin_guard,
            sessions_live_until_they_expire_or_end,
            sign_in_failures_count_per_key_in_windows,
            users_alert_email_is_set_and_cleared_keeping_sessions,
            users_keep_an_admin_in_every_workspace,
            audit_log_pages_newest_first_per_workspace,
            catalog_declares_types_and_notes_seen_ones,
            hourly_outcomes_count_finished_deliveries,
            prune_keeps_open_deliveries_and_their_events,
            prune_of_one_rule_keeps_other_rules_open_deliveries_and_shared_events,
            prune_forgets_expired_idempotency_keys_by_the_clock,
            ping_open_count_and_backup,
            open_count_in_counts_each_workspaces_waiting_deliveries,
            condition_errors_are_counted_per_rule_by_the_hour_and_pruned,
            shutdown_finishes_queued_writes_and_refuses_later_ones,
            disclosures_are_recorded_from_the_first_attempt_that_may_reach_the_receiver,
            disclosures_page_oldest_first_and_filter_by_first_attempt,
            erase_subject_destroys_data_and_bodies_closes_open_deliveries_and_keeps_disclosures,
            erase_of_an_unknown_subject_erases_nothing_and_is_audited,
            an_attempt_after_an_erasure_reads_the_event_erased,
            disclosures_outlive_the_pruning_of_the_delivery_log,
            catalog_notes_why_a_subject_path_found_no_subject,
        );
    };
    (@cases $open:expr; $($case:ident),* $(,)?) => {
        $(
            #[test]
            fn $case() {
                let clock = $crate::domain::time::Clock::manual($crate::store::contract::START);
                // `None`: the backend's database is not available here (the opener said why).
                let Some((store, guard)) = $crate::store::contract::Opened::opened(($open)(clock.clone()))
                else {
                    return;
                };
                $crate::store::contract::$case(&store, &clock);
                store.shutdown();
                drop(store);
                drop(guard);
            }
        )*
    };
}
pub(crate) use store_contract_tests;

/// What a backend's opener returns: a store and its guard, or `None` when the backend's
/// database cannot be had on this machine (a backend that needs a server skips then).
pub trait Opened<G> {
    fn opened(self) -> Option<(Store, G)>;
}

impl<G> Opened<G> for (Store, G) {
    fn opened(self) -> Option<(Store, G)> {
        Some(self)
    }
}

impl<G> Opened<G> for Option<(Store, G)> {
    fn opened(self) -> Option<(Store, G)> {
        self
    }
}

/// Runs a store future to its end on this thread (the suite needs no runtime).
pub fn block_on<T>(future: impl Future<Output = T>) -> T {
    struct Unpark(std::thread::Thread);
    impl Wake for Unpark {
        fn wake(self: Arc<Self>) {
            self.0.unpark();
        }
    }
    let waker = Waker::from(Arc::new(Unpark(std::thread::current())));
    let mut cx = Context::from_waker(&waker);
    let mut future = std::pin::pin!(future);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Poll::Ready(out) = future.as_mut().poll(&mut cx) {
            return out;
        }
        assert!(Instant::now() < deadline, "a store future did not finish");
        std::thread::park_timeout(Duration::from_millis(100));
    }
}

/// Waits (at most 5 s) until `check` holds, for writes that report nothing back.
pub fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !check() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// Asserts a `NotFound` naming `what`.
pub fn assert_not_found<T: std::fmt::Debug>(result: Result<T, StoreError>, what: &str) {
    match result {
        Err(StoreError::NotFound { what: w, .. }) => assert_eq!(w, what),
        other => panic!("expected no {what}, got {other:?}"),
    }
}

pub fn assert_conflict<T: std::fmt::Debug>(result: Result<T, StoreError>) {
    match result {
        Err(StoreError::Conflict(_)) => {}
        other => panic!("expected a conflict, got {other:?}"),
    }
}

/// A workspace the store has never heard of: its records must stay apart.
pub fn other_workspace() -> WorkspaceId {
    WorkspaceId::generate(START - 1)
}

pub fn event_type(name: &str) -> EventType {
    EventType::parse(name).expect("a valid event type")
}

/// An active event rule of `workspace` for the given type patterns.
pub fn rule(workspace: &WorkspaceId, name: &str, patterns: &[&str]) -> Rule {
    rule_with(
        workspace,
        name,
        json!({"type": "event", "events": patterns}),
        START,
    )
}

/// An active routine (schedule trigger) of `workspace`.
pub fn routine(workspace: &WorkspaceId, name: &str) -> Rule {
    rule_with(
        workspace,
        name,
        json!({"type": "schedule", "cron": "0 * * * *", "timezone": "UTC"}),
        START,
    )
}

fn rule_with(workspace: &WorkspaceId, name: &str, trigger: Value, at: i64) -> Rule {
    let mut rule = json!({
        "id": RuleId::generate(at),
        "workspace_id": workspace,
        "name": name,
        "description": "",
        "active": true,
        "max_concurrency": 8,
        "condition": null,
        "webhook": {
            "url": "https://receiver.example/hook",
            "method": "POST",
            "content_type": "application/json",
            "headers": {},
            "secret_headers": {},
            "signing": "none",
            "payload_format": "flat",
            "body_template": null,
            "tls_verify": true,
            "timeout_ms": 10000,
        },
        "signing_secrets": [],
        "created_at": at,
        "updated_at": at,
        "status_reason": null,
    });
    rule["trigger"] = trigger;
    serde_json::from_value(rule).expect("a valid rule")
}

pub fn data(value: Value) -> Map<String, Value> {
    match value {
        Value::Object(map) => map,
        other => panic!("event data must be an object, not {other}"),
    }
}

/// An event of `workspace` received at `at`.
pub fn event(workspace: &WorkspaceId, kind: &str, at: i64) -> Event {
    Event {
        id: EventId::generate(at),
        workspace_id: workspace.clone(),
        event_type: event_type(kind),
        occurred_at: at,
        received_at: at,
        data: data(json!({"patient": "Jane Doe", "at": at})),
        test: false,
        subject: None,
        erased: false,
    }
}

/// A delivery of `event` for `rule`, created when the event was received: pending and due
/// then, or finished with `status`.
pub fn delivery(event: &Event, rule: &Rule, status: DeliveryStatus) -> Delivery {
    let at = event.received_at;
    let open = status.is_open();
    Delivery {
        id: DeliveryId::generate(at),
        event_id: event.id.clone(),
        rule_id: rule.id.clone(),
        workspace_id: event.workspace_id.clone(),
        event_type: event.event_type.clone(),
        status,
        test: event.test,
        created_at: at,
        updated_at: at,
        attempts: 0,
        attempts_left: if open { 3 } else { 0 },
        next_attempt_at: open.then_some(at),
        condition_error: None,
        subject: None,
        erased: false,
        ordering_key: None,
    }
}

/// A new event with its deliveries and nothing else.
pub fn new_event(event: Event, deliveries: Vec<Delivery>) -> NewEvent {
    NewEvent {
        event: Arc::new(event),
        deliveries,
        idempotency_key: None,
        routine_slot: None,
    }
}

/// Ingests `event` with one delivery per rule (of `status`); returns the deliveries.
pub fn ingest_with(
    store: &Store,
    event: &Event,
    rules: &[&Rule],
    status: DeliveryStatus,
) -> Vec<Delivery> {
    let deliveries: Vec<Delivery> = rules.iter().map(|r| delivery(event, r, status)).collect();
    let outcome = block_on(store.ingest(new_event(event.clone(), deliveries.clone())));
    assert_eq!(outcome.unwrap(), super::IngestOutcome::Created);
    deliveries
}

/// Attempt `number`, started at `at`, answered with `status_code`.
pub fn attempt(number: u32, at: i64, status_code: u16) -> Attempt {
    Attempt {
        number,
        started_at: at,
        duration_ms: 12,
        status_code: Some(status_code),
        error_kind: None,
        error: None,
        request: LoggedRequest {
            url: "https://receiver.example/hook".into(),
            method: "POST".into(),
            headers: vec![("content-type".into(), "application/json".into())],
            body: Some(format!(r#"{{"attempt":{number}}}"#)),
        },
        response: None,
    }
}

/// Records an attempt and waits for its `done`; returns what `done` was told.
pub fn record(store: &Store, delivery: &Delivery, attempt: &Attempt) -> Result<(), StoreError> {
    let (tx, rx) = std::sync::mpsc::channel();
    store.record_attempt(
        delivery,
        attempt,
        Box::new(move |r| {
            let _ = tx.send(r);
        }),
    );
    rx.recv_timeout(Duration::from_secs(10))
        .expect("record_attempt's done ran")
}

/// An audit entry of `workspace` at `at`, with an id of that time (so entries sort by it).
pub fn audit_at(workspace: &WorkspaceId, action: &str, at: i64) -> AuditEntry {
    let mut entry = AuditEntry::new(workspace, Actor::Cli, action, "test", action);
    entry.at = at;
    entry.id = AuditId::generate(at);
    entry
}

pub fn audit(workspace: &WorkspaceId, action: &str) -> AuditEntry {
    AuditEntry::new(workspace, Actor::Cli, action, "test", action)
}

/// The actions of a workspace's whole audit log, newest first.
pub fn audit_actions(store: &Store, workspace: &WorkspaceId) -> Vec<String> {
    let (page, _) = store.audit_log(workspace, None, 1000).unwrap();
    page.into_iter().map(|e| e.action).collect()
}

pub fn ids(deliveries: &[Delivery]) -> Vec<DeliveryId> {
    deliveries.iter().map(|d| d.id.clone()).collect()
}
