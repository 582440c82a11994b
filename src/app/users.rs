//! Admin UI users: made (UI, setup link or CLI), listed, removed, given a role or a new
//! password — each audited — and the signed-in user behind a session cookie.

use super::{AppState, blocking};
use crate::domain::access::Workspace;
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::ids::{UserId, WorkspaceId};
use crate::domain::time::now_ms;
use crate::domain::user::{Session, User, UserRole, check_password, normalize_username};
use crate::error::AppError;
use crate::security::passwords::{hash_password, verify_against_dummy, verify_password};
use crate::store::{Store, StoreError, UserChange};

/// Creates a user (UI, setup link or CLI): checks the name and password, hashes it, stores
/// it with its audit entry. `by` is who made it (`None`: the setup link or the CLI). Blocking:
/// Argon2id takes real CPU time.
pub fn new_user(
    store: &Store,
    workspace: &WorkspaceId,
    username: &str,
    role: UserRole,
    password: &str,
    by: Option<Actor>,
    first_admin: bool,
) -> Result<User, String> {
    make_user(
        store,
        workspace,
        username,
        role,
        password,
        by,
        first_admin,
        false,
    )
}

/// A group admin (`tidings user add --group-admin`): an admin of every workspace, made in
/// the Default one.
pub fn new_group_admin(store: &Store, username: &str, password: &str) -> Result<User, String> {
    let home = store.default_workspace().clone();
    make_user(
        store,
        &home,
        username,
        UserRole::Admin,
        password,
        None,
        false,
        true,
    )
}

#[allow(clippy::too_many_arguments)]
fn make_user(
    store: &Store,
    workspace: &WorkspaceId,
    username: &str,
    role: UserRole,
    password: &str,
    by: Option<Actor>,
    first_admin: bool,
    group_admin: bool,
) -> Result<User, String> {
    let username = normalize_username(username).map_err(|e| format!("username: {e}"))?;
    check_password(password).map_err(|e| format!("password {e}"))?;
    let now = now_ms();
    let user = User {
        alert_email: None,
        id: UserId::generate(now),
        workspace_id: workspace.clone(),
        username,
        role,
        memberships: Vec::new(),
        group_admin,
        password_hash: hash_password(password)?,
        created_at: now,
    };
    let detail = match (&by, first_admin) {
        (None, false) if group_admin => {
            "group admin (every workspace) created with tidings user add --group-admin".to_owned()
        }
        (_, true) => "first admin, created with the one-time setup link".to_owned(),
        (None, false) => format!("{} user created with tidings user add", role.as_str()),
        (Some(_), false) => format!("{} user created in the admin UI", role.as_str()),
    };
    let actor = by.unwrap_or(if first_admin {
        Actor::System
    } else {
        Actor::Cli
    });
    let audit = AuditEntry::new(workspace, actor, "user.create", "user", user.id.as_str())
        .after(if group_admin {
            serde_json::json!({"username": user.username, "role": role, "group_admin": true})
        } else {
            serde_json::json!({"username": user.username, "role": role})
        })
        .detail(detail);
    store
        .insert_user(user, first_admin, audit)
        .map_err(|e| e.to_string())
}

/// `new_user` for a request handler, off the async threads. The outer error is internal; the
/// inner one says why the name or password was refused.
pub async fn create(
    state: &AppState,
    workspace: WorkspaceId,
    username: String,
    role: UserRole,
    password: String,
    by: Option<Actor>,
    first_admin: bool,
) -> Result<Result<User, String>, AppError> {
    let store = state.store.clone();
    blocking(move || {
        Ok::<_, AppError>(new_user(
            &store,
            &workspace,
            &username,
            role,
            &password,
            by,
            first_admin,
        ))
    })
    .await
}

/// The session a cookie names and its user, if both still exist. The role is read from the
/// user, not the session, so a change applies at once.
pub async fn signed_in(
    state: &AppState,
    cookie: String,
) -> Result<Option<(Session, User, Vec<Workspace>)>, AppError> {
    let store = state.store.clone();
    blocking(move || {
        let Some(session) = store.session(&cookie)? else {
            return Ok(None);
        };
        let Some(user) = store.user(&session.user_id)? else {
            return Ok(None);
        };
        let theirs = workspaces_of(&store, &user)?;
        Ok::<_, StoreError>(Some((session, user, theirs)))
    })
    .await
}

/// Gives a user a role in one more workspace (`None`: takes it away), audited in that
/// workspace; for `tidings user grant`. Their role in the workspace they were made in is
/// changed on the Users page instead.
pub fn grant(
    store: &Store,
    username: &str,
    workspace: &str,
    role: Option<UserRole>,
) -> Result<User, String> {
    let name = normalize_username(username).map_err(|e| format!("username: {e}"))?;
    let user = store
        .user_by_name(&name)
        .map_err(|e| e.to_string())?
        .ok_or_else(|| format!("no user named {name:?}"))?;
    let target = WorkspaceId::parse(workspace)
        .and_then(|id| store.workspace(&id).ok())
        .ok_or_else(|| format!("no workspace with id {workspace:?}"))?;
    if target.id == user.workspace_id {
        return Err(format!(
            "{name} was made in workspace {workspace}; change that role on its Users page"
        ));
    }
    set_membership(store, &user, &target.id, role, Actor::Cli).map_err(|e| e.to_string())
}

/// Stores `user`'s role in `workspace`, not the one they were made in (`None`: no longer a
/// member), audited there as `user.membership`; the store refuses if that leaves the
/// workspace with no admin.
fn set_membership(
    store: &Store,
    user: &User,
    workspace: &WorkspaceId,
    role: Option<UserRole>,
    actor: Actor,
) -> Result<User, StoreError> {
    let audit = AuditEntry::new(
        workspace,
        actor,
        "user.membership",
        "user",
        user.id.as_str(),
    )
    .after(serde_json::json!({"username": user.username, "role": role}));
    store.update_user(
        user.workspace_id.clone(),
        user.id.clone(),
        UserChange::Membership(workspace.clone(), role),
        audit,
    )
}

/// The Users page's "Add someone already on tidings": gives an existing user (by username)
/// a role in `workspace`, on behalf of `by`, an admin there. `by` may add only someone who
/// is a member of another workspace `by` administers (a group admin: anyone); anyone else
/// is "no user by that name", exactly as a name nobody has, so one practice's admin learns
/// nothing of another practice's people. Refused: a bad name (400), someone already a
/// member (409).
pub async fn add_member(
    state: &AppState,
    workspace: WorkspaceId,
    by: &User,
    username: String,
    role: UserRole,
) -> Result<User, AppError> {
    let name = normalize_username(&username)
        .map_err(|e| AppError::validation(format!("The username: {e}.")))?;
    let (store, by) = (state.store.clone(), by.clone());
    blocking(move || {
        let found = store.user_by_name(&name)?;
        let reachable = found.filter(|u| {
            by.group_admin
                || u.role_in(&workspace).is_some()
                || workspaces_of_user(u)
                    .iter()
                    .any(|w| by.role_in(w) == Some(UserRole::Admin))
        });
        let Some(user) = reachable else {
            return Err(AppError::validation(format!(
                "There is no user named {name:?} in a workspace you administer. To add \
                 someone from elsewhere in the group, ask a group admin (or use tidings user grant)."
            )));
        };
        if user.group_admin {
            return Err(AppError::conflict(format!(
                "The user {name} is a group admin: an admin of every workspace already."
            )));
        }
        if let Some(has) = user.role_in(&workspace) {
            return Err(AppError::conflict(format!(
                "The user {name} is already a member of this workspace, as {}; change their role in \
                 the list of people.",
                has.as_str()
            )));
        }
        Ok(set_membership(
            &store,
            &user,
            &workspace,
            Some(role),
            Actor::user(&by),
        )?)
    })
    .await
}

/// Takes a user's membership of `workspace` away (not the workspace they were made in:
/// removing them there removes the user), audited; never one's own, and never a
/// workspace's last admin (the store refuses).
pub async fn remove_member(
    state: &AppState,
    workspace: WorkspaceId,
    actor: Actor,
    me: &UserId,
    id: UserId,
) -> Result<User, AppError> {
    if &id == me {
        return Err(AppError::conflict(
            "You cannot take yourself out of this workspace; ask another admin.",
        ));
    }
    let store = state.store.clone();
    blocking(move || {
        let user = member(&store, &workspace, &id)?;
        if user.workspace_id == workspace {
            return Err(AppError::conflict(format!(
                "The user {} was made in this workspace: remove the user instead.",
                user.username
            )));
        }
        Ok(set_membership(&store, &user, &workspace, None, actor)?)
    })
    .await
}

/// A member of `workspace` by id (404 otherwise), and not a group admin, whose role no
/// workspace's page changes.
fn member(store: &Store, workspace: &WorkspaceId, id: &UserId) -> Result<User, AppError> {
    let user = store
        .user(id)?
        .filter(|u| u.role_in(workspace).is_some())
        .ok_or_else(|| AppError::not_found("user", id.as_str()))?;
    if user.group_admin {
        return Err(AppError::conflict(format!(
            "The user {} is a group admin, an admin of every workspace; that is set with tidings user add.",
            user.username
        )));
    }
    Ok(user)
}

/// Every workspace `user` is a member of by name (their first and their memberships).
fn workspaces_of_user(user: &User) -> Vec<WorkspaceId> {
    std::iter::once(user.workspace_id.clone())
        .chain(user.memberships.iter().map(|m| m.workspace_id.clone()))
        .collect()
}

/// The workspaces a user may switch between, oldest first: every one for a group admin.
pub fn workspaces_of(store: &Store, user: &User) -> Result<Vec<Workspace>, StoreError> {
    Ok(store
        .workspaces()?
        .into_iter()
        .filter(|w| user.role_in(&w.id).is_some())
        .collect())
}

/// The session a cookie names, if it still exists.
pub async fn session(state: &AppState, cookie: String) -> Result<Option<Session>, AppError> {
    let store = state.store.clone();
    blocking(move || store.session(&cookie)).await
}

/// The workspace's users, by name.
pub async fn list(state: &AppState, workspace: WorkspaceId) -> Result<Vec<User>, AppError> {
    let store = state.store.clone();
    let mut users = blocking(move || store.users(&workspace)).await?;
    users.sort_by(|a, b| a.username.cmp(&b.username));
    Ok(users)
}

/// Removes a user (and every session of theirs); never oneself.
pub async fn delete(
    state: &AppState,
    workspace: WorkspaceId,
    actor: Actor,
    me: &UserId,
    id: UserId,
) -> Result<(), AppError> {
    if &id == me {
        return Err(AppError::conflict(
            "You cannot remove your own account; ask another admin.",
        ));
    }
    let audit = AuditEntry::new(&workspace, actor, "user.delete", "user", id.as_str());
    let store = state.store.clone();
    blocking(move || store.delete_user(workspace, id, audit)).await?;
    Ok(())
}

/// A user's new role in `workspace` (the one they were made in, or one they are a member
/// of); not one's own (an admin demoting themselves by mistake could lock the workspace out
/// of its admin pages), and never a workspace's last admin's (the store refuses).
pub async fn change_role(
    state: &AppState,
    workspace: WorkspaceId,
    actor: Actor,
    me: &UserId,
    id: UserId,
    role: UserRole,
) -> Result<(), AppError> {
    if &id == me {
        return Err(AppError::conflict(
            "You cannot change your own role; ask another admin.",
        ));
    }
    let store = state.store.clone();
    blocking(move || {
        let user = member(&store, &workspace, &id)?;
        let audit = AuditEntry::new(&workspace, actor, "user.role", "user", id.as_str())
            .after(serde_json::json!({"role": role}));
        let change = if user.workspace_id == workspace {
            UserChange::Role(role)
        } else {
            UserChange::Membership(workspace, Some(role))
        };
        store.update_user(user.workspace_id, id, change, audit)?;
        Ok::<_, AppError>(())
    })
    .await
}

/// Sets a new password for a user (a forgotten one, or one's own) and ends their sessions.
pub async fn set_password(
    state: &AppState,
    workspace: WorkspaceId,
    actor: Actor,
    id: UserId,
    password: String,
) -> Result<(), AppError> {
    check_password(&password)
        .map_err(|e| AppError::validation(format!("The new password {e}.")))?;
    let audit = AuditEntry::new(&workspace, actor, "user.password", "user", id.as_str())
        .detail("password set by an admin; the user's sessions were ended");
    let store = state.store.clone();
    // Argon2id takes real CPU time: off the async threads, like the store write.
    blocking(move || {
        let hash = hash_password(&password).map_err(AppError::validation)?;
        store
            .update_user(workspace, id, UserChange::PasswordHash(hash), audit)
            .map_err(AppError::from)
    })
    .await?;
    Ok(())
}

/// How long a sign-in lasts. A working day: staff sign in once in the morning.
pub const SESSION_MS: i64 = 12 * 3600 * 1000;

/// Failed sign-ins allowed per (username, address) in `LIMIT_WINDOW_MS`: keyed on both so one
/// attacker cannot lock a user out from everywhere, and one address cannot try a username
/// indefinitely. Counted by the store, so on several nodes the limit holds for them together.
pub const MAX_FAILURES: u32 = 5;
pub const LIMIT_WINDOW_MS: i64 = 15 * 60 * 1000;

/// How a sign-in went.
pub enum SignIn {
    Welcome(User),
    /// Wrong username or password (audited).
    Refused,
    /// This username has used up its failures from this address: wait this many seconds.
    Limited(i64),
}

/// Checks a username and password against the sign-in limit and the users; a failure is
/// counted and audited with the address it came from. Argon2 takes tens of milliseconds: off
/// the async threads, and a name that does not exist costs the same as a wrong password.
pub async fn sign_in(
    state: &AppState,
    username: String,
    password: String,
    from: Option<std::net::IpAddr>,
) -> Result<SignIn, AppError> {
    let store = state.store.clone();
    let lookup = username.clone();
    let key = format!(
        "{username}|{}",
        from.map_or_else(|| "-".to_owned(), |ip| ip.to_string())
    );
    let now = state.clock.now_ms();
    let outcome = blocking(move || -> Result<SignIn, StoreError> {
        if let Some((failures, start)) = store.sign_in_failures(&key, now, LIMIT_WINDOW_MS)?
            && failures >= MAX_FAILURES
        {
            return Ok(SignIn::Limited(
                (start + LIMIT_WINDOW_MS - now).div_euclid(1000) + 1,
            ));
        }
        let user = store.user_by_name(&lookup)?;
        let user = match user {
            Some(u) if verify_password(&password, &u.password_hash) => Some(u),
            Some(_) => None,
            None => {
                verify_against_dummy(&password);
                None
            }
        };
        if let Some(user) = user {
            store.clear_sign_in_failures(&key)?;
            return Ok(SignIn::Welcome(user));
        }
        store.note_sign_in_failure(&key, now, LIMIT_WINDOW_MS)?;
        Ok(SignIn::Refused)
    })
    .await?;
    if matches!(outcome, SignIn::Refused) {
        let audit = AuditEntry::new(
            state.store.default_workspace(),
            Actor::System,
            "user.login_failed",
            "user",
            &username,
        )
        .detail(format!(
            "wrong username or password for {username:?} from {}",
            from.map_or_else(|| "an unknown address".to_owned(), |ip| ip.to_string())
        ));
        state.store.audit(audit).await?;
    }
    Ok(outcome)
}

/// Stores a new session for `user` under `cookie` (audited as `action`) and returns it.
pub async fn start_session(
    state: &AppState,
    user: &User,
    action: &str,
    cookie: String,
    csrf: String,
) -> Result<Session, AppError> {
    let now = state.clock.now_ms();
    let session = Session {
        user_id: user.id.clone(),
        csrf,
        created_at: now,
        expires_at: now + SESSION_MS,
    };
    let audit = AuditEntry::new(
        &user.workspace_id,
        Actor::user(user),
        action,
        "user",
        user.id.as_str(),
    );
    let store = state.store.clone();
    let stored = session.clone();
    blocking(move || store.create_session(&cookie, stored, audit)).await?;
    Ok(session)
}

/// Ends the session behind `cookie` (signing out), audited.
pub async fn end_session(state: &AppState, user: &User, cookie: String) -> Result<(), AppError> {
    let audit = AuditEntry::new(
        &user.workspace_id,
        Actor::user(user),
        "user.logout",
        "user",
        user.id.as_str(),
    );
    let store = state.store.clone();
    blocking(move || store.delete_session(&cookie, Some(audit))).await?;
    Ok(())
}

/// How many users exist; none means the first-run setup link is live.
pub async fn count(state: &AppState) -> Result<u64, AppError> {
    let store = state.store.clone();
    blocking(move || store.user_count()).await
}

/// Opts an admin in to alert mail at `address`, or out (None or blank); audited. The address
/// must be one a mail server takes (`alerts.email.to` is checked the same way).
pub async fn set_alert_email(
    state: &AppState,
    workspace: WorkspaceId,
    actor: Actor,
    id: UserId,
    address: Option<String>,
) -> Result<User, AppError> {
    let address = address
        .map(|a| a.trim().to_owned())
        .filter(|a| !a.is_empty());
    if let Some(a) = &address {
        crate::alerts::smtp::mailbox(a)
            .map_err(|e| AppError::validation(format!("The alert mail address {e}.")))?;
    }
    let detail = if address.is_some() {
        "opted in to alert mail"
    } else {
        "opted out of alert mail"
    };
    let audit =
        AuditEntry::new(&workspace, actor, "user.alert_email", "user", id.as_str()).detail(detail);
    let store = state.store.clone();
    blocking(move || store.update_user(workspace, id, UserChange::AlertEmail(address), audit)).await
}
