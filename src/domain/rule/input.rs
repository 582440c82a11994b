//! The admin's input for a rule and the validation that turns it into a `RuleSpec`: every
//! field checked (the API answers with the first failure, the UI form shows all of them).

use std::collections::BTreeMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::domain::condition::Condition;
use crate::domain::pattern::Pattern;
use crate::domain::schedule::{Schedule, ScheduleError};
use crate::domain::template;
use crate::security::crypto::Sealed;
use crate::security::ssrf::AddressPolicy;

use super::auth::{AuthInput, ReceiverAuth, validate_auth};
use super::log::{LogInput, RuleLog, validate_log};

use super::{
    DEFAULT_MAX_CONCURRENCY, DEFAULT_TIMEOUT_MS, HttpMethod, MASK, MAX_HEADERS,
    MAX_MAX_CONCURRENCY, MAX_TIMEOUT_MS, PayloadFormat, Rule, Signing, Trigger, Webhook,
};

/// A validation failure tied to the field it concerns (`webhook.url`), so forms can show it in place.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            message: message.into(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.field, self.message)
    }
}

impl std::error::Error for FieldError {}

/// A rule as an admin writes it (create, full replace, or the result of a merge patch).
/// Read-only fields are accepted and ignored so a fetched rule can be edited and sent back
/// (never skipped outright, so that the OpenAPI schema lists them as accepted).
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct RuleInput {
    /// 1-200 characters, not only spaces (trimmed).
    #[schema(value_type = String, required = true, min_length = 1, max_length = 200, pattern = r"\S")]
    pub name: Option<String>,
    /// At most 2000 characters.
    #[schema(max_length = 2000)]
    pub description: Option<String>,
    /// true when absent.
    pub active: Option<bool>,
    /// Attempts in flight at once for this rule: 1-256 (8).
    #[schema(minimum = 1, maximum = 256)]
    pub max_concurrency: Option<u32>,
    #[schema(value_type = TriggerInputDoc, required = true)]
    pub trigger: Option<TriggerInput>,
    /// A CEL expression over the event (checked on save); null or empty sends every matching
    /// event.
    pub condition: Option<String>,
    #[schema(value_type = WebhookInput, required = true)]
    pub webhook: Option<WebhookInput>,
    /// What the delivery log keeps of this rule's deliveries (SPEC §13).
    pub log: Option<LogInput>,
    /// A CEL expression over the event, such as `data.member.id` (checked on save): deliveries
    /// whose events give the same key are sent one at a time, in ingest order (SPEC §15).
    /// null or empty: no ordering.
    #[schema(max_length = 4096)]
    pub ordering_key: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workspace_id: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub status_reason: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created_at: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub updated_at: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_hint: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub next_runs: Option<Value>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<Value>,
}

/// The trigger as the API documents it; the input is read as one struct (`TriggerInput`) so
/// its errors can name the field at fault.
#[derive(Deserialize, utoipa::ToSchema)]
#[serde(tag = "type", rename_all = "lowercase", deny_unknown_fields)]
#[schema(as = TriggerInput)]
// Only a schema for the document: never built.
#[allow(dead_code)]
pub enum TriggerInputDoc {
    /// Events whose type matches one of the patterns.
    Event {
        /// 1-100 patterns.
        #[schema(min_items = 1, max_items = 100)]
        events: Vec<EventPatternDoc>,
    },
    /// A routine: a cron line (checked on save) in a time zone.
    Schedule {
        #[schema(min_length = 1, pattern = r"\S")]
        cron: String,
        /// An IANA time zone such as `Europe/Berlin`; UTC when absent or empty.
        timezone: Option<String>,
    },
}

/// An event type pattern: an exact type (`appointment.booked`), a prefix ending in `*`
/// (`member:*`), or `*` alone.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(pattern = r"^(\*|[a-z0-9_.:-]{1,128}\*|[a-z0-9][a-z0-9_.:-]{0,127})$")]
// Only a schema for the document: never built.
#[allow(dead_code)]
pub struct EventPatternDoc(String);

/// A header value: printable ASCII (and tabs), at most 8 KiB.
#[derive(Deserialize, utoipa::ToSchema)]
#[schema(max_length = 8192, pattern = r"^[\t -~]*$")]
// Only a schema for the document: never built.
#[allow(dead_code)]
pub struct HeaderValueDoc(String);

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TriggerInput {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub events: Option<Vec<String>>,
    pub cron: Option<String>,
    pub timezone: Option<String>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct WebhookInput {
    /// An absolute http(s) URL without credentials or #fragment, at most 2048 characters;
    /// the network policy decides which hosts it may name (SPEC §6).
    #[schema(value_type = String, required = true, min_length = 1, max_length = 2048, pattern = r"^https?://([A-Za-z0-9._-]+|\[[0-9A-Fa-f:.]+\])(:[0-9]{1,5})?([/?][^\s#]*)?$")]
    pub url: Option<String>,
    /// POST when absent.
    #[schema(value_type = Option<HttpMethod>)]
    pub method: Option<String>,
    /// A media type; application/json when absent.
    #[schema(min_length = 1, pattern = r"^[\t -~]*[!-~][\t -~]*$")]
    pub content_type: Option<String>,
    /// At most 50 headers with `secret_headers`; names are HTTP tokens, values printable
    /// ASCII without line breaks, at most 8 KiB; headers tidings sets itself are refused.
    #[schema(value_type = Option<BTreeMap<String, HeaderValueDoc>>)]
    pub headers: Option<BTreeMap<String, String>>,
    /// As headers; write-only: `********` keeps the stored value.
    #[schema(value_type = Option<BTreeMap<String, HeaderValueDoc>>)]
    pub secret_headers: Option<BTreeMap<String, String>>,
    /// hmac-sha256 when absent.
    #[schema(value_type = Option<Signing>)]
    pub signing: Option<String>,
    /// `flat` when absent; `template` needs `body_template`.
    #[schema(value_type = Option<PayloadFormat>)]
    pub payload_format: Option<String>,
    /// A `MiniJinja` template over the flat payload; only with `payload_format` `template`.
    pub body_template: Option<String>,
    /// true when absent.
    pub tls_verify: Option<bool>,
    /// 1-30000 (10000).
    #[schema(minimum = 1, maximum = 30000)]
    pub timeout_ms: Option<u64>,
    /// How tidings authenticates to the receiver beyond the signature; none when absent.
    #[schema(value_type = Option<super::AuthInputDoc>)]
    pub auth: Option<AuthInput>,
}

/// A write-only value after validation: a new plain value to seal, or the stored (sealed)
/// one to keep.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretValue {
    Keep(Sealed),
    New(String),
}

/// Write-only header values by name, as validated.
pub type SecretHeaders = BTreeMap<String, SecretValue>;

/// Everything an admin sets on a rule, validated; secrets not yet sealed.
#[derive(Debug, Clone)]
pub struct RuleSpec {
    pub name: String,
    pub description: String,
    pub active: bool,
    pub max_concurrency: u32,
    pub trigger: Trigger,
    pub condition: Option<Condition>,
    pub webhook: Webhook<SecretValue>,
    pub log: RuleLog,
    pub ordering_key: Option<Condition>,
}

impl RuleInput {
    /// Checks that a JSON merge patch (RFC 7396) names only fields a rule has, at every
    /// level, before it is merged: merged first, `{"bogus": null}` would vanish unnoticed,
    /// since null removes. Read-only fields stay accepted (and are ignored), as in a full
    /// replace. Inside the header maps any name may be removed, so their nulls pass here.
    pub fn check_patch(patch: &Value) -> Result<(), serde_path_to_error::Error<serde_json::Error>> {
        let mut shape = patch.clone();
        if let Some(webhook) = shape.get_mut("webhook").and_then(Value::as_object_mut) {
            for map in ["headers", "secret_headers"] {
                if let Some(Value::Object(headers)) = webhook.get_mut(map) {
                    for value in headers.values_mut().filter(|v| v.is_null()) {
                        *value = Value::String(String::new());
                    }
                }
            }
        }
        serde_path_to_error::deserialize(shape).map(|_: RuleInput| ())
    }

    /// Checks every field; `existing` lets masked secret header values mean "keep". Answers
    /// with the first field that fails, in the order the API documents them (what the API
    /// returns as its one error).
    pub fn validate(
        self,
        policy: &AddressPolicy,
        existing: Option<&Rule>,
    ) -> Result<RuleSpec, FieldError> {
        self.validate_all(policy, existing)
            .map_err(|mut errors| errors.swap_remove(0))
    }

    /// Checks every field in one pass and answers with every field that fails (never an empty
    /// list), in the same order as `validate`: what a form shows all at once.
    // One flat list of field checks, in the order the API documents them, reads best whole.
    #[allow(clippy::too_many_lines)]
    pub fn validate_all(
        self,
        policy: &AddressPolicy,
        existing: Option<&Rule>,
    ) -> Result<RuleSpec, Vec<FieldError>> {
        let mut errors = Vec::new();
        let sent = self.name.unwrap_or_default();
        let name = sent.trim().to_owned();
        if name.is_empty() {
            errors.push(FieldError::new("name", "is required"));
        } else if sent.chars().count() > 200 {
            // Counted as sent, as the document's maxLength does.
            errors.push(FieldError::new("name", "must be at most 200 characters"));
        }
        let description = self.description.unwrap_or_default();
        if description.chars().count() > 2000 {
            errors.push(FieldError::new(
                "description",
                "must be at most 2000 characters",
            ));
        }
        let max_concurrency = self.max_concurrency.unwrap_or(DEFAULT_MAX_CONCURRENCY);
        if !(1..=MAX_MAX_CONCURRENCY).contains(&max_concurrency) {
            errors.push(FieldError::new(
                "max_concurrency",
                format!("must be between 1 and {MAX_MAX_CONCURRENCY}"),
            ));
        }
        let trigger = validate_trigger(self.trigger)
            .map_err(|e| errors.push(e))
            .ok();
        // An empty condition means "no condition", so a form's blank field clears it.
        let condition = self
            .condition
            .as_deref()
            .map(str::trim)
            .filter(|c| !c.is_empty())
            .map(|c| Condition::parse(c).map_err(|e| FieldError::new("condition", e)))
            .transpose()
            .map_err(|e| errors.push(e))
            .ok();
        let webhook = if let Some(w) = self.webhook {
            validate_webhook(w, policy, existing)
                .map_err(|e| errors.extend(e))
                .ok()
        } else {
            errors.push(FieldError::new(
                "webhook",
                "is required (at least webhook.url)",
            ));
            None
        };
        let log = validate_log(self.log).map_err(|e| errors.extend(e)).ok();
        // Parsed and cost-checked like a condition; empty means "no ordering".
        let ordering_key = self
            .ordering_key
            .as_deref()
            .map(str::trim)
            .filter(|k| !k.is_empty())
            .map(|k| Condition::parse(k).map_err(|e| FieldError::new("ordering_key", e)))
            .transpose()
            .map_err(|e| errors.push(e))
            .ok();
        match (trigger, condition, webhook, log, ordering_key) {
            (Some(trigger), Some(condition), Some(webhook), Some(log), Some(ordering_key))
                if errors.is_empty() =>
            {
                Ok(RuleSpec {
                    name,
                    description,
                    active: self.active.unwrap_or(true),
                    max_concurrency,
                    trigger,
                    condition,
                    webhook,
                    log,
                    ordering_key,
                })
            }
            _ => Err(errors),
        }
    }
}

/// The webhook's fields, each checked; every one that fails, in order.
fn validate_webhook(
    webhook: WebhookInput,
    policy: &AddressPolicy,
    existing: Option<&Rule>,
) -> Result<Webhook<SecretValue>, Vec<FieldError>> {
    let mut errors = Vec::new();
    let url = validate_url(
        webhook.url,
        policy,
        existing.map(|r| r.webhook.url.as_str()),
    )
    .map_err(|e| errors.push(e))
    .ok();
    let method = match webhook
        .method
        .as_deref()
        .map(str::to_ascii_uppercase)
        .as_deref()
    {
        None | Some("POST") => HttpMethod::Post,
        Some("PUT") => HttpMethod::Put,
        Some("PATCH") => HttpMethod::Patch,
        Some(other) => {
            errors.push(FieldError::new(
                "webhook.method",
                format!("must be POST, PUT or PATCH, not {other:?}"),
            ));
            HttpMethod::Post
        }
    };
    let content_type = webhook
        .content_type
        .unwrap_or_else(|| "application/json".to_owned());
    if content_type.trim().is_empty() || !is_header_value(&content_type) {
        errors.push(FieldError::new(
            "webhook.content_type",
            "must be a media type such as application/json",
        ));
    }
    let headers = validate_headers(webhook.headers, webhook.secret_headers, existing)
        .map_err(|e| errors.push(e))
        .ok();
    let signing = match webhook.signing.as_deref() {
        None | Some("hmac-sha256") => Signing::HmacSha256,
        Some("standard-webhooks") => Signing::StandardWebhooks,
        Some("ed25519") => Signing::Ed25519,
        Some("none") => Signing::None,
        Some(other) => {
            errors.push(FieldError::new(
                "webhook.signing",
                format!("must be hmac-sha256, standard-webhooks, ed25519 or none, not {other:?}"),
            ));
            Signing::None
        }
    };
    let payload_format = match webhook.payload_format.as_deref() {
        None | Some("flat") => Some(PayloadFormat::Flat),
        Some("envelope") => Some(PayloadFormat::Envelope),
        Some("template") => Some(PayloadFormat::Template),
        Some(other) => {
            errors.push(FieldError::new(
                "webhook.payload_format",
                format!("must be flat, envelope or template, not {other:?}"),
            ));
            None
        }
    };
    let body_template = webhook.body_template.filter(|t| !t.trim().is_empty());
    if let Some(format) = payload_format {
        errors.extend(check_body_template(format, body_template.as_deref()));
    }
    let timeout_ms = webhook.timeout_ms.unwrap_or(u64::from(DEFAULT_TIMEOUT_MS));
    if !(1..=u64::from(MAX_TIMEOUT_MS)).contains(&timeout_ms) {
        errors.push(FieldError::new(
            "webhook.timeout_ms",
            format!("must be between 1 and {MAX_TIMEOUT_MS}"),
        ));
    }
    let auth = validate_auth(webhook.auth, existing.map(|r| &r.webhook.auth), policy)
        .map_err(|e| errors.push(e))
        .ok();
    if let (Some(auth), Some((plain, secret))) = (&auth, &headers) {
        errors.extend(authorization_clash(auth, plain.keys().chain(secret.keys())));
    }
    match (url, headers, payload_format, auth) {
        (Some(url), Some((headers, secret_headers)), Some(payload_format), Some(auth))
            if errors.is_empty() =>
        {
            Ok(Webhook {
                url,
                method,
                content_type,
                headers,
                secret_headers,
                signing,
                payload_format,
                body_template,
                tls_verify: webhook.tls_verify.unwrap_or(true),
                timeout_ms: u32::try_from(timeout_ms).unwrap_or(DEFAULT_TIMEOUT_MS),
                auth,
            })
        }
        _ => Err(errors),
    }
}

/// The OAuth 2 token goes in `Authorization`; a header of the same name would send two.
fn authorization_clash<'a>(
    auth: &ReceiverAuth<SecretValue>,
    mut names: impl Iterator<Item = &'a String>,
) -> Option<FieldError> {
    (matches!(auth, ReceiverAuth::OAuth2 { .. })
        && names.any(|k| k.eq_ignore_ascii_case("authorization")))
    .then(|| {
        FieldError::new(
            "webhook.auth.type",
            "sends the token in Authorization: remove the Authorization header",
        )
    })
}

/// A template is required with, and only allowed with, the template format; it must parse.
fn check_body_template(format: PayloadFormat, template: Option<&str>) -> Option<FieldError> {
    match (format, template) {
        (PayloadFormat::Template, None) => Some(FieldError::new(
            "webhook.body_template",
            "is required with payload_format \"template\" (a MiniJinja template over the flat payload)",
        )),
        (PayloadFormat::Template, Some(source)) => template::check_syntax(source)
            .err()
            .map(|e| FieldError::new("webhook.body_template", e.to_string())),
        (_, Some(_)) => Some(FieldError::new(
            "webhook.body_template",
            "is only used with payload_format \"template\"",
        )),
        (_, None) => None,
    }
}

/// Plain and write-only headers: valid names and values, none tidings sets itself, no name in
/// both, and masked secret values only where a stored value exists to keep.
fn validate_headers(
    headers: Option<BTreeMap<String, String>>,
    secret_headers: Option<BTreeMap<String, String>>,
    existing: Option<&Rule>,
) -> Result<(BTreeMap<String, String>, SecretHeaders), FieldError> {
    let headers = headers.unwrap_or_default();
    check_headers("webhook.headers", &headers)?;
    let secret_input = secret_headers.unwrap_or_default();
    check_headers("webhook.secret_headers", &secret_input)?;
    if headers.len() + secret_input.len() > MAX_HEADERS {
        return Err(FieldError::new(
            "webhook.headers",
            format!("at most {MAX_HEADERS} headers in all"),
        ));
    }
    if let Some(name) = headers
        .keys()
        .find(|h| secret_input.keys().any(|s| s.eq_ignore_ascii_case(h)))
    {
        return Err(FieldError::new(
            "webhook.secret_headers",
            format!("{name:?} is set in both headers and secret_headers; keep it in one"),
        ));
    }
    let mut secret_headers = BTreeMap::new();
    for (name, value) in secret_input {
        let value = if value == MASK {
            let kept = existing.and_then(|r| r.webhook.secret_headers.get(&name));
            let Some(kept) = kept else {
                return Err(FieldError::new(
                    "webhook.secret_headers",
                    format!(
                        "{name:?} has the masked value {MASK:?} but no stored value to keep; send the real value"
                    ),
                ));
            };
            SecretValue::Keep(kept.clone())
        } else {
            SecretValue::New(value)
        };
        secret_headers.insert(name, value);
    }
    Ok((headers, secret_headers))
}

fn validate_trigger(input: Option<TriggerInput>) -> Result<Trigger, FieldError> {
    let input = input.ok_or_else(|| {
        FieldError::new(
            "trigger",
            r#"is required, e.g. {"type":"event","events":["member:*"]}"#,
        )
    })?;
    match input.kind.as_deref() {
        Some("event") => {
            if input.cron.is_some() || input.timezone.is_some() {
                return Err(FieldError::new(
                    "trigger",
                    "cron and timezone belong to schedule triggers, not event triggers",
                ));
            }
            let events = input.events.unwrap_or_default();
            if events.is_empty() {
                return Err(FieldError::new(
                    "trigger.events",
                    "needs at least one pattern",
                ));
            }
            if events.len() > 100 {
                return Err(FieldError::new("trigger.events", "at most 100 patterns"));
            }
            let events = events
                .iter()
                .map(|p| Pattern::parse(p).map_err(|e| FieldError::new("trigger.events", e)))
                .collect::<Result<Vec<_>, _>>()?;
            Ok(Trigger::Event { events })
        }
        Some("schedule") => {
            if input.events.is_some() {
                return Err(FieldError::new(
                    "trigger",
                    "events belong to event triggers; a schedule trigger has cron and timezone",
                ));
            }
            let cron = input.cron.unwrap_or_default().trim().to_owned();
            if cron.is_empty() {
                return Err(FieldError::new(
                    "trigger.cron",
                    "is required for a schedule, e.g. \"0 9 * * MON-FRI\" (09:00 on weekdays)",
                ));
            }
            let timezone = input
                .timezone
                .map(|t| t.trim().to_owned())
                .filter(|t| !t.is_empty())
                .unwrap_or_else(|| "UTC".to_owned());
            Schedule::parse(&cron, &timezone).map_err(|e| match e {
                ScheduleError::Cron(m) => FieldError::new("trigger.cron", m),
                ScheduleError::Timezone(m) => FieldError::new("trigger.timezone", m),
            })?;
            Ok(Trigger::Schedule { cron, timezone })
        }
        Some(other) => Err(FieldError::new(
            "trigger.type",
            format!("must be \"event\" or \"schedule\", not {other:?}"),
        )),
        None => Err(FieldError::new(
            "trigger.type",
            "is required (\"event\" or \"schedule\")",
        )),
    }
}

/// `stored` is the rule's current URL: keeping it unchanged skips the address policy, so an
/// admin can still rename or deactivate a rule whose URL the policy now blocks (its status
/// keeps saying so).
fn validate_url(
    url: Option<String>,
    policy: &AddressPolicy,
    stored: Option<&str>,
) -> Result<String, FieldError> {
    let raw = url.unwrap_or_default();
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(FieldError::new("webhook.url", "is required"));
    }
    if raw.len() > 2048 {
        return Err(FieldError::new(
            "webhook.url",
            "must be at most 2048 characters",
        ));
    }
    let parsed = url::Url::parse(raw)
        .map_err(|e| FieldError::new("webhook.url", format!("is not a valid URL ({e})")))?;
    if parsed.fragment().is_some() {
        return Err(FieldError::new(
            "webhook.url",
            "must not contain a #fragment",
        ));
    }
    if stored != Some(parsed.as_str()) {
        policy
            .check_url(&parsed)
            .map_err(|p| FieldError::new("webhook.url", p.to_string()))?;
    }
    Ok(parsed.to_string())
}

/// Headers tidings sets itself, or that would break HTTP framing if an admin set them.
const RESERVED_HEADERS: [&str; 16] = [
    "host",
    "content-length",
    "content-type",
    "transfer-encoding",
    "connection",
    "keep-alive",
    "upgrade",
    "te",
    "trailer",
    "expect",
    "user-agent",
    "x-webhook-id",
    "x-webhook-event",
    "x-webhook-signature",
    "webhook-id",
    "webhook-timestamp",
];

fn check_headers(field: &str, headers: &BTreeMap<String, String>) -> Result<(), FieldError> {
    for (name, value) in headers {
        let token = !name.is_empty()
            && name.len() <= 256
            && name
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b));
        if !token {
            return Err(FieldError::new(
                field,
                format!("{name:?} is not a valid header name"),
            ));
        }
        let lower = name.to_ascii_lowercase();
        if RESERVED_HEADERS.contains(&lower.as_str())
            || lower == "webhook-signature"
            || lower.starts_with("proxy-")
        {
            return Err(FieldError::new(
                field,
                format!("{name:?} is set by tidings itself and cannot be overridden"),
            ));
        }
        if value.len() > 8192 || !is_header_value(value) {
            return Err(FieldError::new(
                field,
                format!(
                    "the value of {name:?} must be printable text without line breaks (at most 8 KiB)"
                ),
            ));
        }
    }
    Ok(())
}

fn is_header_value(v: &str) -> bool {
    v.bytes().all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
}
