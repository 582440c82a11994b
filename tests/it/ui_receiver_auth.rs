//! The admin UI for receivers that ask for more than a shared secret (SPEC §12): an ed25519
//! rule's page shows its public key with a copy button and rotates its key pair; the form
//! takes a client certificate, refuses a bad one at its field and warns before expiry.

use crate::support::app::spawn_app;
use crate::support::receiver::TestCa;
use crate::support::ui::setup_admin;

fn fields<'a>(extra: &[(&'a str, &'a str)]) -> Vec<(&'a str, &'a str)> {
    let mut f = vec![
        ("name", "Receiver auth"),
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
        match f.iter_mut().find(|(n, _)| n == k) {
            Some(slot) => slot.1 = v,
            None => f.push((k, v)),
        }
    }
    f
}

fn rule_id(location: &str) -> String {
    location
        .trim_start_matches("/rules/")
        .split('?')
        .next()
        .unwrap()
        .to_owned()
}

#[test]
fn an_ed25519_rule_page_shows_its_public_key_to_copy_and_rotates_it() {
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let form = admin.get("/rules/new");
    assert!(form.text.contains("value=\"ed25519\""), "{}", form.text);
    let made = admin.post("/rules/new", &fields(&[("signing", "ed25519")]));
    assert_eq!(made.status, 303, "{}", made.text);
    let id = rule_id(made.location());
    let key = app.get(&format!("/api/v1/rules/{id}/secret")).body["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let page = admin.get(&format!("/rules/{id}"));
    assert_eq!(page.by_id("public-key").as_deref(), Some(key.as_str()));
    assert!(
        page.text.contains("data-copy=\"#public-key\""),
        "{}",
        page.text
    );
    assert!(!page.text.contains("id=\"reveal-secret\""), "{}", page.text);
    assert!(!page.text.contains("whsk_"));

    let rotated = admin.post(&format!("/rules/{id}/rotate"), &[]);
    assert_eq!(rotated.status, 303, "{}", rotated.text);
    let after = admin.get(rotated.location());
    assert!(after.text.contains("New key pair made"), "{}", after.text);
    let new = after.by_id("public-key").unwrap();
    assert_ne!(new, key);
    assert_eq!(
        app.get(&format!("/api/v1/rules/{id}/secret")).body["public_key"],
        new.as_str()
    );
    // The edit form keeps the scheme.
    let edit = admin.get(&format!("/rules/{id}/edit"));
    assert!(
        edit.text.contains("value=\"ed25519\" selected"),
        "{}",
        edit.text
    );
}

#[test]
fn the_form_takes_a_client_certificate_in_plain_words_and_warns_before_it_expires() {
    let ca = TestCa::new();
    let app = spawn_app();
    let admin = setup_admin(&app, "anna");
    let form = admin.get("/rules/new");
    assert!(
        form.text.contains("The receiver checks a certificate"),
        "{}",
        form.text
    );
    // A key that is not the certificate's is refused at the key field, the rest kept.
    let (cert, key) = ca.client_pems("tidings-client", 10);
    let (_, other_key) = ca.client_pems("other", 10);
    let bad = admin.post(
        "/rules/new",
        &fields(&[
            ("auth_type", "mtls"),
            ("client_cert", &cert),
            ("client_key", &other_key),
        ]),
    );
    bad.assert_status(400);
    assert!(bad.text.contains("id=\"err-client_key\""), "{}", bad.text);
    assert!(bad.text.contains("does not belong"), "{}", bad.text);
    assert!(!bad.text.contains("id=\"err-client_cert\""), "{}", bad.text);
    assert_eq!(
        app.get("/api/v1/rules").body["data"]
            .as_array()
            .unwrap()
            .len(),
        0
    );

    let made = admin.post(
        "/rules/new",
        &fields(&[
            ("auth_type", "mtls"),
            ("client_cert", &cert),
            ("client_key", &key),
        ]),
    );
    assert_eq!(made.status, 303, "{}", made.text);
    let id = rule_id(made.location());
    let page = admin.get(&format!("/rules/{id}"));
    let auth = page.by_id("receiver-auth").unwrap();
    assert!(auth.contains("client certificate"), "{auth}");
    let warning = page.by_id("cert-warning").expect("a warning 10 days ahead");
    assert!(
        warning.contains("in 9 days") || warning.contains("in 10 days"),
        "{warning}"
    );

    // Editing without retyping the key keeps it (the field is blank, write-only).
    let edit = admin.get(&format!("/rules/{id}/edit"));
    assert!(
        edit.text.contains("leave blank to keep the stored key"),
        "{}",
        edit.text
    );
    assert!(!edit.text.contains(key.lines().nth(1).unwrap()));
    let saved = admin.post(
        &format!("/rules/{id}/edit"),
        &fields(&[
            ("name", "Renamed"),
            ("auth_type", "mtls"),
            ("client_cert", &cert),
            ("client_key", ""),
        ]),
    );
    assert_eq!(saved.status, 303, "{}", saved.text);
    let published = admin.post(&format!("/rules/{id}/draft/publish"), &[]);
    assert_eq!(published.status, 303, "{}", published.text);
    let rule = app.get(&format!("/api/v1/rules/{id}"));
    assert_eq!(rule.body["name"], "Renamed");
    assert_eq!(rule.body["webhook"]["auth"]["client_key"], "********");

    // A certificate far from expiry shows no warning.
    let (long_cert, long_key) = ca.client_pems("tidings-client", 300);
    let far = admin.post(
        "/rules/new",
        &fields(&[
            ("auth_type", "mtls"),
            ("client_cert", &long_cert),
            ("client_key", &long_key),
        ]),
    );
    let far_page = admin.get(&format!("/rules/{}", rule_id(far.location())));
    assert!(far_page.by_id("cert-warning").is_none());
}

#[test]
fn the_form_takes_a_login_token_setting_keeps_its_secret_and_drops_the_hidden_key() {
    let app = spawn_app();
    let admin = setup_admin(&app, "olga");
    let form = admin.get("/rules/new");
    assert!(
        form.text.contains("The receiver wants a login token"),
        "{}",
        form.text
    );
    let oauth = [
        ("auth_type", "oauth2_client_credentials"),
        ("token_url", "http://127.0.0.1:9/token"),
        ("client_id", "tidings"),
        ("client_auth", "client_secret_basic"),
        ("scope", "system/Patient.read"),
        ("audience", ""),
        // Hidden with a secret method: dropped, never checked.
        ("private_key", "not a key"),
    ];
    let refused = admin.post("/rules/new", &fields(&oauth));
    assert_eq!(refused.status, 400, "{}", refused.text);
    assert!(
        refused.by_id("err-client_secret").is_some(),
        "{}",
        refused.text
    );
    let mut with_secret = oauth.to_vec();
    with_secret.push(("client_secret", "s3cret"));
    let made = admin.post("/rules/new", &fields(&with_secret));
    assert_eq!(made.status, 303, "{}", made.text);
    let id = rule_id(made.location());
    let auth = &app.get(&format!("/api/v1/rules/{id}")).body["webhook"]["auth"];
    assert_eq!(auth["type"], "oauth2_client_credentials", "{auth:#}");
    assert_eq!(auth["client_secret"], "********");
    assert_eq!(auth["scope"], "system/Patient.read");
    assert!(auth.get("private_key").is_none(), "{auth:#}");

    // Saving again with the secret left blank keeps it; the preview masks the token.
    let edit = admin.get(&format!("/rules/{id}/edit"));
    assert!(
        edit.text.contains("leave blank to keep the stored secret"),
        "{}",
        edit.text
    );
    let again = admin.post(&format!("/rules/{id}/edit"), &fields(&oauth));
    assert_eq!(again.status, 303, "{}", again.text);
    let preview = app.post(
        &format!("/api/v1/rules/{id}/preview"),
        &serde_json::json!({}),
    );
    assert_eq!(
        preview.body["headers"]["Authorization"], "Bearer ********",
        "{}",
        preview.text
    );

    // A signing key of the wrong kind is refused at its field.
    let p256 = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)
        .unwrap()
        .serialize_pem();
    let mut jwt = oauth.to_vec();
    jwt.retain(|(k, _)| *k != "client_auth" && *k != "private_key");
    jwt.push(("client_auth", "private_key_jwt"));
    jwt.push(("private_key", &p256));
    let bad_key = admin.post(&format!("/rules/{id}/edit"), &fields(&jwt));
    assert_eq!(bad_key.status, 400, "{}", bad_key.text);
    assert!(
        bad_key
            .by_id("err-private_key")
            .is_some_and(|m| m.contains("P-384")),
        "{}",
        bad_key.text
    );
}
