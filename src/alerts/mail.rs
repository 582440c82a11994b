//! Alert mail: the small interface a mail transport offers (SMTP in `smtp.rs`), and the text
//! of each mail, written for a clinic's office manager: which rule, what is wrong in plain
//! words (the hints of the delivery page), since when, and a link. Built from the system
//! event alone, so no event data — no PHI — can reach a mail.

use crate::domain::system::SystemEvent;
use crate::domain::time::to_rfc3339;

/// One mail to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mail {
    pub to: Vec<String>,
    pub subject: String,
    pub body: String,
}

/// Why a mail did not go out, in words for the log and the test-mail answer.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct MailError(pub String);

/// A way to send mail; `Send + Sync` so the monitor and the test-mail use case share one.
pub trait Mailer: Send + Sync {
    fn send(&self, mail: &Mail) -> Result<(), MailError>;
}

/// Subject and body of the mail about `event`; `ui` is where people open tidings
/// (`public_url`), without a trailing slash.
pub fn compose(event: &SystemEvent, ui: &str) -> (String, String) {
    let rule_link = |id: &str| format!("{ui}/rules/{id}");
    match event {
        SystemEvent::RuleFailing {
            rule,
            since,
            failed_attempts,
            last_error_kind,
            last_status_code,
        } => {
            let what = match (last_error_kind, last_status_code) {
                (_, Some(code)) => format!("The receiver answered with HTTP status {code}."),
                (Some(kind), None) => kind.hint().to_owned(),
                (None, None) => "The deliveries did not succeed.".to_owned(),
            };
            let hint = last_error_kind
                .filter(|_| last_status_code.is_some())
                .map(|k| format!("\n{}\n", k.hint()))
                .unwrap_or_default();
            (
                format!("[tidings] Rule \"{}\" is failing", rule.name),
                format!(
                    "Webhooks for the rule \"{name}\" are not getting through.\n\n\
                     The last {failed_attempts} attempts to deliver them all failed, since {since}.\n\
                     {what}\n{hint}\n\
                     tidings keeps retrying; nothing is lost while it does. To see what the receiver answered:\n\
                     {link}\n\n\
                     You will get one more mail when it works again.\n",
                    name = rule.name,
                    since = to_rfc3339(*since),
                    link = rule_link(&rule.id),
                ),
            )
        }
        SystemEvent::RuleRecovered {
            rule,
            failed_since,
            recovered_at,
        } => (
            format!("[tidings] Rule \"{}\" works again", rule.name),
            format!(
                "Webhooks for the rule \"{name}\" are getting through again.\n\n\
                 They failed from {from} until {to}. Deliveries that ran out of retries in that time \
                 can be sent again from the rule's page:\n{link}\n",
                name = rule.name,
                from = to_rfc3339(*failed_since),
                to = to_rfc3339(*recovered_at),
                link = rule_link(&rule.id),
            ),
        ),
        SystemEvent::RuleDeactivated { rule, reason } => (
            format!("[tidings] Rule \"{}\" was turned off", rule.name),
            format!(
                "tidings turned the rule \"{name}\" off: no more webhooks go out for it.\n\n\
                 Why: {reason}.\n\n\
                 Once the receiver is fixed, or its new address is known, turn the rule on again on its page:\n\
                 {link}\n",
                name = rule.name,
                link = rule_link(&rule.id),
            ),
        ),
        SystemEvent::DispatcherStalled { since, detail } => (
            "[tidings] Webhooks are not going out".to_owned(),
            format!(
                "Since {since}, webhooks that are due are waiting and none is being sent ({detail}).\n\n\
                 Receivers that do not answer can hold up every sender; the dashboard shows which rules are failing:\n\
                 {ui}/\n\nIf it does not clear within a few minutes, restart tidings and tell whoever looks after it.\n",
                since = to_rfc3339(*since),
            ),
        ),
        SystemEvent::StoreWriteFailed { since, detail } => (
            "[tidings] tidings cannot save to its database".to_owned(),
            format!(
                "Since {since}, tidings cannot write to its database ({detail}). New events are refused until it can, \
                 so the systems sending them will retry.\n\n\
                 Common causes: a full disk, or the data folder's permissions. Tell whoever looks after the server: \
                 once the cause is fixed, restart tidings if this does not clear by itself (its database file \
                 refuses further writes after a failed one until it is opened again).\n\
                 {ui}/\n",
                since = to_rfc3339(*since),
            ),
        ),
        SystemEvent::RuleCertExpiring { rule, expires_at } => (
            format!(
                "[tidings] Rule \"{}\": its client certificate expires soon",
                rule.name
            ),
            format!(
                "The rule \"{name}\" signs in to its receiver with a client certificate that expires on {at}.\n\n\
                 After that the receiver refuses its webhooks. Ask the receiver's administrator for a renewed \
                 certificate and save it on the rule's page before then:\n{link}\n",
                name = rule.name,
                at = to_rfc3339(*expires_at),
                link = rule_link(&rule.id),
            ),
        ),
    }
}

/// The test mail (`POST /api/v1/alerts/test-email`, the settings page's button).
pub fn compose_test(ui: &str, requested_by: &str) -> (String, String) {
    (
        "[tidings] Test mail".to_owned(),
        format!(
            "This is a test mail from tidings, sent by {requested_by}.\n\n\
             If you can read it, tidings can tell you by mail when webhooks stop getting through.\n{ui}/\n"
        ),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::delivery::ErrorKind;
    use crate::domain::system::RuleRef;

    fn rule() -> RuleRef {
        RuleRef {
            id: "rul_1".into(),
            name: "EHR appointments".into(),
        }
    }

    #[test]
    fn a_failing_mail_says_which_rule_what_since_when_and_links() {
        let (subject, body) = compose(
            &SystemEvent::RuleFailing {
                rule: rule(),
                since: 1_795_425_600_000,
                failed_attempts: 5,
                last_error_kind: Some(ErrorKind::Timeout),
                last_status_code: None,
            },
            "https://tidings.clinic.example",
        );
        assert!(subject.starts_with("[tidings]"), "{subject}");
        assert!(subject.contains("EHR appointments"));
        assert!(body.contains("2026-11-23T09:20:00Z"), "{body}");
        assert!(body.contains(ErrorKind::Timeout.hint()), "{body}");
        assert!(body.contains("https://tidings.clinic.example/rules/rul_1"));
    }

    #[test]
    fn a_status_code_is_named_with_its_hint() {
        let (_, body) = compose(
            &SystemEvent::RuleFailing {
                rule: rule(),
                since: 0,
                failed_attempts: 5,
                last_error_kind: Some(ErrorKind::HttpStatus),
                last_status_code: Some(503),
            },
            "http://x",
        );
        assert!(body.contains("HTTP status 503"), "{body}");
        assert!(body.contains(ErrorKind::HttpStatus.hint()), "{body}");
    }

    #[test]
    fn every_kind_has_a_subject_with_the_prefix() {
        for event in [
            SystemEvent::RuleRecovered {
                rule: rule(),
                failed_since: 0,
                recovered_at: 1,
            },
            SystemEvent::RuleDeactivated {
                rule: rule(),
                reason: "410 Gone".into(),
            },
            SystemEvent::DispatcherStalled {
                since: 0,
                detail: "d".into(),
            },
            SystemEvent::StoreWriteFailed {
                since: 0,
                detail: "d".into(),
            },
            SystemEvent::RuleCertExpiring {
                rule: rule(),
                expires_at: 0,
            },
        ] {
            let (subject, body) = compose(&event, "http://x");
            assert!(subject.starts_with("[tidings] "), "{subject}");
            assert!(body.contains("http://x/"), "{body}");
        }
    }
}
