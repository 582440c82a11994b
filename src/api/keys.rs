//! API keys: list, create (the key is shown once), delete.

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::openapi::Op;
use super::schemas::ApiKeyList;
use super::{AdminKey, JsonBody, list_response};
use crate::app::{AppState, keys, workspaces};
use crate::domain::access::{ApiKey, Role};
use crate::domain::audit::Actor;
use crate::domain::ids::ApiKeyId;
use crate::domain::time::to_rfc3339;
use crate::error::AppError;

pub fn routes() -> Vec<Op> {
    vec![
        Op::new(__path_list, list),
        Op::new(__path_create, create),
        Op::new(__path_delete, delete),
    ]
}

#[derive(Serialize, ToSchema)]
#[schema(as = ApiKey)]
pub struct KeyJson<'a> {
    id: &'a str,
    /// The workspace the key belongs to.
    #[schema(pattern = r"^wsp_[A-Za-z0-9]{1,64}$")]
    workspace_id: &'a str,
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
        workspace_id: k.workspace_id.as_str(),
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
) -> Result<HttpResponse, AppError> {
    let keys = keys::list(&state, key.workspace_id).await?;
    Ok(list_response(
        &keys.iter().map(key_json).collect::<Vec<_>>(),
        None,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateKey {
    /// 1-100 characters, not only spaces (trimmed).
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100, pattern = r"\S")]
    name: Option<String>,
    /// `owner` only from an owner key.
    #[schema(value_type = crate::domain::access::Role, required = true)]
    role: Option<String>,
    /// The workspace the key is for (default: the one the request acts in). An owner key
    /// may name any workspace; an admin key only its own (another is `not_found`).
    #[schema(value_type = Option<String>, pattern = r"^wsp_[A-Za-z0-9]{1,64}$")]
    workspace_id: Option<String>,
}

/// Create a key; the answer holds the key, shown this once.
#[utoipa::path(
    post,
    path = "/api/v1/api-keys",
    tag = "api keys",
    request_body = CreateKey,
    responses(
        (status = 201, description = "created", body = NewApiKey),
        (status = 403, description = "role `owner` asked for by a key that is no owner (`forbidden`)", body = ErrorBody),
        (status = 404, description = "`workspace_id` names no workspace this key may reach (`not_found`)", body = ErrorBody),
    ),
    security(("api_key" = ["admin", "owner"])),
)]
async fn create(
    AdminKey(caller): AdminKey,
    JsonBody(body): JsonBody<CreateKey>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let name = body.name.unwrap_or_default();
    let role = body.role.unwrap_or_default();
    let workspace = match body.workspace_id {
        None => caller.workspace_id.clone(),
        Some(raw) if raw == caller.workspace_id.as_str() => caller.workspace_id.clone(),
        Some(raw) if caller.role == Role::Owner => workspaces::existing(&state, &raw).await?,
        Some(raw) => return Err(workspaces::unknown(&raw)),
    };
    let actor = Actor::key(&caller);
    let by_owner = caller.role == Role::Owner;
    let (key, secret) = keys::create(&state, &workspace, actor, &name, &role, by_owner).await?;
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
) -> Result<HttpResponse, AppError> {
    let raw = path.into_inner();
    let id = ApiKeyId::parse(&raw).ok_or_else(|| AppError::not_found("API key", &raw))?;
    let actor = Actor::key(&caller);
    keys::delete(&state, &caller.workspace_id, actor, Some(&caller.id), id).await?;
    Ok(HttpResponse::NoContent().finish())
}
