//! Contract cases for `KeyStore`, `UserStore` and `AuditStore`: workspaces, API keys by
//! token, users with the last-admin guard, sessions by the store's clock, the audit log.

use super::{
    START, assert_conflict, assert_not_found, audit, audit_actions, audit_at, block_on,
    other_workspace,
};
use crate::domain::access::{Role, Workspace};
use crate::domain::ids::{ApiKeyId, AuditId, UserId, WorkspaceId};
use crate::domain::time::Clock;
use crate::domain::user::{Session, User, UserRole};
use crate::store::{Store, StoreError, UserChange};

pub fn workspaces_start_with_the_default_one(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let default = store.workspace(&ws).unwrap();
    assert_eq!((default.id, default.name.as_str()), (ws.clone(), "Default"));
    assert_eq!(default.created_at, START, "created on the store's clock");
    assert_eq!(store.workspace_name(&ws).unwrap(), "Default");
    assert_eq!(
        store.workspace_name(&ws).unwrap(),
        "Default",
        "and again, from memory"
    );
    assert_not_found(store.workspace(&other_workspace()), "workspace");
    assert_not_found(store.workspace_name(&other_workspace()), "workspace");
}

pub fn workspaces_are_added_listed_and_named_once(store: &Store, _clock: &Clock) {
    let default = store.default_workspace().clone();
    let north = Workspace {
        id: WorkspaceId::generate(START + 1),
        name: "North Clinic".into(),
        created_at: START + 1,
    };
    let added =
        block_on(store.insert_workspace(north.clone(), audit(&north.id, "workspace.create")))
            .unwrap();
    assert_eq!(added.id, north.id);
    assert_eq!(store.workspace(&north.id).unwrap().name, "North Clinic");
    assert_eq!(store.workspace_name(&north.id).unwrap(), "North Clinic");
    let listed: Vec<(WorkspaceId, String)> = store
        .workspaces()
        .unwrap()
        .into_iter()
        .map(|w| (w.id, w.name))
        .collect();
    assert_eq!(
        listed,
        [
            (default.clone(), "Default".into()),
            (north.id.clone(), "North Clinic".into())
        ],
        "oldest first"
    );

    // The same name in other letters is taken, and the refusal writes nothing.
    let twin = Workspace {
        id: WorkspaceId::generate(START + 2),
        name: "north CLINIC".into(),
        created_at: START + 2,
    };
    assert_conflict(block_on(
        store.insert_workspace(twin.clone(), audit(&twin.id, "workspace.create")),
    ));
    assert_not_found(store.workspace(&twin.id), "workspace");
    assert!(audit_actions(store, &twin.id).is_empty());
    assert_eq!(store.workspaces().unwrap().len(), 2);
    assert_eq!(audit_actions(store, &north.id), ["workspace.create"]);
    assert!(audit_actions(store, &default).is_empty());
}

pub fn api_keys_are_found_by_token_until_deleted(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let (admin, admin_token) = crate::app::keys::mint(&ws, "admin", Role::Admin);
    let (ingest, ingest_token) = crate::app::keys::mint(&ws, "ingest", Role::Ingest);
    store
        .insert_api_key(admin.clone(), audit(&ws, "api_key.create"))
        .unwrap();
    block_on(store.insert_api_key_async(ingest.clone(), audit(&ws, "api_key.create"))).unwrap();

    let found = store.api_key_for_token(admin_token.expose()).unwrap();
    assert_eq!((found.id, found.role), (admin.id.clone(), Role::Admin));
    assert_eq!(
        store.api_key_for_token(ingest_token.expose()).unwrap().id,
        ingest.id
    );
    assert!(store.api_key_for_token("tdg_not_a_key").is_none());
    let mut listed: Vec<ApiKeyId> = store
        .api_keys(&ws)
        .unwrap()
        .into_iter()
        .map(|k| k.id)
        .collect();
    listed.sort();
    let mut expected = vec![admin.id.clone(), ingest.id.clone()];
    expected.sort();
    assert_eq!(listed, expected);
    assert!(store.api_keys(&other_workspace()).unwrap().is_empty());

    // Another workspace cannot delete it.
    let other = other_workspace();
    assert_not_found(
        block_on(store.delete_api_key(other.clone(), admin.id.clone(), audit(&other, "x"))),
        "API key",
    );
    assert!(store.api_key_for_token(admin_token.expose()).is_some());

    block_on(store.delete_api_key(ws.clone(), admin.id.clone(), audit(&ws, "api_key.delete")))
        .unwrap();
    assert!(store.api_key_for_token(admin_token.expose()).is_none());
    assert_eq!(store.api_keys(&ws).unwrap().len(), 1);
    assert_not_found(
        block_on(store.delete_api_key(ws.clone(), admin.id, audit(&ws, "x"))),
        "API key",
    );
    let mut actions = audit_actions(store, &ws);
    actions.sort();
    assert_eq!(
        actions,
        ["api_key.create", "api_key.create", "api_key.delete"]
    );
}

fn user(ws: &WorkspaceId, name: &str, role: UserRole) -> User {
    User {
        id: UserId::generate(START),
        workspace_id: ws.clone(),
        username: name.into(),
        role,
        memberships: Vec::new(),
        group_admin: false,
        password_hash: format!("hash-of-{name}"),
        created_at: START,
        alert_email: None,
    }
}

pub fn users_insert_update_and_delete_with_last_admin_guard(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    assert_eq!(store.user_count().unwrap(), 0);
    let anna = user(&ws, "anna", UserRole::Admin);
    store
        .insert_user(anna.clone(), true, audit(&ws, "user.create"))
        .unwrap();
    assert_conflict(store.insert_user(user(&ws, "bob", UserRole::Admin), true, audit(&ws, "x")));
    let vera = user(&ws, "vera", UserRole::Editor);
    store
        .insert_user(vera.clone(), false, audit(&ws, "user.create"))
        .unwrap();
    assert_conflict(store.insert_user(user(&ws, "vera", UserRole::Viewer), false, audit(&ws, "x")));
    assert_eq!(store.user_count().unwrap(), 2);
    assert_eq!(store.user_by_name("vera").unwrap().unwrap().id, vera.id);
    assert!(store.user_by_name("bob").unwrap().is_none());
    assert_eq!(store.user(&anna.id).unwrap().unwrap().username, "anna");
    assert!(store.user(&UserId::generate(START)).unwrap().is_none());
    assert_eq!(store.users(&ws).unwrap().len(), 2);
    assert!(store.users(&other_workspace()).unwrap().is_empty());

    let change =
        |id: &UserId, c| store.update_user(ws.clone(), id.clone(), c, audit(&ws, "user.update"));
    assert_conflict(change(&anna.id, UserChange::Role(UserRole::Viewer)));
    assert_eq!(
        change(&vera.id, UserChange::Role(UserRole::Admin))
            .unwrap()
            .role,
        UserRole::Admin
    );
    let renamed = change(&vera.id, UserChange::PasswordHash("new-hash".into())).unwrap();
    assert_eq!(
        store.user(&vera.id).unwrap().unwrap().password_hash,
        "new-hash"
    );
    assert_eq!(renamed.role, UserRole::Admin);
    // Two admins now: either may go, but not both.
    assert_eq!(
        change(&anna.id, UserChange::Role(UserRole::Editor))
            .unwrap()
            .role,
        UserRole::Editor
    );
    assert_conflict(store.delete_user(ws.clone(), vera.id.clone(), audit(&ws, "x")));

    let other = other_workspace();
    assert_not_found(
        store.delete_user(other.clone(), anna.id.clone(), audit(&other, "x")),
        "user",
    );
    assert_not_found(
        store.update_user(
            other.clone(),
            anna.id.clone(),
            UserChange::Role(UserRole::Viewer),
            audit(&other, "x"),
        ),
        "user",
    );
    let gone = store
        .delete_user(ws.clone(), anna.id.clone(), audit(&ws, "user.delete"))
        .unwrap();
    assert_eq!(gone.username, "anna");
    assert!(store.user_by_name("anna").unwrap().is_none());
    assert_eq!(store.user_count().unwrap(), 1);
    // The name is free again.
    store
        .insert_user(
            user(&ws, "anna", UserRole::Viewer),
            false,
            audit(&ws, "user.create"),
        )
        .unwrap();
}

pub fn sign_in_failures_count_per_key_in_windows(store: &Store, _clock: &Clock) {
    const WINDOW: i64 = 900_000;
    let key = "anna|10.0.0.1";
    assert_eq!(store.sign_in_failures(key, START, WINDOW).unwrap(), None);
    for i in 0..3 {
        store.note_sign_in_failure(key, START + i, WINDOW).unwrap();
    }
    assert_eq!(
        store.sign_in_failures(key, START + 10, WINDOW).unwrap(),
        Some((3, START)),
        "counted in the window the first failure opened"
    );
    assert_eq!(
        store
            .sign_in_failures("anna|10.0.0.2", START + 10, WINDOW)
            .unwrap(),
        None,
        "per key"
    );
    assert_eq!(
        store.sign_in_failures(key, START + WINDOW, WINDOW).unwrap(),
        None,
        "the window has closed"
    );
    store
        .note_sign_in_failure(key, START + WINDOW, WINDOW)
        .unwrap();
    assert_eq!(
        store
            .sign_in_failures(key, START + WINDOW + 1, WINDOW)
            .unwrap(),
        Some((1, START + WINDOW)),
        "a new window"
    );
    store.clear_sign_in_failures(key).unwrap();
    assert_eq!(
        store
            .sign_in_failures(key, START + WINDOW + 1, WINDOW)
            .unwrap(),
        None
    );
}

pub fn sessions_live_until_they_expire_or_end(store: &Store, clock: &Clock) {
    let ws = store.default_workspace().clone();
    let anna = user(&ws, "anna", UserRole::Admin);
    store
        .insert_user(anna.clone(), false, audit(&ws, "user.create"))
        .unwrap();
    let session = |expires_at| Session {
        user_id: anna.id.clone(),
        csrf: "csrf-token".into(),
        created_at: START,
        expires_at,
    };
    store
        .create_session(
            "cookie-1",
            session(START + 1_000),
            audit(&ws, "session.create"),
        )
        .unwrap();
    let live = store.session("cookie-1").unwrap().unwrap();
    assert_eq!(
        (live.user_id, live.csrf.as_str()),
        (anna.id.clone(), "csrf-token")
    );
    assert!(store.session("cookie-2").unwrap().is_none());
    clock.set(START + 1_000);
    assert!(
        store.session("cookie-1").unwrap().is_none(),
        "expired by the store's clock"
    );
    clock.set(START);
    assert!(store.session("cookie-1").unwrap().is_some());

    store.delete_session("cookie-1", None).unwrap();
    assert!(store.session("cookie-1").unwrap().is_none());

    // Changing a user ends their sessions.
    store
        .create_session(
            "cookie-3",
            session(START + 60_000),
            audit(&ws, "session.create"),
        )
        .unwrap();
    store
        .update_user(
            ws.clone(),
            anna.id.clone(),
            UserChange::PasswordHash("h2".into()),
            audit(&ws, "user.update"),
        )
        .unwrap();
    assert!(store.session("cookie-3").unwrap().is_none());
    store
        .delete_session("cookie-3", Some(audit(&ws, "session.delete")))
        .unwrap();
    assert!(audit_actions(store, &ws).contains(&"session.delete".to_owned()));
}

pub fn audit_log_pages_newest_first_per_workspace(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let other = other_workspace();
    for n in 0..5 {
        let entry = audit_at(&ws, &format!("action.{n}"), START + n);
        if n % 2 == 0 {
            block_on(store.audit(entry)).unwrap();
        } else {
            store.audit_now(entry).unwrap();
        }
    }
    store
        .audit_now(audit_at(&other, "theirs", START + 2))
        .unwrap();
    let page = |before: Option<&AuditId>| {
        let (entries, cursor) = store.audit_log(&ws, before, 2).unwrap();
        let actions: Vec<String> = entries.into_iter().map(|e| e.action).collect();
        (actions, cursor)
    };
    let (first, cursor) = page(None);
    assert_eq!(first, ["action.4", "action.3"]);
    let (second, cursor) = page(cursor.as_ref());
    assert_eq!(second, ["action.2", "action.1"]);
    let (third, cursor) = page(cursor.as_ref());
    assert_eq!((third, cursor), (vec!["action.0".to_owned()], None));
    assert_eq!(audit_actions(store, &other), ["theirs"]);
    let (entry, _) = store.audit_log(&ws, None, 1).unwrap();
    assert_eq!(entry[0].at, START + 4);
}

pub fn users_alert_email_is_set_and_cleared_keeping_sessions(store: &Store, _clock: &Clock) {
    let ws = store.default_workspace().clone();
    let anna = user(&ws, "anna", UserRole::Admin);
    store
        .insert_user(anna.clone(), false, audit(&ws, "user.create"))
        .unwrap();
    let session = Session {
        user_id: anna.id.clone(),
        csrf: "csrf-token".into(),
        created_at: START,
        expires_at: START + 60_000,
    };
    store
        .create_session("cookie-a", session, audit(&ws, "session.create"))
        .unwrap();
    let changed = store
        .update_user(
            ws.clone(),
            anna.id.clone(),
            UserChange::AlertEmail(Some("anna@clinic.example".into())),
            audit(&ws, "user.alert_email"),
        )
        .unwrap();
    assert_eq!(changed.alert_email.as_deref(), Some("anna@clinic.example"));
    let stored = store.user(&anna.id).unwrap().unwrap();
    assert_eq!(stored.alert_email.as_deref(), Some("anna@clinic.example"));
    assert!(
        store.session("cookie-a").unwrap().is_some(),
        "opting in to mail does not sign anyone out"
    );
    store
        .update_user(
            ws.clone(),
            anna.id.clone(),
            UserChange::AlertEmail(None),
            audit(&ws, "user.alert_email"),
        )
        .unwrap();
    assert_eq!(store.user(&anna.id).unwrap().unwrap().alert_email, None);
    assert_access_other_workspace_refused(store, &anna.id);
}

fn assert_access_other_workspace_refused(store: &Store, id: &UserId) {
    let other = other_workspace();
    let err = store
        .update_user(
            other.clone(),
            id.clone(),
            UserChange::AlertEmail(Some("x@clinic.example".into())),
            audit(&other, "user.alert_email"),
        )
        .unwrap_err();
    assert!(matches!(err, StoreError::NotFound { .. }), "{err:?}");
}

/// The last-admin guard counts per workspace: each keeps an admin of its own (a member's
/// admin role there counts, and a group admin counts everywhere), whatever other
/// workspaces have; a refusal names the workspace and changes nothing.
pub fn users_keep_an_admin_in_every_workspace(store: &Store, _clock: &Clock) {
    let home = store.default_workspace().clone();
    let north = Workspace {
        id: WorkspaceId::generate(START + 1),
        name: "North Clinic".into(),
        created_at: START + 1,
    };
    block_on(store.insert_workspace(north.clone(), audit(&north.id, "workspace.create"))).unwrap();
    let n = north.id.clone();
    let insert = |u: &User| {
        store
            .insert_user(u.clone(), false, audit(&u.workspace_id, "user.create"))
            .unwrap();
    };
    let change = |u: &User, c: UserChange| {
        store.update_user(u.workspace_id.clone(), u.id.clone(), c, audit(&n, "user.x"))
    };
    let refused = |r: Result<User, StoreError>, name: &str| match r {
        Err(StoreError::Conflict(m)) => {
            assert!(m.contains(name) && m.contains("only admin"), "{m}");
        }
        other => panic!("expected a conflict naming {name}, got {other:?}"),
    };
    // anna: admin of Default. ben: admin of North, where he was made, and of Default too.
    let anna = user(&home, "anna", UserRole::Admin);
    let ben = user(&n, "ben", UserRole::Admin);
    insert(&anna);
    insert(&ben);
    change(
        &ben,
        UserChange::Membership(home.clone(), Some(UserRole::Admin)),
    )
    .unwrap();

    // Two admins in all, but North has one: he is not demoted, nor removed.
    refused(
        change(&ben, UserChange::Role(UserRole::Editor)),
        "North Clinic",
    );
    refused(
        store.delete_user(n.clone(), ben.id.clone(), audit(&n, "x")),
        "North Clinic",
    );
    let kept = store.user(&ben.id).unwrap().unwrap();
    assert_eq!(
        (kept.role, kept.role_in(&home)),
        (UserRole::Admin, Some(UserRole::Admin))
    );
    // Default has two (anna, and ben as a member): either may go there, not both.
    change(&anna, UserChange::Role(UserRole::Editor)).unwrap();
    refused(
        change(
            &ben,
            UserChange::Membership(home.clone(), Some(UserRole::Viewer)),
        ),
        "Default",
    );
    refused(
        change(&ben, UserChange::Membership(home.clone(), None)),
        "Default",
    );
    assert_eq!(
        store.user(&ben.id).unwrap().unwrap().role_in(&home),
        Some(UserRole::Admin)
    );
    assert_eq!(store.users(&home).unwrap().len(), 2);

    // A group admin is an admin of every workspace: now ben may leave Default...
    let mut gina = user(&home, "gina", UserRole::Admin);
    gina.group_admin = true;
    insert(&gina);
    change(&ben, UserChange::Membership(home.clone(), None)).unwrap();
    assert_eq!(store.user(&ben.id).unwrap().unwrap().role_in(&home), None);
    // ...and step down in North; but then gina is the only admin of both, and stays.
    change(&ben, UserChange::Role(UserRole::Viewer)).unwrap();
    refused(
        store.delete_user(home.clone(), gina.id.clone(), audit(&home, "x")),
        "Default",
    );
    assert!(store.user(&gina.id).unwrap().is_some());

    // A workspace that never had an admin is no change's doing: nobody is held there.
    let south = Workspace {
        id: WorkspaceId::generate(START + 2),
        name: "South Clinic".into(),
        created_at: START + 2,
    };
    block_on(store.insert_workspace(south.clone(), audit(&south.id, "workspace.create"))).unwrap();
    change(&anna, UserChange::Role(UserRole::Admin)).unwrap();
    let sam = user(&south.id, "sam", UserRole::Editor);
    insert(&sam);
    store
        .delete_user(
            south.id.clone(),
            sam.id.clone(),
            audit(&south.id, "user.delete"),
        )
        .unwrap();
}
