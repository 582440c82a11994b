//! Delivery history: list with filters and cursor, detail with attempts, and re-sends.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::{IntoParams, ToSchema};

use super::openapi::Op;
use super::schemas::{Delivery as DeliverySchema, DeliveryList, Redelivered};
use super::{AdminKey, JsonBody, blocking, list_response, page_cursor, page_limit};
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus};
use crate::domain::event::EventType;
use crate::domain::ids::{DeliveryId, RuleId};
use crate::domain::time::{now_ms, parse_rfc3339, to_rfc3339};
use crate::error::{ApiError, ErrorBody};
use crate::server::AppState;
use crate::store::DeliveryFilter;

pub fn routes() -> Vec<Op> {
    vec![
        Op::new(__path_list, list),
        Op::new(__path_get_one, get_one),
        Op::new(__path_redeliver, redeliver),
        Op::new(__path_redeliver_failed, redeliver_failed),
    ]
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Only this rule's deliveries.
    rule_id: Option<String>,
    /// `pending`, `retrying`, `succeeded`, `failed`, `blocked` or `condition_error`.
    status: Option<String>,
    /// Only events of this exact type.
    event_type: Option<String>,
    /// RFC 3339: created at or after.
    since: Option<String>,
    /// RFC 3339: created at or before.
    until: Option<String>,
    /// Page size, 1-250 (50).
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            parse_rfc3339(v).ok_or_else(|| {
                ApiError::bad_request(
                    "invalid_query",
                    format!("{name} {v:?} is not an RFC 3339 time such as 2026-11-23T10:00:00Z"),
                )
            })
        })
        .transpose()
}

impl ListQuery {
    fn filter(self) -> Result<DeliveryFilter, ApiError> {
        let bad = |m: String| ApiError::bad_request("invalid_query", m);
        let rule_id = self
            .rule_id
            .map(|r| {
                RuleId::parse(&r)
                    .ok_or_else(|| bad(format!("rule_id {r:?} is not a rule id (rul_…)")))
            })
            .transpose()?;
        let status = self
            .status
            .map(|s| {
                DeliveryStatus::parse(&s).ok_or_else(|| {
                    bad(format!(
                        "status {s:?} is not one of pending, retrying, succeeded, failed, blocked, condition_error"
                    ))
                })
            })
            .transpose()?;
        let event_type = self
            .event_type
            .map(|t| EventType::parse(&t).map_err(bad))
            .transpose()?;
        let since = time_param("since", self.since.as_deref())?;
        let until = time_param("until", self.until.as_deref())?;
        if let (Some(s), Some(u)) = (since, until)
            && s > u
        {
            return Err(bad("since must not be later than until".into()));
        }
        let limit = page_limit(self.limit.as_deref())?;
        let before = page_cursor(self.cursor.as_deref(), DeliveryId::parse)?;
        Ok(DeliveryFilter {
            rule_id,
            status,
            event_type,
            since,
            until,
            before,
            limit,
        })
    }
}

/// The delivery log, newest first; a sparse filter may give a short page with a cursor.
#[utoipa::path(
    get,
    path = "/api/v1/deliveries",
    tag = "deliveries",
    params(ListQuery),
    responses((status = 200, description = "a page of deliveries", body = DeliveryList)),
    security(("api_key" = ["admin"])),
)]
async fn list(
    AdminKey(key): AdminKey,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let filter = query.into_inner().filter()?;
    let store = state.store.clone();
    let (page, cursor) =
        blocking(move || store.list_deliveries(&key.workspace_id, &filter)).await?;
    let data: Vec<Value> = page.iter().map(delivery_summary).collect();
    Ok(list_response(
        &data,
        cursor.as_ref().map(DeliveryId::as_str),
    ))
}

/// One delivery with its attempts.
#[utoipa::path(
    get,
    path = "/api/v1/deliveries/{id}",
    tag = "deliveries",
    params(("id" = String, Path, description = "delivery id")),
    responses((status = 200, description = "the delivery", body = DeliverySchema)),
    security(("api_key" = ["admin"])),
)]
async fn get_one(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let id = DeliveryId::parse(&raw).ok_or_else(|| ApiError::not_found("delivery", &raw))?;
    let store = state.store.clone();
    let (delivery, attempts) = blocking(move || {
        let d = store.delivery(&key.workspace_id, &id)?;
        let a = store.attempts(&id)?;
        Ok::<_, crate::store::StoreError>((d, a))
    })
    .await?;
    Ok(HttpResponse::Ok().json(delivery_json(&delivery, &attempts)))
}

/// Re-send: a new attempt on the same delivery.
#[utoipa::path(
    post,
    path = "/api/v1/deliveries/{id}/redeliver",
    tag = "deliveries",
    params(("id" = String, Path, description = "delivery id")),
    responses(
        (status = 202, description = "queued", body = DeliverySchema),
        (status = 409, description = "the delivery is still open (`conflict`)", body = ErrorBody),
    ),
    security(("api_key" = ["admin"])),
)]
async fn redeliver(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let id = DeliveryId::parse(&raw).ok_or_else(|| ApiError::not_found("delivery", &raw))?;
    let delivery = state.store.redeliver(key.workspace_id, id.clone()).await?;
    state.dispatcher.enqueue_deliveries([&delivery]);
    let store = state.store.clone();
    let attempts = blocking(move || store.attempts(&id)).await?;
    Ok(HttpResponse::Accepted().json(delivery_json(&delivery, &attempts)))
}

/// The window of failed deliveries to re-send, by creation time.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BulkRequest {
    /// RFC 3339; required.
    #[schema(required = true)]
    since: Option<String>,
    /// RFC 3339; now when absent.
    until: Option<String>,
}

/// Re-send a rule's failed deliveries created in a window.
#[utoipa::path(
    post,
    path = "/api/v1/rules/{id}/redeliver-failed",
    tag = "deliveries",
    params(("id" = String, Path, description = "rule id")),
    request_body = BulkRequest,
    responses((status = 202, description = "the deliveries re-opened", body = Redelivered)),
    security(("api_key" = ["admin"])),
)]
async fn redeliver_failed(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    JsonBody(body): JsonBody<BulkRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let rule_id = RuleId::parse(&raw).ok_or_else(|| ApiError::not_found("rule", &raw))?;
    let since = time_param("since", body.since.as_deref())?
        .ok_or_else(|| ApiError::validation("since is required (RFC 3339 time)"))?;
    let until = time_param("until", body.until.as_deref())?.unwrap_or_else(now_ms);
    if since > until {
        return Err(ApiError::validation("since must not be later than until"));
    }
    let reopened = state
        .store
        .redeliver_failed(key.workspace_id, rule_id, since, until)
        .await?;
    state.dispatcher.enqueue_deliveries(&reopened);
    Ok(HttpResponse::Accepted().json(json!({
        "redelivered": reopened.len(),
        "delivery_ids": reopened.iter().map(|d| d.id.to_string()).collect::<Vec<_>>(),
    })))
}

/// A delivery without its attempts, as lists and events show it.
pub fn delivery_summary(d: &Delivery) -> Value {
    json!({
        "id": d.id,
        "event_id": d.event_id,
        "rule_id": d.rule_id,
        "event_type": d.event_type,
        "status": d.status,
        "test": d.test,
        "created_at": to_rfc3339(d.created_at),
        "updated_at": to_rfc3339(d.updated_at),
        "attempt_count": d.attempts,
        "condition_error": d.condition_error,
        "next_attempt_at": d.next_attempt_at.filter(|_| d.status.is_open()).map(to_rfc3339),
    })
}

/// A delivery with every attempt, oldest first.
pub fn delivery_json(d: &Delivery, attempts: &[Attempt]) -> Value {
    let mut v = delivery_summary(d);
    v["attempts"] = attempts.iter().map(attempt_json).collect();
    v
}

fn headers_object(headers: &[(String, String)]) -> Map<String, Value> {
    let mut out = Map::new();
    for (k, v) in headers {
        match out.get_mut(k) {
            // Repeated response headers are joined, as HTTP allows for most of them.
            Some(Value::String(existing)) => {
                existing.push_str(", ");
                existing.push_str(v);
            }
            _ => {
                out.insert(k.clone(), Value::String(v.clone()));
            }
        }
    }
    out
}

pub fn attempt_json(a: &Attempt) -> Value {
    json!({
        "number": a.number,
        "started_at": to_rfc3339(a.started_at),
        "duration_ms": a.duration_ms,
        "status_code": a.status_code,
        "error_kind": a.error_kind,
        "error": a.error,
        "request": {
            "url": a.request.url,
            "method": a.request.method,
            "headers": headers_object(&a.request.headers),
            "body": a.request.body,
        },
        "response": a.response.as_ref().map(|r| json!({
            "status": r.status,
            "headers": headers_object(&r.headers),
            "body": r.body,
            "truncated": r.truncated,
        })),
    })
}
