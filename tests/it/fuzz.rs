//! The API fuzzed against its own document by schemathesis (`tests/fuzz_api.sh`): a real
//! `tidings serve --dev` with an admin key, in a network namespace that has only loopback,
//! for a bounded time. Any 5xx, or any answer whose status, headers or body the document
//! does not describe, fails. Skips when schemathesis (or `unshare`/`ip`) is missing, unless
//! `TIDINGS_REQUIRE_EXTERNAL=1`.

use std::fs::File;
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::external::require_external;
use crate::support::process::{BIN, Scratch};

/// What schemathesis may spend on generating and sending requests.
const FUZZ_SECONDS: u32 = 90;
/// The whole run, start-up included; past it the run is killed and the test fails.
const WALL_CLOCK: Duration = Duration::from_secs(170);

fn skip(why: &str) {
    assert!(
        !require_external(),
        "TIDINGS_REQUIRE_EXTERNAL=1 but the API fuzzing cannot run: {why}"
    );
    eprintln!("SKIP: {why}");
}

fn runs(program: &str, args: &[&str]) -> bool {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn schemathesis_finds_no_server_error_and_no_answer_the_document_does_not_describe() {
    if !runs("schemathesis", &["--version"]) {
        return skip("schemathesis is not installed (python3 -m pip install schemathesis)");
    }
    if !runs("ip", &["-V"]) || !runs("unshare", &["--net", "true"]) {
        return skip("cannot make a loopback-only network namespace (unshare --net, ip)");
    }
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/fuzz_api.sh");
    let scratch = Scratch::new("fuzz");
    let log_path = scratch.path("fuzz.log");
    let log = File::create(&log_path).unwrap();
    let mut child = Command::new("unshare")
        .arg("--net")
        .arg("bash")
        .arg(&script)
        .arg(BIN)
        .arg(scratch.path("work"))
        .arg(FUZZ_SECONDS.to_string())
        .stdin(Stdio::null())
        .stdout(log.try_clone().unwrap())
        .stderr(log)
        // Its own process group, so a run past the limit is ended whole: the script, the
        // server and schemathesis.
        .process_group(0)
        .spawn()
        .expect("spawn unshare");
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break Some(status);
        }
        if started.elapsed() > WALL_CLOCK {
            let _ = Command::new("kill")
                .args(["-KILL", "--", &format!("-{}", child.id())])
                .status();
            let _ = child.wait();
            break None;
        }
        std::thread::sleep(Duration::from_millis(200));
    };
    let output = std::fs::read_to_string(&log_path).unwrap_or_default();
    match status {
        Some(s) if s.success() => eprintln!(
            "{}",
            output
                .lines()
                .filter(|l| l.contains("finished in") || l.contains("generated"))
                .collect::<Vec<_>>()
                .join("\n")
        ),
        Some(s) => panic!("schemathesis found problems ({s}):\n{output}"),
        None => panic!("the fuzzing ran past {WALL_CLOCK:?} and was stopped:\n{output}"),
    }
}
