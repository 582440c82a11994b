//! Admin UI users and their sessions, shared by every node (a session made on one node is
//! valid on all).

use super::engine::PgTxn;

use super::audit::append_audit;
use super::{PgStore, decode};
use crate::domain::access::Workspace;
use crate::domain::audit::AuditEntry;
use crate::domain::ids::{UserId, WorkspaceId};
use crate::domain::user::{Session, User, last_admin_message, left_without_admin};
use crate::store::codec::encode_str;
use crate::store::types::not_found;
use crate::store::{StoreError, UserChange, UserStore};

/// Sessions are looked up by the SHA-256 of the cookie value (see `Session`).
fn session_key(cookie: &str) -> String {
    crate::security::crypto::api_key_hash(cookie)
}

fn put_user(txn: &mut PgTxn, user: &User) -> Result<(), StoreError> {
    txn.execute(
        "UPDATE users SET role = $2, row = $3::text::json WHERE id = $1",
        &[&user.id.as_str(), &user.role.as_str(), &encode_str(user)],
    )?;
    Ok(())
}

fn user_for_update(
    txn: &mut PgTxn,
    workspace: &WorkspaceId,
    id: &UserId,
) -> Result<User, StoreError> {
    txn.query_opt(
        "SELECT row::text AS row FROM users WHERE id = $1 AND workspace_id = $2 FOR UPDATE",
        &[&id.as_str(), &workspace.as_str()],
    )?
    .map(|r| decode("users", &r))
    .transpose()?
    .ok_or_else(|| not_found("user", id.as_str()))
}

/// Locks every user row, in id order, before a change the last-admin guard checks: two nodes
/// cannot each take away one of a workspace's last two admins, and a fixed order cannot
/// deadlock (a clinic group has a handful of users).
fn lock_users(txn: &mut PgTxn) -> Result<(), StoreError> {
    txn.query("SELECT id FROM users ORDER BY id FOR UPDATE", &[])?;
    Ok(())
}

/// A conflict if `before` becoming `after` (`None`: removed) leaves a workspace with no
/// admin (see `left_without_admin`). The rows are locked (`lock_users`) beforehand.
fn refuse_last_admin(
    txn: &mut PgTxn,
    before: &User,
    after: Option<&User>,
) -> Result<(), StoreError> {
    let all = txn
        .query("SELECT row::text AS row FROM users", &[])?
        .iter()
        .map(|r| decode("users", r))
        .collect::<Result<Vec<User>, _>>()?;
    let workspaces = txn
        .query("SELECT row::text AS row FROM workspaces", &[])?
        .iter()
        .map(|r| decode("workspaces", r))
        .collect::<Result<Vec<Workspace>, _>>()?;
    match left_without_admin(&workspaces, before, after, &all) {
        Some(w) => Err(StoreError::Conflict(last_admin_message(w))),
        None => Ok(()),
    }
}

fn end_sessions(txn: &mut PgTxn, user: &UserId) -> Result<(), StoreError> {
    txn.execute("DELETE FROM sessions WHERE user_id = $1", &[&user.as_str()])?;
    Ok(())
}

impl UserStore for PgStore {
    fn user_count(&self) -> Result<u64, StoreError> {
        let n: i64 = self
            .conn()?
            .query_one("SELECT count(*) FROM users", &[])?
            .get(0);
        Ok(u64::try_from(n).unwrap_or(0))
    }

    /// Members are found in the rows (a clinic group has a handful of users), so a row of
    /// the shape before workspaces needs no migration.
    fn users(&self, workspace: &WorkspaceId) -> Result<Vec<User>, StoreError> {
        let rows = self
            .conn()?
            .query("SELECT row::text AS row FROM users ORDER BY id", &[])?;
        let mut members = Vec::new();
        for row in &rows {
            let user: User = decode("users", row)?;
            if user.role_in(workspace).is_some() {
                members.push(user);
            }
        }
        Ok(members)
    }

    fn user(&self, id: &UserId) -> Result<Option<User>, StoreError> {
        self.conn()?
            .query_opt(
                "SELECT row::text AS row FROM users WHERE id = $1",
                &[&id.as_str()],
            )?
            .map(|r| decode("users", &r))
            .transpose()
    }

    fn user_by_name(&self, username: &str) -> Result<Option<User>, StoreError> {
        self.conn()?
            .query_opt(
                "SELECT row::text AS row FROM users WHERE username = $1",
                &[&username],
            )?
            .map(|r| decode("users", &r))
            .transpose()
    }

    fn insert_user(
        &self,
        user: User,
        only_if_none: bool,
        audit: AuditEntry,
    ) -> Result<User, StoreError> {
        self.writer.write(move |txn| {
            if only_if_none {
                // Serialises first-run setups across nodes: the second sees the first's user.
                txn.execute("LOCK TABLE users IN SHARE ROW EXCLUSIVE MODE", &[])?;
                let any = txn.query_opt("SELECT 1 FROM users LIMIT 1", &[])?;
                if any.is_some() {
                    return Err(StoreError::Conflict(
                        "setup is already done: an admin exists; sign in instead".into(),
                    ));
                }
            }
            let inserted = txn.execute(
                "INSERT INTO users (id, username, workspace_id, role, row)
                 VALUES ($1, $2, $3, $4, $5::text::json) ON CONFLICT (username) DO NOTHING",
                &[
                    &user.id.as_str(),
                    &user.username,
                    &user.workspace_id.as_str(),
                    &user.role.as_str(),
                    &encode_str(&user),
                ],
            )?;
            if inserted == 0 {
                return Err(StoreError::Conflict(format!(
                    "the username {:?} is taken",
                    user.username
                )));
            }
            append_audit(txn, &audit)?;
            Ok(user)
        })
    }

    fn delete_user(
        &self,
        workspace: WorkspaceId,
        id: UserId,
        audit: AuditEntry,
    ) -> Result<User, StoreError> {
        self.writer.write(move |txn| {
            lock_users(txn)?;
            let user = user_for_update(txn, &workspace, &id)?;
            refuse_last_admin(txn, &user, None)?;
            txn.execute("DELETE FROM users WHERE id = $1", &[&id.as_str()])?;
            end_sessions(txn, &user.id)?;
            append_audit(txn, &audit)?;
            Ok(user)
        })
    }

    fn update_user(
        &self,
        workspace: WorkspaceId,
        id: UserId,
        change: UserChange,
        audit: AuditEntry,
    ) -> Result<User, StoreError> {
        self.writer.write(move |txn| {
            let guarded = matches!(change, UserChange::Role(_) | UserChange::Membership(..));
            if guarded {
                lock_users(txn)?;
            }
            let mut user = user_for_update(txn, &workspace, &id)?;
            // Where an admin gets alert mail is no reason to sign them out.
            let ends_sessions = !matches!(change, UserChange::AlertEmail(_));
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
            put_user(txn, &user)?;
            if ends_sessions {
                end_sessions(txn, &user.id)?;
            }
            append_audit(txn, &audit)?;
            Ok(user)
        })
    }

    fn create_session(
        &self,
        cookie: &str,
        session: Session,
        audit: AuditEntry,
    ) -> Result<(), StoreError> {
        let (key, clock) = (session_key(cookie), self.clock.clone());
        self.writer.write(move |txn| {
            txn.execute(
                "DELETE FROM sessions WHERE expires_at <= $1",
                &[&clock.now_ms()],
            )?;
            txn.execute(
                "INSERT INTO sessions (hash, user_id, expires_at, row) VALUES ($1, $2, $3, $4::text::json)",
                &[
                    &key,
                    &session.user_id.as_str(),
                    &session.expires_at,
                    &encode_str(&session),
                ],
            )?;
            append_audit(txn, &audit)
        })
    }

    fn session(&self, cookie: &str) -> Result<Option<Session>, StoreError> {
        let row = self.conn()?.query_opt(
            "SELECT row::text AS row FROM sessions WHERE hash = $1 AND expires_at > $2",
            &[&session_key(cookie), &self.clock.now_ms()],
        )?;
        row.map(|r| decode("sessions", &r)).transpose()
    }

    fn delete_session(&self, cookie: &str, audit: Option<AuditEntry>) -> Result<(), StoreError> {
        let key = session_key(cookie);
        self.writer.write(move |txn| {
            txn.execute("DELETE FROM sessions WHERE hash = $1", &[&key])?;
            match &audit {
                Some(a) => append_audit(txn, a),
                None => Ok(()),
            }
        })
    }

    /// A table every node counts in, so the limit holds for the nodes together.
    fn sign_in_failures(
        &self,
        key: &str,
        now: i64,
        window_ms: i64,
    ) -> Result<Option<(u32, i64)>, StoreError> {
        let row = self.conn()?.query_opt(
            "SELECT failures, window_start FROM sign_in_failures WHERE key = $1 AND window_start > $2",
            &[&key, &(now - window_ms)],
        )?;
        Ok(row.map(|r| (u32::try_from(r.get::<_, i32>(0)).unwrap_or(0), r.get(1))))
    }

    fn note_sign_in_failure(&self, key: &str, now: i64, window_ms: i64) -> Result<(), StoreError> {
        // One statement: two nodes counting at once both count.
        self.conn()?.execute(
            "INSERT INTO sign_in_failures (key, failures, window_start) VALUES ($1, 1, $2)
             ON CONFLICT (key) DO UPDATE SET
                 failures = CASE WHEN sign_in_failures.window_start <= $2 - $3 THEN 1
                                 ELSE sign_in_failures.failures + 1 END,
                 window_start = CASE WHEN sign_in_failures.window_start <= $2 - $3 THEN $2
                                     ELSE sign_in_failures.window_start END",
            &[&key, &now, &window_ms],
        )?;
        Ok(())
    }

    fn clear_sign_in_failures(&self, key: &str) -> Result<(), StoreError> {
        self.conn()?
            .execute("DELETE FROM sign_in_failures WHERE key = $1", &[&key])?;
        Ok(())
    }
}
