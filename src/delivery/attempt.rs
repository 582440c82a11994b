//! One attempt: build the signed request for (event, rule) — transport-neutral — send it
//! through the `Transport`, and have `outcome` judge it into the logged `Attempt` (secret
//! header values and signatures redacted) and a verdict.

use std::time::Duration;

use crate::delivery::outcome::{Judged, Record, Round, judge};
use crate::delivery::retry::RetryPolicy;
use crate::delivery::signing::{is_signature_header, signature_headers};
use crate::delivery::transport::{Failure, SendOptions, Sent, Transport};
use crate::domain::delivery::{Delivery, ErrorKind, LoggedRequest};
use crate::domain::event::Event;
use crate::domain::payload::{self, Context};
use crate::domain::rule::{MASK, ReceiverAuth, Rule, Signing};
use crate::domain::template::TemplateError;
use crate::domain::time::Clock;
use crate::security::crypto::CryptoError;
use crate::security::opened_secrets::OpenedSecrets;
use crate::security::ssrf::{AddressPolicy, UrlProblem};

/// The User-Agent every request carries.
pub fn user_agent() -> String {
    format!("tidings/{}", env!("CARGO_PKG_VERSION"))
}

/// A request ready to send: every header in clear, as it goes on the wire.
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    pub url: String,
    pub method: &'static str,
    pub headers: Vec<(String, String)>,
    /// Names of headers whose values are write-only (redacted in logs).
    pub secret_names: Vec<String>,
    pub body: Vec<u8>,
    /// What the delivery log keeps of `body` (the rule's `log.redact`).
    pub logged_body: LoggedBody,
}

/// The body as the delivery log keeps it.
#[derive(Debug, Clone)]
pub enum LoggedBody {
    /// The body as sent (the rule redacts nothing).
    AsSent,
    /// The body built again from the event with the redacted paths masked.
    Redacted(Vec<u8>),
    /// The masked event did not render (a template that cannot take `"********"` where a
    /// redacted value was): rather no body than the one with the values in it.
    Withheld,
}

/// Why no request could be built.
#[derive(Debug, thiserror::Error)]
pub enum PrepareError {
    /// The body template failed for this event: an attempt error, not retried.
    #[error("{0}")]
    Template(#[from] TemplateError),
    /// A stored secret did not decrypt: the delivery cannot be signed at all.
    #[error(transparent)]
    Crypto(#[from] CryptoError),
}

/// Builds the body and headers and signs them with every live secret at `now_ms`.
pub fn prepare(
    rule: &Rule,
    event: &Event,
    workspace_name: &str,
    delivery_id: &str,
    secrets: &OpenedSecrets,
    now_ms: i64,
) -> Result<PreparedRequest, PrepareError> {
    let context = Context {
        rule,
        workspace_name,
    };
    let body = payload::body(event, &context)?;
    let logged_body = match rule.log.redacted(&event.data) {
        None => LoggedBody::AsSent,
        Some(data) => {
            let masked = Event {
                data,
                ..event.clone()
            };
            payload::body(&masked, &context).map_or(LoggedBody::Withheld, LoggedBody::Redacted)
        }
    };
    let webhook = &rule.webhook;
    let mut headers = vec![
        ("Content-Type".to_owned(), webhook.content_type.clone()),
        ("User-Agent".to_owned(), user_agent()),
        ("X-Webhook-Id".to_owned(), delivery_id.to_owned()),
        ("X-Webhook-Event".to_owned(), event.event_type.to_string()),
    ];
    let live: Vec<_> = if webhook.signing == Signing::Ed25519 {
        rule.live_keys(now_ms).collect()
    } else {
        rule.live_secrets(now_ms).collect()
    };
    let opened = live
        .into_iter()
        .map(|s| secrets.open(&s.sealed))
        .collect::<Result<Vec<_>, _>>()?;
    let secret_strs: Vec<&str> = opened.iter().map(|s| s.expose()).collect();
    headers.extend(signature_headers(
        webhook.signing,
        &secret_strs,
        delivery_id,
        now_ms.div_euclid(1000),
        &body,
    ));
    headers.extend(webhook.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut secret_names = Vec::new();
    if matches!(webhook.auth, ReceiverAuth::OAuth2 { .. }) {
        // The transport puts the token in; logs and previews show it masked.
        headers.push(("Authorization".to_owned(), format!("Bearer {MASK}")));
    }
    for (name, sealed) in &webhook.secret_headers {
        headers.push((name.clone(), secrets.open(sealed)?.expose().to_owned()));
        secret_names.push(name.clone());
    }
    Ok(PreparedRequest {
        url: webhook.url.clone(),
        method: webhook.method.as_str(),
        headers,
        secret_names,
        body,
        logged_body,
    })
}

impl PreparedRequest {
    /// The headers with secret header values masked, and signatures too if asked.
    pub fn redacted_headers(&self, mask_signatures: bool) -> Vec<(String, String)> {
        self.headers
            .iter()
            .map(|(k, v)| {
                let secret = (mask_signatures && is_signature_header(k))
                    || self.secret_names.iter().any(|s| s.eq_ignore_ascii_case(k));
                (k.clone(), if secret { MASK.to_owned() } else { v.clone() })
            })
            .collect()
    }

    /// The request as the delivery log keeps it.
    pub fn logged(&self, store_bodies: bool) -> LoggedRequest {
        LoggedRequest {
            url: self.url.clone(),
            method: self.method.to_owned(),
            headers: self.redacted_headers(true),
            body: match &self.logged_body {
                _ if !store_bodies => None,
                LoggedBody::AsSent => Some(String::from_utf8_lossy(&self.body).into_owned()),
                LoggedBody::Redacted(body) => Some(String::from_utf8_lossy(body).into_owned()),
                LoggedBody::Withheld => None,
            },
        }
    }
}

/// What sending an attempt needs from around it: the same for every attempt a dispatcher
/// worker (or the API's test send) makes.
#[derive(Clone, Copy)]
pub struct Env<'a> {
    pub transport: &'a dyn Transport,
    pub policy: &'a AddressPolicy,
    pub retry: &'a RetryPolicy,
    pub clock: &'a Clock,
    /// `logs.store_bodies`.
    pub store_bodies: bool,
}

impl Env<'_> {
    fn round(&self, delivery: &Delivery) -> Round<'_> {
        Round {
            retry: self.retry,
            attempts_left: delivery.attempts_left,
            jitter: rand::random::<f64>(),
        }
    }
}

/// Makes the next attempt of `delivery`: sends the prepared request through the transport
/// (unless the rule's URL is not allowed now) and judges the outcome.
pub fn perform(
    env: &Env<'_>,
    rule: &Rule,
    request: &PreparedRequest,
    delivery: &Delivery,
) -> Judged {
    let store_bodies = rule.log.keeps_bodies(env.store_bodies);
    let record = Record {
        number: delivery.attempts + 1,
        started_at: env.clock.now_ms(),
        request: request.logged(store_bodies),
        store_bodies,
    };
    let sent = match rule.url_problem(env.policy) {
        Some(problem) => Sent {
            result: Err(Failure {
                kind: blocked_kind(&problem),
                message: problem.to_string(),
            }),
            elapsed: Duration::ZERO,
        },
        None => env.transport.send(request, &SendOptions::of(rule)),
    };
    judge(sent, record, &env.round(delivery))
}

/// The next attempt of `delivery` when its body template failed to render: nothing is sent.
pub fn template_failure(
    env: &Env<'_>,
    rule: &Rule,
    delivery: &Delivery,
    error: &TemplateError,
) -> Judged {
    let record = Record {
        number: delivery.attempts + 1,
        started_at: env.clock.now_ms(),
        request: LoggedRequest {
            url: rule.webhook.url.clone(),
            method: rule.webhook.method.as_str().to_owned(),
            headers: Vec::new(),
            body: None,
        },
        store_bodies: rule.log.keeps_bodies(env.store_bodies),
    };
    let sent = Sent {
        result: Err(Failure {
            kind: ErrorKind::TemplateError,
            message: format!("the body template failed: {error}"),
        }),
        elapsed: Duration::ZERO,
    };
    judge(sent, record, &env.round(delivery))
}

/// A blocked address (literal IP, localhost name) is an SSRF block; a scheme or URL-form
/// problem (http:// in production) is a blocked webhook URL.
fn blocked_kind(problem: &UrlProblem) -> ErrorKind {
    match problem {
        UrlProblem::BlockedAddress(_) | UrlProblem::LocalName(_) => ErrorKind::SsrfBlocked,
        _ => ErrorKind::WebhookUrlBlocked,
    }
}
