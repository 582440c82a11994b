//! `POST /api/v1/events` (ingest) and `GET /api/v1/events/{id}`.

use actix_web::{HttpRequest, HttpResponse, web};
use futures_util::StreamExt;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::deliveries::delivery_summary;
use super::openapi::Op;
use super::{AdminKey, AnyKey, parse_json};
use crate::app::intake::{Accepted, check_posted_key, check_posted_type};
use crate::app::{AppState, deliveries};
use crate::domain::event::{Event, EventType, check_data};
use crate::domain::ids::EventId;
use crate::domain::subject::Subject;
use crate::domain::time::{parse_rfc3339, to_rfc3339};
use crate::error::{AppError, Code};

pub fn routes() -> Vec<Op> {
    vec![
        Op::new(__path_ingest, ingest),
        Op::new(__path_get_event, get_event),
    ]
}

/// One event, as a source system posts it.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct IngestRequest {
    /// Event type, e.g. `appointment.booked`: lowercase letters, digits and `_ . : -`,
    /// starting with a letter or digit, at most 128 characters. The prefix `tidings:` is
    /// reserved for tidings' own alerts (400 `invalid_event_type`).
    #[serde(rename = "type")]
    #[schema(pattern = r"^[a-z0-9][a-z0-9_.:-]{0,127}$")]
    event_type: String,
    /// The event's data: a JSON object (`{}` when absent). The keys `event`, `id`,
    /// `occurredAt`, `eventRule` and `workspace` are reserved for the delivered payload.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    data: Option<Value>,
    /// Kept 24 h: a repeat answers 200 with the original id and creates nothing. The
    /// `Idempotency-Key` header may carry it instead (the same key, if both are sent).
    /// 1-255 bytes of UTF-8, not starting with `tidings:` (reserved for tidings' alerts).
    #[serde(default)]
    #[schema(min_length = 1, max_length = 255)]
    idempotency_key: Option<String>,
    /// RFC 3339; the time of receipt when absent.
    #[serde(default)]
    #[schema(format = DateTime)]
    occurred_at: Option<String>,
    /// The person the event is about, such as `member:123` (1-128 characters): stored only
    /// as a keyed hash, for the accounting of disclosures and erasure; not only spaces, no
    /// control characters. When absent, taken from the type's declared `subject_path`, if any.
    #[serde(default)]
    #[schema(
        min_length = 1,
        max_length = 128,
        pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$"
    )]
    subject: Option<String>,
}

const MAX_IDEMPOTENCY_KEY: usize = 255;

/// Ingest one event: answered once it and its deliveries are durably stored.
#[utoipa::path(
    post,
    path = "/api/v1/events",
    tag = "events",
    request_body = IngestRequest,
    params(("Idempotency-Key" = Option<String>, Header, nullable = false, min_length = 1, max_length = 255, pattern = r"^[\t -~]*$", description = "the idempotency key, instead of or as well as the body's (then the same): 1-255 printable ASCII characters, not starting with `tidings:`")),
    responses(
        (status = 202, description = "stored; deliveries created", body = Ingested),
        (status = 200, description = "a repeated idempotency key: nothing created", body = Ingested),
    ),
    security(("api_key" = ["admin"]), ("api_key" = ["ingest"])),
)]
async fn ingest(
    AnyKey(key): AnyKey,
    req: HttpRequest,
    mut payload: web::Payload,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let body = read_limited(&req, &mut payload, state.config.limits.max_event_bytes).await?;
    let input: IngestRequest = parse_json(&body)?;
    let event_type = EventType::parse(&input.event_type).map_err(AppError::invalid_event_type)?;
    check_posted_type(&event_type)?;
    let data: Map<String, Value> = match input.data {
        None => Map::new(),
        Some(Value::Object(map)) => map,
        Some(other) => {
            return Err(AppError::validation(format!(
                "data must be a JSON object, not {}",
                json_kind(&other)
            )));
        }
    };
    check_data(&data).map_err(AppError::validation)?;
    let subject = input
        .subject
        .as_deref()
        .map(Subject::parse)
        .transpose()
        .map_err(AppError::validation)?;
    let idempotency_key = idempotency_key(&req, input.idempotency_key)?;
    let received_at = state.clock.now_ms();
    let occurred_at = match input.occurred_at.as_deref() {
        None => received_at,
        Some(s) => parse_rfc3339(s).ok_or_else(|| {
            AppError::validation(format!(
                "occurred_at {s:?} is not an RFC 3339 time such as 2026-11-23T10:00:00Z"
            ))
        })?,
    };
    let id = EventId::generate(received_at);
    let event = Event {
        id: id.clone(),
        workspace_id: key.workspace_id.clone(),
        event_type,
        occurred_at,
        received_at,
        data,
        test: false,
        subject: None,
        erased: false,
    };
    let outcome = state
        .intake
        .accept_posted(event, subject, idempotency_key)
        .await?;
    match outcome {
        Accepted::Created { deliveries } => Ok(HttpResponse::Accepted().json(Ingested {
            id: id.as_str(),
            deliveries,
            duplicate: None,
        })),
        Accepted::Duplicate(original) => Ok(HttpResponse::Ok().json(Ingested {
            id: original.as_str(),
            deliveries: 0,
            duplicate: Some(true),
        })),
    }
}

/// An ingested event (202), or a repeated `idempotency_key` (200: the original `id`,
/// `deliveries: 0`, `duplicate: true`).
#[derive(Serialize, ToSchema)]
struct Ingested<'a> {
    id: &'a str,
    /// Deliveries created, `condition_error` ones included.
    deliveries: usize,
    #[serde(skip_serializing_if = "Option::is_none")]
    duplicate: Option<bool>,
}

/// An event with its deliveries (without their attempts).
#[derive(Serialize, ToSchema)]
#[schema(as = Event)]
struct EventJson<'a> {
    id: &'a str,
    #[serde(rename = "type")]
    event_type: &'a str,
    #[schema(format = DateTime)]
    occurred_at: String,
    #[schema(format = DateTime)]
    received_at: String,
    /// Null once the event's subject was erased.
    #[schema(value_type = Option<Object>, required = true)]
    data: Option<&'a Map<String, Value>>,
    /// True once the event's subject was erased: its data is destroyed.
    erased: bool,
    #[schema(value_type = Vec<super::deliveries::DeliverySummary>)]
    deliveries: Vec<Value>,
}

/// Reads the whole body, refusing it (413) as soon as it passes `limit` bytes, so an oversized
/// post costs neither memory nor a full upload.
async fn read_limited(
    req: &HttpRequest,
    payload: &mut web::Payload,
    limit: usize,
) -> Result<web::BytesMut, AppError> {
    let too_large = || {
        AppError::new(
            Code::PayloadTooLarge,
            format!("the event is larger than limits.max_event_bytes ({limit} bytes)"),
        )
    };
    let declared = req
        .headers()
        .get(actix_web::http::header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<usize>().ok());
    if declared.is_some_and(|n| n > limit) {
        return Err(too_large());
    }
    let mut body = web::BytesMut::with_capacity(declared.unwrap_or(1024).min(limit));
    while let Some(chunk) = payload.next().await {
        let chunk = chunk.map_err(|e| {
            AppError::new(
                Code::InvalidBody,
                format!("the request body could not be read: {e}"),
            )
        })?;
        if body.len() + chunk.len() > limit {
            return Err(too_large());
        }
        body.extend_from_slice(&chunk);
    }
    Ok(body)
}

/// From the body or the `Idempotency-Key` header; both may be sent only if they agree.
fn idempotency_key(
    req: &HttpRequest,
    from_body: Option<String>,
) -> Result<Option<String>, AppError> {
    let header = match req.headers().get("Idempotency-Key") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| {
                    AppError::validation("the Idempotency-Key header must be printable ASCII")
                })?
                .to_owned(),
        ),
        None => None,
    };
    let key = match (from_body, header) {
        (Some(a), Some(b)) if a != b => {
            return Err(AppError::validation(
                "idempotency_key in the body and the Idempotency-Key header differ; send one, or the same in both",
            ));
        }
        (a, b) => a.or(b),
    };
    if let Some(k) = &key
        && (k.is_empty() || k.len() > MAX_IDEMPOTENCY_KEY)
    {
        return Err(AppError::validation(format!(
            "idempotency_key must be 1-{MAX_IDEMPOTENCY_KEY} characters"
        )));
    }
    if let Some(k) = &key {
        check_posted_key(k)?;
    }
    Ok(key)
}

fn json_kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The event and its deliveries.
#[utoipa::path(
    get,
    path = "/api/v1/events/{id}",
    tag = "events",
    params(("id" = String, Path, description = "event id")),
    responses((status = 200, description = "the event", body = EventJson)),
    security(("api_key" = ["admin"])),
)]
async fn get_event(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let raw = path.into_inner();
    let id = EventId::parse(&raw).ok_or_else(|| AppError::not_found("event", &raw))?;
    let (event, deliveries) = deliveries::event(&state, key.workspace_id, id).await?;
    Ok(HttpResponse::Ok().json(EventJson {
        id: event.id.as_str(),
        event_type: event.event_type.as_str(),
        occurred_at: to_rfc3339(event.occurred_at),
        received_at: to_rfc3339(event.received_at),
        data: (!event.erased).then_some(&event.data),
        erased: event.erased,
        deliveries: deliveries.iter().map(delivery_summary).collect(),
    }))
}
