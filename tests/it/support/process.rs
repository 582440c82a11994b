//! `tidings` as a child process, as an operator runs it: scratch folders, one-shot commands
//! (`key create`, `check-config`) and `serve` with its log, killed with SIGKILL on drop (the
//! `kill -9` of the durability tests).

use std::fs::{File, OpenOptions};
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::Duration;

use serde_json::Value;

use crate::support::app::{Resp, client, temp_dir, wait_until};

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_tidings");

/// How long a one-shot command (`key create`, `check-config`) may take.
const COMMAND_TIMEOUT: Duration = Duration::from_secs(30);
/// How long `serve` may take to answer `/healthz`, including redb crash recovery.
const START_TIMEOUT: Duration = Duration::from_secs(30);

// ---------------------------------------------------------------------------
// Harness: scratch folders, one-shot commands, a `serve` child process
// ---------------------------------------------------------------------------

/// A scratch folder, removed on drop unless the test is failing (kept to inspect).
pub(crate) struct Scratch(PathBuf);

impl Scratch {
    pub(crate) fn new(tag: &str) -> Self {
        Self(temp_dir(tag))
    }

    pub(crate) fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }

    /// Writes `text` to `name` inside the folder and returns its path.
    pub(crate) fn write(&self, name: &str, text: &str) -> PathBuf {
        let path = self.path(name);
        std::fs::write(&path, text).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.0);
        }
    }
}

/// A `tidings` command that inherits no `TIDINGS_*` setting (nor `NO_COLOR`) from the test
/// environment, so every test states exactly what the binary sees.
pub(crate) fn tidings() -> Command {
    let mut cmd = Command::new(BIN);
    for (k, _) in std::env::vars_os() {
        if k.to_string_lossy().starts_with("TIDINGS_") {
            cmd.env_remove(k);
        }
    }
    cmd.env_remove("NO_COLOR").stdin(Stdio::null());
    cmd
}

/// A `tidings` command run through `sh -c` so `prelude` (e.g. `umask 000`) sets up the process
/// first; the shell then `exec`s into tidings. The environment is cleaned as by [`tidings`].
pub(crate) fn tidings_after(prelude: &str) -> Command {
    let clean = tidings();
    let mut shell = Command::new("sh");
    shell
        .arg("-c")
        .arg(format!(r#"{prelude}; exec "$0" "$@""#))
        .arg(clean.get_program())
        .stdin(Stdio::null());
    for (k, v) in clean.get_envs() {
        match v {
            Some(v) => shell.env(k, v),
            None => shell.env_remove(k),
        };
    }
    shell
}

/// What a finished one-shot command did.
#[derive(Debug)]
pub(crate) struct Ran {
    pub status: ExitStatus,
    pub stdout: String,
    pub stderr: String,
}

impl Ran {
    pub(crate) fn success(&self) -> bool {
        self.status.success()
    }
}

/// Runs `cmd` to completion (killed and failed after [`COMMAND_TIMEOUT`]).
pub(crate) fn run(mut cmd: Command) -> Ran {
    let out = Scratch::new("cmd-out");
    let (stdout_path, stderr_path) = (out.path("stdout"), out.path("stderr"));
    cmd.stdout(File::create(&stdout_path).unwrap())
        .stderr(File::create(&stderr_path).unwrap());
    let mut child = ChildGuard(cmd.spawn().expect("spawn tidings"));
    let status = wait_until(COMMAND_TIMEOUT, "the tidings command to exit", || {
        child.0.try_wait().expect("try_wait")
    });
    Ran {
        status,
        stdout: std::fs::read_to_string(stdout_path).unwrap(),
        stderr: std::fs::read_to_string(stderr_path).unwrap(),
    }
}

/// Kills (SIGKILL) and reaps a child that is still running when dropped.
struct ChildGuard(Child);

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if matches!(self.0.try_wait(), Ok(None)) {
            let _ = self.0.kill();
        }
        let _ = self.0.wait();
    }
}

/// A free port on 127.0.0.1 (bound, read, released; another process could take it first,
/// which only makes a test fail loudly, never pass wrongly).
pub(crate) fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// `tidings key create --data-dir DIR --role ROLE --name NAME`; returns the printed key.
pub(crate) fn create_key(data_dir: &Path, role: &str) -> String {
    let mut cmd = tidings();
    cmd.arg("key")
        .arg("create")
        .arg("--data-dir")
        .arg(data_dir)
        .args(["--role", role, "--name", &format!("cli {role}")]);
    let ran = run(cmd);
    assert!(ran.success(), "key create failed: {ran:?}");
    ran.stdout.trim().to_owned()
}

/// A config file body with fast retries (and `max_attempts` attempts in all).
pub(crate) fn fast_retry_config(max_attempts: u32) -> String {
    format!(
        "[retry]\nbase_delay = \"50ms\"\nmax_delay = \"1s\"\njitter = false\nmax_attempts = {max_attempts}\n"
    )
}

/// Sends one request; `key` as a bearer token, `body` as JSON.
pub(crate) fn request(method: &str, url: &str, key: Option<&str>, body: Option<&Value>) -> Resp {
    request_with_headers(method, url, key, body, &[])
}

/// [`request`] with extra headers.
pub(crate) fn request_with_headers(
    method: &str,
    url: &str,
    key: Option<&str>,
    body: Option<&Value>,
    headers: &[(&str, &str)],
) -> Resp {
    let mut req = ureq::http::Request::builder().method(method).uri(url);
    if let Some(k) = key {
        req = req.header("Authorization", format!("Bearer {k}"));
    }
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let agent = client();
    let resp = match body {
        Some(b) => agent.run(
            req.header("Content-Type", "application/json")
                .body(serde_json::to_vec(b).unwrap())
                .unwrap(),
        ),
        None => agent.run(req.body(()).unwrap()),
    }
    .unwrap_or_else(|e| panic!("{method} {url} did not get an answer: {e}"));
    let status = resp.status().as_u16();
    let text = resp.into_body().read_to_string().unwrap_or_default();
    let body = serde_json::from_str(&text).unwrap_or(Value::Null);
    Resp { status, body, text }
}

/// Whether anything accepts a TCP connection on 127.0.0.1:`port`.
pub(crate) fn answers(port: u16) -> bool {
    std::net::TcpStream::connect_timeout(&([127, 0, 0, 1], port).into(), Duration::from_secs(2))
        .is_ok()
}

/// `tidings serve` as a child process; its stdout and stderr go to one log file. Dropping it
/// kills (SIGKILL) and reaps the process.
pub(crate) struct Served {
    child: Child,
    pub port: u16,
    log: PathBuf,
}

impl Served {
    /// Spawns `serve --data-dir DIR --listen 127.0.0.1:PORT` plus `args`, with `env` added;
    /// does not wait for it to answer.
    pub(crate) fn spawn(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let port = free_port();
        let mut cmd = tidings();
        cmd.arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args);
        Self::spawn_command(cmd, port, data_dir, env)
    }

    /// Spawns exactly `serve ARGS` (no `--listen`/`--data-dir` added); `port` is where it is
    /// expected to answer.
    pub(crate) fn spawn_raw(
        args: &[&str],
        port: u16,
        data_dir: &Path,
        env: &[(&str, &str)],
    ) -> Self {
        let mut cmd = tidings();
        cmd.arg("serve").args(args);
        Self::spawn_command(cmd, port, data_dir, env)
    }

    /// Like [`Served::spawn`], but through `sh -c` so `prelude` (e.g. `ulimit -f 2048`) sets
    /// up the process environment first; the shell then `exec`s into tidings, so the child
    /// is tidings itself.
    pub(crate) fn spawn_after(
        prelude: &str,
        data_dir: &Path,
        args: &[&str],
        env: &[(&str, &str)],
    ) -> Self {
        let port = free_port();
        let mut shell = tidings_after(prelude);
        shell
            .arg("serve")
            .arg("--data-dir")
            .arg(data_dir)
            .args(["--listen", &format!("127.0.0.1:{port}")])
            .args(args);
        Self::spawn_command(shell, port, data_dir, env)
    }

    fn spawn_command(mut cmd: Command, port: u16, data_dir: &Path, env: &[(&str, &str)]) -> Self {
        std::fs::create_dir_all(data_dir).unwrap();
        let log = data_dir.with_file_name(format!(
            "{}-serve-{port}.log",
            data_dir.file_name().unwrap().to_string_lossy()
        ));
        let out = OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .unwrap();
        cmd.envs(env.iter().copied())
            .stdout(out.try_clone().unwrap())
            .stderr(out);
        Self {
            child: cmd.spawn().expect("spawn tidings serve"),
            port,
            log,
        }
    }

    /// Spawns like [`Served::spawn`] and waits until `/healthz` answers 200.
    pub(crate) fn start(data_dir: &Path, args: &[&str]) -> Self {
        Self::start_with_env(data_dir, args, &[])
    }

    pub(crate) fn start_with_env(data_dir: &Path, args: &[&str], env: &[(&str, &str)]) -> Self {
        let mut served = Self::spawn(data_dir, args, env);
        served.wait_healthy();
        served
    }

    /// Waits for `/healthz` → 200; panics with the log if the process exits first.
    pub(crate) fn wait_healthy(&mut self) {
        let agent: ureq::Agent = ureq::Agent::config_builder()
            .http_status_as_error(false)
            .proxy(None)
            .timeout_global(Some(Duration::from_secs(2)))
            .build()
            .new_agent();
        let url = self.url("/healthz");
        wait_until(START_TIMEOUT, "tidings serve to answer /healthz", || {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                panic!(
                    "tidings serve exited ({status}) before answering:\n{}",
                    self.log()
                );
            }
            agent
                .get(&url)
                .call()
                .ok()
                .filter(|r| r.status() == 200)
                .map(|_| ())
        });
    }

    /// Waits for the process to exit on its own; panics (with the log) if it keeps running.
    pub(crate) fn wait_exit(&mut self) -> ExitStatus {
        wait_until(START_TIMEOUT, "tidings serve to exit", || {
            self.child.try_wait().expect("try_wait")
        })
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Everything the process wrote to stdout and stderr so far.
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// `kill -9` (std's `Child::kill` sends SIGKILL) and reap, so the data dir is free again.
    pub(crate) fn kill9(mut self) {
        self.kill_and_reap();
    }

    fn kill_and_reap(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}
