//! Intake: the one path by which an event enters tidings, whether a source system posted it or
//! a routine fired. It finds the rules it goes to, evaluates their conditions, stores the event
//! with the deliveries it owes in one durable write, and only then hands them to the
//! dispatcher. (A test send is the one exception: it writes its event, delivery and single
//! attempt together after sending, through `samples::send_test`.)

use std::sync::Arc;

use crate::delivery::dispatcher::Dispatcher;
use crate::domain::delivery::Delivery;

use crate::domain::event::{Event, EventType};
use crate::domain::ids::{EventId, RuleId};
use crate::domain::intake::deliveries_for;
use crate::domain::rule::Rule;
use crate::domain::subject::{Subject, SubjectHash};
use crate::domain::system::{self, is_system};
use crate::error::AppError;
use crate::security::crypto::SubjectKey;
use crate::store::{IngestOutcome, NewEvent, Store, StoreError};
use crate::telemetry::Metrics;

/// Refuses a posted event whose type has the reserved `tidings:` prefix: only tidings makes
/// system events, so a rule on `tidings:*` can trust that what it receives is tidings' own.
pub fn check_posted_type(event_type: &EventType) -> Result<(), AppError> {
    if is_system(event_type) {
        return Err(AppError::invalid_event_type(format!(
            "event type \"{event_type}\" uses the prefix {:?}, which is reserved for the events tidings makes itself (alerts)",
            system::PREFIX
        )));
    }
    Ok(())
}

/// Refuses a posted idempotency key with the reserved prefix: system events are deduplicated
/// by such keys in the same workspace, and a posted one must not be able to silence an alert.
pub fn check_posted_key(key: &str) -> Result<(), AppError> {
    if key.starts_with(system::PREFIX) {
        return Err(AppError::validation(format!(
            "idempotency_key may not start with {:?}: that prefix is reserved for the events tidings makes itself (alerts)",
            system::PREFIX
        )));
    }
    Ok(())
}

/// Who an event goes to.
pub enum Recipients {
    /// Every active rule of its workspace whose trigger matches its type (a posted event).
    Matching,
    /// A system event (`tidings:…`, made by `alerts`): like `Matching`, but only rules with a
    /// `tidings:` pattern match it, and it is not counted as ingested.
    System,
    /// One routine, for its own firing at `slot` (recorded so a slot never fires twice).
    Routine { rule: Arc<Rule>, slot: i64 },
}

/// What became of an event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Accepted {
    /// Stored, with this many deliveries (`condition_error` ones included).
    Created { deliveries: usize },
    /// Its idempotency key (or routine slot) was seen: nothing was created.
    Duplicate(EventId),
}

/// Cheap to clone: the API and the routine scheduler each hold one.
#[derive(Clone)]
pub struct Intake {
    store: Store,
    dispatcher: Dispatcher,
    metrics: Metrics,
    max_attempts: u32,
    store_bodies: bool,
    /// Hashes the subject an event is about; only the hash is stored.
    subject_key: SubjectKey,
}

impl Intake {
    pub fn new(
        store: Store,
        dispatcher: Dispatcher,
        metrics: Metrics,
        max_attempts: u32,
        store_bodies: bool,
        subject_key: SubjectKey,
    ) -> Self {
        Self {
            store,
            dispatcher,
            metrics,
            max_attempts,
            store_bodies,
            subject_key,
        }
    }

    /// Accepts an event a source system posted, about `subject` if it names one. Without
    /// one, the subject is taken from the type's declared `subject_path`, if any; when that
    /// finds nothing the event is still accepted, and the catalog says why.
    pub async fn accept_posted(
        &self,
        mut event: Event,
        subject: Option<Subject>,
        idempotency_key: Option<String>,
    ) -> Result<Accepted, StoreError> {
        event.subject = match subject {
            Some(subject) => Some(self.subject_key.hash(&subject)),
            None => self.subject_from_path(&event),
        };
        self.accept(event, Recipients::Matching, idempotency_key)
            .await
    }

    /// The subject at the type's declared `subject_path` (the store keeps the paths in
    /// memory, so this neither waits on the disk nor leaves the request's thread), hashed; a
    /// path that finds none is noted in the catalog.
    fn subject_from_path(&self, event: &Event) -> Option<SubjectHash> {
        let path = self
            .store
            .subject_path(&event.workspace_id, &event.event_type)?;
        match path.resolve(&event.data) {
            Ok(subject) => Some(self.subject_key.hash(&subject)),
            Err(reason) => {
                self.store.note_subject_missing(
                    &event.workspace_id,
                    &event.event_type,
                    reason,
                    event.received_at,
                );
                None
            }
        }
    }

    /// Accepts an event for a request handler: answered once it is durable. Conditions are
    /// evaluated on the blocking pool, never on the threads that answer HTTP: each is bounded
    /// by its budget, but a few rules near it must not hold up `/healthz` or the next request.
    /// An event no conditioned rule matches has nothing to evaluate and skips the hop.
    pub async fn accept(
        &self,
        event: Event,
        recipients: Recipients,
        idempotency_key: Option<String>,
    ) -> Result<Accepted, StoreError> {
        let posted = matches!(recipients, Recipients::Matching);
        let (rules, routine_slot) = self.rules_for(&event, recipients);
        let new = if rules.iter().any(|r| has_expressions(r)) {
            let planner = self.clone();
            tokio::task::spawn_blocking(move || {
                planner.plan(event, &rules, routine_slot, idempotency_key)
            })
            .await
            .map_err(|e| StoreError::Storage(format!("evaluating the conditions failed: {e}")))??
        } else {
            self.plan(event, &rules, routine_slot, idempotency_key)?
        };
        let deliveries = new.deliveries.clone();
        let outcome = self.store.ingest(new).await?;
        Ok(self.accepted(outcome, &deliveries, posted))
    }

    /// `accept` for a caller on a plain thread (the routine scheduler).
    pub fn accept_blocking(
        &self,
        event: Event,
        recipients: Recipients,
        idempotency_key: Option<String>,
    ) -> Result<Accepted, StoreError> {
        let posted = matches!(recipients, Recipients::Matching);
        let (rules, routine_slot) = self.rules_for(&event, recipients);
        let new = self.plan(event, &rules, routine_slot, idempotency_key)?;
        let deliveries = new.deliveries.clone();
        let outcome = self.store.ingest_blocking(new)?;
        Ok(self.accepted(outcome, &deliveries, posted))
    }

    /// The rules an event goes to (from the in-memory rule cache), and the routine slot it
    /// fires. A posted event's type is noted in the catalog.
    fn rules_for(
        &self,
        event: &Event,
        recipients: Recipients,
    ) -> (Vec<Arc<Rule>>, Option<(RuleId, i64)>) {
        match recipients {
            Recipients::Matching | Recipients::System => {
                let rules = self
                    .store
                    .matching_rules(&event.workspace_id, &event.event_type);
                self.store.note_event_seen(
                    &event.workspace_id,
                    &event.event_type,
                    &event.data,
                    self.store_bodies,
                    event.received_at,
                );
                (rules, None)
            }
            Recipients::Routine { rule, slot } => {
                let id: RuleId = rule.id.clone();
                (vec![rule], Some((id, slot)))
            }
        }
    }

    /// The rows an event makes: itself and one delivery per rule whose condition lets it
    /// through (or a `condition_error` one).
    fn plan(
        &self,
        event: Event,
        rules: &[Arc<Rule>],
        routine_slot: Option<(RuleId, i64)>,
        idempotency_key: Option<String>,
    ) -> Result<NewEvent, StoreError> {
        // Conditions may read the workspace's name; most rules have none, so skip the read then.
        let workspace_name = if rules.iter().any(|r| has_expressions(r)) {
            self.store.workspace_name(&event.workspace_id)?
        } else {
            String::new()
        };
        let key_hash =
            |rule: &Rule, key: &str| self.subject_key.ordering_hash(rule.id.as_str(), key);
        let deliveries =
            deliveries_for(&event, rules, &workspace_name, self.max_attempts, &key_hash);
        Ok(NewEvent {
            event: Arc::new(event),
            deliveries,
            idempotency_key,
            routine_slot,
        })
    }

    /// Once stored: the deliveries handed to the dispatcher, and a posted event counted
    /// (`tidings_events_ingested_total` counts what source systems sent).
    fn accepted(&self, outcome: IngestOutcome, deliveries: &[Delivery], posted: bool) -> Accepted {
        match outcome {
            IngestOutcome::Created => {
                if posted {
                    self.metrics.events_ingested.inc();
                }
                self.dispatcher.enqueue_deliveries(deliveries);
                Accepted::Created {
                    deliveries: deliveries.len(),
                }
            }
            IngestOutcome::Duplicate(original) => Accepted::Duplicate(original),
        }
    }
}

/// Whether the rule has CEL to evaluate per event: a condition or an ordering key.
fn has_expressions(rule: &Rule) -> bool {
    rule.condition.is_some() || rule.ordering_key.is_some()
}
