//! `GET /api/v1/audit`: the workspace's audit log, newest first. There is no route that
//! changes it.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminKey, blocking, list_response, page_cursor, page_limit};
use crate::domain::audit::AuditEntry;
use crate::domain::ids::AuditId;
use crate::domain::time::to_rfc3339;
use crate::error::ApiError;
use crate::server::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/audit").route(web::get().to(list)));
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct ListQuery {
    limit: Option<String>,
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
