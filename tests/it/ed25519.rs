//! ed25519 signatures (SPEC §12, Standard Webhooks `v1a`): real deliveries checked by an
//! independent implementation (Python's `cryptography`, through `tests/verify_signature.py`),
//! the public key from the API, rotation with and without overlap, and the audit trail.

use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app, spawn_app_with};
use crate::support::external::python_verify;
use crate::support::receiver::{Recorded, TestReceiver};

const ARRIVE: Duration = Duration::from_secs(15);
const SETTLE: Duration = Duration::from_secs(30);

fn ed25519_rule(app: &TestApp, receiver: &TestReceiver, path: &str) -> Value {
    app.create_rule_with(json!({
        "name": "signed ed25519",
        "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {"url": receiver.url(path), "signing": "ed25519"},
    }))
}

/// The rule's public key as the API shows it, checked for its form.
fn public_key(app: &TestApp, rule_id: &str) -> String {
    let resp = app.get(&format!("/api/v1/rules/{rule_id}/secret"));
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert!(resp.body.get("secret").is_none(), "{}", resp.text);
    let key = resp.body["public_key"].as_str().unwrap().to_owned();
    let raw = B64
        .decode(key.strip_prefix("whpk_").expect("whpk_ prefix"))
        .expect("standard base64");
    assert_eq!(raw.len(), 32, "{key}");
    key
}

fn rotate(app: &TestApp, rule_id: &str) -> String {
    let resp = app.post(
        &format!("/api/v1/rules/{rule_id}/secret/rotate"),
        &json!({}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["public_key"].as_str().unwrap().to_owned()
}

/// Posts one event and waits for the receiver's `nth` request and a succeeded delivery.
fn deliver(app: &TestApp, receiver: &TestReceiver, nth: usize) -> (Recorded, String) {
    let resp = app.ingest(&json!({
        "type": "member:created",
        "data": {"member": {"id": 123, "name": "Zoë Example"}},
    }));
    assert_eq!(resp.status, 202, "{}", resp.text);
    let request = receiver.wait_for(nth, ARRIVE)[nth - 1].clone();
    let settled = app.wait_settled(resp.body["id"].as_str().unwrap(), SETTLE);
    assert_eq!(settled[0]["status"], "succeeded", "{settled:#?}");
    (request, settled[0]["id"].as_str().unwrap().to_owned())
}

fn v1a_entries(request: &Recorded) -> Vec<String> {
    let value = request
        .header("webhook-signature")
        .expect("webhook-signature");
    value
        .split(' ')
        .map(|e| {
            let b64 = e
                .strip_prefix("v1a,")
                .unwrap_or_else(|| panic!("{e:?} is not v1a,<base64> in {value:?}"));
            assert_eq!(B64.decode(b64).unwrap().len(), 64, "{e}");
            b64.to_owned()
        })
        .collect()
}

fn accepts(key: &str, request: &Recorded) -> bool {
    python_verify("ed25519", key, &request.headers, &request.body).unwrap_or_default()
}

/// Either the independent check accepted it, or it was skipped (python or its package is
/// missing and not required), in which case `accepts` is false for everything.
fn skipped() -> bool {
    matches!(python_verify("ed25519", "whpk_", &[], b""), Ok(false))
}

#[test]
fn ed25519_deliveries_verify_with_the_public_key_and_nothing_secret_is_shown() {
    let receiver = TestReceiver::start();
    let app = spawn_app();
    let rule = ed25519_rule(&app, &receiver, "/hook");
    let id = rule["id"].as_str().unwrap();
    assert_eq!(rule["webhook"]["signing"], "ed25519", "{rule:#}");
    let key = public_key(&app, id);
    assert_eq!(rule["secret_hint"], key[key.len() - 4..], "{rule:#}");

    let (request, delivery_id) = deliver(&app, &receiver, 1);
    assert_eq!(request.header("webhook-id"), Some(delivery_id.as_str()));
    assert_eq!(v1a_entries(&request).len(), 1);
    if !skipped() {
        assert!(
            accepts(&key, &request),
            "cryptography rejected a real delivery"
        );
        let mut tampered = request.clone();
        tampered.body = String::from_utf8_lossy(&request.body)
            .replace("Zoë", "Zoe")
            .into_bytes();
        assert!(!accepts(&key, &tampered), "a changed body verified");
    }
    // The private key never leaves tidings: not in the rule, its log or the audit.
    let shown = app.get(&format!("/api/v1/rules/{id}"));
    assert!(!shown.text.contains("whsk_"), "{}", shown.text);
    let logged = app.get(&format!("/api/v1/deliveries/{delivery_id}"));
    assert!(!logged.text.contains("whsk_"), "{}", logged.text);
    assert!(
        !logged.text.contains(&v1a_entries(&request)[0]),
        "signatures are redacted in the log: {}",
        logged.text
    );
    // Reading a public key is not a secret view: no audit entry for it.
    let audit = app.get("/api/v1/audit?limit=100");
    assert!(!audit.text.contains("rule.secret.view"), "{}", audit.text);
}

#[test]
fn ed25519_rotation_signs_with_both_keys_through_the_overlap() {
    let receiver = TestReceiver::start();
    let app = spawn_app();
    let rule = ed25519_rule(&app, &receiver, "/hook");
    let id = rule["id"].as_str().unwrap();
    let old = public_key(&app, id);
    let new = rotate(&app, id);
    assert_ne!(new, old);
    assert_eq!(public_key(&app, id), new, "GET shows the new key");

    let (request, _) = deliver(&app, &receiver, 1);
    assert_eq!(v1a_entries(&request).len(), 2, "one v1a per live key");
    if !skipped() {
        assert!(accepts(&new, &request), "the new key does not verify");
        assert!(
            accepts(&old, &request),
            "the old key stopped during the overlap"
        );
    }
    let audit = app.get("/api/v1/audit?limit=100");
    assert!(audit.text.contains("rule.secret.rotate"), "{}", audit.text);
    assert!(audit.text.contains("key pair"), "{}", audit.text);
}

#[test]
fn ed25519_rotation_without_overlap_signs_with_the_new_key_only() {
    let receiver = TestReceiver::start();
    let app = spawn_app_with(|c| c.signing.rotation_overlap = Duration::ZERO);
    let rule = ed25519_rule(&app, &receiver, "/hook");
    let id = rule["id"].as_str().unwrap();
    let old = public_key(&app, id);
    let new = rotate(&app, id);

    let (request, _) = deliver(&app, &receiver, 1);
    assert_eq!(v1a_entries(&request).len(), 1);
    if !skipped() {
        assert!(accepts(&new, &request));
        assert!(!accepts(&old, &request), "the retired key still verifies");
    }
}

#[test]
fn switching_to_ed25519_keeps_the_hmac_secret_and_back_again() {
    let receiver = TestReceiver::start();
    let app = spawn_app();
    let rule = app.create_rule(&receiver.url("/hook"), &["member:*"]);
    let id = rule["id"].as_str().unwrap();
    let secret = app.secret(id);
    let patch = |signing: &str| {
        let resp = app.send(
            "PATCH",
            &format!("/api/v1/rules/{id}"),
            &json!({"webhook": {"signing": signing}}),
        );
        assert_eq!(resp.status, 200, "{}", resp.text);
    };
    patch("ed25519");
    let key = public_key(&app, id);
    // Editing the rule again does not make a new key pair.
    patch("ed25519");
    assert_eq!(public_key(&app, id), key);
    let (request, _) = deliver(&app, &receiver, 1);
    assert!(request.header("x-webhook-signature").is_none());
    if !skipped() {
        assert!(accepts(&key, &request));
    }
    patch("hmac-sha256");
    assert_eq!(app.secret(id), secret, "the HMAC secret is unchanged");
    patch("ed25519");
    assert_eq!(public_key(&app, id), key, "the key pair is kept too");
}

#[test]
fn preview_shows_a_v1a_signature_and_an_unknown_scheme_is_refused() {
    let receiver = TestReceiver::start();
    let app = spawn_app();
    let rule = ed25519_rule(&app, &receiver, "/hook");
    let id = rule["id"].as_str().unwrap();
    let preview = app.post(&format!("/api/v1/rules/{id}/preview"), &json!({}));
    assert_eq!(preview.status, 200, "{}", preview.text);
    let sig = preview.body["headers"]["webhook-signature"]
        .as_str()
        .unwrap();
    assert!(sig.starts_with("v1a,"), "{sig}");

    let bad = app.post(
        "/api/v1/rules",
        &json!({
            "name": "bad",
            "trigger": {"type": "event", "events": ["member:*"]},
            "webhook": {"url": receiver.url("/hook"), "signing": "ed448"},
        }),
    );
    assert_eq!(bad.status, 400, "{}", bad.text);
    assert!(bad.text.contains("webhook.signing"), "{}", bad.text);
    assert!(bad.text.contains("ed25519"), "{}", bad.text);
}
