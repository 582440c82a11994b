//! The admin UI speaks to an office manager: an empty dashboard and rules page say what to
//! do next, the keys page shows where and how a source system posts its events, the
//! delivery log says what happened to each delivery, and error pages keep their way back.

use std::time::Duration;

use serde_json::json;

use crate::support::app::{spawn_app, spawn_app_with, wait_until};
use crate::support::receiver::{Reply, TestReceiver};
use crate::support::ui::setup_admin;

const WAIT: Duration = Duration::from_secs(20);

/// `2026-11-23 10:00:05 UTC`, as the pages show a time.
fn fmt_time(ms: i64) -> String {
    let s = tidings::domain::time::to_rfc3339(ms - ms.rem_euclid(1000));
    s.replacen('T', " ", 1).replace('Z', " UTC")
}

#[test]
fn an_empty_dashboard_and_rules_page_list_the_first_steps_until_they_are_done() {
    let app = spawn_app();
    // A first run has no ingest key; the harness makes one for its own use.
    let keys = app.get("/api/v1/api-keys").body;
    for k in keys["data"].as_array().unwrap() {
        if k["role"] == "ingest" {
            let path = format!("/api/v1/api-keys/{}", k["id"].as_str().unwrap());
            assert_eq!(app.send("DELETE", &path, &json!({})).status, 204);
        }
    }
    let admin = setup_admin(&app, "anna");
    let dash = admin.get("/");
    dash.assert_status(200);
    assert!(
        dash.text.contains("id=\"getting-started\""),
        "{}",
        dash.text
    );
    for step in ["step-rule", "step-secret", "step-test", "step-key"] {
        assert!(dash.text.contains(&format!("id=\"{step}\"")), "{step}");
    }
    assert!(dash.text.contains("href=\"/rules/new\">Create a rule"));
    assert!(dash.text.contains("href=\"/keys\">Make an ingest key"));
    let rules = admin.get("/rules");
    rules.assert_status(200);
    assert!(rules.text.contains("id=\"no-rules\""));
    assert!(rules.text.contains("id=\"getting-started\""));

    // A rule: its step is done and the secret step links to it; the key step is still open.
    let rule = app.create_rule("http://127.0.0.1:9/hook", &["member:*"]);
    let id = rule["id"].as_str().unwrap();
    let dash = admin.get("/");
    assert!(dash.text.contains("id=\"step-rule\" class=\"done\""));
    assert!(
        dash.text
            .contains(&format!("href=\"/rules/{id}\">Open the rule"))
    );
    assert!(!admin.get("/rules").text.contains("getting-started"));

    // An admin key is not what the EHR needs; an ingest key is, and then the list goes.
    admin.get("/keys");
    admin
        .post("/keys", &[("name", "Ops"), ("role", "admin")])
        .assert_status(303);
    assert!(admin.get("/").text.contains("getting-started"));
    admin
        .post("/keys", &[("name", "EHR"), ("role", "ingest")])
        .assert_status(303);
    let dash = admin.get("/");
    assert!(!dash.text.contains("getting-started"), "{}", dash.text);
}

#[test]
fn the_keys_page_shows_the_ingest_url_an_example_and_copy_buttons() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let page = admin.get("/keys");
    page.assert_status(200);
    let url = app.url("/api/v1/events");
    assert_eq!(page.by_id("ingest-url").as_deref(), Some(url.as_str()));
    let example = page.by_id("ingest-example").unwrap();
    assert!(
        example.starts_with(&format!("curl -X POST {url}")),
        "{example}"
    );
    assert!(example.contains("Authorization: Bearer YOUR_INGEST_KEY"));
    assert!(page.text.contains("data-copy=\"#ingest-url\""));
    assert!(page.text.contains("data-copy=\"#ingest-example\""));
    // Copy buttons need the script, so they are hidden without it (js-only).
    assert!(
        page.text
            .contains("class=\"secondary small js-only\" data-copy")
    );

    // The new key, shown once, has its own copy button; the example works as shown.
    let made = admin.post("/keys", &[("name", "EHR"), ("role", "ingest")]);
    let shown = admin.get(made.location());
    let key = shown.by_id("new-key").unwrap();
    assert!(shown.text.contains("data-copy=\"#new-key\""));
    let body = json!({"type": "member:created", "data": {"member": {"id": 42}}}).to_string();
    let sent = app.raw(
        "POST",
        "/api/v1/events",
        Some(&key),
        Some(body.as_bytes()),
        &[],
    );
    assert_eq!(sent.status, 202, "{}", sent.text);
}

/// The delivery with this id's row in the log, from its `<tr id>` to its end.
fn row<'a>(page: &'a crate::support::ui::Page, delivery_id: &str) -> &'a str {
    let start = page
        .text
        .find(&format!("<tr id=\"row-{delivery_id}\""))
        .unwrap_or_else(|| panic!("no row for {delivery_id}:\n{}", page.text));
    let end = page.text[start..].find("</tr>").unwrap() + start;
    &page.text[start..end]
}

#[test]
fn the_delivery_log_shows_the_answer_the_error_and_the_next_attempt() {
    let app = spawn_app_with(|c| {
        c.retry.base_delay = Duration::from_secs(600);
        c.retry.max_delay = Duration::from_secs(600);
    });
    let receiver = TestReceiver::start();
    receiver.reply_sequence(vec![Reply::status(503)]);
    let admin = setup_admin(&app, "anna");
    app.create_rule(&receiver.url("/hook"), &["member:*"]);
    let failing = app.ingest(&json!({"type": "member:created", "data": {"member": {"id": 1}}}));
    let failing_id = failing.body["id"].as_str().unwrap();
    let retrying = wait_until(WAIT, "the first attempt", || {
        let d = app.get(&format!("/api/v1/events/{failing_id}")).body["deliveries"][0].clone();
        (d["status"] == "retrying").then_some(d)
    });
    let rid = retrying["id"].as_str().unwrap();
    let page = admin.get("/deliveries");
    page.assert_status(200);
    let r = row(&page, rid);
    assert!(r.contains("<td class=\"more\">503</td>"), "{r}");
    assert!(r.contains("<td>error status</td>"), "{r}");
    let next = tidings::domain::time::parse_rfc3339(retrying["next_attempt_at"].as_str().unwrap())
        .unwrap();
    assert!(r.contains(&fmt_time(next)), "the next attempt's time: {r}");
    assert!(r.contains(&format!("class=\"rowlink\" href=\"/deliveries/{rid}\"")));
    // Something is waiting: the page refreshes itself (with the script) or says to reload.
    assert!(
        page.text
            .contains("id=\"delivery-list\" data-refresh=\"5\"")
    );
    assert!(page.text.contains("reload the page"));

    // Succeeded: its 200 and no error; with nothing waiting the list no longer refreshes.
    let ok = app.ingest(&json!({"type": "member:deleted", "data": {"member": {"id": 2}}}));
    let ok_delivery = app.wait_settled(ok.body["id"].as_str().unwrap(), WAIT);
    let oid = ok_delivery[0]["id"].as_str().unwrap();
    let page = admin.get("/deliveries?status=succeeded");
    let r = row(&page, oid);
    assert!(r.contains("<td class=\"more\">200</td>"), "{r}");
    assert!(r.contains("<td></td>"), "no error: {r}");
    assert!(!page.text.contains("data-refresh"));
}

#[test]
fn the_event_type_filter_takes_a_family_and_pages_through_all_of_it() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let admin = setup_admin(&app, "anna");
    app.create_rule(&receiver.url("/hook"), &["*"]);
    // 55 member events among 11 appointment events: more than one page of the family.
    let mut last = String::new();
    for i in 0..66 {
        let t = if i % 6 == 5 {
            "appointment:booked"
        } else {
            "member:created"
        };
        let e = app.ingest(&json!({"type": t, "data": {"member": {"id": i}}}));
        e.body["id"].as_str().unwrap().clone_into(&mut last);
    }
    app.wait_settled(&last, WAIT);
    let count = |text: &str, needle: &str| text.matches(needle).count();

    let first = admin.get("/deliveries?event_type=member%3A*");
    first.assert_status(200);
    assert_eq!(count(&first.text, "<tr id=\"row-"), 50, "a full first page");
    assert_eq!(count(&first.text, "<td>member:created"), 50);
    assert!(!first.text.contains("appointment:booked</td>"));
    assert!(
        first.text.contains("value=\"member:*\""),
        "the filter is kept"
    );
    let older = first
        .text
        .split("href=\"")
        .find(|s| s.starts_with("/deliveries?"))
        .map(|s| s[..s.find('"').unwrap()].replace("&#38;", "&"));
    let older = older.expect("a link to older deliveries");
    assert!(older.contains("event_type=member%3A*"), "{older}");
    let second = admin.get(&older);
    second.assert_status(200);
    assert_eq!(count(&second.text, "<tr id=\"row-"), 5, "{}", second.text);
    assert_eq!(count(&second.text, "<td>member:created"), 5);
    let ids = |t: &str| -> Vec<String> {
        t.split("<tr id=\"row-")
            .skip(1)
            .map(|s| s[..s.find('"').unwrap()].to_owned())
            .collect()
    };
    let mut all = ids(&first.text);
    all.extend(ids(&second.text));
    all.sort();
    all.dedup();
    assert_eq!(all.len(), 55, "every member delivery once");

    // "*" is every type; an exact type still works; a bad pattern says what is wrong.
    let every = admin.get("/deliveries?event_type=*");
    assert!(every.text.contains("appointment:booked</td>"));
    let exact = admin.get("/deliveries?event_type=appointment%3Abooked");
    assert_eq!(count(&exact.text, "<tr id=\"row-"), 11);
    let bad = admin.get("/deliveries?event_type=mem*ber%3A*");
    bad.assert_status(400);
    let message = bad.by_id("filter-error").unwrap();
    assert!(message.contains("family ending in *"), "{message}");
}

#[test]
fn error_pages_keep_the_navigation_of_whoever_is_signed_in() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let missing = admin.get("/no-such-page");
    missing.assert_status(404);
    assert!(
        missing.text.contains("aria-label=\"Main\""),
        "{}",
        missing.text
    );
    assert!(missing.text.contains("id=\"sign-out\""));
    assert!(
        !missing.text.contains("href=\"/login\""),
        "signed in already"
    );
    let gone = admin.get("/rules/rul_00000000000000000000000000000000");
    assert_eq!(gone.status, 404, "{}", gone.text);
    assert!(gone.text.contains("aria-label=\"Main\""));
    // A viewer refused an admin page still has their own navigation (without admin entries).
    let viewer = crate::support::ui::user(&app, "victor", tidings::domain::user::UserRole::Viewer);
    let refused = viewer.get("/keys");
    refused.assert_status(403);
    assert!(refused.text.contains("aria-label=\"Main\""));
    assert!(refused.text.contains("victor"));
    assert!(
        !refused.text.contains("href=\"/keys\""),
        "no admin entries for a viewer"
    );
    // Nobody signed in: no navigation, and a way to sign in.
    let anon = crate::support::ui::Browser::new(&app).get("/no-such-page");
    anon.assert_status(404);
    assert!(!anon.text.contains("aria-label=\"Main\""));
    assert!(anon.text.contains("href=\"/login\""));
}

#[test]
fn the_preview_says_its_webhook_id_is_a_sample() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    for signing in ["hmac-sha256", "standard-webhooks"] {
        let rule = app.create_rule_with(json!({
            "name": signing, "trigger": {"type": "event", "events": ["member:created"]},
            "webhook": {"url": "http://127.0.0.1:9/hook", "signing": signing},
        }));
        let id = rule["id"].as_str().unwrap();
        let page = admin.get(&format!("/rules/{id}/preview"));
        page.assert_status(200);
        let at = page
            .text
            .to_ascii_lowercase()
            .find("webhook-id</td>")
            .unwrap_or_else(|| panic!("an id header for {signing}:\n{}", page.text));
        let cell = &page.text[at..at + 400];
        assert!(cell.contains("class=\"help id-note\""), "{cell}");
        assert!(cell.contains("a sample id for this preview"), "{cell}");
    }
}

#[test]
fn the_audit_log_names_and_links_what_was_done_and_filters_by_action_actor_and_time() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let kept = app.create_rule_with(json!({
        "name": "Notify CRM", "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {"url": "http://127.0.0.1:9/hook"},
    }));
    let kept_id = kept["id"].as_str().unwrap();
    let gone = app.create_rule_with(json!({
        "name": "Old fax bridge", "trigger": {"type": "event", "events": ["fax:*"]},
        "webhook": {"url": "http://127.0.0.1:9/fax"},
    }));
    let gone_id = gone["id"].as_str().unwrap();
    assert_eq!(
        app.send("DELETE", &format!("/api/v1/rules/{gone_id}"), &json!({}))
            .status,
        204
    );
    admin.get(&format!("/rules/{kept_id}"));
    admin
        .post(&format!("/rules/{kept_id}/secret"), &[])
        .assert_status(303);

    let page = admin.get("/audit");
    page.assert_status(200);
    assert!(
        page.text
            .contains(&format!("<a href=\"/rules/{kept_id}\">rule Notify CRM</a>")),
        "{}",
        page.text
    );
    assert!(
        page.text.contains("rule Old fax bridge (deleted)"),
        "the name it had"
    );
    assert!(
        !page.text.contains(&format!("<code>rule {kept_id}")),
        "no raw ids"
    );
    assert!(
        page.text.contains("API key &#34;test admin&#34;"),
        "{}",
        page.text
    );

    // By action: a family, or one action.
    let rules_only = admin.get("/audit?action=rule.*");
    assert!(rules_only.text.contains("<code>rule.create</code>"));
    assert!(rules_only.text.contains("<code>rule.secret.view</code>"));
    assert!(!rules_only.text.contains("<code>user.create</code>"));
    let views = admin.get("/audit?action=rule.secret.view");
    assert_eq!(views.text.matches("<code>rule.").count(), 1);

    // By actor: anna's own entries, not the API key's.
    let users = app.get("/api/v1/audit?limit=250").body;
    let anna = users["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|e| e["actor"]["name"] == "anna")
        .expect("anna is in the log")["actor"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let hers = admin.get(&format!("/audit?actor=user%3A{anna}"));
    assert!(hers.text.contains("<code>rule.secret.view</code>"));
    assert!(
        !hers.text.contains("<code>rule.create</code>"),
        "made with the API key"
    );
    assert!(hers.text.contains(&format!(
        "<option value=\"user:{anna}\" selected>anna</option>"
    )));

    // By time: a window in the past has none of it; a wrong window says so.
    let past = admin.get("/audit?since=2020-01-01T00%3A00&until=2020-01-02T00%3A00");
    past.assert_status(200);
    assert!(past.text.contains("id=\"audit-empty\""), "{}", past.text);
    assert!(past.text.contains("that matches"));
    let now = admin.get("/audit?since=2020-01-01T00%3A00");
    assert!(now.text.contains("<code>rule.create</code>"));
    let wrong = admin.get("/audit?since=2021-01-01T00%3A00&until=2020-01-01T00%3A00");
    wrong.assert_status(400);
    assert!(
        wrong
            .by_id("audit-error")
            .unwrap()
            .contains("From must not be later")
    );
}

/// WCAG relative luminance of `#rrggbb`.
fn luminance(hex: &str) -> f64 {
    let h = hex.trim_start_matches('#');
    let c = |i: usize| {
        let v = f64::from(u8::from_str_radix(&h[i..i + 2], 16).unwrap()) / 255.0;
        if v <= 0.039_28 {
            v / 12.92
        } else {
            ((v + 0.055) / 1.055).powf(2.4)
        }
    };
    0.2126 * c(0) + 0.7152 * c(2) + 0.0722 * c(4)
}

fn contrast(a: &str, b: &str) -> f64 {
    let (x, y) = (luminance(a), luminance(b));
    (x.max(y) + 0.05) / (x.min(y) + 0.05)
}

#[test]
fn focus_rings_have_at_least_3_to_1_contrast_where_they_are_drawn() {
    let css = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/static/css/app.css"))
        .unwrap();
    let var = |name: &str| {
        let marker = format!("--{name}: ");
        let at = css.find(&marker).unwrap_or_else(|| panic!("--{name}")) + marker.len();
        let value = &css[at..at + css[at..].find(';').unwrap()];
        if value.len() == 4 {
            // #fff → #ffffff
            value.chars().skip(1).fold("#".to_owned(), |mut s, c| {
                s.push(c);
                s.push(c);
                s
            })
        } else {
            value.to_owned()
        }
    };
    assert!(css.contains(":focus-visible { outline: 3px solid var(--ring);"));
    assert!(css.contains("header.top :focus-visible { outline-color: var(--ring-on-dark); }"));
    assert!(
        css.contains("background: var(--top);"),
        "the top bar uses --top"
    );
    for bg in [
        var("bg"),
        var("card"),
        "#fffbe6".to_owned(),
        "#eef1f5".to_owned(),
    ] {
        let c = contrast(&var("ring"), &bg);
        assert!(c >= 3.0, "ring on {bg}: {c:.2}");
    }
    let c = contrast(&var("ring-on-dark"), &var("top"));
    assert!(c >= 3.0, "ring on the top bar: {c:.2}");
}

#[test]
fn the_dashboard_charts_have_their_figures_in_a_table() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let admin = setup_admin(&app, "anna");
    app.create_rule(&receiver.url("/hook"), &["member:*"]);
    let e = app.ingest(&json!({"type": "member:created", "data": {"member": {"id": 1}}}));
    app.wait_settled(e.body["id"].as_str().unwrap(), WAIT);
    let dash = admin.get("/");
    assert_eq!(
        dash.text.matches("<details class=\"chartdata\">").count(),
        2
    );
    assert!(dash.text.contains("Last 24 hours as a table</summary>"));
    let hours = dash.text.split("Hour starting (UTC)").nth(1).unwrap();
    let hours = &hours[..hours.find("</table>").unwrap()];
    assert_eq!(hours.matches("<tr><th scope=\"row\">").count(), 24);
    assert!(hours.contains("</th><td>1</td><td>0</td></tr>"), "{hours}");
    let days = dash.text.split("24 hours starting").nth(1).unwrap();
    let days = &days[..days.find("</table>").unwrap()];
    assert_eq!(days.matches("<tr><th scope=\"row\">").count(), 7);
    // Axis labels are HTML (they keep their size), not SVG text that shrinks with the chart.
    assert!(!dash.text.contains("class=\"tick\""));
    assert!(dash.text.contains("<ol class=\"ticks ticks-8\""));
    assert!(dash.text.contains("<ol class=\"ticks ticks-7\""));
}

#[test]
fn users_get_one_password_box_with_a_confirmation() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let page = admin.get("/users");
    assert_eq!(
        page.text.matches("type=\"password\"").count(),
        2,
        "add-user form only"
    );
    assert!(page.text.contains("id=\"new-confirm\""));
    let mismatch = admin.post(
        "/users",
        &[
            ("username", "vera"),
            ("role", "viewer"),
            ("password", "a long passphrase one"),
            ("confirm", "a long passphrase two"),
        ],
    );
    mismatch.assert_status(400);
    assert!(
        mismatch
            .by_id("user-error")
            .unwrap()
            .contains("not the same")
    );
    assert!(mismatch.text.contains("value=\"vera\""), "the name is kept");
    let made = admin.post(
        "/users",
        &[
            ("username", "vera"),
            ("role", "viewer"),
            ("password", "a long passphrase one"),
            ("confirm", "a long passphrase one"),
        ],
    );
    made.assert_status(303);
    let id = app
        .store()
        .user_by_name("vera")
        .unwrap()
        .unwrap()
        .id
        .to_string();
    let list = admin.get("/users");
    assert!(
        list.text
            .contains(&format!("<a href=\"/users/{id}/password\""))
    );
    assert_eq!(list.text.matches("type=\"password\"").count(), 2);

    let form = admin.get(&format!("/users/{id}/password"));
    form.assert_status(200);
    assert!(form.text.contains("New password for vera"));
    let wrong = admin.post(
        &format!("/users/{id}/password"),
        &[
            ("password", "a brand new passphrase"),
            ("confirm", "a brand new passphrasE"),
        ],
    );
    wrong.assert_status(400);
    assert!(
        wrong
            .by_id("password-error")
            .unwrap()
            .contains("not the same")
    );
    crate::support::ui::Browser::new(&app)
        .login("vera", "a long passphrase one")
        .assert_status(303);
    admin
        .post(
            &format!("/users/{id}/password"),
            &[
                ("password", "a brand new passphrase"),
                ("confirm", "a brand new passphrase"),
            ],
        )
        .assert_status(303);
    crate::support::ui::Browser::new(&app)
        .login("vera", "a brand new passphrase")
        .assert_status(303);
}

#[test]
fn a_cron_error_on_the_routine_form_is_about_what_was_typed() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    admin.get("/rules/new");
    let bad = admin.post(
        "/rules/new",
        &[
            ("name", "Weekday digest"),
            ("active", "true"),
            ("trigger_type", "schedule"),
            ("cron", "0 25 * * MON-FRI"),
            ("timezone", "UTC"),
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
    bad.assert_status(400);
    let message = bad.by_id("err-cron").expect("the error at the cron field");
    assert!(
        message.contains("the hour (2nd field) is 25, but hours go from 0 to 23"),
        "{message}"
    );
    assert!(
        !message.contains("less than 23"),
        "not the crate's 6-field wording"
    );
}

#[test]
fn a_condition_syntax_error_on_the_form_points_at_the_column() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    admin.get("/rules/new");
    let bad = admin.post(
        "/rules/new",
        &[
            ("name", "Long calls"),
            ("active", "true"),
            ("trigger_type", "event"),
            ("events", "call:*"),
            ("condition", "data.call.seconds >"),
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
    bad.assert_status(400);
    let message = bad
        .by_id("err-condition")
        .expect("the error at the condition");
    assert!(
        message.contains("a mistake at column 20 of the condition"),
        "{message}"
    );
    assert!(message.contains("ends before it is complete"), "{message}");
    assert!(
        !message.contains("NUM_FLOAT") && !message.contains("expecting"),
        "{message}"
    );
    // The API answers as before: its message is for programs and keeps the parser's detail.
    let api = app.post(
        "/api/v1/rules",
        &json!({"name": "x", "trigger": {"type": "event", "events": ["call:*"]},
            "condition": "data.call.seconds >", "webhook": {"url": "http://127.0.0.1:9/hook"}}),
    );
    assert_eq!(api.status, 400);
    assert!(api.text.contains("line:column 1:20"), "{}", api.text);
}
