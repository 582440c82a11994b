//! Rule versions and drafts (SPEC §14): a rule's draft (PUT, GET, DELETE), trying it
//! (preview, test), publishing it, the version history and restoring a version.

use actix_web::{HttpResponse, web};
use serde_json::{Value, json};

use super::deliveries::delivery_json;
use super::rules::rule_json;
use super::{AdminKey, JsonBody, OptionalJsonBody};
use crate::app::AppState;
use crate::app::rule_versions::{self, DraftView};
use crate::app::samples::SampleRequest;
use crate::domain::audit::Actor;
use crate::domain::ids::RuleId;
use crate::domain::rule::{RuleInput, RuleVersion};
use crate::domain::time::to_rfc3339;
use crate::error::AppError;

pub fn routes() -> Vec<super::openapi::Op> {
    use super::openapi::Op;
    vec![
        Op::new(__path_put_draft, put_draft),
        Op::new(__path_get_draft, get_draft),
        Op::new(__path_delete_draft, delete_draft),
        Op::new(__path_preview_draft, preview_draft),
        Op::new(__path_test_draft, test_draft),
        Op::new(__path_publish, publish),
        Op::new(__path_versions, versions),
        Op::new(__path_restore, restore),
    ]
}

fn parse_id(raw: &str) -> Result<RuleId, AppError> {
    RuleId::parse(raw).ok_or_else(|| AppError::not_found("rule", raw))
}

fn draft_json(view: &DraftView, state: &AppState) -> Value {
    let now = state.clock.now_ms();
    json!({
        "rule_id": view.draft.rule_id,
        "base_version": view.draft.base_version,
        "live_version": view.live.version,
        "saved_at": to_rfc3339(view.draft.saved_at),
        "saved_by": view.draft.saved_by,
        "changes": view.changes,
        "rule": rule_json(&view.draft.rule, &state.policy, now),
    })
}

fn version_json(v: &RuleVersion, state: &AppState) -> Value {
    json!({
        "version": v.version,
        "published_at": to_rfc3339(v.published_at),
        "published_by": v.published_by,
        "rule": rule_json(&v.rule, &state.policy, state.clock.now_ms()),
    })
}

/// Store a draft of the rule: a full rule body, validated exactly like a rule; nothing live
/// changes until it is published.
#[utoipa::path(
    put,
    path = "/api/v1/rules/{id}/draft",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    request_body = crate::domain::rule::RuleInput,
    responses((status = 200, description = "the draft as stored", body = crate::api::schemas::RuleDraft)),
    security(("api_key" = ["admin"])),
)]
async fn put_draft(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    JsonBody(input): JsonBody<RuleInput>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let view =
        rule_versions::save_draft(&state, &key.workspace_id, Actor::key(&key), id, input).await?;
    Ok(HttpResponse::Ok().json(draft_json(&view, &state)))
}

/// The rule's draft, with what publishing it would change.
#[utoipa::path(
    get,
    path = "/api/v1/rules/{id}/draft",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    responses((status = 200, description = "the draft", body = crate::api::schemas::RuleDraft)),
    security(("api_key" = ["admin"])),
)]
async fn get_draft(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let view = rule_versions::draft(&state, &key.workspace_id, parse_id(&path)?).await?;
    Ok(HttpResponse::Ok().json(draft_json(&view, &state)))
}

/// Discard the rule's draft.
#[utoipa::path(
    delete,
    path = "/api/v1/rules/{id}/draft",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    responses((status = 204, description = "discarded")),
    security(("api_key" = ["admin"])),
)]
async fn delete_draft(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    rule_versions::discard_draft(&state, &key.workspace_id, Actor::key(&key), id).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Renders what the draft would send, as `POST /api/v1/rules/{id}/preview` does for the
/// live rule.
#[utoipa::path(
    post,
    path = "/api/v1/rules/{id}/draft/preview",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    request_body(content = Option<crate::api::schemas::SampleBody>, description = "empty, `{}`, or the event to render"),
    responses((status = 200, description = "the request the draft would send", body = crate::api::schemas::Preview)),
    security(("api_key" = ["admin"])),
)]
async fn preview_draft(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    OptionalJsonBody(req): OptionalJsonBody<SampleRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let preview = rule_versions::preview_draft(&state, &key.workspace_id, id, req).await?;
    Ok(HttpResponse::Ok().json(preview))
}

/// Sends one request of the draft now (no retries), logged as a test delivery of the rule.
#[utoipa::path(
    post,
    path = "/api/v1/rules/{id}/draft/test",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    request_body(content = Option<crate::api::schemas::SampleBody>, description = "empty, `{}`, or the event to send"),
    responses((status = 200, description = "the test delivery with its one attempt", body = crate::api::deliveries::DeliveryDetail)),
    security(("api_key" = ["admin"])),
)]
async fn test_draft(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    OptionalJsonBody(req): OptionalJsonBody<SampleRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let (delivery, attempt) = rule_versions::test_draft(&state, &key.workspace_id, id, req).await?;
    Ok(HttpResponse::Ok().json(delivery_json(&delivery, &[attempt])))
}

/// Make the draft live, atomically, as the rule's next version; audited with what it
/// changes. With `rules.require_review`, only another key or user than the draft's writer.
#[utoipa::path(
    post,
    path = "/api/v1/rules/{id}/draft/publish",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    responses((status = 200, description = "the version now live", body = crate::api::schemas::RuleVersion)),
    security(("api_key" = ["admin"])),
)]
async fn publish(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let id = parse_id(&path)?;
    let version =
        rule_versions::publish_draft(&state, &key.workspace_id, Actor::key(&key), id).await?;
    Ok(HttpResponse::Ok().json(version_json(&version, &state)))
}

/// The rule's published versions, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/rules/{id}/versions",
    tag = "rules",
    params(("id" = String, Path, description = "rule id")),
    responses((status = 200, description = "its versions", body = crate::api::schemas::RuleVersionList)),
    security(("api_key" = ["admin"])),
)]
async fn versions(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let versions = rule_versions::versions(&state, &key.workspace_id, parse_id(&path)?).await?;
    let data: Vec<Value> = versions.iter().map(|v| version_json(v, &state)).collect();
    Ok(HttpResponse::Ok().json(json!({ "data": data })))
}

/// Publish a copy of version `n` as the rule's next version.
#[utoipa::path(
    post,
    path = "/api/v1/rules/{id}/versions/{n}/restore",
    tag = "rules",
    params(
        ("id" = String, Path, description = "rule id"),
        ("n" = u32, Path, description = "the version to bring back", minimum = 1),
    ),
    responses((status = 200, description = "the version now live", body = crate::api::schemas::RuleVersion)),
    security(("api_key" = ["admin"])),
)]
async fn restore(
    AdminKey(key): AdminKey,
    path: web::Path<(String, String)>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let (raw_id, raw_n) = path.into_inner();
    let id = parse_id(&raw_id)?;
    let n: u32 = raw_n.parse().map_err(|_| {
        AppError::new(
            crate::error::Code::NotFound,
            format!("rule {id} has no version {raw_n:?}: versions are numbered 1, 2, 3, …"),
        )
    })?;
    let version =
        rule_versions::restore(&state, &key.workspace_id, Actor::key(&key), id, n).await?;
    Ok(HttpResponse::Ok().json(version_json(&version, &state)))
}
