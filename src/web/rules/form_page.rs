//! The rule form's pages and posts: the new and edit forms, and their saves, which answer
//! with a redirect (303) or with the form again, every refused field marked at once. The
//! form's values and how they become a rule's input are `form.rs`.

use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

use crate::app::rules as rule_cases;
use crate::app::{AppState, catalog, rule_versions};
use crate::domain::catalog::Entry;
use crate::domain::rule::{FieldError, ReceiverAuth, Rule, RuleInput, RuleSpec};
use crate::error::AppError;
use crate::web::auth::CsrfForm;
use crate::web::{EditorUser, Layout, WebError, ok, render, see_other};

use super::field_words::{FORM_ORDER, anchor, condition_message, expression_message, field_label};
use super::form::RuleForm;
use super::from_catalog::{Pick, SampleHelp, picks, sample_help};
use super::rule_id;

#[derive(Template)]
#[template(path = "pages/rule_form.html")]
struct RuleFormPage {
    l: Layout,
    /// None for a new rule.
    rule_id: Option<String>,
    f: RuleForm,
    /// The catalog's types and families, ticked where the rule has them.
    picks: Vec<Pick>,
    /// The rule's patterns that are not in the checklist, for the text box.
    typed_events: String,
    /// Condition and template examples from the first event type's sample, if it has one.
    sample: Option<SampleHelp>,
    /// Every field that was refused, in form order, with its field's label and input id.
    errors: Vec<(FieldError, &'static str, &'static str)>,
    header_rows: Vec<(String, String)>,
    /// (name, stored) — stored ones show a masked placeholder and keep their value if blank.
    secret_rows: Vec<(String, bool)>,
    /// Whether a client certificate key is stored (a blank key field keeps it).
    client_key_stored: bool,
    /// Whether an OAuth 2 client secret, or signing key, is stored (blank keeps it).
    client_secret_stored: bool,
    private_key_stored: bool,
}

impl RuleFormPage {
    fn new(
        l: Layout,
        rule_id: Option<String>,
        f: RuleForm,
        errors: Vec<FieldError>,
        existing: Option<&Rule>,
        catalog: &[Entry],
    ) -> Self {
        let patterns: Vec<&str> = f
            .events
            .split(['\n', ','])
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect();
        let picks = picks(catalog, &patterns);
        let typed_events = patterns
            .iter()
            .filter(|p| !picks.iter().any(|k| k.pattern == **p))
            .copied()
            .collect::<Vec<_>>()
            .join("\n");
        let sample = patterns
            .first()
            .and_then(|first| sample_help(catalog, first));
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
                } else if e.field == "ordering_key" {
                    e.message = expression_message(&e.message, "ordering key");
                }
                let (label, anchor) = (field_label(&e.field), anchor(&e.field));
                (e, label, anchor)
            })
            .collect();
        Self {
            l,
            rule_id,
            f,
            picks,
            typed_events,
            sample,
            errors,
            header_rows,
            secret_rows,
            client_key_stored: existing
                .is_some_and(|r| r.webhook.auth.client_cert_expires_at().is_some()),
            client_secret_stored: existing.is_some_and(|r| {
                matches!(
                    &r.webhook.auth,
                    ReceiverAuth::OAuth2 {
                        client_secret: Some(_),
                        ..
                    }
                )
            }),
            private_key_stored: existing.is_some_and(|r| {
                matches!(
                    &r.webhook.auth,
                    ReceiverAuth::OAuth2 {
                        private_key: Some(_),
                        ..
                    }
                )
            }),
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
pub(super) struct NewQuery {
    trigger: Option<String>,
}

pub(super) async fn new_form(
    EditorUser(me): EditorUser,
    query: web::Query<NewQuery>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let mut form = RuleForm::default();
    // "New routine" opens the same form with the schedule trigger chosen.
    if query.trigger.as_deref() == Some("schedule") {
        form.trigger_type = "schedule".into();
    }
    let known = catalog::list(&state, me.workspace().clone()).await?;
    let page = RuleFormPage::new(
        Layout::new(&state, Some(&me), "rules", "New rule"),
        None,
        form,
        Vec::new(),
        None,
        &known,
    );
    ok(&page)
}

pub(super) async fn create(
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
    let known = catalog::list(&state, me.workspace().clone()).await?;
    render(
        StatusCode::BAD_REQUEST,
        &RuleFormPage::new(
            Layout::new(&state, Some(&me), "rules", "New rule"),
            None,
            form,
            errors,
            None,
            &known,
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

pub(super) async fn edit_form(
    EditorUser(me): EditorUser,
    path: web::Path<String>,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let (live, draft) =
        rule_versions::draft_if_any(&state, me.workspace(), rule_id(&path)?).await?;
    // Editing a rule with a draft goes on from the draft.
    let base = draft.map_or(live, |d| d.rule);
    let known = catalog::list(&state, me.workspace().clone()).await?;
    let page = RuleFormPage::new(
        Layout::new(&state, Some(&me), "rules", &format!("Edit {}", base.name)),
        Some(base.id.to_string()),
        RuleForm::from_rule(&base),
        Vec::new(),
        Some(&base),
        &known,
    );
    ok(&page)
}

/// Saves the form as the rule's draft (SPEC §14): nothing live changes; the draft page shows
/// what publishing it would change.
pub(super) async fn update(
    EditorUser(me): EditorUser,
    path: web::Path<String>,
    CsrfForm(fields): CsrfForm,
    state: web::Data<AppState>,
) -> Result<HttpResponse, WebError> {
    let (live, draft) =
        rule_versions::draft_if_any(&state, me.workspace(), rule_id(&path)?).await?;
    let base = draft.map_or_else(|| live.clone(), |d| d.rule);
    let form = RuleForm::from_fields(&fields);
    let errors = match check_form(&state, &me, &form, Some(&base)).await? {
        Ok(spec) => {
            let saved = rule_versions::save_draft_spec(
                &state,
                me.workspace(),
                me.actor(),
                live,
                base.clone(),
                spec,
            )
            .await;
            match saved {
                Ok(view) => {
                    return Ok(see_other(&format!(
                        "/rules/{}/draft?done=draft",
                        view.live.id
                    )));
                }
                Err(e) => vec![refused_at_field(e)?],
            }
        }
        Err(errors) => errors,
    };
    let known = catalog::list(&state, me.workspace().clone()).await?;
    render(
        StatusCode::BAD_REQUEST,
        &RuleFormPage::new(
            Layout::new(&state, Some(&me), "rules", &format!("Edit {}", base.name)),
            Some(base.id.to_string()),
            form,
            errors,
            Some(&base),
            &known,
        ),
    )
}

/// Checks a posted form in one pass: the form's own errors, every field `validate_all`
/// refuses and, when the body template is the only thing in doubt or others fail too, its
/// check against the catalog's samples, so one answer shows every error at once. Saves
/// nothing; answers the spec to save when nothing failed.
async fn check_form(
    state: &AppState,
    me: &crate::web::CurrentUser,
    form: &RuleForm,
    existing: Option<&Rule>,
) -> Result<Result<RuleSpec, Vec<FieldError>>, WebError> {
    let (input, mut errors) = form.to_input(existing);
    let probe = input.clone();
    match input.validate_all(&state.policy, existing) {
        Ok(spec) => match rule_cases::check_credentials(state, &spec, existing) {
            Ok(()) if errors.is_empty() => return Ok(Ok(spec)),
            Ok(()) => {}
            Err(e) => errors.push(e),
        },
        // The form has one box for every redacted path; each message names its path.
        Err(found) => errors.extend(found.into_iter().map(|mut e| {
            if e.field.starts_with("log.redact[") {
                "log.redact".clone_into(&mut e.field);
            }
            e
        })),
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
