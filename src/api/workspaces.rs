//! Workspaces (SPEC §14): `GET, POST /api/v1/workspaces`, for owner keys only. An owner key
//! acts inside one with the `Tidings-Workspace` header on the ordinary routes (api/mod.rs).

use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::openapi::Op;
use super::schemas::WorkspaceList;
use super::{JsonBody, OwnerKey, list_response};
use crate::app::{AppState, workspaces};
use crate::domain::access::Workspace;
use crate::domain::audit::Actor;
use crate::domain::time::to_rfc3339;
use crate::error::AppError;

pub fn routes() -> Vec<Op> {
    vec![Op::new(__path_list, list), Op::new(__path_create, create)]
}

/// A workspace: a tenant, with its own rules, keys, events, deliveries and audit log.
#[derive(Serialize, ToSchema)]
#[schema(as = Workspace)]
pub struct WorkspaceJson<'a> {
    #[schema(pattern = r"^wsp_[A-Za-z0-9]{1,64}$")]
    id: &'a str,
    name: &'a str,
    #[schema(format = DateTime)]
    created_at: String,
}

fn workspace_view(w: &Workspace) -> WorkspaceJson<'_> {
    WorkspaceJson {
        id: w.id.as_str(),
        name: &w.name,
        created_at: to_rfc3339(w.created_at),
    }
}

fn workspace_json(w: &Workspace) -> Value {
    serde_json::to_value(workspace_view(w)).expect("string-keyed structs serialize")
}

/// Every workspace, oldest first (Default first); one page.
#[utoipa::path(
    get,
    path = "/api/v1/workspaces",
    tag = "workspaces",
    responses(
        (status = 200, description = "every workspace, oldest first; one page", body = WorkspaceList),
        (status = 403, description = "not an owner key (`forbidden`)", body = ErrorBody),
    ),
    security(("api_key" = ["owner"])),
)]
async fn list(_: OwnerKey, state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let all = workspaces::list(&state).await?;
    Ok(list_response(
        &all.iter().map(workspace_json).collect::<Vec<_>>(),
        None,
    ))
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
struct CreateWorkspace {
    /// 1-100 characters, not only spaces (trimmed); unique, ignoring case.
    #[schema(value_type = String, required = true, min_length = 1, max_length = 100, pattern = r"\S")]
    name: Option<String>,
}

/// Create a workspace (audited in its own log).
#[utoipa::path(
    post,
    path = "/api/v1/workspaces",
    tag = "workspaces",
    request_body = CreateWorkspace,
    responses(
        (status = 201, description = "created", body = WorkspaceJson),
        (status = 403, description = "not an owner key (`forbidden`)", body = ErrorBody),
        (status = 409, description = "a workspace of that name exists (`conflict`)", body = ErrorBody),
    ),
    security(("api_key" = ["owner"])),
)]
async fn create(
    OwnerKey(caller): OwnerKey,
    JsonBody(body): JsonBody<CreateWorkspace>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let name = body.name.unwrap_or_default();
    let created = workspaces::create(&state, Actor::key(&caller), &name).await?;
    Ok(HttpResponse::Created().json(workspace_view(&created)))
}
