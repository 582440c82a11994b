//! Rules: CRUD, signing secret view and rotation, test event and preview.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::deliveries::delivery_json;
use super::{AdminKey, JsonBody, OptionalJsonBody, list_response};
use crate::app::paging::{page_cursor, page_limit};
use crate::app::samples::{self, SampleRequest};
use crate::app::{AppState, rules};
use crate::domain::audit::Actor;
use crate::domain::ids::RuleId;
use crate::domain::rule::{Rule, RuleInput};
use crate::domain::time::to_rfc3339;
use crate::error::AppError;
use crate::security::ssrf::AddressPolicy;

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

fn parse_id(raw: &str) -> Result<RuleId, AppError> {
    RuleId::parse(raw).ok_or_else(|| AppError::not_found("rule", raw))
}

/// The API form of a rule: every field of SPEC §2 plus the read-only ones.
pub fn rule_json(rule: &Rule, policy: &AddressPolicy, now_ms: i64) -> Value {
    let mut v = rules::editable_json(rule);
    let extra = json!({
        "id": rule.id,
        "workspace_id": rule.workspace_id,
        "status": rule.status(policy),
        "status_reason": rule.status_reason.clone().or_else(|| rule.url_problem(policy).map(|p| p.to_string())),
        "created_at": to_rfc3339(rule.created_at),
        "updated_at": to_rfc3339(rule.updated_at),
        "secret_hint": rule.secret_hint(),
        "next_runs": rule.next_runs(now_ms, 5).into_iter().map(to_rfc3339).collect::<Vec<_>>(),
        "version": rule.version,
    });
    if let (Value::Object(out), Value::Object(extra)) = (&mut v, extra) {
        out.extend(extra);
    }
    v
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page size, 1-250 (50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 250)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = r"^rul_[A-Za-z0-9]{1,64}$")]
    cursor: Option<String>,
}

/// The workspace's rules, newest first, a page at a time.
#[utoipa::path(
    get,
    path = "/api/v1/rules",
    tag = "rules",
    params(ListQuery),
    responses((status = 200, description = "a page of rules", body = crate::api::schemas::RuleList)),
    security(("api_key" = ["admin"])),
)]
async fn list(
    AdminKey(key): AdminKey,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let limit = page_limit(query.limit.as_deref())?;
    let before = page_cursor(query.cursor.as_deref(), RuleId::parse)?;
    let (page, cursor) = rules::page(&state, key.workspace_id, before, limit).await?;
    let now = state.clock.now_ms();
    let data: Vec<Value> = page
        .iter()
        .map(|r| rule_json(r, &state.policy, now))
        .collect();
    Ok(list_response(&data, cursor.as_ref().map(RuleId::as_str)))
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
) -> Result<HttpResponse, AppError> {
    let spec = rules::validate(&state, input, None)?;
    let rule = rules::create(&state, &key.workspace_id, Actor::key(&key), spec).await?;
    Ok(HttpResponse::Created().json(rule_json(&rule, &state.policy, state.clock.now_ms())))
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
) -> Result<HttpResponse, AppError> {
    let rule = rules::load(&state, key.workspace_id, parse_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(rule_json(&rule, &state.policy, state.clock.now_ms())))
}

/// Validates an edit of `existing` and saves it.
async fn save_edit(
    state: &AppState,
    caller: &crate::domain::access::ApiKey,
    existing: Rule,
    input: RuleInput,
) -> Result<HttpResponse, AppError> {
    let spec = rules::validate(state, input, Some(&existing))?;
    let actor = Actor::key(caller);
    let rule = rules::update(state, &caller.workspace_id, actor, existing, spec).await?;
    Ok(HttpResponse::Ok().json(rule_json(&rule, &state.policy, state.clock.now_ms())))
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
) -> Result<HttpResponse, AppError> {
    let existing = rules::load(&state, key.workspace_id.clone(), parse_id(&path)?).await?;
    save_edit(&state, &key, existing, input).await
}

/// JSON merge patch (RFC 7396) over the rule's editable fields, then the same validation.
#[utoipa::path(
    patch,
    path = "/api/v1/rules/{id}",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    request_body(content = crate::api::schemas::RulePatch, description = "a JSON merge patch: only the fields to change; null removes"),
    responses((status = 200, description = "the rule as saved", body = crate::api::schemas::Rule)),
    security(("api_key" = ["admin"])),
)]
async fn patch(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    JsonBody(changes): JsonBody<Value>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    RuleInput::check_patch(&changes).map_err(|e| AppError::invalid_json_at(&e))?;
    let existing = rules::load(&state, key.workspace_id.clone(), id).await?;
    let input = rules::merged_input(&existing, &changes)?;
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
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    rules::delete(&state, &key.workspace_id, Actor::key(&key), id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// `{"secret"}` for HMAC schemes, `{"public_key"}` for ed25519 (SPEC §12).
fn verifier_json(verifier: rules::Verifier) -> Value {
    match verifier {
        rules::Verifier::Secret(secret) => json!({ "secret": secret }),
        rules::Verifier::PublicKey(public_key) => json!({ "public_key": public_key }),
    }
}

/// The current signing secret (the view is audited), or an ed25519 rule's public key.
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
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let verifier = rules::reveal_secret(&state, &key.workspace_id, Actor::key(&key), id).await?;
    Ok(HttpResponse::Ok().json(verifier_json(verifier)))
}

/// A new signing secret (or ed25519 key pair); the previous one signs too until
/// `signing.rotation_overlap` ends.
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
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let verifier = rules::rotate_secret(&state, &key.workspace_id, Actor::key(&key), id).await?;
    Ok(HttpResponse::Ok().json(verifier_json(verifier)))
}

/// Sends one request now (no retries) and logs it as a test delivery.
#[utoipa::path(
    post,
    path = "/api/v1/rules/{id}/test",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    request_body(content = Option<crate::api::schemas::SampleBody>, description = "empty, `{}`, or the event to send"),
    responses((status = 200, description = "the test delivery with its one attempt", body = crate::api::deliveries::DeliveryDetail)),
    security(("api_key" = ["admin"])),
)]
async fn test(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    OptionalJsonBody(req): OptionalJsonBody<SampleRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let (delivery, attempt) = samples::send_test(&state, &key.workspace_id, id, req).await?;
    Ok(HttpResponse::Ok().json(delivery_json(&delivery, &[attempt])))
}

/// Renders what a delivery would send now, signature included, without sending it; with
/// the condition's verdict for the sample event.
#[utoipa::path(
    post,
    path = "/api/v1/rules/{id}/preview",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    request_body(content = Option<crate::api::schemas::SampleBody>, description = "empty, `{}`, or the event to render"),
    responses((status = 200, description = "the request it would send", body = crate::api::schemas::Preview)),
    security(("api_key" = ["admin"])),
)]
async fn preview(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    OptionalJsonBody(req): OptionalJsonBody<SampleRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    Ok(HttpResponse::Ok().json(samples::preview(&state, &key.workspace_id, id, req).await?))
}
