//! The event catalog page: every type the workspace knows with its sample, and a form to
//! declare one (editors and admins), through the same checks and store call as the API.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::Value;

use super::auth::CsrfForm;
use super::{AnyUser, EditorUser, Layout, WebError, fmt_time, render, see_other};
use crate::app::{AppState, catalog};
use crate::error::AppError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::resource("/event-types")
            .route(web::get().to(page))
            .route(web::post().to(declare)),
    );
}

struct TypeRow {
    name: String,
    description: String,
    sources: String,
    last_seen: Option<String>,
    sample: String,
    /// Where the sample comes from, in words.
    sample_from: &'static str,
    subject_path: Option<String>,
    /// Why the latest event that needed the subject path got no subject, and when.
    subject_missing: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/catalog.html")]
struct CatalogPage {
    l: Layout,
    rows: Vec<TypeRow>,
    /// The declaration form as typed, and why it was refused.
    name: String,
    description: String,
    sample: String,
    subject_path: String,
    error: Option<String>,
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
}

async fn show(
    state: &AppState,
    me: &super::CurrentUser,
    form: (String, String, String, String),
    error: Option<String>,
    flash: Option<String>,
) -> Result<HttpResponse, WebError> {
    let entries = catalog::list(state, me.workspace().clone()).await?;
    let rows = entries
        .iter()
        .map(|e| TypeRow {
            name: e.name.to_string(),
            description: e.description.clone(),
            sources: e.sources.join(", "),
            last_seen: e.last_seen_at.map(fmt_time),
            sample: serde_json::to_string_pretty(&e.sample).unwrap_or_default(),
            sample_from: match e.sample_from {
                "declared" => "Declared sample.",
                "seen" => "The shape of the events received, with every value replaced by a placeholder of its type: no real data.",
                "builtin" => "Built-in sample (invented data).",
                _ => "Nothing is known about this type's data yet.",
            },
            subject_path: e.subject_path.as_ref().map(|p| p.as_str().to_owned()),
            subject_missing: e
                .subject_missing
                .as_ref()
                .map(|(reason, at)| format!("{} ({reason})", fmt_time(*at))),
        })
        .collect();
    let status = if error.is_some() {
        StatusCode::BAD_REQUEST
    } else {
        StatusCode::OK
    };
    let (name, description, sample, subject_path) = form;
    render(
        status,
        &CatalogPage {
            l: Layout::new(state, Some(me), "catalog", "Event types").flash(flash),
            rows,
            name,
            description,
            sample,
            subject_path,
            error,
        },
    )
}

async fn page(
    AnyUser(me): AnyUser,
    query: web::Query<DoneQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let flash = (query.done.as_deref() == Some("declared")).then(|| {
        "Event type saved. Test events, previews and template checks now use its sample.".to_owned()
    });
    show(&state, &me, Default::default(), None, flash).await
}

async fn declare(
    EditorUser(me): EditorUser,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let form = (
        fields.get("name").trim().to_owned(),
        fields.get("description").to_owned(),
        fields.get("sample").to_owned(),
        fields.get("subject_path").trim().to_owned(),
    );
    let sample = if form.2.trim().is_empty() {
        Ok(None)
    } else {
        serde_json::from_str::<Value>(&form.2)
            .map(Some)
            .map_err(|e| format!("The sample is not valid JSON: {e}"))
    };
    let checked = sample.and_then(|sample| {
        catalog::declaration(&state, &form.0, Some(form.1.clone()), sample, Some(&form.3))
            .map_err(|e| refusal(&e))
    });
    let (name, declared) = match checked {
        Ok(ok) => ok,
        Err(message) => return show(&state, &me, form, Some(message), None).await,
    };
    catalog::declare(&state, me.workspace(), me.actor(), name, declared).await?;
    Ok(see_other("/event-types?done=declared"))
}

/// The message of a refused declaration, for the form.
fn refusal(e: &AppError) -> String {
    match e {
        AppError::Refused { message, .. } => message.clone(),
        AppError::Internal(_) => "The event type could not be saved.".to_owned(),
    }
}
