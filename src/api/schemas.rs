//! Schemas of the response bodies the handlers build with `json!` (`rule_json`,
//! `delivery_json`, `entry_json`, …), for the OpenAPI document. They are never constructed:
//! the handlers' JSON stays as it is, byte for byte, and the integration test `openapi`
//! checks real responses of every route against these schemas, so the two cannot part.
//! Enums of the domain (statuses, roles, actors, triggers) derive their schemas themselves.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::deliveries::DeliverySummary;
use crate::domain::access::Role;
use crate::domain::audit::Actor;
use crate::domain::rule::{HttpMethod, PayloadFormat, RuleStatus, Signing, Trigger};

/// `{"data": [...], "next_cursor": ...}`: `next_cursor` is the `cursor` for the next page, or
/// null on the last one.
macro_rules! list_schema {
    ($name:ident, $item:ty, $what:literal) => {
        #[doc = concat!("A page of ", $what, ".")]
        #[derive(ToSchema)]
        pub struct $name {
            pub data: Vec<$item>,
            #[schema(required = true)]
            pub next_cursor: Option<String>,
        }
    };
}

/// `GET /healthz`.
#[derive(ToSchema)]
pub struct Health {
    /// Always `ok`.
    pub status: String,
}

/// `GET /readyz`.
#[derive(ToSchema)]
pub struct Readiness {
    /// `ready` or `not_ready`.
    pub status: String,
    pub checks: ReadinessChecks,
}

#[derive(ToSchema)]
pub struct ReadinessChecks {
    /// The store answers and its last write committed.
    pub store: bool,
    /// The dispatcher keeps up.
    pub dispatcher: bool,
}

/// An ingested event (202), or a repeated `idempotency_key` (200, `duplicate: true`, the
/// original `id` and `deliveries: 0`).
#[derive(ToSchema)]
pub struct Ingested {
    pub id: String,
    /// Deliveries created, `condition_error` ones included.
    pub deliveries: u64,
    pub duplicate: Option<bool>,
}

/// An event with its deliveries.
#[derive(ToSchema)]
pub struct Event {
    pub id: String,
    #[schema(rename = "type")]
    pub event_type: String,
    /// RFC 3339.
    pub occurred_at: String,
    pub received_at: String,
    pub data: Map<String, Value>,
    pub deliveries: Vec<DeliverySummary<'static>>,
}

list_schema!(
    DeliveryList,
    DeliverySummary<'static>,
    "deliveries, newest first"
);

/// `POST /api/v1/rules/{id}/redeliver-failed`.
#[derive(ToSchema)]
pub struct Redelivered {
    pub redelivered: u64,
    pub delivery_ids: Vec<String>,
}

/// A catalog entry: a type built in, declared or seen, with the sample tests and previews use.
#[derive(ToSchema)]
pub struct EventTypeEntry {
    pub name: String,
    pub description: String,
    pub sample: Map<String, Value>,
    /// Which of `builtin`, `declared`, `seen` it is.
    pub sources: Vec<String>,
    #[schema(required = true)]
    pub last_seen_at: Option<String>,
}

list_schema!(EventTypeList, EventTypeEntry, "catalog entries, by name");

/// A rule: the fields of SPEC §2 that an admin sets, then the read-only ones.
#[derive(ToSchema)]
pub struct Rule {
    pub name: String,
    pub description: String,
    pub active: bool,
    pub max_concurrency: u32,
    pub trigger: Trigger,
    /// A CEL expression over the event; null sends every matching event.
    #[schema(required = true)]
    pub condition: Option<String>,
    pub webhook: RuleWebhook,
    pub id: String,
    pub workspace_id: String,
    pub status: RuleStatus,
    /// Why tidings turned the rule off, or why its URL is blocked.
    #[schema(required = true)]
    pub status_reason: Option<String>,
    pub created_at: String,
    pub updated_at: String,
    /// The last 4 characters of the current signing secret.
    pub secret_hint: String,
    /// A routine's next 5 firings (empty for event rules).
    pub next_runs: Vec<String>,
}

#[derive(ToSchema)]
pub struct RuleWebhook {
    pub url: String,
    pub method: HttpMethod,
    pub content_type: String,
    pub headers: BTreeMap<String, String>,
    /// Write-only: each value shows as `********`; sending that back keeps the stored value.
    pub secret_headers: BTreeMap<String, String>,
    pub signing: Signing,
    pub payload_format: PayloadFormat,
    #[schema(required = true)]
    pub body_template: Option<String>,
    pub tls_verify: bool,
    pub timeout_ms: u32,
}

list_schema!(RuleList, Rule, "rules, newest first");

/// A rule's current signing secret (a view or a rotation is audited).
#[derive(ToSchema)]
pub struct SigningSecret {
    pub secret: String,
}

/// What a delivery would send now, signature included, without sending it.
#[derive(ToSchema)]
pub struct Preview {
    pub url: String,
    pub method: HttpMethod,
    pub event_type: String,
    pub data: Map<String, Value>,
    /// The condition's verdict on the sample event; null when the rule has none.
    #[schema(required = true)]
    pub condition: Option<ConditionVerdict>,
    pub status: RuleStatus,
    /// Secret header values masked; empty when the template failed.
    pub headers: BTreeMap<String, String>,
    /// Null when the template failed.
    #[schema(required = true)]
    pub body: Option<String>,
    #[schema(required = true)]
    pub template_error: Option<String>,
}

#[derive(ToSchema)]
pub struct ConditionVerdict {
    pub expression: String,
    #[schema(required = true)]
    pub result: Option<bool>,
    #[schema(required = true)]
    pub error: Option<String>,
}

/// An API key as listed: never the key itself.
#[derive(ToSchema)]
pub struct ApiKey {
    pub id: String,
    pub name: String,
    pub role: Role,
    /// The key's first 8 characters, to tell keys apart.
    pub prefix: String,
    pub created_at: String,
}

/// A new API key: `key` is shown this once and stored only hashed.
#[derive(ToSchema)]
pub struct NewApiKey {
    #[serde(flatten)]
    pub listed: ApiKey,
    pub key: String,
}

list_schema!(ApiKeyList, ApiKey, "API keys, newest first");

/// One audit entry; secret values in `before` and `after` are masked.
#[derive(ToSchema)]
pub struct AuditEntry {
    pub id: String,
    pub at: String,
    pub actor: Actor,
    /// E.g. `rule.update`, `rule.secret.view`, `api_key.create`.
    pub action: String,
    pub target: AuditTarget,
    #[schema(required = true)]
    pub before: Option<Value>,
    #[schema(required = true)]
    pub after: Option<Value>,
    #[schema(required = true)]
    pub detail: Option<String>,
}

#[derive(ToSchema)]
pub struct AuditTarget {
    #[schema(rename = "type")]
    pub target_type: String,
    pub id: String,
}

list_schema!(AuditList, AuditEntry, "audit entries, newest first");

/// An online snapshot written into `DATA_DIR/backups/`.
#[derive(ToSchema)]
pub struct Backup {
    pub path: String,
    pub rows: u64,
    pub bytes: u64,
    pub created_at: String,
}
