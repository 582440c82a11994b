//! The subjects page (admins): find a subject's accounting of disclosures, print it or
//! download it as CSV, and erase the subject after a confirmation that names what will be
//! destroyed. Every step is a POST, so the subject (PHI) stays out of URLs and access logs;
//! each calls the same `app::subjects` use case as the API, audited the same way.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

use super::auth::CsrfForm;
use super::{AdminUser, CurrentUser, Layout, WebError, fmt_time, render};
use crate::app::AppState;
use crate::app::paging::MAX_PAGE;
use crate::app::subjects::{self, DisclosureQuery};
use crate::domain::subject::Erased;
use crate::error::AppError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/subjects")
            .route(web::get().to(page))
            .route(web::post().to(find)),
    )
    .service(web::resource("/subjects/disclosures.csv").route(web::post().to(csv)))
    .service(web::resource("/subjects/erase").route(web::post().to(erase)));
}

struct Row {
    delivery_id: String,
    event_id: String,
    event_type: String,
    rule_id: String,
    rule_name: String,
    destination: String,
    status: &'static str,
    first_attempt_at: String,
    succeeded_at: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/subjects.html")]
struct SubjectsPage {
    l: Layout,
    /// The subject looked up, as typed (empty before a lookup).
    subject: String,
    /// None before a lookup.
    rows: Option<Vec<Row>>,
    /// The list shows the first `MAX_PAGE`; the CSV has them all.
    more: bool,
    /// Asking to erase: the confirmation is shown.
    confirm: bool,
    erased: Option<Erased>,
    error: Option<String>,
}

fn blank(state: &AppState, me: &CurrentUser) -> SubjectsPage {
    SubjectsPage {
        l: Layout::new(state, Some(me), "subjects", "Subjects"),
        subject: String::new(),
        rows: None,
        more: false,
        confirm: false,
        erased: None,
        error: None,
    }
}

async fn page(
    AdminUser(me): AdminUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    render(StatusCode::OK, &blank(&state, &me))
}

/// The page for `subject` with its disclosures, or with why it was refused.
async fn show(
    state: &AppState,
    me: &CurrentUser,
    subject: String,
    confirm: bool,
    erased: Option<Erased>,
) -> Result<HttpResponse, WebError> {
    let query = DisclosureQuery {
        subject: &subject,
        limit: MAX_PAGE,
        ..DisclosureQuery::default()
    };
    let mut page = blank(state, me);
    let status =
        match subjects::disclosures(state, me.workspace().clone(), me.actor(), &query).await {
            Ok((found, next)) => {
                page.rows = Some(
                    found
                        .iter()
                        .map(|d| Row {
                            delivery_id: d.delivery_id.to_string(),
                            event_id: d.event_id.to_string(),
                            event_type: d.event_type.to_string(),
                            rule_id: d.rule_id.to_string(),
                            rule_name: d.rule_name.clone(),
                            destination: d.destination.clone(),
                            status: d.status.as_str(),
                            first_attempt_at: fmt_time(d.first_attempt_at),
                            succeeded_at: d.succeeded_at.map(fmt_time),
                        })
                        .collect(),
                );
                page.more = next.is_some();
                page.confirm = confirm;
                StatusCode::OK
            }
            Err(AppError::Refused { message, .. }) => {
                page.error = Some(message);
                StatusCode::BAD_REQUEST
            }
            Err(e) => return Err(e.into()),
        };
    page.subject = subject;
    page.erased = erased;
    render(status, &page)
}

async fn find(
    AdminUser(me): AdminUser,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let subject = fields.get("subject").to_owned();
    show(&state, &me, subject, false, None).await
}

async fn csv(
    AdminUser(me): AdminUser,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let subject = fields.get("subject").to_owned();
    let query = DisclosureQuery {
        subject: &subject,
        ..DisclosureQuery::default()
    };
    match subjects::disclosures_csv(&state, me.workspace().clone(), me.actor(), &query).await {
        Ok(body) => Ok(HttpResponse::Ok()
            .content_type("text/csv; charset=utf-8")
            .insert_header((
                "Content-Disposition",
                "attachment; filename=\"disclosures.csv\"",
            ))
            .body(body)),
        Err(AppError::Refused { .. }) => show(&state, &me, subject, false, None).await,
        Err(e) => Err(e.into()),
    }
}

/// Without `confirm`, shows what erasing will destroy; with it, erases.
async fn erase(
    AdminUser(me): AdminUser,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let subject = fields.get("subject").to_owned();
    if fields.get("confirm") != "yes" {
        return show(&state, &me, subject, true, None).await;
    }
    match subjects::erase(&state, me.workspace().clone(), me.actor(), &subject).await {
        Ok(erased) => show(&state, &me, subject, false, Some(erased)).await,
        Err(AppError::Refused { .. }) => show(&state, &me, subject, false, None).await,
        Err(e) => Err(e.into()),
    }
}
