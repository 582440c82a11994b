//! Workspaces from the command line, running the real `tidings` binary as an operator does
//! (SPEC §14): `key create --role owner` makes a key that manages workspaces, `user grant`
//! gives an existing user a role in another workspace (and `--role none` takes it away), and
//! bad input exits non-zero with a plain one-line message and changes nothing.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use tidings::domain::access::Role;
use tidings::domain::user::UserRole;

use crate::support::app::{start, test_config, wait_until};
use crate::support::process::{Ran, Scratch, run, tidings};
use crate::support::ui::PASSWORD;
use crate::ui_workspaces::ws_id;

/// Runs `tidings ARGS --data-dir DATA` (and, on PostgreSQL, `TIDINGS_STORE_URL` naming the
/// test's database). A just-stopped in-process app releases the embedded database a moment
/// after `stop` returns, so a refusal saying it is in use is retried for a few seconds.
fn cli(data: &Path, args: &[&str]) -> Ran {
    wait_until(Duration::from_secs(10), "the database to be free", || {
        let mut cmd = tidings();
        cmd.args(args).arg("--data-dir").arg(data);
        if let Some(url) = crate::support::postgres::database_for(data) {
            cmd.env("TIDINGS_STORE_URL", url);
        }
        cmd.env("TIDINGS_PASSWORD", PASSWORD);
        let ran = run(cmd);
        (!ran.stderr.contains("in use by another tidings process")).then_some(ran)
    })
}

/// A refusal: a non-zero exit, nothing on stdout, and one plain `error: …` line naming `what`.
fn assert_refused(ran: &Ran, what: &str) {
    assert!(!ran.success(), "{ran:?}");
    assert_eq!(ran.stdout, "", "{ran:?}");
    let err = ran.stderr.trim();
    assert!(err.starts_with("error: ") && !err.contains('\n'), "{ran:?}");
    assert!(err.contains(what), "{what:?} in {ran:?}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"));
}

#[test]
fn key_create_owner_and_user_grant_as_binaries_refuse_bad_input_and_change_nothing() {
    let scratch = Scratch::new("ws-cli");
    let data = scratch.path("data");

    // `key create --role owner`: the key alone on stdout.
    let made = cli(
        &data,
        &["key", "create", "--role", "owner", "--name", "ops"],
    );
    assert!(made.success(), "{made:?}");
    let owner = made.stdout.trim().to_owned();
    assert_eq!(made.stdout, format!("{owner}\n"), "the key alone: {made:?}");
    assert!(owner.len() > 20 && !owner.contains(' '), "{owner}");
    // Bad key input: an unknown role, an empty name.
    assert_refused(
        &cli(&data, &["key", "create", "--role", "root", "--name", "x"]),
        "role must be \"admin\", \"ingest\" or \"owner\", not \"root\"",
    );
    assert_refused(
        &cli(&data, &["key", "create", "--role", "owner", "--name", " "]),
        "name is required",
    );
    let added = cli(
        &data,
        &["user", "add", "--username", "carol", "--role", "editor"],
    );
    assert!(added.success(), "{added:?}");

    // The owner key works on the served API: it makes a workspace (an admin key cannot).
    let app = start(test_config(&data));
    let default = app.store().default_workspace().clone();
    let keys = app.store().api_keys(&default).unwrap();
    assert!(
        keys.iter()
            .any(|k| k.name == "ops" && k.role == Role::Owner),
        "{keys:?}"
    );
    assert!(
        !keys
            .iter()
            .any(|k| k.name == "x" || k.name.trim().is_empty()),
        "refused keys were not stored: {keys:?}"
    );
    let body = serde_json::to_vec(&json!({"name": "North Clinic"})).unwrap();
    let north = app.raw("POST", "/api/v1/workspaces", Some(&owner), Some(&body), &[]);
    assert_eq!(north.status, 201, "{}", north.text);
    let north = north.body["id"].as_str().unwrap().to_owned();
    let by_admin = app.raw(
        "POST",
        "/api/v1/workspaces",
        Some(&app.admin_key),
        Some(&body),
        &[],
    );
    assert_eq!(by_admin.status, 403, "{}", by_admin.text);
    let listed = app.raw("GET", "/api/v1/workspaces", Some(&owner), None, &[]);
    assert_eq!(listed.status, 200, "{}", listed.text);
    app.stop();

    // Bad grants: each refused with what was wrong, and none changes anything.
    let grant = |user: &str, ws: &str, role: &str| {
        cli(
            &data,
            &[
                "user",
                "grant",
                "--username",
                user,
                "--workspace",
                ws,
                "--role",
                role,
            ],
        )
    };
    assert_refused(
        &grant("carol", "wsp_nosuchworkspace", "viewer"),
        "no workspace with id \"wsp_nosuchworkspace\"",
    );
    assert_refused(&grant("carol", "north", "viewer"), "no workspace with id");
    assert_refused(&grant("zed", &north, "viewer"), "no user named \"zed\"");
    assert_refused(
        &grant("carol", &north, "root"),
        "role must be admin, editor, viewer or none, not \"root\"",
    );
    assert_refused(
        &grant("carol", default.as_str(), "viewer"),
        "carol was made in workspace",
    );
    let app = start(test_config(&data));
    let carol = app.store().user_by_name("carol").unwrap().unwrap();
    assert!(carol.memberships.is_empty(), "{:?}", carol.memberships);
    assert_eq!(carol.role, UserRole::Editor, "her own role is untouched");
    let north_id = ws_id(&north);
    let audit = |app: &crate::support::app::TestApp| {
        let (entries, _) = app.store().audit_log(&north_id, None, 100).unwrap();
        entries
            .into_iter()
            .filter(|e| e.action == "user.membership")
            .count()
    };
    assert_eq!(audit(&app), 0, "a refusal is not audited as a change");
    app.stop();

    // A good grant: she is a viewer of North, audited there; `--role none` takes it away.
    let granted = grant("Carol", &north, "viewer");
    assert!(granted.success(), "{granted:?}");
    assert_eq!(
        granted.stdout,
        format!("carol is now viewer in workspace {north}\n")
    );
    let app = start(test_config(&data));
    let carol = app.store().user_by_name("carol").unwrap().unwrap();
    assert_eq!(carol.role_in(&north_id), Some(UserRole::Viewer));
    assert_eq!(carol.role_in(&default), Some(UserRole::Editor));
    assert_eq!(audit(&app), 1);
    // She signs in and switches to North, where she is a viewer.
    let b = crate::support::ui::Browser::new(&app);
    b.login("carol", PASSWORD).assert_status(303);
    let csrf = b.csrf();
    b.post("/workspace", &[("csrf", &csrf), ("workspace_id", &north)])
        .assert_status(303);
    assert!(b.get("/rules").text.contains("viewer"));
    app.stop();

    let removed = grant("carol", &north, "none");
    assert!(removed.success(), "{removed:?}");
    assert_eq!(
        removed.stdout,
        format!("carol is no longer a member of workspace {north}\n")
    );
    let app = start(test_config(&data));
    let carol = app.store().user_by_name("carol").unwrap().unwrap();
    assert_eq!(carol.role_in(&north_id), None);
    assert_eq!(audit(&app), 2);
}
