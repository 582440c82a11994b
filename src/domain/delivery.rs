//! Deliveries (one event for one rule) and their attempts, as stored and shown.

use serde::{Deserialize, Serialize};

use super::event::EventType;
use super::ids::{DeliveryId, EventId, RuleId, WorkspaceId};
use super::subject::SubjectHash;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryStatus {
    Pending,
    Retrying,
    Succeeded,
    Failed,
    Blocked,
    ConditionError,
}

impl DeliveryStatus {
    pub fn parse(s: &str) -> Option<Self> {
        serde_json::from_value(serde_json::Value::String(s.to_owned())).ok()
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Retrying => "retrying",
            Self::Succeeded => "succeeded",
            Self::Failed => "failed",
            Self::Blocked => "blocked",
            Self::ConditionError => "condition_error",
        }
    }

    /// Pending and retrying deliveries still owe the receiver a request.
    pub fn is_open(self) -> bool {
        matches!(self, Self::Pending | Self::Retrying)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorKind {
    HttpStatus,
    Timeout,
    Connect,
    Dns,
    Tls,
    WebhookUrlBlocked,
    SsrfBlocked,
    TemplateError,
    /// The receiver's login token (OAuth 2) could not be had from its token URL.
    Auth,
}

impl ErrorKind {
    /// What an error kind means and what to do about it, in words for the person reading the
    /// delivery log or an alert mail.
    pub fn hint(self) -> &'static str {
        match self {
            Self::Tls => {
                "The receiver's HTTPS certificate was not accepted: it may be expired, self-signed, or made out for another name. Fix the certificate on the receiver, or add its authority to this server's trust store. Turning TLS verification off is unsafe."
            }
            Self::Dns => {
                "The receiver's host name could not be found. Check the URL for typing mistakes, and that the name exists in DNS as this server sees it."
            }
            Self::Timeout => {
                "The receiver did not answer within the rule's timeout. It may be down or overloaded: ask whoever runs it, or give it longer (timeout, at most 30 seconds)."
            }
            Self::Connect => {
                "No connection could be made: nothing is listening at that address and port, or a firewall refuses it. Check the URL and that the receiver is running."
            }
            Self::WebhookUrlBlocked => {
                "This URL is not allowed in production mode (for example http:// instead of https://, or an IP address instead of a name). Edit the rule's URL; this is not retried."
            }
            Self::SsrfBlocked => {
                "The host name led to a private or local network address, which production mode refuses so webhooks cannot reach internal systems. If the receiver really is on the clinic's network, an admin can allow its range with network.allow."
            }
            Self::HttpStatus => {
                "The receiver answered, but not with success (2xx). The response, shown with the attempt in the delivery log, usually says why: 401 or 403, check the secret headers; 404, check the URL path; 5xx, a problem on the receiver's side; 410 turns the rule off."
            }
            Self::Auth => {
                "The receiver wants a login token, and its token URL did not give one: the token server may be down, or refused the client id, secret or key. The attempt's error says what it answered; check the rule's login settings with whoever runs the receiver. This is retried."
            }
            Self::TemplateError => {
                "The rule's body template could not be made into a request for this event. Fix the template on the rule; this is not retried."
            }
        }
    }

    /// Blocked destinations and broken templates fail the same way every time: no retry.
    pub fn is_retryable(self) -> bool {
        !matches!(
            self,
            Self::WebhookUrlBlocked | Self::SsrfBlocked | Self::TemplateError
        )
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Delivery {
    pub id: DeliveryId,
    pub event_id: EventId,
    pub rule_id: RuleId,
    pub workspace_id: WorkspaceId,
    pub event_type: EventType,
    pub status: DeliveryStatus,
    pub test: bool,
    pub created_at: i64,
    pub updated_at: i64,
    /// Attempts made so far.
    pub attempts: u32,
    /// Attempts still allowed in the current round (a manual re-send starts a round of one).
    pub attempts_left: u32,
    /// When the next attempt is due, while the delivery is open.
    pub next_attempt_at: Option<i64>,
    /// Why the rule's condition could not be evaluated, for a delivery created as
    /// `condition_error` (kept if an admin re-sends it anyway).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub condition_error: Option<String>,
    /// The event's subject hash, so each attempt can record a disclosure without reading
    /// the (sealed) event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject: Option<SubjectHash>,
    /// Closed or emptied by its subject's erasure: never sent again, nothing logged.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub erased: bool,
    /// For a rule with an `ordering_key`: a keyed hash of the key its event gave (the key
    /// itself may be patient data). Open deliveries of one rule with the same one go out one
    /// at a time, in ingest (id) order.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<String>,
}

/// The new state of a delivery after an attempt.
#[derive(Debug, Clone, Copy)]
pub struct AttemptOutcome {
    pub status: DeliveryStatus,
    pub next_attempt_at: Option<i64>,
    pub attempts_left: u32,
}

impl Delivery {
    /// This delivery as it stands after attempt `number` had `outcome`.
    #[must_use]
    pub fn advanced(&self, number: u32, outcome: AttemptOutcome, now_ms: i64) -> Self {
        Self {
            status: outcome.status,
            attempts: self.attempts.max(number),
            attempts_left: outcome.attempts_left,
            next_attempt_at: outcome.next_attempt_at,
            updated_at: now_ms,
            ..self.clone()
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedRequest {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LoggedResponse {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Option<String>,
    /// True when the body was cut at the logging limit.
    pub truncated: bool,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Attempt {
    pub number: u32,
    pub started_at: i64,
    pub duration_ms: u64,
    pub status_code: Option<u16>,
    pub error_kind: Option<ErrorKind>,
    pub error: Option<String>,
    pub request: LoggedRequest,
    pub response: Option<LoggedResponse>,
}

impl Attempt {
    pub fn succeeded(&self) -> bool {
        self.error_kind.is_none() && self.status_code.is_some_and(|s| (200..300).contains(&s))
    }
}
