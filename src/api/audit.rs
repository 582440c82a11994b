//! `GET /api/v1/audit`: the workspace's audit log, newest first. There is no route that
//! changes it.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::IntoParams;

use super::openapi::Op;
use super::schemas::AuditList;
use super::{AdminKey, blocking, list_response, page_cursor, page_limit};
use crate::domain::audit::AuditEntry;
use crate::domain::ids::AuditId;
use crate::domain::time::to_rfc3339;
use crate::error::ApiError;
use crate::server::AppState;

pub fn routes() -> Vec<Op> {
    vec![Op::new(__path_list, list)]
}

#[derive(Debug, Deserialize, IntoParams)]
#[serde(deny_unknown_fields)]
#[into_params(parameter_in = Query)]
struct ListQuery {
    /// Page size, 1-250 (50).
    limit: Option<String>,
    /// The `next_cursor` of the previous page.
    cursor: Option<String>,
}

fn entry_json(e: &AuditEntry) -> Value {
    json!({
        "id": e.id,
        "at": to_rfc3339(e.at),
        "actor": e.actor,
        "action": e.action,
        "target": {"type": e.target_type, "id": e.target_id},
        "before": e.before,
        "after": e.after,
        "detail": e.detail,
    })
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
) -> Result<HttpResponse, ApiError> {
    let limit = page_limit(query.limit.as_deref())?;
    let before = page_cursor(query.cursor.as_deref(), AuditId::parse)?;
    let store = state.store.clone();
    let (page, cursor) =
        blocking(move || store.audit_log(&key.workspace_id, before.as_ref(), limit)).await?;
    let data: Vec<Value> = page.iter().map(entry_json).collect();
    Ok(list_response(&data, cursor.as_ref().map(AuditId::as_str)))
}
