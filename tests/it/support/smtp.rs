//! A real SMTP server for a test: `tests/smtp_server.py` (Python's aiosmtpd) on 127.0.0.1,
//! offering STARTTLS (or, `start_implicit_tls`, TLS from the start) with a certificate from a
//! `TestCa`, and requiring AUTH. Each mail it receives comes back as one JSON value
//! (envelope, TLS and AUTH used, decoded headers and body). Skips (None) when python3 or aiosmtpd is missing, unless external tools are required.

use std::io::{BufRead, BufReader};
use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

use super::app::temp_dir;
use super::external::skip;
use super::receiver::TestCa;

pub const USER: &str = "alerts@clinic.example";
pub const PASSWORD: &str = "mail-pass-123";

pub struct TestSmtp {
    child: Child,
    lines: Receiver<Value>,
    pub port: u16,
    dir: PathBuf,
}

impl TestSmtp {
    /// A server offering STARTTLS (and refusing mail before it).
    pub fn start(ca: &TestCa) -> Option<Self> {
        Self::start_in(ca, false)
    }

    /// A server speaking TLS from the first byte (`smtps://`), with no STARTTLS.
    pub fn start_implicit_tls(ca: &TestCa) -> Option<Self> {
        Self::start_in(ca, true)
    }

    fn start_in(ca: &TestCa, implicit: bool) -> Option<Self> {
        let have = Command::new("python3")
            .args(["-c", "import aiosmtpd.controller"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        if !have {
            skip("python3 with aiosmtpd is not installed (pip install aiosmtpd)");
            return None;
        }
        let dir = temp_dir("smtp");
        let (cert, key) = ca.server_pems();
        std::fs::write(dir.join("cert.pem"), cert).unwrap();
        std::fs::write(dir.join("key.pem"), key).unwrap();
        // A free port, handed to the server (aiosmtpd's controller cannot report port 0's).
        let port = TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let script = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
            .join("tests")
            .join("smtp_server.py");
        let mut child = Command::new("python3")
            .arg(script)
            .arg(port.to_string())
            .arg(dir.join("cert.pem"))
            .arg(dir.join("key.pem"))
            .args([USER, PASSWORD])
            .args(implicit.then_some("implicit"))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start the SMTP server");
        let stdout = child.stdout.take().unwrap();
        let (tx, lines) = channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if let Ok(v) = serde_json::from_str::<Value>(&line)
                    && tx.send(v).is_err()
                {
                    return;
                }
            }
        });
        let smtp = Self {
            child,
            lines,
            port,
            dir,
        };
        let ready = smtp.next(Duration::from_secs(15));
        assert!(
            ready.is_some_and(|v| v["ready"] == true),
            "the SMTP server did not start"
        );
        Some(smtp)
    }

    fn next(&self, timeout: Duration) -> Option<Value> {
        self.lines.recv_timeout(timeout).ok()
    }

    /// The next mail, within `timeout`.
    pub fn wait_for_mail(&self, timeout: Duration) -> Value {
        self.next(timeout)
            .unwrap_or_else(|| panic!("no mail arrived within {timeout:?}"))
    }

    /// Asserts that no mail arrives within `d`.
    pub fn expect_no_mail(&self, d: Duration) {
        let started = Instant::now();
        if let Some(mail) = self.next(d) {
            panic!("an unexpected mail after {:?}: {mail}", started.elapsed());
        }
    }

    /// The CA file tidings should trust for this server.
    pub fn ca_file(&self, ca: &TestCa) -> String {
        let path = self.dir.join("ca.pem");
        ca.write_ca_pem(&path);
        path.to_string_lossy().into_owned()
    }
}

impl Drop for TestSmtp {
    fn drop(&mut self) {
        // Closing stdin stops it; the kill (of this child, by its handle) makes sure.
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
