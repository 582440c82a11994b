//! Rules: CRUD, signing secret view and rotation, test event and preview.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::deliveries::delivery_json;
use super::{AdminKey, JsonBody, OptionalJsonBody, blocking, from_value, list_response};
use crate::delivery::attempt::{PreparedRequest, perform, prepare};
use crate::delivery::dispatcher::next_state;
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::delivery::{Delivery, DeliveryStatus};
use crate::domain::event::{Event, EventType, check_data};
use crate::domain::ids::{DeliveryId, EventId, RuleId, WorkspaceId};
use crate::domain::rule::{
    FieldError, MASK, Rule, RuleInput, RuleSpec, SecretValue, SigningSecret,
};
use crate::domain::samples::sample_data;
use crate::domain::time::{now_ms, to_rfc3339};
use crate::error::ApiError;
use crate::security::crypto::{MasterKey, new_signing_secret};
use crate::security::ssrf::AddressPolicy;
use crate::server::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    use super::resource;
    cfg.service(
        resource("/rules")
            .route(web::get().to(list))
            .route(web::post().to(create)),
    )
    .service(
        resource("/rules/{id}")
            .route(web::get().to(get_one))
            .route(web::put().to(replace))
            .route(web::patch().to(patch))
            .route(web::delete().to(delete)),
    )
    .service(resource("/rules/{id}/secret").route(web::get().to(secret)))
    .service(resource("/rules/{id}/secret/rotate").route(web::post().to(rotate)))
    .service(resource("/rules/{id}/test").route(web::post().to(test)))
    .service(resource("/rules/{id}/preview").route(web::post().to(preview)));
}

fn field_error(e: &FieldError) -> ApiError {
    ApiError::validation(e.to_string())
}

fn parse_id(raw: &str) -> Result<RuleId, ApiError> {
    RuleId::parse(raw).ok_or_else(|| ApiError::not_found("rule", raw))
}

/// The API form of a rule: every field of SPEC §2 plus the read-only ones.
pub fn rule_json(rule: &Rule, policy: &AddressPolicy) -> Value {
    let mut v = editable_json(rule);
    let extra = json!({
        "id": rule.id,
        "workspace_id": rule.workspace_id,
        "status": rule.status(policy),
        "status_reason": rule.status_reason.clone().or_else(|| rule.url_problem(policy).map(|p| p.to_string())),
        "created_at": to_rfc3339(rule.created_at),
        "updated_at": to_rfc3339(rule.updated_at),
        "secret_hint": rule.secret_hint(),
    });
    if let (Value::Object(out), Value::Object(extra)) = (&mut v, extra) {
        out.extend(extra);
    }
    v
}

/// The fields an admin sets, as `RuleInput` reads them back (secret values masked).
pub fn editable_json(rule: &Rule) -> Value {
    let w = &rule.webhook;
    let secret_headers: Map<String, Value> = w
        .secret_headers
        .keys()
        .map(|k| (k.clone(), Value::String(MASK.into())))
        .collect();
    json!({
        "name": rule.name,
        "description": rule.description,
        "active": rule.active,
        "max_concurrency": rule.max_concurrency,
        "trigger": rule.trigger,
        "condition": rule.condition,
        "webhook": {
            "url": w.url,
            "method": w.method,
            "content_type": w.content_type,
            "headers": w.headers,
            "secret_headers": secret_headers,
            "signing": w.signing,
            "payload_format": w.payload_format,
            "body_template": w.body_template,
            "tls_verify": w.tls_verify,
            "timeout_ms": w.timeout_ms,
        },
    })
}

/// Applies a validated spec onto a new or existing rule, sealing new secret header values.
fn build_rule(
    spec: RuleSpec,
    existing: Option<Rule>,
    workspace: &WorkspaceId,
    key: &MasterKey,
) -> Rule {
    let now = now_ms();
    let old_secret_headers = existing
        .as_ref()
        .map(|r| r.webhook.secret_headers.clone())
        .unwrap_or_default();
    let webhook = spec.webhook.map_secrets(|name, value| match value {
        SecretValue::Keep => old_secret_headers.get(name).cloned(),
        SecretValue::New(plain) => Some(key.seal(&plain)),
    });
    let (id, created_at, signing_secrets, status_reason) = match existing {
        Some(r) => {
            // Re-activating a rule clears the reason tidings turned it off.
            let reason = if spec.active { None } else { r.status_reason };
            (r.id, r.created_at, r.signing_secrets, reason)
        }
        None => (
            RuleId::generate(now),
            now,
            vec![fresh_secret(key, now)],
            None,
        ),
    };
    Rule {
        id,
        workspace_id: workspace.clone(),
        name: spec.name,
        description: spec.description,
        active: spec.active,
        max_concurrency: spec.max_concurrency,
        trigger: spec.trigger,
        condition: spec.condition,
        webhook,
        signing_secrets,
        created_at,
        updated_at: now,
        status_reason,
    }
}

fn fresh_secret(key: &MasterKey, now: i64) -> SigningSecret {
    let secret = new_signing_secret();
    let plain = secret.expose();
    SigningSecret {
        sealed: key.seal(plain),
        hint: plain[plain.len() - 4..].to_owned(),
        created_at: now,
        expires_at: None,
    }
}

async fn list(
    AdminKey(key): AdminKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let mut rules = blocking(move || store.rules(&key.workspace_id)).await?;
    rules.sort_by(|a, b| b.id.cmp(&a.id));
    let data: Vec<Value> = rules.iter().map(|r| rule_json(r, &state.policy)).collect();
    Ok(list_response(&data, None))
}

async fn create(
    AdminKey(key): AdminKey,
    JsonBody(input): JsonBody<RuleInput>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let spec = input
        .validate(&state.policy, None)
        .map_err(|e| field_error(&e))?;
    let rule = create_rule(&state, &key.workspace_id, Actor::key(&key), spec).await?;
    Ok(HttpResponse::Created().json(rule_json(&rule, &state.policy)))
}

/// Stores a new rule from a validated spec, with its audit entry. The API and the admin UI
/// both create rules through here, after the same `RuleInput::validate`.
pub async fn create_rule(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    spec: RuleSpec,
) -> Result<Rule, ApiError> {
    let rule = build_rule(spec, None, workspace, &state.master_key);
    let audit = AuditEntry::new(workspace, actor, "rule.create", "rule", rule.id.as_str())
        .after(editable_json(&rule));
    Ok(state.store.save_rule(rule, false, audit).await?)
}

pub async fn load(state: &AppState, workspace: WorkspaceId, id: RuleId) -> Result<Rule, ApiError> {
    let store = state.store.clone();
    blocking(move || store.rule(&workspace, &id)).await
}

async fn get_one(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let rule = load(&state, key.workspace_id, parse_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(rule_json(&rule, &state.policy)))
}

async fn save_edit(
    state: &web::Data<AppState>,
    caller: &crate::domain::access::ApiKey,
    existing: Rule,
    input: RuleInput,
) -> Result<HttpResponse, ApiError> {
    let spec = input
        .validate(&state.policy, Some(&existing))
        .map_err(|e| field_error(&e))?;
    let rule = update_rule(
        state,
        &caller.workspace_id,
        Actor::key(caller),
        existing,
        spec,
    )
    .await?;
    Ok(HttpResponse::Ok().json(rule_json(&rule, &state.policy)))
}

/// Applies a validated spec to a stored rule, audited as an update, activation or
/// deactivation. Shared by the API (PUT, PATCH) and the admin UI.
pub async fn update_rule(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    existing: Rule,
    spec: RuleSpec,
) -> Result<Rule, ApiError> {
    let before = editable_json(&existing);
    let was_active = existing.active;
    let rule = build_rule(spec, Some(existing), workspace, &state.master_key);
    let action = match (was_active, rule.active) {
        (false, true) => "rule.activate",
        (true, false) => "rule.deactivate",
        _ => "rule.update",
    };
    let audit = AuditEntry::new(workspace, actor, action, "rule", rule.id.as_str())
        .before(before)
        .after(editable_json(&rule));
    Ok(state.store.save_rule(rule, true, audit).await?)
}

async fn replace(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    JsonBody(input): JsonBody<RuleInput>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    let existing = load(&state, key.workspace_id.clone(), id).await?;
    save_edit(&state, &key, existing, input).await
}

/// JSON merge patch (RFC 7396) over the rule's editable fields, then the same validation.
async fn patch(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    JsonBody(changes): JsonBody<Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let id = parse_id(&path)?;
    if !changes.is_object() {
        return Err(ApiError::validation(
            "a PATCH body must be a JSON object of the fields to change",
        ));
    }
    let existing = load(&state, key.workspace_id.clone(), id).await?;
    let mut merged = editable_json(&existing);
    json_patch::merge(&mut merged, &changes);
    let input: RuleInput = from_value(merged)?;
    save_edit(&state, &key, existing, input).await
}

async fn delete(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    delete_rule(
        &state,
        &key.workspace_id,
        Actor::key(&key),
        parse_id(&path)?,
    )
    .await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Deletes a rule (its delivery history stays), audited with what it was.
pub async fn delete_rule(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    id: RuleId,
) -> Result<(), ApiError> {
    let rule = load(state, workspace.clone(), id).await?;
    let audit = AuditEntry::new(workspace, actor, "rule.delete", "rule", rule.id.as_str())
        .before(editable_json(&rule));
    state
        .store
        .delete_rule(workspace.clone(), rule.id, audit)
        .await?;
    Ok(())
}

async fn secret(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let plain = reveal_secret(
        &state,
        &key.workspace_id,
        Actor::key(&key),
        parse_id(&path)?,
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({"secret": plain})))
}

/// The current signing secret, in plain text; the viewing is audited before it is returned.
pub async fn reveal_secret(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    id: RuleId,
) -> Result<String, ApiError> {
    let rule = load(state, workspace.clone(), id).await?;
    let current = rule.signing_secrets.first().ok_or_else(|| {
        ApiError::internal(anyhow::anyhow!("rule {} has no signing secret", rule.id))
    })?;
    let plain = state
        .master_key
        .open(&current.sealed)
        .map_err(ApiError::internal)?;
    // Seeing a secret is recorded before it is shown.
    let audit = AuditEntry::new(
        workspace,
        actor,
        "rule.secret.view",
        "rule",
        rule.id.as_str(),
    );
    state.store.audit(audit).await?;
    Ok(plain.expose().to_owned())
}

async fn rotate(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let plain = rotate_secret(
        &state,
        &key.workspace_id,
        Actor::key(&key),
        parse_id(&path)?,
    )
    .await?;
    Ok(HttpResponse::Ok().json(json!({"secret": plain})))
}

/// Replaces the signing secret; the old one keeps signing through `signing.rotation_overlap`.
/// Returns the new secret, in plain text.
pub async fn rotate_secret(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    id: RuleId,
) -> Result<String, ApiError> {
    let mut rule = load(state, workspace.clone(), id).await?;
    let now = now_ms();
    let overlap =
        i64::try_from(state.config.signing.rotation_overlap.as_millis()).unwrap_or(i64::MAX / 2);
    // Only the secret being replaced keeps signing through the overlap; any older one from an
    // earlier rotation stops now, so receivers never have to track more than two.
    rule.signing_secrets.truncate(1);
    for old in &mut rule.signing_secrets {
        old.expires_at.get_or_insert(now + overlap);
    }
    rule.signing_secrets
        .retain(|s| s.expires_at.is_none_or(|at| at > now));
    let fresh = fresh_secret(&state.master_key, now);
    let plain = state
        .master_key
        .open(&fresh.sealed)
        .map_err(ApiError::internal)?;
    rule.signing_secrets.insert(0, fresh);
    rule.updated_at = now;
    let detail = format!(
        "new secret ends in {}; the previous one signs until {}",
        rule.secret_hint(),
        to_rfc3339(now + overlap)
    );
    let audit = AuditEntry::new(
        workspace,
        actor,
        "rule.secret.rotate",
        "rule",
        rule.id.as_str(),
    )
    .detail(detail);
    state.store.save_rule(rule, true, audit).await?;
    Ok(plain.expose().to_owned())
}

/// What a test or preview sends: a given event type and data, or the rule's sample.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SampleRequest {
    pub event_type: Option<String>,
    pub data: Option<Value>,
}

/// The event a test or preview uses: the given one, or the sample for the rule's first exact
/// event type (`ping` if it has none).
fn sample_event(rule: &Rule, req: SampleRequest) -> Result<Event, ApiError> {
    let crate::domain::rule::Trigger::Event { events } = &rule.trigger;
    let type_name = req
        .event_type
        .or_else(|| events.iter().find_map(|p| p.exact().map(str::to_owned)))
        .unwrap_or_else(|| "ping".to_owned());
    let event_type =
        EventType::parse(&type_name).map_err(|m| ApiError::bad_request("invalid_event_type", m))?;
    let data = match req.data {
        None => sample_data(event_type.as_str()),
        Some(Value::Object(map)) => map,
        Some(_) => return Err(ApiError::validation("data must be a JSON object")),
    };
    check_data(&data).map_err(ApiError::validation)?;
    let now = now_ms();
    Ok(Event {
        id: EventId::generate(now),
        workspace_id: rule.workspace_id.clone(),
        event_type,
        occurred_at: now,
        received_at: now,
        data,
        test: true,
    })
}

/// A rule, a sample event for it, and the signed request a delivery of it would send now.
struct Sample {
    rule: Rule,
    event: Event,
    delivery_id: DeliveryId,
    request: PreparedRequest,
}

async fn sample_request(
    state: &AppState,
    workspace: WorkspaceId,
    raw_id: &str,
    req: SampleRequest,
) -> Result<Sample, ApiError> {
    let rule = load(state, workspace.clone(), parse_id(raw_id)?).await?;
    let event = sample_event(&rule, req)?;
    let store = state.store.clone();
    let workspace = blocking(move || store.workspace(&workspace)).await?;
    let delivery_id = DeliveryId::generate(event.received_at);
    let request = prepare(
        &rule,
        &event,
        &workspace.name,
        delivery_id.as_str(),
        &state.master_key,
        now_ms(),
    )
    .map_err(ApiError::internal)?;
    Ok(Sample {
        rule,
        event,
        delivery_id,
        request,
    })
}

/// Sends one request now (no retries) and logs it as a test delivery.
async fn test(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    OptionalJsonBody(req): OptionalJsonBody<SampleRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let (delivery, attempt) = send_test(&state, &key.workspace_id, &path, req).await?;
    Ok(HttpResponse::Ok().json(delivery_json(&delivery, &[attempt])))
}

/// Sends one test request now (no retries) and logs it as a test delivery; shared by the
/// API and the admin UI's "send test event".
pub async fn send_test(
    state: &AppState,
    workspace: &WorkspaceId,
    raw_id: &str,
    req: SampleRequest,
) -> Result<(Delivery, crate::domain::delivery::Attempt), ApiError> {
    let Sample {
        rule,
        event,
        delivery_id,
        request,
    } = sample_request(state, workspace.clone(), raw_id, req).await?;
    let now = event.received_at;
    let delivery = Delivery {
        id: delivery_id,
        event_id: event.id.clone(),
        rule_id: rule.id.clone(),
        workspace_id: workspace.clone(),
        event_type: event.event_type.clone(),
        status: DeliveryStatus::Pending,
        test: true,
        created_at: now,
        updated_at: now,
        attempts: 0,
        attempts_left: 1,
        next_attempt_at: None,
    };
    let (client, policy, store_bodies) = (
        state.client.clone(),
        state.policy.clone(),
        state.config.logs.store_bodies,
    );
    let result =
        web::block(move || perform(&client, &rule, &request, 1, &policy, store_bodies)).await?;
    // attempts_left is 1, so the outcome is final: a test is never retried.
    let outcome = next_state(&state.retry, &delivery, &result.attempt, None);
    let delivery = delivery.advanced(1, outcome, now_ms());
    let attempt = result.attempt;
    state
        .store
        .insert_test_delivery(event, delivery.clone(), attempt.clone())
        .await?;
    Ok((delivery, attempt))
}

/// Renders what a delivery would send now, signature included, without sending it.
async fn preview(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    OptionalJsonBody(req): OptionalJsonBody<SampleRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(preview_json(&state, &key.workspace_id, &path, req).await?))
}

/// What a delivery would send now, signature included: `{url, method, headers, body,
/// event_type, status}`. Shared by the API and the admin UI's preview.
pub async fn preview_json(
    state: &AppState,
    workspace: &WorkspaceId,
    raw_id: &str,
    req: SampleRequest,
) -> Result<Value, ApiError> {
    let sample = sample_request(state, workspace.clone(), raw_id, req).await?;
    let request = &sample.request;
    // Secret header values stay write-only; the signature is shown so it can be checked.
    let headers: Map<String, Value> = request
        .redacted_headers(false)
        .into_iter()
        .map(|(k, v)| (k, Value::String(v)))
        .collect();
    Ok(json!({
        "url": request.url,
        "method": request.method,
        "headers": headers,
        "body": String::from_utf8_lossy(&request.body),
        "event_type": sample.event.event_type,
        "status": sample.rule.status(&state.policy),
    }))
}
