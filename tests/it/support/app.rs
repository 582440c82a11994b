//! Starts the real appliance for a test: port 0 on 127.0.0.1, a fresh data dir, fast retries,
//! and an admin and an ingest key. Also a small JSON client and deadline-loop waits.

use std::net::TcpListener;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde_json::Value;
use tidings::config::{Config, Mode};
use tidings::domain::access::Role;
use tidings::domain::audit::{Actor, AuditEntry};
use tidings::domain::time::Clock;

pub struct TestApp {
    handle: Option<tidings::AppHandle>,
    pub port: u16,
    pub data_dir: PathBuf,
    pub admin_key: String,
    pub ingest_key: String,
    http: ureq::Agent,
    /// Set by `stop`, which hands the data dir back for a restart: then the app that runs on
    /// it last removes it.
    keep_dir: bool,
}

/// A unique empty folder under the system temp dir, named after the test that made it (the
/// harness names each test's thread after it). A `TestApp` removes its data dir when it is
/// dropped, unless its test is failing (left behind to inspect) or `stop` handed the dir on.
pub fn temp_dir(tag: &str) -> PathBuf {
    let test = std::thread::current()
        .name()
        .unwrap_or("main")
        .replace("::", "-");
    let dir = std::env::temp_dir().join(format!(
        "tidings-it-{tag}-{test}-{}-{:x}",
        std::process::id(),
        rand::random::<u64>()
    ));
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Development mode (loopback receivers allowed), retries 5 × 50 ms doubling, no jitter.
/// With `TIDINGS_TEST_BACKEND=postgres` the store is a PostgreSQL database of the data dir's
/// own (see `support::postgres::database_for`), so the same tests run on either backend.
pub fn test_config(data_dir: &std::path::Path) -> Config {
    let mut config = Config::defaults();
    data_dir.clone_into(&mut config.data_dir);
    if let Some(url) = crate::support::postgres::database_for(data_dir) {
        config.store.url = url;
    }
    config.mode = Mode::Development;
    config.retry.base_delay = Duration::from_millis(50);
    config.retry.max_delay = Duration::from_secs(2);
    config.retry.jitter = false;
    config
}

pub fn spawn_app() -> TestApp {
    spawn_app_with(|_| {})
}

pub fn spawn_app_with(adjust: impl FnOnce(&mut Config)) -> TestApp {
    spawn_app_with_clock(adjust, Clock::system())
}

/// `spawn_app_with` on a clock the test drives (see `start_with_clock`).
pub fn spawn_app_with_clock(adjust: impl FnOnce(&mut Config), clock: Clock) -> TestApp {
    let data_dir = temp_dir("app");
    let mut config = test_config(&data_dir);
    adjust(&mut config);
    start_with_clock(config, clock)
}

/// Starts on an existing config (its data dir may already hold a database).
pub fn start(config: Config) -> TestApp {
    start_with_clock(config, Clock::system())
}

/// `start` with the clock the app reads: dispatcher (attempt times, retries), ingest,
/// routines and retention. A manual one stands still until the test moves it, so a retry
/// waits for the test to advance it past the retry's delay.
pub fn start_with_clock(config: Config, clock: Clock) -> TestApp {
    let data_dir = config.data_dir.clone();
    // A just-stopped app on the same data dir releases the database file a moment after
    // `stop` returns (its last threads wind down), so a restart waits for the lock briefly.
    let handle = wait_until(Duration::from_secs(10), "the database to be free", || {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        match tidings::run_with_clock(config.clone(), listener, None, clock.clone()) {
            Ok(h) => Some(h),
            Err(e) if format!("{e:#}").contains("in use") => None,
            Err(e) => panic!("app did not start: {e:#}"),
        }
    });
    let port = handle.port();
    let workspace = handle.store().default_workspace().clone();
    let (admin, admin_key) = tidings::app::keys::mint(&workspace, "test admin", Role::Admin);
    let (ingest, ingest_key) = tidings::app::keys::mint(&workspace, "test ingest", Role::Ingest);
    for key in [admin, ingest] {
        let audit = AuditEntry::new(
            &workspace,
            Actor::Cli,
            "api_key.create",
            "api_key",
            key.id.as_str(),
        );
        handle.store().insert_api_key(key, audit).unwrap();
    }
    TestApp {
        handle: Some(handle),
        port,
        data_dir,
        admin_key: admin_key.expose().to_owned(),
        ingest_key: ingest_key.expose().to_owned(),
        http: client(),
        keep_dir: false,
    }
}

pub fn client() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .max_redirects(0)
        .proxy(None)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .new_agent()
}

/// A response: status and parsed JSON body (Null when empty or not JSON).
#[derive(Debug, Clone)]
pub struct Resp {
    pub status: u16,
    pub body: Value,
    pub text: String,
}

impl Resp {
    /// The `error.code` of an error response.
    pub fn code(&self) -> &str {
        self.body["error"]["code"].as_str().unwrap_or("")
    }

    pub fn message(&self) -> &str {
        self.body["error"]["message"].as_str().unwrap_or("")
    }

    /// Asserts an error response of this status, in the API's error shape.
    pub fn assert_error(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "{}", self.text);
        assert!(!self.code().is_empty(), "no error.code in {}", self.text);
        assert!(
            !self.message().is_empty(),
            "no error.message in {}",
            self.text
        );
        self
    }
}

impl TestApp {
    /// The running app's store, for checks that have no API (such as pruning by a cutoff).
    pub fn store(&self) -> &tidings::store::Store {
        self.handle.as_ref().expect("app running").store()
    }

    /// The first-run setup token while no admin UI user exists.
    pub fn setup_token(&self) -> Option<String> {
        self.handle.as_ref().expect("app running").setup_token()
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://127.0.0.1:{}{path}", self.port)
    }

    /// Sends a request with an optional key and raw body.
    pub fn raw(
        &self,
        method: &str,
        path: &str,
        key: Option<&str>,
        body: Option<&[u8]>,
        headers: &[(&str, &str)],
    ) -> Resp {
        let mut req = ureq::http::Request::builder()
            .method(method)
            .uri(self.url(path));
        if let Some(k) = key {
            req = req.header("Authorization", format!("Bearer {k}"));
        }
        if body.is_some()
            && !headers
                .iter()
                .any(|(k, _)| k.eq_ignore_ascii_case("content-type"))
        {
            req = req.header("Content-Type", "application/json");
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let resp = match body {
            Some(b) => self.http.run(req.body(b.to_vec()).unwrap()),
            None => self.http.run(req.body(()).unwrap()),
        }
        .expect("request reaches the app");
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        let body = serde_json::from_str(&text).unwrap_or(Value::Null);
        Resp { status, body, text }
    }

    pub fn get(&self, path: &str) -> Resp {
        self.raw("GET", path, Some(&self.admin_key.clone()), None, &[])
    }

    pub fn send(&self, method: &str, path: &str, body: &Value) -> Resp {
        let bytes = serde_json::to_vec(body).unwrap();
        self.raw(
            method,
            path,
            Some(&self.admin_key.clone()),
            Some(&bytes),
            &[],
        )
    }

    pub fn post(&self, path: &str, body: &Value) -> Resp {
        self.send("POST", path, body)
    }

    /// Creates a rule sending `events` to `url`; returns the rule JSON.
    pub fn create_rule(&self, url: &str, events: &[&str]) -> Value {
        self.create_rule_with(serde_json::json!({
            "name": "test rule",
            "trigger": {"type": "event", "events": events},
            "webhook": {"url": url},
        }))
    }

    pub fn create_rule_with(&self, rule: Value) -> Value {
        let resp = self.post("/api/v1/rules", &rule);
        assert_eq!(resp.status, 201, "{}", resp.text);
        resp.body
    }

    /// Posts an event with the ingest key; returns the response.
    pub fn ingest(&self, event: &Value) -> Resp {
        let bytes = serde_json::to_vec(event).unwrap();
        self.raw(
            "POST",
            "/api/v1/events",
            Some(&self.ingest_key.clone()),
            Some(&bytes),
            &[],
        )
    }

    pub fn secret(&self, rule_id: &str) -> String {
        let resp = self.get(&format!("/api/v1/rules/{rule_id}/secret"));
        assert_eq!(resp.status, 200, "{}", resp.text);
        resp.body["secret"].as_str().unwrap().to_owned()
    }

    /// The event's deliveries once every one has left the open states.
    pub fn wait_settled(&self, event_id: &str, timeout: Duration) -> Vec<Value> {
        wait_until(
            timeout,
            &format!("deliveries of {event_id} to settle"),
            || {
                let resp = self.get(&format!("/api/v1/events/{event_id}"));
                let deliveries = resp.body["deliveries"].as_array()?.clone();
                deliveries
                    .iter()
                    .all(|d| !matches!(d["status"].as_str(), Some("pending" | "retrying")))
                    .then_some(deliveries)
            },
        )
    }

    /// One delivery with its attempts.
    pub fn delivery(&self, id: &str) -> Value {
        let resp = self.get(&format!("/api/v1/deliveries/{id}"));
        assert_eq!(resp.status, 200, "{}", resp.text);
        resp.body
    }

    /// Stops the server gracefully and hands back its data dir.
    pub fn stop(mut self) -> PathBuf {
        if let Some(h) = self.handle.take() {
            h.stop();
        }
        self.keep_dir = true;
        self.data_dir.clone()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(h) = self.handle.take() {
            h.stop();
        }
        if !self.keep_dir && !std::thread::panicking() {
            let _ = std::fs::remove_dir_all(&self.data_dir);
        }
    }
}

/// Polls `check` until it returns Some, or panics after `timeout` naming what it waited for.
pub fn wait_until<T>(timeout: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}
