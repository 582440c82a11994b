//! A rule's draft and versions in the admin UI (SPEC §14): the edit form saves a draft
//! (form.rs); this page shows what the draft changes, tests, publishes or discards it; the
//! history lists every version with what it changed and restores one.

use actix_web::{HttpResponse, web};
use askama::Template;

use super::super::auth::CsrfForm;
use super::super::{AnyUser, EditorUser, Layout, WebError, fmt_time, ok, see_other};
use super::{rule_id, sample};
use crate::app::AppState;
use crate::app::rule_versions::{self, actor_name, changes};
use crate::domain::rule::Change;

/// One changed field as the page shows it: the path, and each side as compact JSON.
pub(super) struct ChangeRow {
    path: String,
    before: String,
    after: String,
}

fn shown(v: &serde_json::Value) -> String {
    match v {
        serde_json::Value::Null => "(none)".to_owned(),
        serde_json::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

fn rows(changes: &[Change]) -> Vec<ChangeRow> {
    changes
        .iter()
        .map(|c| ChangeRow {
            path: c.path.clone(),
            before: shown(&c.before),
            after: shown(&c.after),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "pages/rule_draft.html")]
struct DraftPage {
    l: Layout,
    rule_id: String,
    rule_name: String,
    live_version: u32,
    base_version: u32,
    saved_by: String,
    saved_at: String,
    changes: Vec<ChangeRow>,
    /// Publishing is someone else's to do (`rules.require_review`, saved by this user).
    needs_reviewer: bool,
}

#[derive(serde::Deserialize)]
pub(super) struct DraftQuery {
    done: Option<String>,
}

pub(super) async fn draft_page(
    EditorUser(me): EditorUser,
    path: web::Path<String>,
    query: web::Query<DraftQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let view = rule_versions::draft(&state, me.workspace(), rule_id(&path)?).await?;
    let needs_reviewer =
        state.config.rules.require_review && view.draft.saved_by.same_writer(&me.actor());
    ok(&DraftPage {
        l: Layout::new(
            &state,
            Some(&me),
            "rules",
            &format!("Draft of {}", view.live.name),
        )
        .flash(super::done_message(query.done.as_deref())),
        rule_id: view.live.id.to_string(),
        rule_name: view.live.name.clone(),
        live_version: view.live.version,
        base_version: view.draft.base_version,
        saved_by: actor_name(&view.draft.saved_by),
        saved_at: fmt_time(view.draft.saved_at),
        changes: rows(&view.changes),
        needs_reviewer,
    })
}

pub(super) async fn publish(
    EditorUser(me): EditorUser,
    path: web::Path<String>,
    CsrfForm(_): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let id = rule_id(&path)?;
    let v = rule_versions::publish_draft(&state, me.workspace(), me.actor(), id.clone()).await?;
    Ok(see_other(&format!(
        "/rules/{id}?done=published&count={}",
        v.version
    )))
}

pub(super) async fn discard(
    EditorUser(me): EditorUser,
    path: web::Path<String>,
    CsrfForm(_): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let id = rule_id(&path)?;
    rule_versions::discard_draft(&state, me.workspace(), me.actor(), id.clone()).await?;
    Ok(see_other(&format!("/rules/{id}?done=discarded")))
}

pub(super) async fn test(
    EditorUser(me): EditorUser,
    path: web::Path<String>,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let id = rule_id(&path)?;
    let req = sample(Some(fields.get("event_type")));
    let (delivery, _) = rule_versions::test_draft(&state, me.workspace(), id, req).await?;
    Ok(see_other(&format!("/deliveries/{}?done=test", delivery.id)))
}

struct VersionRow {
    version: u32,
    published_at: String,
    published_by: String,
    /// What it changed from the version before it (empty for the first).
    changes: Vec<ChangeRow>,
    live: bool,
}

#[derive(Template)]
#[template(path = "pages/rule_versions.html")]
struct VersionsPage {
    l: Layout,
    rule_id: String,
    rule_name: String,
    versions: Vec<VersionRow>,
}

pub(super) async fn versions(
    AnyUser(me): AnyUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let id = rule_id(&path)?;
    let live = crate::app::rules::load(&state, me.workspace().clone(), id.clone()).await?;
    let versions = rule_versions::versions(&state, me.workspace(), id).await?;
    // Newest first: each compared with the one after it in the list (the one before it).
    let rows = versions
        .iter()
        .enumerate()
        .map(|(i, v)| VersionRow {
            version: v.version,
            published_at: fmt_time(v.published_at),
            published_by: actor_name(&v.published_by),
            changes: versions
                .get(i + 1)
                .map(|older| rows(&changes(&older.rule, &v.rule)))
                .unwrap_or_default(),
            live: v.version == live.version,
        })
        .collect();
    ok(&VersionsPage {
        l: Layout::new(
            &state,
            Some(&me),
            "rules",
            &format!("Versions of {}", live.name),
        ),
        rule_id: live.id.to_string(),
        rule_name: live.name.clone(),
        versions: rows,
    })
}

pub(super) async fn restore(
    EditorUser(me): EditorUser,
    path: web::Path<(String, u32)>,
    CsrfForm(_): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let (raw, n) = path.into_inner();
    let id = rule_id(&raw)?;
    let v = rule_versions::restore(&state, me.workspace(), me.actor(), id.clone(), n).await?;
    Ok(see_other(&format!(
        "/rules/{id}?done=restored&count={}",
        v.version
    )))
}
