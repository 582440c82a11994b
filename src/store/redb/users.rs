//! Admin UI users and their sessions.

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::RedbStore;
use super::audit::append_audit;
use super::rows::{get, get_w, put, scan, scan_w};
use super::tables::{SESSIONS, USERS, USERS_BY_NAME, WORKSPACES};
use crate::domain::access::Workspace;
use crate::domain::audit::AuditEntry;
use crate::domain::ids::{UserId, WorkspaceId};
use crate::domain::user::{Session, User, last_admin_message, left_without_admin};
use crate::store::codec;
use crate::store::types::not_found;
use crate::store::{StoreError, UserChange, UserStore};

/// Sessions are looked up by the SHA-256 of the cookie value (see `Session`).
fn session_key(cookie: &str) -> String {
    crate::security::crypto::api_key_hash(cookie)
}

impl UserStore for RedbStore {
    fn user_count(&self) -> Result<u64, StoreError> {
        Ok(self.read()?.open_table(USERS)?.len()?)
    }

    fn users(&self, workspace: &WorkspaceId) -> Result<Vec<User>, StoreError> {
        let users: Vec<User> = scan(&self.read()?, USERS)?;
        Ok(users
            .into_iter()
            .filter(|u| u.role_in(workspace).is_some())
            .collect())
    }

    fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        get(&self.read()?, USERS, id.as_str())
    }

    fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        let txn = self.read()?;
        let id = txn
            .open_table(USERS_BY_NAME)?
            .get(username)?
            .map(|v| v.value().to_owned());
        match id {
            Some(id) => get(&txn, USERS, &id),
            None => Ok(None),
        }
    }

    /// Adds a user; a taken username is a conflict. With `only_if_none`, refuses unless no
    /// user exists yet, checked in the same transaction (first-run setup cannot run twice).
    fn insert_user(
        &self,
        user: User,
        only_if_none: bool,
        audit: AuditEntry,
    ) -> Result<User, StoreError> {
        self.writer.write(move |txn| {
            if only_if_none && txn.open_table(USERS)?.len()? > 0 {
                return Err(StoreError::Conflict(
                    "setup is already done: an admin exists; sign in instead".into(),
                ));
            }
            let mut by_name = txn.open_table(USERS_BY_NAME)?;
            if by_name.get(user.username.as_str())?.is_some() {
                return Err(StoreError::Conflict(format!(
                    "the username {:?} is taken",
                    user.username
                )));
            }
            by_name.insert(user.username.as_str(), user.id.as_str())?;
            drop(by_name);
            put(txn, USERS, user.id.as_str(), &user)?;
            append_audit(txn, &audit)?;
            Ok(user)
        })
    }

    /// Removes a user and every session they have. Refuses to remove a workspace's last
    /// admin, so the UI can never lock a workspace out.
    fn delete_user(
        &self,
        workspace: WorkspaceId,
        id: UserId,
        audit: AuditEntry,
    ) -> Result<User, StoreError> {
        self.writer.write(move |txn| {
            let user: User = get_w::<User>(txn, USERS, id.as_str())?
                .filter(|u| u.workspace_id == workspace)
                .ok_or_else(|| not_found("user", id.as_str()))?;
            refuse_last_admin(txn, &user, None)?;
            txn.open_table(USERS)?.remove(id.as_str())?;
            txn.open_table(USERS_BY_NAME)?
                .remove(user.username.as_str())?;
            end_sessions(txn, &user.id)?;
            append_audit(txn, &audit)?;
            Ok(user)
        })
    }

    /// Changes a user's role or password and signs them out everywhere, so the change holds
    /// from their next sign-in. Refuses to demote or take away a workspace's last admin.
    fn update_user(
        &self,
        workspace: WorkspaceId,
        id: UserId,
        change: UserChange,
        audit: AuditEntry,
    ) -> Result<User, StoreError> {
        self.writer.write(move |txn| {
            let mut user: User = get_w::<User>(txn, USERS, id.as_str())?
                .filter(|u| u.workspace_id == workspace)
                .ok_or_else(|| not_found("user", id.as_str()))?;
            let ends_sessions = !matches!(change, UserChange::AlertEmail(_));
            let guarded = matches!(change, UserChange::Role(_) | UserChange::Membership(..));
            let before = user.clone();
            match change {
                UserChange::AlertEmail(address) => user.alert_email = address,
                UserChange::Role(role) => user.role = role,
                UserChange::PasswordHash(hash) => user.password_hash = hash,
                UserChange::Membership(other, role) => user.set_membership(&other, role),
            }
            if guarded {
                refuse_last_admin(txn, &before, Some(&user))?;
            }
            put(txn, USERS, user.id.as_str(), &user)?;
            if ends_sessions {
                end_sessions(txn, &user.id)?;
            }
            append_audit(txn, &audit)?;
            Ok(user)
        })
    }

    /// Stores a new session under its cookie value's hash, dropping expired ones on the way
    /// (sign-ins are rare, so this keeps the table small without a sweeper thread).
    fn create_session(
        &self,
        cookie: &str,
        session: Session,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        let (key, clock) = (session_key(cookie), self.clock.clone());
        self.writer.write(move |txn| {
            let now = clock.now_ms();
            let mut table = txn.open_table(SESSIONS)?;
            table.retain(|_, v| {
                codec::decode::<Session>("sessions", v).is_ok_and(|s| s.expires_at > now)
            })?;
            drop(table);
            put(txn, SESSIONS, &key, &session)?;
            append_audit(txn, &audit)
        })
    }

    /// The live session a cookie names, if it has not expired.
    fn session(&self, cookie: &str) -> Result<Option<Session>, StoreError> {
        let session: Option<Session> = get(&self.read()?, SESSIONS, &session_key(cookie))?;
        Ok(session.filter(|s| s.expires_at > self.clock.now_ms()))
    }

    fn delete_session(&self, cookie: &str, audit: Option<AuditEntry>) -> Result<(), StoreError> {
        let key = session_key(cookie);
        self.writer.write(move |txn| {
            txn.open_table(SESSIONS)?.remove(key.as_str())?;
            match &audit {
                Some(a) => append_audit(txn, a),
                None => Ok(()),
            }
        })
    }

    fn sign_in_failures(
        &self,
        key: &str,
        now: i64,
        window_ms: i64,
    ) -> Result<Option<(u32, i64)>, StoreError> {
        Ok(self.sign_in_failures.get(key, now, window_ms))
    }

    fn note_sign_in_failure(&self, key: &str, now: i64, window_ms: i64) -> Result<(), StoreError> {
        self.sign_in_failures.note(key, now, window_ms);
        Ok(())
    }

    fn clear_sign_in_failures(&self, key: &str) -> Result<(), StoreError> {
        self.sign_in_failures.clear(key);
        Ok(())
    }
}

/// A conflict if `before` becoming `after` (`None`: removed) leaves a workspace with no
/// admin (see `left_without_admin`). Inside the write transaction, so it holds for the
/// writes that follow.
fn refuse_last_admin(
    txn: &WriteTransaction,
    before: &User,
    after: Option<&User>,
) -> Result<(), StoreError> {
    let all: Vec<User> = scan_w(txn, USERS)?;
    let workspaces: Vec<Workspace> = scan_w(txn, WORKSPACES)?;
    match left_without_admin(&workspaces, before, after, &all) {
        Some(w) => Err(StoreError::Conflict(last_admin_message(w))),
        None => Ok(()),
    }
}

fn end_sessions(txn: &WriteTransaction, user: &UserId) -> Result<(), StoreError> {
    txn.open_table(SESSIONS)?
        .retain(|_, v| codec::decode::<Session>("sessions", v).is_ok_and(|s| &s.user_id != user))?;
    Ok(())
}
