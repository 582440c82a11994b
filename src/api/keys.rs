//! API keys: list, create (the key is shown once), delete.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::openapi::Op;
use super::schemas::ApiKeyList;
use super::{AdminKey, JsonBody, blocking, list_response};
use crate::domain::access::{ApiKey, Role};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::ids::{ApiKeyId, WorkspaceId};
use crate::domain::time::{now_ms, to_rfc3339};
use crate::error::{ApiError, ErrorBody};
use crate::security::crypto::{Secret, api_key_hash, new_api_key};
use crate::server::AppState;

pub fn routes() -> Vec<Op> {
    vec![
        Op::new(__path_list, list),
        Op::new(__path_create, create),
        Op::new(__path_delete, delete),
    ]
}

/// A new key record and the key itself, which exists only in the caller's hands afterwards.
pub fn mint(workspace: &WorkspaceId, name: &str, role: Role) -> (ApiKey, Secret) {
    let secret = new_api_key();
    let now = now_ms();
    let key = ApiKey {
        id: ApiKeyId::generate(now),
        workspace_id: workspace.clone(),
        name: name.to_owned(),
        role,
        hash: api_key_hash(secret.expose()),
        prefix: secret.expose().chars().take(8).collect(),
        created_at: now,
    };
    (key, secret)
}

/// Checks a key name and role given by an admin (API or CLI).
pub fn validate_new_key(name: &str, role: &str) -> Result<Role, String> {
    let name = name.trim();
    if name.is_empty() || name.chars().count() > 100 {
        return Err("name is required (1-100 characters)".into());
    }
    Role::parse(role).ok_or_else(|| format!("role must be \"admin\" or \"ingest\", not {role:?}"))
}

/// An API key as listed: never the key itself.
#[derive(Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub struct KeyJson<'a> {
    id: &'a str,
    name: &'a str,
    role: Role,
    /// The key's first 8 characters, to tell keys apart.
    prefix: &'a str,
    #[schema(format = DateTime)]
    created_at: String,
}

/// A new API key: `key` is shown this once and stored only hashed.
#[derive(Serialize, ToSchema)]
pub struct NewApiKey<'a> {
    #[serde(flatten)]
    listed: KeyJson<'a>,
    key: &'a str,
}

fn key_view(k: &ApiKey) -> KeyJson<'_> {
    KeyJson {
        id: k.id.as_str(),
        name: &k.name,
        role: k.role,
        prefix: &k.prefix,
        created_at: to_rfc3339(k.created_at),
    }
}

fn key_json(k: &ApiKey) -> Value {
    serde_json::to_value(key_view(k)).expect("string-keyed structs serialize")
}

/// The workspace's API keys (never the keys themselves).
#[utoipa::path(
    get,
    path = "/api/v1/api-keys",
    tag = "api keys",
    responses((status = 200, description = "every key, newest first; one page", body = ApiKeyList)),
    security(("api_key" = ["admin"])),
)]
async fn list(
    AdminKey(key): AdminKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let mut keys = blocking(move || store.api_keys(&key.workspace_id)).await?;
    keys.sort_by(|a, b| b.id.cmp(&a.id));
    Ok(list_response(
        &keys.iter().map(key_json).collect::<Vec<_>>(),
        None,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    /// 1-100 characters.
    #[schema(required = true)]
    name: Option<String>,
    /// `admin` or `ingest`.
    #[schema(required = true)]
    role: Option<String>,
}

/// Create a key; the answer holds the key, shown this once.
#[utoipa::path(
    post,
    path = "/api/v1/api-keys",
    tag = "api keys",
    request_body = CreateKey,
    responses((status = 201, description = "created", body = NewApiKey)),
    security(("api_key" = ["admin"])),
)]
async fn create(
    AdminKey(caller): AdminKey,
    JsonBody(body): JsonBody<CreateKey>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let name = body.name.unwrap_or_default();
    let role = validate_new_key(&name, body.role.as_deref().unwrap_or(""))
        .map_err(ApiError::validation)?;
    let (key, secret) = mint(&caller.workspace_id, name.trim(), role);
    let audit = AuditEntry::new(
        &caller.workspace_id,
        Actor::key(&caller),
        "api_key.create",
        "api_key",
        key.id.as_str(),
    )
    .after(key_json(&key));
    state.store.insert_api_key_async(key.clone(), audit).await?;
    tracing::info!(api_key = %key.id, by = %caller.id, "API key created");
    Ok(HttpResponse::Created().json(NewApiKey {
        listed: key_view(&key),
        key: secret.expose(),
    }))
}

/// Delete a key (not the one making the request).
#[utoipa::path(
    delete,
    path = "/api/v1/api-keys/{id}",
    tag = "api keys",
    params(("id" = String, Path, description = "API key id")),
    responses(
        (status = 204, description = "deleted"),
        (status = 409, description = "a key cannot delete itself (`conflict`)", body = ErrorBody),
    ),
    security(("api_key" = ["admin"])),
)]
async fn delete(
    AdminKey(caller): AdminKey,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, ApiError> {
    let raw = path.into_inner();
    let id = ApiKeyId::parse(&raw).ok_or_else(|| ApiError::not_found("API key", &raw))?;
    if id == caller.id {
        // Deleting the key in use could leave the workspace with no admin key at all.
        return Err(ApiError::conflict(
            "an API key cannot delete itself; delete it with another admin key",
        ));
    }
    let audit = AuditEntry::new(
        &caller.workspace_id,
        Actor::key(&caller),
        "api_key.delete",
        "api_key",
        id.as_str(),
    );
    state
        .store
        .delete_api_key(caller.workspace_id, id.clone(), audit)
        .await?;
    tracing::info!(api_key = %id, by = %caller.id, "API key deleted");
    Ok(HttpResponse::NoContent().finish())
}
