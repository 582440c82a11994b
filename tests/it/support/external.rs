//! Runs the independent Python signature checker (`tests/verify_signature.py`,
//! which uses the official `stripe` and `standardwebhooks` libraries).

use std::io::{ErrorKind, Write};
use std::path::PathBuf;
use std::process::{Command, Stdio};

use base64::Engine as _;

/// Whether external checks are mandatory (`TIDINGS_REQUIRE_EXTERNAL=1`):
/// then a missing python3 or library fails the test instead of skipping.
pub fn require_external() -> bool {
    std::env::var("TIDINGS_REQUIRE_EXTERNAL").is_ok_and(|v| v == "1")
}

pub fn skip(why: &str) {
    assert!(
        !require_external(),
        "TIDINGS_REQUIRE_EXTERNAL=1 but an external check cannot run: {why}"
    );
    eprintln!("SKIP: {why}");
}

/// Verifies a delivered webhook with `tests/verify_signature.py` run by python3.
///
/// `scheme` is `"hmac-sha256"` or `"standard-webhooks"`. Returns `Ok(true)`
/// when the library accepts the signature and `Err(message)` when it rejects
/// it. Returns `Ok(false)` (after printing `SKIP: <why>` to stderr) when
/// python3 or a library is missing, unless [`require_external`], in which case
/// it panics. Headers with the same name (case-insensitive) are joined with
/// `", "` as HTTP does. Panics if the checker fails in any other way.
pub fn python_verify(
    scheme: &str,
    secret: &str,
    headers: &[(String, String)],
    body: &[u8],
) -> Result<bool, String> {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("verify_signature.py");

    let mut map = serde_json::Map::new();
    for (name, value) in headers {
        let existing = map
            .iter_mut()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v);
        match existing {
            Some(serde_json::Value::String(joined)) => {
                joined.push_str(", ");
                joined.push_str(value);
            }
            _ => {
                map.insert(name.clone(), serde_json::Value::String(value.clone()));
            }
        }
    }
    let input = serde_json::json!({
        "scheme": scheme,
        "secret": secret,
        "headers": map,
        "body_b64": base64::engine::general_purpose::STANDARD.encode(body),
    })
    .to_string();

    let mut child = match Command::new("python3")
        .arg(&script)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            skip("python3 not found on PATH");
            return Ok(false);
        }
        Err(e) => panic!("cannot run python3 {}: {e}", script.display()),
    };
    // The script reads all of stdin before writing anything, so writing the
    // whole input first cannot deadlock.
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(input.as_bytes())
        .unwrap_or_else(|e| panic!("write to {}: {e}", script.display()));
    let output = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("wait for {}: {e}", script.display()));
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();

    match output.status.code() {
        Some(0) => Ok(true),
        Some(1) => Err(if stderr.is_empty() {
            stdout
        } else {
            format!("{stdout}\n{stderr}")
        }),
        Some(3) => {
            skip(&stdout);
            Ok(false)
        }
        _ => panic!(
            "{} failed ({}): stdout: {stdout}\nstderr: {stderr}",
            script.display(),
            output.status
        ),
    }
}

/// Validates an OpenAPI document with Python's `openapi-spec-validator` (the reference
/// validator, independent of the crate that wrote the document). `Ok(true)` when valid,
/// `Err(reason)` when not, `Ok(false)` after `SKIP: <why>` when python3 or the package is
/// missing, unless [`require_external`], in which case it panics.
pub fn validate_openapi(document: &str) -> Result<bool, String> {
    const SCRIPT: &str = r#"
import json, sys
try:
    from openapi_spec_validator import validate
except ImportError as e:
    print(f"python package openapi-spec-validator is not installed: {e}")
    sys.exit(3)
try:
    validate(json.load(sys.stdin))
except Exception as e:
    print(f"{type(e).__name__}: {e}")
    sys.exit(1)
"#;
    let mut child = match Command::new("python3")
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(e) if e.kind() == ErrorKind::NotFound => {
            skip("python3 not found on PATH");
            return Ok(false);
        }
        Err(e) => panic!("cannot run python3: {e}"),
    };
    // The script reads all of stdin before writing anything, so this cannot deadlock.
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(document.as_bytes())
        .expect("write the document to python3");
    let output = child.wait_with_output().expect("wait for python3");
    let stdout = String::from_utf8_lossy(&output.stdout).trim().to_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).trim().to_owned();
    match output.status.code() {
        Some(0) => Ok(true),
        Some(1) => Err(stdout),
        Some(3) => {
            skip(&stdout);
            Ok(false)
        }
        _ => panic!(
            "openapi-spec-validator failed ({}): stdout: {stdout}\nstderr: {stderr}",
            output.status
        ),
    }
}
