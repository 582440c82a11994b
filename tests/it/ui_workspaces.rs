//! Workspaces in the admin UI (SPEC §14): a user sees only the workspaces they are a member
//! of, switches between them in the header, and cannot reach another's pages by URL; a group
//! admin sees them all; a user of one workspace sees no switcher and works as before. Each
//! workspace's dashboard counts its own deliveries, failures, rules, waiting deliveries and
//! condition errors only.

use serde_json::json;
use tidings::domain::user::UserRole;

use std::time::Duration;

use crate::support::app::TestApp;
use crate::support::receiver::TestReceiver;
use crate::support::ui::{Browser, PASSWORD};
use crate::support::webdriver::{Driver, available};
use crate::workspaces::owner_key;

/// Makes a workspace with the owner key; returns its id.
pub(crate) fn workspace(app: &TestApp, owner: &str, name: &str) -> String {
    let body = serde_json::to_vec(&json!({"name": name})).unwrap();
    let made = app.raw("POST", "/api/v1/workspaces", Some(owner), Some(&body), &[]);
    assert_eq!(made.status, 201, "{}", made.text);
    made.body["id"].as_str().unwrap().to_owned()
}

/// A rule named `name` in `workspace`, made by the owner key acting there; returns its id.
/// Its webhook goes to a closed port: every attempt fails.
pub(crate) fn rule_in(app: &TestApp, owner: &str, workspace: &str, name: &str) -> String {
    rule_to(app, owner, workspace, name, "http://127.0.0.1:9/hook")
}

/// A rule named `name` in `workspace` for `ping` events, sending to `url`; returns its id.
fn rule_to(app: &TestApp, owner: &str, workspace: &str, name: &str, url: &str) -> String {
    rule_made(
        app,
        owner,
        workspace,
        &json!({"name": name,
            "trigger": {"type": "event", "events": ["ping"]},
            "webhook": {"url": url}}),
    )
}

/// The rule `rule` (its JSON) made in `workspace` by the owner key; returns its id.
fn rule_made(app: &TestApp, owner: &str, workspace: &str, rule: &serde_json::Value) -> String {
    let body = serde_json::to_vec(rule).unwrap();
    let made = app.raw(
        "POST",
        "/api/v1/rules",
        Some(owner),
        Some(&body),
        &[("Tidings-Workspace", workspace)],
    );
    assert_eq!(made.status, 201, "{}", made.text);
    made.body["id"].as_str().unwrap().to_owned()
}

pub(crate) fn ws_id(raw: &str) -> tidings::domain::ids::WorkspaceId {
    tidings::domain::ids::WorkspaceId::parse(raw).unwrap()
}

/// Default, North and South, a rule in each; "nina" is an editor of North (where she was
/// made) and a viewer of South, and no member of Default.
struct Group {
    north: String,
    south: String,
    default_rule: String,
    north_rule: String,
    south_rule: String,
}

fn group(app: &TestApp) -> Group {
    let owner = owner_key(app);
    let north = workspace(app, &owner, "North Clinic");
    let south = workspace(app, &owner, "South Clinic");
    let default = app.store().default_workspace().to_string();
    let g = Group {
        default_rule: rule_in(app, &owner, &default, "Default intake"),
        north_rule: rule_in(app, &owner, &north, "North intake"),
        south_rule: rule_in(app, &owner, &south, "South intake"),
        north,
        south,
    };
    tidings::app::users::new_user(
        app.store(),
        &ws_id(&g.north),
        "nina",
        UserRole::Editor,
        PASSWORD,
        None,
        false,
    )
    .unwrap();
    tidings::app::users::grant(app.store(), "nina", &g.south, Some(UserRole::Viewer)).unwrap();
    g
}

#[test]
fn a_member_of_two_workspaces_switches_in_chromium_and_cannot_reach_the_third() {
    let Some(chromedriver) = available() else {
        return;
    };
    let app = crate::support::app::spawn_app();
    let g = group(&app);
    let base = app.url("");
    let d = Driver::start(&chromedriver);
    d.set_window(1366, 900);
    d.goto(&format!("{base}/login"));
    d.type_into("#username", "nina");
    d.type_into("#password", PASSWORD);
    d.click("#sign-in");
    d.wait_for_text("Sign out");

    // She starts in North, where she was made; the switcher lists her two workspaces only.
    let switcher = d.text("#workspace-switcher");
    assert!(
        switcher.contains("North Clinic") && switcher.contains("South Clinic"),
        "{switcher}"
    );
    assert!(!switcher.contains("Default"), "{switcher}");
    d.goto(&format!("{base}/rules"));
    d.wait_for_text("North intake");
    let rules = d.text("main");
    assert!(
        !rules.contains("South intake") && !rules.contains("Default intake"),
        "{rules}"
    );
    assert!(d.text("header").contains("editor"));
    d.screenshot("workspaces-north");

    // Switch to South: its rules, her viewer role there.
    d.click(&format!("#workspace-select option[value='{}']", g.south));
    d.click("#workspace-switch");
    d.wait_for_text("Dashboard");
    d.goto(&format!("{base}/rules"));
    d.wait_for_text("South intake");
    let rules = d.text("main");
    assert!(
        !rules.contains("North intake") && !rules.contains("Default intake"),
        "{rules}"
    );
    assert!(d.text("header").contains("viewer"), "{}", d.text("header"));
    assert!(!d.exists("#new-rule"), "a viewer in South makes no rules");
    d.screenshot("workspaces-south");

    // North's rule is not South's, and Default's is hers nowhere: "not found" by URL.
    d.goto(&format!("{base}/rules/{}", g.north_rule));
    d.wait_for_text("Not found");
    d.goto(&format!("{base}/rules/{}", g.default_rule));
    d.wait_for_text("Not found");
    assert!(!d.text("main").contains("Default intake"));
    d.goto(&format!("{base}/rules/{}", g.south_rule));
    d.wait_for_text("South intake");

    // Switching back shows North again.
    d.click(&format!("#workspace-select option[value='{}']", g.north));
    d.click("#workspace-switch");
    d.wait_for_text("Dashboard");
    d.goto(&format!("{base}/rules/{}", g.north_rule));
    d.wait_for_text("North intake");
}

#[test]
fn the_switcher_refuses_other_workspaces_and_a_forged_choice_is_ignored() {
    let app = crate::support::app::spawn_app();
    let g = group(&app);
    let default = app.store().default_workspace().to_string();
    let b = Browser::new(&app);
    b.login("nina", PASSWORD).assert_status(303);

    // Asking for Default, of which she is no member, is a 404 that changes nothing.
    let csrf = b.csrf();
    let refused = b.post("/workspace", &[("csrf", &csrf), ("workspace_id", &default)]);
    refused.assert_status(404);
    assert!(refused.text.contains("not a member"), "{}", refused.text);
    assert!(b.cookie("tidings_workspace").is_none());
    let still = b.get("/rules");
    assert!(still.text.contains("North intake") && !still.text.contains("Default intake"));
    // Without the form's token nothing switches either.
    b.post_raw("/workspace", &[("workspace_id", &g.south)])
        .assert_status(403);
    assert!(b.get("/rules").text.contains("North intake"));

    // A cookie naming Default by hand is ignored: she stays in North.
    b.set_cookie("tidings_workspace", &default);
    let page = b.get("/rules");
    assert!(page.text.contains("North intake"), "{}", page.text);
    assert!(!page.text.contains("Default intake"));
    b.get(&format!("/rules/{}", g.default_rule))
        .assert_status(404);

    // Switching to South works, and its dashboard is South's.
    let switched = b.post("/workspace", &[("csrf", &csrf), ("workspace_id", &g.south)]);
    switched.assert_status(303);
    assert_eq!(switched.location(), "/");
    let rules = b.get("/rules");
    assert!(rules.text.contains("South intake") && !rules.text.contains("North intake"));
    b.get(&format!("/rules/{}", g.north_rule))
        .assert_status(404);
    let edit = b.get(&format!("/rules/{}/edit", g.south_rule));
    edit.assert_status(403);
    assert!(
        edit.text.contains("viewer role in this workspace"),
        "{}",
        edit.text
    );

    // Once her South membership is taken away, the cookie no longer takes her there.
    tidings::app::users::grant(app.store(), "nina", &g.south, None).unwrap();
    let b = Browser::new(&app);
    b.login("nina", PASSWORD).assert_status(303);
    b.set_cookie("tidings_workspace", &g.south);
    let rules = b.get("/rules");
    assert!(rules.text.contains("North intake") && !rules.text.contains("South intake"));
    assert!(
        !rules.text.contains("workspace-switcher"),
        "one workspace left: nothing to switch"
    );
}

#[test]
fn a_group_admin_sees_every_workspace_and_a_one_workspace_user_sees_no_switcher() {
    let app = crate::support::app::spawn_app();
    let g = group(&app);
    tidings::app::users::new_group_admin(app.store(), "gina", PASSWORD).unwrap();
    let b = Browser::new(&app);
    b.login("gina", PASSWORD).assert_status(303);
    let page = b.get("/rules");
    for name in ["Default", "North Clinic", "South Clinic"] {
        assert!(page.text.contains(name), "{name} in the switcher");
    }
    assert!(page.text.contains("Default intake"), "starts in Default");
    let csrf = b.csrf();
    b.post("/workspace", &[("csrf", &csrf), ("workspace_id", &g.north)])
        .assert_status(303);
    assert!(b.get("/rules").text.contains("North intake"));
    // An admin in every workspace: North's users page lists North's members.
    let users = b.get("/users");
    users.assert_status(200);
    assert!(users.text.contains("nina"), "{}", users.text);

    // A user of the Default workspace alone (as every user before workspaces) sees no
    // switcher and only Default's rules, as before.
    let v = crate::support::ui::user(&app, "victor", UserRole::Viewer);
    let rules = v.get("/rules");
    rules.assert_status(200);
    assert!(rules.text.contains("Default intake"));
    assert!(!rules.text.contains("North intake") && !rules.text.contains("workspace-switcher"));
    v.get(&format!("/rules/{}", g.north_rule))
        .assert_status(404);

    // The CLI refuses what it cannot do, and the refusal changes nothing.
    assert!(tidings::app::users::grant(app.store(), "nobody", &g.north, None).is_err());
    assert!(tidings::app::users::grant(app.store(), "victor", "wsp_nope", None).is_err());
    let home = app.store().default_workspace().to_string();
    assert!(tidings::app::users::grant(app.store(), "victor", &home, None).is_err());
    assert!(v.get("/rules").text.contains("Default intake"));
}

/// A `ping` event sent into `workspace` by the owner key acting there; returns its id.
fn ping_in(app: &TestApp, owner: &str, workspace: &str) -> String {
    let body = serde_json::to_vec(&json!({"type": "ping", "data": {}})).unwrap();
    let sent = app.raw(
        "POST",
        "/api/v1/events",
        Some(owner),
        Some(&body),
        &[("Tidings-Workspace", workspace)],
    );
    assert_eq!(sent.status, 202, "{}", sent.text);
    sent.body["id"].as_str().unwrap().to_owned()
}

/// Waits until every delivery of `event` (of `workspace`) has left the open states.
fn settled(app: &TestApp, owner: &str, workspace: &str, event: &str) {
    let path = format!("/api/v1/events/{event}");
    crate::support::app::wait_until(
        Duration::from_secs(20),
        &format!("deliveries of {event} to settle"),
        || {
            let resp = app.raw(
                "GET",
                &path,
                Some(owner),
                None,
                &[("Tidings-Workspace", workspace)],
            );
            assert_eq!(resp.status, 200, "{}", resp.text);
            let deliveries = resp.body["deliveries"].as_array()?.clone();
            (!deliveries.is_empty()
                && deliveries
                    .iter()
                    .all(|d| !matches!(d["status"].as_str(), Some("pending" | "retrying"))))
            .then_some(())
        },
    );
}

/// The figure in the dashboard's `<span class="num">` just before `label`.
fn stat(page: &crate::support::ui::Page, label: &str) -> String {
    let end = page
        .text
        .find(&format!("</span> {label}"))
        .unwrap_or_else(|| panic!("no {label:?} figure on the dashboard:\n{}", page.text));
    let start = page.text[..end].rfind('>').unwrap() + 1;
    page.text[start..end].to_owned()
}

#[test]
fn each_workspaces_dashboard_counts_its_own_deliveries_failures_and_rules() {
    // One attempt each, so a failure is final at once and counted on the chart.
    let app = crate::support::app::spawn_app_with(|c| c.retry.max_attempts = 1);
    let receiver = TestReceiver::start();
    let owner = owner_key(&app);
    let north = workspace(&app, &owner, "North Clinic");
    let south = workspace(&app, &owner, "South Clinic");
    // North: a rule that succeeds and one that fails; South: one rule that succeeds.
    rule_to(&app, &owner, &north, "North sends", &receiver.url("/north"));
    let broken = rule_in(&app, &owner, &north, "North broken");
    rule_to(&app, &owner, &south, "South sends", &receiver.url("/south"));
    let mut events = Vec::new();
    for _ in 0..3 {
        events.push((ping_in(&app, &owner, &north), north.clone()));
    }
    events.push((ping_in(&app, &owner, &south), south.clone()));
    for (e, ws) in &events {
        settled(&app, &owner, ws, e);
    }
    assert_eq!(receiver.wait_for(4, Duration::from_secs(10)).len(), 4);

    // "dora" is an admin of North (made there) and of South.
    tidings::app::users::new_user(
        app.store(),
        &ws_id(&north),
        "dora",
        UserRole::Admin,
        PASSWORD,
        None,
        false,
    )
    .unwrap();
    tidings::app::users::grant(app.store(), "dora", &south, Some(UserRole::Admin)).unwrap();
    let b = Browser::new(&app);
    b.login("dora", PASSWORD).assert_status(303);

    let dash = b.get("/");
    dash.assert_status(200);
    assert_eq!(
        dash.by_id("stat-day-ok").as_deref(),
        Some("3"),
        "North's successes"
    );
    assert_eq!(
        dash.by_id("stat-day-failed").as_deref(),
        Some("3"),
        "North's failures"
    );
    assert_eq!(stat(&dash, "rules"), "2");
    assert!(
        dash.text.contains(&format!("id=\"failing-{broken}\"")),
        "{}",
        dash.text
    );
    assert!(dash.text.contains("North broken") && !dash.text.contains("South sends"));

    let csrf = b.csrf();
    b.post("/workspace", &[("csrf", &csrf), ("workspace_id", &south)])
        .assert_status(303);
    let dash = b.get("/");
    dash.assert_status(200);
    assert_eq!(
        dash.by_id("stat-day-ok").as_deref(),
        Some("1"),
        "South's success"
    );
    assert_eq!(
        dash.by_id("stat-day-failed").as_deref(),
        Some("0"),
        "North's are not South's"
    );
    assert_eq!(stat(&dash, "rules"), "1");
    assert!(dash.text.contains("id=\"no-failing\""), "{}", dash.text);
    assert!(!dash.text.contains("North broken"));

    // The Default workspace, where nothing was sent, counts nothing of either.
    let gina = Browser::new(&app);
    tidings::app::users::new_group_admin(app.store(), "gina", PASSWORD).unwrap();
    gina.login("gina", PASSWORD).assert_status(303);
    let dash = gina.get("/");
    assert_eq!(dash.by_id("stat-day-ok").as_deref(), Some("0"));
    assert_eq!(dash.by_id("stat-day-failed").as_deref(), Some("0"));
    assert_eq!(stat(&dash, "rules"), "0");
}

#[test]
fn each_workspaces_dashboard_counts_its_own_waiting_deliveries_and_condition_errors() {
    // The default retry schedule: a refused connection is retried minutes later, so North's
    // deliveries stay waiting while the dashboards are read.
    let app = crate::support::app::spawn_app();
    let owner = owner_key(&app);
    let north = workspace(&app, &owner, "North Clinic");
    let south = workspace(&app, &owner, "South Clinic");
    rule_in(&app, &owner, &north, "North unreachable");
    // A ping has no `data.call`: South's condition cannot be evaluated.
    rule_made(
        &app,
        &owner,
        &south,
        &json!({"name": "South long calls",
            "trigger": {"type": "event", "events": ["ping"]},
            "condition": "data.call.durationSeconds > 60",
            "webhook": {"url": "http://127.0.0.1:9/south"}}),
    );
    for _ in 0..2 {
        ping_in(&app, &owner, &north);
    }
    let south_event = ping_in(&app, &owner, &south);
    settled(&app, &owner, &south, &south_event);

    tidings::app::users::new_group_admin(app.store(), "gina", PASSWORD).unwrap();
    let b = Browser::new(&app);
    b.login("gina", PASSWORD).assert_status(303);
    let default = app.store().default_workspace().to_string();
    for (ws, open, errors) in [(&north, "2", "0"), (&south, "0", "1"), (&default, "0", "0")] {
        let csrf = b.csrf();
        b.post("/workspace", &[("csrf", &csrf), ("workspace_id", ws)])
            .assert_status(303);
        let dash = b.get("/");
        dash.assert_status(200);
        assert_eq!(
            (dash.by_id("stat-open"), dash.by_id("stat-day-condition")),
            (Some(open.to_owned()), Some(errors.to_owned())),
            "waiting and condition errors of workspace {ws}"
        );
    }
}
