//! The verification code the README shows (docs/verify/verify.py and verify.js) accepts a real
//! delivery and rejects a tampered body or a wrong secret.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use serde_json::json;

use crate::support::app::{spawn_app, temp_dir};
use crate::support::external::require_external;
use crate::support::receiver::TestReceiver;

fn tool_present(tool: &str) -> bool {
    let found = Command::new(tool)
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            !require_external(),
            "{tool} is required (TIDINGS_REQUIRE_EXTERNAL=1) but not installed"
        );
        eprintln!("SKIP: {tool} not installed; README verifier not checked");
    }
    found
}

fn run(tool: &str, script: &str, secret: &str, header: &str, body: &Path) -> bool {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/verify")
        .join(script);
    let out = Command::new(tool)
        .arg(script)
        .args([secret, header])
        .arg(body)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "ok" && out.status.success()
}

#[test]
fn readme_verifiers_accept_real_deliveries_and_reject_tampering() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let rule = app.create_rule(&receiver.url("/"), &["member:created"]);
    let secret = app.secret(rule["id"].as_str().unwrap());
    app.ingest(&json!({"type": "member:created", "data": {"member": {"name": "Zoë Example"}}}));
    let got = receiver.wait_for(1, Duration::from_secs(20)).remove(0);
    let header = got.header("x-webhook-signature").unwrap().to_owned();
    let dir = temp_dir("verify");
    let body = dir.join("body.json");
    std::fs::write(&body, &got.body).unwrap();
    let tampered = dir.join("tampered.json");
    std::fs::write(
        &tampered,
        String::from_utf8_lossy(&got.body).replace("Zoë", "Zoe"),
    )
    .unwrap();

    for (tool, script) in [("python3", "verify.py"), ("node", "verify.js")] {
        if !tool_present(tool) {
            continue;
        }
        assert!(
            run(tool, script, &secret, &header, &body),
            "{script} rejected a genuine delivery"
        );
        assert!(
            !run(tool, script, &secret, &header, &tampered),
            "{script} accepted a changed body"
        );
        assert!(
            !run(tool, script, "whsec_wrong", &header, &body),
            "{script} accepted a wrong secret"
        );
        let stale = header.replacen("t=", "t=1", 1);
        assert!(
            !run(tool, script, &secret, &stale, &body),
            "{script} accepted a bad timestamp"
        );
    }
    std::fs::remove_dir_all(dir).ok();
}

/// Runs a README ed25519 verifier: true when it printed "ok".
fn run_ed25519(tool: &str, script: &str, key: &str, headers: [&str; 3], body: &Path) -> bool {
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("docs/verify")
        .join(script);
    let out = Command::new(tool)
        .arg(script)
        .arg(key)
        .args(headers)
        .arg(body)
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).trim() == "ok" && out.status.success()
}

#[test]
fn readme_ed25519_verifiers_accept_real_deliveries_through_a_rotation() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let rule = app.create_rule_with(json!({
        "name": "ed25519",
        "trigger": {"type": "event", "events": ["member:created"]},
        "webhook": {"url": receiver.url("/"), "signing": "ed25519"},
    }));
    let id = rule["id"].as_str().unwrap();
    let old = app.get(&format!("/api/v1/rules/{id}/secret")).body["public_key"]
        .as_str()
        .unwrap()
        .to_owned();
    let rotated = app.post(&format!("/api/v1/rules/{id}/secret/rotate"), &json!({}));
    let new = rotated.body["public_key"].as_str().unwrap().to_owned();
    app.ingest(&json!({"type": "member:created", "data": {"member": {"name": "Zoë Example"}}}));
    let got = receiver.wait_for(1, Duration::from_secs(20)).remove(0);
    let h = |name| got.header(name).unwrap().to_owned();
    let (msg_id, timestamp, signature) = (
        h("webhook-id"),
        h("webhook-timestamp"),
        h("webhook-signature"),
    );
    let dir = temp_dir("verify-ed25519");
    let body = dir.join("body.json");
    std::fs::write(&body, &got.body).unwrap();
    let tampered = dir.join("tampered.json");
    std::fs::write(
        &tampered,
        String::from_utf8_lossy(&got.body).replace("Zoë", "Zoe"),
    )
    .unwrap();
    let (_, other) = {
        let other_rule = app.create_rule_with(json!({
            "name": "other",
            "trigger": {"type": "event", "events": ["other:event"]},
            "webhook": {"url": receiver.url("/other"), "signing": "ed25519"},
        }));
        let other_id = other_rule["id"].as_str().unwrap().to_owned();
        let key = app.get(&format!("/api/v1/rules/{other_id}/secret")).body["public_key"]
            .as_str()
            .unwrap()
            .to_owned();
        (other_id, key)
    };
    let headers = [msg_id.as_str(), timestamp.as_str(), signature.as_str()];

    for (tool, script) in [
        ("python3", "verify_ed25519.py"),
        ("node", "verify_ed25519.js"),
    ] {
        if !tool_present(tool) {
            continue;
        }
        for key in [&new, &old] {
            assert!(
                run_ed25519(tool, script, key, headers, &body),
                "{script} rejected a genuine delivery during the rotation overlap"
            );
        }
        assert!(
            !run_ed25519(tool, script, &new, headers, &tampered),
            "{script} accepted a changed body"
        );
        assert!(
            !run_ed25519(tool, script, &other, headers, &body),
            "{script} accepted another rule's key"
        );
        let stale = ["1", &timestamp].concat();
        assert!(
            !run_ed25519(tool, script, &new, [&msg_id, &stale, &signature], &body),
            "{script} accepted a bad timestamp"
        );
    }
    std::fs::remove_dir_all(dir).ok();
}
