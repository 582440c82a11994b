//! `tidings verify` on a captured real delivery: accepted as received, and each usual mistake
//! (re-serialised JSON, wrong secret, missing headers) named in its refusal.

use std::time::Duration;

use serde_json::json;

use crate::support::app::spawn_app;
use crate::support::process::{Scratch, run, tidings};
use crate::support::receiver::TestReceiver;

#[test]
fn verify_accepts_a_real_delivery_and_explains_each_failure() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let rule = app.create_rule(&receiver.url("/"), &["member:created"]);
    let secret = app.secret(rule["id"].as_str().unwrap());
    app.ingest(&json!({"type": "member:created", "data": {"member": {"id": 1, "name": "Jane"}}}));
    let got = receiver.wait_for(1, Duration::from_secs(20)).remove(0);

    let scratch = Scratch::new("verify");
    let head = got
        .headers
        .iter()
        .fold(String::new(), |acc, (k, v)| acc + k + ": " + v + "\n");
    let headers = scratch.write("headers.txt", &format!("POST / HTTP/1.1\n{head}"));
    let body = scratch.path("body.json");
    std::fs::write(&body, &got.body).unwrap();
    let pretty = scratch.write(
        "pretty.json",
        &serde_json::to_string_pretty(&got.body_json()).unwrap(),
    );

    let verify = |secret: &str, body: &std::path::Path, extra: &[&str]| {
        let mut cmd = tidings();
        cmd.args(["verify", "--secret", secret, "--headers"])
            .arg(&headers)
            .arg("--body")
            .arg(body)
            .args(extra);
        run(cmd)
    };
    let ok = verify(&secret, &body, &[]);
    assert!(ok.success(), "{}", ok.stderr);
    assert!(
        ok.stdout.starts_with("ok: hmac-sha256 signature verified"),
        "{}",
        ok.stdout
    );

    let changed = verify(&secret, &pretty, &[]);
    assert!(!changed.success());
    assert!(
        changed.stderr.contains("body was changed"),
        "{}",
        changed.stderr
    );

    let wrong = verify(
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
        &body,
        &[],
    );
    assert!(!wrong.success());
    assert!(wrong.stderr.contains("does not match"), "{}", wrong.stderr);

    let mut cmd = tidings();
    cmd.args([
        "verify",
        "--secret",
        &secret,
        "--header",
        "Content-Type: application/json",
        "--body",
    ])
    .arg(&body);
    let no_sig = run(cmd);
    assert!(!no_sig.success());
    assert!(
        no_sig.stderr.contains("no X-Webhook-Signature"),
        "{}",
        no_sig.stderr
    );
}

#[test]
fn verify_checks_an_ed25519_delivery_with_the_public_key_and_explains_a_secret() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let rule = app.create_rule_with(json!({
        "name": "ed25519",
        "trigger": {"type": "event", "events": ["member:created"]},
        "webhook": {"url": receiver.url("/"), "signing": "ed25519"},
    }));
    let id = rule["id"].as_str().unwrap();
    let key = app.get(&format!("/api/v1/rules/{id}/secret")).body["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    app.ingest(&json!({"type": "member:created", "data": {"member": {"id": 1}}}));
    let got = receiver.wait_for(1, Duration::from_secs(20)).remove(0);
    let scratch = Scratch::new("verify-ed25519");
    let head = got
        .headers
        .iter()
        .fold(String::new(), |acc, (k, v)| acc + k + ": " + v + "\n");
    let headers = scratch.write("headers.txt", &head);
    let body = scratch.path("body.json");
    std::fs::write(&body, &got.body).unwrap();
    let verify = |flag: &str, key: &str| {
        let mut cmd = tidings();
        cmd.args(["verify", flag, key, "--headers"])
            .arg(&headers)
            .arg("--body")
            .arg(&body);
        run(cmd)
    };
    let ok = verify("--public-key", &key);
    assert!(ok.success(), "{}", ok.stderr);
    assert!(
        ok.stdout.starts_with("ok: ed25519 signature verified"),
        "{}",
        ok.stdout
    );
    let with_secret = verify(
        "--secret",
        "whsec_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
    );
    assert!(!with_secret.success());
    assert!(
        with_secret.stderr.contains("v1a (ed25519)") && with_secret.stderr.contains("whpk_"),
        "{}",
        with_secret.stderr
    );
}
