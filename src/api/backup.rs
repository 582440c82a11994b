//! `POST /api/v1/backup`: an online, consistent snapshot written next to the database, in
//! `DATA_DIR/backups/`, for `tidings backup` (or the operator) to copy away.

use std::os::unix::fs::DirBuilderExt;

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::AdminKey;
use super::error::ErrorBody;
use super::openapi::Op;
use crate::app::AppState;
use crate::app::blocking;
use crate::domain::access::Role;
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::time::{now_ms, to_rfc3339};
use crate::error::{AppError, Code};

pub fn routes() -> Vec<Op> {
    vec![Op::new(__path_create, create)]
}

/// Take an online, consistent snapshot into `DATA_DIR/backups/`.
#[utoipa::path(
    post,
    path = "/api/v1/backup",
    tag = "backup",
    responses(
        (status = 201, description = "the snapshot written", body = Backup),
        (status = 403, description = "an admin key while there are several workspaces: a backup holds them all (`forbidden`)", body = ErrorBody),
        (status = 409, description = "a master-key rotation is unfinished, or the store is PostgreSQL, which is backed up with pg_dump (`conflict`)", body = ErrorBody),
    ),
    security(("api_key" = ["admin", "owner"])),
)]
async fn create(
    AdminKey(key): AdminKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    // A snapshot holds every workspace: once there are several, only an owner takes one.
    if key.role != Role::Owner {
        let store = state.store.clone();
        let workspaces = blocking(move || store.workspaces()).await?.len();
        if workspaces > 1 {
            return Err(AppError::new(
                Code::Forbidden,
                format!(
                    "a backup holds all {workspaces} workspaces, so it takes an owner key (tidings key create --role owner)"
                ),
            ));
        }
    }
    let now = now_ms();
    let dir = state.config.data_dir.join("backups");
    let stamp = to_rfc3339(now).replace([':', '-'], "").replace('.', "_");
    let path = dir.join(format!(
        "tidings-{stamp}-{:04x}.redb",
        rand::random::<u16>()
    ));
    let store = state.store.clone();
    let target = path.clone();
    let rows = blocking(move || {
        // Owner-only, like the snapshots in it.
        std::fs::DirBuilder::new()
            .recursive(true)
            .mode(0o700)
            .create(&dir)
            .map_err(|e| AppError::internal(anyhow::anyhow!("creating {}: {e}", dir.display())))?;
        // Owner-only from creation, like the database (it holds PHI and sealed secrets), and
        // under its name only once complete.
        let rows = store.backup_to(&target)?;
        Ok::<_, AppError>(rows)
    })
    .await?;
    let bytes = std::fs::metadata(&path).map_or(0, |m| m.len());
    let audit = AuditEntry::new(
        &key.workspace_id,
        Actor::key(&key),
        "backup.create",
        "backup",
        &path.display().to_string(),
    )
    .detail(format!("{rows} rows, {bytes} bytes"));
    state.store.audit(audit).await?;
    Ok(HttpResponse::Created().json(Backup {
        path: &path,
        rows,
        bytes,
        created_at: to_rfc3339(now),
    }))
}

/// An online snapshot written into `DATA_DIR/backups/`.
#[derive(Serialize, ToSchema)]
pub struct Backup<'a> {
    /// Where the snapshot is, on the server.
    #[schema(value_type = String)]
    path: &'a std::path::Path,
    rows: u64,
    bytes: u64,
    #[schema(format = DateTime)]
    created_at: String,
}
