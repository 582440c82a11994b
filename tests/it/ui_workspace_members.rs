//! The Users page's memberships (SPEC §14): an admin of a workspace adds someone already on
//! tidings (made in another workspace they administer) with a role here, changes that role
//! and takes them out again, over HTTP and in Chromium. Someone of a workspace the admin
//! does not administer reads as an unknown username; bad input is refused at the form and
//! changes nothing; each workspace keeps an admin (409 at the list of people).

use tidings::domain::ids::WorkspaceId;
use tidings::domain::user::{User, UserRole};

use crate::support::app::{TestApp, spawn_app};
use crate::support::ui::{Browser, PASSWORD};
use crate::support::webdriver::{Driver, available};
use crate::ui_workspaces::{workspace, ws_id};
use crate::workspaces::owner_key;

/// North and South. "ada" is an admin of North (made there) and of South; "sam" an admin of
/// South (made there); "ben" an editor of South; "olga" a viewer of Default, which ada is
/// no member of.
struct Clinics {
    north: WorkspaceId,
    south: WorkspaceId,
}

fn made(app: &TestApp, ws: &WorkspaceId, name: &str, role: UserRole) {
    tidings::app::users::new_user(app.store(), ws, name, role, PASSWORD, None, false).unwrap();
}

fn clinics(app: &TestApp) -> Clinics {
    let owner = owner_key(app);
    let north = ws_id(&workspace(app, &owner, "North Clinic"));
    let south = ws_id(&workspace(app, &owner, "South Clinic"));
    made(app, &north, "ada", UserRole::Admin);
    made(app, &south, "sam", UserRole::Admin);
    made(app, &south, "ben", UserRole::Editor);
    made(
        app,
        app.store().default_workspace(),
        "olga",
        UserRole::Viewer,
    );
    let south_raw = south.to_string();
    tidings::app::users::grant(app.store(), "ada", &south_raw, Some(UserRole::Admin)).unwrap();
    Clinics { north, south }
}

fn stored(app: &TestApp, name: &str) -> User {
    app.store().user_by_name(name).unwrap().unwrap()
}

/// How many `action` entries the audit log of `ws` holds.
fn audited(app: &TestApp, ws: &WorkspaceId, action: &str) -> usize {
    let (entries, _) = app.store().audit_log(ws, None, 200).unwrap();
    entries.iter().filter(|e| e.action == action).count()
}

fn add(b: &Browser, username: &str, role: &str) -> crate::support::ui::Page {
    b.get("/users").assert_status(200);
    b.post("/users/members", &[("username", username), ("role", role)])
}

#[test]
fn an_admin_adds_someone_of_their_other_workspace_changes_their_role_here_and_takes_them_out() {
    let app = spawn_app();
    let c = clinics(&app);
    let ada = Browser::new(&app);
    ada.login("ada", PASSWORD).assert_status(303);
    let page = ada.get("/users");
    assert!(page.text.contains("id=\"add-member\""), "{}", page.text);
    assert!(
        !page.text.contains("id=\"user-ben\""),
        "ben is South's, not yet North's"
    );

    // Refused at the form, the value kept, nothing changed: someone of a workspace ada does
    // not administer reads exactly as a name nobody has; a bad role; a bad name.
    let hidden = add(&ada, "olga", "viewer");
    hidden.assert_status(400);
    let nobody = add(&ada, "nobody", "viewer");
    nobody.assert_status(400);
    let (h, n) = (
        hidden.by_id("member-error").unwrap(),
        nobody.by_id("member-error").unwrap(),
    );
    assert!(h.contains("no user named"), "{h}");
    assert_eq!(
        h.replace("olga", "X"),
        n.replace("nobody", "X"),
        "olga is not revealed"
    );
    assert!(
        hidden.text.contains("value=\"olga\""),
        "what was typed stays"
    );
    let bad_role = add(&ada, "ben", "owner");
    bad_role.assert_status(400);
    assert!(
        bad_role
            .by_id("member-error")
            .unwrap()
            .contains("viewer, editor or admin"),
        "{}",
        bad_role.text
    );
    let bad_name = add(&ada, "  ", "viewer");
    bad_name.assert_status(400);
    assert!(bad_name.by_id("member-error").unwrap().contains("username"));
    // Already a member here: herself, and sam's South is not North (sam is unknown here).
    let herself = add(&ada, "ada", "viewer");
    herself.assert_status(409);
    assert!(
        herself
            .by_id("member-error")
            .unwrap()
            .contains("already a member")
    );
    // Without the session's CSRF token: refused.
    let forged = ada.post_raw("/users/members", &[("username", "ben"), ("role", "admin")]);
    assert_eq!(forged.status, 403, "{}", forged.text);
    assert!(stored(&app, "olga").memberships.is_empty());
    assert_eq!(stored(&app, "ben").role_in(&c.north), None);
    assert_eq!(audited(&app, &c.north, "user.membership"), 0);

    // ben, of South where ada is an admin too, becomes an editor of North.
    let done = add(&ada, "Ben", "editor");
    assert_eq!(done.status, 303, "{}", done.text);
    assert_eq!(done.location(), "/users?done=member");
    let ben = stored(&app, "ben");
    assert_eq!(ben.role_in(&c.north), Some(UserRole::Editor));
    assert_eq!(ben.role_in(&c.south), Some(UserRole::Editor));
    assert_eq!(audited(&app, &c.north, "user.membership"), 1);
    assert_eq!(
        audited(&app, &c.south, "user.membership"),
        1,
        "ada's own grant"
    );
    let page = ada.get("/users?done=member");
    let at = page.text.find("id=\"user-ben\"").expect("ben is listed");
    let row = &page.text[at..at + page.text[at..].find("</tr>").unwrap()];
    assert!(row.contains("from another workspace"), "{row}");
    assert!(!page.text.contains(&format!("id=\"password-{}\"", ben.id)));
    // His password is set in South, where he was made: not by North's admin.
    ada.get(&format!("/users/{}/password", ben.id))
        .assert_status(404);
    let again = add(&ada, "ben", "viewer");
    again.assert_status(409);
    assert!(
        again
            .by_id("member-error")
            .unwrap()
            .contains("already a member")
    );

    // ben signs in and finds North in his switcher, as an editor there.
    let b = Browser::new(&app);
    b.login("ben", PASSWORD).assert_status(303);
    assert!(b.get("/").text.contains("North Clinic"));

    // His role here changes here only; South keeps his editor role.
    ada.get("/users");
    let role = ada.post(&format!("/users/{}/role", ben.id), &[("role", "viewer")]);
    assert_eq!(role.status, 303, "{}", role.text);
    assert_eq!(role.location(), "/users?done=role");
    let ben = stored(&app, "ben");
    assert_eq!(ben.role_in(&c.north), Some(UserRole::Viewer));
    assert_eq!(ben.role_in(&c.south), Some(UserRole::Editor));
    // North's page cannot delete him (he was made in South), only take him out.
    ada.get("/users");
    ada.post(&format!("/users/{}/delete", ben.id), &[])
        .assert_status(404);
    let out = ada.post(&format!("/users/{}/membership/delete", ben.id), &[]);
    assert_eq!(out.status, 303, "{}", out.text);
    assert_eq!(out.location(), "/users?done=unmember");
    let ben = stored(&app, "ben");
    assert_eq!(ben.role_in(&c.north), None);
    assert_eq!(ben.role_in(&c.south), Some(UserRole::Editor));
    assert_eq!(audited(&app, &c.north, "user.membership"), 2);
    // A second time he is no member here: not found; and nobody takes out who was made here.
    ada.get("/users");
    ada.post(&format!("/users/{}/membership/delete", ben.id), &[])
        .assert_status(404);
    let me = stored(&app, "ada").id;
    ada.post(&format!("/users/{me}/membership/delete"), &[])
        .assert_status(409);
}

#[test]
fn only_an_admin_of_the_workspace_adds_members_and_a_group_admin_adds_anyone() {
    let app = spawn_app();
    let c = clinics(&app);
    // An editor of North cannot add anyone, not even someone of her own workspace.
    made(&app, &c.north, "eve", UserRole::Editor);
    let eve = Browser::new(&app);
    eve.login("eve", PASSWORD).assert_status(303);
    eve.get("/users").assert_status(403);
    eve.post("/users/members", &[("username", "ben"), ("role", "admin")])
        .assert_status(403);
    assert_eq!(stored(&app, "ben").role_in(&c.north), None);

    // sam is an admin of South only: North's people are unknown to him, and the cookie of a
    // workspace he is no member of does not take him there (he stays in South).
    let sam = Browser::new(&app);
    sam.login("sam", PASSWORD).assert_status(303);
    let unknown = add(&sam, "eve", "viewer");
    unknown.assert_status(400);
    assert!(
        unknown
            .by_id("member-error")
            .unwrap()
            .contains("no user named")
    );
    sam.set_cookie("tidings_workspace", &c.north.to_string());
    let here = add(&sam, "ben", "viewer");
    here.assert_status(409);
    assert!(
        here.by_id("member-error")
            .unwrap()
            .contains("already a member")
    );
    assert_eq!(stored(&app, "ben").role_in(&c.north), None);

    // A group admin may add anyone, here Default's olga to South.
    tidings::app::users::new_group_admin(app.store(), "gina", PASSWORD).unwrap();
    let gina = Browser::new(&app);
    gina.login("gina", PASSWORD).assert_status(303);
    gina.get("/users");
    gina.post("/workspace", &[("workspace_id", &c.south.to_string())])
        .assert_status(303);
    let olga = add(&gina, "olga", "viewer");
    assert_eq!(olga.status, 303, "{}", olga.text);
    assert_eq!(olga.location(), "/users?done=member");
    assert_eq!(
        stored(&app, "olga").role_in(&c.south),
        Some(UserRole::Viewer)
    );
    // A group admin is an admin everywhere already.
    let g = add(&gina, "gina", "viewer");
    g.assert_status(409);
    assert!(g.by_id("member-error").unwrap().contains("group admin"));
    // Nor does any workspace's page change a group admin's role.
    let gina_id = stored(&app, "gina").id;
    let sam = sam_on_south_users(&app, &c.south);
    let refused = sam.post(&format!("/users/{gina_id}/role"), &[("role", "viewer")]);
    refused.assert_status(409);
    assert!(
        refused
            .by_id("people-error")
            .unwrap()
            .contains("The user gina is a group admin"),
        "{}",
        refused.text
    );
    assert!(stored(&app, "gina").group_admin);
}

/// sam, South's admin (made there), signed in and on its Users page.
fn sam_on_south_users(app: &TestApp, south: &WorkspaceId) -> Browser {
    let sam = Browser::new(app);
    sam.login("sam", PASSWORD).assert_status(303);
    assert_eq!(stored(app, "sam").workspace_id, *south);
    sam.get("/users").assert_status(200);
    sam
}

#[test]
fn removing_a_user_who_is_another_workspaces_only_admin_is_refused_at_the_list() {
    let app = spawn_app();
    let owner = owner_key(&app);
    let north = ws_id(&workspace(&app, &owner, "North Clinic"));
    let east = ws_id(&workspace(&app, &owner, "East Clinic"));
    // North has two admins; carl, made in North, is East's only admin.
    made(&app, &north, "ada", UserRole::Admin);
    made(&app, &north, "carl", UserRole::Admin);
    let east_raw = east.to_string();
    tidings::app::users::grant(app.store(), "carl", &east_raw, Some(UserRole::Admin)).unwrap();
    let carl = stored(&app, "carl");
    let ada = Browser::new(&app);
    ada.login("ada", PASSWORD).assert_status(303);

    ada.get("/users");
    let refused = ada.post(&format!("/users/{}/delete", carl.id), &[]);
    refused.assert_status(409);
    let said = refused.by_id("people-error").unwrap();
    assert!(
        said.contains("only admin") && said.contains("East Clinic"),
        "{said}"
    );
    assert!(
        refused.text.contains("id=\"user-carl\""),
        "the list as it was"
    );
    assert_eq!(stored(&app, "carl").role_in(&east), Some(UserRole::Admin));
    assert_eq!(audited(&app, &north, "user.delete"), 0);
    // Demoting carl in North leaves North ada and East carl: allowed, per workspace.
    ada.get("/users");
    let demoted = ada.post(&format!("/users/{}/role", carl.id), &[("role", "viewer")]);
    assert_eq!(demoted.status, 303, "{}", demoted.text);
    assert_eq!(demoted.location(), "/users?done=role");
    let carl = stored(&app, "carl");
    assert_eq!(carl.role_in(&north), Some(UserRole::Viewer));
    assert_eq!(carl.role_in(&east), Some(UserRole::Admin));

    // With another admin in East, carl can go (ada's grant signed her out).
    tidings::app::users::grant(app.store(), "ada", &east_raw, Some(UserRole::Admin)).unwrap();
    ada.login("ada", PASSWORD).assert_status(303);
    ada.get("/users");
    let gone = ada.post(&format!("/users/{}/delete", carl.id), &[]);
    assert_eq!(gone.status, 303, "{}", gone.text);
    assert_eq!(gone.location(), "/users?done=deleted");
    assert!(app.store().user_by_name("carl").unwrap().is_none());
    assert_eq!(audited(&app, &north, "user.delete"), 1);
}

#[test]
fn an_admin_adds_a_member_and_takes_them_out_in_chromium() {
    let Some(chromedriver) = available() else {
        return;
    };
    let app = spawn_app();
    let c = clinics(&app);
    let base = app.url("");
    let d = Driver::start(&chromedriver);
    d.set_window(1366, 900);
    d.goto(&format!("{base}/login"));
    d.type_into("#username", "ada");
    d.type_into("#password", PASSWORD);
    d.click("#sign-in");
    d.wait_for_text("Sign out");
    d.goto(&format!("{base}/users"));
    d.wait_for_text("Add someone already on tidings");

    // Someone of Default, where ada is no admin: unknown, shown at the form.
    d.type_into("#member-username", "olga");
    d.click("#add-member");
    d.wait_for_text("no user named");
    assert!(d.text("#member-error").contains("olga"));
    assert_eq!(stored(&app, "olga").role_in(&c.north), None);

    // ben of South, as an editor here.
    d.goto(&format!("{base}/users"));
    d.wait_for_text("Add someone already on tidings");
    d.type_into("#member-username", "ben");
    d.click("#member-role option[value='editor']");
    d.click("#add-member");
    d.wait_for_text("Added to this workspace");
    let row = d.text("#user-ben");
    assert!(row.contains("from another workspace"), "{row}");
    assert_eq!(
        stored(&app, "ben").role_in(&c.north),
        Some(UserRole::Editor)
    );
    d.screenshot("users-member-added");

    // Taken out again (the confirm dialog is accepted); South keeps him.
    d.click("#unmember-ben");
    d.wait_for_text("Taken out of this workspace");
    assert!(!d.exists("#user-ben"));
    let ben = stored(&app, "ben");
    assert_eq!(ben.role_in(&c.north), None);
    assert_eq!(ben.role_in(&c.south), Some(UserRole::Editor));
}
