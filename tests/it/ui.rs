//! Admin UI handler tests: the real server over real HTTP, cookies handled by hand. Every
//! page renders for the roles that may see it, every change is refused to a role that may
//! not make it (and nothing changes), every form post needs its CSRF token, sign-in is rate
//! limited, and every UI response carries the security headers.

use std::time::Duration;

use serde_json::{Value, json};
use tidings::domain::user::UserRole;

use crate::support::app::{TestApp, spawn_app, wait_until};
use crate::support::receiver::TestReceiver;
use crate::support::ui::{Browser, PASSWORD, Page, setup_admin, user};

fn audit_actions(app: &TestApp) -> Vec<Value> {
    let resp = app.get("/api/v1/audit?limit=250");
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["data"].as_array().unwrap().clone()
}

fn has_action(app: &TestApp, action: &str) -> bool {
    audit_actions(app).iter().any(|e| e["action"] == action)
}

fn assert_security_headers(page: &Page, path: &str) {
    let csp = page.header("content-security-policy").unwrap_or("");
    assert!(csp.contains("default-src 'self'"), "{path}: CSP {csp:?}");
    assert!(csp.contains("script-src 'self'"), "{path}: CSP {csp:?}");
    assert!(!csp.contains("unsafe-inline"), "{path}: CSP {csp:?}");
    assert_eq!(page.header("x-frame-options"), Some("DENY"), "{path}");
    assert_eq!(
        page.header("referrer-policy"),
        Some("no-referrer"),
        "{path}"
    );
    assert_eq!(
        page.header("x-content-type-options"),
        Some("nosniff"),
        "{path}"
    );
}

/// Every visible form control has an id and a `<label for>` naming it.
fn assert_every_input_is_labelled(page: &Page, path: &str) {
    for tag in ["<input", "<select", "<textarea"] {
        for (at, _) in page.text.match_indices(tag) {
            let end = page.text[at..].find('>').unwrap() + at;
            let element = &page.text[at..end];
            if element.contains("type=\"hidden\"") {
                continue;
            }
            let id = element
                .split("id=\"")
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or_else(|| panic!("{path}: a control without an id: {element}"));
            assert!(
                page.text.contains(&format!("for=\"{id}\"")),
                "{path}: no label for {element}"
            );
        }
    }
}

fn rule_via_api(app: &TestApp, url: &str) -> Value {
    app.create_rule_with(json!({
        "name": "CRM",
        "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {"url": url, "secret_headers": {"Authorization": "Bearer s3cret"}},
    }))
}

#[test]
fn first_run_setup_makes_one_admin_and_then_the_link_is_dead() {
    let app = spawn_app();
    let token = app
        .setup_token()
        .expect("a setup token while no user exists");
    let b = Browser::new(&app);
    // Sign-in explains what to do when nobody can sign in yet.
    assert!(b.get("/login").text.contains("one-time setup link"));
    b.get("/setup").assert_status(403);
    b.get("/setup?token=wrong").assert_status(403);
    let form = b.get(&format!("/setup?token={token}"));
    form.assert_status(200);
    assert_security_headers(&form, "/setup");
    let ft = form.hidden("form_token");
    // A weak password is refused, with the name kept.
    let weak = b.post_raw(
        "/setup",
        &[
            ("form_token", &ft),
            ("token", &token),
            ("username", "Anna"),
            ("password", "short"),
            ("confirm", "short"),
        ],
    );
    weak.assert_status(400);
    assert!(weak.text.contains("at least 12 characters"));
    assert!(weak.text.contains("value=\"Anna\""));
    let ft = weak.hidden("form_token");
    let done = b.post_raw(
        "/setup",
        &[
            ("form_token", &ft),
            ("token", &token),
            ("username", "Anna"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.text);
    let cookie = done
        .headers
        .iter()
        .find(|(k, v)| k == "set-cookie" && v.starts_with("tidings_session="))
        .map(|(_, v)| v.clone())
        .expect("a session cookie");
    assert!(cookie.contains("HttpOnly"), "{cookie}");
    assert!(cookie.contains("SameSite=Strict"), "{cookie}");
    assert!(cookie.contains("Max-Age="), "{cookie}");
    assert!(!cookie.contains("Secure"), "plain HTTP here: {cookie}");
    let home = b.get("/");
    home.assert_status(200);
    assert!(
        home.text.contains("anna"),
        "usernames are stored lower-case"
    );
    assert_eq!(app.setup_token(), None);
    // The link cannot make a second admin, with or without the old token.
    let again = Browser::new(&app);
    again
        .get(&format!("/setup?token={token}"))
        .assert_status(410);
    assert!(has_action(&app, "user.create"));
    assert!(has_action(&app, "user.login"));
    let users = app.store().users(app.store().default_workspace()).unwrap();
    assert_eq!(users.len(), 1);
    assert_eq!(users[0].role, UserRole::Admin);
    assert!(users[0].password_hash.starts_with("$argon2id$"));
}

#[test]
fn every_page_renders_for_an_admin_with_security_headers() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let admin = setup_admin(&app, "anna");
    let rule = rule_via_api(&app, &receiver.url("/hook"));
    let id = rule["id"].as_str().unwrap();
    let event = app.ingest(&json!({"type": "member:created", "data": {"member": {"id": 1}}}));
    let delivery = app.wait_settled(event.body["id"].as_str().unwrap(), Duration::from_secs(10))[0]
        ["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let pages = [
        ("/", "Last 24 hours"),
        ("/rules", "CRM"),
        ("/rules/new", "Secret headers"),
        ("/rules/new?trigger=schedule", "value=\"schedule\" checked"),
        ("/routines", "No routines yet"),
        ("/event-types", "routine:fired"),
        (&format!("/rules/{id}") as &str, "Recent deliveries"),
        (&format!("/rules/{id}/edit"), "Save draft"),
        (&format!("/rules/{id}/preview"), "X-Webhook-Signature"),
        ("/deliveries", "member:created"),
        (&format!("/deliveries/{delivery}"), "Attempt 1: succeeded"),
        ("/keys", "test ingest"),
        ("/users", "anna"),
        ("/settings", "max_attempts"),
        ("/audit", "rule.create"),
    ];
    for (path, marker) in pages {
        let started = std::time::Instant::now();
        let page = admin.get(path);
        assert_eq!(page.status, 200, "{path}: {}", page.text);
        assert!(page.text.contains(marker), "{path} lacks {marker:?}");
        assert_security_headers(&page, path);
        assert_eq!(page.header("cache-control"), Some("no-store"), "{path}");
        assert!(
            page.header("content-type")
                .unwrap_or("")
                .starts_with("text/html"),
            "{path}"
        );
        assert!(started.elapsed() < Duration::from_secs(2), "{path} is slow");
        // No inline script anywhere: only the one same-origin file.
        assert!(!page.text.contains("<script>"), "{path}");
        assert!(!page.text.contains("style=\""), "{path}: inline style");
        assert!(page.text.contains("development mode") || page.text.contains("Development mode"));
        assert_every_input_is_labelled(&page, path);
    }
    // Secret header values never reach a page; the edit form leaves them blank.
    let edit = admin.get(&format!("/rules/{id}/edit"));
    assert!(!edit.text.contains("s3cret"));
    assert!(edit.text.contains("value=\"Authorization\""));
    let unknown = admin.get("/no-such-page");
    unknown.assert_status(404);
    assert_security_headers(&unknown, "404");
    // The API keeps its own JSON errors.
    let api = app.raw("GET", "/api/v1/nope", None, None, &[]);
    api.assert_error(404);
}

#[test]
fn static_assets_have_etags_and_long_caching_only_when_hashed() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let home = admin.get("/");
    let start = home.text.find("/static/css/app.css?v=").unwrap();
    let end = home.text[start..].find('"').unwrap() + start;
    let url = &home.text[start..end];
    let css = admin.get(url);
    css.assert_status(200);
    assert!(css.header("content-type").unwrap().starts_with("text/css"));
    assert!(css.header("cache-control").unwrap().contains("immutable"));
    let etag = css.header("etag").unwrap().to_owned();
    assert!(url.ends_with(etag.trim_matches('"')), "{url} vs {etag}");
    let plain = admin.get("/static/css/app.css");
    assert_eq!(plain.header("cache-control"), Some("no-cache"));
    let req = ureq::http::Request::builder()
        .uri(app.url("/static/css/app.css"))
        .header("If-None-Match", &etag)
        .body(())
        .unwrap();
    let resp = crate::support::app::client().run(req).unwrap();
    assert_eq!(resp.status().as_u16(), 304);
    admin.get("/static/../Cargo.toml").assert_status(404);
    admin.get("/static/js/nope.js").assert_status(404);
    assert!(admin.get("/static/js/app.js").text.contains("data-confirm"));
}

#[test]
fn signed_out_requests_go_to_sign_in_and_change_nothing() {
    let app = spawn_app();
    let rule = rule_via_api(&app, "http://127.0.0.1:9/hook");
    let id = rule["id"].as_str().unwrap();
    let b = Browser::new(&app);
    let page = b.get("/rules?x=1");
    page.assert_status(303);
    assert_eq!(page.location(), "/login?next=%2Frules%3Fx%3D1");
    let post = b.post_raw(&format!("/rules/{id}/delete"), &[("csrf", "anything")]);
    post.assert_status(303);
    assert_eq!(post.location(), "/login");
    app.get(&format!("/api/v1/rules/{id}")).assert_error_free();
    // A made-up session cookie is not a session.
    b.set_cookie("tidings_session", "forged");
    b.get("/").assert_status(303);
}

trait AssertOk {
    fn assert_error_free(&self);
}

impl AssertOk for crate::support::app::Resp {
    fn assert_error_free(&self) {
        assert_eq!(self.status, 200, "{}", self.text);
    }
}

#[test]
fn a_viewer_sees_everything_and_can_change_nothing() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let _admin = setup_admin(&app, "anna");
    let rule = rule_via_api(&app, &receiver.url("/hook"));
    let id = rule["id"].as_str().unwrap();
    let event = app.ingest(&json!({"type": "member:created", "data": {}}));
    let delivery = app.wait_settled(event.body["id"].as_str().unwrap(), Duration::from_secs(10))[0]
        ["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let viewer = user(&app, "victor", UserRole::Viewer);
    for path in [
        "/",
        "/rules",
        "/routines",
        &format!("/rules/{id}"),
        "/deliveries",
        &format!("/deliveries/{delivery}"),
    ] {
        let page = viewer.get(path);
        assert_eq!(page.status, 200, "{path}");
        for control in [
            "id=\"edit-rule\"",
            "id=\"rotate-secret\"",
            "id=\"new-rule\"",
            "id=\"redeliver\"",
            "href=\"/users\"",
        ] {
            assert!(
                !page.text.contains(control),
                "{path} shows {control} to a viewer"
            );
        }
    }
    for path in [
        "/rules/new",
        &format!("/rules/{id}/edit"),
        &format!("/rules/{id}/preview"),
        "/keys",
        "/users",
        "/settings",
        "/audit",
    ] {
        viewer.get(path).assert_status(403);
    }
    let before = app.get(&format!("/api/v1/rules/{id}")).body;
    let secret = app.secret(id);
    let keys_before = app.get("/api/v1/api-keys").body["data"]
        .as_array()
        .unwrap()
        .len();
    let received = receiver.count();
    // A valid token for the viewer's own session: refused for the role, not the token.
    let posts: Vec<(String, Vec<(&str, &str)>)> = vec![
        (
            "/rules/new".into(),
            vec![
                ("name", "x"),
                ("events", "ping"),
                ("url", "http://127.0.0.1:9/"),
                ("max_concurrency", "8"),
                ("timeout_s", "1"),
                ("trigger_type", "event"),
            ],
        ),
        (
            format!("/rules/{id}/edit"),
            vec![
                ("name", "hacked"),
                ("events", "ping"),
                ("url", "http://127.0.0.1:9/"),
                ("max_concurrency", "8"),
                ("timeout_s", "1"),
                ("trigger_type", "event"),
            ],
        ),
        (format!("/rules/{id}/active"), vec![("active", "false")]),
        (format!("/rules/{id}/delete"), vec![]),
        (format!("/rules/{id}/rotate"), vec![]),
        (format!("/rules/{id}/secret"), vec![]),
        (format!("/rules/{id}/test"), vec![]),
        (format!("/deliveries/{delivery}/redeliver"), vec![]),
        (
            format!("/rules/{id}/redeliver-failed"),
            vec![("since", "2000-01-01T00:00")],
        ),
        ("/keys".into(), vec![("name", "mine"), ("role", "admin")]),
        (
            "/users".into(),
            vec![
                ("username", "mallory"),
                ("role", "admin"),
                ("password", PASSWORD),
            ],
        ),
    ];
    for (path, fields) in &posts {
        let page = viewer.post(path, fields);
        assert_eq!(page.status, 403, "viewer POST {path}: {}", page.text);
        assert!(page.text.contains("viewer role"), "{path}");
    }
    let after = app.get(&format!("/api/v1/rules/{id}")).body;
    assert_eq!(before, after, "the rule did not change");
    assert_eq!(app.secret(id), secret, "the secret was not rotated");
    assert_eq!(
        app.get("/api/v1/api-keys").body["data"]
            .as_array()
            .unwrap()
            .len(),
        keys_before
    );
    assert!(app.store().user_by_name("mallory").unwrap().is_none());
    assert_eq!(receiver.count(), received, "no test event was sent");
    assert_eq!(
        app.get(&format!("/api/v1/deliveries/{delivery}")).body["attempts"]
            .as_array()
            .unwrap()
            .len(),
        1
    );
    let views = audit_actions(&app)
        .iter()
        .filter(|e| e["action"] == "rule.secret.view" && e["actor"]["type"] == "user")
        .count();
    assert_eq!(views, 0);
    assert_eq!(app.get(&format!("/api/v1/rules/{id}")).body["active"], true);
}

#[test]
fn an_editor_manages_rules_but_not_users_or_keys() {
    let app = spawn_app();
    let _admin = setup_admin(&app, "anna");
    let editor = user(&app, "eddie", UserRole::Editor);
    editor.get("/rules/new").assert_status(200);
    let made = editor.post(
        "/rules/new",
        &[
            ("name", "Intake"),
            ("active", "true"),
            ("trigger_type", "event"),
            ("events", "form:*"),
            ("url", "http://127.0.0.1:9/hook"),
            ("method", "POST"),
            ("content_type", "application/json"),
            ("signing", "hmac-sha256"),
            ("payload_format", "flat"),
            ("tls_verify", "true"),
            ("timeout_s", "5"),
            ("max_concurrency", "4"),
        ],
    );
    assert_eq!(made.status, 303, "{}", made.text);
    assert!(made.location().ends_with("?done=created"));
    let rules = app.get("/api/v1/rules").body["data"]
        .as_array()
        .unwrap()
        .clone();
    assert_eq!(rules.len(), 1);
    let create = audit_actions(&app)
        .into_iter()
        .find(|e| e["action"] == "rule.create")
        .unwrap();
    assert_eq!(
        create["actor"],
        json!({"type": "user", "id": create["actor"]["id"], "name": "eddie"})
    );
    for path in ["/keys", "/users", "/settings", "/audit"] {
        editor.get(path).assert_status(403);
    }
    editor
        .post(
            "/users",
            &[("username", "x"), ("role", "admin"), ("password", PASSWORD)],
        )
        .assert_status(403);
}

#[test]
fn a_post_without_the_sessions_csrf_token_is_refused() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let rule = rule_via_api(&app, "http://127.0.0.1:9/hook");
    let id = rule["id"].as_str().unwrap();
    let path = format!("/rules/{id}/delete");
    admin.post_raw(&path, &[]).assert_status(403);
    let wrong = admin.post_raw(&path, &[("csrf", "not-the-token")]);
    wrong.assert_status(403);
    assert!(wrong.text.contains("nothing was changed"));
    // Another session's token does not do either.
    let other = user(&app, "bob", UserRole::Admin);
    admin
        .post_raw(&path, &[("csrf", &other.csrf())])
        .assert_status(403);
    app.get(&format!("/api/v1/rules/{id}")).assert_error_free();
    // Sign-in needs the token its form was served with.
    let b = Browser::new(&app);
    b.post_raw("/login", &[("username", "anna"), ("password", PASSWORD)])
        .assert_status(403);
    // With the right token it goes through.
    let done = admin.post(&path, &[]);
    assert_eq!(done.status, 303, "{}", done.text);
    assert_eq!(app.get(&format!("/api/v1/rules/{id}")).status, 404);
    assert!(admin.get(done.location()).text.contains("Rule deleted"));
}

pub(crate) fn form_fields<'a>(url: &'a str, name: &'a str) -> Vec<(&'a str, &'a str)> {
    vec![
        ("name", name),
        ("description", "sends members"),
        ("active", "true"),
        ("trigger_type", "event"),
        ("events", "member:*\nping"),
        ("cron", ""),
        ("timezone", "UTC"),
        ("condition", ""),
        ("url", url),
        ("method", "PUT"),
        ("content_type", "application/json"),
        ("header_name", "X-Clinic"),
        ("header_value", "north"),
        ("header_name", ""),
        ("header_value", ""),
        ("secret_name", "Authorization"),
        ("secret_value", "Bearer s3cret"),
        ("secret_name", ""),
        ("secret_value", ""),
        ("signing", "standard-webhooks"),
        ("payload_format", "envelope"),
        ("body_template", ""),
        ("timeout_s", "7"),
        ("max_concurrency", "3"),
    ]
}

#[test]
fn the_rule_form_saves_what_the_api_would_and_keeps_secret_values_write_only() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let admin = setup_admin(&app, "anna");
    admin.get("/rules/new");
    let url = receiver.url("/hook");
    let made = admin.post("/rules/new", &form_fields(&url, "CRM"));
    assert_eq!(made.status, 303, "{}", made.text);
    let id = made
        .location()
        .trim_start_matches("/rules/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let rule = app.get(&format!("/api/v1/rules/{id}")).body;
    assert_eq!(rule["name"], "CRM");
    assert_eq!(rule["description"], "sends members");
    assert_eq!(
        rule["trigger"],
        json!({"type": "event", "events": ["member:*", "ping"]})
    );
    assert_eq!(rule["max_concurrency"], 3);
    let w = &rule["webhook"];
    assert_eq!(w["method"], "PUT");
    assert_eq!(w["headers"], json!({"X-Clinic": "north"}));
    assert_eq!(w["secret_headers"], json!({"Authorization": "********"}));
    assert_eq!(w["signing"], "standard-webhooks");
    assert_eq!(w["payload_format"], "envelope");
    assert_eq!(w["tls_verify"], false, "the checkbox was not sent");
    assert_eq!(w["timeout_ms"], 7000);
    // The detail page flags the unsafe setting.
    assert!(
        admin
            .get(&format!("/rules/{id}"))
            .text
            .contains("off: unsafe")
    );
    // Edit: a blank secret value keeps the stored one; the rest is replaced.
    let mut fields = form_fields(&url, "CRM v2");
    for f in &mut fields {
        if f.0 == "secret_value" {
            f.1 = "";
        }
    }
    fields.push(("tls_verify", "true"));
    admin.get(&format!("/rules/{id}/edit"));
    let saved = admin.post(&format!("/rules/{id}/edit"), &fields);
    assert_eq!(saved.status, 303, "{}", saved.text);
    // The form saves a draft (SPEC §14); publishing it makes it live.
    assert_eq!(app.get(&format!("/api/v1/rules/{id}")).body["name"], "CRM");
    let published = admin.post(&format!("/rules/{id}/draft/publish"), &[]);
    assert_eq!(published.status, 303, "{}", published.text);
    let rule = app.get(&format!("/api/v1/rules/{id}")).body;
    assert_eq!(rule["name"], "CRM v2");
    assert_eq!(rule["webhook"]["tls_verify"], true);
    let update = audit_actions(&app)
        .into_iter()
        .find(|e| e["action"] == "rule.publish")
        .unwrap();
    assert_eq!(update["before"]["name"], "CRM");
    assert_eq!(update["actor"]["name"], "anna");
    // The kept secret header still goes out.
    let sent = admin.post(&format!("/rules/{id}/test"), &[("event_type", "ping")]);
    assert_eq!(sent.status, 303, "{}", sent.text);
    let got = receiver.wait_for(1, Duration::from_secs(10));
    assert_eq!(got[0].header("authorization"), Some("Bearer s3cret"));
    assert_eq!(got[0].header("x-clinic"), Some("north"));
    assert!(got[0].header("webhook-signature").is_some());
}

#[test]
fn form_errors_are_shown_at_the_field_with_what_was_typed() {
    let app = spawn_app_prod();
    let admin = setup_admin(&app, "anna");
    admin.get("/rules/new");
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (vec![("name", "")], "err-name"),
        (vec![("url", "http://insecure.example/hook")], "err-url"),
        (vec![("events", "Not A Pattern")], "err-events"),
        (vec![("timeout_s", "soon")], "err-timeout_s"),
        (vec![("max_concurrency", "0")], "err-max_concurrency"),
        (
            vec![("header_name", "Host"), ("header_value", "x")],
            "err-headers",
        ),
        (vec![("condition", "data.x ==")], "err-condition"),
        (
            vec![
                ("payload_format", "template"),
                ("body_template", "{\"a\": {{ member.id }"),
            ],
            "err-",
        ),
    ];
    for (overrides, marker) in cases {
        let mut fields = form_fields("https://receiver.example.com/hook", "Typed name");
        for (k, v) in &overrides {
            if let Some(f) = fields.iter_mut().find(|f| f.0 == *k) {
                f.1 = v;
            } else {
                fields.push((k, v));
            }
        }
        let page = admin.post("/rules/new", &fields);
        assert_eq!(page.status, 400, "{overrides:?}: {}", page.text);
        assert!(
            page.text.contains(&format!("id=\"{marker}")),
            "{overrides:?}: no {marker}:\n{}",
            page.text
        );
        assert!(page.text.contains("The rule was not saved"));
        assert!(page.text.contains("aria-invalid=\"true\""), "{overrides:?}");
        // What was typed comes back.
        assert!(page.text.contains("sends members"), "{overrides:?}");
        assert!(page.text.contains("value=\"X-Clinic\"") || overrides[0].0 == "header_name");
        if overrides[0].0 != "name" {
            assert!(page.text.contains("value=\"Typed name\""), "{overrides:?}");
        }
    }
    // A schedule trigger goes to the same validation (refused until routines land, or for
    // a bad cron after): either way the error is shown at the trigger fields.
    let mut fields = form_fields("https://receiver.example.com/hook", "Morning");
    for f in &mut fields {
        if f.0 == "trigger_type" {
            f.1 = "schedule";
        }
        if f.0 == "cron" {
            f.1 = "not a cron";
        }
    }
    let page = admin.post("/rules/new", &fields);
    page.assert_status(400);
    assert!(
        page.text.contains("id=\"err-trigger\"") || page.text.contains("id=\"err-cron\""),
        "{}",
        page.text
    );
    assert!(page.text.contains("value=\"not a cron\""));
    assert!(
        app.get("/api/v1/rules").body["data"]
            .as_array()
            .unwrap()
            .is_empty(),
        "nothing saved"
    );
}

fn spawn_app_prod() -> TestApp {
    crate::support::app::spawn_app_with(|c| c.mode = tidings::config::Mode::Production)
}

#[test]
fn secret_reveal_is_audited_and_rotation_shows_the_new_secret_once() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let rule = rule_via_api(&app, "http://127.0.0.1:9/hook");
    let id = rule["id"].as_str().unwrap();
    let page = admin.get(&format!("/rules/{id}"));
    assert!(!page.text.contains("id=\"revealed-secret\""));
    let posted = admin.post(&format!("/rules/{id}/secret"), &[]);
    posted.assert_status(303);
    let shown = admin.get(posted.location());
    shown.assert_status(200);
    assert_eq!(shown.header("cache-control"), Some("no-store"));
    let secret = shown.by_id("revealed-secret").unwrap();
    assert_eq!(secret, app.secret(id));
    let view = audit_actions(&app)
        .into_iter()
        .find(|e| e["action"] == "rule.secret.view" && e["actor"]["type"] == "user")
        .expect("the view is audited");
    assert_eq!(view["actor"]["name"], "anna");
    let posted = admin.post(&format!("/rules/{id}/rotate"), &[]);
    posted.assert_status(303);
    let rotated = admin.get(posted.location());
    rotated.assert_status(200);
    let new_secret = rotated.by_id("revealed-secret").unwrap();
    assert_ne!(new_secret, secret);
    assert_eq!(new_secret, app.secret(id));
    assert!(rotated.text.contains("previous one keeps signing"));
    assert!(has_action(&app, "rule.secret.rotate"));
    // Turning the rule off and on.
    admin
        .post(&format!("/rules/{id}/active"), &[("active", "false")])
        .assert_status(303);
    assert_eq!(
        app.get(&format!("/api/v1/rules/{id}")).body["status"],
        "inactive"
    );
    assert!(admin.get("/rules").text.contains("badge-inactive"));
    admin
        .post(&format!("/rules/{id}/active"), &[("active", "true")])
        .assert_status(303);
    assert_eq!(
        app.get(&format!("/api/v1/rules/{id}")).body["status"],
        "active"
    );
    assert!(has_action(&app, "rule.deactivate") && has_action(&app, "rule.activate"));
}

#[test]
fn a_test_event_is_previewed_before_it_is_sent_and_then_shown_with_its_answer() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let admin = setup_admin(&app, "anna");
    let rule = rule_via_api(&app, &receiver.url("/hook"));
    let id = rule["id"].as_str().unwrap();
    let preview = admin.get(&format!("/rules/{id}/preview?event_type=member:created"));
    preview.assert_status(200);
    assert!(preview.text.contains("X-Webhook-Signature"));
    assert!(preview.text.contains(&receiver.url("/hook")));
    assert!(
        preview.text.contains("********"),
        "secret header value redacted"
    );
    assert!(!preview.text.contains("s3cret"));
    assert_eq!(receiver.count(), 0, "a preview sends nothing");
    let sent = admin.post(
        &format!("/rules/{id}/test"),
        &[("event_type", "member:created")],
    );
    assert_eq!(sent.status, 303, "{}", sent.text);
    assert!(sent.location().starts_with("/deliveries/dlv_"));
    assert_eq!(receiver.wait_for(1, Duration::from_secs(10)).len(), 1);
    let page = admin.get(sent.location());
    page.assert_status(200);
    assert!(
        page.text.contains("Attempt 1: succeeded, HTTP 200"),
        "{}",
        page.text
    );
    assert!(page.text.contains("badge-test"));
    assert!(page.text.contains("member:created"));
    // It is in the rule's history.
    let dlv = sent
        .location()
        .trim_start_matches("/deliveries/")
        .split('?')
        .next()
        .unwrap();
    assert!(admin.get(&format!("/rules/{id}")).text.contains(dlv));
}

#[test]
fn the_delivery_log_filters_and_pages_by_cursor() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let admin = setup_admin(&app, "anna");
    let rule = rule_via_api(&app, &receiver.url("/hook"));
    let id = rule["id"].as_str().unwrap();
    let mut last = String::new();
    for i in 0..55 {
        let kind = if i % 5 == 0 {
            "member:deleted"
        } else {
            "member:created"
        };
        last = app.ingest(&json!({"type": kind, "data": {}})).body["id"]
            .as_str()
            .unwrap()
            .to_owned();
    }
    app.wait_settled(&last, Duration::from_secs(20));
    receiver.wait_for(55, Duration::from_secs(20));
    let first = admin.get("/deliveries");
    first.assert_status(200);
    assert_eq!(first.text.matches("href=\"/deliveries/dlv_").count(), 50);
    let older = first.text.find("id=\"older\"").expect("an Older link");
    let href_start = first.text[..older].rfind("href=\"").unwrap() + 6;
    let href = first.text[href_start..older]
        .trim_end_matches("\" ")
        .replace("&amp;", "&");
    let second = admin.get(&href);
    second.assert_status(200);
    assert_eq!(second.text.matches("href=\"/deliveries/dlv_").count(), 5);
    assert!(!second.text.contains("id=\"older\""));
    let deleted = admin.get(&format!(
        "/deliveries?rule_id={id}&status=succeeded&event_type=member:deleted"
    ));
    assert_eq!(deleted.text.matches("href=\"/deliveries/dlv_").count(), 11);
    assert!(
        deleted.text.contains("value=\"member:deleted\""),
        "filters are kept"
    );
    let failed = admin.get("/deliveries?status=failed");
    assert!(failed.text.contains("No deliveries match"));
    let future = admin.get("/deliveries?since=2099-01-01T00:00");
    assert!(future.text.contains("No deliveries match"));
    let all_time = admin.get("/deliveries?since=2000-01-01T00:00&until=2099-01-01T00:00");
    assert_eq!(all_time.text.matches("href=\"/deliveries/dlv_").count(), 50);
    admin.get("/deliveries?since=yesterday").assert_status(400);
    admin.get("/deliveries?cursor=bogus").assert_status(400);
    // The dashboard counts the hour's outcomes.
    let home = admin.get("/");
    assert_eq!(home.by_id("stat-day-ok").as_deref(), Some("55"));
    assert!(home.text.contains("55 succeeded and 0 failed"));
}

#[test]
fn a_failed_delivery_explains_itself_and_can_be_sent_again() {
    let app = spawn_app_with_one_attempt();
    let receiver = TestReceiver::start();
    let admin = setup_admin(&app, "anna");
    // Nothing listens on the discard port: a connection error.
    let rule = rule_via_api(&app, "http://127.0.0.1:9/hook");
    let event = app.ingest(&json!({"type": "member:created", "data": {}}));
    let d = app.wait_settled(event.body["id"].as_str().unwrap(), Duration::from_secs(10));
    let id = d[0]["id"].as_str().unwrap();
    let page = admin.get(&format!("/deliveries/{id}"));
    page.assert_status(200);
    assert!(page.text.contains("badge-failed"));
    assert!(
        page.text.contains("<strong>connect</strong>"),
        "{}",
        page.text
    );
    assert!(page.text.contains("nothing is listening at that address"));
    // The dashboard lists it as failing (the dispatcher records that as the attempt fails).
    wait_until(
        Duration::from_secs(10),
        "the rule to show as failing",
        || {
            admin
                .get("/")
                .text
                .contains("every attempt has failed since")
                .then_some(())
        },
    );
    assert!(admin.get("/rules").text.contains("badge-failing"));
    // Fix the URL through the API, then re-send from the page.
    let rid = rule["id"].as_str().unwrap();
    app.send(
        "PATCH",
        &format!("/api/v1/rules/{rid}"),
        &json!({"webhook": {"url": receiver.url("/hook")}}),
    );
    let again = admin.post(&format!("/deliveries/{id}/redeliver"), &[]);
    assert_eq!(again.status, 303, "{}", again.text);
    receiver.wait_for(1, Duration::from_secs(10));
    wait_until(Duration::from_secs(10), "the re-send to be logged", || {
        admin
            .get(&format!("/deliveries/{id}"))
            .text
            .contains("Attempt 2: succeeded")
            .then_some(())
    });
    assert!(has_action(&app, "delivery.redeliver"));
    let home = admin.get("/");
    assert_eq!(home.by_id("stat-day-failed").as_deref(), Some("1"));
    // Bulk: break the URL again, let two deliveries fail, fix it, re-send the failed ones.
    app.send(
        "PATCH",
        &format!("/api/v1/rules/{rid}"),
        &json!({"webhook": {"url": "http://127.0.0.1:9/hook"}}),
    );
    for _ in 0..2 {
        let e = app.ingest(&json!({"type": "member:updated", "data": {}}));
        app.wait_settled(e.body["id"].as_str().unwrap(), Duration::from_secs(10));
    }
    app.send(
        "PATCH",
        &format!("/api/v1/rules/{rid}"),
        &json!({"webhook": {"url": receiver.url("/hook")}}),
    );
    admin.get(&format!("/rules/{rid}"));
    admin
        .post(
            &format!("/rules/{rid}/redeliver-failed"),
            &[("since", "soon")],
        )
        .assert_status(400);
    let bulk = admin.post(
        &format!("/rules/{rid}/redeliver-failed"),
        &[("since", "2000-01-01T00:00"), ("until", "")],
    );
    bulk.assert_status(303);
    let bulk = admin.get(bulk.location());
    assert!(
        bulk.text.contains("2 failed deliveries queued"),
        "{}",
        bulk.text
    );
    receiver.wait_for(3, Duration::from_secs(10));
    assert!(has_action(&app, "rule.redeliver_failed"));
}

fn spawn_app_with_one_attempt() -> TestApp {
    crate::support::app::spawn_app_with(|c| c.retry.max_attempts = 1)
}

#[test]
fn sign_in_is_rate_limited_per_username_and_address_and_audited() {
    let app = spawn_app();
    let _admin = setup_admin(&app, "anna");
    let b = Browser::new(&app);
    for _ in 0..5 {
        let page = b.login("anna", "wrong password!!");
        page.assert_status(401);
        assert!(page.text.contains("do not match"));
        assert!(page.text.contains("value=\"anna\""), "the username is kept");
    }
    let blocked = b.login("anna", PASSWORD);
    blocked.assert_status(429);
    assert!(blocked.text.contains("Too many failed sign-ins"));
    // Another account from the same address is not locked out.
    let _bob = user(&app, "bob", UserRole::Viewer);
    assert_eq!(b.login("nobody", "whatever at all").status, 401);
    let failures = audit_actions(&app)
        .iter()
        .filter(|e| e["action"] == "user.login_failed")
        .count();
    assert_eq!(failures, 6);
    assert!(
        !audit_actions(&app)
            .iter()
            .any(|e| e.to_string().contains("wrong password")),
        "passwords are never logged"
    );
}

#[test]
fn sign_out_ends_the_session_for_good() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let cookie = admin.cookie("tidings_session").unwrap();
    let out = admin.post("/logout", &[]);
    out.assert_status(303);
    assert_eq!(out.location(), "/login?signed_out=1");
    assert!(
        admin.cookie("tidings_session").is_none(),
        "the cookie is cleared"
    );
    let replay = Browser::new(&app);
    replay.set_cookie("tidings_session", &cookie);
    replay.get("/").assert_status(303);
    assert!(has_action(&app, "user.logout"));
}

#[test]
fn admins_make_api_keys_shown_once_and_users_who_can_sign_in() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    admin.get("/keys");
    let made = admin.post("/keys", &[("name", "EHR"), ("role", "ingest")]);
    made.assert_status(303);
    let made = admin.get(made.location());
    made.assert_status(200);
    let key = made.by_id("new-key").unwrap();
    assert!(key.starts_with("tdk_"));
    let ok = app.raw(
        "POST",
        "/api/v1/events",
        Some(&key),
        Some(br#"{"type":"ping"}"#),
        &[],
    );
    assert_eq!(ok.status, 202, "{}", ok.text);
    let listed = admin.get("/keys");
    assert!(listed.text.contains("EHR"));
    assert!(!listed.text.contains(&key), "shown once only");
    admin
        .post("/keys", &[("name", ""), ("role", "ingest")])
        .assert_status(400);
    let key_id = app.get("/api/v1/api-keys").body["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|k| k["name"] == "EHR")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    admin
        .post(&format!("/keys/{key_id}/delete"), &[])
        .assert_status(303);
    assert_eq!(
        app.raw(
            "POST",
            "/api/v1/events",
            Some(&key),
            Some(br#"{"type":"ping"}"#),
            &[]
        )
        .status,
        401
    );

    admin.get("/users");
    let added = admin.post(
        "/users",
        &[
            ("username", "Victor"),
            ("role", "viewer"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
    );
    assert_eq!(added.status, 303, "{}", added.text);
    admin
        .post(
            "/users",
            &[
                ("username", "victor"),
                ("role", "viewer"),
                ("password", PASSWORD),
                ("confirm", PASSWORD),
            ],
        )
        .assert_status(400);
    admin
        .post(
            "/users",
            &[
                ("username", "weak"),
                ("role", "viewer"),
                ("password", "short"),
                ("confirm", "short"),
            ],
        )
        .assert_status(400);
    let victor = Browser::new(&app);
    victor.login("victor", PASSWORD).assert_status(303);
    let vid = app.store().user_by_name("victor").unwrap().unwrap().id;
    admin.get("/users");
    admin
        .post(&format!("/users/{vid}/delete"), &[])
        .assert_status(303);
    victor.get("/").assert_status(303);
    // The last admin cannot be removed, nor can you remove yourself.
    let me = app.store().user_by_name("anna").unwrap().unwrap().id;
    admin
        .post(&format!("/users/{me}/delete"), &[])
        .assert_status(409);
    assert!(has_action(&app, "user.delete"));
}

#[test]
fn the_settings_page_shows_the_effective_config_with_the_key_path_masked() {
    let app = crate::support::app::spawn_app_with(|c| c.retry.max_attempts = 7);
    let admin = setup_admin(&app, "anna");
    let page = admin.get("/settings");
    page.assert_status(200);
    assert!(page.text.contains("max_attempts = 7"));
    assert!(page.text.contains("development mode"));
}

#[test]
fn user_add_on_the_command_line_makes_a_user_who_can_sign_in() {
    use crate::support::process::{Scratch, run, tidings};
    if crate::support::postgres::redb_only("the CLI on the data dir") {
        return;
    }
    let scratch = Scratch::new("user-add");
    let data = scratch.path("data");
    let mut cmd = tidings();
    cmd.args(["user", "add", "--data-dir"]).arg(&data).args([
        "--username",
        "Carol",
        "--role",
        "editor",
    ]);
    cmd.env("TIDINGS_PASSWORD", PASSWORD);
    let ran = run(cmd);
    assert!(ran.success(), "{ran:?}");
    assert!(ran.stdout.contains("editor user carol added"), "{ran:?}");
    assert!(!ran.stdout.contains(PASSWORD) && !ran.stderr.contains(PASSWORD));
    let mut cmd = tidings();
    cmd.args(["user", "add", "--data-dir"]).arg(&data).args([
        "--username",
        "dan",
        "--role",
        "root",
    ]);
    cmd.env("TIDINGS_PASSWORD", PASSWORD);
    assert!(!run(cmd).success());
    let mut cmd = tidings();
    cmd.args(["user", "add", "--data-dir"]).arg(&data).args([
        "--username",
        "dan",
        "--role",
        "viewer",
    ]);
    cmd.env("TIDINGS_PASSWORD", "short");
    let ran = run(cmd);
    assert!(!ran.success());
    assert!(ran.stderr.contains("at least 12"), "{ran:?}");
    let mut config = crate::support::app::test_config(&data);
    config.data_dir.clone_from(&data);
    let app = crate::support::app::start(config);
    assert_eq!(app.setup_token(), None, "no setup link once a user exists");
    let b = Browser::new(&app);
    b.login("carol", PASSWORD).assert_status(303);
    assert!(b.get("/rules/new").status == 200, "an editor");
    // While the server holds the database, the CLI says so instead of failing obscurely.
    let mut cmd = tidings();
    cmd.args(["user", "add", "--data-dir"]).arg(&data).args([
        "--username",
        "erin",
        "--role",
        "viewer",
    ]);
    cmd.env("TIDINGS_PASSWORD", PASSWORD);
    let ran = run(cmd);
    assert!(!ran.success());
    assert!(
        ran.stderr.contains("in use by another tidings process"),
        "{ran:?}"
    );
}

#[test]
fn under_tls_the_cookies_are_secure_and_host_prefixed() {
    use crate::support::process::Scratch;
    use crate::support::receiver::TestCa;
    let scratch = Scratch::new("ui-tls");
    let ca = TestCa::new();
    let (cert, key) = ca.server_pems();
    let cert_path = scratch.write("cert.pem", &cert);
    let key_path = scratch.write("key.pem", &key);
    let app = crate::support::app::spawn_app_with(|c| {
        c.tls.cert = cert_path.to_string_lossy().into_owned();
        c.tls.key = key_path.to_string_lossy().into_owned();
    });
    let root = ureq::tls::Certificate::from_der(&ca.ca_der()).to_owned();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                    root,
                ])))
                .build(),
        )
        .build()
        .new_agent();
    let base = format!("https://127.0.0.1:{}", app.port);
    let token = app.setup_token().unwrap();
    let form = agent
        .get(format!("{base}/setup?token={token}"))
        .call()
        .unwrap();
    let form_cookie = form
        .headers()
        .get("set-cookie")
        .unwrap()
        .to_str()
        .unwrap()
        .to_owned();
    assert!(form_cookie.contains("; Secure"), "{form_cookie}");
    let form_token = form_cookie
        .split(';')
        .next()
        .unwrap()
        .trim_start_matches("tidings_form=")
        .to_owned();
    let done = agent
        .post(format!("{base}/setup"))
        .header("Cookie", format!("tidings_form={form_token}"))
        .send_form([
            ("form_token", form_token.as_str()),
            ("token", token.as_str()),
            ("username", "anna"),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ])
        .unwrap();
    assert_eq!(done.status().as_u16(), 303);
    let session = done
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|v| v.contains("tidings_session="))
        .unwrap();
    assert!(session.starts_with("__Host-tidings_session="), "{session}");
    assert!(
        session.contains("; Secure")
            && session.contains("HttpOnly")
            && session.contains("SameSite=Strict"),
        "{session}"
    );
    let pair = session.split(';').next().unwrap().to_owned();
    let home = agent
        .get(format!("{base}/"))
        .header("Cookie", pair)
        .call()
        .unwrap();
    assert_eq!(home.status().as_u16(), 200);
}

#[test]
fn what_people_type_is_shown_as_text_never_as_markup() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let evil = "<script>alert(1)</script>\"><img src=x onerror=alert(2)>";
    let rule = app.create_rule_with(json!({
        "name": evil, "description": evil,
        "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {"url": "http://127.0.0.1:9/hook", "headers": {"X-Note": evil}},
    }));
    let id = rule["id"].as_str().unwrap();
    for path in [
        "/rules".to_owned(),
        format!("/rules/{id}"),
        format!("/rules/{id}/edit"),
        "/deliveries".to_owned(),
    ] {
        let page = admin.get(&path);
        page.assert_status(200);
        assert!(!page.text.contains("<script>alert"), "{path}");
        assert!(!page.text.contains("<img src=x"), "{path}");
    }
    let page = admin.get(&format!("/rules/{id}"));
    assert!(
        page.text
            .contains("&#60;script&#62;alert(1)&#60;/script&#62;"),
        "shown escaped: {}",
        page.text
    );
}

#[test]
fn user_add_reads_the_password_from_standard_input() {
    use std::io::Write;
    use std::process::Stdio;
    let scratch = crate::support::process::Scratch::new("user-add-stdin");
    let data = scratch.path("data");
    let mut cmd = crate::support::process::tidings();
    cmd.args(["user", "add", "--data-dir"])
        .arg(&data)
        .args(["--username", "frank", "--role", "viewer"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(format!("{PASSWORD}\n").as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success(), "{out:?}");
    let store =
        tidings::store::RedbStore::open(&data, tidings::domain::time::Clock::system()).unwrap();
    let user = store.user_by_name("frank").unwrap().unwrap();
    assert_eq!(user.role, UserRole::Viewer);
    assert!(tidings::security::passwords::verify_password(
        PASSWORD,
        &user.password_hash
    ));
    assert!(
        !tidings::security::passwords::verify_password(
            &format!("{PASSWORD}\n"),
            &user.password_hash
        ),
        "the newline is not part of it"
    );
}
