//! OAuth 2 client credentials (SPEC §12): a token endpoint on 127.0.0.1 (a test receiver
//! answering token JSON) checks each client-auth method as it arrives — the Basic header, the
//! form fields, a JWT assertion whose signature is verified with the public key — and the
//! receiver sees the Bearer token. One token serves several deliveries until 30 s before its
//! `expires_in`, a 401 fetches a new one within the attempt, a token endpoint that fails is
//! attempt error `auth` (retried), and every bad setting is a 400 at its field.

use std::time::Duration;

use base64::Engine;
use serde_json::{Value, json};

use crate::support::app::{TestApp, spawn_app, spawn_app_with, wait_until};
use crate::support::external::skip;
use crate::support::receiver::{Recorded, Reply, TestReceiver};

const WAIT: Duration = Duration::from_secs(30);

fn token_reply(token: &str, expires_in: u64) -> Reply {
    Reply::status(200)
        .header("Content-Type", "application/json")
        .body(
            json!({"access_token": token, "token_type": "Bearer", "expires_in": expires_in})
                .to_string(),
        )
}

fn oauth_rule(url: &str, auth: Value) -> Value {
    json!({
        "name": "ehr",
        "trigger": {"type": "event", "events": ["ping"]},
        "webhook": {"url": url, "auth": auth},
    })
}

/// The form fields of a token request.
fn form(request: &Recorded) -> Vec<(String, String)> {
    url::form_urlencoded::parse(&request.body)
        .into_owned()
        .collect()
}

fn field<'a>(fields: &'a [(String, String)], name: &str) -> Option<&'a str> {
    fields
        .iter()
        .find(|(k, _)| k == name)
        .map(|(_, v)| v.as_str())
}

/// Posts a ping and waits until it is delivered; answers the delivery.
fn deliver(app: &TestApp) -> Value {
    let event = app.ingest(&json!({"type": "ping"}));
    assert_eq!(event.status, 202, "{}", event.text);
    let id = event.body["id"].as_str().unwrap().to_owned();
    let settled = app.wait_settled(&id, WAIT);
    let delivery = settled[0]["id"].as_str().unwrap().to_owned();
    app.delivery(&delivery)
}

fn logged_authorization(delivery: &Value, attempt: usize) -> String {
    let headers = delivery["attempts"][attempt]["request"]["headers"]
        .as_object()
        .unwrap_or_else(|| panic!("{delivery:#}"));
    headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("authorization"))
        .and_then(|(_, v)| v.as_str())
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn client_secret_basic_token_is_cached_refreshed_and_masked() {
    let tokens = TestReceiver::start();
    // 32 s minus the 30 s margin: the token is kept for 2 s.
    tokens.reply_sequence(vec![token_reply("tok-1", 32)]);
    tokens.set_default(token_reply("tok-2", 32));
    let receiver = TestReceiver::start();
    let app = spawn_app();
    let rule = app.create_rule_with(oauth_rule(
        &receiver.url("/ehr"),
        json!({"type": "oauth2_client_credentials", "token_url": tokens.url("/token"),
               "client_id": "tidings app", "client_secret": "s3cr:t",
               "scope": "system/Patient.read", "client_auth": "client_secret_basic"}),
    ));
    let auth = &rule["webhook"]["auth"];
    assert_eq!(auth["type"], "oauth2_client_credentials", "{rule:#}");
    assert_eq!(auth["client_secret"], "********", "{rule:#}");
    assert_eq!(auth["client_auth"], "client_secret_basic");

    let mut delivered = Vec::new();
    for _ in 0..3 {
        delivered.push(deliver(&app));
    }
    assert_eq!(tokens.count(), 1, "one token for several deliveries");
    let token_request = &tokens.requests()[0];
    let expected = base64::engine::general_purpose::STANDARD.encode("tidings+app:s3cr%3At");
    assert_eq!(
        token_request.header("authorization"),
        Some(format!("Basic {expected}").as_str())
    );
    let fields = form(token_request);
    assert_eq!(field(&fields, "grant_type"), Some("client_credentials"));
    assert_eq!(field(&fields, "scope"), Some("system/Patient.read"));
    assert_eq!(
        field(&fields, "client_secret"),
        None,
        "basic sends no form secret"
    );
    for request in receiver.wait_for(3, WAIT) {
        assert_eq!(request.header("authorization"), Some("Bearer tok-1"));
    }
    for delivery in &delivered {
        assert_eq!(delivery["status"], "succeeded", "{delivery:#}");
        assert_eq!(logged_authorization(delivery, 0), "Bearer ********");
        assert!(!delivery.to_string().contains("tok-1"), "{delivery:#}");
    }

    std::thread::sleep(Duration::from_millis(2500));
    deliver(&app);
    assert_eq!(
        tokens.count(),
        2,
        "a token due for refresh is fetched again"
    );
    let last = receiver.wait_for(4, WAIT);
    assert_eq!(last[3].header("authorization"), Some("Bearer tok-2"));
}

#[test]
fn client_secret_post_and_a_401_fetches_a_new_token_once() {
    let tokens = TestReceiver::start();
    tokens.reply_sequence(vec![token_reply("old", 3600)]);
    tokens.set_default(token_reply("new", 3600));
    let receiver = TestReceiver::start();
    receiver.reply_sequence(vec![Reply::status(401).body("token revoked")]);
    let app = spawn_app_with(|c| c.retry.max_attempts = 1);
    app.create_rule_with(oauth_rule(
        &receiver.url("/ehr"),
        json!({"type": "oauth2_client_credentials", "token_url": tokens.url("/token"),
               "client_id": "cid", "client_secret": "pw", "audience": "https://ehr.example",
               "client_auth": "client_secret_post"}),
    ));
    let delivery = deliver(&app);
    assert_eq!(delivery["status"], "succeeded", "{delivery:#}");
    assert_eq!(
        delivery["attempts"].as_array().unwrap().len(),
        1,
        "the 401 and the new send are one attempt: {delivery:#}"
    );
    assert_eq!(delivery["attempts"][0]["status_code"], 200);
    let sent = receiver.wait_for(2, WAIT);
    assert_eq!(sent[0].header("authorization"), Some("Bearer old"));
    assert_eq!(sent[1].header("authorization"), Some("Bearer new"));
    let requests = tokens.requests();
    assert_eq!(requests.len(), 2, "one fetch, and one after the 401");
    let fields = form(&requests[0]);
    assert_eq!(field(&fields, "client_id"), Some("cid"));
    assert_eq!(field(&fields, "client_secret"), Some("pw"));
    assert_eq!(field(&fields, "audience"), Some("https://ehr.example"));
    assert_eq!(requests[0].header("authorization"), None);
}

#[test]
fn private_key_jwt_signs_an_assertion_the_public_key_verifies() {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P384_SHA384).unwrap();
    let tokens = TestReceiver::start();
    tokens.set_default(token_reply("jwt-token", 300));
    let receiver = TestReceiver::start();
    let app = spawn_app();
    let token_url = tokens.url("/auth/token");
    let rule = app.create_rule_with(oauth_rule(
        &receiver.url("/ehr"),
        json!({"type": "oauth2_client_credentials", "token_url": token_url,
               "client_id": "smart-client", "client_auth": "private_key_jwt",
               "private_key": key.serialize_pem()}),
    ));
    assert_eq!(rule["webhook"]["auth"]["private_key"], "********");
    let delivery = deliver(&app);
    assert_eq!(delivery["status"], "succeeded", "{delivery:#}");
    assert_eq!(
        receiver.wait_for(1, WAIT)[0].header("authorization"),
        Some("Bearer jwt-token")
    );

    // A test send goes the same way (with the cached token).
    let id = rule["id"].as_str().unwrap();
    let test = app.post(&format!("/api/v1/rules/{id}/test"), &json!({}));
    assert_eq!(test.status, 200, "{}", test.text);
    assert_eq!(
        test.body["attempts"][0]["status_code"], 200,
        "{}",
        test.text
    );
    assert_eq!(
        receiver.wait_for(2, WAIT)[1].header("authorization"),
        Some("Bearer jwt-token")
    );

    let fields = form(&tokens.requests()[0]);
    assert_eq!(field(&fields, "grant_type"), Some("client_credentials"));
    assert_eq!(
        field(&fields, "client_assertion_type"),
        Some("urn:ietf:params:oauth:client-assertion-type:jwt-bearer")
    );
    let jwt = field(&fields, "client_assertion").expect("an assertion");
    let parts: Vec<&str> = jwt.split('.').collect();
    assert_eq!(parts.len(), 3, "{jwt}");
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let signature = b64.decode(parts[2]).unwrap();
    ring::signature::UnparsedPublicKey::new(
        &ring::signature::ECDSA_P384_SHA384_FIXED,
        key.public_key_raw(),
    )
    .verify(format!("{}.{}", parts[0], parts[1]).as_bytes(), &signature)
    .expect("the assertion verifies with the client's public key");
    let header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "ES384");
    let claims: Value = serde_json::from_slice(&b64.decode(parts[1]).unwrap()).unwrap();
    assert_eq!(claims["iss"], "smart-client");
    assert_eq!(claims["sub"], "smart-client");
    assert_eq!(claims["aud"], token_url.as_str());
    assert!(claims["jti"].as_str().is_some_and(|j| j.len() >= 16));
    let lifetime = claims["exp"].as_i64().unwrap() - claims["iat"].as_i64().unwrap();
    assert!((1..=300).contains(&lifetime), "{claims}");
}

#[test]
fn a_token_endpoint_that_fails_is_an_auth_error_retried_until_it_answers() {
    let tokens = TestReceiver::start();
    tokens.reply_sequence(vec![
        Reply::status(503).body(r#"{"error":"temporarily_unavailable"}"#),
        Reply::status(200).body("not json"),
    ]);
    tokens.set_default(token_reply("late", 3600));
    let receiver = TestReceiver::start();
    let app = spawn_app_with(|c| c.retry.max_attempts = 5);
    app.create_rule_with(oauth_rule(
        &receiver.url("/ehr"),
        json!({"type": "oauth2_client_credentials", "token_url": tokens.url("/token"),
               "client_id": "cid", "client_secret": "pw",
               "client_auth": "client_secret_basic"}),
    ));
    let event = app.ingest(&json!({"type": "ping"}));
    let id = event.body["id"].as_str().unwrap().to_owned();
    let settled = app.wait_settled(&id, WAIT);
    let delivery_id = settled[0]["id"].as_str().unwrap().to_owned();
    let delivery = wait_until(WAIT, "success after the token endpoint recovers", || {
        let d = app.delivery(&delivery_id);
        (d["status"] == "succeeded").then_some(d)
    });
    let attempts = delivery["attempts"].as_array().unwrap();
    assert_eq!(attempts.len(), 3, "{delivery:#}");
    for failed in &attempts[..2] {
        assert_eq!(failed["error_kind"], "auth", "{delivery:#}");
    }
    assert!(
        attempts[0]["error"]
            .as_str()
            .is_some_and(|e| e.contains("503")),
        "{delivery:#}"
    );
    assert_eq!(attempts[2]["status_code"], 200, "{delivery:#}");
    assert_eq!(receiver.count(), 1, "nothing is sent without a token");
}

#[test]
fn bad_oauth_settings_are_400s_at_their_field_and_store_nothing() {
    let app = spawn_app();
    let url = "http://127.0.0.1:9/ehr";
    let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    let base = |extra: Value| {
        let mut auth = json!({"type": "oauth2_client_credentials",
                              "token_url": "http://127.0.0.1:9/token", "client_id": "cid"});
        for (k, v) in extra.as_object().unwrap() {
            auth[k] = v.clone();
        }
        oauth_rule(url, auth)
    };
    let cases = [
        (
            base(json!({"client_auth": "client_secret_basic"})),
            "webhook.auth.client_secret",
            "required",
        ),
        (
            base(json!({"client_auth": "client_secret_post", "client_secret": "********"})),
            "webhook.auth.client_secret",
            "no stored secret",
        ),
        (
            base(json!({"client_auth": "private_key_jwt"})),
            "webhook.auth.private_key",
            "required",
        ),
        (
            base(
                json!({"client_auth": "private_key_jwt", "private_key": "-----BEGIN PRIVATE KEY-----\nnope\n-----END PRIVATE KEY-----"}),
            ),
            "webhook.auth.private_key",
            "RSA key",
        ),
        (
            base(json!({"client_auth": "private_key_jwt", "private_key": "not pem at all"})),
            "webhook.auth.private_key",
            "PEM",
        ),
        (
            base(json!({"client_auth": "private_key_jwt", "private_key": p256})),
            "webhook.auth.private_key",
            "P-384",
        ),
        (
            base(json!({"client_auth": "magic", "client_secret": "x"})),
            "webhook.auth.client_auth",
            "private_key_jwt",
        ),
        (
            base(json!({"client_secret": "x"})),
            "webhook.auth.client_auth",
            "required",
        ),
        (
            base(
                json!({"client_auth": "client_secret_basic", "client_secret": "x", "token_url": "ftp://x/token"}),
            ),
            "webhook.auth.token_url",
            "scheme",
        ),
        (
            base(
                json!({"client_auth": "client_secret_basic", "client_secret": "x", "client_id": " "}),
            ),
            "webhook.auth.client_id",
            "required",
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
        assert!(
            message.to_lowercase().contains(&words.to_lowercase()),
            "{field}: {message}"
        );
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
fn an_http_token_url_is_refused_in_production() {
    let app = spawn_app_with(|c| c.mode = tidings::config::Mode::Production);
    let resp = app.post(
        "/api/v1/rules",
        &oauth_rule(
            "https://ehr.example/hook",
            json!({"type": "oauth2_client_credentials", "token_url": "http://auth.example/token",
                   "client_id": "cid", "client_secret": "pw",
                   "client_auth": "client_secret_basic"}),
        ),
    );
    assert_eq!(resp.status, 400, "{}", resp.text);
    let message = resp.body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("webhook.auth.token_url"), "{message}");
}

#[test]
fn a_token_url_nothing_listens_on_is_an_auth_error_and_nothing_is_sent() {
    // A port that was just free: nothing listens there.
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let token_url = format!("http://{}/token", closed.local_addr().unwrap());
    drop(closed);
    let receiver = TestReceiver::start();
    let app = spawn_app_with(|c| c.retry.max_attempts = 1);
    app.create_rule_with(oauth_rule(
        &receiver.url("/ehr"),
        json!({"type": "oauth2_client_credentials", "token_url": token_url,
               "client_id": "cid", "client_secret": "pw",
               "client_auth": "client_secret_post"}),
    ));
    let event = app.ingest(&json!({"type": "ping"}));
    let id = event.body["id"].as_str().unwrap().to_owned();
    let settled = app.wait_settled(&id, WAIT);
    let delivery = app.delivery(settled[0]["id"].as_str().unwrap());
    let attempt = &delivery["attempts"][0];
    assert_eq!(attempt["error_kind"], "auth", "{delivery:#}");
    assert!(
        attempt["error"]
            .as_str()
            .is_some_and(|e| e.contains("could not be reached")),
        "{delivery:#}"
    );
    assert_eq!(receiver.count(), 0);
}

/// An RSA key of `bits` from Python's `cryptography`: (PKCS#8 PEM, PKCS#1 public DER).
fn python_rsa(bits: u32) -> Option<(String, Vec<u8>)> {
    let script = format!(
        "from cryptography.hazmat.primitives.asymmetric import rsa\n\
         from cryptography.hazmat.primitives import serialization as s\n\
         k = rsa.generate_private_key(public_exponent=65537, key_size={bits})\n\
         print(k.private_bytes(s.Encoding.PEM, s.PrivateFormat.PKCS8, s.NoEncryption()).decode())\n\
         print(k.public_key().public_bytes(s.Encoding.DER, s.PublicFormat.PKCS1).hex())\n"
    );
    let out = std::process::Command::new("python3")
        .args(["-c", &script])
        .output()
        .ok()
        .filter(|o| o.status.success());
    let Some(out) = out else {
        skip("python3 with the cryptography package is needed to make an RSA key");
        return None;
    };
    let text = String::from_utf8(out.stdout).unwrap();
    let (pem, public) = text.trim().rsplit_once('\n').unwrap();
    Some((pem.to_owned(), hex::decode(public.trim()).unwrap()))
}

#[test]
fn an_rsa_key_signs_rs384_and_a_short_one_is_refused() {
    let Some((pem, public)) = python_rsa(2048) else {
        return;
    };
    let tokens = TestReceiver::start();
    tokens.set_default(token_reply("rsa-token", 300));
    let receiver = TestReceiver::start();
    let app = spawn_app();
    app.create_rule_with(oauth_rule(
        &receiver.url("/ehr"),
        json!({"type": "oauth2_client_credentials", "token_url": tokens.url("/token"),
               "client_id": "rsa-client", "client_auth": "private_key_jwt",
               "private_key": pem}),
    ));
    assert_eq!(deliver(&app)["status"], "succeeded");
    let fields = form(&tokens.requests()[0]);
    let jwt = field(&fields, "client_assertion").expect("an assertion");
    let parts: Vec<&str> = jwt.split('.').collect();
    let b64 = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    let header: Value = serde_json::from_slice(&b64.decode(parts[0]).unwrap()).unwrap();
    assert_eq!(header["alg"], "RS384");
    ring::signature::UnparsedPublicKey::new(&ring::signature::RSA_PKCS1_2048_8192_SHA384, &public)
        .verify(
            format!("{}.{}", parts[0], parts[1]).as_bytes(),
            &b64.decode(parts[2]).unwrap(),
        )
        .expect("the RS384 assertion verifies with the public key");

    let Some((short, _)) = python_rsa(1024) else {
        return;
    };
    let resp = app.post(
        "/api/v1/rules",
        &oauth_rule(
            &receiver.url("/ehr"),
            json!({"type": "oauth2_client_credentials", "token_url": tokens.url("/token"),
                   "client_id": "rsa-client", "client_auth": "private_key_jwt",
                   "private_key": short}),
        ),
    );
    assert_eq!(resp.status, 400, "{}", resp.text);
    let message = resp.body["error"]["message"].as_str().unwrap();
    assert!(message.starts_with("webhook.auth.private_key"), "{message}");
    assert!(message.contains("shorter than 2048 bits"), "{message}");
}

#[test]
fn the_openapi_document_has_the_oauth_auth_and_the_auth_error_kind() {
    let app = spawn_app();
    let doc = app.get("/api/v1/openapi.json");
    assert_eq!(doc.status, 200);
    let schemas = &doc.body["components"]["schemas"];
    let kinds = schemas["ErrorKind"]["enum"]
        .as_array()
        .expect("ErrorKind enum");
    assert!(kinds.contains(&json!("auth")), "{kinds:?}");
    let methods = schemas["ClientAuth"]["enum"]
        .as_array()
        .expect("ClientAuth enum");
    assert_eq!(methods.len(), 3, "{methods:?}");
    assert!(methods.contains(&json!("private_key_jwt")), "{methods:?}");
    let auth = schemas["AuthInput"].to_string();
    for name in [
        "oauth2_client_credentials",
        "token_url",
        "client_secret",
        "private_key",
    ] {
        assert!(auth.contains(name), "{name} missing from {auth}");
    }
}
