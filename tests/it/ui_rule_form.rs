//! The rule form in an office manager's words, over real HTTP: the timeout typed in seconds
//! (the API keeps `timeout_ms`), "Requests at once" explained, event types offered from the
//! catalog, condition and template help drawn from the catalog's scrubbed sample, and a
//! schedule shown in words.

use std::time::Duration;

use serde_json::json;

use crate::support::app::{TestApp, spawn_app, wait_until};
use crate::support::ui::{Page, setup_admin};

const WAIT: Duration = Duration::from_secs(20);
/// A name no sample, placeholder or page text contains: a real patient's, for the test.
const MARKER: &str = "Zebulon Quartermaine";

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
        // A checklist's boxes repeat their name; the rest replace the field.
        if let Some(slot) = f.iter_mut().find(|(n, _)| n == k && *k != "event_pick") {
            slot.1 = v;
        } else {
            f.push((k, v));
        }
    }
    f
}

fn rule_count(app: &TestApp) -> usize {
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
    assert!(
        page.text
            .contains("aria-describedby=\"max_concurrency-help\"")
    );
    // With an error, the input is described by both.
    let refused = admin.post("/rules/new", &fields(&[("max_concurrency", "0")]));
    refused.assert_status(400);
    assert!(
        refused
            .text
            .contains("aria-describedby=\"err-max_concurrency max_concurrency-help\"")
    );
}

/// Ingests one event of `event_type` and waits until the catalog has seen it.
fn seen(app: &TestApp, event_type: &str, data: serde_json::Value) {
    let posted = app.ingest(&json!({"type": event_type, "data": data}));
    assert_eq!(posted.status, 202, "{}", posted.text);
    wait_until(WAIT, "the type seen by the catalog", || {
        app.get("/api/v1/event-types").body["data"]
            .as_array()
            .unwrap()
            .iter()
            .any(|t| {
                t["name"] == event_type && t["sources"].as_array().unwrap().contains(&json!("seen"))
            })
            .then_some(())
    });
}

/// The page's markup from the element with this id to the first `until` after it.
fn part(page: &Page, id: &str, until: &str) -> Option<String> {
    let at = page.text.find(&format!("id=\"{id}\""))?;
    let end = page.text[at..]
        .find(until)
        .map_or(page.text.len(), |n| at + n);
    Some(page.text[at..end].to_owned())
}

/// The `value`s of the ticked boxes of the event-type checklist.
fn ticked(page: &Page) -> Vec<String> {
    page.text
        .split("<input type=\"checkbox\"")
        .skip(1)
        .filter_map(|input| {
            let input = &input[..input.find('>').unwrap()];
            (input.contains("name=\"event_pick\"") && input.contains(" checked"))
                .then(|| {
                    input
                        .split("value=\"")
                        .nth(1)?
                        .split('"')
                        .next()
                        .map(str::to_owned)
                })
                .flatten()
        })
        .collect()
}

#[test]
fn event_types_are_picked_from_the_catalog_with_families_and_typed_patterns_still_work() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    seen(
        &app,
        "appointment:booked",
        json!({"slot": {"at": "2026-03-04T09:00:00Z"}}),
    );

    let blank = admin.get("/rules/new");
    blank.assert_status(200);
    let list = part(&blank, "event-picks", "</fieldset>").expect("the checklist");
    for offered in [
        "appointment:*",
        "appointment:booked",
        "member:*",
        "member:created",
        "ping",
    ] {
        assert!(
            list.contains(&format!("name=\"event_pick\" value=\"{offered}\"")),
            "{offered} offered: {list}"
        );
    }
    assert!(ticked(&blank).is_empty());

    // Ticked boxes and typed patterns together make the trigger, each once.
    let made = admin.post(
        "/rules/new",
        &fields(&[
            ("events", "fax:*\nping"),
            ("event_pick", "appointment:*"),
            ("event_pick", "ping"),
        ]),
    );
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
        rule["trigger"],
        json!({"type": "event", "events": ["fax:*", "ping", "appointment:*"]})
    );
    // The edit form ticks the known ones and keeps the rest in the text box.
    let edit = admin.get(&format!("/rules/{id}/edit"));
    assert_eq!(ticked(&edit), ["appointment:*", "ping"]);
    assert!(
        edit.text.contains(">fax:*</textarea>"),
        "the typed pattern: {}",
        edit.text
    );

    // A bad typed pattern is refused at the field with the ticks kept; nothing is saved.
    let refused = admin.post(
        "/rules/new",
        &fields(&[
            ("events", "Not A Pattern"),
            ("event_pick", "member:created"),
        ]),
    );
    refused.assert_status(400);
    assert!(
        refused
            .by_id("err-events")
            .unwrap()
            .contains("invalid event pattern")
    );
    assert_eq!(ticked(&refused), ["member:created"]);
    assert!(refused.text.contains(">Not A Pattern</textarea>"));
    assert_eq!(rule_count(&app), 1);

    // Ticks on a routine are dropped with the rest of the hidden event fields.
    let routine = admin.post(
        "/rules/new",
        &fields(&[
            ("name", "Mornings"),
            ("trigger_type", "schedule"),
            ("cron", "0 9 * * *"),
            ("event_pick", "member:*"),
        ]),
    );
    routine.assert_status(303);
    assert_eq!(rule_count(&app), 2);
}

#[test]
fn condition_and_template_help_use_a_field_of_the_catalog_sample_with_no_real_value() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    seen(
        &app,
        "appointment:booked",
        json!({"patient": {"name": MARKER, "tags": ["first-visit"]}, "room": 12}),
    );

    // No event type yet: the general examples.
    let blank = admin.get("/rules/new");
    assert!(blank.by_id("condition-example").is_none());
    assert!(blank.text.contains("data.member.labels"));

    // Refused for its name only, the form comes back with help for its first type.
    let refused = admin.post(
        "/rules/new",
        &fields(&[("name", ""), ("events", "appointment:booked")]),
    );
    refused.assert_status(400);
    let condition = refused
        .by_id("condition-example")
        .expect("a condition example");
    let template = refused
        .by_id("template-example")
        .expect("a template example");
    assert_eq!(condition, "&#34;string&#34; in data.patient.tags");
    assert_eq!(template, "{&#34;name&#34;: {{ patient.name|tojson }}}");
    assert!(!refused.text.contains(MARKER), "no real value on the form");
    assert!(!refused.text.contains("first-visit"));

    // The examples are real: a rule with them saves, and the condition passes the event.
    let made = admin.post(
        "/rules/new",
        &fields(&[
            ("events", "appointment:booked"),
            (
                "condition",
                "\"string\" in data.patient.tags || data.room > 0",
            ),
            ("payload_format", "template"),
            ("body_template", "{\"name\": {{ patient.name|tojson }}}"),
        ]),
    );
    made.assert_status(303);

    // A family pattern takes the sample of a known type it matches (a built-in one here).
    let refused = admin.post(
        "/rules/new",
        &fields(&[("name", ""), ("event_pick", "member:*")]),
    );
    assert_eq!(
        refused.by_id("condition-example").as_deref(),
        Some("&#34;vip&#34; in data.member.labels")
    );
    // A type the catalog knows nothing about has no sample to draw from.
    let refused = admin.post(
        "/rules/new",
        &fields(&[("name", ""), ("events", "fax:received")]),
    );
    assert!(refused.by_id("condition-example").is_none());
}

#[test]
fn a_schedule_is_shown_in_words_beside_its_cron_on_the_rule_and_routines_pages() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    admin.get("/rules/new?trigger=schedule");
    let mut made = Vec::new();
    for (name, cron) in [
        ("Morning digest", "0 9 * * MON-FRI"),
        ("Odd one", "0,30 9 * * *"),
    ] {
        let posted = admin.post(
            "/rules/new",
            &fields(&[
                ("name", name),
                ("trigger_type", "schedule"),
                ("cron", cron),
                ("timezone", "America/New_York"),
            ]),
        );
        posted.assert_status(303);
        made.push(posted.location().to_owned());
    }
    let digest = admin.get(&made[0]);
    assert_eq!(
        digest.by_id("schedule-words").as_deref(),
        Some("Weekdays at 09:00 (America/New_York)")
    );
    assert!(
        digest
            .text
            .contains("schedule: 0 9 * * MON-FRI (America/New_York)")
    );
    // A shape the describer does not know: the expression alone, as typed.
    let odd = admin.get(&made[1]);
    assert!(odd.by_id("schedule-words").is_none());
    assert!(
        odd.text
            .contains("schedule: 0,30 9 * * * (America/New_York)")
    );

    let routines = admin.get("/routines");
    routines.assert_status(200);
    assert!(
        routines
            .text
            .contains("<span class=\"schedule-words\">Weekdays at 09:00</span><br><code>0 9 * * MON-FRI</code>"),
        "{}",
        routines.text
    );
    assert!(routines.text.contains("<td><code>0,30 9 * * *</code></td>"));
}
