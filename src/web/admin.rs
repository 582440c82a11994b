//! Admin pages: API keys (a new key is shown once), the effective settings (read only) and
//! the audit log. The Users page is `web/users.rs`.

use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::auth::CsrfForm;
use std::collections::HashMap;

use super::{AdminUser, Layout, UiState, WebError, fmt_time, parse_local_time, render, see_other};
use crate::app::{AppState, audit, keys, users};
use crate::domain::audit::{Actor, AuditEntry};
use crate::domain::ids::{ApiKeyId, AuditId};
use crate::error::{AppError, Code};
use crate::security::crypto::Secret;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/keys")
            .route(web::get().to(keys))
            .route(web::post().to(create_key)),
    )
    .service(web::resource("/keys/{id}/delete").route(web::post().to(delete_key)))
    .service(web::resource("/settings").route(web::get().to(settings)))
    .service(web::resource("/settings/test-email").route(web::post().to(test_email)))
    .service(web::resource("/audit").route(web::get().to(audit)));
}

struct KeyRow {
    id: String,
    name: String,
    role: &'static str,
    prefix: String,
    created: String,
}

#[derive(Template)]
#[template(path = "pages/keys.html")]
struct KeysPage {
    l: Layout,
    rows: Vec<KeyRow>,
    /// The key just made: shown this once.
    new_key: Option<String>,
    name: String,
    error: Option<String>,
    /// Where a source system posts its events, as this browser reached the server.
    ingest_url: String,
}

/// The events endpoint at the address this browser used (the server may sit behind a name
/// only the clinic's network knows; the Host header is what the EHR would use too).
fn ingest_url(req: &HttpRequest) -> String {
    let info = req.connection_info();
    format!("{}://{}/api/v1/events", info.scheme(), info.host())
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

async fn keys_page(
    req: &HttpRequest,
    state: &AppState,
    me: &super::CurrentUser,
    new_key: Option<String>,
    name: String,
    error: Option<String>,
    flash: Option<String>,
) -> Result<HttpResponse, WebError> {
    let keys = keys::list(state, me.workspace().clone()).await?;
    let rows = keys
        .iter()
        .map(|k| KeyRow {
            id: k.id.to_string(),
            name: k.name.clone(),
            role: k.role.as_str(),
            prefix: k.prefix.clone(),
            created: fmt_time(k.created_at),
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(
        status,
        &KeysPage {
            l: Layout::new(state, Some(me), "keys", "API keys").flash(flash),
            rows,
            new_key,
            name,
            error,
            ingest_url: ingest_url(req),
        },
    )
}

async fn keys(
    req: HttpRequest,
    AdminUser(me): AdminUser,
    query: web::Query<DoneQuery>,
    state: web::Data<AppState>,
    ui: web::Data<UiState>,
) -> Result<HttpResponse, WebError> {
    let (new_key, flash) = match query.done.as_deref() {
        Some("created") => {
            // Shown on this first GET after the post, never again (not on a reload).
            let key = ui.once.take(&me, KEYS_PAGE, state.clock.now_ms());
            let flash = if key.is_some() {
                "API key created. Copy it now: it is shown only this once."
            } else {
                "API key created. It was shown once and cannot be shown again; if it was not copied, delete it and make a new one."
            };
            (key.map(|k| k.expose().to_owned()), Some(flash.to_owned()))
        }
        Some("deleted") => (
            None,
            Some("API key deleted: systems using it are refused from now on.".to_owned()),
        ),
        _ => (None, None),
    };
    keys_page(&req, &state, &me, new_key, String::new(), None, flash).await
}

/// The keys page, where a new key is shown once (the show-once slot's key too).
const KEYS_PAGE: &str = "/keys";

async fn create_key(
    req: HttpRequest,
    AdminUser(me): AdminUser,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
    ui: web::Data<UiState>,
) -> Result<HttpResponse, WebError> {
    let name = fields.get("name").trim().to_owned();
    let made = keys::create(
        &state,
        me.workspace(),
        me.actor(),
        &name,
        fields.get("role"),
        false,
    )
    .await;
    match made {
        Ok((_, secret)) => {
            ui.once.put(&me, KEYS_PAGE, secret, state.clock.now_ms());
            Ok(see_other(&format!("{KEYS_PAGE}?done=created")))
        }
        Err(e) => {
            let message = refusal(e)?;
            keys_page(&req, &state, &me, None, name, Some(message), None).await
        }
    }
}

async fn delete_key(
    AdminUser(me): AdminUser,
    path: web::Path<String>,
    CsrfForm(_): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let id = ApiKeyId::parse(&path).ok_or_else(|| {
        WebError::status(
            StatusCode::NOT_FOUND,
            "Not found",
            "There is no such API key.",
        )
    })?;
    keys::delete(&state, me.workspace(), me.actor(), None, id).await?;
    Ok(see_other("/keys?done=deleted"))
}

/// A refused value's message, to show at the form; anything else is an error page.
pub(super) fn refusal(e: AppError) -> Result<String, WebError> {
    match e {
        AppError::Refused {
            code: Code::ValidationFailed,
            message,
        } => Ok(message),
        other => Err(other.into()),
    }
}

#[derive(Template)]
#[template(path = "pages/settings.html")]
struct SettingsPage {
    l: Layout,
    toml: String,
    /// The config file in effect (`Config::source`).
    source: String,
    version: &'static str,
    tls: bool,
    /// `[alerts.email]` is set.
    mail_on: bool,
}

/// The effective config as `check-config` prints it, with anything secret masked. (Secrets
/// proper — the master key, signing secrets — are not in the config at all.)
fn masked_toml(toml: &str) -> String {
    let mut section = String::new();
    toml.lines()
        .map(|line| {
            if line.starts_with('[') {
                line.trim_matches(['[', ']']).clone_into(&mut section);
            }
            if section == "tls" && line.starts_with("key =") && line != "key = \"\"" {
                "key = \"********\"".to_owned()
            } else {
                line.to_owned()
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The settings page (the show-once slot's key too, for a test mail's outcome).
const SETTINGS_PAGE: &str = "/settings";

/// The page; after a test mail's redirect, on its first GET only, whom it went to.
async fn settings(
    AdminUser(me): AdminUser,
    query: web::Query<DoneQuery>,
    state: web::Data<AppState>,
    ui: web::Data<UiState>,
) -> Result<HttpResponse, WebError> {
    let flash = (query.done.as_deref() == Some("test-mail")).then(|| {
        ui.once
            .take(&me, SETTINGS_PAGE, state.clock.now_ms())
            .map_or_else(
                || "The test mail was sent; whom it went to was shown once.".to_owned(),
                |sent| sent.expose().to_owned(),
            )
    });
    settings_page(&state, &me, StatusCode::OK, flash)
}

fn settings_page(
    state: &AppState,
    me: &super::auth::CurrentUser,
    status: StatusCode,
    flash: Option<String>,
) -> Result<HttpResponse, WebError> {
    let email = &state.config.alerts.email;
    super::render(
        status,
        &SettingsPage {
            l: Layout::new(state, Some(me), "settings", "Settings").flash(flash),
            toml: masked_toml(&state.config.to_toml()),
            source: state.config.source.clone(),
            version: env!("CARGO_PKG_VERSION"),
            tls: !state.config.tls.cert.is_empty(),
            mail_on: email.enabled(),
        },
    )
}

/// The settings page's "Send a test mail" button. A sent mail redirects (303) to the page,
/// which says once whom it went to, so a reload sends no second mail. A refusal (mail is
/// off, the server did not take it) sent nothing, so it is shown in place with its status,
/// like a form's bad value.
async fn test_email(
    AdminUser(me): AdminUser,
    CsrfForm(_): CsrfForm,
    state: web::Data<AppState>,
    ui: web::Data<UiState>,
) -> Result<HttpResponse, WebError> {
    let by = format!("{} in the admin UI", me.user.username);
    match crate::app::alerts::send_test_email(&state, me.workspace().clone(), by).await {
        Ok(to) => {
            let sent = format!("Test mail sent to {}.", to.join(", "));
            ui.once
                .put(&me, SETTINGS_PAGE, Secret::new(sent), state.clock.now_ms());
            Ok(see_other(&format!("{SETTINGS_PAGE}?done=test-mail")))
        }
        Err(AppError::Refused { code, message }) => {
            let status = StatusCode::from_u16(code.status()).unwrap_or(StatusCode::BAD_GATEWAY);
            settings_page(
                &state,
                &me,
                status,
                Some(format!("No test mail was sent: {message}")),
            )
        }
        Err(e) => Err(e.into()),
    }
}

struct AuditRow {
    at: String,
    actor: String,
    action: String,
    /// What it was done to, by name, and where that is now (none once deleted).
    target: String,
    target_href: Option<String>,
    detail: String,
}

#[derive(Template)]
#[template(path = "pages/audit.html")]
struct AuditPage {
    l: Layout,
    rows: Vec<AuditRow>,
    older: Option<String>,
    paged: bool,
    /// (value, label) of the action and actor filters; the chosen ones and the times as typed.
    actions: Vec<(String, String)>,
    actors: Vec<(String, String)>,
    action: String,
    actor: String,
    since: String,
    until: String,
    error: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
struct AuditQuery {
    cursor: Option<String>,
    action: Option<String>,
    actor: Option<String>,
    since: Option<String>,
    until: Option<String>,
}

/// Every action the log records, by area, for the filter (an area's `*` first).
const ACTIONS: [(&str, &[&str]); 7] = [
    (
        "rule",
        &[
            "rule.create",
            "rule.update",
            "rule.activate",
            "rule.deactivate",
            "rule.delete",
            "rule.secret.view",
            "rule.secret.rotate",
            "rule.redeliver_failed",
        ],
    ),
    ("delivery", &["delivery.redeliver"]),
    ("api_key", &["api_key.create", "api_key.delete"]),
    (
        "user",
        &[
            "user.create",
            "user.update",
            "user.role",
            "user.membership",
            "user.password",
            "user.delete",
            "user.login",
            "user.login_failed",
            "user.logout",
        ],
    ),
    ("session", &["session.create", "session.delete"]),
    ("event_type", &["event_type.declare"]),
    ("backup", &["backup.create"]),
];

fn action_options() -> Vec<(String, String)> {
    let mut out = Vec::new();
    for (area, actions) in ACTIONS {
        out.push((format!("{area}.*"), format!("{area}: anything")));
        out.extend(actions.iter().map(|a| ((*a).to_owned(), (*a).to_owned())));
    }
    out
}

fn actor_label(a: &Actor) -> String {
    match a {
        Actor::ApiKey { name, .. } => format!("API key {name:?}"),
        Actor::User { name, .. } => name.clone(),
        Actor::Cli => "command line".into(),
        Actor::System => "tidings".into(),
    }
}

/// Names of what the log's entries point at, as they are now.
struct Names {
    rules: HashMap<String, String>,
    keys: HashMap<String, String>,
    users: HashMap<String, String>,
}

impl Names {
    /// The entry's target by name with a link, or, once deleted, the name it had then.
    fn target(&self, e: &AuditEntry) -> (String, Option<String>) {
        let id = e.target_id.as_str();
        let then = || {
            [&e.after, &e.before].into_iter().flatten().find_map(|v| {
                v["name"]
                    .as_str()
                    .or(v["username"].as_str())
                    .map(str::to_owned)
            })
        };
        let gone = |kind: &str| match then() {
            Some(n) => format!("{kind} {n} (deleted)"),
            None => format!("{kind} {id} (deleted)"),
        };
        match e.target_type.as_str() {
            "rule" => match self.rules.get(id) {
                Some(n) => (format!("rule {n}"), Some(format!("/rules/{id}"))),
                None => (gone("rule"), None),
            },
            "api_key" => match self.keys.get(id) {
                Some(n) => (format!("API key {n}"), Some("/keys".into())),
                None => (gone("API key"), None),
            },
            "user" => match self.users.get(id) {
                Some(n) => (format!("user {n}"), Some("/users".into())),
                None => (gone("user"), None),
            },
            "delivery" => ("a delivery".into(), Some(format!("/deliveries/{id}"))),
            "event_type" => (format!("event type {id}"), Some("/event-types".into())),
            other => (format!("{other} {id}"), None),
        }
    }
}

/// A query value as typed, if any.
fn given(v: Option<&String>) -> Option<String> {
    v.map(String::as_str)
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
}

/// The audit filter the form asks for, or why it cannot be read (times as on the deliveries
/// page: `datetime-local`, read as UTC, Until taking in its whole minute).
fn audit_filter(q: &AuditQuery) -> Result<audit::AuditFilter, String> {
    let time = |name: &str, v: &Option<String>| match given(v.as_ref()) {
        None => Ok(None),
        Some(t) => parse_local_time(&t)
            .map(Some)
            .ok_or_else(|| format!("{name} {t:?} is not a date and time")),
    };
    let since = time("From", &q.since)?;
    let until = time("Until", &q.until)?.map(|u| u + 59_999);
    if let (Some(s), Some(u)) = (since, until)
        && s > u
    {
        return Err("From must not be later than Until".to_owned());
    }
    Ok(audit::AuditFilter {
        action: given(q.action.as_ref()),
        actor: given(q.actor.as_ref()),
        since,
        until,
    })
}

/// The Older link, the filters kept.
fn audit_older(q: &AuditQuery, cursor: &AuditId) -> String {
    let mut s = url::form_urlencoded::Serializer::new(String::new());
    for (k, v) in [
        ("action", &q.action),
        ("actor", &q.actor),
        ("since", &q.since),
        ("until", &q.until),
    ] {
        if let Some(v) = given(v.as_ref()) {
            s.append_pair(k, &v);
        }
    }
    s.append_pair("cursor", cursor.as_str());
    format!("/audit?{}", s.finish())
}

async fn audit(
    AdminUser(me): AdminUser,
    query: web::Query<AuditQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let q = query.into_inner();
    let ws = me.workspace().clone();
    let before = match q.cursor.as_deref() {
        Some(c) => Some(
            AuditId::parse(c)
                .ok_or_else(|| WebError::bad_request("That page link is not valid."))?,
        ),
        None => None,
    };
    let filter = audit_filter(&q);
    let (page, cursor, error) = match filter {
        Ok(f) => {
            let (page, cursor) = audit::search(&state, ws.clone(), f, before, 50).await?;
            (page, cursor, None)
        }
        Err(e) => (Vec::new(), None, Some(e)),
    };
    let rules = crate::app::rules::list(&state, ws.clone()).await?;
    let key_list = keys::list(&state, ws.clone()).await?;
    let user_list = users::list(&state, ws).await?;
    let names = Names {
        rules: rules
            .iter()
            .map(|r| (r.id.to_string(), r.name.clone()))
            .collect(),
        keys: key_list
            .iter()
            .map(|k| (k.id.to_string(), k.name.clone()))
            .collect(),
        users: user_list
            .iter()
            .map(|u| (u.id.to_string(), u.username.clone()))
            .collect(),
    };
    let rows = page
        .iter()
        .map(|e| {
            let (target, target_href) = names.target(e);
            AuditRow {
                at: fmt_time(e.at),
                actor: actor_label(&e.actor),
                action: e.action.clone(),
                target,
                target_href,
                detail: e.detail.clone().unwrap_or_default(),
            }
        })
        .collect();
    let mut actors: Vec<(String, String)> = user_list
        .iter()
        .map(|u| (format!("user:{}", u.id), u.username.clone()))
        .collect();
    actors.extend(
        key_list
            .iter()
            .map(|k| (format!("api_key:{}", k.id), format!("API key {:?}", k.name))),
    );
    actors.push(("cli".into(), "command line".into()));
    actors.push(("system".into(), "tidings".into()));
    let older = cursor.map(|c| audit_older(&q, &c));
    let keep = |v: &Option<String>| v.clone().unwrap_or_default();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(
        status,
        &AuditPage {
            l: Layout::new(&state, Some(&me), "audit", "Audit log"),
            rows,
            older,
            paged: q.cursor.is_some(),
            actions: action_options(),
            actors,
            action: keep(&q.action),
            actor: keep(&q.actor),
            since: keep(&q.since),
            until: keep(&q.until),
            error,
        },
    )
}

#[cfg(test)]
mod tests {
    #[test]
    fn settings_mask_the_tls_key_path_only() {
        let t = "listen = \"x\"\nkey = \"a\"\n[tls]\ncert = \"/c.pem\"\nkey = \"/k.pem\"";
        let m = super::masked_toml(t);
        assert!(m.contains("cert = \"/c.pem\""));
        assert!(m.contains("key = \"********\""));
        assert!(m.contains("key = \"a\""), "only under [tls]");
        assert!(!m.contains("/k.pem"));
    }
}
