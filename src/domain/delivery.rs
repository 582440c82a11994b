//! Deliveries (one event for one rule) and their attempts, as stored and shown.

use serde::{Deserialize, Serialize};

use super::event::EventType;
use super::ids::{DeliveryId, EventId, RuleId, WorkspaceId};

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
}

impl ErrorKind {
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
