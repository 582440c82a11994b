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
