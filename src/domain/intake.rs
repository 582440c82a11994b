//! What an accepted event owes: one delivery per matching rule whose condition holds, and a
//! closed `condition_error` delivery (no request) where a condition could not be evaluated,
//! so the admin sees it instead of the event silently going nowhere.

use std::sync::Arc;

use super::condition::Subject;
use super::delivery::{Delivery, DeliveryStatus};
use super::event::Event;
use super::ids::DeliveryId;
use super::rule::Rule;
use super::time::to_rfc3339;

/// The deliveries `event` creates for `rules` (already matched by trigger and active).
/// `key_hash` turns a rule's ordering key into what is stored (a keyed hash, never the value).
pub fn deliveries_for(
    event: &Event,
    rules: &[Arc<Rule>],
    workspace_name: &str,
    max_attempts: u32,
    key_hash: &dyn Fn(&Rule, &str) -> String,
) -> Vec<Delivery> {
    let occurred_at = to_rfc3339(event.occurred_at);
    let subject = Subject {
        event_type: event.event_type.as_str(),
        event_id: event.id.as_str(),
        occurred_at: &occurred_at,
        data: &event.data,
        workspace_id: event.workspace_id.as_str(),
        workspace_name,
    };
    rules
        .iter()
        .filter_map(|rule| {
            let verdict = rule
                .condition
                .as_ref()
                .map_or(Ok(true), |c| c.evaluate(&subject));
            let failed = |message| {
                new_delivery(
                    event,
                    rule,
                    DeliveryStatus::ConditionError,
                    Some(message),
                    max_attempts,
                )
            };
            let delivery = match verdict {
                Ok(false) => return None,
                Err(message) => failed(message),
                // A key that cannot be read is an error like a condition's: sending the
                // delivery unordered would break the promise silently.
                Ok(true) => match ordering_key(rule, &subject, key_hash) {
                    Err(message) => failed(format!("ordering key: {message}")),
                    Ok(key) => Delivery {
                        ordering_key: key,
                        ..new_delivery(event, rule, DeliveryStatus::Pending, None, max_attempts)
                    },
                },
            };
            Some(delivery)
        })
        .collect()
}

/// The stored form of the rule's ordering key for this event: None when the rule has none
/// or the expression gives null.
fn ordering_key(
    rule: &Rule,
    subject: &Subject<'_>,
    key_hash: &dyn Fn(&Rule, &str) -> String,
) -> Result<Option<String>, String> {
    let Some(expression) = &rule.ordering_key else {
        return Ok(None);
    };
    Ok(expression
        .evaluate_key(subject)?
        .map(|key| key_hash(rule, &key)))
}

/// A test send's delivery: one attempt, never retried, whatever the rule's condition says.
pub fn test_delivery(event: &Event, rule: &Rule) -> Delivery {
    new_delivery(event, rule, DeliveryStatus::Pending, None, 1)
}

/// The one place a delivery is made: open ones are due at once with `max_attempts` to go.
fn new_delivery(
    event: &Event,
    rule: &Rule,
    status: DeliveryStatus,
    condition_error: Option<String>,
    max_attempts: u32,
) -> Delivery {
    let open = status.is_open();
    Delivery {
        id: DeliveryId::generate(event.received_at),
        event_id: event.id.clone(),
        rule_id: rule.id.clone(),
        workspace_id: event.workspace_id.clone(),
        event_type: event.event_type.clone(),
        status,
        test: event.test,
        created_at: event.received_at,
        updated_at: event.received_at,
        attempts: 0,
        attempts_left: if open { max_attempts } else { 0 },
        next_attempt_at: open.then_some(event.received_at),
        condition_error,
        subject: event.subject.clone(),
        erased: false,
        ordering_key: None,
    }
}
