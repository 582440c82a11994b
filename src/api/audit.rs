//! `GET /api/v1/audit`: the workspace's audit log, newest first. There is no route that
//! changes it.

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};

use super::{AdminKey, blocking, list_response};
use crate::domain::audit::AuditEntry;
use crate::domain::ids::AuditId;
use crate::domain::time::to_rfc3339;
use crate::error::ApiError;
use crate::server::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(super::resource("/audit").route(web::get().to(list)));
}

const DEFAULT_LIMIT: usize = 50;
const MAX_LIMIT: usize = 250;

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
    let query = query.into_inner();
    let bad = |m: String| ApiError::bad_request("invalid_query", m);
    let limit = match query.limit {
        None => DEFAULT_LIMIT,
        Some(l) => l
            .parse::<usize>()
            .ok()
            .filter(|n| (1..=MAX_LIMIT).contains(n))
            .ok_or_else(|| {
                bad(format!(
                    "limit must be a whole number from 1 to {MAX_LIMIT}, not {l:?}"
                ))
            })?,
    };
    let before = query
        .cursor
        .map(|c| {
            AuditId::parse(&c)
                .ok_or_else(|| bad(format!("cursor {c:?} is not one this API gave out")))
        })
        .transpose()?;
    let store = state.store.clone();
    let (page, cursor) =
        blocking(move || store.audit_log(&key.workspace_id, before.as_ref(), limit)).await?;
    let data: Vec<Value> = page.iter().map(entry_json).collect();
    Ok(list_response(&data, cursor.as_ref().map(AuditId::as_str)))
}
