//! A browser stand-in for the admin UI handler tests: real HTTP (ureq) to the real server,
//! cookies kept by hand (as a browser would: name=value, dropped on Max-Age=0), and the
//! hidden form tokens read back from the page the way a form would submit them.

use std::cell::RefCell;
use std::collections::BTreeMap;

use tidings::domain::user::UserRole;

use super::app::{TestApp, client};

pub const PASSWORD: &str = "correct horse battery staple";

#[derive(Debug, Clone)]
pub struct Page {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub text: String,
}

impl Page {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn location(&self) -> &str {
        self.header("location").unwrap_or("")
    }

    /// The value of the first hidden input `name` on the page.
    pub fn hidden(&self, name: &str) -> String {
        let marker = format!("name=\"{name}\" value=\"");
        let start = self
            .text
            .find(&marker)
            .unwrap_or_else(|| panic!("no {name} field on the page:\n{}", self.text))
            + marker.len();
        let end = self.text[start..].find('"').unwrap() + start;
        self.text[start..end].to_owned()
    }

    /// The text of the element with this id (up to its first tag end), HTML entities as is.
    pub fn by_id(&self, id: &str) -> Option<String> {
        let marker = format!("id=\"{id}\"");
        let at = self.text.find(&marker)?;
        let open_end = self.text[at..].find('>')? + at + 1;
        let close = self.text[open_end..].find('<')? + open_end;
        Some(self.text[open_end..close].to_owned())
    }

    pub fn assert_status(&self, status: u16) -> &Self {
        assert_eq!(self.status, status, "{}", self.text);
        self
    }
}

pub struct Browser {
    base: String,
    http: ureq::Agent,
    cookies: RefCell<BTreeMap<String, String>>,
    /// The CSRF token of the last page that carried one.
    csrf: RefCell<String>,
}

impl Browser {
    pub fn new(app: &TestApp) -> Self {
        Self::at(&app.url(""))
    }

    /// A browser for the server at `base` (`http://127.0.0.1:PORT`), e.g. a node process.
    pub fn at(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            http: client(),
            cookies: RefCell::default(),
            csrf: RefCell::default(),
        }
    }

    pub fn cookie(&self, name: &str) -> Option<String> {
        self.cookies.borrow().get(name).cloned()
    }

    /// Every cookie this browser holds.
    pub fn cookies(&self) -> Vec<(String, String)> {
        self.cookies
            .borrow()
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }

    pub fn set_cookie(&self, name: &str, value: &str) {
        self.cookies
            .borrow_mut()
            .insert(name.to_owned(), value.to_owned());
    }

    pub fn csrf(&self) -> String {
        self.csrf.borrow().clone()
    }

    fn run(&self, req: ureq::http::request::Builder, body: Option<String>) -> Page {
        let cookie = self
            .cookies
            .borrow()
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect::<Vec<_>>()
            .join("; ");
        let req = if cookie.is_empty() {
            req
        } else {
            req.header("Cookie", cookie)
        };
        let resp = match body {
            Some(b) => self.http.run(
                req.header("Content-Type", "application/x-www-form-urlencoded")
                    .body(b)
                    .unwrap(),
            ),
            None => self.http.run(req.body(()).unwrap()),
        }
        .expect("request reaches the app");
        let status = resp.status().as_u16();
        let headers: Vec<(String, String)> = resp
            .headers()
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_str().unwrap_or("").to_owned()))
            .collect();
        for (k, v) in &headers {
            if k.eq_ignore_ascii_case("set-cookie") {
                let (pair, attrs) = v.split_once(';').unwrap_or((v, ""));
                let (name, value) = pair.split_once('=').unwrap();
                if attrs.contains("Max-Age=0") {
                    self.cookies.borrow_mut().remove(name);
                } else {
                    self.set_cookie(name, value);
                }
            }
        }
        let text = resp.into_body().read_to_string().unwrap_or_default();
        let page = Page {
            status,
            headers,
            text,
        };
        if page.text.contains("name=\"csrf\" value=\"") {
            *self.csrf.borrow_mut() = page.hidden("csrf");
        }
        page
    }

    pub fn get(&self, path: &str) -> Page {
        let req = ureq::http::Request::builder()
            .method("GET")
            .uri(format!("{}{path}", self.base));
        self.run(req, None)
    }

    /// Posts exactly these fields (no token added).
    pub fn post_raw(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let body = url::form_urlencoded::Serializer::new(String::new())
            .extend_pairs(fields)
            .finish();
        let req = ureq::http::Request::builder()
            .method("POST")
            .uri(format!("{}{path}", self.base));
        self.run(req, Some(body))
    }

    /// Posts a form with this session's CSRF token, as the page's form would.
    pub fn post(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        let csrf = self.csrf();
        assert!(!csrf.is_empty(), "no CSRF token seen yet: GET a page first");
        let mut all = vec![("csrf", csrf.as_str())];
        all.extend_from_slice(fields);
        self.post_raw(path, &all)
    }

    /// Signs in; returns the answer to the sign-in post.
    pub fn login(&self, username: &str, password: &str) -> Page {
        let form = self.get("/login");
        form.assert_status(200);
        let token = form.hidden("form_token");
        let page = self.post_raw(
            "/login",
            &[
                ("form_token", &token),
                ("next", "/"),
                ("username", username),
                ("password", password),
            ],
        );
        if page.status == 303 {
            // Land on the dashboard, which carries the session's CSRF token.
            self.get("/").assert_status(200);
        }
        page
    }
}

/// Creates the first admin through the setup link; returns a browser signed in as them.
pub fn setup_admin(app: &TestApp, username: &str) -> Browser {
    let b = Browser::new(app);
    let token = app.setup_token().expect("setup token while no user exists");
    let form = b.get(&format!("/setup?token={token}"));
    form.assert_status(200);
    let ft = form.hidden("form_token");
    let done = b.post_raw(
        "/setup",
        &[
            ("form_token", &ft),
            ("token", &token),
            ("username", username),
            ("password", PASSWORD),
            ("confirm", PASSWORD),
        ],
    );
    assert_eq!(done.status, 303, "{}", done.text);
    b.get("/").assert_status(200);
    b
}

/// Adds a user directly (as `tidings user add` does) and signs them in.
pub fn user(app: &TestApp, username: &str, role: UserRole) -> Browser {
    tidings::app::users::new_user(
        app.store(),
        app.store().default_workspace(),
        username,
        role,
        PASSWORD,
        None,
        false,
    )
    .unwrap();
    let b = Browser::new(app);
    b.login(username, PASSWORD).assert_status(303);
    b
}
