//! One attempt: build the signed request for (event, rule), send it, and turn the outcome into
//! the logged `Attempt` with secret header values and signatures redacted.

use std::time::Duration;

use crate::delivery::client::{HttpClient, OutgoingRequest, user_agent};
use crate::delivery::signing::{is_signature_header, signature_headers};
use crate::domain::delivery::{Attempt, ErrorKind, LoggedRequest, LoggedResponse};
use crate::domain::event::Event;
use crate::domain::payload::{self, Context};
use crate::domain::rule::{MASK, Rule};
use crate::domain::template::TemplateError;
use crate::domain::time::now_ms;
use crate::security::crypto::{CryptoError, MasterKey, Secret};
use crate::security::ssrf::{AddressPolicy, UrlProblem};

/// A request ready to send: every header in clear, as it goes on the wire.
#[derive(Debug, Clone)]
pub struct PreparedRequest {
    pub url: String,
    pub method: &'static str,
    pub headers: Vec<(String, String)>,
    /// Names of headers whose values are write-only (redacted in logs).
    pub secret_names: Vec<String>,
    pub body: Vec<u8>,
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
    key: &MasterKey,
    now_ms: i64,
) -> Result<PreparedRequest, PrepareError> {
    let body = payload::body(
        event,
        &Context {
            rule,
            workspace_name,
        },
    )?;
    let webhook = &rule.webhook;
    let mut headers = vec![
        ("Content-Type".to_owned(), webhook.content_type.clone()),
        ("User-Agent".to_owned(), user_agent()),
        ("X-Webhook-Id".to_owned(), delivery_id.to_owned()),
        ("X-Webhook-Event".to_owned(), event.event_type.to_string()),
    ];
    let secrets = rule
        .live_secrets(now_ms)
        .map(|s| key.open(&s.sealed))
        .collect::<Result<Vec<_>, _>>()?;
    let secret_strs: Vec<&str> = secrets.iter().map(Secret::expose).collect();
    headers.extend(signature_headers(
        webhook.signing,
        &secret_strs,
        delivery_id,
        now_ms.div_euclid(1000),
        &body,
    ));
    headers.extend(webhook.headers.iter().map(|(k, v)| (k.clone(), v.clone())));
    let mut secret_names = Vec::new();
    for (name, sealed) in &webhook.secret_headers {
        headers.push((name.clone(), key.open(sealed)?.expose().to_owned()));
        secret_names.push(name.clone());
    }
    Ok(PreparedRequest {
        url: webhook.url.clone(),
        method: webhook.method.as_str(),
        headers,
        secret_names,
        body,
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
            body: store_bodies.then(|| String::from_utf8_lossy(&self.body).into_owned()),
        }
    }
}

/// What an attempt leaves for the retry decision besides the log entry.
#[derive(Debug)]
pub struct AttemptResult {
    pub attempt: Attempt,
    /// The receiver's Retry-After on a 429 or 503.
    pub retry_after: Option<Duration>,
}

/// Sends a prepared request (unless the rule's URL is not allowed now) and logs the outcome.
pub fn perform(
    client: &HttpClient,
    rule: &Rule,
    request: &PreparedRequest,
    number: u32,
    policy: &AddressPolicy,
    store_bodies: bool,
) -> AttemptResult {
    let started_at = now_ms();
    let logged = request.logged(store_bodies);
    let attempt =
        |duration_ms, status_code, error: Option<(ErrorKind, String)>, response| Attempt {
            number,
            started_at,
            duration_ms,
            status_code,
            error_kind: error.as_ref().map(|e| e.0),
            error: error.map(|e| e.1),
            request: logged.clone(),
            response,
        };
    if let Some(problem) = rule.url_problem(policy) {
        return AttemptResult {
            attempt: attempt(
                0,
                None,
                Some((blocked_kind(&problem), problem.to_string())),
                None,
            ),
            retry_after: None,
        };
    }
    let (outcome, elapsed) = client.send(&OutgoingRequest {
        url: &request.url,
        method: request.method,
        headers: &request.headers,
        body: &request.body,
        timeout: Duration::from_millis(u64::from(rule.webhook.timeout_ms)),
        tls_verify: rule.webhook.tls_verify,
    });
    let duration_ms = u64::try_from(elapsed.as_millis()).unwrap_or(u64::MAX);
    match outcome {
        Ok(received) => {
            let status = received.status;
            let retry_after = matches!(status, 429 | 503)
                .then(|| retry_after(&received.headers))
                .flatten();
            let error = (!(200..300).contains(&status)).then(|| {
                let message = if (300..400).contains(&status) {
                    format!("the receiver answered {status}, a redirect; tidings does not follow redirects, so point the rule at the final URL")
                } else {
                    format!("the receiver answered {status}")
                };
                (ErrorKind::HttpStatus, message)
            });
            let response = LoggedResponse {
                status,
                headers: received.headers,
                body: store_bodies.then(|| String::from_utf8_lossy(&received.body).into_owned()),
                truncated: received.truncated,
            };
            AttemptResult {
                attempt: attempt(duration_ms, Some(status), error, Some(response)),
                retry_after,
            }
        }
        Err(failure) => AttemptResult {
            attempt: attempt(
                duration_ms,
                None,
                Some((failure.kind, failure.message)),
                None,
            ),
            retry_after: None,
        },
    }
}

/// The logged attempt for a body template that failed to render: no request was sent.
pub fn template_failure(rule: &Rule, number: u32, error: &TemplateError) -> AttemptResult {
    AttemptResult {
        attempt: Attempt {
            number,
            started_at: now_ms(),
            duration_ms: 0,
            status_code: None,
            error_kind: Some(ErrorKind::TemplateError),
            error: Some(format!("the body template failed: {error}")),
            request: LoggedRequest {
                url: rule.webhook.url.clone(),
                method: rule.webhook.method.as_str().to_owned(),
                headers: Vec::new(),
                body: None,
            },
            response: None,
        },
        retry_after: None,
    }
}

/// A blocked address (literal IP, localhost name) is an SSRF block; a scheme or URL-form
/// problem (http:// in production) is a blocked webhook URL.
fn blocked_kind(problem: &UrlProblem) -> ErrorKind {
    match problem {
        UrlProblem::BlockedAddress(_) | UrlProblem::LocalName(_) => ErrorKind::SsrfBlocked,
        _ => ErrorKind::WebhookUrlBlocked,
    }
}

/// Retry-After as seconds or an HTTP date.
fn retry_after(headers: &[(String, String)]) -> Option<Duration> {
    let value = headers
        .iter()
        .find(|(k, _)| k.eq_ignore_ascii_case("retry-after"))?
        .1
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_after_forms() {
        let h = |v: &str| vec![("Retry-After".to_owned(), v.to_owned())];
        assert_eq!(retry_after(&h("120")), Some(Duration::from_secs(120)));
        assert_eq!(
            retry_after(&h("Wed, 21 Oct 2015 07:28:00 GMT")),
            Some(Duration::ZERO)
        );
        assert_eq!(retry_after(&h("soon")), None);
        assert_eq!(retry_after(&[]), None);
    }
}
