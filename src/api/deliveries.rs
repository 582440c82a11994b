//! Delivery history: list with filters and cursor, detail with attempts, and re-sends.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::{IntoParams, ToSchema};

use super::error::ErrorBody;
use super::openapi::Op;
use super::schemas::DeliveryList;
use super::{AdminKey, JsonBody, list_response, time_param};
use crate::app::AppState;
use crate::app::deliveries::{self, DeliveryQuery, FilterInput};
use crate::app::paging::page_limit;
use crate::domain::audit::Actor;
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus, ErrorKind};
use crate::domain::ids::{DeliveryId, RuleId};
use crate::domain::time::to_rfc3339;
use crate::error::AppError;

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
    #[param(pattern = r"^rul_[A-Za-z0-9]{1,64}$")]
    rule_id: Option<String>,
    /// Only deliveries in this state.
    #[param(value_type = Option<DeliveryStatus>)]
    status: Option<String>,
    /// Only events of this type (`member:created`), or of a family: a prefix ending in `*`
    /// (`member:*`; `*` is every type but tidings' own `tidings:` events, as in a rule's
    /// trigger). A family is read on through the log, at most 5 store pages per request, so
    /// a rare one may give a short page with a `next_cursor`.
    #[param(pattern = r"^(\*|[a-z0-9][a-z0-9_.:-]{0,127}|[a-z0-9_.:-]{1,128}\*)$")]
    event_type: Option<String>,
    /// RFC 3339: created at or after.
    #[param(format = DateTime)]
    since: Option<String>,
    /// RFC 3339: created at or before (not before `since`).
    #[param(format = DateTime)]
    until: Option<String>,
    /// Page size, 1-250 (50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 250)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = r"^dlv_[A-Za-z0-9]{1,64}$")]
    cursor: Option<String>,
}

impl ListQuery {
    fn query(&self) -> Result<DeliveryQuery, AppError> {
        FilterInput {
            rule_id: self.rule_id.as_deref(),
            status: self.status.as_deref(),
            event_type: self.event_type.as_deref(),
            since: time_param("since", self.since.as_deref())?,
            until: time_param("until", self.until.as_deref())?,
            cursor: self.cursor.as_deref(),
            limit: page_limit(self.limit.as_deref())?,
        }
        .parse()
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
) -> Result<HttpResponse, AppError> {
    let wanted = query.query()?;
    let (page, cursor) = deliveries::query(&state, key.workspace_id, wanted).await?;
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
    responses((status = 200, description = "the delivery", body = DeliveryDetail)),
    security(("api_key" = ["admin"])),
)]
async fn get_one(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let raw = path.into_inner();
    let id = DeliveryId::parse(&raw).ok_or_else(|| AppError::not_found("delivery", &raw))?;
    let (delivery, attempts) = deliveries::get(&state, key.workspace_id, id).await?;
    Ok(HttpResponse::Ok().json(delivery_json(&delivery, &attempts)))
}

/// Re-send: a new attempt on the same delivery.
#[utoipa::path(
    post,
    path = "/api/v1/deliveries/{id}/redeliver",
    tag = "deliveries",
    params(("id" = String, Path, description = "delivery id")),
    responses(
        (status = 202, description = "queued", body = DeliveryDetail),
        (status = 409, description = "the delivery is still open (`conflict`)", body = ErrorBody),
    ),
    security(("api_key" = ["admin"])),
)]
async fn redeliver(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let raw = path.into_inner();
    let id = DeliveryId::parse(&raw).ok_or_else(|| AppError::not_found("delivery", &raw))?;
    let actor = Actor::key(&key);
    let (delivery, attempts) = deliveries::redeliver(&state, key.workspace_id, actor, id).await?;
    Ok(HttpResponse::Accepted().json(delivery_json(&delivery, &attempts)))
}

/// The window of failed deliveries to re-send, by creation time.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct BulkRequest {
    /// RFC 3339.
    #[schema(value_type = String, required = true, format = DateTime)]
    since: Option<String>,
    /// RFC 3339; now when absent.
    #[schema(format = DateTime)]
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
) -> Result<HttpResponse, AppError> {
    let raw = path.into_inner();
    let rule_id = RuleId::parse(&raw).ok_or_else(|| AppError::not_found("rule", &raw))?;
    let since = time_param("since", body.since.as_deref())?
        .ok_or_else(|| AppError::validation("since is required (RFC 3339 time)"))?;
    let until = time_param("until", body.until.as_deref())?.unwrap_or_else(|| state.clock.now_ms());
    let actor = Actor::key(&key);
    let reopened =
        deliveries::redeliver_failed(&state, key.workspace_id, actor, rule_id, since, until)
            .await?;
    Ok(HttpResponse::Accepted().json(Redelivered {
        redelivered: reopened.len(),
        delivery_ids: reopened.iter().map(|d| d.id.as_str()).collect(),
    }))
}

/// What `redeliver-failed` re-opened.
#[derive(Serialize, ToSchema)]
pub struct Redelivered<'a> {
    redelivered: usize,
    delivery_ids: Vec<&'a str>,
}

/// A delivery without its attempts, as lists and events show it.
#[derive(Serialize, ToSchema)]
pub struct DeliverySummary<'a> {
    id: &'a str,
    event_id: &'a str,
    rule_id: &'a str,
    event_type: &'a str,
    status: DeliveryStatus,
    /// Made by `POST /api/v1/rules/{id}/test`.
    test: bool,
    /// RFC 3339, like every time the API shows.
    #[schema(format = DateTime)]
    created_at: String,
    #[schema(format = DateTime)]
    updated_at: String,
    attempt_count: u32,
    /// Why the rule's condition could not be evaluated, for `condition_error` deliveries.
    #[schema(required = true)]
    condition_error: Option<&'a str>,
    /// When the next attempt is due, while the delivery is open.
    #[schema(required = true, format = DateTime)]
    next_attempt_at: Option<String>,
}

/// A delivery with every attempt, oldest first.
#[derive(Serialize, ToSchema)]
pub struct DeliveryDetail<'a> {
    #[serde(flatten)]
    summary: DeliverySummary<'a>,
    attempts: Vec<AttemptJson<'a>>,
}

/// One attempt as logged: what was sent (secret header values masked) and what came back.
#[derive(Serialize, ToSchema)]
#[schema(as = Attempt)]
pub struct AttemptJson<'a> {
    number: u32,
    #[schema(format = DateTime)]
    started_at: String,
    duration_ms: u64,
    #[schema(required = true)]
    status_code: Option<u16>,
    #[schema(required = true)]
    error_kind: Option<ErrorKind>,
    #[schema(required = true)]
    error: Option<&'a str>,
    request: LoggedRequestJson<'a>,
    #[schema(required = true)]
    response: Option<LoggedResponseJson<'a>>,
}

/// The request an attempt sent; the body is null when bodies are not stored.
#[derive(Serialize, ToSchema)]
#[schema(as = LoggedRequest)]
pub struct LoggedRequestJson<'a> {
    url: &'a str,
    method: &'a str,
    #[schema(value_type = BTreeMap<String, String>)]
    headers: Map<String, Value>,
    #[schema(required = true)]
    body: Option<&'a str>,
}

/// The receiver's answer; repeated headers are joined with `, `.
#[derive(Serialize, ToSchema)]
#[schema(as = LoggedResponse)]
pub struct LoggedResponseJson<'a> {
    status: u16,
    #[schema(value_type = BTreeMap<String, String>)]
    headers: Map<String, Value>,
    #[schema(required = true)]
    body: Option<&'a str>,
    /// The body was cut at the logging limit.
    truncated: bool,
}

/// A typed body as the `Value` the list and event builders compose.
fn to_value(body: &impl Serialize) -> Value {
    serde_json::to_value(body).expect("string-keyed structs serialize")
}

fn summary(d: &Delivery) -> DeliverySummary<'_> {
    DeliverySummary {
        id: d.id.as_str(),
        event_id: d.event_id.as_str(),
        rule_id: d.rule_id.as_str(),
        event_type: d.event_type.as_str(),
        status: d.status,
        test: d.test,
        created_at: to_rfc3339(d.created_at),
        updated_at: to_rfc3339(d.updated_at),
        attempt_count: d.attempts,
        condition_error: d.condition_error.as_deref(),
        next_attempt_at: d
            .next_attempt_at
            .filter(|_| d.status.is_open())
            .map(to_rfc3339),
    }
}

/// A delivery without its attempts, as lists and events show it.
pub fn delivery_summary(d: &Delivery) -> Value {
    to_value(&summary(d))
}

/// A delivery with every attempt, oldest first.
pub fn delivery_json(d: &Delivery, attempts: &[Attempt]) -> Value {
    to_value(&DeliveryDetail {
        summary: summary(d),
        attempts: attempts.iter().map(attempt).collect(),
    })
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

fn attempt(a: &Attempt) -> AttemptJson<'_> {
    AttemptJson {
        number: a.number,
        started_at: to_rfc3339(a.started_at),
        duration_ms: a.duration_ms,
        status_code: a.status_code,
        error_kind: a.error_kind,
        error: a.error.as_deref(),
        request: LoggedRequestJson {
            url: &a.request.url,
            method: &a.request.method,
            headers: headers_object(&a.request.headers),
            body: a.request.body.as_deref(),
        },
        response: a.response.as_ref().map(|r| LoggedResponseJson {
            status: r.status,
            headers: headers_object(&r.headers),
            body: r.body.as_deref(),
            truncated: r.truncated,
        }),
    }
}

pub fn attempt_json(a: &Attempt) -> Value {
    to_value(&attempt(a))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::delivery::{LoggedRequest, LoggedResponse};
    use crate::domain::event::EventType;
    use crate::domain::ids::{EventId, WorkspaceId};

    /// The typed bodies must render exactly what the `json!` builders they replaced did: the
    /// same keys in the same order, nulls included.
    #[test]
    fn a_delivery_renders_byte_for_byte_as_before() {
        let d = Delivery {
            id: DeliveryId::parse("dlv_0000000000000000000000000001").unwrap(),
            event_id: EventId::parse("evt_0000000000000000000000000002").unwrap(),
            rule_id: RuleId::parse("rul_0000000000000000000000000003").unwrap(),
            workspace_id: WorkspaceId::generate(0),
            event_type: EventType::parse("appointment.booked").unwrap(),
            status: DeliveryStatus::Retrying,
            test: false,
            created_at: 0,
            updated_at: 1_000,
            attempts: 1,
            attempts_left: 4,
            next_attempt_at: Some(2_000),
            condition_error: None,
            subject: None,
            erased: false,
            ordering_key: None,
        };
        let a = Attempt {
            number: 1,
            started_at: 500,
            duration_ms: 12,
            status_code: Some(503),
            error_kind: Some(ErrorKind::HttpStatus),
            error: Some("HTTP 503".into()),
            request: LoggedRequest {
                url: "https://example.org/hook".into(),
                method: "POST".into(),
                headers: vec![("content-type".into(), "application/json".into())],
                body: Some("{}".into()),
            },
            response: Some(LoggedResponse {
                status: 503,
                headers: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
                body: None,
                truncated: false,
            }),
        };
        let t = |ms| to_rfc3339(ms);
        let summary = format!(
            concat!(
                r#"{{"id":"dlv_0000000000000000000000000001","event_id":"evt_0000000000000000000000000002","#,
                r#""rule_id":"rul_0000000000000000000000000003","event_type":"appointment.booked","#,
                r#""status":"retrying","test":false,"created_at":"{}","updated_at":"{}","#,
                r#""attempt_count":1,"condition_error":null,"next_attempt_at":"{}""#
            ),
            t(0),
            t(1_000),
            t(2_000)
        );
        let attempt = format!(
            concat!(
                r#"{{"number":1,"started_at":"{}","duration_ms":12,"status_code":503,"#,
                r#""error_kind":"http_status","error":"HTTP 503","request":{{"url":"https://example.org/hook","#,
                r#""method":"POST","headers":{{"content-type":"application/json"}},"body":"{{}}"}},"#,
                r#""response":{{"status":503,"headers":{{"a":"1, 2"}},"body":null,"truncated":false}}}}"#
            ),
            t(500)
        );
        assert_eq!(delivery_summary(&d).to_string(), format!("{summary}}}"));
        assert_eq!(
            delivery_json(&d, std::slice::from_ref(&a)).to_string(),
            format!("{summary},\"attempts\":[{attempt}]}}")
        );
        assert_eq!(attempt_json(&a).to_string(), attempt);
    }
}
