//! The signed-in admin's own account page: whether, and where, they get alert mail.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::auth::CsrfForm;
use super::{AdminUser, CurrentUser, Layout, WebError, render, see_other};
use crate::app::{AppState, users};
use crate::error::{AppError, Code};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/account")
            .route(web::get().to(page))
            .route(web::post().to(save)),
    );
}

#[derive(Template)]
#[template(path = "pages/account.html")]
struct AccountPage {
    l: Layout,
    username: String,
    /// As stored, or as just typed when it was refused.
    alert_email: String,
    mail_on: bool,
    error: Option<String>,
}

fn account_page(
    state: &AppState,
    me: &CurrentUser,
    typed: Option<String>,
    error: Option<String>,
    flash: Option<String>,
) -> Result<HttpResponse, WebError> {
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    render(
        status,
        &AccountPage {
            l: Layout::new(state, Some(me), "", "Your account").flash(flash),
            username: me.user.username.clone(),
            alert_email: typed.unwrap_or_else(|| me.user.alert_email.clone().unwrap_or_default()),
            mail_on: state.config.alerts.email.enabled(),
            error,
        },
    )
}

#[derive(serde::Deserialize)]
struct Done {
    done: Option<String>,
}

async fn page(
    AdminUser(me): AdminUser,
    query: web::Query<Done>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let flash = match query.done.as_deref() {
        Some("on") => Some("Alert mail will come to this address.".to_owned()),
        Some("off") => Some("You will get no alert mail.".to_owned()),
        _ => None,
    };
    account_page(&state, &me, None, None, flash)
}

async fn save(
    AdminUser(me): AdminUser,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let typed = fields.get("alert_email").trim().to_owned();
    let wanted = (fields.get("alerts") == "on").then(|| typed.clone());
    let result = users::set_alert_email(
        &state,
        me.workspace().clone(),
        me.actor(),
        me.user.id.clone(),
        wanted,
    )
    .await;
    match result {
        Ok(user) if user.alert_email.is_some() => Ok(see_other("/account?done=on")),
        Ok(_) => Ok(see_other("/account?done=off")),
        Err(AppError::Refused {
            code: Code::ValidationFailed,
            message,
        }) => account_page(&state, &me, Some(typed), Some(message), None),
        Err(e) => Err(e.into()),
    }
}
