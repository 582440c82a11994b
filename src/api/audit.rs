//! `GET /api/v1/audit`: the workspace's audit log, newest first. There is no route that
//! changes it.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::{IntoParams, ToSchema};

use super::openapi::Op;
use super::schemas::AuditList;
use super::{AdminKey, list_response};
use crate::app::paging::{page_cursor, page_limit};
use crate::app::{AppState, audit};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::ids::AuditId;
use crate::domain::time::to_rfc3339;
use crate::error::AppError;

pub fn routes() -> Vec<Op> {
    vec![Op::new(__path_list, list)]
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page size, 1-250 (50).
    #[param(value_type = Option<u32>, minimum = 1, maximum = 250)]
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    #[param(pattern = r"^aud_[A-Za-z0-9]{1,64}$")]
    cursor: Option<String>,
}

/// One audit entry; secret values in `before` and `after` are masked.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditEntry)]
pub struct EntryJson<'a> {
    id: &'a str,
    #[schema(format = DateTime)]
    at: String,
    actor: &'a Actor,
    /// E.g. `rule.update`, `rule.secret.view`, `api_key.create`.
    action: &'a str,
    target: Target<'a>,
    #[schema(required = true)]
    before: Option<&'a Value>,
    #[schema(required = true)]
    after: Option<&'a Value>,
    #[schema(required = true)]
    detail: Option<&'a str>,
}

/// What the entry is about: `{"type": "rule", "id": "rul_…"}`.
#[derive(Serialize, ToSchema)]
#[schema(as = AuditTarget)]
pub struct Target<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    id: &'a str,
}

fn entry_json(e: &AuditEntry) -> Value {
    serde_json::to_value(EntryJson {
        id: e.id.as_str(),
        at: to_rfc3339(e.at),
        actor: &e.actor,
        action: &e.action,
        target: Target {
            kind: &e.target_type,
            id: &e.target_id,
        },
        before: e.before.as_ref(),
        after: e.after.as_ref(),
        detail: e.detail.as_deref(),
    })
    .expect("string-keyed structs serialize")
}

/// The workspace's audit log, newest first.
#[utoipa::path(
    get,
    path = "/api/v1/audit",
    tag = "audit",
    params(ListQuery),
    responses((status = 200, description = "a page of entries", body = AuditList)),
    security(("api_key" = ["admin"])),
)]
async fn list(
    AdminKey(key): AdminKey,
    query: web::Query<ListQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let limit = page_limit(query.limit.as_deref())?;
    let before = page_cursor(query.cursor.as_deref(), AuditId::parse)?;
    let (page, cursor) = audit::page(&state, key.workspace_id, before, limit).await?;
    let data: Vec<Value> = page.iter().map(entry_json).collect();
    Ok(list_response(&data, cursor.as_ref().map(AuditId::as_str)))
}
