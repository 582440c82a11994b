//! The event catalog: `GET /api/v1/event-types` (built in, declared and seen types, each with
//! its sample) and `POST /api/v1/event-types` (declare one).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::openapi::Op;
use super::schemas::{EventTypeEntry, EventTypeList};
use super::{AdminKey, JsonBody, list_response};
use crate::app::{AppState, catalog};
use crate::domain::audit::Actor;
use crate::domain::catalog::Entry;
use crate::domain::time::to_rfc3339;
use crate::error::AppError;

pub fn routes() -> Vec<Op> {
    vec![Op::new(__path_list, list), Op::new(__path_declare, declare)]
}

fn entry_json(e: &Entry) -> Value {
    json!({
        "name": e.name,
        "description": e.description,
        "sample": e.sample,
        "sources": e.sources,
        "last_seen_at": e.last_seen_at.map(to_rfc3339),
        "subject_path": e.subject_path,
        "subject_missing": e.subject_missing.as_ref().map(|(reason, at)| json!({
            "reason": reason, "at": to_rfc3339(*at),
        })),
    })
}

/// The catalog: built-in, declared and seen types, each with its sample.
#[utoipa::path(
    get,
    path = "/api/v1/event-types",
    tag = "event types",
    responses((status = 200, description = "every type, by name; one page", body = EventTypeList)),
    security(("api_key" = ["admin"])),
)]
async fn list(
    AdminKey(key): AdminKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let entries = catalog::list(&state, key.workspace_id).await?;
    let data: Vec<Value> = entries.iter().map(entry_json).collect();
    Ok(list_response(&data, None))
}

/// An event type an admin declares, with the sample tests, previews and template checks use.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DeclareRequest {
    /// An event type: lowercase letters, digits and `_ . : -`, starting with a letter or
    /// digit, at most 128 characters.
    #[schema(pattern = r"^[a-z0-9][a-z0-9_.:-]{0,127}$")]
    name: String,
    /// At most 2000 characters (trimmed).
    #[serde(default)]
    #[schema(max_length = 2000)]
    description: Option<String>,
    /// The data of an example event: a JSON object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    sample: Option<Value>,
    /// Where an event of this type posted without a `subject` names it: object keys joined
    /// by dots, such as `member.id` (the value there, a string or number, is the subject).
    #[serde(default)]
    #[schema(max_length = 256)]
    subject_path: Option<String>,
}

/// Declare (or re-declare) an event type.
#[utoipa::path(
    post,
    path = "/api/v1/event-types",
    tag = "event types",
    request_body = DeclareRequest,
    responses((status = 201, description = "declared", body = EventTypeEntry)),
    security(("api_key" = ["admin"])),
)]
async fn declare(
    AdminKey(key): AdminKey,
    JsonBody(input): JsonBody<DeclareRequest>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let (name, declared) = catalog::declaration(
        &state,
        &input.name,
        input.description,
        input.sample,
        input.subject_path.as_deref(),
    )?;
    let actor = Actor::key(&key);
    let entry = catalog::declare(&state, &key.workspace_id, actor, name, declared).await?;
    Ok(HttpResponse::Created().json(entry_json(&entry)))
}
