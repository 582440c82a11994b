//! A receiver whose certificate comes from a private CA (an on-premises EHR) is trusted once
//! that CA is in the platform trust store — here via `SSL_CERT_FILE` — with certificate
//! checks on, in production mode; without it the attempt fails with a `tls` error.

use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::wait_until;
use crate::support::process::{Scratch, Served, create_key, request};
use crate::support::receiver::{TestCa, TestReceiver};

fn deliver_once(served: &Served, key: &str, url: &str) -> Value {
    let rule = request(
        "POST",
        &served.url("/api/v1/rules"),
        Some(key),
        Some(
            &json!({"name": "ehr", "trigger": {"type": "event", "events": ["ping"]},
                     "webhook": {"url": url}}),
        ),
    );
    assert_eq!(rule.status, 201, "{}", rule.text);
    let event = request(
        "POST",
        &served.url("/api/v1/events"),
        Some(key),
        Some(&json!({"type": "ping"})),
    );
    assert_eq!(event.status, 202, "{}", event.text);
    let event_id = event.body["id"].as_str().unwrap().to_owned();
    wait_until(Duration::from_secs(30), "the first attempt", || {
        let e = request(
            "GET",
            &served.url(&format!("/api/v1/events/{event_id}")),
            Some(key),
            None,
        );
        let id = e.body["deliveries"][0]["id"].as_str()?.to_owned();
        let d = request(
            "GET",
            &served.url(&format!("/api/v1/deliveries/{id}")),
            Some(key),
            None,
        );
        d.body["attempts"]
            .as_array()
            .filter(|a| !a.is_empty())
            .map(|a| a[0].clone())
    })
}

#[test]
fn a_private_ca_in_the_trust_store_is_trusted_with_verification_on() {
    let scratch = Scratch::new("tls-trust");
    let ca = TestCa::new();
    let ca_path = scratch.path("ca.pem");
    ca.write_ca_pem(&ca_path);
    let receiver = TestReceiver::start_https(&ca);
    let url = receiver.url("/ehr");
    assert!(url.starts_with("https://127.0.0.1:"));
    let config = scratch.write(
        "tidings.toml",
        "[retry]\nmax_attempts = 1\n[network]\nallow = [\"127.0.0.0/8\"]\n",
    );
    let config = config.to_str().unwrap();

    let trusted_dir = scratch.path("trusted");
    let key = create_key(&trusted_dir, "admin");
    let trusted = Served::start_with_env(
        &trusted_dir,
        &["--config", config],
        &[("SSL_CERT_FILE", ca_path.to_str().unwrap())],
    );
    let attempt = deliver_once(&trusted, &key, &url);
    assert_eq!(attempt["status_code"], 200, "{attempt}");
    assert_eq!(
        receiver.wait_for(1, Duration::from_secs(10))[0].path,
        "/ehr"
    );
    drop(trusted);

    let untrusted_dir = scratch.path("untrusted");
    let key = create_key(&untrusted_dir, "admin");
    let untrusted = Served::start_with_env(
        &untrusted_dir,
        &["--config", config],
        &[("SSL_CERT_FILE", "/nonexistent-ca.pem")],
    );
    let attempt = deliver_once(&untrusted, &key, &url);
    assert_eq!(attempt["error_kind"], "tls", "{attempt}");
    assert_eq!(
        receiver.expect_quiet(Duration::from_millis(300)),
        1,
        "no request without trust"
    );
}

#[test]
fn the_api_is_served_over_https_when_tls_cert_and_key_are_set() {
    let scratch = Scratch::new("tls-serve");
    let ca = TestCa::new();
    let (cert, key) = ca.server_pems();
    let cert_path = scratch.write("cert.pem", &cert);
    let key_path = scratch.write("key.pem", &key);
    let app = crate::support::app::spawn_app_with(|c| {
        c.tls.cert = cert_path.to_string_lossy().into_owned();
        c.tls.key = key_path.to_string_lossy().into_owned();
    });
    let root = ureq::tls::Certificate::from_der(&ca.ca_der()).to_owned();
    let agent = ureq::Agent::config_builder()
        .http_status_as_error(false)
        .proxy(None)
        .tls_config(
            ureq::tls::TlsConfig::builder()
                .root_certs(ureq::tls::RootCerts::Specific(std::sync::Arc::new(vec![
                    root,
                ])))
                .build(),
        )
        .build()
        .new_agent();
    let resp = agent
        .get(format!("https://127.0.0.1:{}/healthz", app.port))
        .call()
        .unwrap();
    assert_eq!(resp.status(), 200);
    let plain = crate::support::app::client()
        .get(app.url("/healthz"))
        .call();
    assert!(
        plain.is_err() || plain.unwrap().status() != 200,
        "plain HTTP must not be served"
    );

    // A key that does not load is a start-up error naming the setting.
    let bad = scratch.write("bad.pem", "not a key");
    let mut config = crate::support::app::test_config(&scratch.path("bad-data"));
    config.tls.cert = cert_path.to_string_lossy().into_owned();
    config.tls.key = bad.to_string_lossy().into_owned();
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let err = tidings::run_with_key(config, listener, None)
        .err()
        .expect("bad key refused");
    assert!(format!("{err:#}").contains("tls.key"), "{err:#}");
}
