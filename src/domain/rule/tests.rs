//! Unit tests of rule input, validation and the rule's derived values.

use super::*;

fn input(json: &str) -> RuleInput {
    serde_json::from_str(json).unwrap()
}

fn prod() -> AddressPolicy {
    AddressPolicy::new(false, vec![])
}

const OK: &str = r#"{"name":"CRM","trigger":{"type":"event","events":["member:*"]},
    "webhook":{"url":"https://example.com/hook"}}"#;

#[test]
fn defaults_fill_in() {
    let spec = input(OK).validate(&prod(), None).unwrap();
    assert!(spec.active);
    assert_eq!(spec.max_concurrency, 8);
    assert_eq!(spec.webhook.method, HttpMethod::Post);
    assert_eq!(spec.webhook.content_type, "application/json");
    assert_eq!(spec.webhook.signing, Signing::HmacSha256);
    assert_eq!(spec.webhook.payload_format, PayloadFormat::Flat);
    assert!(spec.webhook.tls_verify);
    assert_eq!(spec.webhook.timeout_ms, 10_000);
}

#[test]
fn errors_name_the_field() {
    let cases = [
        (
            r#"{"trigger":{"type":"event","events":["x"]},"webhook":{"url":"https://e.com"}}"#,
            "name",
        ),
        (
            r#"{"name":"a","webhook":{"url":"https://e.com"}}"#,
            "trigger",
        ),
        (
            r#"{"name":"a","trigger":{"type":"event","events":[]},"webhook":{"url":"https://e.com"}}"#,
            "trigger.events",
        ),
        (
            r#"{"name":"a","trigger":{"type":"event","events":["Bad"]},"webhook":{"url":"https://e.com"}}"#,
            "trigger.events",
        ),
        (
            r#"{"name":"a","trigger":{"type":"event","events":["x"]},"webhook":{"url":"http://e.com"}}"#,
            "webhook.url",
        ),
        (
            r#"{"name":"a","trigger":{"type":"event","events":["x"]},"webhook":{"url":"https://e.com","method":"GET"}}"#,
            "webhook.method",
        ),
        (
            r#"{"name":"a","trigger":{"type":"event","events":["x"]},"webhook":{"url":"https://e.com","timeout_ms":30001}}"#,
            "webhook.timeout_ms",
        ),
        (
            r#"{"name":"a","trigger":{"type":"event","events":["x"]},"webhook":{"url":"https://e.com","headers":{"Host":"x"}}}"#,
            "webhook.headers",
        ),
        (
            r#"{"name":"a","trigger":{"type":"event","events":["x"]},"webhook":{"url":"https://e.com","headers":{"X-A":"a\nb"}}}"#,
            "webhook.headers",
        ),
        (
            r#"{"name":"a","trigger":{"type":"event","events":["x"]},"webhook":{"url":"https://e.com","secret_headers":{"X-K":"********"}}}"#,
            "webhook.secret_headers",
        ),
        (
            r#"{"name":"a","max_concurrency":0,"trigger":{"type":"event","events":["x"]},"webhook":{"url":"https://e.com"}}"#,
            "max_concurrency",
        ),
    ];
    for (json, field) in cases {
        let err = input(json).validate(&prod(), None).unwrap_err();
        assert_eq!(err.field, field, "{json}: {err}");
    }
}

#[test]
fn every_failing_field_is_reported_in_one_pass_and_the_first_is_what_validate_says() {
    let json = r#"{"name":" ","max_concurrency":0,"condition":"data.x ==",
        "trigger":{"type":"event","events":["Bad"]},
        "webhook":{"url":"ftp:/x","method":"GET","payload_format":"template",
                   "body_template":"{{ oops","timeout_ms":0}}"#;
    let errors = input(json).validate_all(&prod(), None).unwrap_err();
    let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
    assert_eq!(
        fields,
        [
            "name",
            "max_concurrency",
            "trigger.events",
            "condition",
            "webhook.url",
            "webhook.method",
            "webhook.body_template",
            "webhook.timeout_ms"
        ]
    );
    assert_eq!(input(json).validate(&prod(), None).unwrap_err(), errors[0]);
    // Each single-error case of the API answers the same either way.
    assert!(input(OK).validate_all(&prod(), None).is_ok());
}

#[test]
fn a_patch_is_checked_for_unknown_fields_before_its_nulls_remove_anything() {
    let ok = |v: serde_json::Value| RuleInput::check_patch(&v).is_ok();
    assert!(ok(
        serde_json::json!({"description": null, "webhook": null})
    ));
    assert!(ok(
        serde_json::json!({"webhook": {"headers": {"X-A": null}, "url": null}})
    ));
    assert!(ok(
        serde_json::json!({"id": "rul_x", "trigger": {"cron": null}})
    ));
    assert!(!ok(serde_json::json!({"bogus": null})));
    assert!(!ok(serde_json::json!({"webhook": {"urll": null}})));
    assert!(!ok(serde_json::json!({"trigger": {"colour": null}})));
    let err =
        RuleInput::check_patch(&serde_json::json!({"webhook": {"retries": null}})).unwrap_err();
    assert!(err.to_string().contains("retries"), "{err}");
}

#[test]
fn unknown_fields_are_refused() {
    assert!(serde_json::from_str::<RuleInput>(r#"{"name":"a","colour":1}"#).is_err());
    assert!(serde_json::from_str::<RuleInput>(r#"{"webhook":{"urll":"x"}}"#).is_err());
}
