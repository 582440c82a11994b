//! The Users page of the chosen workspace: people made here (added, given a role or a new
//! password, removed), people of other workspaces added here with a role of their own
//! (given another role here, or taken out of this workspace), and group admins (shown,
//! changed only with `tidings user add`).

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use super::admin::refusal;
use super::auth::{CsrfForm, CurrentUser};
use super::{AdminUser, Layout, WebError, fmt_time, render, see_other};
use crate::app::{AppState, users};
use crate::domain::ids::UserId;
use crate::domain::user::UserRole;
use crate::error::{AppError, Code};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/users")
            .route(web::get().to(users))
            .route(web::post().to(create_user)),
    )
    .service(web::resource("/users/members").route(web::post().to(add_member)))
    .service(web::resource("/users/{id}/delete").route(web::post().to(delete_user)))
    .service(web::resource("/users/{id}/role").route(web::post().to(change_role)))
    .service(web::resource("/users/{id}/membership/delete").route(web::post().to(remove_member)))
    .service(
        web::resource("/users/{id}/password")
            .route(web::get().to(password_page))
            .route(web::post().to(change_password)),
    );
}

const ROLE_CHOICE: &str = "Choose a role: viewer, editor or admin.";

/// How a listed user belongs to this workspace, which says what this page may change.
#[derive(PartialEq, Eq)]
enum Belongs {
    /// Made here: role, password, removal.
    Home,
    /// Made in another workspace, added here: their role here, or taking them out.
    Member,
    /// An admin of every workspace: nothing here.
    Group,
}

struct UserRow {
    id: String,
    username: String,
    role: &'static str,
    created: String,
    me: bool,
    belongs: Belongs,
}

/// What a form on the page was refused for, shown at that form; the rest of the page as
/// it is.
#[derive(Default)]
struct Refusals {
    /// The "Add a user" form, with what was typed.
    new_user: Option<String>,
    username: String,
    role: String,
    /// The "Add someone already on tidings" form, with what was typed.
    member: Option<String>,
    member_username: String,
    member_role: String,
    /// A change in the list of people (a role, a removal).
    people: Option<String>,
    status: Option<StatusCode>,
}

#[derive(Template)]
#[template(path = "pages/users.html")]
struct UsersPage {
    l: Layout,
    rows: Vec<UserRow>,
    r: Refusals,
}

async fn users_page(
    state: &AppState,
    me: &CurrentUser,
    r: Refusals,
    flash: Option<String>,
) -> Result<HttpResponse, WebError> {
    let ws = me.workspace();
    let users = users::list(state, ws.clone()).await?;
    let rows = users
        .iter()
        .map(|u| UserRow {
            id: u.id.to_string(),
            username: u.username.clone(),
            role: u.role_in(ws).unwrap_or(u.role).as_str(),
            created: fmt_time(u.created_at),
            me: u.id == me.user.id,
            belongs: if u.group_admin {
                Belongs::Group
            } else if &u.workspace_id == ws {
                Belongs::Home
            } else {
                Belongs::Member
            },
        })
        .collect();
    let status = r.status.unwrap_or(StatusCode::OK);
    render(
        status,
        &UsersPage {
            l: Layout::new(state, Some(me), "users", "Users").flash(flash),
            rows,
            r,
        },
    )
}

/// The page again with a refusal at the form it belongs to: a refused value (400) or
/// a change not possible now (409: the last admin, someone already a member); anything
/// else is an error page.
fn refused(e: AppError, place: impl FnOnce(&mut Refusals, String)) -> Result<Refusals, WebError> {
    let (status, message) = match e {
        AppError::Refused {
            code: Code::ValidationFailed,
            message,
        } => (StatusCode::BAD_REQUEST, message),
        AppError::Refused {
            code: Code::Conflict,
            message,
        } => (StatusCode::CONFLICT, sentence(&message)),
        other => return Err(other.into()),
    };
    let mut r = Refusals {
        status: Some(status),
        role: "viewer".into(),
        member_role: "viewer".into(),
        ..Refusals::default()
    };
    place(&mut r, message);
    Ok(r)
}

/// A store's refusal ("this is the only admin …") as a sentence on the page.
fn sentence(message: &str) -> String {
    let mut chars = message.chars();
    let mut s: String = chars
        .next()
        .map(|c| c.to_uppercase().chain(chars).collect())
        .unwrap_or_default();
    if !s.ends_with('.') {
        s.push('.');
    }
    s
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

async fn users(
    AdminUser(me): AdminUser,
    query: web::Query<DoneQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let flash = match query.done.as_deref() {
        Some("created") => "User added. Give them their password in person or by phone.",
        Some("deleted") => "User removed and signed out everywhere.",
        Some("role") => "Role changed. They were signed out and get it at their next sign-in.",
        Some("member") => {
            "Added to this workspace. They were signed out and find it in their workspace switcher at their next sign-in."
        }
        Some("unmember") => {
            "Taken out of this workspace and signed out; their other workspaces are as they were."
        }
        Some("password") => {
            "Password set and every session of that user ended. Give them the new password in person or by phone."
        }
        _ => "",
    };
    let flash = Some(flash.to_owned()).filter(|f| !f.is_empty());
    let r = Refusals {
        role: "viewer".into(),
        member_role: "viewer".into(),
        ..Refusals::default()
    };
    users_page(&state, &me, r, flash).await
}

async fn create_user(
    AdminUser(me): AdminUser,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let username = fields.get("username").to_owned();
    let role_raw = fields.get("role").to_owned();
    let password = fields.get("password").to_owned();
    let again = |message: &str| Refusals {
        new_user: Some(message.to_owned()),
        username: username.clone(),
        role: role_raw.clone(),
        member_role: "viewer".into(),
        status: Some(StatusCode::BAD_REQUEST),
        ..Refusals::default()
    };
    if password != fields.get("confirm") {
        let r = again("The two passwords are not the same: type the new password twice.");
        return users_page(&state, &me, r, None).await;
    }
    let Some(role) = UserRole::parse(&role_raw) else {
        return users_page(&state, &me, again(ROLE_CHOICE), None).await;
    };
    let ws = me.workspace().clone();
    let by = Some(me.actor());
    let made = users::create(&state, ws, username.clone(), role, password, by, false).await?;
    match made {
        Ok(_) => Ok(see_other("/users?done=created")),
        Err(e) => users_page(&state, &me, again(&e), None).await,
    }
}

/// "Add someone already on tidings": a user of another workspace gets a role in this one.
async fn add_member(
    AdminUser(me): AdminUser,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let username = fields.get("username").to_owned();
    let role_raw = fields.get("role").to_owned();
    let place = |r: &mut Refusals, m: String| {
        r.member = Some(m);
        r.member_username.clone_from(&username);
        r.member_role.clone_from(&role_raw);
    };
    let done = match UserRole::parse(&role_raw) {
        None => Err(AppError::validation(ROLE_CHOICE)),
        Some(role) => {
            let ws = me.workspace().clone();
            users::add_member(&state, ws, &me.user, username.clone(), role).await
        }
    };
    match done {
        Ok(_) => Ok(see_other("/users?done=member")),
        Err(e) => users_page(&state, &me, refused(e, place)?, None).await,
    }
}

fn user_id(raw: &str) -> Result<UserId, WebError> {
    UserId::parse(raw).ok_or_else(|| {
        WebError::status(StatusCode::NOT_FOUND, "Not found", "There is no such user.")
    })
}

fn at_people(r: &mut Refusals, m: String) {
    r.people = Some(m);
}

async fn delete_user(
    AdminUser(me): AdminUser,
    path: web::Path<String>,
    CsrfForm(_): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let id = user_id(&path)?;
    let ws = me.workspace().clone();
    match users::delete(&state, ws, me.actor(), &me.user.id, id).await {
        Ok(()) => Ok(see_other("/users?done=deleted")),
        Err(e) => users_page(&state, &me, refused(e, at_people)?, None).await,
    }
}

/// A user's new role here; not one's own, and never a workspace's last admin's.
async fn change_role(
    AdminUser(me): AdminUser,
    path: web::Path<String>,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let id = user_id(&path)?;
    let done = match UserRole::parse(fields.get("role")) {
        None => Err(AppError::validation(ROLE_CHOICE)),
        Some(role) => {
            let ws = me.workspace().clone();
            users::change_role(&state, ws, me.actor(), &me.user.id, id, role).await
        }
    };
    match done {
        Ok(()) => Ok(see_other("/users?done=role")),
        Err(e) => users_page(&state, &me, refused(e, at_people)?, None).await,
    }
}

/// Takes a user of another workspace out of this one.
async fn remove_member(
    AdminUser(me): AdminUser,
    path: web::Path<String>,
    CsrfForm(_): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let id = user_id(&path)?;
    let ws = me.workspace().clone();
    match users::remove_member(&state, ws, me.actor(), &me.user.id, id).await {
        Ok(_) => Ok(see_other("/users?done=unmember")),
        Err(e) => users_page(&state, &me, refused(e, at_people)?, None).await,
    }
}

/// Sets a new password for a user (a forgotten one, or one's own) and ends their sessions.
#[derive(Template)]
#[template(path = "pages/user_password.html")]
struct PasswordPage {
    l: Layout,
    id: String,
    username: String,
    error: Option<String>,
}

/// The one form for a user's new password (typed twice), rather than a box on every row.
/// Only for people made in this workspace: an admin here could otherwise take over an
/// account that also reads another workspace.
async fn password_form(
    state: &AppState,
    me: &CurrentUser,
    id: &UserId,
    error: Option<String>,
) -> Result<HttpResponse, WebError> {
    let users = users::list(state, me.workspace().clone()).await?;
    let user = users
        .iter()
        .find(|u| &u.id == id && &u.workspace_id == me.workspace())
        .ok_or_else(|| {
            WebError::status(StatusCode::NOT_FOUND, "Not found", "There is no such user.")
        })?;
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(
        status,
        &PasswordPage {
            l: Layout::new(state, Some(me), "users", "New password"),
            id: id.to_string(),
            username: user.username.clone(),
            error,
        },
    )
}

async fn password_page(
    AdminUser(me): AdminUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let id = user_id(&path)?;
    password_form(&state, &me, &id, None).await
}

async fn change_password(
    AdminUser(me): AdminUser,
    path: web::Path<String>,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let id = user_id(&path)?;
    let password = fields.get("password").to_owned();
    if password != fields.get("confirm") {
        let e = "The two passwords are not the same: type the new password twice.".to_owned();
        return password_form(&state, &me, &id, Some(e)).await;
    }
    let ws = me.workspace().clone();
    if let Err(e) = users::set_password(&state, ws, me.actor(), id.clone(), password).await {
        let message = refusal(e)?;
        return password_form(&state, &me, &id, Some(message)).await;
    }
    Ok(see_other("/users?done=password"))
}
