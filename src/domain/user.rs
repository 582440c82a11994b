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

/// A user's role in one more workspace than the one they were made in.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Membership {
    pub workspace_id: WorkspaceId,
    pub role: UserRole,
}

/// A stored user: only the Argon2id hash of the password is kept (a PHC string). A user is a
/// member of the workspace they were made in (`workspace_id`, with `role`) and of each of
/// `memberships`; a group admin is an admin of every workspace. A row stored before
/// workspaces had neither field, and reads as a member of its one workspace.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct User {
    pub id: UserId,
    /// The workspace the user was made in.
    pub workspace_id: WorkspaceId,
    pub username: String,
    /// Their role in `workspace_id`.
    pub role: UserRole,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memberships: Vec<Membership>,
    /// Admin of every workspace, present and future (`tidings user add --group-admin`).
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub group_admin: bool,
    pub password_hash: String,
    pub created_at: i64,
    /// Where this admin gets alert mail, if they opted in on their account page.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub alert_email: Option<String>,
}

impl User {
    /// What this user may do in `workspace`; `None` if they are no member of it.
    pub fn role_in(&self, workspace: &WorkspaceId) -> Option<UserRole> {
        if self.group_admin {
            return Some(UserRole::Admin);
        }
        if &self.workspace_id == workspace {
            return Some(self.role);
        }
        self.memberships
            .iter()
            .find(|m| &m.workspace_id == workspace)
            .map(|m| m.role)
    }

    /// Gives (`Some`) or takes away (`None`) a role in a workspace other than their first.
    pub fn set_membership(&mut self, workspace: &WorkspaceId, role: Option<UserRole>) {
        self.memberships.retain(|m| &m.workspace_id != workspace);
        if let Some(role) = role {
            self.memberships.push(Membership {
                workspace_id: workspace.clone(),
                role,
            });
        }
    }
}

/// The first of `workspaces` that `before` is an admin of and would leave with no admin by
/// becoming `after` (`None`: removed), counting every user in `all` but `before` itself.
/// A group admin is an admin of every workspace, so while one exists no workspace is left
/// without an admin; a workspace that had none before (just made) is not this change's doing.
pub fn left_without_admin<'a>(
    workspaces: &'a [super::access::Workspace],
    before: &User,
    after: Option<&User>,
    all: &[User],
) -> Option<&'a super::access::Workspace> {
    let admin = |u: &User, w: &WorkspaceId| u.role_in(w) == Some(UserRole::Admin);
    workspaces.iter().find(|w| {
        admin(before, &w.id)
            && !after.is_some_and(|a| admin(a, &w.id))
            && !all.iter().any(|u| u.id != before.id && admin(u, &w.id))
    })
}

/// Why [`left_without_admin`] refuses a change, naming the workspace.
pub fn last_admin_message(workspace: &super::access::Workspace) -> String {
    format!(
        "this is the only admin of workspace {:?}; make another admin there first",
        workspace.name
    )
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

    #[test]
    fn a_user_of_the_old_shape_is_a_member_of_its_workspace_only() {
        let home = WorkspaceId::generate(1);
        let other = WorkspaceId::generate(2);
        let old = serde_json::json!({"id": UserId::generate(1), "workspace_id": home,
            "username": "anna", "role": "editor", "password_hash": "x", "created_at": 1});
        let mut user: User = serde_json::from_value(old).unwrap();
        assert_eq!(user.role_in(&home), Some(UserRole::Editor));
        assert_eq!(user.role_in(&other), None);
        user.set_membership(&other, Some(UserRole::Viewer));
        assert_eq!(user.role_in(&other), Some(UserRole::Viewer));
        user.set_membership(&other, Some(UserRole::Admin));
        assert_eq!(user.memberships.len(), 1, "replaced, not added");
        user.set_membership(&other, None);
        assert_eq!(user.role_in(&other), None);
        assert!(
            !serde_json::to_string(&user)
                .unwrap()
                .contains("group_admin"),
            "the new fields are left out while empty, so the row keeps its shape"
        );
        user.group_admin = true;
        assert_eq!(user.role_in(&other), Some(UserRole::Admin));
    }

    #[test]
    fn each_workspace_keeps_an_admin_and_a_group_admin_counts_everywhere() {
        use crate::domain::access::Workspace;
        let ws = |n: i64| Workspace {
            id: WorkspaceId::generate(n),
            name: format!("w{n}"),
            created_at: n,
        };
        let (a, b) = (ws(1), ws(2));
        let person = |name: &str, home: &Workspace, role| User {
            id: UserId::generate(1),
            workspace_id: home.id.clone(),
            username: name.into(),
            role,
            memberships: Vec::new(),
            group_admin: false,
            password_hash: String::new(),
            created_at: 1,
            alert_email: None,
        };
        let all_ws = [a.clone(), b.clone()];
        let anna = person("anna", &a, UserRole::Admin);
        let mut ben = person("ben", &b, UserRole::Admin);
        ben.set_membership(&a.id, Some(UserRole::Admin));
        let all = [anna.clone(), ben.clone()];
        // Removing ben leaves b without an admin, though a keeps anna.
        assert_eq!(
            left_without_admin(&all_ws, &ben, None, &all).map(|w| &w.name),
            Some(&b.name)
        );
        let mut demoted = ben.clone();
        demoted.role = UserRole::Editor;
        assert!(left_without_admin(&all_ws, &ben, Some(&demoted), &all).is_some());
        let mut left_a = ben.clone();
        left_a.set_membership(&a.id, None);
        assert!(
            left_without_admin(&all_ws, &ben, Some(&left_a), &all).is_none(),
            "anna is a's"
        );
        // The user's own row among `all` does not count for them.
        assert!(left_without_admin(&all_ws, &anna, None, &all).is_none());
        let mut gina = person("gina", &a, UserRole::Admin);
        gina.group_admin = true;
        let with_gina = [anna.clone(), ben.clone(), gina.clone()];
        assert!(left_without_admin(&all_ws, &ben, None, &with_gina).is_none());
        assert_eq!(
            left_without_admin(&all_ws, &gina, None, &[gina.clone()]).map(|w| &w.name),
            Some(&a.name),
            "a group admin alone is the admin of every workspace"
        );
        let viewer = person("vic", &b, UserRole::Viewer);
        assert!(
            left_without_admin(&all_ws, &viewer, None, std::slice::from_ref(&viewer)).is_none()
        );
    }
}
