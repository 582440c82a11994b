//! Rule pages: the list with status badges, the detail page with secret reveal and rotation,
//! activation, preview, test event and history, and routines. The create/edit form is in
//! form.rs.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::Value;

use super::auth::CsrfForm;
use super::deliveries::{DeliveryRow, delivery_rows};
use super::{AnyUser, EditorUser, Layout, UiState, WebError, fmt_time, ok, see_other};
use crate::app::rules::{self as rule_cases, Verifier, editable_json, load};
use crate::app::samples::{self, SampleRequest};
use crate::app::{AppState, deliveries};
use crate::domain::ids::RuleId;
use crate::domain::pattern::Pattern;
use crate::domain::rule::{Rule, RuleInput, Signing, Trigger};
use crate::domain::schedule::describe as describe_schedule;
use crate::security::crypto::Secret;
use crate::store::DeliveryFilter;

mod field_words;
mod form;
mod form_page;
mod from_catalog;
mod versions;

use form::{pairs, text};
use form_page::{create, edit_form, new_form, update};

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(web::resource("/rules").route(web::get().to(list)))
        .service(web::resource("/routines").route(web::get().to(routines)))
        .service(
            web::resource("/rules/new")
                .route(web::get().to(new_form))
                .route(web::post().to(create)),
        )
        .service(web::resource("/rules/{id}").route(web::get().to(detail)))
        .service(
            web::resource("/rules/{id}/edit")
                .route(web::get().to(edit_form))
                .route(web::post().to(update)),
        )
        .service(web::resource("/rules/{id}/active").route(web::post().to(set_active)))
        .service(web::resource("/rules/{id}/delete").route(web::post().to(remove)))
        .service(web::resource("/rules/{id}/secret").route(web::post().to(reveal)))
        .service(web::resource("/rules/{id}/rotate").route(web::post().to(rotate)))
        .service(web::resource("/rules/{id}/preview").route(web::get().to(preview)))
        .service(web::resource("/rules/{id}/test").route(web::post().to(test)))
        .service(
            web::resource("/rules/{id}/redeliver-failed").route(web::post().to(redeliver_failed)),
        )
        .service(web::resource("/rules/{id}/draft").route(web::get().to(versions::draft_page)))
        .service(
            web::resource("/rules/{id}/draft/publish").route(web::post().to(versions::publish)),
        )
        .service(
            web::resource("/rules/{id}/draft/discard").route(web::post().to(versions::discard)),
        )
        .service(web::resource("/rules/{id}/draft/test").route(web::post().to(versions::test)))
        .service(web::resource("/rules/{id}/versions").route(web::get().to(versions::versions)))
        .service(
            web::resource("/rules/{id}/versions/{n}/restore")
                .route(web::post().to(versions::restore)),
        );
}

fn rule_id(raw: &str) -> Result<RuleId, WebError> {
    RuleId::parse(raw).ok_or_else(|| {
        WebError::status(
            StatusCode::NOT_FOUND,
            "Not found",
            format!("There is no rule {raw:?}."),
        )
    })
}

/// A rule's status word for badges: `active`, `inactive` or `webhook_url_blocked`.
fn status_word(rule: &Rule, state: &AppState) -> String {
    serde_json::to_value(rule.status(&state.policy))
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned))
        .unwrap_or_default()
}

/// What triggers a rule, in words.
/// A routine's schedule in words, such as `Weekdays at 09:00 (America/New_York)`; None
/// for event rules and for expressions `schedule::describe` leaves as they are.
fn schedule_words(rule: &Rule) -> Option<String> {
    match &rule.trigger {
        Trigger::Schedule { cron, timezone } => {
            describe_schedule(cron).map(|words| format!("{words} ({timezone})"))
        }
        Trigger::Event { .. } => None,
    }
}

fn trigger_label(rule: &Rule) -> String {
    match &rule.trigger {
        Trigger::Event { events } => {
            let events: Vec<&str> = events.iter().map(Pattern::as_str).collect();
            format!("events: {}", events.join(", "))
        }
        Trigger::Schedule { cron, timezone } => format!("schedule: {cron} ({timezone})"),
    }
}

/// When a routine fires next, readable; empty for event rules and inactive routines.
/// In the routine's own zone, labelled with it: `09:00 America/New_York` is what the admin
/// wrote in the cron expression.
fn next_runs(rule: &Rule, state: &AppState, n: usize) -> Vec<String> {
    let schedule = rule.trigger.schedule();
    rule.next_runs(state.clock.now_ms(), n)
        .into_iter()
        .map(|at| {
            schedule
                .as_ref()
                .and_then(|s| s.wall_text(at))
                .unwrap_or_else(|| fmt_time(at))
        })
        .collect()
}

struct RuleRow {
    id: String,
    name: String,
    trigger: String,
    url: String,
    status: String,
    failing_since: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/rules.html")]
struct RulesPage {
    l: Layout,
    rows: Vec<RuleRow>,
    /// What to do first, shown while there are no rules.
    steps: super::NextSteps,
}

async fn list(
    AnyUser(me): AnyUser,
    query: web::Query<DoneQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let mut rules = rule_cases::list(&state, me.workspace().clone()).await?;
    let failing = rule_cases::failing_since(&state).await?;
    rules.sort_by_key(|r| r.name.to_lowercase());
    let rows = rules
        .iter()
        .map(|r| RuleRow {
            id: r.id.to_string(),
            name: r.name.clone(),
            trigger: trigger_label(r),
            url: r.webhook.url.clone(),
            status: status_word(r, &state),
            failing_since: failing.get(&r.id).map(|&at| fmt_time(at)),
        })
        .collect();
    let steps = super::NextSteps::of(&state, me.workspace(), &rules).await?;
    ok(&RulesPage {
        l: Layout::new(&state, Some(&me), "rules", "Rules")
            .flash(done_message(query.done.as_deref())),
        rows,
        steps,
    })
}

/// Turns a rule on or off: the stored rule with `active` changed, through the same
/// validation and update as an API PATCH `{"active": …}`.
async fn set_active(
    EditorUser(me): EditorUser,
    path: web::Path<String>,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let existing = load(&state, me.workspace().clone(), rule_id(&path)?).await?;
    let active = fields.get("active") == "true";
    let mut v = editable_json(&existing);
    v["active"] = Value::Bool(active);
    let input: RuleInput = serde_json::from_value(v).map_err(|e| WebError::Internal(e.into()))?;
    let spec = input
        .validate(&state.policy, Some(&existing))
        .map_err(|e| WebError::bad_request(e.to_string()))?;
    let rule = rule_cases::update(&state, me.workspace(), me.actor(), existing, spec).await?;
    let done = if active { "activated" } else { "deactivated" };
    Ok(see_other(&format!("/rules/{}?done={done}", rule.id)))
}

async fn remove(
    EditorUser(me): EditorUser,
    path: web::Path<String>,
    CsrfForm(_): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    rule_cases::delete(&state, me.workspace(), me.actor(), rule_id(&path)?).await?;
    Ok(see_other("/rules?done=deleted"))
}

struct RuleView {
    id: String,
    name: String,
    description: String,
    status: String,
    status_reason: Option<String>,
    active: bool,
    trigger: String,
    condition: Option<String>,
    ordering_key: Option<String>,
    url: String,
    method: String,
    content_type: String,
    headers: Vec<(String, String)>,
    secret_header_names: Vec<String>,
    signing: String,
    payload_format: String,
    body_template: Option<String>,
    tls_verify: bool,
    /// The timeout in seconds, as the form takes it.
    timeout: String,
    max_concurrency: u32,
    /// What the delivery log keeps, in words.
    log: String,
    secret_hint: String,
    /// The current public key of an ed25519 rule: not secret, so always shown.
    public_key: Option<String>,
    /// When the rule's TLS client certificate expires, and a warning once it is near.
    client_cert_expires: Option<String>,
    client_cert_warning: Option<String>,
    created: String,
    updated: String,
    failing_since: Option<String>,
    /// A routine's next five fire times.
    next_runs: Vec<String>,
    /// A routine's schedule in words with its zone, when it has a common shape.
    schedule_words: Option<String>,
}

impl RuleView {
    fn new(rule: &Rule, state: &AppState, failing_since: Option<i64>) -> Self {
        let w = editable_json(rule);
        Self {
            id: rule.id.to_string(),
            name: rule.name.clone(),
            description: rule.description.clone(),
            status: status_word(rule, state),
            status_reason: rule
                .status_reason
                .clone()
                .or_else(|| rule.url_problem(&state.policy).map(|p| p.to_string())),
            active: rule.active,
            trigger: trigger_label(rule),
            condition: w["condition"].as_str().map(str::to_owned),
            ordering_key: w["ordering_key"].as_str().map(str::to_owned),
            url: rule.webhook.url.clone(),
            method: rule.webhook.method.as_str().to_owned(),
            content_type: rule.webhook.content_type.clone(),
            headers: rule
                .webhook
                .headers
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
            secret_header_names: rule.webhook.secret_headers.keys().cloned().collect(),
            signing: text(&w["webhook"]["signing"]),
            payload_format: text(&w["webhook"]["payload_format"]),
            body_template: rule.webhook.body_template.clone(),
            tls_verify: rule.webhook.tls_verify,
            timeout: form::seconds(u64::from(rule.webhook.timeout_ms)),
            max_concurrency: rule.max_concurrency,
            log: log_in_words(&rule.log),
            secret_hint: rule.secret_hint().to_owned(),
            client_cert_expires: rule.webhook.auth.client_cert_expires_at().map(fmt_time),
            client_cert_warning: rule
                .webhook
                .auth
                .client_cert_expires_at()
                .and_then(|at| cert_warning(at, state.clock.now_ms())),
            public_key: (rule.webhook.signing == Signing::Ed25519)
                .then(|| rule.signing_keys.first().and_then(|k| k.public_key.clone()))
                .flatten(),
            created: fmt_time(rule.created_at),
            updated: fmt_time(rule.updated_at),
            failing_since: failing_since.map(fmt_time),
            next_runs: next_runs(rule, state, 5),
            schedule_words: schedule_words(rule),
        }
    }
}

/// A rule's `log` settings as the rule page says them.
fn log_in_words(log: &crate::domain::rule::RuleLog) -> String {
    let mut parts = vec![if log.store_bodies {
        "bodies kept (if the server keeps them)".to_owned()
    } else {
        "no bodies".to_owned()
    }];
    if let Some(days) = log.retention_days {
        parts.push(format!("kept {days} days at most"));
    }
    if !log.redact.is_empty() {
        let paths: Vec<&str> = log
            .redact
            .iter()
            .map(crate::domain::data_path::DataPath::as_str)
            .collect();
        parts.push(format!("hidden: {}", paths.join(", ")));
    }
    parts.join("; ")
}

fn cert_warning(expires_at: i64, now: i64) -> Option<String> {
    if expires_at <= now {
        Some(format!(
            "The client certificate expired on {}: the receiver refuses deliveries until a renewed one is saved here.",
            fmt_time(expires_at)
        ))
    } else if expires_at - now <= crate::domain::alert::CERT_EXPIRY_WARNING_MS {
        let days = (expires_at - now) / (24 * 3600 * 1000);
        Some(format!(
            "The client certificate expires on {} (in {days} days): ask the receiver's administrator for a renewed one and save it here before then.",
            fmt_time(expires_at)
        ))
    } else {
        None
    }
}

#[derive(Template)]
#[template(path = "pages/rule.html")]
struct RulePage {
    l: Layout,
    r: RuleView,
    /// A secret to show once (after reveal or rotation); the page is never cached.
    revealed: Option<String>,
    history: Vec<DeliveryRow>,
    more_history: bool,
    /// The rule has a draft waiting to be published.
    has_draft: bool,
}

#[derive(Deserialize)]
struct DoneQuery {
    done: Option<String>,
    /// How many deliveries a bulk re-send queued.
    count: Option<usize>,
}

fn done_message(done: Option<&str>) -> Option<String> {
    let m = match done? {
        "created" => {
            "Rule created. It has its own signing secret; reveal it below to set up the receiver."
        }
        "saved" => "Changes saved.",
        "draft" => {
            "Draft saved. Nothing live changed: look at what it changes below, test it, then publish it."
        }
        "discarded" => "Draft discarded. The live rule is as it was.",
        "activated" => "Rule turned on: matching events are delivered again.",
        "deactivated" => "Rule turned off: it matches nothing until it is turned on again.",
        "deleted" => "Rule deleted. Its delivery history is kept.",
        _ => return None,
    };
    Some(m.to_owned())
}

/// Deliveries shown on a rule's page; the full, filterable log is a link away.
const HISTORY: usize = 20;

async fn rule_page(
    state: &AppState,
    me: &super::CurrentUser,
    id: RuleId,
    revealed: Option<String>,
    flash: Option<String>,
) -> Result<HttpResponse, WebError> {
    let rule = load(state, me.workspace().clone(), id.clone()).await?;
    let filter = DeliveryFilter {
        rule_id: Some(id.clone()),
        limit: HISTORY,
        ..DeliveryFilter::default()
    };
    let (page, cursor) = deliveries::list(state, me.workspace().clone(), filter).await?;
    let failing = rule_cases::failing_since(state).await?;
    let names: std::collections::HashMap<_, _> =
        std::iter::once((rule.id.clone(), rule.name.clone())).collect();
    let attempted = page
        .iter()
        .filter(|d| d.attempts > 0)
        .map(|d| d.id.clone())
        .collect();
    let latest = deliveries::latest_attempts(state, attempted).await?;
    let (_, draft) =
        crate::app::rule_versions::draft_if_any(state, me.workspace(), id.clone()).await?;
    let has_draft = draft.is_some();
    let page = RulePage {
        has_draft,
        l: Layout::new(state, Some(me), "rules", &rule.name).flash(flash),
        r: RuleView::new(&rule, state, failing.get(&rule.id).copied()),
        revealed,
        history: delivery_rows(&page, &names, &latest),
        more_history: cursor.is_some(),
    };
    ok(&page)
}

/// The page a rule's form posts send the browser back to, and the show-once slot's key.
fn rule_path(id: &RuleId) -> String {
    format!("/rules/{id}")
}

async fn detail(
    AnyUser(me): AnyUser,
    path: web::Path<String>,
    query: web::Query<DoneQuery>,
    state: web::Data<AppState>,
    ui: web::Data<UiState>,
) -> Result<HttpResponse, WebError> {
    let id = rule_id(&path)?;
    let done = query.done.as_deref();
    // A secret from the reveal or rotation that redirected here, on this first GET only.
    let revealed = match done {
        Some("revealed" | "rotated") => ui
            .once
            .take(&me, &rule_path(&id), state.clock.now_ms())
            .map(|s| s.expose().to_owned()),
        _ => None,
    };
    let overlap = humantime::format_duration(state.config.signing.rotation_overlap).to_string();
    let flash = match (done, revealed.is_some()) {
        (Some("revealed"), true) => Some(
            "This view of the signing secret is recorded in the audit log. It is shown on this visit only.".to_owned(),
        ),
        (Some("revealed"), false) => Some(
            "The signing secret was shown once and is not shown again. Reveal it again if you need it (that view is recorded too).".to_owned(),
        ),
        (Some("rotated"), true) => Some(format!(
            "New signing secret made. The previous one keeps signing alongside it for {overlap}, so update the receiver within that time."
        )),
        (Some("rotated"), false) => Some(format!(
            "The signing secret was rotated. The new one was shown once and is not shown again; reveal it if you need it. The previous one keeps signing for {overlap} after the rotation."
        )),
        (Some("rotated-key"), _) => Some(format!(
            "New key pair made: give the receiver the public key below. The previous key keeps signing alongside it for {overlap}."
        )),
        (Some("published"), _) => Some(format!(
            "Draft published: version {} is live.",
            query.count.unwrap_or(0)
        )),
        (Some("restored"), _) => Some(format!(
            "Restored: a copy of the old version is live as version {}.",
            query.count.unwrap_or(0)
        )),
        (Some("redelivered"), _) => Some(format!(
            "{} failed deliveries queued to be sent again. Reload in a moment to see how they went.",
            query.count.unwrap_or(0)
        )),
        _ => done_message(done),
    };
    rule_page(&state, &me, id, revealed, flash).await
}

/// Reveals the current secret: audited here, once; shown by the page it redirects to.
async fn reveal(
    EditorUser(me): EditorUser,
    path: web::Path<String>,
    CsrfForm(_): CsrfForm,
    state: web::Data<AppState>,
    ui: web::Data<UiState>,
) -> Result<HttpResponse, WebError> {
    let id = rule_id(&path)?;
    let page = rule_path(&id);
    match rule_cases::reveal_secret(&state, me.workspace(), me.actor(), id.clone()).await? {
        Verifier::Secret(secret) => {
            ui.once
                .put(&me, &page, Secret::new(secret), state.clock.now_ms());
            Ok(see_other(&format!("{page}?done=revealed")))
        }
        // The page shows a public key anyway.
        Verifier::PublicKey(_) => Ok(see_other(&page)),
    }
}

/// Rotates the secret; the new one is shown once by the page it redirects to, so a reload
/// there neither rotates again nor shows it again.
async fn rotate(
    EditorUser(me): EditorUser,
    path: web::Path<String>,
    CsrfForm(_): CsrfForm,
    state: web::Data<AppState>,
    ui: web::Data<UiState>,
) -> Result<HttpResponse, WebError> {
    let id = rule_id(&path)?;
    let page = rule_path(&id);
    match rule_cases::rotate_secret(&state, me.workspace(), me.actor(), id.clone()).await? {
        Verifier::Secret(secret) => {
            ui.once
                .put(&me, &page, Secret::new(secret), state.clock.now_ms());
            Ok(see_other(&format!("{page}?done=rotated")))
        }
        Verifier::PublicKey(_) => Ok(see_other(&format!("{page}?done=rotated-key"))),
    }
}

#[derive(Deserialize)]
struct PreviewQuery {
    event_type: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/preview.html")]
struct PreviewPage {
    l: Layout,
    rule_id: String,
    rule_name: String,
    event_type: String,
    method: String,
    url: String,
    /// (name, value, a note on a value that is only the preview's: the sample id).
    headers: Vec<(String, String, Option<&'static str>)>,
    body: String,
    /// The condition and what it says about the sample event, when the rule has one.
    condition: Option<(String, String)>,
    /// Why the body could not be made (a body template that fails for this sample).
    template_error: Option<String>,
}

fn sample(event_type: Option<&str>) -> SampleRequest {
    SampleRequest {
        event_type: event_type
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_owned),
        data: None,
    }
}

async fn preview(
    EditorUser(me): EditorUser,
    path: web::Path<String>,
    query: web::Query<PreviewQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let id = rule_id(&path)?;
    let rule = load(&state, me.workspace().clone(), id.clone()).await?;
    let p = samples::preview(
        &state,
        me.workspace(),
        id.clone(),
        sample(query.event_type.as_deref()),
    )
    .await?;
    let page = PreviewPage {
        l: Layout::new(&state, Some(&me), "rules", "Test event preview"),
        rule_id: id.to_string(),
        rule_name: rule.name,
        event_type: text(&p["event_type"]),
        method: text(&p["method"]),
        url: text(&p["url"]),
        headers: pairs(&p["headers"])
            .into_iter()
            .map(|(k, v)| {
                let note = id_header_note(&k);
                (k, v, note)
            })
            .collect(),
        body: pretty(&text(&p["body"])),
        condition: condition_verdict(&p["condition"]),
        template_error: p["template_error"].as_str().map(str::to_owned),
    };
    ok(&page)
}

/// A preview's delivery id header holds a made-up id; a reader copying it into a receiver's
/// test would otherwise take it for a real delivery's.
fn id_header_note(name: &str) -> Option<&'static str> {
    ["x-webhook-id", "webhook-id"]
        .iter()
        .any(|h| name.eq_ignore_ascii_case(h))
        .then_some("a sample id for this preview: each real delivery and test send gets its own, and the signature changes with it")
}

/// The preview's `condition` (`{expression, result, error}`) in words, if the rule has one.
fn condition_verdict(c: &Value) -> Option<(String, String)> {
    let expression = c["expression"].as_str()?.to_owned();
    let verdict = match (&c["result"], c["error"].as_str()) {
        (_, Some(e)) => format!("could not be evaluated for this sample: {e}"),
        (Value::Bool(true), _) => "holds for this sample: a real event like it is delivered".into(),
        (Value::Bool(false), _) => {
            "does not hold for this sample: a real event like it is not delivered (a test is sent anyway)".into()
        }
        (other, _) => format!("gave {other}"),
    };
    Some((expression, verdict))
}

/// JSON bodies indented for reading; anything else as it is.
pub fn pretty(body: &str) -> String {
    serde_json::from_str::<Value>(body)
        .ok()
        .and_then(|v| serde_json::to_string_pretty(&v).ok())
        .unwrap_or_else(|| body.to_owned())
}

async fn test(
    EditorUser(me): EditorUser,
    path: web::Path<String>,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let id = rule_id(&path)?;
    let (delivery, _) = samples::send_test(
        &state,
        me.workspace(),
        id,
        sample(Some(fields.get("event_type"))),
    )
    .await?;
    Ok(see_other(&format!("/deliveries/{}?done=test", delivery.id)))
}

/// Re-sends the rule's failed deliveries created in a time range (SPEC §5's bulk re-send).
async fn redeliver_failed(
    EditorUser(me): EditorUser,
    path: web::Path<String>,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let id = rule_id(&path)?;
    let since = super::parse_local_time(fields.get("since")).ok_or_else(|| {
        WebError::bad_request("Give the date and time to re-send failed deliveries from.")
    })?;
    let until = match fields.get("until").trim() {
        "" => state.clock.now_ms(),
        raw => super::parse_local_time(raw)
            .map(|u| u + 59_999)
            .ok_or_else(|| WebError::bad_request("The Until time is not a date and time."))?,
    };
    if since > until {
        return Err(WebError::bad_request("From must be before Until."));
    }
    let ws = me.workspace().clone();
    let reopened =
        deliveries::redeliver_failed(&state, ws, me.actor(), id.clone(), since, until).await?;
    Ok(see_other(&format!(
        "{}?done=redelivered&count={}",
        rule_path(&id),
        reopened.len()
    )))
}

struct RoutineRow {
    id: String,
    name: String,
    cron: String,
    /// The schedule in words (the zone is its own column), when it has a common shape.
    words: Option<String>,
    timezone: String,
    status: String,
    next_run: Option<String>,
}

#[derive(Template)]
#[template(path = "pages/routines.html")]
struct RoutinesPage {
    l: Layout,
    rows: Vec<RoutineRow>,
}

/// Routines: the rules whose trigger is a schedule, with when each fires next.
async fn routines(
    AnyUser(me): AnyUser,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let mut rules = rule_cases::list(&state, me.workspace().clone()).await?;
    rules.sort_by_key(|r| r.name.to_lowercase());
    let rows = rules
        .iter()
        .filter_map(|r| match &r.trigger {
            Trigger::Schedule { cron, timezone } => Some(RoutineRow {
                id: r.id.to_string(),
                name: r.name.clone(),
                cron: cron.clone(),
                words: describe_schedule(cron),
                timezone: timezone.clone(),
                status: status_word(r, &state),
                next_run: next_runs(r, &state, 1).pop(),
            }),
            Trigger::Event { .. } => None,
        })
        .collect();
    ok(&RoutinesPage {
        l: Layout::new(&state, Some(&me), "routines", "Routines"),
        rows,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn condition_verdicts_in_words() {
        let v = serde_json::json!({"expression": "data.x == 1", "result": false, "error": null});
        let (e, verdict) = condition_verdict(&v).unwrap();
        assert_eq!(e, "data.x == 1");
        assert!(verdict.starts_with("does not hold"));
        let v = serde_json::json!({"expression": "data.x", "result": null, "error": "no such key"});
        assert!(condition_verdict(&v).unwrap().1.contains("no such key"));
        assert!(condition_verdict(&Value::Null).is_none());
    }
}
