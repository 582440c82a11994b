//! Trying a rule: a test send (one real request now, never retried, logged as a test
//! delivery) and a preview (the signed request it would send, and the condition's verdict,
//! without sending). Both use the event given, or the catalog's sample for the rule.

use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::{AppState, blocking, catalog};
use crate::delivery::attempt::{
    Env, PrepareError, PreparedRequest, perform, prepare, template_failure,
};
use crate::domain::catalog::Entry;
use crate::domain::condition::Subject;
use crate::domain::delivery::{Attempt, Delivery};
use crate::domain::event::{Event, EventType, check_data};
use crate::domain::ids::{EventId, RuleId, WorkspaceId};
use crate::domain::intake::test_delivery;
use crate::domain::rule::{ROUTINE_FIRED, Rule, Trigger};
use crate::domain::template::TemplateError;
use crate::domain::time::to_rfc3339;
use crate::error::AppError;
use crate::security::opened_secrets::OpenedSecrets;
use crate::store::StoreError;

/// What a test or preview sends: a given event type and data, or the rule's sample.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleRequest {
    pub event_type: Option<String>,
    pub data: Option<Value>,
}

/// A routine's sample is its own next firing; other types use the catalog's sample.
pub fn sample_data(state: &AppState, rule: &Rule, entry: &Entry) -> Map<String, Value> {
    if entry.name.as_str() == ROUTINE_FIRED && matches!(rule.trigger, Trigger::Schedule { .. }) {
        let now = state.clock.now_ms();
        let slot = rule
            .trigger
            .schedule()
            .and_then(|s| s.next_after(now))
            .unwrap_or(now);
        rule.firing_data(slot)
    } else {
        entry.sample.clone()
    }
}

/// A test event of the rule's workspace, received now.
pub fn test_event(
    state: &AppState,
    rule: &Rule,
    event_type: EventType,
    data: Map<String, Value>,
) -> Event {
    let now = state.clock.now_ms();
    Event {
        id: EventId::generate(now),
        workspace_id: rule.workspace_id.clone(),
        event_type,
        occurred_at: now,
        received_at: now,
        data,
        test: true,
        subject: None,
        erased: false,
    }
}

/// A rule, a sample event for it, and the signed request a delivery of it would send now
/// (or why its body template failed for that event).
struct Sample {
    rule: Rule,
    event: Event,
    workspace_name: String,
    delivery: Delivery,
    request: Result<PreparedRequest, TemplateError>,
}

/// The event a test or preview uses: the given one, or the catalog sample for the rule's
/// first exact event type (`ping` if it has none).
async fn sample(state: &AppState, rule: Rule, req: SampleRequest) -> Result<Sample, AppError> {
    let workspace = rule.workspace_id.clone();
    let type_name = req
        .event_type
        .or_else(|| rule.trigger.exact_types().first().map(|t| (*t).to_owned()))
        .unwrap_or_else(|| "ping".to_owned());
    let event_type = EventType::parse(&type_name).map_err(AppError::invalid_event_type)?;
    let given = match req.data {
        None => None,
        Some(Value::Object(map)) => Some(map),
        Some(_) => return Err(AppError::validation("data must be a JSON object")),
    };
    let store = state.store.clone();
    let (workspace_name, entry) = blocking(move || {
        let entry = catalog::entry(&store, &workspace, event_type)?;
        Ok::<_, StoreError>((store.workspace_name(&workspace)?, entry))
    })
    .await?;
    let data = given.unwrap_or_else(|| sample_data(state, &rule, &entry));
    check_data(&data).map_err(AppError::validation)?;
    let event = test_event(state, &rule, entry.name, data);
    let delivery = test_delivery(&event, &rule);
    let request = match prepare(
        &rule,
        &event,
        &workspace_name,
        delivery.id.as_str(),
        // A preview or a test send opens its rule's secrets once: nothing to remember.
        &OpenedSecrets::new(state.master_key.clone()),
        state.clock.now_ms(),
    ) {
        Ok(request) => Ok(request),
        Err(PrepareError::Template(e)) => Err(e),
        Err(PrepareError::Crypto(e)) => return Err(AppError::internal(e)),
    };
    Ok(Sample {
        rule,
        event,
        workspace_name,
        delivery,
        request,
    })
}

/// Sends one test request now (no retries) and logs it as a test delivery. A test is sent
/// whatever the rule's condition says (the preview shows its verdict): it checks the
/// receiver, not the filter.
pub async fn send_test(
    state: &AppState,
    workspace: &WorkspaceId,
    id: RuleId,
    req: SampleRequest,
) -> Result<(Delivery, Attempt), AppError> {
    let rule = super::rules::load(state, workspace.clone(), id).await?;
    send_test_of(state, rule, req).await
}

/// `send_test` of a rule as given: the live one, or a draft of it (`app::rule_versions`).
pub async fn send_test_of(
    state: &AppState,
    rule: Rule,
    req: SampleRequest,
) -> Result<(Delivery, Attempt), AppError> {
    let Sample {
        rule,
        event,
        delivery,
        request,
        ..
    } = sample(state, rule, req).await?;
    let (transport, policy, retry, clock, store_bodies) = (
        state.transport.clone(),
        state.policy.clone(),
        state.retry.clone(),
        state.clock.clone(),
        state.config.logs.store_bodies,
    );
    let pending = delivery.clone();
    let judged = blocking(move || {
        let env = Env {
            transport: &*transport,
            policy: &policy,
            retry: &retry,
            clock: &clock,
            store_bodies,
        };
        Ok::<_, AppError>(match request {
            Ok(request) => perform(&env, &rule, &request, &pending),
            Err(e) => template_failure(&env, &rule, &pending, &e),
        })
    })
    .await?;
    // attempts_left is 1, so the verdict is final: a test is never retried (nor is its rule
    // deactivated by a 410).
    let delivery = delivery.advanced(1, judged.verdict.next_state(), state.clock.now_ms());
    let attempt = judged.attempt;
    state
        .store
        .insert_test_delivery(event, delivery.clone(), attempt.clone())
        .await?;
    Ok((delivery, attempt))
}

/// What a delivery would send now, signature included, with the condition's verdict for
/// the sample event: `{url, method, event_type, data, condition, status, headers, body,
/// template_error}`.
pub async fn preview(
    state: &AppState,
    workspace: &WorkspaceId,
    id: RuleId,
    req: SampleRequest,
) -> Result<Value, AppError> {
    let rule = super::rules::load(state, workspace.clone(), id).await?;
    preview_of(state, rule, req).await
}

/// `preview` of a rule as given: the live one, or a draft of it (`app::rule_versions`).
pub async fn preview_of(
    state: &AppState,
    rule: Rule,
    req: SampleRequest,
) -> Result<Value, AppError> {
    let sample = sample(state, rule, req).await?;
    // The condition runs on the blocking pool, like intake's, never on an HTTP thread.
    let (sample, condition) = blocking(move || {
        let condition = sample.rule.condition.as_ref().map(|c| {
            let occurred_at = to_rfc3339(sample.event.occurred_at);
            let verdict = c.evaluate(&Subject {
                event_type: sample.event.event_type.as_str(),
                event_id: sample.event.id.as_str(),
                occurred_at: &occurred_at,
                data: &sample.event.data,
                workspace_id: sample.rule.workspace_id.as_str(),
                workspace_name: &sample.workspace_name,
            });
            match verdict {
                Ok(result) => json!({"expression": c.source(), "result": result, "error": null}),
                Err(e) => json!({"expression": c.source(), "result": null, "error": e}),
            }
        });
        Ok::<_, AppError>((sample, condition))
    })
    .await?;
    let rule = &sample.rule;
    let mut out = json!({
        "url": rule.webhook.url,
        "method": rule.webhook.method.as_str(),
        "event_type": sample.event.event_type,
        "data": sample.event.data,
        "condition": condition,
        "status": rule.status(&state.policy),
    });
    match &sample.request {
        Ok(request) => {
            // Secret header values stay write-only; the signature is shown so it can be checked.
            let headers: Map<String, Value> = request
                .redacted_headers(false)
                .into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect();
            out["headers"] = Value::Object(headers);
            out["body"] = Value::String(String::from_utf8_lossy(&request.body).into_owned());
            out["template_error"] = Value::Null;
        }
        Err(e) => {
            out["headers"] = json!({});
            out["body"] = Value::Null;
            out["template_error"] = Value::String(e.to_string());
        }
    }
    Ok(out)
}
