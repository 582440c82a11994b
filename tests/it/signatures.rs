//! Signatures (SPEC §4) and the standard request headers (SPEC §3): hmac-sha256 and
//! standard-webhooks checked byte for byte here and by the official Python libraries, secret
//! rotation with its overlap, retries re-signed, `none`, secret header redaction, and preview.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD as B64;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::support::app::{TestApp, spawn_app, spawn_app_with, wait_until};
use crate::support::external::python_verify;
use crate::support::receiver::{Recorded, Reply, TestReceiver};

const ARRIVE: Duration = Duration::from_secs(15);
const SETTLE: Duration = Duration::from_secs(30);
const TOLERANCE_SECS: i64 = 300;

const HMAC: &str = "hmac-sha256";
const STANDARD: &str = "standard-webhooks";

fn now_secs() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_secs(),
    )
    .unwrap()
}

fn hmac_sha256(key: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(key).unwrap();
    for part in parts {
        mac.update(part);
    }
    mac.finalize().into_bytes().to_vec()
}

/// Parses `t=<digits>,v1=<64 lowercase hex>[,v1=…]` strictly.
fn parse_hmac_header(header: &str) -> (i64, Vec<String>) {
    let mut parts = header.split(',');
    let t = parts
        .next()
        .and_then(|p| p.strip_prefix("t="))
        .filter(|d| !d.is_empty() && d.bytes().all(|b| b.is_ascii_digit()))
        .unwrap_or_else(|| panic!("signature header does not start with t=<digits>: {header:?}"));
    let sigs: Vec<String> = parts
        .map(|p| {
            let hex = p
                .strip_prefix("v1=")
                .unwrap_or_else(|| panic!("unexpected element {p:?} in {header:?}"));
            assert!(
                hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')),
                "v1 is not 64 lowercase hex digits in {header:?}"
            );
            hex.to_owned()
        })
        .collect();
    assert!(!sigs.is_empty(), "no v1= in {header:?}");
    (t.parse().unwrap(), sigs)
}

/// The hex HMAC-SHA256 of `"<t>." + body` keyed by the secret string's UTF-8 bytes.
fn expected_hmac(secret: &str, t: i64, body: &[u8]) -> String {
    hex::encode(hmac_sha256(
        secret.as_bytes(),
        &[format!("{t}.").as_bytes(), body],
    ))
}

/// Parses a `webhook-signature` value: space-separated `v1,<base64 of 32 bytes>`.
fn parse_standard_signature(value: &str) -> Vec<String> {
    value
        .split(' ')
        .map(|entry| {
            let b64 = entry
                .strip_prefix("v1,")
                .unwrap_or_else(|| panic!("entry {entry:?} is not v1,<base64> in {value:?}"));
            let raw = B64
                .decode(b64)
                .unwrap_or_else(|e| panic!("{b64:?} is not standard base64: {e}"));
            assert_eq!(raw.len(), 32, "not a SHA-256 MAC: {entry:?}");
            b64.to_owned()
        })
        .collect()
}

fn expected_standard(secret: &str, msg_id: &str, t: i64, body: &[u8]) -> String {
    let key = B64
        .decode(
            secret
                .strip_prefix("whsec_")
                .unwrap_or_else(|| panic!("secret is not whsec_…: {secret:?}")),
        )
        .expect("the secret after whsec_ is standard padded base64");
    B64.encode(hmac_sha256(
        &key,
        &[format!("{msg_id}.{t}.").as_bytes(), body],
    ))
}

/// The official library accepts it (or the check is skipped, as `python_verify` allows).
fn assert_python_accepts(scheme: &str, secret: &str, headers: &[(String, String)], body: &[u8]) {
    if let Err(why) = python_verify(scheme, secret, headers, body) {
        panic!("the official {scheme} library rejected the request: {why}\nheaders: {headers:#?}");
    }
}

/// The official library rejects it (or the check is skipped).
fn assert_python_rejects(scheme: &str, secret: &str, headers: &[(String, String)], body: &[u8]) {
    if let Ok(true) = python_verify(scheme, secret, headers, body) {
        panic!("the official {scheme} library accepted a signature it should not: {headers:#?}");
    }
}

fn create_signed_rule(app: &TestApp, receiver: &TestReceiver, signing: &str) -> Value {
    app.create_rule_with(json!({
        "name": format!("signed {signing}"),
        "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {"url": receiver.url("/hook"), "signing": signing},
    }))
}

/// Ingests an event and returns its id.
fn ingest(app: &TestApp, event_type: &str) -> String {
    let resp = app.ingest(&json!({
        "type": event_type,
        "data": {"member": {"id": 123, "name": "John Doe", "email": "john@example.com"}},
    }));
    assert_eq!(resp.status, 202, "{}", resp.text);
    resp.body["id"].as_str().unwrap().to_owned()
}

/// Ingests one event, waits for request number `nth` (1-based, counting every request the
/// receiver has had) and for the delivery to settle; returns that request and the delivery id.
fn deliver(app: &TestApp, receiver: &TestReceiver, nth: usize) -> (Recorded, String) {
    let event_id = ingest(app, "member:created");
    let request = receiver.wait_for(nth, ARRIVE)[nth - 1].clone();
    let deliveries = app.wait_settled(&event_id, SETTLE);
    assert_eq!(deliveries.len(), 1, "{deliveries:#?}");
    assert_eq!(deliveries[0]["status"], "succeeded", "{deliveries:#?}");
    (request, deliveries[0]["id"].as_str().unwrap().to_owned())
}

fn header<'a>(request: &'a Recorded, name: &str) -> &'a str {
    request
        .header(name)
        .unwrap_or_else(|| panic!("no {name} header in {:#?}", request.headers))
}

/// A header value from a JSON object of headers, matched case-insensitively.
fn json_header<'a>(headers: &'a Value, name: &str) -> Option<&'a str> {
    headers
        .as_object()?
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case(name))
        .and_then(|(_, v)| v.as_str())
}

fn assert_recent(t: i64) {
    let now = now_secs();
    assert!(
        (now - t).abs() <= TOLERANCE_SECS,
        "timestamp {t} is not within 5 minutes of now ({now})"
    );
}

#[test]
fn hmac_sha256_signature_has_stripe_format_and_verifies() {
    let receiver = TestReceiver::start();
    let app = spawn_app();
    let rule = app.create_rule(&receiver.url("/hook"), &["member:*"]);
    assert_eq!(
        rule["webhook"]["signing"], HMAC,
        "hmac-sha256 is the default: {rule:#}"
    );
    let secret = app.secret(rule["id"].as_str().unwrap());

    let (request, _) = deliver(&app, &receiver, 1);
    assert_eq!(request.headers_named("X-Webhook-Signature").len(), 1);
    let signature = header(&request, "X-Webhook-Signature");
    let (t, sigs) = parse_hmac_header(signature);
    assert_eq!(sigs.len(), 1, "one secret, one v1: {signature:?}");
    assert_recent(t);
    assert_eq!(
        sigs[0],
        expected_hmac(&secret, t, &request.body),
        "{signature:?}"
    );
    assert!(request.header("webhook-signature").is_none());

    assert_python_accepts(HMAC, &secret, &request.headers, &request.body);
    // The checker does check: a wrong secret and a changed body are refused.
    assert_python_rejects(HMAC, "whsec_wrong", &request.headers, &request.body);
    let mut tampered = request.body.clone();
    tampered.extend_from_slice(b" ");
    assert_python_rejects(HMAC, &secret, &request.headers, &tampered);
}

#[test]
fn standard_webhooks_signature_uses_the_delivery_id_and_verifies() {
    let receiver = TestReceiver::start();
    let app = spawn_app();
    let rule = create_signed_rule(&app, &receiver, STANDARD);
    let secret = app.secret(rule["id"].as_str().unwrap());
    assert!(secret.starts_with("whsec_"), "{secret:?}");

    let (request, delivery_id) = deliver(&app, &receiver, 1);
    let msg_id = header(&request, "webhook-id");
    assert_eq!(msg_id, delivery_id);
    assert_eq!(header(&request, "X-Webhook-Id"), delivery_id);
    let ts = header(&request, "webhook-timestamp");
    assert!(ts.bytes().all(|b| b.is_ascii_digit()), "{ts:?}");
    let t: i64 = ts.parse().unwrap();
    assert_recent(t);
    let sigs = parse_standard_signature(header(&request, "webhook-signature"));
    assert_eq!(sigs, [expected_standard(&secret, msg_id, t, &request.body)]);
    assert!(request.header("X-Webhook-Signature").is_none());

    assert_python_accepts(STANDARD, &secret, &request.headers, &request.body);
    let other = format!("whsec_{}", B64.encode([7u8; 32]));
    assert_python_rejects(STANDARD, &other, &request.headers, &request.body);

    // The delivery log redacts this scheme's signature too.
    let log = app.get(&format!("/api/v1/deliveries/{delivery_id}"));
    let logged = &log.body["attempts"][0]["request"]["headers"];
    assert_eq!(
        json_header(logged, "webhook-signature"),
        Some("********"),
        "{logged:#}"
    );
    assert_eq!(
        json_header(logged, "webhook-id"),
        Some(delivery_id.as_str()),
        "{logged:#}"
    );
    assert!(!log.text.contains(&sigs[0]), "{}", log.text);
}

/// Rotates the rule's secret and checks the API's view of it; returns the new secret.
fn rotate(app: &TestApp, rule_id: &str, old: &str) -> String {
    let resp = app.post(
        &format!("/api/v1/rules/{rule_id}/secret/rotate"),
        &json!({}),
    );
    assert_eq!(resp.status, 200, "{}", resp.text);
    let new = resp.body["secret"].as_str().unwrap().to_owned();
    assert!(new.starts_with("whsec_"), "{new:?}");
    assert_ne!(new, old, "rotation must make a new secret");
    assert_eq!(app.secret(rule_id), new, "GET secret shows the new one");
    let shown = app.get(&format!("/api/v1/rules/{rule_id}"));
    assert_eq!(
        shown.body["secret_hint"],
        new[new.len() - 4..],
        "{}",
        shown.text
    );
    assert!(!shown.text.contains(&new) && !shown.text.contains(old));
    new
}

#[test]
fn rotation_signs_with_new_and_old_secret_during_the_overlap_hmac() {
    let receiver = TestReceiver::start();
    let app = spawn_app();
    let rule = app.create_rule(&receiver.url("/hook"), &["member:*"]);
    let id = rule["id"].as_str().unwrap();
    let old = app.secret(id);
    assert_eq!(rule["secret_hint"], old[old.len() - 4..], "{rule:#}");
    let new = rotate(&app, id, &old);

    let (request, _) = deliver(&app, &receiver, 1);
    let signature = header(&request, "X-Webhook-Signature");
    let (t, sigs) = parse_hmac_header(signature);
    assert_eq!(
        sigs,
        [
            expected_hmac(&new, t, &request.body),
            expected_hmac(&old, t, &request.body)
        ],
        "t=…,v1=<new>,v1=<old> expected: {signature:?}"
    );
    assert_python_accepts(HMAC, &new, &request.headers, &request.body);
    assert_python_accepts(HMAC, &old, &request.headers, &request.body);
}

#[test]
fn rotation_signs_with_new_and_old_secret_during_the_overlap_standard_webhooks() {
    let receiver = TestReceiver::start();
    let app = spawn_app();
    let rule = create_signed_rule(&app, &receiver, STANDARD);
    let id = rule["id"].as_str().unwrap();
    let old = app.secret(id);
    let new = rotate(&app, id, &old);

    let (request, delivery_id) = deliver(&app, &receiver, 1);
    let t: i64 = header(&request, "webhook-timestamp").parse().unwrap();
    let sigs = parse_standard_signature(header(&request, "webhook-signature"));
    assert_eq!(
        sigs,
        [
            expected_standard(&new, &delivery_id, t, &request.body),
            expected_standard(&old, &delivery_id, t, &request.body)
        ],
        "two space-separated v1 entries, new first"
    );
    assert_python_accepts(STANDARD, &new, &request.headers, &request.body);
    assert_python_accepts(STANDARD, &old, &request.headers, &request.body);
}

#[test]
fn rotation_without_overlap_signs_only_with_the_new_secret() {
    let receiver = TestReceiver::start();
    let app = spawn_app_with(|c| c.signing.rotation_overlap = Duration::ZERO);
    let hmac_rule = app.create_rule(&receiver.url("/hook"), &["member:*"]);
    let hmac_id = hmac_rule["id"].as_str().unwrap();
    let standard_rule = app.create_rule_with(json!({
        "name": "standard",
        "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {"url": receiver.url("/standard"), "signing": STANDARD},
    }));
    let standard_id = standard_rule["id"].as_str().unwrap();
    let hmac_old = app.secret(hmac_id);
    let standard_old = app.secret(standard_id);
    let hmac_new = rotate(&app, hmac_id, &hmac_old);
    let standard_new = rotate(&app, standard_id, &standard_old);

    let event_id = ingest(&app, "member:created");
    let got = receiver.wait_for(2, ARRIVE);
    let settled = app.wait_settled(&event_id, SETTLE);
    assert!(
        settled.iter().all(|d| d["status"] == "succeeded"),
        "{settled:#?}"
    );
    let hmac_req = got.iter().find(|r| r.path == "/hook").unwrap();
    let standard_req = got.iter().find(|r| r.path == "/standard").unwrap();

    let (t, sigs) = parse_hmac_header(header(hmac_req, "X-Webhook-Signature"));
    assert_eq!(sigs, [expected_hmac(&hmac_new, t, &hmac_req.body)]);
    assert_python_accepts(HMAC, &hmac_new, &hmac_req.headers, &hmac_req.body);
    assert_python_rejects(HMAC, &hmac_old, &hmac_req.headers, &hmac_req.body);

    let sigs = parse_standard_signature(header(standard_req, "webhook-signature"));
    assert_eq!(sigs.len(), 1, "{sigs:?}");
    assert_python_accepts(
        STANDARD,
        &standard_new,
        &standard_req.headers,
        &standard_req.body,
    );
    assert_python_rejects(
        STANDARD,
        &standard_old,
        &standard_req.headers,
        &standard_req.body,
    );
}

#[test]
fn retries_keep_the_id_and_body_and_are_signed_afresh() {
    let receiver = TestReceiver::start();
    receiver.reply_sequence(vec![Reply::status(500)]);
    let app = spawn_app();
    let hmac_rule = app.create_rule(&receiver.url("/hook"), &["member:*"]);
    let secret = app.secret(hmac_rule["id"].as_str().unwrap());

    let event_id = ingest(&app, "member:created");
    let got = receiver.wait_for(2, ARRIVE);
    let settled = app.wait_settled(&event_id, SETTLE);
    assert_eq!(settled[0]["status"], "succeeded", "{settled:#?}");
    let delivery_id = settled[0]["id"].as_str().unwrap();
    assert_eq!(got.len(), 2, "{got:#?}");
    let (first, second) = (&got[0], &got[1]);
    assert_eq!(header(first, "X-Webhook-Id"), delivery_id);
    assert_eq!(header(second, "X-Webhook-Id"), delivery_id);
    assert_eq!(first.body, second.body, "a retry sends the same body");
    for request in [first, second] {
        let (t, sigs) = parse_hmac_header(header(request, "X-Webhook-Signature"));
        assert_recent(t);
        assert_eq!(sigs, [expected_hmac(&secret, t, &request.body)]);
        assert_python_accepts(HMAC, &secret, &request.headers, &request.body);
    }
    let attempts = app.delivery(delivery_id)["attempts"]
        .as_array()
        .unwrap()
        .len();
    assert_eq!(attempts, 2);
}

#[test]
fn standard_webhooks_retries_keep_webhook_id_and_are_signed_afresh() {
    let receiver = TestReceiver::start();
    receiver.reply_sequence(vec![Reply::status(500)]);
    let app = spawn_app();
    let rule = create_signed_rule(&app, &receiver, STANDARD);
    let secret = app.secret(rule["id"].as_str().unwrap());

    let event_id = ingest(&app, "member:created");
    let got = receiver.wait_for(2, ARRIVE);
    let settled = app.wait_settled(&event_id, SETTLE);
    assert_eq!(settled[0]["status"], "succeeded", "{settled:#?}");
    let delivery_id = settled[0]["id"].as_str().unwrap();
    for request in &got[..2] {
        assert_eq!(header(request, "webhook-id"), delivery_id);
        let t: i64 = header(request, "webhook-timestamp").parse().unwrap();
        let sigs = parse_standard_signature(header(request, "webhook-signature"));
        assert_eq!(
            sigs,
            [expected_standard(&secret, delivery_id, t, &request.body)]
        );
        assert_python_accepts(STANDARD, &secret, &request.headers, &request.body);
    }
    assert_eq!(got[0].body, got[1].body);
}

#[test]
fn manual_redelivery_and_test_sends_are_signed_afresh_and_verify() {
    let receiver = TestReceiver::start();
    let app = spawn_app();
    let rule = app.create_rule(&receiver.url("/hook"), &["member:*"]);
    let id = rule["id"].as_str().unwrap();
    let secret = app.secret(id);
    let (first, delivery_id) = deliver(&app, &receiver, 1);

    let resp = app.post(
        &format!("/api/v1/deliveries/{delivery_id}/redeliver"),
        &json!({}),
    );
    assert_eq!(resp.status, 202, "{}", resp.text);
    let resent = receiver.wait_for(2, ARRIVE)[1].clone();
    wait_until(SETTLE, "the re-send to be logged", || {
        let d = app.delivery(&delivery_id);
        (d["status"] == "succeeded" && d["attempts"].as_array()?.len() == 2).then_some(())
    });
    assert_eq!(header(&resent, "X-Webhook-Id"), delivery_id);
    assert_eq!(resent.body, first.body);
    let (t, sigs) = parse_hmac_header(header(&resent, "X-Webhook-Signature"));
    assert_recent(t);
    assert_eq!(sigs, [expected_hmac(&secret, t, &resent.body)]);
    assert_python_accepts(HMAC, &secret, &resent.headers, &resent.body);

    let resp = app.post(&format!("/api/v1/rules/{id}/test"), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.body["test"], true, "{}", resp.text);
    let tested = receiver.wait_for(3, ARRIVE)[2].clone();
    assert_eq!(
        header(&tested, "X-Webhook-Id"),
        resp.body["id"].as_str().unwrap()
    );
    let (t, sigs) = parse_hmac_header(header(&tested, "X-Webhook-Signature"));
    assert_eq!(sigs, [expected_hmac(&secret, t, &tested.body)]);
    assert_python_accepts(HMAC, &secret, &tested.headers, &tested.body);
    let logged = &resp.body["attempts"][0]["request"]["headers"];
    assert_eq!(
        json_header(logged, "X-Webhook-Signature"),
        Some("********"),
        "{logged:#}"
    );
}

#[test]
fn signing_none_sends_no_signature_headers() {
    let receiver = TestReceiver::start();
    let app = spawn_app();
    create_signed_rule(&app, &receiver, "none");
    let (request, delivery_id) = deliver(&app, &receiver, 1);
    for name in [
        "X-Webhook-Signature",
        "webhook-signature",
        "webhook-id",
        "webhook-timestamp",
    ] {
        assert!(
            request.header(name).is_none(),
            "{name} sent with signing none: {:#?}",
            request.headers
        );
    }
    assert_eq!(header(&request, "X-Webhook-Id"), delivery_id);
}

#[test]
fn standard_headers_arrive_and_secret_headers_are_redacted_everywhere_but_the_wire() {
    const SECRET_VALUE: &str = "Bearer s3cr3t-token-8f2e41";
    let receiver = TestReceiver::start();
    let app = spawn_app();
    let rule = app.create_rule_with(json!({
        "name": "with secret header",
        "trigger": {"type": "event", "events": ["member:*"]},
        "webhook": {
            "url": receiver.url("/hook"),
            "headers": {"X-Clinic": "north"},
            "secret_headers": {"Authorization": SECRET_VALUE},
        },
    }));
    let id = rule["id"].as_str().unwrap();
    let signing_secret = app.secret(id);
    assert_eq!(
        rule["webhook"]["secret_headers"]["Authorization"], "********",
        "{rule:#}"
    );
    let shown = app.get(&format!("/api/v1/rules/{id}"));
    assert_eq!(
        shown.body["webhook"]["secret_headers"]["Authorization"],
        "********"
    );
    assert_eq!(shown.body["webhook"]["headers"]["X-Clinic"], "north");
    assert!(!shown.text.contains(SECRET_VALUE), "{}", shown.text);
    let listed = app.get("/api/v1/rules");
    assert!(!listed.text.contains(SECRET_VALUE), "{}", listed.text);

    let event_id = ingest(&app, "member:updated");
    let request = receiver.wait_for(1, ARRIVE)[0].clone();
    let settled = app.wait_settled(&event_id, SETTLE);
    let event = app.get(&format!("/api/v1/events/{event_id}"));
    let delivery_id = event.body["deliveries"][0]["id"].as_str().unwrap();
    assert_eq!(settled[0]["id"], delivery_id);

    let user_agent = header(&request, "User-Agent");
    assert!(user_agent.starts_with("tidings/"), "{user_agent:?}");
    assert_eq!(header(&request, "X-Webhook-Id"), delivery_id);
    assert_eq!(header(&request, "X-Webhook-Event"), "member:updated");
    assert_eq!(header(&request, "Authorization"), SECRET_VALUE);
    assert_eq!(header(&request, "X-Clinic"), "north");
    let wire_signature = header(&request, "X-Webhook-Signature").to_owned();

    let log = app.get(&format!("/api/v1/deliveries/{delivery_id}"));
    assert_eq!(log.status, 200, "{}", log.text);
    let attempts = log.body["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 1, "{}", log.text);
    let logged = &attempts[0]["request"]["headers"];
    assert_eq!(
        json_header(logged, "Authorization"),
        Some("********"),
        "{logged:#}"
    );
    assert_eq!(
        json_header(logged, "X-Webhook-Signature"),
        Some("********"),
        "{logged:#}"
    );
    assert_eq!(json_header(logged, "X-Clinic"), Some("north"), "{logged:#}");
    assert_eq!(
        json_header(logged, "X-Webhook-Id"),
        Some(delivery_id),
        "{logged:#}"
    );
    for (what, needle) in [
        ("secret header value", SECRET_VALUE),
        ("secret header token", "s3cr3t-token-8f2e41"),
        ("signing secret", signing_secret.as_str()),
        ("signature", wire_signature.as_str()),
    ] {
        assert!(
            !log.text.contains(needle),
            "the delivery log shows the {what}: {}",
            log.text
        );
    }
    let list = app.get(&format!("/api/v1/deliveries?rule_id={id}"));
    assert_eq!(list.status, 200, "{}", list.text);
    assert!(!list.text.contains("s3cr3t-token-8f2e41"), "{}", list.text);
}

#[test]
fn preview_renders_a_verifiable_signed_request_without_sending() {
    let receiver = TestReceiver::start();
    let app = spawn_app();
    let rule = app.create_rule_with(json!({
        "name": "previewed",
        "trigger": {"type": "event", "events": ["member:created"]},
        "webhook": {
            "url": receiver.url("/hook"),
            "secret_headers": {"X-Api-Key": "preview-secret-value-51"},
        },
    }));
    let id = rule["id"].as_str().unwrap();
    let secret = app.secret(id);

    let resp = app.post(&format!("/api/v1/rules/{id}/preview"), &json!({}));
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert_eq!(resp.body["url"], receiver.url("/hook"));
    assert_eq!(resp.body["method"], "POST");
    let body = resp.body["body"].as_str().unwrap().as_bytes().to_vec();
    let headers = &resp.body["headers"];
    let signature = json_header(headers, "X-Webhook-Signature")
        .unwrap_or_else(|| panic!("no signature in the preview: {}", resp.text));
    let (t, sigs) = parse_hmac_header(signature);
    assert_recent(t);
    assert_eq!(sigs, [expected_hmac(&secret, t, &body)]);
    assert_eq!(
        json_header(headers, "X-Webhook-Event"),
        Some("member:created")
    );
    assert!(
        json_header(headers, "User-Agent").is_some_and(|ua| ua.starts_with("tidings/")),
        "{headers:#}"
    );
    // Secret header values stay write-only, in previews too.
    assert_eq!(
        json_header(headers, "X-Api-Key"),
        Some("********"),
        "{headers:#}"
    );
    assert!(!resp.text.contains("preview-secret-value-51"));

    let pairs: Vec<(String, String)> = headers
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap_or_default().to_owned()))
        .collect();
    assert_python_accepts(HMAC, &secret, &pairs, &body);

    // Nothing was sent and nothing was logged.
    receiver.expect_quiet(Duration::from_millis(300));
    assert_eq!(receiver.connections(), 0);
    let deliveries = app.get(&format!("/api/v1/deliveries?rule_id={id}"));
    assert_eq!(deliveries.status, 200, "{}", deliveries.text);
    assert_eq!(deliveries.body["data"], json!([]), "{}", deliveries.text);
}
