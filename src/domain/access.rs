//! Workspaces and API keys: who may do what, in which tenant.

use serde::{Deserialize, Serialize};

use super::ids::{ApiKeyId, WorkspaceId};

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Workspace {
    pub id: WorkspaceId,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// May post events, nothing else: what source systems get.
    Ingest,
    /// Everything in its workspace.
    Admin,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ingest" => Some(Self::Ingest),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Admin => "admin",
        }
    }
}

/// A stored API key: only the SHA-256 of the key itself is kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiKey {
    pub id: ApiKeyId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub role: Role,
    pub hash: String,
    /// First characters of the key, so admins can recognise it in lists.
    pub prefix: String,
    pub created_at: i64,
}
