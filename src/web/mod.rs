//! The admin UI (SPEC §8): server-rendered askama pages for people, beside the JSON API for
//! programs. Sessions, CSRF and roles live in `auth`; every page goes through the same store
//! and rule functions as the API, so the UI can never do what the API would refuse.

pub mod account;
pub mod admin;
pub mod assets;
pub mod auth;
pub mod catalog;
pub mod dashboard;
pub mod deliveries;
pub mod filters;
pub mod rules;
pub mod subjects;
pub mod users;

use actix_web::dev::{Service, ServiceResponse};
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderValue};
use actix_web::middleware::DefaultHeaders;
use actix_web::{HttpRequest, HttpResponse, ResponseError, web};
use askama::Template;

use crate::app::AppState;
use crate::domain::time::to_rfc3339;
use crate::domain::user::UserRole;
use crate::error::{AppError, Code};
use crate::store::StoreError;

pub use auth::{AdminUser, AnyUser, CurrentUser, EditorUser, UiState};

/// Every UI route. Registered after the API, so `/api/…` and `/healthz` keep their own
/// handlers and 404s; everything else is a page, with the security headers below.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("")
            .wrap_fn(|req, srv| {
                let response = srv.call(req);
                async move { Ok(with_layout(response.await?).await) }
            })
            .wrap(security_headers())
            .configure(assets::routes)
            .configure(auth::routes)
            .configure(dashboard::routes)
            .configure(rules::routes)
            .configure(catalog::routes)
            .configure(deliveries::routes)
            .configure(admin::routes)
            .configure(users::routes)
            .configure(account::routes)
            .configure(subjects::routes)
            .default_service(web::to(not_found)),
    );
}

/// Strict headers on every UI response. The CSP allows only this origin's own files: no
/// inline script or style anywhere, so an injected tag cannot run even if escaping failed.
fn security_headers() -> DefaultHeaders {
    DefaultHeaders::new()
        .add((
            header::CONTENT_SECURITY_POLICY,
            "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
             form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'",
        ))
        .add((header::X_FRAME_OPTIONS, "DENY"))
        .add((header::REFERRER_POLICY, "no-referrer"))
        .add((header::X_CONTENT_TYPE_OPTIONS, "nosniff"))
        // Pages show PHI (payloads, responses): never kept in a shared or browser cache.
        // Static assets set their own Cache-Control, which DefaultHeaders leaves alone.
        .add((header::CACHE_CONTROL, "no-store"))
}

/// Error pages are rendered where no app state or user is at hand (`ResponseError`); this
/// renders them again with the signed-in user's navigation (so a 404 or 403 is not a dead
/// end) and, in development mode, the permanent "development mode" banner.
async fn with_layout(res: ServiceResponse) -> ServiceResponse {
    let Some(err) = res
        .response()
        .error()
        .and_then(|e| e.as_error::<WebError>())
        .filter(|e| !matches!(e, WebError::Redirect(_)))
    else {
        return res;
    };
    let Some(state) = res.request().app_data::<web::Data<AppState>>().cloned() else {
        return res;
    };
    let user = auth::signed_in(res.request().clone()).await;
    if user.is_none() && !state.config.is_development() {
        return res;
    }
    let page = err.page(Layout::new(&state, user.as_ref(), "", ""));
    res.into_response(page)
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, WebError> {
    Err(WebError::status(
        StatusCode::NOT_FOUND,
        "Page not found",
        format!("There is no page at {}.", req.path()),
    ))
}

/// What every page's layout needs: who is signed in, their form token, the mode banner.
pub struct Layout {
    pub title: String,
    /// Which nav entry is current.
    pub nav: &'static str,
    pub username: Option<String>,
    pub role: &'static str,
    pub can_edit: bool,
    pub is_admin: bool,
    pub csrf: String,
    pub dev: bool,
    pub flash: Option<String>,
    pub css: String,
    pub js: String,
    /// What is wrong now, for the banner on every page of a signed-in user.
    pub alerts: Vec<AlertLine>,
    /// The header's switcher: the signed-in user's workspaces (empty: none to switch to).
    pub workspaces: Vec<WorkspaceChoice>,
    /// The name of the workspace the page shows.
    pub workspace: String,
}

/// One workspace in the header's switcher.
pub struct WorkspaceChoice {
    pub id: String,
    pub name: String,
    pub current: bool,
}

/// One open alert as the banner and the dashboard show it.
pub struct AlertLine {
    pub headline: String,
    pub detail: String,
    /// The rule's page, or the dashboard.
    pub link: String,
    pub since: String,
    /// How long it has been wrong, e.g. "3 hours".
    pub age: String,
}

impl AlertLine {
    fn all(state: &AppState, workspace: &crate::domain::ids::WorkspaceId) -> Vec<Self> {
        let now = state.clock.now_ms();
        crate::app::alerts::open(state, workspace)
            .iter()
            .map(|a| Self {
                headline: crate::app::alerts::headline(a),
                detail: a.detail.clone(),
                link: a
                    .rule
                    .as_ref()
                    .map_or_else(|| "/".to_owned(), |r| format!("/rules/{}", r.id)),
                since: fmt_time(a.since),
                age: age(now - a.since),
            })
            .collect()
    }
}

/// A duration in the largest whole unit, for "failing for 3 hours".
pub fn age(ms: i64) -> String {
    let minutes = ms.max(0) / 60_000;
    let (n, unit) = match minutes {
        0 => return "less than a minute".to_owned(),
        1..60 => (minutes, "minute"),
        60..1440 => (minutes / 60, "hour"),
        _ => (minutes / 1440, "day"),
    };
    format!("{n} {unit}{}", if n == 1 { "" } else { "s" })
}

impl Layout {
    pub fn new(
        state: &AppState,
        user: Option<&CurrentUser>,
        nav: &'static str,
        title: &str,
    ) -> Self {
        let role = user.map(|u| u.role);
        let choices: Vec<WorkspaceChoice> = user
            .map(|u| {
                u.workspaces
                    .iter()
                    .map(|w| WorkspaceChoice {
                        id: w.id.to_string(),
                        name: w.name.clone(),
                        current: &w.id == u.workspace(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        Self {
            title: title.to_owned(),
            nav,
            username: user.map(|u| u.user.username.clone()),
            role: role.map_or("", UserRole::as_str),
            can_edit: role.is_some_and(|r| r >= UserRole::Editor),
            is_admin: role == Some(UserRole::Admin),
            csrf: user.map(|u| u.session.csrf.clone()).unwrap_or_default(),
            dev: state.config.is_development(),
            flash: None,
            css: assets::url("css/app.css"),
            js: assets::url("js/app.js"),
            alerts: user
                .map(|u| AlertLine::all(state, u.workspace()))
                .unwrap_or_default(),
            workspace: choices
                .iter()
                .find(|c| c.current)
                .map(|c| c.name.clone())
                .unwrap_or_default(),
            // One workspace is nothing to switch between.
            workspaces: if choices.len() > 1 {
                choices
            } else {
                Vec::new()
            },
        }
    }

    /// The layout of a page shown to nobody in particular: no navigation.
    fn bare(dev: bool) -> Self {
        Self {
            title: String::new(),
            nav: "",
            username: None,
            role: "",
            can_edit: false,
            is_admin: false,
            csrf: String::new(),
            dev,
            flash: None,
            css: assets::url("css/app.css"),
            js: assets::url("js/app.js"),
            alerts: Vec::new(),
            workspaces: Vec::new(),
            workspace: String::new(),
        }
    }

    #[must_use]
    pub fn flash(mut self, message: Option<String>) -> Self {
        self.flash = message;
        self
    }
}

/// The first-run checklist (create a rule, reveal its secret, send a test, give the EHR an
/// ingest key), shown on an empty dashboard and rules page.
pub struct NextSteps {
    pub has_rule: bool,
    /// The rule to open for the secret and the test, once there is one.
    pub first_rule: Option<String>,
    pub has_ingest_key: bool,
}

impl NextSteps {
    /// Where the workspace stands; `rules` are its rules, in the order the page lists them.
    pub async fn of(
        state: &AppState,
        workspace: &crate::domain::ids::WorkspaceId,
        rules: &[crate::domain::rule::Rule],
    ) -> Result<Self, WebError> {
        let keys = crate::app::keys::list(state, workspace.clone()).await?;
        Ok(Self {
            has_rule: !rules.is_empty(),
            first_rule: rules.first().map(|r| r.id.to_string()),
            has_ingest_key: keys
                .iter()
                .any(|k| k.role == crate::domain::access::Role::Ingest),
        })
    }

    /// Whether anything on the list is still to do.
    pub fn pending(&self) -> bool {
        !self.has_rule || !self.has_ingest_key
    }
}

/// Renders a page with a status.
pub fn render(status: StatusCode, page: &impl Template) -> Result<HttpResponse, WebError> {
    let body = page.render().map_err(|e| WebError::Internal(e.into()))?;
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(body))
}

pub fn ok(page: &impl Template) -> Result<HttpResponse, WebError> {
    render(StatusCode::OK, page)
}

/// 303 See Other: where a form post sends the browser afterwards (post/redirect/get).
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}

/// A UI error: an HTML page, or a redirect (to sign in).
#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("redirect to {0}")]
    Redirect(String),
    #[error("{title}: {message}")]
    Page {
        status: StatusCode,
        title: String,
        message: String,
    },
    #[error("internal error: {0:#}")]
    Internal(anyhow::Error),
}

impl WebError {
    pub fn status(status: StatusCode, title: &str, message: impl Into<String>) -> Self {
        Self::Page {
            status,
            title: title.to_owned(),
            message: message.into(),
        }
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::status(StatusCode::FORBIDDEN, "Not allowed", message)
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::status(StatusCode::BAD_REQUEST, "That did not work", message)
    }
}

impl From<AppError> for WebError {
    fn from(e: AppError) -> Self {
        match e {
            AppError::Refused { code, message } => {
                let title = match code {
                    Code::NotFound => "Not found",
                    Code::Conflict => "Not possible right now",
                    Code::Overloaded => "Busy",
                    _ => "That did not work",
                };
                let status = StatusCode::from_u16(code.status())
                    .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
                Self::status(status, title, message)
            }
            AppError::Internal(e) => Self::Internal(e),
        }
    }
}

impl From<StoreError> for WebError {
    fn from(e: StoreError) -> Self {
        AppError::from(e).into()
    }
}

#[derive(Template)]
#[template(path = "pages/error.html")]
struct ErrorPage<'a> {
    l: Layout,
    status: u16,
    heading: &'a str,
    message: &'a str,
}

impl ResponseError for WebError {
    fn status_code(&self) -> StatusCode {
        match self {
            Self::Redirect(_) => StatusCode::SEE_OTHER,
            Self::Page { status, .. } => *status,
            Self::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        if let Self::Internal(err) = self {
            tracing::error!(error = format!("{err:#}"), "internal error in the admin UI");
        }
        self.page(Layout::bare(false))
    }
}

impl WebError {
    /// The error as a page (or redirect) in this layout (its title is set here).
    fn page(&self, mut l: Layout) -> HttpResponse {
        let (status, heading, message) = match self {
            Self::Redirect(to) => return see_other(to),
            Self::Page {
                status,
                title,
                message,
            } => (*status, title.as_str(), message.as_str()),
            Self::Internal(_) => (
                StatusCode::INTERNAL_SERVER_ERROR,
                "Something went wrong",
                "tidings could not show this page. The server log has the details.",
            ),
        };
        heading.clone_into(&mut l.title);
        let page = ErrorPage {
            l,
            status: status.as_u16(),
            heading,
            message,
        };
        match page.render() {
            Ok(body) => HttpResponse::build(status)
                .content_type("text/html; charset=utf-8")
                .body(body),
            Err(_) => HttpResponse::build(status)
                .insert_header((header::CONTENT_TYPE, HeaderValue::from_static("text/plain")))
                .body(message.to_owned()),
        }
    }
}

/// `2026-11-23 10:00:05 UTC`: readable, and unambiguous about the zone.
pub fn fmt_time(ms: i64) -> String {
    let s = to_rfc3339(ms - ms.rem_euclid(1000));
    s.replacen('T', " ", 1).replace('Z', " UTC")
}

/// `datetime-local` form value (`2026-11-23T10:00`, read as UTC) to Unix ms.
pub fn parse_local_time(v: &str) -> Option<i64> {
    let v = v.trim();
    let full = match v.len() {
        16 => format!("{v}:00Z"),
        19 => format!("{v}Z"),
        _ => v.to_owned(),
    };
    crate::domain::time::parse_rfc3339(&full)
}

/// Form fields as posted, in order (repeated names kept, for header rows).
#[derive(Debug, Default, Clone)]
pub struct Fields(pub Vec<(String, String)>);

impl Fields {
    pub fn parse(body: &[u8]) -> Self {
        Self(url::form_urlencoded::parse(body).into_owned().collect())
    }

    /// The first value of `name`, or "" when absent.
    pub fn get(&self, name: &str) -> &str {
        self.0
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    }

    pub fn has(&self, name: &str) -> bool {
        self.0.iter().any(|(k, _)| k == name)
    }

    pub fn all(&self, name: &str) -> Vec<&str> {
        self.0
            .iter()
            .filter(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_and_fields() {
        let ms = parse_local_time("2026-11-23T10:00").unwrap();
        assert_eq!(fmt_time(ms + 123), "2026-11-23 10:00:00 UTC");
        assert!(parse_local_time("soon").is_none());
        let f = Fields::parse(b"a=1&h=x&h=y&e=%3Cb%3E");
        assert_eq!(f.get("a"), "1");
        assert_eq!(f.all("h"), ["x", "y"]);
        assert_eq!(f.get("e"), "<b>");
        assert_eq!(f.get("missing"), "");
    }

    #[test]
    fn ages_are_in_the_largest_whole_unit() {
        assert_eq!(age(-5), "less than a minute");
        assert_eq!(age(59_999), "less than a minute");
        assert_eq!(age(60_000), "1 minute");
        assert_eq!(age(3 * 3_600_000 + 59 * 60_000), "3 hours");
        assert_eq!(age(86_400_000), "1 day");
        assert_eq!(age(9 * 86_400_000), "9 days");
    }
}
