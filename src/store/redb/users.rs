//! Admin UI users and their sessions.

use redb::{ReadableTable, ReadableTableMetadata, WriteTransaction};

use super::RedbStore;
use super::audit::append_audit;
use super::rows::{get, get_w, put, scan};
use super::tables::{SESSIONS, USERS, USERS_BY_NAME};
use crate::domain::audit::AuditEntry;
use crate::domain::ids::{UserId, WorkspaceId};
use crate::domain::user::{Session, User, UserRole};
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

    /// Removes a user and every session they have. Refuses to remove the last admin, so the
    /// UI can never lock everyone out.
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
            if user.role == UserRole::Admin {
                refuse_last_admin(txn)?;
            }
            txn.open_table(USERS)?.remove(id.as_str())?;
            txn.open_table(USERS_BY_NAME)?
                .remove(user.username.as_str())?;
            end_sessions(txn, &user.id)?;
            append_audit(txn, &audit)?;
            Ok(user)
        })
    }

    /// Changes a user's role or password and signs them out everywhere, so the change holds
    /// from their next sign-in. Refuses to demote the last admin.
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
            match change {
                UserChange::AlertEmail(address) => user.alert_email = address,
                UserChange::Role(role) => {
                    if user.role == UserRole::Admin && role != UserRole::Admin {
                        refuse_last_admin(txn)?;
                    }
                    user.role = role;
                }
                UserChange::PasswordHash(hash) => user.password_hash = hash,
                UserChange::Membership(other, role) => user.set_membership(&other, role),
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

/// A conflict unless another admin exists besides the one about to go.
fn refuse_last_admin(txn: &WriteTransaction) -> Result<(), StoreError> {
    let users = txn.open_table(USERS)?;
    let mut admins = 0;
    for entry in users.iter()? {
        let (_, v) = entry?;
        let u: User = codec::decode("users", v.value())?;
        admins += usize::from(u.role == UserRole::Admin);
    }
    if admins <= 1 {
        return Err(StoreError::Conflict(
            "this is the only admin; make another admin first".into(),
        ));
    }
    Ok(())
}

fn end_sessions(txn: &WriteTransaction, user: &UserId) -> Result<(), StoreError> {
    txn.open_table(SESSIONS)?
        .retain(|_, v| codec::decode::<Session>("sessions", v).is_ok_and(|s| &s.user_id != user))?;
    Ok(())
}
