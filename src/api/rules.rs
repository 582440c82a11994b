//! Rules: CRUD, signing secret view and rotation, test event and preview.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};

use super::deliveries::delivery_json;
use super::event_types::entry as catalog_entry;
use super::{AdminKey, JsonBody, OptionalJsonBody, blocking, from_value, list_response};
use crate::delivery::attempt::{
    Env, PrepareError, PreparedRequest, perform, prepare, template_failure,
};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::catalog::{Entry, types_to_check};
use crate::domain::condition::Subject;
use crate::domain::delivery::{Delivery, DeliveryStatus};
use crate::domain::event::{Event, EventType, check_data};
use crate::domain::ids::{DeliveryId, EventId, RuleId, WorkspaceId};
use crate::domain::payload::{self, Context};
use crate::domain::rule::{
    FieldError, MASK, PayloadFormat, ROUTINE_FIRED, Rule, RuleInput, RuleSpec, SecretValue,
    SigningSecret, Trigger,
};
use crate::domain::template::TemplateError;
use crate::domain::time::{now_ms, to_rfc3339};
use crate::error::ApiError;
use crate::security::crypto::{MasterKey, new_signing_secret};
use crate::security::ssrf::AddressPolicy;
use crate::server::AppState;

pub fn routes() -> Vec<super::openapi::Op> {
    use super::openapi::Op;
    vec![
        Op::new(__path_list, list),
        Op::new(__path_create, create),
        Op::new(__path_get_one, get_one),
        Op::new(__path_replace, replace),
        Op::new(__path_patch, patch),
        Op::new(__path_delete, delete),
        Op::new(__path_secret, secret),
        Op::new(__path_rotate, rotate),
        Op::new(__path_test, test),
        Op::new(__path_preview, preview),
    ]
}

fn field_error(e: &FieldError) -> ApiError {
    ApiError::validation(e.to_string())
}

fn parse_id(raw: &str) -> Result<RuleId, ApiError> {
    RuleId::parse(raw).ok_or_else(|| ApiError::not_found("rule", raw))
}

/// The API form of a rule: every field of SPEC §2 plus the read-only ones.
pub fn rule_json(rule: &Rule, policy: &AddressPolicy, now_ms: i64) -> Value {
    let mut v = editable_json(rule);
    let extra = json!({
        "id": rule.id,
        "workspace_id": rule.workspace_id,
        "status": rule.status(policy),
        "status_reason": rule.status_reason.clone().or_else(|| rule.url_problem(policy).map(|p| p.to_string())),
        "created_at": to_rfc3339(rule.created_at),
        "updated_at": to_rfc3339(rule.updated_at),
        "secret_hint": rule.secret_hint(),
        "next_runs": rule.next_runs(now_ms, 5).into_iter().map(to_rfc3339).collect::<Vec<_>>(),
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

/// The workspace's rules, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/rules",
    tag = "rules",
    responses((status = 200, description = "every rule; one page", body = crate::api::schemas::RuleList)),
    security(("api_key" = ["admin"])),
)]
async fn list(
    AdminKey(key): AdminKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let mut rules = blocking(move || store.rules(&key.workspace_id)).await?;
    rules.sort_by(|a, b| b.id.cmp(&a.id));
    let data: Vec<Value> = rules
        .iter()
        .map(|r| rule_json(r, &state.policy, state.clock.now_ms()))
        .collect();
    Ok(list_response(&data, None))
}

/// Create a rule; a body template is checked against the catalog samples.
#[utoipa::path(
    post,
    path = "/api/v1/rules",
    tag = "rules",
    request_body = crate::domain::rule::RuleInput,
    responses((status = 201, description = "created", body = crate::api::schemas::Rule)),
    security(("api_key" = ["admin"])),
)]
async fn create(
    AdminKey(key): AdminKey,
    JsonBody(input): JsonBody<RuleInput>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let spec = input
        .validate(&state.policy, None)
        .map_err(|e| field_error(&e))?;
    let rule = create_rule(&state, &key.workspace_id, Actor::key(&key), spec).await?;
    Ok(HttpResponse::Created().json(rule_json(&rule, &state.policy, state.clock.now_ms())))
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
    check_template_with_samples(state, &rule).await?;
    let audit = AuditEntry::new(workspace, actor, "rule.create", "rule", rule.id.as_str())
        .after(editable_json(&rule));
    Ok(state.store.save_rule(rule, false, audit).await?)
}

pub async fn load(state: &AppState, workspace: WorkspaceId, id: RuleId) -> Result<Rule, ApiError> {
    let store = state.store.clone();
    blocking(move || store.rule(&workspace, &id)).await
}

/// One rule.
#[utoipa::path(
    get,
    path = "/api/v1/rules/{id}",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    responses((status = 200, description = "the rule", body = crate::api::schemas::Rule)),
    security(("api_key" = ["admin"])),
)]
async fn get_one(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let rule = load(&state, key.workspace_id, parse_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(rule_json(&rule, &state.policy, state.clock.now_ms())))
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
    Ok(HttpResponse::Ok().json(rule_json(&rule, &state.policy, state.clock.now_ms())))
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
    check_template_with_samples(state, &rule).await?;
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

/// Replace a rule's editable fields; read-only fields sent back are ignored.
#[utoipa::path(
    put,
    path = "/api/v1/rules/{id}",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    request_body = crate::domain::rule::RuleInput,
    responses((status = 200, description = "the rule as saved", body = crate::api::schemas::Rule)),
    security(("api_key" = ["admin"])),
)]
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
#[utoipa::path(
    patch,
    path = "/api/v1/rules/{id}",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    request_body(content = crate::domain::rule::RuleInput, description = "a JSON merge patch: only the fields to change; null removes"),
    responses((status = 200, description = "the rule as saved", body = crate::api::schemas::Rule)),
    security(("api_key" = ["admin"])),
)]
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

/// Delete a rule.
#[utoipa::path(
    delete,
    path = "/api/v1/rules/{id}",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    responses((status = 204, description = "deleted")),
    security(("api_key" = ["admin"])),
)]
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

/// The current signing secret; the view is audited.
#[utoipa::path(
    get,
    path = "/api/v1/rules/{id}/secret",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    responses((status = 200, description = "the secret", body = crate::api::schemas::SigningSecret)),
    security(("api_key" = ["admin"])),
)]
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

/// A new signing secret; the previous one signs too until `signing.rotation_overlap` ends.
#[utoipa::path(
    post,
    path = "/api/v1/rules/{id}/secret/rotate",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    responses((status = 200, description = "the new secret", body = crate::api::schemas::SigningSecret)),
    security(("api_key" = ["admin"])),
)]
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

/// On save, a body template is rendered against the catalog sample of every event type the
/// rule can see (see `types_to_check`), so a template that cannot render, or renders invalid
/// JSON for a JSON content type, is refused before any real event meets it.
pub async fn check_template_with_samples(state: &AppState, rule: &Rule) -> Result<(), ApiError> {
    if rule.webhook.payload_format != PayloadFormat::Template {
        return Ok(());
    }
    let store = state.store.clone();
    let (workspace, trigger) = (rule.workspace_id.clone(), rule.trigger.clone());
    let (workspace_name, samples) = blocking(move || {
        // One read of the workspace's catalog serves both the names and the samples.
        let stored = store.event_types(&workspace)?;
        let known: Vec<EventType> = stored.iter().map(|(t, _)| t.clone()).collect();
        let samples: Vec<Entry> = types_to_check(&trigger, &known)
            .into_iter()
            .map(|t| {
                let row = stored.iter().find(|(name, _)| *name == t).map(|(_, r)| r);
                Entry::new(t, row)
            })
            .collect();
        Ok::<_, crate::store::StoreError>((store.workspace_name(&workspace)?, samples))
    })
    .await?;
    // A type with no source has only a placeholder sample: checking against it would refuse
    // every template that reads a field. Such types are checked once declared or seen.
    for entry in samples.into_iter().filter(|e| !e.sources.is_empty()) {
        let event = test_event(rule, entry.name.clone(), sample_for(rule, &entry));
        let ctx = Context {
            rule,
            workspace_name: &workspace_name,
        };
        payload::body(&event, &ctx).map_err(|e| {
            ApiError::validation(format!(
                "webhook.body_template: rendering it with the sample {} event failed: {e}",
                entry.name
            ))
        })?;
    }
    Ok(())
}

/// What a test or preview sends: a given event type and data, or the rule's sample.
#[derive(Debug, Default, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct SampleRequest {
    pub event_type: Option<String>,
    pub data: Option<Value>,
}

/// A routine's sample is its own next firing; other types use the catalog's sample.
fn sample_for(rule: &Rule, entry: &Entry) -> Map<String, Value> {
    if entry.name.as_str() == ROUTINE_FIRED && matches!(rule.trigger, Trigger::Schedule { .. }) {
        let slot = rule
            .trigger
            .schedule()
            .and_then(|s| s.next_after(now_ms()))
            .unwrap_or_else(now_ms);
        rule.firing_data(slot)
    } else {
        entry.sample.clone()
    }
}

fn test_event(rule: &Rule, event_type: EventType, data: Map<String, Value>) -> Event {
    let now = now_ms();
    Event {
        id: EventId::generate(now),
        workspace_id: rule.workspace_id.clone(),
        event_type,
        occurred_at: now,
        received_at: now,
        data,
        test: true,
    }
}

/// A rule, a sample event for it, and the signed request a delivery of it would send now
/// (or why its body template failed for that event).
struct Sample {
    rule: Rule,
    event: Event,
    workspace_name: String,
    delivery_id: DeliveryId,
    request: Result<PreparedRequest, TemplateError>,
}

/// The event a test or preview uses: the given one, or the catalog sample for the rule's
/// first exact event type (`ping` if it has none).
async fn sample_request(
    state: &AppState,
    workspace: WorkspaceId,
    raw_id: &str,
    req: SampleRequest,
) -> Result<Sample, ApiError> {
    let rule = load(state, workspace.clone(), parse_id(raw_id)?).await?;
    let type_name = req
        .event_type
        .or_else(|| rule.trigger.exact_types().first().map(|t| (*t).to_owned()))
        .unwrap_or_else(|| "ping".to_owned());
    let event_type =
        EventType::parse(&type_name).map_err(|m| ApiError::bad_request("invalid_event_type", m))?;
    let given = match req.data {
        None => None,
        Some(Value::Object(map)) => Some(map),
        Some(_) => return Err(ApiError::validation("data must be a JSON object")),
    };
    let store = state.store.clone();
    let (workspace_name, entry) = blocking(move || {
        let entry = catalog_entry(&store, &workspace, event_type)?;
        Ok::<_, crate::store::StoreError>((store.workspace_name(&workspace)?, entry))
    })
    .await?;
    let data = given.unwrap_or_else(|| sample_for(&rule, &entry));
    check_data(&data).map_err(ApiError::validation)?;
    let event = test_event(&rule, entry.name, data);
    let delivery_id = DeliveryId::generate(event.received_at);
    let request = match prepare(
        &rule,
        &event,
        &workspace_name,
        delivery_id.as_str(),
        &state.master_key,
        now_ms(),
    ) {
        Ok(request) => Ok(request),
        Err(PrepareError::Template(e)) => Err(e),
        Err(PrepareError::Crypto(e)) => return Err(ApiError::internal(e)),
    };
    Ok(Sample {
        rule,
        event,
        workspace_name,
        delivery_id,
        request,
    })
}

/// Sends one request now (no retries) and logs it as a test delivery.
#[utoipa::path(
    post,
    path = "/api/v1/rules/{id}/test",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    request_body(content = Option<SampleRequest>, description = "empty, `{}`, or the event to send"),
    responses((status = 200, description = "the test delivery with its one attempt", body = crate::api::deliveries::DeliveryDetail)),
    security(("api_key" = ["admin"])),
)]
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
        ..
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
        condition_error: None,
    };
    let (transport, policy, retry, clock, store_bodies) = (
        state.transport.clone(),
        state.policy.clone(),
        state.retry.clone(),
        state.clock.clone(),
        state.config.logs.store_bodies,
    );
    let pending = delivery.clone();
    // A test is sent whatever the rule's condition says (the preview shows its verdict): it
    // checks the receiver, not the filter.
    let judged = web::block(move || {
        let env = Env {
            transport: &*transport,
            policy: &policy,
            retry: &retry,
            clock: &clock,
            store_bodies,
        };
        match request {
            Ok(request) => perform(&env, &rule, &request, &pending),
            Err(e) => template_failure(&env, &rule, &pending, &e),
        }
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

/// Renders what a delivery would send now, signature included, without sending it; with
/// the condition's verdict for the sample event.
#[utoipa::path(
    post,
    path = "/api/v1/rules/{id}/preview",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    request_body(content = Option<SampleRequest>, description = "empty, `{}`, or the event to render"),
    responses((status = 200, description = "the request it would send", body = crate::api::schemas::Preview)),
    security(("api_key" = ["admin"])),
)]
async fn preview(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    OptionalJsonBody(req): OptionalJsonBody<SampleRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    Ok(HttpResponse::Ok().json(preview_json(&state, &key.workspace_id, &path, req).await?))
}

/// What a delivery would send now, signature included, with the condition's verdict for
/// the sample event: `{url, method, event_type, data, condition, status, headers, body,
/// template_error}`. Shared by the API and the admin UI's preview.
pub async fn preview_json(
    state: &AppState,
    workspace: &WorkspaceId,
    raw_id: &str,
    req: SampleRequest,
) -> Result<Value, ApiError> {
    let sample = sample_request(state, workspace.clone(), raw_id, req).await?;
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
