//! The Users page across workspaces (SPEC §14), over HTTP: an admin adds someone already on
//! tidings to the chosen workspace, changes their role there and takes them out; they may add
//! only people of workspaces they administer (anyone else reads as an unknown name); every
//! refusal is shown at its form and changes nothing; the last-admin guard holds per
//! workspace.

use tidings::domain::ids::WorkspaceId;
use tidings::domain::user::{User, UserRole};

use crate::support::app::{TestApp, spawn_app};
use crate::support::ui::{Browser, PASSWORD, Page};
use crate::ui_workspaces::{workspace, ws_id};
use crate::workspaces::owner_key;

/// Default (anna, admin), North (nadia admin, nick editor), South (sven admin, sara
/// viewer), East (no one made there); nadia is an admin of Default too.
struct Clinics {
    default: WorkspaceId,
    north: WorkspaceId,
    south: WorkspaceId,
    east: WorkspaceId,
}

fn add(app: &TestApp, ws: &WorkspaceId, name: &str, role: UserRole) {
    tidings::app::users::new_user(app.store(), ws, name, role, PASSWORD, None, false).unwrap();
}

fn clinics(app: &TestApp) -> Clinics {
    let owner = owner_key(app);
    let c = Clinics {
        default: app.store().default_workspace().clone(),
        north: ws_id(&workspace(app, &owner, "North Clinic")),
        south: ws_id(&workspace(app, &owner, "South Clinic")),
        east: ws_id(&workspace(app, &owner, "East Clinic")),
    };
    add(app, &c.default, "anna", UserRole::Admin);
    add(app, &c.north, "nadia", UserRole::Admin);
    add(app, &c.north, "nick", UserRole::Editor);
    add(app, &c.south, "sven", UserRole::Admin);
    add(app, &c.south, "sara", UserRole::Viewer);
    let default = c.default.to_string();
    tidings::app::users::grant(app.store(), "nadia", &default, Some(UserRole::Admin)).unwrap();
    c
}

fn stored(app: &TestApp, name: &str) -> User {
    app.store().user_by_name(name).unwrap().unwrap()
}

fn names(app: &TestApp, ws: &WorkspaceId) -> Vec<String> {
    let mut n: Vec<String> = app
        .store()
        .users(ws)
        .unwrap()
        .into_iter()
        .map(|u| u.username)
        .collect();
    n.sort();
    n
}

fn audit_count(app: &TestApp, ws: &WorkspaceId, action: &str) -> usize {
    let (page, _) = app.store().audit_log(ws, None, 1000).unwrap();
    page.iter().filter(|e| e.action == action).count()
}

/// Signs `name` in and switches to `ws`.
fn signed_in_at(app: &TestApp, name: &str, ws: &WorkspaceId) -> Browser {
    let b = Browser::new(app);
    b.login(name, PASSWORD).assert_status(303);
    let switched = b.post("/workspace", &[("workspace_id", ws.as_str())]);
    switched.assert_status(303);
    b
}

fn error_at(page: &Page, id: &str) -> String {
    page.by_id(id)
        .unwrap_or_else(|| panic!("no #{id} on the page:\n{}", page.text))
        .replace("&quot;", "\"")
        .replace("&#34;", "\"")
}

#[test]
fn an_admin_adds_someone_of_their_other_workspace_changes_their_role_and_takes_them_out() {
    let app = spawn_app();
    let c = clinics(&app);
    let nadia = signed_in_at(&app, "nadia", &c.default);
    let page = nadia.get("/users");
    page.assert_status(200);
    assert!(page.text.contains("Add someone already on tidings"));

    // nick is North's, where nadia is an admin: she gives him a role in Default.
    let added = nadia.post(
        "/users/members",
        &[("username", " Nick "), ("role", "editor")],
    );
    added.assert_status(303);
    assert_eq!(added.location(), "/users?done=member");
    let page = nadia.get(added.location());
    assert!(
        page.text.contains("Added to this workspace"),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("(from another workspace)"),
        "{}",
        page.text
    );
    let nick = stored(&app, "nick");
    assert_eq!(nick.role_in(&c.default), Some(UserRole::Editor));
    assert_eq!(
        nick.role_in(&c.north),
        Some(UserRole::Editor),
        "North as it was"
    );
    assert_eq!(
        audit_count(&app, &c.default, "user.membership"),
        2,
        "the CLI's + hers"
    );
    let (log, _) = app.store().audit_log(&c.default, None, 1).unwrap();
    assert_eq!(log[0].action, "user.membership");
    assert!(
        format!("{:?}", log[0].actor).contains("nadia"),
        "{:?}",
        log[0]
    );
    // A member's password is set where they were made, not here.
    assert!(!page.text.contains(&format!("/users/{}/password", nick.id)));
    nadia
        .get(&format!("/users/{}/password", nick.id))
        .assert_status(404);
    // He finds Default in his switcher.
    let b = Browser::new(&app);
    b.login("nick", PASSWORD).assert_status(303);
    assert!(b.get("/rules").text.contains("workspace-switcher"));

    // Another role here leaves his North role alone.
    let changed = nadia.post(&format!("/users/{}/role", nick.id), &[("role", "viewer")]);
    changed.assert_status(303);
    let nick = stored(&app, "nick");
    assert_eq!(
        (nick.role_in(&c.default), nick.role_in(&c.north)),
        (Some(UserRole::Viewer), Some(UserRole::Editor))
    );

    // Taken out of Default, he is still North's editor.
    let out = nadia.post(&format!("/users/{}/membership/delete", nick.id), &[]);
    out.assert_status(303);
    assert_eq!(out.location(), "/users?done=unmember");
    let nick = stored(&app, "nick");
    assert_eq!(
        (nick.role_in(&c.default), nick.role_in(&c.north)),
        (None, Some(UserRole::Editor))
    );
    assert_eq!(names(&app, &c.default), ["anna", "nadia"]);
    assert_eq!(audit_count(&app, &c.default, "user.membership"), 3);
}

#[test]
fn refusals_are_shown_at_the_form_and_change_nothing() {
    let app = spawn_app();
    let c = clinics(&app);
    let nadia = signed_in_at(&app, "nadia", &c.default);
    nadia.get("/users").assert_status(200);
    let before = (
        names(&app, &c.default),
        audit_count(&app, &c.default, "user.membership"),
    );
    let unchanged = || {
        assert_eq!(
            (
                names(&app, &c.default),
                audit_count(&app, &c.default, "user.membership")
            ),
            before
        );
    };
    let member = |username: &str, role: &str| {
        nadia.post("/users/members", &[("username", username), ("role", role)])
    };

    // sara is South's, where nadia is no admin: she reads exactly as a name nobody has.
    let hidden = member("sara", "viewer");
    hidden.assert_status(400);
    let hidden_msg = error_at(&hidden, "member-error");
    assert!(
        hidden_msg.contains("There is no user named \"sara\" in a workspace you administer"),
        "{hidden_msg}"
    );
    let nobody = member("nobody", "viewer");
    nobody.assert_status(400);
    assert_eq!(
        error_at(&nobody, "member-error").replace("nobody", "sara"),
        hidden_msg,
        "an unreachable user and no user read the same"
    );
    assert!(
        hidden.text.contains("value=\"sara\""),
        "what was typed is kept"
    );
    assert_eq!(stored(&app, "sara").role_in(&c.default), None);
    unchanged();

    // Already a member (made here, or added before): 409 at the field.
    let again = member("anna", "editor");
    again.assert_status(409);
    assert!(
        error_at(&again, "member-error")
            .contains("The user anna is already a member of this workspace, as admin"),
        "{}",
        again.text
    );
    // A bad role, a malformed name: 400 at the field.
    let role = member("nick", "root");
    role.assert_status(400);
    assert!(error_at(&role, "member-error").contains("Choose a role"));
    let name = member("a b", "viewer");
    name.assert_status(400);
    assert!(error_at(&name, "member-error").contains("The username: use 1 to 64"));
    assert_eq!(stored(&app, "nick").role_in(&c.default), None);
    // Without the form's token: 403, nothing added.
    nadia
        .post_raw(
            "/users/members",
            &[("username", "nick"), ("role", "viewer")],
        )
        .assert_status(403);
    unchanged();

    // Taking out someone made here is removing the user: refused, they stay.
    let anna = stored(&app, "anna");
    let made_here = nadia.post(&format!("/users/{}/membership/delete", anna.id), &[]);
    made_here.assert_status(409);
    assert!(error_at(&made_here, "people-error").contains("was made in this workspace"));
    // Nor herself, nor a user of no workspace of hers.
    let me = stored(&app, "nadia");
    nadia
        .post(&format!("/users/{}/membership/delete", me.id), &[])
        .assert_status(409);
    let sven = stored(&app, "sven");
    nadia
        .post(&format!("/users/{}/membership/delete", sven.id), &[])
        .assert_status(404);
    nadia
        .post(&format!("/users/{}/role", sven.id), &[("role", "viewer")])
        .assert_status(404);
    assert_eq!(stored(&app, "sven").role, UserRole::Admin);
    unchanged();

    // A group admin is shown but changed on no workspace's page.
    tidings::app::users::new_group_admin(app.store(), "gina", PASSWORD).unwrap();
    let gina = stored(&app, "gina");
    let page = nadia.get("/users");
    assert!(
        page.text.contains("group admin: every workspace"),
        "{}",
        page.text
    );
    assert!(!page.text.contains(&format!("/users/{}/role", gina.id)));
    let refused = nadia.post(&format!("/users/{}/role", gina.id), &[("role", "viewer")]);
    refused.assert_status(409);
    assert!(error_at(&refused, "people-error").contains("The user gina is a group admin"));
    member("gina", "viewer").assert_status(409);
    assert!(stored(&app, "gina").group_admin);
}

#[test]
fn an_admin_grants_only_in_a_workspace_they_administer_and_a_group_admin_adds_anyone() {
    let app = spawn_app();
    let c = clinics(&app);
    // nick is an editor of North: its Users page, and so its grant, are not his.
    let nick = signed_in_at(&app, "nick", &c.north);
    nick.get("/users").assert_status(403);
    nick.post("/users/members", &[("username", "sara"), ("role", "admin")])
        .assert_status(403);
    // nadia administers North and Default, not South: she cannot switch there, and a
    // South cookie set by hand is ignored, so a grant lands where she is (North), not South.
    let nadia = signed_in_at(&app, "nadia", &c.north);
    nadia
        .post("/workspace", &[("workspace_id", c.south.as_str())])
        .assert_status(404);
    nadia.set_cookie("tidings_workspace", c.south.as_str());
    let page = nadia.get("/users");
    page.assert_status(200);
    assert!(!page.text.contains("sven"), "South's people are not shown");
    let hers = nadia.post(
        "/users/members",
        &[("username", "anna"), ("role", "viewer")],
    );
    hers.assert_status(303);
    assert_eq!(
        stored(&app, "anna").role_in(&c.north),
        Some(UserRole::Viewer)
    );
    assert_eq!(names(&app, &c.south), ["sara", "sven"]);
    assert_eq!(audit_count(&app, &c.south, "user.membership"), 0);

    // A group admin adds anyone, here sara to East, where nobody was made.
    tidings::app::users::new_group_admin(app.store(), "gina", PASSWORD).unwrap();
    let gina = signed_in_at(&app, "gina", &c.east);
    gina.post("/users/members", &[("username", "sara"), ("role", "admin")])
        .assert_status(303);
    let sara = stored(&app, "sara");
    assert_eq!(
        (sara.role_in(&c.east), sara.role_in(&c.south)),
        (Some(UserRole::Admin), Some(UserRole::Viewer))
    );
}

#[test]
fn removing_a_user_who_is_the_only_admin_of_another_workspace_is_refused() {
    let app = spawn_app();
    let c = clinics(&app);
    // olga is Default's editor and East's only admin.
    add(&app, &c.default, "olga", UserRole::Editor);
    let east = c.east.to_string();
    tidings::app::users::grant(app.store(), "olga", &east, Some(UserRole::Admin)).unwrap();
    let olga = stored(&app, "olga");
    let anna = signed_in_at(&app, "anna", &c.default);
    anna.get("/users").assert_status(200);
    let refused = anna.post(&format!("/users/{}/delete", olga.id), &[]);
    refused.assert_status(409);
    let message = error_at(&refused, "people-error");
    assert!(
        message.contains("This is the only admin of workspace \"East Clinic\""),
        "{message}"
    );
    assert!(stored(&app, "olga").role_in(&c.east) == Some(UserRole::Admin));
    // Once a group admin exists, East has an admin besides her, and she may go.
    let gina_made = tidings::app::users::new_group_admin(app.store(), "gina", PASSWORD).unwrap();
    anna.post(&format!("/users/{}/delete", olga.id), &[])
        .assert_status(303);
    assert!(app.store().user_by_name("olga").unwrap().is_none());
    assert!(app.store().user(&gina_made.id).unwrap().is_some());
}
