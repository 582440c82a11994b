//! The rule form's values: every SPEC §2 field, what the person typed kept across a refusal,
//! read from a stored rule or a post and turned into the API's `RuleInput`, with the fields
//! the chosen options hide dropped. The pages and posts that show and check it (every
//! field's error in one answer) are `form_page.rs`.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::app::rules::editable_json;
use crate::domain::rule::{
    AuthInput, DEFAULT_TIMEOUT_MS, FieldError, LogInput, MASK, MAX_TIMEOUT_MS, ReceiverAuth, Rule,
    RuleInput, TriggerInput, WebhookInput,
};
use crate::web::Fields;

/// The form's fields as typed, so a refused form comes back exactly as it was sent.
#[derive(Debug, Clone)]
pub(super) struct RuleForm {
    pub(super) name: String,
    pub(super) description: String,
    pub(super) active: bool,
    pub(super) max_concurrency: String,
    pub(super) trigger_type: String,
    pub(super) events: String,
    pub(super) cron: String,
    pub(super) timezone: String,
    pub(super) condition: String,
    pub(super) ordering_key: String,
    pub(super) url: String,
    pub(super) method: String,
    pub(super) content_type: String,
    pub(super) headers: Vec<(String, String)>,
    /// (name, value typed); an empty value for a stored name keeps the stored value.
    pub(super) secret_headers: Vec<(String, String)>,
    pub(super) signing: String,
    pub(super) payload_format: String,
    pub(super) body_template: String,
    pub(super) tls_verify: bool,
    /// `webhook.timeout_ms` in seconds, as the person reads it (decimals allowed).
    pub(super) timeout_s: String,
    /// `log.store_bodies`.
    pub(super) log_bodies: bool,
    /// `log.retention_days`: blank for the server's.
    pub(super) log_retention_days: String,
    /// `log.redact`, one path per line.
    pub(super) log_redact: String,
    /// `none`, `mtls` or `oauth2_client_credentials`.
    pub(super) auth_type: String,
    pub(super) client_cert: String,
    /// Write-only: blank keeps a stored key.
    pub(super) client_key: String,
    pub(super) token_url: String,
    pub(super) client_id: String,
    /// Write-only: blank keeps a stored secret.
    pub(super) client_secret: String,
    pub(super) scope: String,
    pub(super) audience: String,
    pub(super) client_auth: String,
    /// Write-only: blank keeps a stored key.
    pub(super) private_key: String,
}

impl Default for RuleForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            description: String::new(),
            active: true,
            max_concurrency: "8".into(),
            trigger_type: "event".into(),
            events: String::new(),
            cron: String::new(),
            timezone: "UTC".into(),
            condition: String::new(),
            ordering_key: String::new(),
            url: String::new(),
            method: "POST".into(),
            content_type: "application/json".into(),
            headers: Vec::new(),
            secret_headers: Vec::new(),
            signing: "hmac-sha256".into(),
            payload_format: "flat".into(),
            body_template: String::new(),
            tls_verify: true,
            timeout_s: seconds(u64::from(DEFAULT_TIMEOUT_MS)),
            log_bodies: true,
            log_retention_days: String::new(),
            log_redact: String::new(),
            auth_type: "none".into(),
            client_cert: String::new(),
            client_key: String::new(),
            token_url: String::new(),
            client_id: String::new(),
            client_secret: String::new(),
            scope: String::new(),
            audience: String::new(),
            client_auth: "client_secret_basic".into(),
            private_key: String::new(),
        }
    }
}

pub(super) fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

pub(super) fn pairs(v: &Value) -> Vec<(String, String)> {
    v.as_object()
        .map(|m| m.iter().map(|(k, v)| (k.clone(), text(v))).collect())
        .unwrap_or_default()
}

impl RuleForm {
    /// A stored rule as the form shows it: from its editable JSON, the same shape the API's
    /// PATCH starts from, with secret header values left blank (write-only).
    pub(super) fn from_rule(rule: &Rule) -> Self {
        let v = editable_json(rule);
        let t = &v["trigger"];
        let w = &v["webhook"];
        let events: Vec<String> = t["events"]
            .as_array()
            .map(|a| a.iter().map(text).collect())
            .unwrap_or_default();
        Self {
            name: text(&v["name"]),
            description: text(&v["description"]),
            active: v["active"].as_bool().unwrap_or(true),
            max_concurrency: text(&v["max_concurrency"]),
            trigger_type: t["type"].as_str().unwrap_or("event").to_owned(),
            events: events.join("\n"),
            cron: text(&t["cron"]),
            timezone: t["timezone"].as_str().unwrap_or("UTC").to_owned(),
            condition: text(&v["condition"]),
            ordering_key: text(&v["ordering_key"]),
            url: text(&w["url"]),
            method: text(&w["method"]),
            content_type: text(&w["content_type"]),
            headers: pairs(&w["headers"]),
            secret_headers: pairs(&w["secret_headers"])
                .into_iter()
                .map(|(k, _)| (k, String::new()))
                .collect(),
            signing: text(&w["signing"]),
            payload_format: text(&w["payload_format"]),
            body_template: text(&w["body_template"]),
            tls_verify: w["tls_verify"].as_bool().unwrap_or(true),
            timeout_s: w["timeout_ms"]
                .as_u64()
                .map_or_else(|| text(&w["timeout_ms"]), seconds),
            log_bodies: rule.log.store_bodies,
            log_retention_days: rule
                .log
                .retention_days
                .map(|d| d.to_string())
                .unwrap_or_default(),
            log_redact: rule
                .log
                .redact
                .iter()
                .map(crate::domain::data_path::DataPath::as_str)
                .collect::<Vec<_>>()
                .join("\n"),
            auth_type: w["auth"]["type"].as_str().unwrap_or("none").to_owned(),
            client_cert: text(&w["auth"]["client_cert"]),
            client_key: String::new(),
            token_url: text(&w["auth"]["token_url"]),
            client_id: text(&w["auth"]["client_id"]),
            client_secret: String::new(),
            scope: text(&w["auth"]["scope"]),
            audience: text(&w["auth"]["audience"]),
            client_auth: w["auth"]["client_auth"]
                .as_str()
                .unwrap_or("client_secret_basic")
                .to_owned(),
            private_key: String::new(),
        }
    }

    pub(super) fn from_fields(f: &Fields) -> Self {
        let rows = |names: &str, values: &str| -> Vec<(String, String)> {
            let values = f.all(values);
            f.all(names)
                .into_iter()
                .enumerate()
                .map(|(i, n)| {
                    (
                        n.trim().to_owned(),
                        values.get(i).map(|v| (*v).to_owned()).unwrap_or_default(),
                    )
                })
                .filter(|(n, v)| !n.is_empty() || !v.is_empty())
                .collect()
        };
        Self {
            name: f.get("name").to_owned(),
            description: f.get("description").to_owned(),
            active: f.has("active"),
            max_concurrency: f.get("max_concurrency").trim().to_owned(),
            trigger_type: f.get("trigger_type").to_owned(),
            events: typed_and_picked(f),
            cron: f.get("cron").to_owned(),
            timezone: f.get("timezone").to_owned(),
            condition: f.get("condition").to_owned(),
            ordering_key: f.get("ordering_key").to_owned(),
            url: f.get("url").to_owned(),
            method: f.get("method").to_owned(),
            content_type: f.get("content_type").to_owned(),
            headers: rows("header_name", "header_value"),
            secret_headers: rows("secret_name", "secret_value"),
            signing: f.get("signing").to_owned(),
            payload_format: f.get("payload_format").to_owned(),
            body_template: f.get("body_template").to_owned(),
            tls_verify: f.has("tls_verify"),
            timeout_s: f.get("timeout_s").trim().to_owned(),
            log_bodies: f.has("log_bodies"),
            log_retention_days: f.get("log_retention_days").trim().to_owned(),
            log_redact: f.get("log_redact").to_owned(),
            auth_type: Some(f.get("auth_type"))
                .filter(|t| !t.is_empty())
                .unwrap_or("none")
                .to_owned(),
            client_cert: f.get("client_cert").to_owned(),
            client_key: f.get("client_key").to_owned(),
            token_url: f.get("token_url").trim().to_owned(),
            client_id: f.get("client_id").trim().to_owned(),
            client_secret: f.get("client_secret").to_owned(),
            scope: f.get("scope").trim().to_owned(),
            audience: f.get("audience").trim().to_owned(),
            client_auth: f.get("client_auth").to_owned(),
            private_key: f.get("private_key").to_owned(),
        }
    }

    /// `log` from the form: a blank retention is the server's, one redacted path per line.
    fn log_input(&self, errors: &mut Vec<FieldError>) -> LogInput {
        let retention_days = if self.log_retention_days.is_empty() {
            None
        } else {
            self.log_retention_days
                .parse()
                .map_err(|_| {
                    errors.push(FieldError::new(
                        "log.retention_days",
                        "must be a whole number of days, such as 7, or blank for the server's",
                    ));
                })
                .ok()
        };
        LogInput {
            store_bodies: Some(self.log_bodies),
            retention_days,
            redact: Some(
                self.log_redact
                    .lines()
                    .map(str::trim)
                    .filter(|p| !p.is_empty())
                    .map(str::to_owned)
                    .collect(),
            ),
        }
    }

    /// `webhook.auth` from the form: a blank key keeps the stored one (as secret headers do).
    fn auth_input(&self, existing: Option<&Rule>) -> AuthInput {
        if self.auth_type == "oauth2_client_credentials" {
            return self.oauth_input(existing);
        }
        if self.auth_type != "mtls" {
            return AuthInput {
                kind: Some(self.auth_type.clone()),
                ..AuthInput::default()
            };
        }
        let stored = existing.is_some_and(|r| r.webhook.auth.client_cert_expires_at().is_some());
        let key = if self.client_key.trim().is_empty() && stored {
            MASK.to_owned()
        } else {
            self.client_key.clone()
        };
        AuthInput {
            kind: Some("mtls".into()),
            client_cert: Some(self.client_cert.clone()),
            client_key: Some(key),
            ..AuthInput::default()
        }
    }

    /// The OAuth 2 fields: only the write-only value the chosen `client_auth` uses is sent
    /// (the other is hidden, so dropped), and a blank one keeps the stored value.
    fn oauth_input(&self, existing: Option<&Rule>) -> AuthInput {
        let stored = match existing.map(|r| &r.webhook.auth) {
            Some(ReceiverAuth::OAuth2 {
                client_secret,
                private_key,
                ..
            }) => (client_secret.is_some(), private_key.is_some()),
            _ => (false, false),
        };
        let kept = |typed: &str, stored: bool| {
            if typed.trim().is_empty() && stored {
                MASK.to_owned()
            } else {
                typed.to_owned()
            }
        };
        let opt = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        let jwt = self.client_auth == "private_key_jwt";
        AuthInput {
            kind: Some(self.auth_type.clone()),
            token_url: Some(self.token_url.clone()),
            client_id: Some(self.client_id.clone()),
            client_secret: (!jwt).then(|| kept(&self.client_secret, stored.0)),
            scope: opt(&self.scope),
            audience: opt(&self.audience),
            client_auth: opt(&self.client_auth),
            private_key: jwt.then(|| kept(&self.private_key, stored.1)),
            ..AuthInput::default()
        }
    }

    /// The `RuleInput` the API would get for the same rule, and what a form cannot say in
    /// JSON that is wrong (numbers, header rows): every such error, with the input left at
    /// its default there so the rest can still be checked. Every rule of SPEC §2 is checked
    /// after, by `RuleInput::validate_all`, exactly as for the API. Fields the chosen options
    /// hide (cron and time zone for an event rule, event types for a routine, the body
    /// template unless the payload format is "template") are dropped, never checked or saved.
    pub(super) fn to_input(&self, existing: Option<&Rule>) -> (RuleInput, Vec<FieldError>) {
        let mut errors = Vec::new();
        let opt = |s: &str| (!s.trim().is_empty()).then(|| s.to_owned());
        let max_concurrency = self
            .max_concurrency
            .parse::<u32>()
            .map_err(|_| {
                errors.push(FieldError::new(
                    "max_concurrency",
                    "must be a whole number, such as 8",
                ));
            })
            .ok();
        let timeout_ms = milliseconds(&self.timeout_s)
            .map_err(|message| errors.push(FieldError::new("webhook.timeout_ms", message)))
            .ok();
        let (headers, secret_headers) = self.header_maps(existing, &mut errors);
        let trigger = if self.trigger_type == "schedule" {
            TriggerInput {
                kind: Some("schedule".into()),
                events: None,
                cron: opt(&self.cron),
                timezone: opt(&self.timezone),
            }
        } else {
            TriggerInput {
                kind: opt(&self.trigger_type),
                events: Some(
                    self.events
                        .split(['\n', ','])
                        .map(str::trim)
                        .filter(|p| !p.is_empty())
                        .map(str::to_owned)
                        .collect(),
                ),
                cron: None,
                timezone: None,
            }
        };
        let body_template = if self.payload_format == "template" {
            opt(&self.body_template)
        } else {
            None
        };
        let input = RuleInput {
            name: Some(self.name.clone()),
            description: Some(self.description.clone()),
            active: Some(self.active),
            max_concurrency,
            trigger: Some(trigger),
            condition: opt(&self.condition),
            webhook: Some(WebhookInput {
                url: Some(self.url.clone()),
                method: opt(&self.method),
                content_type: opt(&self.content_type),
                headers: Some(headers),
                secret_headers: Some(secret_headers),
                signing: opt(&self.signing),
                payload_format: opt(&self.payload_format),
                body_template,
                tls_verify: Some(self.tls_verify),
                timeout_ms,
                auth: Some(self.auth_input(existing)),
            }),
            log: Some(self.log_input(&mut errors)),
            // Blank clears it, as for the condition.
            ordering_key: Some(self.ordering_key.clone()),
            ..RuleInput::default()
        };
        (input, errors)
    }
}

/// The event patterns typed (one per line) and those ticked in the catalog's checklist
/// (`event_pick`), one per line, each once.
fn typed_and_picked(f: &Fields) -> String {
    let mut patterns: Vec<&str> = Vec::new();
    let typed = f.get("events");
    let picked = f.all("event_pick");
    for p in typed
        .split(['\n', ','])
        .chain(picked.iter().copied())
        .map(str::trim)
    {
        if !p.is_empty() && !patterns.contains(&p) {
            patterns.push(p);
        }
    }
    patterns.join("\n")
}

/// Milliseconds as the form shows them, in seconds: `10000` is "10", `2500` is "2.5".
pub(super) fn seconds(ms: u64) -> String {
    let (whole, frac) = (ms / 1000, ms % 1000);
    if frac == 0 {
        whole.to_string()
    } else {
        format!("{whole}.{frac:03}")
            .trim_end_matches('0')
            .to_owned()
    }
}

/// The timeout typed in seconds (such as 10 or 2.5, to the millisecond) as the API's
/// `timeout_ms`, within the same bounds; refused in seconds words.
fn milliseconds(typed: &str) -> Result<u64, String> {
    let most = seconds(u64::from(MAX_TIMEOUT_MS));
    let not_a_number =
        || format!("must be a number of seconds, such as 10 or 2.5 (at most {most})");
    let (whole, frac) = typed.split_once('.').unwrap_or((typed, ""));
    let digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
    if (whole.is_empty() && frac.is_empty()) || !digits(whole) || !digits(frac) {
        return Err(not_a_number());
    }
    if frac.len() > 3 {
        return Err("can be given to a thousandth of a second at most, such as 2.125".to_owned());
    }
    let whole: u64 = if whole.is_empty() {
        0
    } else {
        whole.parse().map_err(|_| not_a_number())?
    };
    let frac: u64 = format!("{frac:0<3}").parse().map_err(|_| not_a_number())?;
    let ms = whole.saturating_mul(1000).saturating_add(frac);
    if ms == 0 {
        return Err("must be more than 0 seconds".to_owned());
    }
    if ms > u64::from(MAX_TIMEOUT_MS) {
        return Err(format!("must be at most {most} seconds"));
    }
    Ok(ms)
}

impl RuleForm {
    /// The header rows as the API's maps; a row with a value but no name, or a new secret
    /// header without a value, is an error (and left out).
    pub(super) fn header_maps(
        &self,
        existing: Option<&Rule>,
        errors: &mut Vec<FieldError>,
    ) -> (BTreeMap<String, String>, BTreeMap<String, String>) {
        let mut headers = BTreeMap::new();
        for (name, value) in &self.headers {
            if name.is_empty() {
                errors.push(FieldError::new(
                    "webhook.headers",
                    "a header row has a value but no name",
                ));
            } else {
                headers.insert(name.clone(), value.clone());
            }
        }
        let mut secret_headers = BTreeMap::new();
        for (name, value) in &self.secret_headers {
            if name.is_empty() {
                errors.push(FieldError::new(
                    "webhook.secret_headers",
                    "a secret header row has a value but no name",
                ));
                continue;
            }
            let stored = existing.is_some_and(|r| r.webhook.secret_headers.contains_key(name));
            if !value.is_empty() {
                secret_headers.insert(name.clone(), value.clone());
            } else if stored {
                // Left blank: keep the stored value, as the API does for the mask.
                secret_headers.insert(name.clone(), MASK.to_owned());
            } else {
                errors.push(FieldError::new(
                    "webhook.secret_headers",
                    format!("{name:?} needs a value"),
                ));
            }
        }
        (headers, secret_headers)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_form_turns_into_the_api_input() {
        let f = Fields::parse(
            b"name=A&trigger_type=event&events=member%3A*%0D%0Aping%2C+x&url=https%3A%2F%2Fe.com&max_concurrency=8&timeout_s=0.1&header_name=X-A&header_value=1&header_name=&header_value=&secret_name=K&secret_value=",
        );
        let form = RuleForm::from_fields(&f);
        assert!(
            !form.active && !form.tls_verify,
            "unchecked boxes are not sent"
        );
        let (_, errors) = form.to_input(None);
        assert_eq!(
            errors[0].field, "webhook.secret_headers",
            "a new secret header needs a value"
        );
        let f = Fields::parse(
            b"name=A&trigger_type=event&events=member%3A*%0D%0Aping%2C+x&url=https%3A%2F%2Fe.com&max_concurrency=8&timeout_s=0.1&header_name=X-A&header_value=1",
        );
        let (input, errors) = RuleForm::from_fields(&f).to_input(None);
        assert!(errors.is_empty(), "{errors:?}");
        let t = input.trigger.unwrap();
        assert_eq!(t.events.unwrap(), ["member:*", "ping", "x"]);
        assert!(t.cron.is_none());
        let w = input.webhook.unwrap();
        assert_eq!(w.headers.unwrap().get("X-A").map(String::as_str), Some("1"));
        assert_eq!(w.timeout_ms, Some(100));
    }

    #[test]
    fn fields_the_chosen_options_hide_are_dropped_and_form_errors_all_collected() {
        let f = Fields::parse(
            b"name=A&trigger_type=event&events=ping&cron=*+*&timezone=Mars&url=https%3A%2F%2Fe.com&payload_format=flat&body_template=%7B%7B+x&max_concurrency=lots&timeout_s=soon&header_name=&header_value=1",
        );
        let (input, errors) = RuleForm::from_fields(&f).to_input(None);
        let t = input.trigger.unwrap();
        assert!(
            t.cron.is_none() && t.timezone.is_none(),
            "no cron on an event rule"
        );
        let w = input.webhook.unwrap();
        assert!(
            w.body_template.is_none(),
            "no template with the flat format"
        );
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["max_concurrency", "webhook.timeout_ms", "webhook.headers"]
        );
        assert!(
            errors[1].message.contains("number of seconds"),
            "{errors:?}"
        );
        let f = Fields::parse(b"trigger_type=schedule&events=ping&cron=0+9+*+*+*");
        let (input, _) = RuleForm::from_fields(&f).to_input(None);
        assert!(
            input.trigger.unwrap().events.is_none(),
            "no events on a routine"
        );
    }

    #[test]
    fn the_timeout_is_typed_in_seconds_and_sent_in_milliseconds() {
        for (typed, ms) in [
            ("10", 10_000),
            ("2.5", 2_500),
            ("0.25", 250),
            (".5", 500),
            ("30", 30_000),
            ("0.001", 1),
            ("1.", 1_000),
        ] {
            assert_eq!(milliseconds(typed), Ok(ms), "{typed}");
        }
        for (ms, shown) in [
            (10_000, "10"),
            (2_500, "2.5"),
            (250, "0.25"),
            (1, "0.001"),
            (30_000, "30"),
        ] {
            assert_eq!(seconds(ms), shown);
            assert_eq!(milliseconds(shown), Ok(ms), "round trip of {shown}");
        }
        for (typed, says) in [
            ("", "number of seconds"),
            ("soon", "number of seconds"),
            ("-1", "number of seconds"),
            ("1,5", "number of seconds"),
            (".", "number of seconds"),
            ("1.2.3", "number of seconds"),
            ("2.0001", "thousandth"),
            ("0", "more than 0 seconds"),
            ("0.000", "more than 0 seconds"),
            ("30.001", "at most 30 seconds"),
            ("99999999999999999999999", "number of seconds"),
        ] {
            let message = milliseconds(typed).unwrap_err();
            assert!(message.contains(says), "{typed}: {message}");
            assert!(!message.contains("millisecond"), "{typed}: {message}");
        }
    }
}
