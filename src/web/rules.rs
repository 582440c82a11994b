//! Rule pages: list with status badges, the create/edit form (every SPEC §2 field, validated
//! by the same `RuleInput::validate` and saved by the same functions as the API), and the
//! detail page with secret reveal and rotation, activation, test event and history.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use serde_json::Value;

use super::auth::CsrfForm;
use super::deliveries::{DeliveryRow, delivery_rows};
use super::{
    AnyUser, EditorUser, Fields, Layout, UiState, WebError, fmt_time, ok, render, see_other,
};
use crate::app::rules::{self as rule_cases, editable_json, load};
use crate::app::samples::{self, SampleRequest};
use crate::app::{AppState, deliveries};
use crate::domain::ids::RuleId;
use crate::domain::pattern::Pattern;
use crate::domain::rule::{
    FieldError, MASK, Rule, RuleInput, RuleSpec, Trigger, TriggerInput, WebhookInput,
};
use crate::error::AppError;
use crate::security::crypto::Secret;
use crate::store::DeliveryFilter;

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
fn next_runs(rule: &Rule, state: &AppState, n: usize) -> Vec<String> {
    rule.next_runs(state.clock.now_ms(), n)
        .into_iter()
        .map(fmt_time)
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

/// The form's fields as typed, so a refused form comes back exactly as it was sent.
#[derive(Debug, Clone)]
pub struct RuleForm {
    name: String,
    description: String,
    active: bool,
    max_concurrency: String,
    trigger_type: String,
    events: String,
    cron: String,
    timezone: String,
    condition: String,
    url: String,
    method: String,
    content_type: String,
    headers: Vec<(String, String)>,
    /// (name, value typed); an empty value for a stored name keeps the stored value.
    secret_headers: Vec<(String, String)>,
    signing: String,
    payload_format: String,
    body_template: String,
    tls_verify: bool,
    timeout_ms: String,
}

impl Default for RuleForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            active: true,
            max_concurrency: "8".into(),
            trigger_type: "event".into(),
            events: String::new(),
            cron: String::new(),
            timezone: "UTC".into(),
            condition: String::new(),
            url: String::new(),
            method: "POST".into(),
            content_type: "application/json".into(),
            headers: Vec::new(),
            secret_headers: Vec::new(),
            signing: "hmac-sha256".into(),
            payload_format: "flat".into(),
            body_template: String::new(),
            tls_verify: true,
            timeout_ms: "10000".into(),
        }
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
        .unwrap_or_default()
}

impl RuleForm {
    /// A stored rule as the form shows it: from its editable JSON, the same shape the API's
    /// PATCH starts from, with secret header values left blank (write-only).
    fn from_rule(rule: &Rule) -> Self {
        let v = editable_json(rule);
        let t = &v["trigger"];
        let w = &v["webhook"];
        let events: Vec<String> = t["events"]
            .as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default();
        Self {
            name: text(&v["name"]),
            description: text(&v["description"]),
            active: v["active"].as_bool().unwrap_or(true),
            max_concurrency: text(&v["max_concurrency"]),
            trigger_type: t["type"].as_str().unwrap_or("event").to_owned(),
            events: events.join("\n"),
            cron: text(&t["cron"]),
            timezone: t["timezone"].as_str().unwrap_or("UTC").to_owned(),
            condition: text(&v["condition"]),
            url: text(&w["url"]),
            method: text(&w["method"]),
            content_type: text(&w["content_type"]),
            headers: pairs(&w["headers"]),
            secret_headers: pairs(&w["secret_headers"])
                .into_iter()
                .map(|(k, _)| (k, String::new()))
                .collect(),
            signing: text(&w["signing"]),
            payload_format: text(&w["payload_format"]),
            body_template: text(&w["body_template"]),
            tls_verify: w["tls_verify"].as_bool().unwrap_or(true),
            timeout_ms: text(&w["timeout_ms"]),
        }
    }

    fn from_fields(f: &Fields) -> Self {
        let rows = |names: &str, values: &str| -> Vec<(String, String)> {
            let values = f.all(values);
            f.all(names)
                .into_iter()
                .enumerate()
                .map(|(i, n)| {
                    (
                        n.trim().to_owned(),
                        values.get(i).map(|v| (*v).to_owned()).unwrap_or_default(),
                    )
                })
                .filter(|(n, v)| !n.is_empty() || !v.is_empty())
                .collect()
        };
        Self {
            name: f.get("name").to_owned(),
            description: f.get("description").to_owned(),
            active: f.has("active"),
            max_concurrency: f.get("max_concurrency").trim().to_owned(),
            trigger_type: f.get("trigger_type").to_owned(),
            events: f.get("events").to_owned(),
            cron: f.get("cron").to_owned(),
            timezone: f.get("timezone").to_owned(),
            condition: f.get("condition").to_owned(),
            url: f.get("url").to_owned(),
            method: f.get("method").to_owned(),
            content_type: f.get("content_type").to_owned(),
            headers: rows("header_name", "header_value"),
            secret_headers: rows("secret_name", "secret_value"),
            signing: f.get("signing").to_owned(),
            payload_format: f.get("payload_format").to_owned(),
            body_template: f.get("body_template").to_owned(),
            tls_verify: f.has("tls_verify"),
            timeout_ms: f.get("timeout_ms").trim().to_owned(),
        }
    }

    /// The `RuleInput` the API would get for the same rule, and what a form cannot say in
    /// JSON that is wrong (numbers, header rows): every such error, with the input left at
    /// its default there so the rest can still be checked. Every rule of SPEC §2 is checked
    /// after, by `RuleInput::validate_all`, exactly as for the API. Fields the chosen options
    /// hide (cron and time zone for an event rule, event types for a routine, the body
    /// template unless the payload format is "template") are dropped, never checked or saved.
    fn to_input(&self, existing: Option<&Rule>) -> (RuleInput, Vec<FieldError>) {
        let mut errors = Vec::new();
        let opt = |s: &str| (!s.trim().is_empty()).then(|| s.to_owned());
        let max_concurrency = self
            .max_concurrency
            .parse::<u32>()
            .map_err(|_| {
                errors.push(FieldError::new(
                    "max_concurrency",
                    "must be a whole number, such as 8",
                ));
            })
            .ok();
        let timeout_ms = self
            .timeout_ms
            .parse::<u64>()
            .map_err(|_| {
                errors.push(FieldError::new(
                    "webhook.timeout_ms",
                    "must be a whole number of milliseconds, such as 10000",
                ));
            })
            .ok();
        let (headers, secret_headers) = self.header_maps(existing, &mut errors);
        let trigger = if self.trigger_type == "schedule" {
            TriggerInput {
                kind: Some("schedule".into()),
                events: None,
                cron: opt(&self.cron),
                timezone: opt(&self.timezone),
            }
        } else {
            TriggerInput {
                kind: opt(&self.trigger_type),
                events: Some(
                    self.events
                        .split(['\n', ','])
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect(),
                ),
                cron: None,
                timezone: None,
            }
        };
        let body_template = if self.payload_format == "template" {
            opt(&self.body_template)
        } else {
            None
        };
        let input = RuleInput {
            name: Some(self.name.clone()),
            description: Some(self.description.clone()),
            active: Some(self.active),
            max_concurrency,
            trigger: Some(trigger),
            condition: opt(&self.condition),
            webhook: Some(WebhookInput {
                url: Some(self.url.clone()),
                method: opt(&self.method),
                content_type: opt(&self.content_type),
                headers: Some(headers),
                secret_headers: Some(secret_headers),
                signing: opt(&self.signing),
                payload_format: opt(&self.payload_format),
                body_template,
                tls_verify: Some(self.tls_verify),
                timeout_ms,
            }),
            ..RuleInput::default()
        };
        (input, errors)
    }
}

impl RuleForm {
    /// The header rows as the API's maps; a row with a value but no name, or a new secret
    /// header without a value, is an error (and left out).
    fn header_maps(
        &self,
        existing: Option<&Rule>,
        errors: &mut Vec<FieldError>,
    ) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let mut headers = BTreeMap::new();
        for (name, value) in &self.headers {
            if name.is_empty() {
                errors.push(FieldError::new(
                    "webhook.headers",
                    "a header row has a value but no name",
                ));
            } else {
                headers.insert(name.clone(), value.clone());
            }
        }
        let mut secret_headers = BTreeMap::new();
        for (name, value) in &self.secret_headers {
            if name.is_empty() {
                errors.push(FieldError::new(
                    "webhook.secret_headers",
                    "a secret header row has a value but no name",
                ));
                continue;
            }
            let stored = existing.is_some_and(|r| r.webhook.secret_headers.contains_key(name));
            if !value.is_empty() {
                secret_headers.insert(name.clone(), value.clone());
            } else if stored {
                // Left blank: keep the stored value, as the API does for the mask.
                secret_headers.insert(name.clone(), MASK.to_owned());
            } else {
                errors.push(FieldError::new(
                    "webhook.secret_headers",
                    format!("{name:?} needs a value"),
                ));
            }
        }
        (headers, secret_headers)
    }
}

/// The form's fields in the order the page shows them: errors are listed in this order.
const FORM_ORDER: [&str; 20] = [
    "name",
    "description",
    "trigger",
    "trigger.type",
    "trigger.events",
    "trigger.cron",
    "trigger.timezone",
    "condition",
    "webhook",
    "webhook.url",
    "webhook.method",
    "webhook.content_type",
    "webhook.headers",
    "webhook.secret_headers",
    "webhook.signing",
    "webhook.payload_format",
    "webhook.body_template",
    "webhook.timeout_ms",
    "max_concurrency",
    "webhook.tls_verify",
];

/// Checks a posted form in one pass: the form's own errors, every field `validate_all`
/// refuses and, when the body template is the only thing in doubt or others fail too, its
/// check against the catalog's samples, so one answer shows every error at once. Saves
/// nothing; answers the spec to save when nothing failed.
async fn check_form(
    state: &AppState,
    me: &super::CurrentUser,
    form: &RuleForm,
    existing: Option<&Rule>,
) -> Result<Result<RuleSpec, Vec<FieldError>>, WebError> {
    let (input, mut errors) = form.to_input(existing);
    let probe = input.clone();
    match input.validate_all(&state.policy, existing) {
        Ok(spec) if errors.is_empty() => return Ok(Ok(spec)),
        Ok(_) => {}
        Err(found) => errors.extend(found),
    }
    // The sample check needs a valid trigger and webhook; fields it does not read are
    // replaced by harmless ones so it can still run while they fail.
    let template_ok = !errors
        .iter()
        .any(|e| e.field.starts_with("trigger") || e.field.starts_with("webhook"));
    if template_ok && form.payload_format == "template" {
        let probe = RuleInput {
            name: Some("probe".into()),
            description: None,
            max_concurrency: None,
            condition: None,
            ..probe
        };
        if let Ok(spec) = probe.validate(&state.policy, existing) {
            let checked =
                rule_cases::check_template(state, me.workspace(), spec, existing.cloned()).await;
            if let Err(e) = checked {
                errors.push(refused_at_field(e)?);
            }
        }
    }
    errors.sort_by_key(|e| {
        FORM_ORDER
            .iter()
            .position(|f| *f == e.field)
            .unwrap_or(FORM_ORDER.len())
    });
    Ok(Err(errors))
}

/// Form field names for each validation field, to point at the right input.
fn field_label(field: &str) -> &'static str {
    match field {
        "name" => "Name",
        "description" => "Description",
        "max_concurrency" => "Requests at once",
        "trigger" | "trigger.type" => "Trigger",
        "trigger.events" => "Event types",
        "trigger.cron" => "Schedule (cron)",
        "trigger.timezone" => "Time zone",
        "condition" => "Condition",
        "webhook" | "webhook.url" => "URL",
        "webhook.method" => "Method",
        "webhook.content_type" => "Content type",
        "webhook.headers" => "Headers",
        "webhook.secret_headers" => "Secret headers",
        "webhook.signing" => "Signing",
        "webhook.payload_format" => "Payload format",
        "webhook.body_template" => "Body template",
        "webhook.tls_verify" => "TLS verification",
        "webhook.timeout_ms" => "Timeout",
        _ => "A field",
    }
}

#[derive(Template)]
#[template(path = "pages/rule_form.html")]
struct RuleFormPage {
    l: Layout,
    /// None for a new rule.
    rule_id: Option<String>,
    f: RuleForm,
    /// Every field that was refused, in form order, with its field's label and input id.
    errors: Vec<(FieldError, &'static str, &'static str)>,
    header_rows: Vec<(String, String)>,
    /// (name, stored) — stored ones show a masked placeholder and keep their value if blank.
    secret_rows: Vec<(String, bool)>,
}

impl RuleFormPage {
    fn new(
        l: Layout,
        rule_id: Option<String>,
        f: RuleForm,
        errors: Vec<FieldError>,
        existing: Option<&Rule>,
    ) -> Self {
        // A few blank rows, so headers can be added without JavaScript.
        let mut header_rows = f.headers.clone();
        header_rows.extend((0..2).map(|_| (String::new(), String::new())));
        let mut secret_rows: Vec<(String, bool)> = f
            .secret_headers
            .iter()
            .map(|(n, _)| {
                let stored = existing.is_some_and(|r| r.webhook.secret_headers.contains_key(n));
                (n.clone(), stored)
            })
            .collect();
        secret_rows.extend((0..2).map(|_| (String::new(), false)));
        let errors = errors
            .into_iter()
            .map(|mut e| {
                if e.field == "condition" {
                    e.message = condition_message(&e.message);
                }
                let (label, anchor) = (field_label(&e.field), Self::anchor(&e.field));
                (e, label, anchor)
            })
            .collect();
        Self {
            l,
            rule_id,
            f,
            errors,
            header_rows,
            secret_rows,
        }
    }

    /// The errors for a form field, if validation refused it (several joined). `trigger` and
    /// `webhook` (a missing whole section) are shown at the trigger type and the URL.
    fn err(&self, field: &str) -> Option<String> {
        let messages: Vec<&str> = self
            .errors
            .iter()
            .map(|(e, _, _)| e)
            .filter(|e| {
                e.field == field
                    || (field == "trigger.type" && e.field == "trigger")
                    || (field == "webhook.url" && e.field == "webhook")
            })
            .map(|e| e.message.as_str())
            .collect();
        (!messages.is_empty()).then(|| messages.join("; "))
    }

    /// The id of the input an error's link in the summary goes to.
    fn anchor(field: &str) -> &'static str {
        match field {
            "name" => "name",
            "description" => "description",
            "max_concurrency" => "max_concurrency",
            "trigger" | "trigger.type" => "trigger-event",
            "trigger.events" => "events",
            "trigger.cron" => "cron",
            "trigger.timezone" => "timezone",
            "condition" => "condition",
            "webhook.method" => "method",
            "webhook.content_type" => "content_type",
            "webhook.headers" => "header_name_1",
            "webhook.secret_headers" => "secret_name_1",
            "webhook.signing" => "signing",
            "webhook.payload_format" => "payload_format",
            "webhook.body_template" => "body_template",
            "webhook.tls_verify" => "tls_verify",
            "webhook.timeout_ms" => "timeout_ms",
            _ => "url",
        }
    }

    // askama passes template arguments by reference.
    #[allow(clippy::trivially_copy_pass_by_ref)]
    fn secret_value(&self, i: &usize) -> &str {
        self.f
            .secret_headers
            .get(*i)
            .map_or("", |(_, v)| v.as_str())
    }
}

#[derive(Deserialize)]
struct NewQuery {
    trigger: Option<String>,
}

async fn new_form(
    EditorUser(me): EditorUser,
    query: web::Query<NewQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let mut form = RuleForm::default();
    // "New routine" opens the same form with the schedule trigger chosen.
    if query.trigger.as_deref() == Some("schedule") {
        form.trigger_type = "schedule".into();
    }
    let page = RuleFormPage::new(
        Layout::new(&state, Some(&me), "rules", "New rule"),
        None,
        form,
        Vec::new(),
        None,
    );
    ok(&page)
}

async fn create(
    EditorUser(me): EditorUser,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let form = RuleForm::from_fields(&fields);
    let errors = match check_form(&state, &me, &form, None).await? {
        Ok(spec) => match rule_cases::create(&state, me.workspace(), me.actor(), spec).await {
            Ok(rule) => return Ok(see_other(&format!("/rules/{}?done=created", rule.id))),
            Err(e) => vec![refused_at_field(e)?],
        },
        Err(errors) => errors,
    };
    render(
        StatusCode::BAD_REQUEST,
        &RuleFormPage::new(
            Layout::new(&state, Some(&me), "rules", "New rule"),
            None,
            form,
            errors,
            None,
        ),
    )
}

/// A save that the shared rule functions refuse with a 400 (a check made after validation,
/// such as rendering a body template against samples) comes back in the form like a field
/// error, at the field its message names (`webhook.body_template: …`); anything else is an
/// error page.
fn refused_at_field(e: AppError) -> Result<FieldError, WebError> {
    match e {
        AppError::Refused { code, message } if code.status() == 400 => {
            Ok(match message.split_once(": ") {
                Some((field, rest)) if !field.is_empty() && !field.contains(' ') => {
                    FieldError::new(field, rest)
                }
                _ => FieldError::new("", message),
            })
        }
        other => Err(other.into()),
    }
}

async fn edit_form(
    EditorUser(me): EditorUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let rule = load(&state, me.workspace().clone(), rule_id(&path)?).await?;
    let page = RuleFormPage::new(
        Layout::new(&state, Some(&me), "rules", &format!("Edit {}", rule.name)),
        Some(rule.id.to_string()),
        RuleForm::from_rule(&rule),
        Vec::new(),
        Some(&rule),
    );
    ok(&page)
}

async fn update(
    EditorUser(me): EditorUser,
    path: web::Path<String>,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let existing = load(&state, me.workspace().clone(), rule_id(&path)?).await?;
    let form = RuleForm::from_fields(&fields);
    let errors = match check_form(&state, &me, &form, Some(&existing)).await? {
        Ok(spec) => {
            match rule_cases::update(&state, me.workspace(), me.actor(), existing.clone(), spec)
                .await
            {
                Ok(rule) => return Ok(see_other(&format!("/rules/{}?done=saved", rule.id))),
                Err(e) => vec![refused_at_field(e)?],
            }
        }
        Err(errors) => errors,
    };
    render(
        StatusCode::BAD_REQUEST,
        &RuleFormPage::new(
            Layout::new(
                &state,
                Some(&me),
                "rules",
                &format!("Edit {}", existing.name),
            ),
            Some(existing.id.to_string()),
            form,
            errors,
            Some(&existing),
        ),
    )
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
    url: String,
    method: String,
    content_type: String,
    headers: Vec<(String, String)>,
    secret_header_names: Vec<String>,
    signing: String,
    payload_format: String,
    body_template: Option<String>,
    tls_verify: bool,
    timeout_ms: u32,
    max_concurrency: u32,
    secret_hint: String,
    created: String,
    updated: String,
    failing_since: Option<String>,
    /// A routine's next five fire times.
    next_runs: Vec<String>,
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
            timeout_ms: rule.webhook.timeout_ms,
            max_concurrency: rule.max_concurrency,
            secret_hint: rule.secret_hint().to_owned(),
            created: fmt_time(rule.created_at),
            updated: fmt_time(rule.updated_at),
            failing_since: failing_since.map(fmt_time),
            next_runs: next_runs(rule, state, 5),
        }
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
    let page = RulePage {
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
    let secret = rule_cases::reveal_secret(&state, me.workspace(), me.actor(), id.clone()).await?;
    let page = rule_path(&id);
    ui.once
        .put(&me, &page, Secret::new(secret), state.clock.now_ms());
    Ok(see_other(&format!("{page}?done=revealed")))
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
    let secret = rule_cases::rotate_secret(&state, me.workspace(), me.actor(), id.clone()).await?;
    let page = rule_path(&id);
    ui.once
        .put(&me, &page, Secret::new(secret), state.clock.now_ms());
    Ok(see_other(&format!("{page}?done=rotated")))
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

/// A CEL syntax error as the form shows it: where in the expression as typed, and what was
/// found there, without the parser's list of the tokens it expected (which reads as noise to
/// the person fixing it). Any other message is shown as it is.
fn condition_message(message: &str) -> String {
    let Some(rest) = message.strip_prefix("syntax error at line:column ") else {
        return message.to_owned();
    };
    let Some((pos, detail)) = rest.split_once(": ") else {
        return message.to_owned();
    };
    let Some((line, column)) = pos.split_once(':') else {
        return message.to_owned();
    };
    let quoted = |after: &str| {
        detail
            .split_once(after)
            .and_then(|(_, s)| s.split_once('\'').map(|(t, _)| t.to_owned()))
    };
    let found = quoted("mismatched input '")
        .or_else(|| quoted("extraneous input '"))
        .or_else(|| quoted("token recognition error at: '"))
        .or_else(|| quoted("no viable alternative at input '"));
    let what = match found.as_deref() {
        Some("<EOF>") => "the expression ends before it is complete".to_owned(),
        Some(t) => format!("\u{201c}{t}\u{201d} is not expected there"),
        None => "this is not a CEL expression tidings can read".to_owned(),
    };
    let at = if line == "1" {
        format!("column {column}")
    } else {
        format!("line {line}, column {column}")
    };
    format!("a mistake at {at} of the condition: {what}")
}

#[cfg(test)]
mod tests {
    #[test]
    fn a_cel_syntax_error_points_at_the_column_without_the_token_list() {
        let raw = "syntax error at line:column 1:18: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER} | data.member.id == | .................^";
        assert_eq!(
            super::condition_message(raw),
            "a mistake at column 18 of the condition: the expression ends before it is complete"
        );
        let raw = "syntax error at line:column 2:5: Syntax error: extraneous input ')' expecting <EOF> | a) | ....^";
        assert_eq!(
            super::condition_message(raw),
            "a mistake at line 2, column 5 of the condition: \u{201c})\u{201d} is not expected there"
        );
        assert_eq!(
            super::condition_message("must be at most 2000 characters"),
            "must be at most 2000 characters"
        );
    }

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

    #[test]
    fn a_refusal_after_validation_is_shown_at_the_field_it_names() {
        let e = refused_at_field(AppError::validation(
            "webhook.body_template: rendering it with the sample ping event failed: x",
        ))
        .unwrap();
        assert_eq!(e.field, "webhook.body_template");
        assert!(e.message.starts_with("rendering it"));
        let e = refused_at_field(AppError::validation("something broad went wrong: x")).unwrap();
        assert_eq!(e.field, "");
        assert!(refused_at_field(AppError::conflict("busy")).is_err());
    }

    #[test]
    fn the_form_turns_into_the_api_input() {
        let f = Fields::parse(
            b"name=A&trigger_type=event&events=member%3A*%0D%0Aping%2C+x&url=https%3A%2F%2Fe.com&max_concurrency=8&timeout_ms=100&header_name=X-A&header_value=1&header_name=&header_value=&secret_name=K&secret_value=",
        );
        let form = RuleForm::from_fields(&f);
        assert!(
            !form.active && !form.tls_verify,
            "unchecked boxes are not sent"
        );
        let (_, errors) = form.to_input(None);
        assert_eq!(
            errors[0].field, "webhook.secret_headers",
            "a new secret header needs a value"
        );
        let f = Fields::parse(
            b"name=A&trigger_type=event&events=member%3A*%0D%0Aping%2C+x&url=https%3A%2F%2Fe.com&max_concurrency=8&timeout_ms=100&header_name=X-A&header_value=1",
        );
        let (input, errors) = RuleForm::from_fields(&f).to_input(None);
        assert!(errors.is_empty(), "{errors:?}");
        let t = input.trigger.unwrap();
        assert_eq!(t.events.unwrap(), ["member:*", "ping", "x"]);
        assert!(t.cron.is_none());
        let w = input.webhook.unwrap();
        assert_eq!(w.headers.unwrap().get("X-A").map(String::as_str), Some("1"));
        assert_eq!(w.timeout_ms, Some(100));
    }

    #[test]
    fn fields_the_chosen_options_hide_are_dropped_and_form_errors_all_collected() {
        let f = Fields::parse(
            b"name=A&trigger_type=event&events=ping&cron=*+*&timezone=Mars&url=https%3A%2F%2Fe.com&payload_format=flat&body_template=%7B%7B+x&max_concurrency=lots&timeout_ms=soon&header_name=&header_value=1",
        );
        let (input, errors) = RuleForm::from_fields(&f).to_input(None);
        let t = input.trigger.unwrap();
        assert!(
            t.cron.is_none() && t.timezone.is_none(),
            "no cron on an event rule"
        );
        let w = input.webhook.unwrap();
        assert!(
            w.body_template.is_none(),
            "no template with the flat format"
        );
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["max_concurrency", "webhook.timeout_ms", "webhook.headers"]
        );
        let f = Fields::parse(b"trigger_type=schedule&events=ping&cron=0+9+*+*+*");
        let (input, _) = RuleForm::from_fields(&f).to_input(None);
        assert!(
            input.trigger.unwrap().events.is_none(),
            "no events on a routine"
        );
    }
}
