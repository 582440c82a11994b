//! mTLS (SPEC §12): a local TLS receiver that requires a client certificate from its own CA
//! gets deliveries and test sends from a rule with that certificate, refuses a rule without
//! one (attempt error `tls`), and every bad certificate or key is a 400 at its field that
//! stores nothing. The key is write-only: masked in the API, kept by `********`.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app_with, start, test_config, wait_until};
use crate::support::process::{run, tidings};
use crate::support::receiver::{TestCa, TestReceiver};

const WAIT: Duration = Duration::from_secs(30);

fn app() -> TestApp {
    spawn_app_with(|c| c.retry.max_attempts = 1)
}

/// A rule to `receiver`; the receiver's own certificate is from the test CA, which this
/// in-process server does not trust, so server checks are off (the client side is tested).
fn mtls_rule(url: &str, cert: &str, key: &str) -> Value {
    json!({
        "name": "ehr",
        "trigger": {"type": "event", "events": ["ping"]},
        "webhook": {"url": url, "tls_verify": false,
                    "auth": {"type": "mtls", "client_cert": cert, "client_key": key}},
    })
}

/// Posts a ping and waits for its first attempt.
fn first_attempt(app: &TestApp) -> Value {
    let event = app.ingest(&json!({"type": "ping"}));
    assert_eq!(event.status, 202, "{}", event.text);
    let id = event.body["id"].as_str().unwrap().to_owned();
    let settled = app.wait_settled(&id, WAIT);
    let delivery = settled[0]["id"].as_str().unwrap();
    wait_until(WAIT, "the first attempt", || {
        let d = app.get(&format!("/api/v1/deliveries/{delivery}"));
        d.body["attempts"]
            .as_array()
            .and_then(|a| a.first().cloned())
    })
}

#[test]
fn a_receiver_that_requires_a_client_certificate_gets_the_rules_one() {
    let ca = TestCa::new();
    let receiver = TestReceiver::start_mtls(&ca);
    let app = app();
    let (cert, key) = ca.client_pems("tidings-client", 90);
    let rule = app.create_rule_with(mtls_rule(&receiver.url("/ehr"), &cert, &key));
    let id = rule["id"].as_str().unwrap();
    let auth = &rule["webhook"]["auth"];
    assert_eq!(auth["type"], "mtls", "{rule:#}");
    assert_eq!(auth["client_key"], "********");
    assert_eq!(auth["client_cert"].as_str().unwrap().trim(), cert.trim());
    assert!(
        auth["client_cert_expires_at"].as_str().is_some(),
        "{rule:#}"
    );

    let attempt = first_attempt(&app);
    assert_eq!(attempt["status_code"], 200, "{attempt:#}");
    assert_eq!(receiver.wait_for(1, WAIT)[0].path, "/ehr");
    let test = app.post(&format!("/api/v1/rules/{id}/test"), &json!({}));
    assert_eq!(test.status, 200, "{}", test.text);
    assert_eq!(
        test.body["attempts"][0]["status_code"], 200,
        "{}",
        test.text
    );

    // The key never comes back: not in the rule, the audit log or a delivery.
    let private = key
        .lines()
        .find(|l| !l.starts_with("-----"))
        .unwrap()
        .to_owned();
    for path in [
        format!("/api/v1/rules/{id}"),
        "/api/v1/audit?limit=100".to_owned(),
    ] {
        let shown = app.get(&path);
        assert!(!shown.text.contains(&private), "{path}: {}", shown.text);
    }

    // A PUT of the rule as fetched keeps the key; a new certificate needs its key again.
    let kept = app.send(
        "PUT",
        &format!("/api/v1/rules/{id}"),
        &app.get(&format!("/api/v1/rules/{id}")).body,
    );
    assert_eq!(kept.status, 200, "{}", kept.text);
    assert_eq!(first_attempt(&app)["status_code"], 200);
    let (new_cert, _) = ca.client_pems("tidings-client-2", 90);
    let changed = app.send(
        "PATCH",
        &format!("/api/v1/rules/{id}"),
        &json!({"webhook": {"auth": {"client_cert": new_cert}}}),
    );
    assert_eq!(changed.status, 400, "{}", changed.text);
    assert!(
        changed.text.contains("webhook.auth.client_key"),
        "{}",
        changed.text
    );
}

#[test]
fn without_the_certificate_the_attempt_fails_with_a_tls_error() {
    let ca = TestCa::new();
    let receiver = TestReceiver::start_mtls(&ca);
    let app = app();
    app.create_rule_with(json!({
        "name": "no cert",
        "trigger": {"type": "event", "events": ["ping"]},
        "webhook": {"url": receiver.url("/ehr"), "tls_verify": false},
    }));
    let attempt = first_attempt(&app);
    assert_eq!(attempt["error_kind"], "tls", "{attempt:#}");
    assert!(attempt["status_code"].is_null(), "{attempt:#}");
    // A certificate from another CA is refused the same way.
    let other = TestCa::new();
    let (cert, key) = other.client_pems("stranger", 90);
    let rule = app.create_rule_with(mtls_rule(&receiver.url("/ehr"), &cert, &key));
    let test = app.post(
        &format!("/api/v1/rules/{}/test", rule["id"].as_str().unwrap()),
        &json!({}),
    );
    assert_eq!(test.status, 200, "{}", test.text);
    assert_eq!(
        test.body["attempts"][0]["error_kind"], "tls",
        "{}",
        test.text
    );
    assert_eq!(receiver.count(), 0, "nothing got through");
}

#[test]
fn bad_certificates_and_keys_are_refused_at_their_field_and_store_nothing() {
    let ca = TestCa::new();
    let app = app();
    let url = "https://127.0.0.1:9/ehr";
    let (cert, key) = ca.client_pems("tidings-client", 90);
    let (_, other_key) = ca.client_pems("someone-else", 90);
    let (expired, expired_key) = ca.client_pems("old", -1);
    let garbled = {
        let mut lines: Vec<String> = cert.lines().map(str::to_owned).collect();
        lines[2] = "A".repeat(lines[2].len());
        lines.join("\n")
    };
    let cases = [
        (
            mtls_rule(url, "not a certificate", &key),
            "webhook.auth.client_cert",
            "no certificate",
        ),
        (
            mtls_rule(url, &garbled, &key),
            "webhook.auth.client_cert",
            "X.509",
        ),
        (
            mtls_rule(url, &cert, &other_key),
            "webhook.auth.client_key",
            "does not belong",
        ),
        (
            mtls_rule(url, &expired, &expired_key),
            "webhook.auth.client_cert",
            "expired",
        ),
        (
            mtls_rule(
                url,
                &cert,
                "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            ),
            "webhook.auth.client_key",
            "key",
        ),
        (
            mtls_rule(url, &cert, "********"),
            "webhook.auth.client_key",
            "no stored key",
        ),
        (
            mtls_rule(url, &cert, ""),
            "webhook.auth.client_key",
            "required",
        ),
        (
            mtls_rule(url, "", &key),
            "webhook.auth.client_cert",
            "required",
        ),
        (
            json!({"name": "x", "trigger": {"type": "event", "events": ["ping"]},
                   "webhook": {"url": url, "auth": {"type": "kerberos"}}}),
            "webhook.auth.type",
            "mtls",
        ),
        (
            json!({"name": "x", "trigger": {"type": "event", "events": ["ping"]},
                   "webhook": {"url": url, "auth": {"type": null}}}),
            "webhook.auth.type",
            "required",
        ),
        (
            json!({"name": "x", "trigger": {"type": "event", "events": ["ping"]},
                   "webhook": {"url": url, "auth": {"type": "none", "client_cert": cert}}}),
            "webhook.auth.type",
            "takes no certificate",
        ),
    ];
    for (body, field, words) in cases {
        let resp = app.post("/api/v1/rules", &body);
        assert_eq!(resp.status, 400, "{field}: {}", resp.text);
        assert_eq!(
            resp.body["error"]["code"], "validation_failed",
            "{}",
            resp.text
        );
        let message = resp.body["error"]["message"].as_str().unwrap();
        assert!(message.starts_with(field), "{field}: {message}");
        assert!(message.contains(words), "{field}: {message}");
    }
    assert_eq!(
        app.get("/api/v1/rules").body["data"]
            .as_array()
            .unwrap()
            .len(),
        0,
        "a refused rule is not stored"
    );
}

#[test]
fn a_patch_to_another_auth_type_drops_the_certificate() {
    let ca = TestCa::new();
    let app = app();
    let (cert, key) = ca.client_pems("tidings-client", 90);
    let rule = app.create_rule_with(mtls_rule("https://127.0.0.1:9/ehr", &cert, &key));
    let id = rule["id"].as_str().unwrap();
    let off = app.send(
        "PATCH",
        &format!("/api/v1/rules/{id}"),
        &json!({"webhook": {"auth": {"type": "none"}}}),
    );
    assert_eq!(off.status, 200, "{}", off.text);
    assert_eq!(off.body["webhook"]["auth"], json!({"type": "none"}));
    // Back to mtls needs the key again: the stored one went with the certificate.
    let back = app.send(
        "PATCH",
        &format!("/api/v1/rules/{id}"),
        &json!({"webhook": {"auth": {"type": "mtls", "client_cert": cert, "client_key": "********"}}}),
    );
    assert_eq!(back.status, 400, "{}", back.text);
    assert!(back.text.contains("no stored key"), "{}", back.text);
}

/// A master-key rotation re-seals the client key and the ed25519 private key with the rest:
/// after it, with only the new key, both rules still deliver, and the database file holds
/// neither key in the clear at any point.
#[test]
fn a_master_key_rotation_keeps_client_keys_and_signing_keys_working() {
    if crate::support::postgres::redb_only("rotation of the embedded file") {
        return;
    }
    let ca = TestCa::new();
    let receiver = TestReceiver::start_mtls(&ca);
    let plain = TestReceiver::start();
    let app = app();
    let (cert, key) = ca.client_pems("tidings-client", 90);
    app.create_rule_with(mtls_rule(&receiver.url("/ehr"), &cert, &key));
    let signed = app.create_rule_with(json!({
        "name": "ed25519",
        "trigger": {"type": "event", "events": ["ping"]},
        "webhook": {"url": plain.url("/signed"), "signing": "ed25519"},
    }));
    let signed_id = signed["id"].as_str().unwrap().to_owned();
    let public = app.get(&format!("/api/v1/rules/{signed_id}/secret")).body["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let key_line = key.lines().nth(1).unwrap().to_owned();
    let data_dir = app.stop();
    drop(crate::encryption::open_raw(&data_dir));
    let file = std::fs::read(data_dir.join("tidings.redb")).unwrap();
    assert!(
        !crate::encryption::contains(&file, &key_line),
        "the client key is sealed"
    );
    let mut cmd = tidings();
    cmd.arg("rotate-master-key")
        .arg("--data-dir")
        .arg(&data_dir);
    let ran = run(cmd);
    assert!(ran.success(), "{ran:?}");

    let app = start({
        let mut c = test_config(&data_dir);
        c.retry.max_attempts = 1;
        c
    });
    let event = app.ingest(&json!({"type": "ping"}));
    let settled = app.wait_settled(event.body["id"].as_str().unwrap(), WAIT);
    assert_eq!(settled.len(), 2);
    assert!(
        settled.iter().all(|d| d["status"] == "succeeded"),
        "{settled:#?}"
    );
    assert_eq!(receiver.wait_for(1, WAIT)[0].path, "/ehr");
    let got = plain.wait_for(1, WAIT).remove(0);
    let now = i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap();
    let verified = tidings::delivery::verify::verify(&public, &got.headers, &got.body, now, 300)
        .expect("the same key pair signs after the rotation");
    assert_eq!(verified.scheme, "ed25519");
}
