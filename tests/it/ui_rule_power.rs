//! The admin UI with conditions, body templates and routines (after the rule-power work):
//! the form saves them through the API's validation, refusals land at their field, the
//! routines page lists schedules, and the preview shows the condition's verdict.

use crate::support::app::spawn_app;
use crate::support::ui::setup_admin;

fn fields<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("name", "Power"),
        ("active", "true"),
        ("trigger_type", "event"),
        ("events", "member:*"),
        ("cron", ""),
        ("timezone", "UTC"),
        ("condition", ""),
        ("url", "http://127.0.0.1:9/hook"),
        ("method", "POST"),
        ("content_type", "application/json"),
        ("signing", "hmac-sha256"),
        ("payload_format", "flat"),
        ("body_template", ""),
        ("tls_verify", "true"),
        ("timeout_s", "5"),
        ("max_concurrency", "4"),
    ];
    for (k, v) in extra {
        if let Some(slot) = f.iter_mut().find(|(n, _)| n == k) {
            slot.1 = v;
        }
    }
    f
}

#[test]
fn a_routine_made_with_the_form_is_listed_with_its_schedule() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    admin.get("/rules/new?trigger=schedule");
    let made = admin.post(
        "/rules/new",
        &fields(&[
            ("name", "Morning digest"),
            ("trigger_type", "schedule"),
            ("cron", "0 9 * * MON-FRI"),
            ("timezone", "America/New_York"),
        ]),
    );
    assert_eq!(made.status, 303, "{}", made.text);
    let page = admin.get("/routines");
    assert!(page.text.contains("Morning digest"), "{}", page.text);
    assert!(page.text.contains("0 9 * * MON-FRI"));
    assert!(page.text.contains("America/New_York"));
    let rule = admin.get(made.location());
    assert!(
        rule.text
            .contains("schedule: 0 9 * * MON-FRI (America/New_York)")
    );
    // Edit keeps the schedule as typed.
    let id = made
        .location()
        .trim_start_matches("/rules/")
        .split('?')
        .next()
        .unwrap();
    let edit = admin.get(&format!("/rules/{id}/edit"));
    assert!(edit.text.contains("value=\"0 9 * * MON-FRI\""));
    assert!(edit.text.contains("value=\"schedule\" checked"));
    // A bad cron is refused at the schedule field.
    let bad = admin.post(
        "/rules/new",
        &fields(&[("trigger_type", "schedule"), ("cron", "61 * * * *")]),
    );
    bad.assert_status(400);
    assert!(
        bad.text.contains("id=\"err-cron\"") || bad.text.contains("id=\"err-trigger\""),
        "{}",
        bad.text
    );
}

#[test]
fn conditions_and_templates_are_saved_or_refused_at_their_field() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    admin.get("/rules/new");
    let bad = admin.post("/rules/new", &fields(&[("condition", "data.x ==")]));
    bad.assert_status(400);
    assert!(bad.text.contains("id=\"err-condition\""), "{}", bad.text);
    let bad = admin.post(
        "/rules/new",
        &fields(&[
            ("payload_format", "template"),
            ("body_template", "{\"id\": {{ member.id }"),
        ]),
    );
    bad.assert_status(400);
    assert!(
        bad.text.contains("id=\"err-body_template\""),
        "{}",
        bad.text
    );
    // Renders, but not as JSON for a JSON content type: refused by the sample check after
    // validation, and still shown at the template field.
    let bad = admin.post(
        "/rules/new",
        &fields(&[
            ("payload_format", "template"),
            ("body_template", "id={{ id }}"),
        ]),
    );
    bad.assert_status(400);
    assert!(
        bad.text.contains("id=\"err-body_template\""),
        "{}",
        bad.text
    );
    let ok = admin.post(
        "/rules/new",
        &fields(&[
            ("condition", "data.member.id > 0"),
            ("payload_format", "template"),
            ("body_template", "{\"event\": {{ event|tojson }}}"),
        ]),
    );
    assert_eq!(ok.status, 303, "{}", ok.text);
    let id = ok
        .location()
        .trim_start_matches("/rules/")
        .split('?')
        .next()
        .unwrap();
    let preview = admin.get(&format!("/rules/{id}/preview?event_type=member:created"));
    preview.assert_status(200);
    assert!(
        preview.text.contains("id=\"condition-verdict\""),
        "{}",
        preview.text
    );
    assert!(
        preview.text.contains("data.member.id &#62; 0"),
        "{}",
        preview.text
    );
    assert!(
        preview
            .text
            .contains("&#34;event&#34;: &#34;member:created&#34;"),
        "{}",
        preview.text
    );
}

#[test]
fn an_ordering_key_is_saved_from_the_form_shown_on_the_rule_and_refused_at_its_field() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    admin.get("/rules/new");
    let mut typo = fields(&[]);
    typo.push(("ordering_key", "data.member."));
    let bad = admin.post("/rules/new", &typo);
    bad.assert_status(400);
    assert!(bad.text.contains("id=\"err-ordering_key\""), "{}", bad.text);
    assert!(
        bad.text.contains("of the ordering key:"),
        "the mistake is named after the field: {}",
        bad.text
    );
    assert_eq!(app.get("/api/v1/rules").body["data"], serde_json::json!([]));

    let mut good = fields(&[]);
    good.push(("ordering_key", "data.member.id"));
    let made = admin.post("/rules/new", &good);
    assert_eq!(made.status, 303, "{}", made.text);
    let page = admin.get(made.location());
    assert!(
        page.text
            .contains("<dt>Order by</dt><dd><code>data.member.id</code>"),
        "{}",
        page.text
    );
    let rules = app.get("/api/v1/rules").body;
    assert_eq!(
        rules["data"][0]["ordering_key"], "data.member.id",
        "{rules}"
    );
}
