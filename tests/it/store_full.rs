//! `tidings:store.write_failed` for real: the redb file lives on a small tmpfs that the test
//! fills up, so commits fail with the disk's own error (ENOSPC) in a running server. The
//! alert goes out by mail (it cannot be routed to a receiver: routing means storing the
//! event, which is what fails), `GET /api/v1/alerts` and `/readyz` say so, and once space is
//! free again a restart clears it (redb refuses every write after a failed one until the
//! file is opened again). Mounting a size-limited tmpfs needs root (`CAP_SYS_ADMIN`):
//! without it the test skips, or fails under `TIDINGS_REQUIRE_EXTERNAL=1`.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{TestApp, start, temp_dir, test_config, wait_until};
use crate::support::external::skip;
use crate::support::receiver::TestCa;
use crate::support::smtp::{self, TestSmtp};
use tidings::security::crypto::Secret;

const WAIT: Duration = Duration::from_secs(20);

/// A tmpfs of `size` bytes mounted for one test, unmounted (by its path) on drop.
struct SmallFs {
    path: PathBuf,
}

impl SmallFs {
    fn mount(size: u64) -> Option<Self> {
        let path = temp_dir("small-fs");
        let mounted = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700")])
            .arg("tidings-test")
            .arg(&path)
            .output();
        match mounted {
            Ok(out) if out.status.success() => Some(Self { path }),
            Ok(out) => {
                skip(&format!(
                    "cannot mount a size-limited tmpfs (needs root): {}",
                    String::from_utf8_lossy(&out.stderr).trim()
                ));
                None
            }
            Err(e) => {
                skip(&format!("cannot run mount: {e}"));
                None
            }
        }
    }
}

impl Drop for SmallFs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(&self.path).status();
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// Writes zeros to `path` until the filesystem is full (bounded by `max` bytes).
fn fill(path: &Path, max: u64) {
    let mut file = std::fs::File::create(path).unwrap();
    let chunk = vec![0_u8; 64 * 1024];
    let mut written = 0;
    while written < max {
        match file.write(&chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => written += n as u64,
        }
    }
    // Whatever the page cache held is on the tmpfs already; a failed flush is the point.
    let _ = file.flush();
}

fn store_alerts(app: &TestApp) -> Vec<Value> {
    let resp = app.get("/api/v1/alerts");
    assert_eq!(resp.status, 200, "{}", resp.text);
    resp.body["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["kind"] == "tidings:store.write_failed")
        .cloned()
        .collect()
}

#[test]
fn a_full_disk_is_announced_by_mail_and_clears_once_space_is_free() {
    if crate::support::postgres::redb_only("a full disk under the embedded file") {
        return;
    }
    let Some(fs) = SmallFs::mount(8 * 1024 * 1024) else {
        return;
    };
    let ca = TestCa::new();
    let Some(smtp) = TestSmtp::start(&ca) else {
        return;
    };
    let data = fs.path.join("data");
    std::fs::create_dir_all(&data).unwrap();
    let mut config = test_config(&data);
    config.public_url = "https://tidings.clinic.example/".into();
    config.alerts.email.smtp_url =
        format!("smtp://alerts%40clinic.example@127.0.0.1:{}", smtp.port);
    config.alerts.email.password = Some(Secret::new(smtp::PASSWORD.into()));
    config.alerts.email.from = "tidings <tidings@clinic.example>".into();
    config.alerts.email.to = vec!["office@clinic.example".into()];
    config.alerts.email.ca_file = smtp.ca_file(&ca);
    let app = start(config.clone());
    assert!(store_alerts(&app).is_empty());

    let filler = fs.path.join("filler");
    fill(&filler, 16 * 1024 * 1024);
    // Events of 64 KiB each until the database cannot grow: a commit fails with ENOSPC.
    let text = "x".repeat(64 * 1024);
    let mut refused = None;
    for _ in 0..400 {
        let resp = app.ingest(&json!({"type": "member:created", "data": {"note": text}}));
        if resp.status != 202 {
            refused = Some(resp);
            break;
        }
    }
    let refused = refused.expect("a full disk refuses a write within 400 events");
    assert!(refused.status >= 500, "{} {}", refused.status, refused.text);

    let open = wait_until(WAIT, "the store alert", || {
        Some(store_alerts(&app)).filter(|a| !a.is_empty())
    });
    let detail = open[0]["detail"].as_str().unwrap();
    assert!(!detail.is_empty(), "{open:?}");
    let ready = app.raw("GET", "/readyz", None, None, &[]);
    assert_eq!(ready.status, 503, "{}", ready.text);

    let mail = smtp.wait_for_mail(WAIT);
    assert_eq!(
        mail["subject"],
        "[tidings] tidings cannot save to its database"
    );
    let body = mail["body"].as_str().unwrap();
    assert!(body.contains("full disk"), "{body}");
    assert!(body.contains("restart tidings"), "what to do after: {body}");
    assert!(body.contains("https://tidings.clinic.example/"), "{body}");
    assert!(!body.contains(&text[..64]), "no event data in the mail");

    // Space again. redb latches a failed write ("Previous I/O error … re-open the
    // database"), so the running server stays refused until it is restarted, which the mail
    // says; after the restart writes commit and nothing is wrong.
    std::fs::remove_file(&filler).unwrap();
    let resp = app.ingest(&json!({"type": "member:created", "data": {"n": 1}}));
    assert_eq!(resp.status, 500, "still latched: {}", resp.text);
    assert_eq!(store_alerts(&app).len(), 1, "still announced");
    app.stop();
    let app = start(config);
    let resp = app.ingest(&json!({"type": "member:created", "data": {"n": 2}}));
    assert_eq!(resp.status, 202, "{}", resp.text);
    assert!(store_alerts(&app).is_empty());
    let ready = app.raw("GET", "/readyz", None, None, &[]);
    assert_eq!(ready.status, 200, "{}", ready.text);
    app.stop();
    drop(fs);
}
