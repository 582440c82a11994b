//! What is wrong now (`GET /api/v1/alerts`, the UI's banner and the dashboard's list), and
//! the test mail. The monitor (`crate::alerts`) knows the failing episodes and readiness
//! problems; rules tidings turned off are read from the rules themselves, so the alert stays
//! until an admin turns the rule on again or deletes it.

use super::{AppState, blocking};
use crate::alerts::mail::{Mail, compose_test};
use crate::domain::alert::Episode;
use crate::domain::ids::WorkspaceId;
use crate::domain::system::{
    DISPATCHER_STALLED, RULE_CERT_EXPIRING, RULE_DEACTIVATED, RULE_FAILING, RuleRef,
    STORE_WRITE_FAILED,
};
use crate::domain::time::to_rfc3339;
use crate::error::{AppError, Code};
use crate::store::StoreError;

/// One thing that is wrong now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenAlert {
    /// The system event type that announced it, e.g. `tidings:rule.failing`.
    pub kind: &'static str,
    /// The rule concerned; None for the dispatcher and the store.
    pub rule: Option<RuleRef>,
    pub since: i64,
    /// In plain words.
    pub detail: String,
}

/// What is wrong now for a workspace, oldest first: its failing and turned-off rules, and
/// readiness problems (which concern every workspace). From memory only (the monitor and the
/// rule cache), so every page can show it without a store read.
pub fn open(state: &AppState, workspace: &WorkspaceId) -> Vec<OpenAlert> {
    let known = state.alerts.known();
    let ours = |id| {
        state
            .store
            .cached_rule(id)
            .filter(|r| &r.workspace_id == workspace)
    };
    let mut out = Vec::new();
    for (id, alert_state) in &known.rules {
        let Some(episode) = alert_state
            .episode
            .as_ref()
            .filter(|e| e.alerted_at.is_some())
        else {
            continue;
        };
        if let Some(rule) = ours(id).filter(|r| r.active) {
            out.push(OpenAlert {
                kind: RULE_FAILING,
                rule: Some(rule_ref(&rule)),
                since: episode.since,
                detail: failing_detail(episode),
            });
        }
    }
    for (id, alert_state) in &known.rules {
        let Some(cert) = &alert_state.cert_expiring else {
            continue;
        };
        // Still the announced certificate (a renewed one ends it at the monitor's next look).
        let Some(rule) = ours(id).filter(|r| {
            r.active && r.webhook.auth.client_cert_expires_at() == Some(cert.expires_at)
        }) else {
            continue;
        };
        out.push(OpenAlert {
            kind: RULE_CERT_EXPIRING,
            rule: Some(rule_ref(&rule)),
            since: cert.alerted_at,
            detail: format!(
                "its client certificate expires on {}: save a renewed one on the rule's page",
                to_rfc3339(cert.expires_at)
            ),
        });
    }
    for id in &known.deactivated {
        // Turned on again by an admin, or deleted: no longer wrong.
        let Some(rule) = ours(id).filter(|r| !r.active) else {
            continue;
        };
        if let Some(reason) = &rule.status_reason {
            out.push(OpenAlert {
                kind: RULE_DEACTIVATED,
                rule: Some(rule_ref(&rule)),
                since: rule.updated_at,
                detail: reason.clone(),
            });
        }
    }
    for (kind, outage) in [
        (DISPATCHER_STALLED, &known.stalled),
        (STORE_WRITE_FAILED, &known.write_failed),
    ] {
        if let Some(outage) = outage {
            out.push(OpenAlert {
                kind,
                rule: None,
                since: outage.since,
                detail: outage.detail.clone(),
            });
        }
    }
    out.sort_by(|a, b| (a.since, a.kind).cmp(&(b.since, b.kind)));
    out
}

/// A one-line title of an alert, for the banner and the dashboard.
pub fn headline(alert: &OpenAlert) -> String {
    let name = alert.rule.as_ref().map_or("", |r| r.name.as_str());
    match alert.kind {
        RULE_FAILING => format!("Rule \"{name}\" is failing"),
        RULE_DEACTIVATED => format!("Rule \"{name}\" was turned off by tidings"),
        RULE_CERT_EXPIRING => format!("Rule \"{name}\": its client certificate expires soon"),
        DISPATCHER_STALLED => "Webhooks are not going out".to_owned(),
        _ => "tidings cannot save to its database".to_owned(),
    }
}

fn rule_ref(rule: &crate::domain::rule::Rule) -> RuleRef {
    RuleRef {
        id: rule.id.as_str().to_owned(),
        name: rule.name.clone(),
    }
}

fn failing_detail(episode: &Episode) -> String {
    let last = match (episode.last_status_code, episode.last_error_kind) {
        (Some(code), _) => format!("the receiver answered HTTP {code}"),
        (None, Some(kind)) => kind.hint().to_owned(),
        (None, None) => "no answer".to_owned(),
    };
    format!(
        "{} attempts in a row failed; the last: {last}",
        episode.failed_attempts
    )
}

/// Sends the test mail to everyone alert mail goes to; returns who that is.
pub async fn send_test_email(
    state: &AppState,
    workspace: WorkspaceId,
    requested_by: String,
) -> Result<Vec<String>, AppError> {
    let Some(mailer) = state.alerts.mailer().cloned() else {
        return Err(AppError::conflict(
            "alert mail is off: set alerts.email.smtp_url and alerts.email.from in the config file, then restart tidings",
        ));
    };
    let alerts = std::sync::Arc::clone(&state.alerts);
    let to = blocking(move || Ok::<_, StoreError>(alerts.recipients(&workspace))).await?;
    if to.is_empty() {
        return Err(AppError::conflict(
            "nobody gets alert mail yet: list addresses in alerts.email.to, or opt in on your account page",
        ));
    }
    let (subject, body) = compose_test(state.alerts.ui(), &requested_by);
    let mail = Mail {
        to: to.clone(),
        subject,
        body,
    };
    // SMTP is a blocking conversation of several round trips.
    tokio::task::spawn_blocking(move || mailer.send(&mail))
        .await?
        .map_err(|e| AppError::new(Code::MailFailed, e.0))?;
    Ok(to)
}
