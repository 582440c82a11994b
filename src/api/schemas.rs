//! Schemas of the response bodies still built with `json!` (`rule_json`, the catalog's
//! `entry_json`, the list pages of `list_response`), for the OpenAPI document. They are never
//! constructed: those builders stay as they are (rules and the catalog are being reworked on
//! another branch), and the integration test `openapi` checks real responses of every route
//! against these schemas, so the two cannot part. Other bodies are typed structs next to their
//! handlers and derive their schemas themselves, as do the domain's enums.
#![allow(dead_code)]

use std::collections::BTreeMap;

use serde_json::{Map, Value};
use utoipa::ToSchema;

use super::audit::EntryJson;
use super::deliveries::DeliverySummary;
use super::keys::KeyJson;
use crate::domain::rule::{
    EventPatternDoc, HttpMethod, PayloadFormat, RuleStatus, Signing, Trigger,
};

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

list_schema!(
    DeliveryList,
    DeliverySummary<'static>,
    "deliveries, newest first"
);

/// A catalog entry: a type built in, declared or seen, with the sample tests and previews use.
#[derive(ToSchema)]
pub struct EventTypeEntry {
    pub name: String,
    pub description: String,
    pub sample: Map<String, Value>,
    /// Which of `builtin`, `declared`, `seen` it is.
    pub sources: Vec<String>,
    #[schema(required = true, format = DateTime)]
    pub last_seen_at: Option<String>,
    /// Where an event posted without a `subject` names it (declared), or null.
    #[schema(required = true)]
    pub subject_path: Option<String>,
    /// Why the latest event that needed `subject_path` got no subject, or null.
    #[schema(required = true)]
    pub subject_missing: Option<SubjectMissing>,
}

/// An event was accepted without a subject although its type declares a `subject_path`.
#[derive(ToSchema)]
pub struct SubjectMissing {
    pub reason: String,
    #[schema(format = DateTime)]
    pub at: String,
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
    pub log: RuleLog,
    /// A CEL expression over the event whose value orders this rule's deliveries (SPEC §15);
    /// null: no ordering.
    #[schema(required = true)]
    pub ordering_key: Option<String>,
    pub id: String,
    pub workspace_id: String,
    pub status: RuleStatus,
    /// Why tidings turned the rule off, or why its URL is blocked.
    #[schema(required = true)]
    pub status_reason: Option<String>,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The last 4 characters of the current signing secret.
    pub secret_hint: String,
    /// A routine's next 5 firings (empty for event rules).
    pub next_runs: Vec<String>,
    /// The published version this is (SPEC §14); 0 for a rule stored before versions,
    /// until its next change.
    pub version: u32,
}

/// One published version of a rule (SPEC §14).
#[derive(ToSchema)]
pub struct RuleVersion {
    #[schema(minimum = 1)]
    pub version: u32,
    #[schema(format = DateTime)]
    pub published_at: String,
    pub published_by: crate::domain::audit::Actor,
    /// The rule as it went live.
    pub rule: Rule,
}

/// A rule's versions, newest first.
#[derive(ToSchema)]
pub struct RuleVersionList {
    pub data: Vec<RuleVersion>,
}

/// A rule's draft: the rule as it would go live, and what publishing it changes.
#[derive(ToSchema)]
pub struct RuleDraft {
    pub rule_id: String,
    /// The live version the draft was saved against.
    pub base_version: u32,
    /// The version live now (publishing replaces it, whatever it is).
    pub live_version: u32,
    #[schema(format = DateTime)]
    pub saved_at: String,
    pub saved_by: crate::domain::audit::Actor,
    /// The fields publishing would change, each with its value now and in the draft.
    pub changes: Vec<RuleChange>,
    pub rule: Rule,
}

/// One changed field of a rule.
#[derive(ToSchema)]
pub struct RuleChange {
    /// Dotted path of the field, e.g. `webhook.url`.
    pub path: String,
    /// Its value live now (null where absent).
    #[schema(required = true)]
    pub before: Option<Value>,
    /// Its value in the draft (null where absent).
    #[schema(required = true)]
    pub after: Option<Value>,
}

/// What the delivery log keeps of this rule's deliveries (SPEC §13).
#[derive(ToSchema)]
pub struct RuleLog {
    /// Request and response bodies are logged (when the server's `logs.store_bodies` is too).
    pub store_bodies: bool,
    /// Days this rule's deliveries are kept, when shorter than the server's; null: the
    /// server's `logs.retention_days`.
    #[schema(required = true, minimum = 1, maximum = 3650)]
    pub retention_days: Option<u32>,
    /// Paths into the event's data logged as `********`.
    pub redact: Vec<String>,
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
    pub auth: RuleAuth,
}

/// How tidings authenticates to the receiver beyond the signature.
#[derive(serde::Serialize, ToSchema)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RuleAuth {
    None,
    /// A TLS client certificate.
    Mtls {
        /// The PEM chain, leaf first.
        client_cert: String,
        /// Write-only: always `********`.
        client_key: String,
        /// When the leaf certificate expires.
        #[schema(format = DateTime)]
        client_cert_expires_at: String,
    },
}

list_schema!(RuleList, Rule, "rules, newest first");

/// What a rule's receivers verify with: its current signing secret (a view or a rotation is
/// audited), or for `signing` `ed25519` its current public key.
#[derive(serde::Serialize, ToSchema)]
#[serde(untagged)]
pub enum SigningSecret {
    Secret {
        /// `whsec_…`: the HMAC secret.
        secret: String,
    },
    PublicKey {
        /// `whpk_` and the 32-byte ed25519 public key in standard base64.
        #[schema(pattern = "^whpk_[A-Za-z0-9+/]{43}=$")]
        public_key: String,
    },
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

list_schema!(ApiKeyList, KeyJson<'static>, "API keys, newest first");

list_schema!(
    WorkspaceList,
    super::workspaces::WorkspaceJson<'static>,
    "workspaces, oldest first"
);

list_schema!(AuditList, EntryJson<'static>, "audit entries, newest first");

/// A JSON merge patch (RFC 7396) of a rule: only the fields to change, each as in
/// `RuleInput`; null removes a field (back to its default). Unknown fields are refused, even
/// with null; read-only ones are ignored. The merged rule is then checked like a PUT.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RulePatch {
    #[schema(min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    pub active: Option<bool>,
    #[schema(minimum = 1, maximum = 256)]
    pub max_concurrency: Option<u32>,
    pub trigger: Option<TriggerPatch>,
    pub condition: Option<String>,
    pub webhook: Option<WebhookPatch>,
    pub log: Option<crate::domain::rule::LogInput>,
    pub id: Option<Value>,
    pub workspace_id: Option<Value>,
    pub status: Option<Value>,
    pub status_reason: Option<Value>,
    pub created_at: Option<Value>,
    pub updated_at: Option<Value>,
    pub secret_hint: Option<Value>,
    pub next_runs: Option<Value>,
    pub version: Option<Value>,
}

/// The trigger's fields to change: `events` belong to `event` triggers, `cron` and
/// `timezone` to `schedule` ones.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerPatch {
    #[serde(rename = "type")]
    #[schema(value_type = Option<TriggerKind>)]
    pub kind: Option<String>,
    #[schema(min_items = 1, max_items = 100)]
    pub events: Option<Vec<EventPatternDoc>>,
    #[schema(min_length = 1, pattern = r"\S")]
    pub cron: Option<String>,
    pub timezone: Option<String>,
}

#[derive(ToSchema)]
#[schema(rename_all = "lowercase")]
pub enum TriggerKind {
    Event,
    Schedule,
}

/// The webhook's fields to change; inside `headers` and `secret_headers`, null removes
/// that one header.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookPatch {
    #[schema(
        min_length = 1,
        max_length = 2048,
        pattern = r"^https?://([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?([/?][^\s#]*)?$"
    )]
    pub url: Option<String>,
    pub method: Option<HttpMethod>,
    #[schema(min_length = 1, pattern = r"^[\t -~]*[!-~][\t -~]*$")]
    pub content_type: Option<String>,
    pub headers: Option<BTreeMap<String, HeaderPatch>>,
    pub secret_headers: Option<BTreeMap<String, HeaderPatch>>,
    pub signing: Option<Signing>,
    pub payload_format: Option<PayloadFormat>,
    pub body_template: Option<String>,
    pub tls_verify: Option<bool>,
    #[schema(minimum = 1, maximum = 30000)]
    pub timeout_ms: Option<u32>,
    /// Replaces `auth` whole when it names another `type`; otherwise its fields are merged
    /// into the stored auth.
    pub auth: Option<AuthPatch>,
}

/// The auth's fields to change (see `AuthInput`); `client_key` `********` keeps the stored
/// key while the certificate is unchanged.
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct AuthPatch {
    #[serde(rename = "type")]
    #[schema(value_type = Option<AuthKind>)]
    pub kind: Option<String>,
    #[schema(min_length = 1, max_length = 65536)]
    pub client_cert: Option<String>,
    #[schema(min_length = 1, max_length = 65536)]
    pub client_key: Option<String>,
    pub client_cert_expires_at: Option<Value>,
}

#[derive(ToSchema)]
#[schema(rename_all = "snake_case")]
pub enum AuthKind {
    None,
    Mtls,
}

/// A header's new value (printable ASCII and tabs, at most 8 KiB), or null to remove it.
#[derive(serde::Deserialize, ToSchema)]
#[schema(max_length = 8192, pattern = r"^[\t -~]*$")]
pub struct HeaderPatch(Option<String>);

/// The event a test send or a preview uses; both fields optional (the rule's sample fills
/// in).
#[derive(serde::Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
#[schema(as = SampleRequest)]
pub struct SampleBody {
    /// An event type (`^[a-z0-9][a-z0-9_.:-]{0,127}$`); the rule's first exact type when
    /// absent.
    #[schema(pattern = r"^[a-z0-9][a-z0-9_.:-]{0,127}$")]
    pub event_type: Option<String>,
    /// The event's data: a JSON object; the catalog sample when absent.
    pub data: Option<Map<String, Value>>,
}
