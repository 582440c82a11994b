//! A small W3C `WebDriver` client over ureq, enough to drive Debian's headless Chromium through
//! chromedriver: start both, navigate, find, type, click, read, screenshot. chromedriver is
//! started on a free 127.0.0.1 port and killed by its PID when the `Driver` is dropped.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use serde_json::{Value, json};

use super::app::{client, temp_dir};
use super::external::require_external;

const ELEMENT: &str = "element-6066-11e4-a52e-4f735466cecf";
pub const CHROMIUM: &str = "/usr/bin/chromium";

fn on_path(name: &str) -> Option<PathBuf> {
    std::env::var_os("PATH")?
        .to_str()?
        .split(':')
        .map(|d| Path::new(d).join(name))
        .find(|p| p.is_file())
}

/// The chromedriver to use, or None (after saying why) when the test should skip.
pub fn available() -> Option<PathBuf> {
    let driver = on_path("chromedriver");
    let browser = Path::new(CHROMIUM).is_file();
    if let (Some(d), true) = (driver, browser) {
        return Some(d);
    }
    let why = "chromium and chromedriver are needed for the browser tests (apt-get install chromium chromium-driver)";
    assert!(!require_external(), "TIDINGS_REQUIRE_EXTERNAL=1 but {why}");
    eprintln!("SKIP: {why}");
    None
}

pub struct Driver {
    child: Child,
    base: String,
    session: String,
    http: ureq::Agent,
    profile: PathBuf,
}

impl Driver {
    pub fn start(chromedriver: &Path) -> Self {
        Self::start_with_env(chromedriver, &[])
    }

    /// Chromium with these environment variables (it inherits chromedriver's), e.g. `TZ` for
    /// the viewer's time zone.
    pub fn start_with_env(chromedriver: &Path, env: &[(&str, &str)]) -> Self {
        let port = super::process::free_port();
        let child = Command::new(chromedriver)
            .envs(env.iter().copied())
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("start chromedriver");
        let base = format!("http://127.0.0.1:{port}");
        let http = client();
        let profile = temp_dir("chromium-profile");
        let mut driver = Self {
            child,
            base,
            session: String::new(),
            http,
            profile,
        };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            let ready = driver
                .call("GET", "/status", None)
                .is_ok_and(|v| v["ready"] == true);
            if ready {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "chromedriver did not become ready"
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        let caps = json!({"capabilities": {"alwaysMatch": {
            "browserName": "chrome",
            // Confirm dialogs (rotate, delete) are accepted, as a user clicking OK would.
            "unhandledPromptBehavior": "accept",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": [
                    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--disable-quic", "--window-size=1280,900",
                    format!("--user-data-dir={}", driver.profile.display()),
                ],
            },
        }}});
        let created = driver
            .call("POST", "/session", Some(&caps))
            .expect("chromedriver starts a Chromium session");
        created["sessionId"]
            .as_str()
            .expect("a session id")
            .clone_into(&mut driver.session);
        driver
    }

    fn call(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
        let req = ureq::http::Request::builder()
            .method(method)
            .uri(format!("{}{path}", self.base))
            .header("Content-Type", "application/json");
        let resp = match body {
            Some(b) => self.http.run(req.body(b.to_string()).unwrap()),
            None if method == "POST" => self.http.run(req.body("{}".to_owned()).unwrap()),
            None => self.http.run(req.body(()).unwrap()),
        }
        .map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let text = resp.into_body().read_to_string().unwrap_or_default();
        let v: Value = serde_json::from_str(&text).unwrap_or(Value::Null);
        if status == 200 {
            Ok(v["value"].clone())
        } else {
            Err(format!("{method} {path}: {status} {text}"))
        }
    }

    fn session_call(&self, method: &str, path: &str, body: Option<&Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        self.call(method, &path, body)
            .unwrap_or_else(|e| panic!("webdriver: {e}"))
    }

    pub fn goto(&self, url: &str) {
        self.session_call("POST", "/url", Some(&json!({ "url": url })));
    }

    /// Reloads the page, as the browser's reload button does.
    pub fn refresh(&self) {
        self.session_call("POST", "/refresh", None);
    }

    /// Scrolls the page (and any scrolling box) until the element is in view, for a screenshot.
    pub fn scroll_to(&self, css: &str) {
        let el = self.find(css);
        self.session_call(
            "POST",
            "/execute/sync",
            Some(&json!({
                "script": "arguments[0].scrollIntoView({block: 'center', inline: 'center'});",
                "args": [{ ELEMENT: el }],
            })),
        );
    }

    /// Scrolls the page down to the element, leaving sideways scrolling boxes where they are
    /// (a phone screenshot of a table's first columns).
    pub fn scroll_down_to(&self, css: &str) {
        let el = self.find(css);
        self.session_call(
            "POST",
            "/execute/sync",
            Some(&json!({
                "script": "arguments[0].scrollIntoView({block: 'center', inline: 'nearest'});",
                "args": [{ ELEMENT: el }],
            })),
        );
    }

    /// Whether the element is rendered visibly (not `hidden`, not `display: none`).
    pub fn displayed(&self, css: &str) -> bool {
        self.read_element(css, "displayed")
            .as_bool()
            .unwrap_or(false)
    }

    /// `GET /element/{id}/{what}` of the element matching `css`, found afresh when a page
    /// that rewrites itself (the delivery log's refresh) replaced it between finding and
    /// reading ("stale element reference"): what is read is always the current element.
    fn read_element(&self, css: &str, what: &str) -> Value {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let el = self.find(css);
            let path = format!("/session/{}/element/{el}/{what}", self.session);
            match self.call("GET", &path, None) {
                Ok(v) => return v,
                Err(e) if e.contains("stale element") && Instant::now() < deadline => {}
                Err(e) => panic!("webdriver: {e}"),
            }
        }
    }

    pub fn current_url(&self) -> String {
        self.session_call("GET", "/url", None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    pub fn source(&self) -> String {
        self.session_call("GET", "/source", None)
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The element matching `css`, waiting up to 10 s for it to appear.
    pub fn find(&self, css: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let path = format!("/session/{}/element", self.session);
            if let Ok(v) = self.call(
                "POST",
                &path,
                Some(&json!({"using": "css selector", "value": css})),
            ) && let Some(id) = v[ELEMENT].as_str()
            {
                return id.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "no element {css:?} on {}:\n{}",
                self.current_url(),
                self.source()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    pub fn exists(&self, css: &str) -> bool {
        let path = format!("/session/{}/element", self.session);
        self.call(
            "POST",
            &path,
            Some(&json!({"using": "css selector", "value": css})),
        )
        .is_ok()
    }

    pub fn type_into(&self, css: &str, text: &str) {
        let el = self.find(css);
        self.session_call("POST", &format!("/element/{el}/clear"), None);
        self.session_call(
            "POST",
            &format!("/element/{el}/value"),
            Some(&json!({ "text": text })),
        );
    }

    pub fn click(&self, css: &str) {
        let el = self.find(css);
        self.session_call("POST", &format!("/element/{el}/click"), None);
    }

    /// A real mouse click at the middle of the element, landing on whatever is on top there
    /// (element click refuses when another element covers it, as a row's link does).
    pub fn click_point(&self, css: &str) {
        let el = self.find(css);
        self.session_call(
            "POST",
            "/actions",
            Some(&json!({"actions": [{
                "type": "pointer", "id": "mouse", "parameters": {"pointerType": "mouse"},
                "actions": [
                    {"type": "pointerMove", "origin": { ELEMENT: el }, "x": 0, "y": 0},
                    {"type": "pointerDown", "button": 0},
                    {"type": "pointerUp", "button": 0},
                ],
            }]})),
        );
    }

    /// An attribute of the element matching `css` (None when it has none).
    pub fn attribute(&self, css: &str, name: &str) -> Option<String> {
        self.read_element(css, &format!("attribute/{name}"))
            .as_str()
            .map(str::to_owned)
    }

    pub fn text(&self, css: &str) -> String {
        self.read_element(css, "text")
            .as_str()
            .unwrap_or("")
            .to_owned()
    }

    /// The page's visible text, or None while a navigation replaces the page under us.
    fn body_text(&self) -> Option<String> {
        let path = format!("/session/{}/element", self.session);
        let found = self
            .call(
                "POST",
                &path,
                Some(&json!({"using": "css selector", "value": "body"})),
            )
            .ok()?;
        let el = found[ELEMENT].as_str()?;
        let text = self
            .call(
                "GET",
                &format!("/session/{}/element/{el}/text", self.session),
                None,
            )
            .ok()?;
        text.as_str().map(str::to_owned)
    }

    /// Waits until the page's text contains `needle` (after a click that navigates).
    pub fn wait_for_text(&self, needle: &str) {
        let deadline = Instant::now() + Duration::from_secs(10);
        while !self.body_text().is_some_and(|t| t.contains(needle)) {
            assert!(
                Instant::now() < deadline,
                "page {} never showed {needle:?}:\n{}",
                self.current_url(),
                self.body_text().unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Runs an async script (its last argument is the callback) and returns what it passes.
    pub fn execute_async(&self, script: &str) -> Value {
        self.session_call(
            "POST",
            "/execute/async",
            Some(&json!({ "script": script, "args": [] })),
        )
    }

    /// Lets the page read the clipboard, so a test can check what a copy button copied.
    pub fn allow_clipboard(&self) {
        for name in ["clipboard-read", "clipboard-write"] {
            self.session_call(
                "POST",
                "/permissions",
                Some(&json!({"descriptor": {"name": name}, "state": "granted"})),
            );
        }
    }

    pub fn set_window(&self, width: u32, height: u32) {
        self.session_call(
            "POST",
            "/window/rect",
            Some(&json!({"width": width, "height": height})),
        );
    }

    /// How many CSS pixels the page is wider than the window (0 when nothing makes a person
    /// scroll sideways; a wide table scrolling inside its own box does not count).
    pub fn sideways_overflow(&self) -> i64 {
        let script = "const e = document.documentElement; \
                      arguments[arguments.length - 1](e.scrollWidth - e.clientWidth);";
        self.execute_async(script).as_i64().unwrap_or(i64::MAX)
    }

    /// Saves a PNG of the viewport to `target/screenshots/<name>.png`.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.session_call("GET", "/screenshot", None);
        let png = base64::engine::general_purpose::STANDARD
            .decode(b64.as_str().unwrap_or(""))
            .expect("a base64 screenshot");
        assert!(png.starts_with(b"\x89PNG"), "the screenshot is a PNG");
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).unwrap();
        path
    }
}

impl Drop for Driver {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            // Ends Chromium (chromedriver's child) before chromedriver itself.
            let _ = self.call("DELETE", &format!("/session/{}", self.session), None);
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.profile);
    }
}
