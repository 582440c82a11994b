//! Event rules: the stored form. The admin's input and its validation are in input.rs; the
//! same validation serves the API (create, replace, patch) and the UI's rule form.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::condition::Condition;
use super::event::EventType;
use super::ids::{RuleId, WorkspaceId};
use super::pattern::Pattern;
use super::schedule::Schedule;
use crate::security::crypto::Sealed;
use crate::security::ssrf::{AddressPolicy, UrlProblem};

/// What the API shows instead of a write-only value; sending it back keeps the stored value.
pub const MASK: &str = "********";

pub const DEFAULT_MAX_CONCURRENCY: u32 = 8;
pub const MAX_MAX_CONCURRENCY: u32 = 256;
pub const DEFAULT_TIMEOUT_MS: u32 = 10_000;
pub const MAX_TIMEOUT_MS: u32 = 30_000;
const MAX_HEADERS: usize = 50;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "UPPERCASE")]
pub enum HttpMethod {
    Post,
    Put,
    Patch,
}

impl HttpMethod {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Post => "POST",
            Self::Put => "PUT",
            Self::Patch => "PATCH",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "kebab-case")]
pub enum Signing {
    HmacSha256,
    StandardWebhooks,
    /// Standard Webhooks `v1a`: an ed25519 signature made with the rule's own key pair.
    Ed25519,
    None,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum PayloadFormat {
    Flat,
    Envelope,
    Template,
}

/// The event type of every routine firing.
pub const ROUTINE_FIRED: &str = "routine:fired";

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum Trigger {
    Event {
        /// Event type patterns: exact (`appointment.booked`) or with `*` wildcards.
        #[schema(value_type = Vec<String>)]
        events: Vec<Pattern>,
    },
    /// A routine: fires on a cron schedule in a time zone (validated on save).
    Schedule { cron: String, timezone: String },
}

impl Trigger {
    /// Whether an ingested event of this type is for this rule. Routines take no ingested
    /// events: their own firings are addressed to them alone.
    pub fn matches(&self, event_type: &EventType) -> bool {
        match self {
            Self::Event { events } => events.iter().any(|p| p.matches(event_type)),
            Self::Schedule { .. } => false,
        }
    }

    /// The parsed schedule of a routine (None for event rules or a stored schedule that no
    /// longer parses, which cannot happen for rules saved through validation).
    pub fn schedule(&self) -> Option<Schedule> {
        match self {
            Self::Schedule { cron, timezone } => Schedule::read(cron, timezone).ok(),
            Self::Event { .. } => None,
        }
    }

    /// Exact event types a rule can see, in order: what its samples are looked up by.
    pub fn exact_types(&self) -> Vec<&str> {
        match self {
            Self::Event { events } => events.iter().filter_map(Pattern::exact).collect(),
            Self::Schedule { .. } => vec![ROUTINE_FIRED],
        }
    }
}

/// One signing secret, or one ed25519 key pair; during a rotation overlap a rule has two.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct SigningSecret {
    /// The HMAC secret (`whsec_…`) or the ed25519 private key (`whsk_…`).
    pub sealed: Sealed,
    /// Last 4 characters (of the public key, for a key pair), shown so admins can tell them
    /// apart.
    pub hint: String,
    /// A key pair's public half (`whpk_…`), which receivers verify with; not secret.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    pub created_at: i64,
    /// Set on the previous secret when a new one replaces it.
    pub expires_at: Option<i64>,
}

/// Where and how a rule sends. Stored with secret header values sealed (`Sealed`); as
/// validated input they are `SecretValue`s, not yet sealed.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Webhook<S = Sealed> {
    pub url: String,
    pub method: HttpMethod,
    pub content_type: String,
    pub headers: BTreeMap<String, String>,
    /// Write-only values: never shown again.
    pub secret_headers: BTreeMap<String, S>,
    pub signing: Signing,
    pub payload_format: PayloadFormat,
    pub body_template: Option<String>,
    pub tls_verify: bool,
    pub timeout_ms: u32,
    /// How tidings authenticates to the receiver beyond the signature; none in rules saved
    /// before it existed.
    #[serde(default = "ReceiverAuth::default")]
    pub auth: ReceiverAuth<S>,
}

impl<S> Webhook<S> {
    /// The same webhook with each write-only value (secret headers, receiver credentials)
    /// turned into another form; `f` gets the header name or the credential's field path.
    pub fn map_secrets<T>(self, mut f: impl FnMut(&str, S) -> T) -> Webhook<T> {
        let secret_headers = self
            .secret_headers
            .into_iter()
            .map(|(name, value)| {
                let v = f(&name, value);
                (name, v)
            })
            .collect();
        let auth = self.auth.map_secrets(&mut f);
        Webhook {
            url: self.url,
            method: self.method,
            content_type: self.content_type,
            headers: self.headers,
            secret_headers,
            signing: self.signing,
            payload_format: self.payload_format,
            body_template: self.body_template,
            tls_verify: self.tls_verify,
            timeout_ms: self.timeout_ms,
            auth,
        }
    }
}

/// A stored rule.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Rule {
    pub id: RuleId,
    pub workspace_id: WorkspaceId,
    pub name: String,
    pub description: String,
    pub active: bool,
    pub max_concurrency: u32,
    pub trigger: Trigger,
    pub condition: Option<Condition>,
    pub webhook: Webhook,
    /// HMAC secrets (hmac-sha256, standard-webhooks), newest first.
    pub signing_secrets: Vec<SigningSecret>,
    /// ed25519 key pairs, newest first; made when the rule first signs with ed25519, kept
    /// when it switches away so switching back does not change what receivers trust.
    #[serde(default)]
    pub signing_keys: Vec<SigningSecret>,
    pub created_at: i64,
    pub updated_at: i64,
    /// Why tidings deactivated the rule itself (a 410 answer, long failure), if it did.
    pub status_reason: Option<String>,
    /// What the delivery log keeps of this rule's deliveries.
    #[serde(default)]
    pub log: RuleLog,
    /// A CEL expression over the event (SPEC §15): deliveries whose events give the same key
    /// are sent one at a time, in ingest order. None: no ordering.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ordering_key: Option<Condition>,
    /// The published version this is (SPEC §14): 1 at create, the next at each change;
    /// 0 for a rule stored before versions, until its first change.
    #[serde(default)]
    pub version: u32,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum RuleStatus {
    Active,
    Inactive,
    WebhookUrlBlocked,
}

impl Rule {
    /// Computed, not stored: a rule made in development with an http:// URL shows as blocked
    /// as soon as the appliance runs in production, and clears once the URL is fixed.
    pub fn status(&self, policy: &AddressPolicy) -> RuleStatus {
        if !self.active {
            RuleStatus::Inactive
        } else if self.url_problem(policy).is_some() {
            RuleStatus::WebhookUrlBlocked
        } else {
            RuleStatus::Active
        }
    }

    /// Why the stored URL may not be used under the current policy, if it may not.
    pub fn url_problem(&self, policy: &AddressPolicy) -> Option<UrlProblem> {
        policy.check_url_text(&self.webhook.url).err()
    }

    /// Secrets that sign now: the current one and any previous one still inside its overlap.
    pub fn live_secrets(&self, now_ms: i64) -> impl Iterator<Item = &SigningSecret> {
        self.signing_secrets
            .iter()
            .filter(move |s| s.expires_at.is_none_or(|at| at > now_ms))
    }

    /// Key pairs that sign now (ed25519), as `live_secrets`.
    pub fn live_keys(&self, now_ms: i64) -> impl Iterator<Item = &SigningSecret> {
        self.signing_keys
            .iter()
            .filter(move |s| s.expires_at.is_none_or(|at| at > now_ms))
    }

    /// The hint of what the rule signs with: its public key's for ed25519, else its secret's.
    pub fn secret_hint(&self) -> &str {
        let current = if self.webhook.signing == Signing::Ed25519 {
            self.signing_keys.first()
        } else {
            self.signing_secrets.first()
        };
        current.map_or("", |s| s.hint.as_str())
    }

    /// The data of this routine's `routine:fired` event for the slot at `slot_ms`.
    pub fn firing_data(&self, slot_ms: i64) -> serde_json::Map<String, Value> {
        let mut data = serde_json::Map::new();
        data.insert(
            "routine".into(),
            serde_json::json!({"id": self.id, "name": self.name}),
        );
        data.insert(
            "scheduledAt".into(),
            Value::String(super::time::to_rfc3339(slot_ms)),
        );
        data
    }

    /// The next `n` times this routine fires after `now_ms` (none for an inactive rule or an
    /// event rule).
    pub fn next_runs(&self, now_ms: i64, n: usize) -> Vec<i64> {
        match self.trigger.schedule() {
            Some(schedule) if self.active => schedule.upcoming(now_ms, n),
            _ => Vec::new(),
        }
    }
}

mod auth;
mod input;
mod log;
mod oauth;
pub use auth::{AuthInput, AuthInputDoc, ClientAuth, ReceiverAuth};
pub use input::{
    EventPatternDoc, FieldError, HeaderValueDoc, RuleInput, RuleSpec, SecretValue, TriggerInput,
    TriggerInputDoc, WebhookInput,
};
pub use log::{LogInput, RuleLog};
mod version;
pub use version::{Change, RuleDraft, RuleVersion, diff, versions_to_write};

#[cfg(test)]
mod tests;
