//! The subjects page (admins): find a subject's accounting of disclosures, print it or
//! download it as CSV, and erase the subject after a confirmation that names what will be
//! destroyed. Every step is a POST, so the subject (PHI) stays out of URLs and access logs;
//! each calls the same `app::subjects` use case as the API, audited the same way. A
//! confirmed erasure redirects (303) to the page, which shows its result once through the
//! session's show-once slot, so a reload erases nothing.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::{Deserialize, Serialize};

use super::auth::CsrfForm;
use super::{AdminUser, CurrentUser, Layout, UiState, WebError, fmt_time, render, see_other};
use crate::app::AppState;
use crate::app::paging::MAX_PAGE;
use crate::app::subjects::{self, DisclosureQuery};
use crate::domain::subject::Erased;
use crate::error::AppError;
use crate::security::crypto::Secret;

/// The page every step shows, and the show-once slot's key for an erasure's result.
const SUBJECTS_PAGE: &str = "/subjects";

/// An erasure's result, kept in the show-once slot (never in the URL: the subject is PHI)
/// for the GET the erasure redirects to.
#[derive(Serialize, Deserialize)]
struct ErasedNote {
    subject: String,
    events: u64,
    deliveries: u64,
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

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

/// The page; after an erasure's redirect, on its first GET only, the erased subject's
/// result and the disclosures that stay on record.
async fn page(
    AdminUser(me): AdminUser,
    query: web::Query<DoneQuery>,
    state: web::Data<AppState>,
    ui: web::Data<UiState>,
) -> Result<HttpResponse, WebError> {
    if query.done.as_deref() != Some("erased") {
        return render(StatusCode::OK, &blank(&state, &me));
    }
    let note = ui
        .once
        .take(&me, SUBJECTS_PAGE, state.clock.now_ms())
        .and_then(|kept| serde_json::from_str::<ErasedNote>(kept.expose()).ok());
    if let Some(note) = note {
        let erased = Erased {
            events: note.events,
            deliveries: note.deliveries,
        };
        return show(&state, &me, note.subject, false, Some(erased)).await;
    }
    let mut page = blank(&state, &me);
    page.l = page.l.flash(Some(
        "The subject was erased; its result was shown once. Look the subject up again to see its disclosures.".to_owned(),
    ));
    render(StatusCode::OK, &page)
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

/// Without `confirm`, shows what erasing will destroy; with it, erases and redirects to the
/// page, which shows the result once.
async fn erase(
    AdminUser(me): AdminUser,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
    ui: web::Data<UiState>,
) -> Result<HttpResponse, WebError> {
    let subject = fields.get("subject").to_owned();
    if fields.get("confirm") != "yes" {
        return show(&state, &me, subject, true, None).await;
    }
    match subjects::erase(&state, me.workspace().clone(), me.actor(), &subject).await {
        Ok(erased) => {
            let note = ErasedNote {
                subject,
                events: erased.events,
                deliveries: erased.deliveries,
            };
            let kept = serde_json::to_string(&note).map_err(|e| WebError::Internal(e.into()))?;
            ui.once
                .put(&me, SUBJECTS_PAGE, Secret::new(kept), state.clock.now_ms());
            Ok(see_other(&format!("{SUBJECTS_PAGE}?done=erased")))
        }
        Err(AppError::Refused { .. }) => show(&state, &me, subject, false, None).await,
        Err(e) => Err(e.into()),
    }
}
