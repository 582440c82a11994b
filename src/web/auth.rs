//! Who is signed in: first-run setup, sign-in with rate limiting, sessions (stored in redb,
//! `HttpOnly` + `SameSite=Strict` cookies, Secure under TLS), CSRF tokens on every form, and the
//! role extractors (`AnyUser`, `EditorUser`, `AdminUser`) that every page handler states.

use std::collections::HashMap;
use std::sync::Mutex;

use actix_web::dev::Payload;
use actix_web::http::StatusCode;
use actix_web::http::header;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use askama::Template;
use subtle::ConstantTimeEq;

use super::{Fields, Layout, WebError, render};
use crate::app::users::SignIn;
use crate::app::{AppState, users};
use crate::domain::access::Workspace;
use crate::domain::audit::Actor;
use crate::domain::ids::WorkspaceId;
use crate::domain::user::{Session, User, UserRole, check_password, normalize_username};
use crate::security::crypto::Secret;
use crate::store::{Store, StoreError};

pub use crate::app::users::SESSION_MS;

const SESSION_COOKIE: &str = "tidings_session";
/// With TLS the `__Host-` prefix makes browsers insist on Secure, Path=/ and no Domain.
const SESSION_COOKIE_TLS: &str = "__Host-tidings_session";
/// Double-submit token for the forms shown before a session exists (sign-in, setup).
const FORM_COOKIE: &str = "tidings_form";
/// The workspace the header's switcher chose. Not a secret: every request checks it against
/// the user's memberships, and one they lack is ignored.
const WORKSPACE_COOKIE: &str = "tidings_workspace";

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/login")
            .route(web::get().to(login_page))
            .route(web::post().to(login)),
    )
    .service(web::resource("/logout").route(web::post().to(logout)))
    .service(web::resource("/workspace").route(web::post().to(switch_workspace)))
    .service(
        web::resource("/setup")
            .route(web::get().to(setup_page))
            .route(web::post().to(setup)),
    );
}

/// UI state that is not the store's: the first-run token and the values a page shows once
/// after a redirect. (The sign-in limit is the store's, so several nodes count together.)
pub struct UiState {
    setup_token: Mutex<Option<String>>,
    pub once: ShowOnce,
}

impl UiState {
    /// When no user exists yet, makes the one-time setup token and logs the URL to open.
    pub fn start(store: &Store, base_url: &str) -> Result<Self, StoreError> {
        let token = if store.user_count()? == 0 {
            let token = random_token();
            tracing::warn!(
                url = %format!("{base_url}/setup?token={token}"),
                "no admin UI user exists yet: open this one-time setup link to create the first admin (or run `tidings user add` with the server stopped)"
            );
            Some(token)
        } else {
            None
        };
        Ok(Self {
            setup_token: Mutex::new(token),
            once: ShowOnce::default(),
        })
    }

    /// The live setup token, if setup has not been done (tests open the link with it).
    pub fn setup_token(&self) -> Option<String> {
        self.setup_token.lock().ok()?.clone()
    }

    fn setup_token_matches(&self, given: &str) -> bool {
        self.setup_token().is_some_and(|t| {
            t.len() == given.len() && bool::from(t.as_bytes().ct_eq(given.as_bytes()))
        })
    }
}

/// How long a value waits to be shown after its action: long enough for the redirect, short
/// enough that a secret never lingers in memory.
pub const SHOW_ONCE_MS: i64 = 2 * 60 * 1000;
/// Most values waiting at once (one per session); bounds memory.
const SHOW_ONCE_ENTRIES: usize = 10_000;

/// A value to show once on the page a form post redirects to (post/redirect/get): a rotated
/// or revealed signing secret, a new API key. Kept here, never in a URL; one per session,
/// taken by the first GET of the page it is for, gone after `SHOW_ONCE_MS`. A reload of
/// that page finds nothing, so it neither shows the secret again nor repeats the action.
#[derive(Default)]
pub struct ShowOnce {
    /// Session key → (the page it is for, the value, expiry in Unix ms).
    slots: Mutex<HashMap<String, (String, Secret, i64)>>,
}

impl ShowOnce {
    /// Keeps `value` for the next GET of `page` in this session, replacing any older one.
    pub fn put(&self, session: &CurrentUser, page: &str, value: Secret, now: i64) {
        self.put_for(session.slot_key(), page, value, now);
    }

    /// The value kept for `page` in this session, if it has not expired; it is gone after.
    /// A value for another page stays for that page.
    pub fn take(&self, session: &CurrentUser, page: &str, now: i64) -> Option<Secret> {
        self.take_for(&session.slot_key(), page, now)
    }

    fn put_for(&self, key: String, page: &str, value: Secret, now: i64) {
        let Ok(mut slots) = self.slots.lock() else {
            return;
        };
        slots.retain(|_, (_, _, expires)| *expires > now);
        if slots.len() >= SHOW_ONCE_ENTRIES && !slots.contains_key(&key) {
            return;
        }
        slots.insert(key, (page.to_owned(), value, now + SHOW_ONCE_MS));
    }

    fn take_for(&self, key: &str, page: &str, now: i64) -> Option<Secret> {
        let mut slots = self.slots.lock().ok()?;
        let (for_page, _, expires) = slots.get(key)?;
        if *expires <= now {
            slots.remove(key);
            return None;
        }
        if for_page != page {
            return None;
        }
        slots.remove(key).map(|(_, value, _)| value)
    }

    pub fn len(&self) -> usize {
        self.slots.lock().map_or(0, |m| m.len())
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// 32 random bytes as URL-safe base64: session ids, CSRF and setup tokens.
fn random_token() -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 32]>())
}

fn app_state(req: &HttpRequest) -> Result<web::Data<AppState>, WebError> {
    req.app_data::<web::Data<AppState>>()
        .cloned()
        .ok_or_else(|| WebError::Internal(anyhow::anyhow!("app state missing")))
}

fn uses_tls(state: &AppState) -> bool {
    !state.config.tls.cert.is_empty()
}

fn cookie_value(req: &HttpRequest, name: &str) -> Option<String> {
    req.headers()
        .get_all(header::COOKIE)
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v.to_owned())
        .filter(|v| !v.is_empty())
}

fn session_cookie_name(state: &AppState) -> &'static str {
    if uses_tls(state) {
        SESSION_COOKIE_TLS
    } else {
        SESSION_COOKIE
    }
}

/// A `Set-Cookie` value: `HttpOnly` (no script reads it), `SameSite=Strict` (no other site's page
/// can make the browser send it), Secure when tidings serves HTTPS.
fn set_cookie(state: &AppState, name: &str, value: &str, max_age_s: i64) -> String {
    let secure = if uses_tls(state) { "; Secure" } else { "" };
    format!("{name}={value}; Path=/; HttpOnly; SameSite=Strict; Max-Age={max_age_s}{secure}")
}

/// The signed-in person of this request, with their session, the workspace they are in
/// and their role there.
pub struct CurrentUser {
    pub user: User,
    pub session: Session,
    /// What the user may do in `workspace`.
    pub role: UserRole,
    /// Every workspace the user may switch to (the header's switcher), oldest first.
    pub workspaces: Vec<Workspace>,
    workspace: WorkspaceId,
    cookie: String,
}

impl CurrentUser {
    pub fn actor(&self) -> Actor {
        Actor::user(&self.user)
    }

    /// The workspace every page of this request shows and changes.
    pub fn workspace(&self) -> &WorkspaceId {
        &self.workspace
    }

    /// This session's key for server-side slots: a hash of its cookie, so the cookie itself
    /// is kept nowhere but the store.
    fn slot_key(&self) -> String {
        use sha2::Digest as _;
        hex::encode(sha2::Sha256::digest(self.cookie.as_bytes()))
    }
}

/// Where an unsigned request goes: sign-in, coming back to the page it asked for.
fn to_login(req: &HttpRequest) -> WebError {
    if req.method() == actix_web::http::Method::GET {
        let next = req
            .uri()
            .path_and_query()
            .map_or("/", actix_web::http::uri::PathAndQuery::as_str);
        let query: String = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish();
        WebError::Redirect(format!("/login?{query}"))
    } else {
        WebError::Redirect("/login".into())
    }
}

/// The signed-in user of this request, if they have the role `needs`. The session and user
/// are read on the blocking pool, never on the thread that answers requests.
async fn current_user(req: HttpRequest, needs: UserRole) -> Result<CurrentUser, WebError> {
    let state = app_state(&req)?;
    let cookie = cookie_value(&req, session_cookie_name(&state)).ok_or_else(|| to_login(&req))?;
    let (session, user, workspaces) = users::signed_in(&state, cookie.clone())
        .await?
        .ok_or_else(|| to_login(&req))?;
    // The workspace the switcher chose, while the user is still a member of it; else the
    // one they were made in (or, should they have left it, their first).
    let chosen = cookie_value(&req, WORKSPACE_COOKIE);
    let workspace = workspaces
        .iter()
        .find(|w| chosen.as_deref() == Some(w.id.as_str()))
        .or_else(|| workspaces.iter().find(|w| w.id == user.workspace_id))
        .or_else(|| workspaces.first())
        .map(|w| w.id.clone())
        .ok_or_else(|| {
            WebError::forbidden(format!(
                "Your account ({}) is a member of no workspace. Ask an admin to add you to one.",
                user.username
            ))
        })?;
    let role = user.role_in(&workspace).unwrap_or(UserRole::Viewer);
    if role < needs {
        return Err(WebError::forbidden(format!(
            "Your account ({}) has the {} role in this workspace; this needs {}. Ask an admin if you need it.",
            user.username,
            role.as_str(),
            match needs {
                UserRole::Admin => "an admin",
                UserRole::Editor => "an editor or admin",
                UserRole::Viewer => "any role",
            }
        )));
    }
    Ok(CurrentUser {
        user,
        session,
        role,
        workspaces,
        workspace,
        cookie,
    })
}

/// The signed-in user of this request, if any (for an error page's navigation).
pub async fn signed_in(req: HttpRequest) -> Option<CurrentUser> {
    current_user(req, UserRole::Viewer).await.ok()
}

macro_rules! role_extractor {
    ($(#[$doc:meta])* $name:ident, $role:expr) => {
        $(#[$doc])*
        pub struct $name(pub CurrentUser);

        impl FromRequest for $name {
            type Error = WebError;
            type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, WebError>>>>;

            fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
                let req = req.clone();
                Box::pin(async move { current_user(req, $role).await.map($name) })
            }
        }
    };
}

role_extractor!(/// Anyone signed in: viewers see every page but change nothing.
    AnyUser, UserRole::Viewer);
role_extractor!(/// An editor or admin: manages rules, tests and re-sends.
    EditorUser, UserRole::Editor);
role_extractor!(/// An admin: users, API keys, settings, audit log.
    AdminUser, UserRole::Admin);

/// A posted form whose `csrf` field matches the poster's session. Use after a role
/// extractor, which has already refused anyone without the role (403 before the token is
/// even looked at, so a viewer learns nothing from it).
pub struct CsrfForm(pub Fields);

impl FromRequest for CsrfForm {
    type Error = WebError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, WebError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let req = req.clone();
        let body = web::Bytes::from_request(&req, payload);
        Box::pin(async move {
            let state = app_state(&req)?;
            let cookie =
                cookie_value(&req, session_cookie_name(&state)).ok_or_else(|| to_login(&req))?;
            let session = users::session(&state, cookie)
                .await?
                .ok_or_else(|| to_login(&req))?;
            let body = body
                .await
                .map_err(|e| WebError::bad_request(format!("The form could not be read: {e}")))?;
            let fields = Fields::parse(&body);
            let given = fields.get("csrf");
            if given.len() != session.csrf.len()
                || !bool::from(given.as_bytes().ct_eq(session.csrf.as_bytes()))
            {
                return Err(expired_form());
            }
            Ok(CsrfForm(fields))
        })
    }
}

fn expired_form() -> WebError {
    WebError::forbidden(
        "This form has expired or did not come from tidings, so nothing was changed. Go back, reload the page and try again.",
    )
}

/// The pre-session form token: the cookie set with the form must come back in the form.
fn check_form_token(req: &HttpRequest, fields: &Fields) -> Result<(), WebError> {
    let cookie = cookie_value(req, FORM_COOKIE).unwrap_or_default();
    let given = fields.get("form_token");
    if cookie.is_empty()
        || given.len() != cookie.len()
        || !bool::from(given.as_bytes().ct_eq(cookie.as_bytes()))
    {
        return Err(expired_form());
    }
    Ok(())
}

/// A local path to return to after sign-in; anything else (another site) becomes `/`.
fn safe_next(next: &str) -> String {
    let local = next.starts_with('/')
        && !next.starts_with("//")
        && !next.starts_with("/\\")
        && !next.chars().any(char::is_control);
    if local { next.to_owned() } else { "/".into() }
}

#[derive(Template)]
#[template(path = "pages/login.html")]
struct LoginPage {
    l: Layout,
    form_token: String,
    username: String,
    next: String,
    error: Option<String>,
    no_users: bool,
}

#[derive(serde::Deserialize)]
struct NextQuery {
    next: Option<String>,
}

fn with_form_cookie(
    state: &AppState,
    status: StatusCode,
    token: &str,
    page: &impl Template,
) -> Result<HttpResponse, WebError> {
    let mut resp = render(status, page)?;
    if let Ok(v) = header::HeaderValue::from_str(&set_cookie(state, FORM_COOKIE, token, 3600)) {
        resp.headers_mut().append(header::SET_COOKIE, v);
    }
    Ok(resp)
}

async fn login_page(
    state: web::Data<AppState>,
    query: web::Query<NextQuery>,
) -> Result<HttpResponse, WebError> {
    let no_users = users::count(&state).await? == 0;
    let token = random_token();
    let page = LoginPage {
        l: Layout::new(&state, None, "", "Sign in"),
        form_token: token.clone(),
        username: String::new(),
        next: safe_next(query.next.as_deref().unwrap_or("/")),
        error: None,
        no_users,
    };
    with_form_cookie(&state, StatusCode::OK, &token, &page)
}

async fn login(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let fields = Fields::parse(&body);
    check_form_token(&req, &fields)?;
    let username = fields.get("username").trim().to_lowercase();
    let password = fields.get("password").to_owned();
    let next = safe_next(fields.get("next"));
    let ip = req.peer_addr().map(|a| a.ip());
    let retry = |status: StatusCode, error: String| {
        let token = random_token();
        let page = LoginPage {
            l: Layout::new(&state, None, "", "Sign in"),
            form_token: token.clone(),
            username: username.clone(),
            next: next.clone(),
            error: Some(error),
            no_users: false,
        };
        with_form_cookie(&state, status, &token, &page)
    };
    match users::sign_in(&state, username.clone(), password, ip).await? {
        SignIn::Welcome(user) => start_session(&state, &user, "user.login", &next).await,
        SignIn::Refused => retry(
            StatusCode::UNAUTHORIZED,
            "That username and password do not match an account.".into(),
        ),
        SignIn::Limited(wait) => retry(
            StatusCode::TOO_MANY_REQUESTS,
            format!(
                "Too many failed sign-ins for this account from here. Wait {} minute(s) and try again.",
                wait.div_euclid(60) + 1
            ),
        ),
    }
}

/// Creates a session for `user` and sends the browser to `next` with its cookie.
async fn start_session(
    state: &AppState,
    user: &User,
    action: &str,
    next: &str,
) -> Result<HttpResponse, WebError> {
    let cookie = random_token();
    users::start_session(state, user, action, cookie.clone(), random_token()).await?;
    let name = session_cookie_name(state);
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, next))
        .append_header((
            header::SET_COOKIE,
            set_cookie(state, name, &cookie, SESSION_MS / 1000),
        ))
        .append_header((header::SET_COOKIE, set_cookie(state, FORM_COOKIE, "", 0)))
        .finish())
}

async fn logout(
    AnyUser(me): AnyUser,
    CsrfForm(_): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    users::end_session(&state, &me.user, me.cookie.clone()).await?;
    let name = session_cookie_name(&state);
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/login?signed_out=1"))
        .append_header((header::SET_COOKIE, set_cookie(&state, name, "", 0)))
        .finish())
}

/// The header's switcher: from now on this browser's pages show the chosen workspace, if
/// the user is a member of it (any other is "not found", as if it did not exist).
async fn switch_workspace(
    AnyUser(me): AnyUser,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let wanted = fields.get("workspace_id");
    let Some(target) = me.workspaces.iter().find(|w| w.id.as_str() == wanted) else {
        return Err(WebError::status(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("You are not a member of a workspace with id {wanted:?}."),
        ));
    };
    Ok(HttpResponse::SeeOther()
        .insert_header((header::LOCATION, "/"))
        .append_header((
            header::SET_COOKIE,
            set_cookie(
                &state,
                WORKSPACE_COOKIE,
                target.id.as_str(),
                SESSION_MS / 1000,
            ),
        ))
        .finish())
}

#[derive(Template)]
#[template(path = "pages/setup.html")]
struct SetupPage {
    l: Layout,
    form_token: String,
    token: String,
    username: String,
    error_field: &'static str,
    error: String,
}

#[derive(serde::Deserialize)]
struct SetupQuery {
    token: Option<String>,
}

/// The setup link is only good while no user exists and with the token from the log.
async fn check_setup(state: &AppState, ui: &UiState, token: &str) -> Result<(), WebError> {
    if users::count(state).await? > 0 {
        return Err(WebError::status(
            StatusCode::GONE,
            "Setup is already done",
            "An admin account exists, so this setup link no longer works. Sign in instead.",
        ));
    }
    if !ui.setup_token_matches(token) {
        return Err(WebError::forbidden(
            "This setup link is not valid. Use the link tidings printed in its log when it started (journalctl -u tidings); a restart prints a new one.",
        ));
    }
    Ok(())
}

async fn setup_page(
    state: web::Data<AppState>,
    ui: web::Data<UiState>,
    query: web::Query<SetupQuery>,
) -> Result<HttpResponse, WebError> {
    let token = query.token.clone().unwrap_or_default();
    check_setup(&state, &ui, &token).await?;
    let form_token = random_token();
    let page = SetupPage {
        l: Layout::new(&state, None, "", "Set up tidings"),
        form_token: form_token.clone(),
        token,
        username: String::new(),
        error_field: "",
        error: String::new(),
    };
    with_form_cookie(&state, StatusCode::OK, &form_token, &page)
}

async fn setup(
    req: HttpRequest,
    body: web::Bytes,
    state: web::Data<AppState>,
    ui: web::Data<UiState>,
) -> Result<HttpResponse, WebError> {
    let fields = Fields::parse(&body);
    check_form_token(&req, &fields)?;
    let token = fields.get("token").to_owned();
    check_setup(&state, &ui, &token).await?;
    let raw_name = fields.get("username").to_owned();
    let again = |field: &'static str, error: String| {
        let form_token = random_token();
        let page = SetupPage {
            l: Layout::new(&state, None, "", "Set up tidings"),
            form_token: form_token.clone(),
            token: token.clone(),
            username: raw_name.clone(),
            error_field: field,
            error,
        };
        with_form_cookie(&state, StatusCode::BAD_REQUEST, &form_token, &page)
    };
    let username = match normalize_username(&raw_name) {
        Ok(u) => u,
        Err(e) => return again("username", format!("Username: {e}.")),
    };
    let password = fields.get("password").to_owned();
    if let Err(e) = check_password(&password) {
        return again("password", format!("Password {e}."));
    }
    if fields.get("confirm") != password {
        return again("confirm", "The two passwords are not the same.".into());
    }
    let workspace = state.store.default_workspace().clone();
    let user = users::create(
        &state,
        workspace,
        username,
        UserRole::Admin,
        password,
        None,
        true,
    )
    .await?
    .map_err(WebError::bad_request)?;
    if let Ok(mut slot) = ui.setup_token.lock() {
        slot.take();
    }
    tracing::info!(user = %user.username, "first admin created with the setup link");
    start_session(&state, &user, "user.login", "/").await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_is_shown_once_to_its_session_and_page_and_expires() {
        let once = ShowOnce::default();
        let secret = || Secret::new("whsec_x".into());
        once.put_for("s1".into(), "/rules/a", secret(), 0);
        assert!(
            once.take_for("s2", "/rules/a", 1).is_none(),
            "another session"
        );
        assert!(once.take_for("s1", "/keys", 1).is_none(), "another page");
        let got = once.take_for("s1", "/rules/a", 1).unwrap();
        assert_eq!(got.expose(), "whsec_x");
        assert!(once.take_for("s1", "/rules/a", 2).is_none(), "single use");
        once.put_for("s1".into(), "/keys", secret(), 0);
        assert!(
            once.take_for("s1", "/keys", SHOW_ONCE_MS).is_none(),
            "expired"
        );
        assert!(
            once.is_empty(),
            "an expired value is dropped when looked at"
        );
        once.put_for("s1".into(), "/keys", secret(), 0);
        once.put_for("s2".into(), "/keys", secret(), SHOW_ONCE_MS);
        assert_eq!(once.len(), 1, "expired values go when another is kept");
    }

    #[test]
    fn next_stays_on_this_site() {
        assert_eq!(safe_next("/rules?x=1"), "/rules?x=1");
        assert_eq!(safe_next("//evil.example"), "/");
        assert_eq!(safe_next("https://evil.example"), "/");
        assert_eq!(safe_next("/\\evil.example"), "/");
    }
}
