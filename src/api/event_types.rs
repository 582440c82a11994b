//! The event catalog: `GET /api/v1/event-types` (built in, declared and seen types, each with
//! its sample) and `POST /api/v1/event-types` (declare one).

use actix_web::{HttpResponse, web};
use serde::Deserialize;
use serde_json::{Map, Value, json};
use utoipa::ToSchema;

use super::openapi::Op;
use super::schemas::{EventTypeEntry, EventTypeList};
use super::{AdminKey, JsonBody, blocking, list_response};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::catalog::{Declared, Entry, MAX_DESCRIPTION_CHARS};
use crate::domain::event::{EventType, check_data};
use crate::domain::ids::WorkspaceId;
use crate::domain::samples::BUILTIN_TYPES;
use crate::domain::time::{now_ms, to_rfc3339};
use crate::error::ApiError;
use crate::server::AppState;
use crate::store::{Store, StoreError};

/// Largest declared sample, in bytes of JSON.
const MAX_SAMPLE_BYTES: usize = 64 * 1024;

pub fn routes() -> Vec<Op> {
    vec![Op::new(__path_list, list), Op::new(__path_declare, declare)]
}

/// The catalog entry for one type of a workspace: its sample is what tests, previews and
/// template checks use.
pub fn entry(store: &Store, workspace: &WorkspaceId, name: EventType) -> Result<Entry, StoreError> {
    let stored = store.event_type(workspace, &name)?;
    Ok(Entry::new(name, stored.as_ref()))
}

fn entry_json(e: &Entry) -> Value {
    json!({
        "name": e.name,
        "description": e.description,
        "sample": e.sample,
        "sources": e.sources,
        "last_seen_at": e.last_seen_at.map(to_rfc3339),
    })
}

/// Every type the workspace knows (stored ones and the built-ins), sorted by name.
pub fn catalog(store: &Store, workspace: &WorkspaceId) -> Result<Vec<Entry>, StoreError> {
    let stored = store.event_types(workspace)?;
    let mut entries: Vec<Entry> = stored
        .iter()
        .map(|(name, row)| Entry::new(name.clone(), Some(row)))
        .collect();
    for (name, _) in BUILTIN_TYPES {
        if !entries.iter().any(|e| e.name.as_str() == name) {
            entries.extend(EventType::parse(name).ok().map(|t| Entry::new(t, None)));
        }
    }
    entries.sort_by(|a, b| a.name.as_str().cmp(b.name.as_str()));
    Ok(entries)
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
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let entries = blocking(move || catalog(&store, &key.workspace_id)).await?;
    let data: Vec<Value> = entries.iter().map(entry_json).collect();
    Ok(list_response(&data, None))
}

/// An event type an admin declares, with the sample tests, previews and template checks use.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct DeclareRequest {
    name: String,
    #[serde(default)]
    description: Option<String>,
    /// The data of an example event: a JSON object.
    #[serde(default)]
    #[schema(value_type = Option<Object>)]
    sample: Option<Value>,
}

/// Checks a declaration: a valid type name, a short description, a sample that is a JSON
/// object of event data (no reserved keys, at most 64 KiB). Shared by the API and the UI.
pub fn declaration(
    name: &str,
    description: Option<String>,
    sample: Option<Value>,
) -> Result<(EventType, Declared), ApiError> {
    let name = EventType::parse(name)
        .map_err(|m| ApiError::bad_request("invalid_event_type", format!("name: {m}")))?;
    let description = description.unwrap_or_default().trim().to_owned();
    if description.chars().count() > MAX_DESCRIPTION_CHARS {
        return Err(ApiError::validation(format!(
            "description must be at most {MAX_DESCRIPTION_CHARS} characters"
        )));
    }
    let sample: Map<String, Value> = match sample {
        None => Map::new(),
        Some(Value::Object(map)) => map,
        Some(_) => {
            return Err(ApiError::validation(
                "sample must be a JSON object: the data of an example event",
            ));
        }
    };
    check_data(&sample).map_err(|m| ApiError::validation(format!("sample: {m}")))?;
    if serde_json::to_vec(&sample).map_or(0, |b| b.len()) > MAX_SAMPLE_BYTES {
        return Err(ApiError::validation(format!(
            "sample must be at most {} KiB of JSON",
            MAX_SAMPLE_BYTES / 1024
        )));
    }
    let declared = Declared {
        description,
        sample,
        declared_at: now_ms(),
    };
    Ok((name, declared))
}

/// Stores a checked declaration, audited; returns the type's catalog entry.
pub async fn declare_type(
    state: &AppState,
    workspace: &WorkspaceId,
    actor: Actor,
    name: EventType,
    declared: Declared,
) -> Result<Entry, ApiError> {
    let audit = AuditEntry::new(
        workspace,
        actor,
        "event_type.declare",
        "event_type",
        name.as_str(),
    )
    .after(json!({"description": declared.description, "sample": declared.sample}));
    let row = state
        .store
        .declare_event_type(workspace.clone(), name.clone(), declared, audit)
        .await?;
    Ok(Entry::new(name, Some(&row)))
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
) -> Result<HttpResponse, ApiError> {
    let (name, declared) = declaration(&input.name, input.description, input.sample)?;
    let entry = declare_type(&state, &key.workspace_id, Actor::key(&key), name, declared).await?;
    Ok(HttpResponse::Created().json(entry_json(&entry)))
}
