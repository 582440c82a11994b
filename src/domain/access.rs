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
    /// Everything in every workspace, and the workspaces themselves (a clinic group's key).
    Owner,
}

impl Role {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "ingest" => Some(Self::Ingest),
            "admin" => Some(Self::Admin),
            "owner" => Some(Self::Owner),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Ingest => "ingest",
            Self::Admin => "admin",
            Self::Owner => "owner",
        }
    }
}

/// Longest workspace name, in characters.
pub const MAX_WORKSPACE_NAME: usize = 100;

/// A new workspace's name: 1-100 characters once trimmed, no control characters.
pub fn workspace_name(raw: &str) -> Result<String, String> {
    let name = raw.trim();
    if name.is_empty() {
        return Err("name is required (1-100 characters)".into());
    }
    if name.chars().count() > MAX_WORKSPACE_NAME {
        return Err(format!(
            "name is {} characters long; at most {MAX_WORKSPACE_NAME} are allowed",
            name.chars().count()
        ));
    }
    if name.chars().any(char::is_control) {
        return Err("name must not contain control characters".into());
    }
    Ok(name.to_owned())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roles_and_workspace_names() {
        for role in [Role::Ingest, Role::Admin, Role::Owner] {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
        assert_eq!(Role::parse("root"), None);
        assert_eq!(workspace_name("  North Clinic ").unwrap(), "North Clinic");
        assert!(workspace_name("   ").is_err());
        assert!(workspace_name(&"x".repeat(101)).is_err());
        assert!(workspace_name(&"x".repeat(100)).is_ok());
        assert!(workspace_name("a\nb").is_err());
    }
}
