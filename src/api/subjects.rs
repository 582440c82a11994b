//! The people events are about (§13): `GET /api/v1/subjects/{subject}/disclosures` (the
//! accounting of disclosures, as JSON pages or `?format=csv`) and
//! `POST /api/v1/subjects/{subject}/erase`.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::openapi::Op;
use super::{AdminKey, time_param};
use crate::app::AppState;
use crate::app::paging::page_limit;
use crate::app::subjects::{self, DisclosureQuery};
use crate::domain::audit::Actor;
use crate::domain::delivery::DeliveryStatus;
use crate::domain::ids::DeliveryId;
use crate::domain::subject::Disclosure;
use crate::domain::time::to_rfc3339;
use crate::error::AppError;

pub fn routes() -> Vec<Op> {
    vec![
        Op::new(__path_disclosures, disclosures),
        Op::new(__path_erase, erase),
    ]
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct DisclosureParams {
    /// RFC 3339: first attempted at or after.
    #[param(format = DateTime)]
    since: Option<String>,
    /// RFC 3339: first attempted at or before (not before `since`).
    #[param(format = DateTime)]
    until: Option<String>,
    /// Page size, 1-250 (50); ignored by `format=csv`, which holds every disclosure (at most
    /// 10000: ask for longer accountings in time windows).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 250)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = r"^dlv_[A-Za-z0-9]{1,64}$")]
    cursor: Option<String>,
    /// `json` (the default) or `csv`.
    #[param(pattern = "^(json|csv)$")]
    format: Option<String>,
}

/// One disclosure: a delivery of the subject's data to a receiver.
#[derive(Serialize, ToSchema)]
pub struct DisclosureJson<'a> {
    delivery_id: &'a str,
    event_id: &'a str,
    event_type: &'a str,
    rule: RuleRef<'a>,
    /// Scheme and host (and port) the data went to.
    destination: &'a str,
    status: DeliveryStatus,
    #[schema(format = DateTime)]
    first_attempt_at: String,
    #[schema(required = true, format = DateTime)]
    succeeded_at: Option<String>,
}

/// The rule a disclosure was made for, named as it was then.
#[derive(Serialize, ToSchema)]
pub struct RuleRef<'a> {
    id: &'a str,
    name: &'a str,
}

/// A page of a subject's disclosures, oldest first.
#[derive(Serialize, ToSchema)]
pub struct DisclosureList<'a> {
    data: Vec<DisclosureJson<'a>>,
    #[schema(required = true)]
    next_cursor: Option<&'a str>,
}

fn disclosure_json(d: &Disclosure) -> DisclosureJson<'_> {
    DisclosureJson {
        delivery_id: d.delivery_id.as_str(),
        event_id: d.event_id.as_str(),
        event_type: d.event_type.as_str(),
        rule: RuleRef {
            id: d.rule_id.as_str(),
            name: &d.rule_name,
        },
        destination: &d.destination,
        status: d.status,
        first_attempt_at: to_rfc3339(d.first_attempt_at),
        succeeded_at: d.succeeded_at.map(to_rfc3339),
    }
}

/// Who a subject's data was sent to (HIPAA's accounting of disclosures), oldest first;
/// records outlive the delivery log's retention and the subject's erasure. Reading it is
/// audited.
#[utoipa::path(
    get,
    path = "/api/v1/subjects/{subject}/disclosures",
    tag = "subjects",
    params(
        ("subject" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$", description = "the subject as sent at ingest, such as member:123 (URL-encoded)"),
        DisclosureParams,
    ),
    responses(
        (status = 200, description = "a page of disclosures, or all of them as CSV", content(
            (DisclosureList = "application/json"),
            (String = "text/csv"),
        )),
        (status = 400, description = "the subject is empty, too long or has control characters (`validation_failed`), or a query parameter is invalid (`invalid_query`)", body = super::error::ErrorBody),
    ),
    security(("api_key" = ["admin"])),
)]
async fn disclosures(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    params: web::Query<DisclosureParams>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let subject = path.into_inner();
    let csv = match params.format.as_deref() {
        None | Some("json") => false,
        Some("csv") => true,
        Some(other) => {
            return Err(AppError::invalid_query(format!(
                "format must be json or csv, not {other:?}"
            )));
        }
    };
    let query = DisclosureQuery {
        subject: &subject,
        since: time_param("since", params.since.as_deref())?,
        until: time_param("until", params.until.as_deref())?,
        cursor: params.cursor.as_deref(),
        limit: page_limit(params.limit.as_deref())?,
    };
    let actor = Actor::key(&key);
    if csv {
        let body = subjects::disclosures_csv(&state, key.workspace_id, actor, &query).await?;
        return Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                "attachment; filename=\"disclosures.csv\"",
            ))
            .body(body));
    }
    let (page, cursor) = subjects::disclosures(&state, key.workspace_id, actor, &query).await?;
    Ok(HttpResponse::Ok().json(DisclosureList {
        data: page.iter().map(disclosure_json).collect(),
        next_cursor: cursor.as_ref().map(DeliveryId::as_str),
    }))
}

/// What an erasure destroyed.
#[derive(Serialize, ToSchema)]
struct ErasedJson {
    /// Events whose data was destroyed (ones erased before are not counted again).
    events: u64,
    /// Their deliveries: logged bodies destroyed, open ones closed without being sent.
    deliveries: u64,
}

/// Erase a subject: their events' data and every logged request and response body of their
/// deliveries are destroyed in the store; deliveries still open are closed unsent. The
/// accounting of disclosures keeps what was sent. An unknown subject erases nothing (zero
/// counts). Audited under the subject's hash.
#[utoipa::path(
    post,
    path = "/api/v1/subjects/{subject}/erase",
    tag = "subjects",
    params(("subject" = String, Path, min_length = 1, max_length = 128, pattern = r"^[^\u0000-\u001f\u007f-\u009f]*[^\s\u0000-\u001f\u007f-\u009f][^\u0000-\u001f\u007f-\u009f]*$", description = "the subject as sent at ingest, such as member:123 (URL-encoded)")),
    responses(
        (status = 200, description = "what was destroyed", body = ErasedJson),
        (status = 400, description = "the subject is empty, too long or has control characters (`validation_failed`)", body = super::error::ErrorBody),
    ),
    security(("api_key" = ["admin"])),
)]
async fn erase(
    AdminKey(key): AdminKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let subject = path.into_inner();
    let erased =
        subjects::erase(&state, key.workspace_id.clone(), Actor::key(&key), &subject).await?;
    Ok(HttpResponse::Ok().json(ErasedJson {
        events: erased.events,
        deliveries: erased.deliveries,
    }))
}
