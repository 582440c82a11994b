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
