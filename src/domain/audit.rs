//! The audit log: who did what, to what, and when — with before/after for rule changes. It is
//! append-only: the API lists it and nothing edits it.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::access::ApiKey;
use super::ids::{AuditId, WorkspaceId};
use super::time::now_ms;
use super::user::User;

/// Who acted: an API key, the command line, or tidings itself (a 410, `alerts.disable_after`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Actor {
    ApiKey {
        id: String,
        name: String,
    },
    /// A person signed in to the admin UI.
    User {
        id: String,
        name: String,
    },
    Cli,
    System,
}

impl Actor {
    pub fn key(key: &ApiKey) -> Self {
        Self::ApiKey {
            id: key.id.to_string(),
            name: key.name.clone(),
        }
    }

    pub fn user(user: &User) -> Self {
        Self::User {
            id: user.id.to_string(),
            name: user.username.clone(),
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AuditEntry {
    pub id: AuditId,
    pub workspace_id: WorkspaceId,
    pub at: i64,
    pub actor: Actor,
    /// What happened, e.g. `rule.update`, `rule.secret.view`, `api_key.create`.
    pub action: String,
    pub target_type: String,
    pub target_id: String,
    pub before: Option<Value>,
    pub after: Option<Value>,
    pub detail: Option<String>,
}

impl AuditEntry {
    pub fn new(
        workspace_id: &WorkspaceId,
        actor: Actor,
        action: &str,
        target_type: &str,
        target_id: &str,
    ) -> Self {
        let at = now_ms();
        Self {
            id: AuditId::generate(at),
            workspace_id: workspace_id.clone(),
            at,
            actor,
            action: action.to_owned(),
            target_type: target_type.to_owned(),
            target_id: target_id.to_owned(),
            before: None,
            after: None,
            detail: None,
        }
    }

    #[must_use]
    pub fn before(mut self, v: Value) -> Self {
        self.before = Some(v);
        self
    }

    #[must_use]
    pub fn after(mut self, v: Value) -> Self {
        self.after = Some(v);
        self
    }

    #[must_use]
    pub fn detail(mut self, d: impl Into<String>) -> Self {
        self.detail = Some(d.into());
        self
    }
}
