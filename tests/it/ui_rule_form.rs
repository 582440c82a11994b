//! The rule form in an office manager's words, over real HTTP: the timeout typed in seconds
//! (the API keeps `timeout_ms`), "Requests at once" explained, event types offered from the
//! catalog, condition and template help drawn from the catalog's scrubbed sample, and a
//! schedule shown in words.

use crate::support::app::spawn_app;
use crate::support::ui::setup_admin;

/// A valid event rule's form, with `over` replacing (or adding) fields.
fn fields<'a>(over: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("name", "Front desk"),
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
        ("timeout_s", "10"),
        ("max_concurrency", "4"),
    ];
    for (k, v) in over {
        if let Some(slot) = f.iter_mut().find(|(n, _)| n == k) {
            slot.1 = v;
        } else {
            f.push((k, v));
        }
    }
    f
}

fn rule_count(app: &crate::support::app::TestApp) -> usize {
    app.get("/api/v1/rules").body["data"]
        .as_array()
        .unwrap()
        .len()
}

#[test]
fn the_timeout_is_typed_in_seconds_and_saved_in_milliseconds() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let blank = admin.get("/rules/new");
    blank.assert_status(200);
    assert!(
        blank
            .text
            .contains("id=\"timeout_s\" name=\"timeout_s\" inputmode=\"decimal\" value=\"10\""),
        "the default, 10 s: {}",
        blank.text
    );
    assert!(!blank.text.contains("milliseconds"));

    let made = admin.post("/rules/new", &fields(&[("timeout_s", "2.5")]));
    made.assert_status(303);
    let id = made
        .location()
        .trim_start_matches("/rules/")
        .split('?')
        .next()
        .unwrap()
        .to_owned();
    let rule = app.get(&format!("/api/v1/rules/{id}")).body;
    assert_eq!(
        rule["webhook"]["timeout_ms"], 2500,
        "the API keeps milliseconds"
    );
    let edit = admin.get(&format!("/rules/{id}/edit"));
    assert!(
        edit.text
            .contains("name=\"timeout_s\" inputmode=\"decimal\" value=\"2.5\""),
        "shown again in seconds"
    );
    let page = admin.get(&format!("/rules/{id}"));
    assert!(
        page.text.contains("<dt>Timeout</dt><dd>2.5 s</dd>"),
        "{}",
        page.text
    );

    // Out of bounds or not a number: refused at the field, in seconds, nothing saved.
    for (typed, says) in [
        ("45", "must be at most 30 seconds"),
        ("0", "must be more than 0 seconds"),
        ("soon", "must be a number of seconds, such as 10 or 2.5"),
        ("2.0005", "a thousandth of a second"),
    ] {
        let refused = admin.post("/rules/new", &fields(&[("timeout_s", typed)]));
        refused.assert_status(400);
        let at_field = refused.by_id("err-timeout_s").unwrap_or_default();
        assert!(at_field.contains(says), "{typed}: {at_field}");
        assert!(!at_field.contains("millisecond"), "{typed}: {at_field}");
        assert!(
            refused.text.contains(&format!("value=\"{typed}\"")),
            "what was typed comes back"
        );
        assert!(
            refused.text.contains("href=\"#timeout_s\""),
            "the summary links to it"
        );
    }
    assert_eq!(rule_count(&app), 1);
}

#[test]
fn requests_at_once_is_explained_in_the_receivers_terms() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let page = admin.get("/rules/new");
    page.assert_status(200);
    let help = page.by_id("max_concurrency-help").expect("a help line");
    assert!(help.contains("at the same moment"), "{help}");
    assert!(help.contains("wait their turn"), "{help}");
    assert!(page.text.contains("aria-describedby=\"max_concurrency-help\""));
    // With an error, the input is described by both.
    let refused = admin.post("/rules/new", &fields(&[("max_concurrency", "0")]));
    refused.assert_status(400);
    assert!(
        refused
            .text
            .contains("aria-describedby=\"err-max_concurrency max_concurrency-help\"")
    );
}
