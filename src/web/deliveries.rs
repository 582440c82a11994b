//! Delivery pages: the log with filters (rule, status, event type, time) and cursor paging,
//! and one delivery's attempts with request, response and a plain-language hint per error.

use std::collections::HashMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::auth::CsrfForm;
use super::rules::pretty;
use super::{AnyUser, EditorUser, Layout, WebError, fmt_time, ok, parse_local_time, see_other};
use crate::app::deliveries::{self, DeliveryQuery, FilterInput};
use crate::app::{AppState, rules};
use crate::domain::delivery::{Attempt, Delivery, DeliveryStatus, ErrorKind};
use crate::domain::ids::{DeliveryId, RuleId};
use crate::error::AppError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/deliveries").route(web::get().to(list)))
        .service(web::resource("/deliveries/{id}").route(web::get().to(detail)))
        .service(web::resource("/deliveries/{id}/redeliver").route(web::post().to(redeliver)));
}

pub struct DeliveryRow {
    pub id: String,
    pub created: String,
    pub event_type: String,
    pub rule_id: String,
    pub rule_name: String,
    pub status: String,
    pub attempts: u32,
    pub test: bool,
    /// The latest attempt's HTTP status, if the receiver answered.
    pub response_code: Option<u16>,
    /// What went wrong, in a word or two (the latest attempt's error kind, or the condition).
    pub error: Option<&'static str>,
    /// When the next attempt is due, while the delivery is open.
    pub next_attempt: Option<String>,
    pub open: bool,
}

/// The log's rows; `latest` holds each attempted delivery's latest attempt.
pub fn delivery_rows<S: std::hash::BuildHasher, T: std::hash::BuildHasher>(
    page: &[Delivery],
    names: &HashMap<RuleId, String, S>,
    latest: &HashMap<DeliveryId, Attempt, T>,
) -> Vec<DeliveryRow> {
    page.iter()
        .map(|d| {
            let last = latest.get(&d.id);
            let error = if d.status == DeliveryStatus::ConditionError {
                Some("condition error")
            } else {
                last.and_then(|a| a.error_kind).map(kind_label)
            };
            DeliveryRow {
                id: d.id.to_string(),
                created: fmt_time(d.created_at),
                event_type: d.event_type.to_string(),
                rule_id: d.rule_id.to_string(),
                rule_name: names
                    .get(&d.rule_id)
                    .cloned()
                    .unwrap_or_else(|| "(deleted rule)".into()),
                status: d.status.as_str().to_owned(),
                attempts: d.attempts,
                test: d.test,
                response_code: last.and_then(|a| a.status_code),
                error,
                next_attempt: d
                    .next_attempt_at
                    .filter(|_| d.status.is_open())
                    .map(fmt_time),
                open: d.status.is_open(),
            }
        })
        .collect()
}

/// An error kind in the words of the log's Error column (the delivery page explains it).
pub fn kind_label(kind: ErrorKind) -> &'static str {
    match kind {
        ErrorKind::HttpStatus => "error status",
        ErrorKind::Timeout => "timed out",
        ErrorKind::Connect => "no connection",
        ErrorKind::Dns => "host not found",
        ErrorKind::Tls => "certificate refused",
        ErrorKind::WebhookUrlBlocked => "URL not allowed",
        ErrorKind::SsrfBlocked => "private address",
        ErrorKind::TemplateError => "template error",
        ErrorKind::Auth => "no login token",
    }
}

/// Seconds between the log's own refreshes while a delivery on it is waiting (static/js).
const REFRESH_SECONDS: u32 = 5;

const STATUSES: [&str; 6] = [
    "pending",
    "retrying",
    "succeeded",
    "failed",
    "blocked",
    "condition_error",
];

#[derive(Debug, Default, Deserialize)]
struct ListQuery {
    rule_id: Option<String>,
    status: Option<String>,
    event_type: Option<String>,
    since: Option<String>,
    until: Option<String>,
    cursor: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/deliveries.html")]
struct DeliveriesPage {
    l: Layout,
    rules: Vec<(String, String)>,
    statuses: [&'static str; 6],
    rule_id: String,
    status: String,
    event_type: String,
    since: String,
    until: String,
    error: Option<String>,
    rows: Vec<DeliveryRow>,
    /// Link to the next (older) page, filters kept.
    older: Option<String>,
    paged: bool,
    /// Seconds until the page refreshes itself: set while a delivery on it is still open.
    refresh: Option<u32>,
}

const PAGE: usize = 50;

fn nonempty(v: Option<&String>) -> Option<&str> {
    v.map(|s| s.trim()).filter(|s| !s.is_empty())
}

/// The filter the form asks for, or why it cannot be read. Times are the form's
/// `datetime-local` values, read as UTC; "Until 10:00" includes the whole minute. An event
/// type ending in `*` (`member:*`, `*`) is a pattern, as in a rule's trigger.
fn filter_from(q: &ListQuery) -> Result<DeliveryQuery, String> {
    let time = |name: &str, v: Option<&String>| {
        nonempty(v)
            .map(|v| {
                parse_local_time(v).ok_or_else(|| format!("{name} {v:?} is not a date and time"))
            })
            .transpose()
    };
    FilterInput {
        rule_id: nonempty(q.rule_id.as_ref()),
        status: nonempty(q.status.as_ref()),
        event_type: nonempty(q.event_type.as_ref()),
        since: time("From", q.since.as_ref())?,
        until: time("Until", q.until.as_ref())?.map(|u| u + 59_999),
        cursor: nonempty(q.cursor.as_ref()),
        limit: PAGE,
    }
    .parse()
    .map_err(|e| match e {
        AppError::Refused { message, .. } => message,
        AppError::Internal(_) => "The filter could not be read.".to_owned(),
    })
}

async fn list(
    AnyUser(me): AnyUser,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let q = query.into_inner();
    let wanted = filter_from(&q);
    let ws = me.workspace().clone();
    let rules = rules::list(&state, ws.clone()).await?;
    let page = match wanted {
        Ok(wanted) => Ok(deliveries::query(&state, ws, wanted).await?),
        Err(e) => Err(e),
    };
    let names: HashMap<RuleId, String> = rules
        .iter()
        .map(|r| (r.id.clone(), r.name.clone()))
        .collect();
    let mut rule_options: Vec<(String, String)> = rules
        .iter()
        .map(|r| (r.id.to_string(), r.name.clone()))
        .collect();
    rule_options.sort_by_key(|r| r.1.to_lowercase());
    let error = page.as_ref().err().cloned();
    let (rows, cursor) = page.unwrap_or_default();
    let attempted = rows
        .iter()
        .filter(|d| d.attempts > 0)
        .map(|d| d.id.clone())
        .collect();
    let latest = deliveries::latest_attempts(&state, attempted).await?;
    let refresh = rows
        .iter()
        .any(|d| d.status.is_open())
        .then_some(REFRESH_SECONDS);
    let keep = |v: &Option<String>| v.clone().unwrap_or_default();
    let older = cursor.map(|c| {
        let mut s = url::form_urlencoded::Serializer::new(String::new());
        for (k, v) in [
            ("rule_id", &q.rule_id),
            ("status", &q.status),
            ("event_type", &q.event_type),
            ("since", &q.since),
            ("until", &q.until),
        ] {
            if let Some(v) = nonempty(v.as_ref()) {
                s.append_pair(k, v);
            }
        }
        s.append_pair("cursor", c.as_str());
        format!("/deliveries?{}", s.finish())
    });
    let page = DeliveriesPage {
        l: Layout::new(&state, Some(&me), "deliveries", "Deliveries"),
        rules: rule_options,
        statuses: STATUSES,
        rule_id: keep(&q.rule_id),
        status: keep(&q.status),
        event_type: keep(&q.event_type),
        since: keep(&q.since),
        until: keep(&q.until),
        rows: delivery_rows(&rows, &names, &latest),
        older,
        paged: q.cursor.is_some(),
        refresh,
        error: error.clone(),
    };
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    super::render(status, &page)
}

struct AttemptView {
    number: u32,
    started: String,
    duration_ms: u64,
    status_code: Option<u16>,
    ok: bool,
    error_kind: Option<String>,
    error: Option<String>,
    hint: Option<&'static str>,
    method: String,
    url: String,
    request_headers: Vec<(String, String)>,
    request_body: Option<String>,
    response_headers: Vec<(String, String)>,
    response_body: Option<String>,
    truncated: bool,
    has_response: bool,
}

impl AttemptView {
    fn new(a: &Attempt) -> Self {
        let kind = a.error_kind;
        Self {
            number: a.number,
            started: fmt_time(a.started_at),
            duration_ms: a.duration_ms,
            status_code: a.status_code,
            ok: a.succeeded(),
            error_kind: kind.and_then(|k| {
                serde_json::to_value(k)
                    .ok()
                    .and_then(|v| v.as_str().map(str::to_owned))
            }),
            error: a.error.clone(),
            hint: kind.map(ErrorKind::hint),
            method: a.request.method.clone(),
            url: a.request.url.clone(),
            request_headers: a.request.headers.clone(),
            request_body: a.request.body.as_deref().map(pretty),
            response_headers: a
                .response
                .as_ref()
                .map(|r| r.headers.clone())
                .unwrap_or_default(),
            response_body: a.response.as_ref().and_then(|r| r.body.clone()),
            truncated: a.response.as_ref().is_some_and(|r| r.truncated),
            has_response: a.response.is_some(),
        }
    }
}

#[derive(Template)]
#[template(path = "pages/delivery.html")]
struct DeliveryPage {
    l: Layout,
    id: String,
    event_id: String,
    event_type: String,
    rule_id: String,
    rule_name: String,
    status: &'static str,
    test: bool,
    created: String,
    next_attempt: Option<String>,
    open: bool,
    /// Why the rule's condition could not be evaluated for this event (no request was made).
    condition_error: Option<String>,
    attempts: Vec<AttemptView>,
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

fn parse_id(raw: &str) -> Result<DeliveryId, WebError> {
    DeliveryId::parse(raw).ok_or_else(|| {
        WebError::status(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("There is no delivery {raw:?}."),
        )
    })
}

async fn detail(
    AnyUser(me): AnyUser,
    path: web::Path<String>,
    query: web::Query<DoneQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let id = parse_id(&path)?;
    let (d, attempts) = deliveries::get(&state, me.workspace().clone(), id).await?;
    let rule_name = rules::name(&state, &d.rule_id);
    let flash = match query.done.as_deref() {
        Some("test") => Some("Test event sent once, without retries. The request and the receiver's answer are below.".to_owned()),
        Some("redeliver") => Some("Queued to be sent again. Reload in a moment to see the new attempt.".to_owned()),
        _ => None,
    };
    let page = DeliveryPage {
        l: Layout::new(&state, Some(&me), "deliveries", "Delivery").flash(flash),
        id: d.id.to_string(),
        event_id: d.event_id.to_string(),
        event_type: d.event_type.to_string(),
        rule_id: d.rule_id.to_string(),
        rule_name,
        status: d.status.as_str(),
        test: d.test,
        created: fmt_time(d.created_at),
        next_attempt: d
            .next_attempt_at
            .filter(|_| d.status.is_open())
            .map(fmt_time),
        open: d.status.is_open(),
        condition_error: d.condition_error.clone(),
        attempts: attempts.iter().map(AttemptView::new).collect(),
    };
    ok(&page)
}

async fn redeliver(
    EditorUser(me): EditorUser,
    path: web::Path<String>,
    CsrfForm(_): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let id = parse_id(&path)?;
    deliveries::redeliver(&state, me.workspace().clone(), me.actor(), id.clone()).await?;
    Ok(see_other(&format!("/deliveries/{id}?done=redeliver")))
}
