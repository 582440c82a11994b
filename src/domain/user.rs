//! People who sign in to the admin UI: their roles, and their sessions.

use serde::{Deserialize, Serialize};

use super::ids::{UserId, WorkspaceId};

/// What a person may do in the admin UI. Ordered: each role may do all the one before may.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum UserRole {
    /// Sees everything a page shows; changes nothing.
    Viewer,
    /// Also creates, edits, tests and re-sends rules and their deliveries.
    Editor,
    /// Also manages users and API keys, and sees settings and the audit log.
    Admin,
}

impl UserRole {
    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "viewer" => Some(Self::Viewer),
            "editor" => Some(Self::Editor),
            "admin" => Some(Self::Admin),
            _ => None,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Viewer => "viewer",
            Self::Editor => "editor",
            Self::Admin => "admin",
        }
    }
}

/// A stored user: only the Argon2id hash of the password is kept (a PHC string).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    pub workspace_id: WorkspaceId,
    pub username: String,
    pub role: UserRole,
    pub password_hash: String,
    pub created_at: i64,
    /// Where this admin gets alert mail, if they opted in on their account page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_email: Option<String>,
}

/// A signed-in browser. Stored under the SHA-256 of its cookie value, so a copy of the
/// database does not hand out live sessions.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Session {
    pub user_id: UserId,
    /// The token every form of this session must carry back.
    pub csrf: String,
    pub created_at: i64,
    pub expires_at: i64,
}

/// Checks a new username: 1–64 characters of letters, digits and `._@-`, stored lower-case
/// so `Anna` and `anna` cannot be two people.
pub fn normalize_username(raw: &str) -> Result<String, String> {
    let name = raw.trim().to_lowercase();
    let ok = !name.is_empty()
        && name.chars().count() <= 64
        && name
            .chars()
            .all(|c| c.is_alphanumeric() || matches!(c, '.' | '_' | '@' | '-'));
    if ok {
        Ok(name)
    } else {
        Err("use 1 to 64 letters, digits, dots, dashes, underscores or @".into())
    }
}

/// Shortest password accepted. Long passphrases beat complexity rules, so length is the only
/// requirement (as NIST SP 800-63B advises); 12 because these accounts can read PHI.
pub const MIN_PASSWORD_CHARS: usize = 12;

pub fn check_password(password: &str) -> Result<(), String> {
    if password.chars().count() < MIN_PASSWORD_CHARS {
        return Err(format!(
            "must be at least {MIN_PASSWORD_CHARS} characters (a few words make a good one)"
        ));
    }
    if password.len() > 1024 {
        return Err("must be at most 1024 bytes".into());
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn usernames_and_passwords() {
        assert_eq!(normalize_username(" Anna.B ").unwrap(), "anna.b");
        assert!(normalize_username("").is_err());
        assert!(normalize_username("a b").is_err());
        assert!(normalize_username("<script>").is_err());
        assert!(check_password("short").is_err());
        assert!(check_password("correct horse battery").is_ok());
        assert!(UserRole::Admin > UserRole::Editor && UserRole::Editor > UserRole::Viewer);
        assert_eq!(UserRole::parse("editor"), Some(UserRole::Editor));
        assert_eq!(UserRole::parse("root"), None);
    }
}
