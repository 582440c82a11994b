//! What the delivery log keeps of a rule's deliveries (SPEC §13): `log`. Each setting can
//! only keep less than the server's `logs` policy, never more: bodies are logged when both
//! allow it, and the shorter retention wins.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::MASK;
use super::input::FieldError;
use crate::domain::data_path::DataPath;

/// Most paths one rule may redact.
pub const MAX_REDACT: usize = 32;
/// Longest retention a rule may name (ten years); `logs.retention_days` still bounds it.
pub const MAX_RETENTION_DAYS: u32 = 3650;

/// The stored form.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuleLog {
    /// Whether request and response bodies are logged for this rule.
    #[serde(default = "yes")]
    pub store_bodies: bool,
    /// Days this rule's deliveries are kept, when shorter than `logs.retention_days`.
    #[serde(default)]
    pub retention_days: Option<u32>,
    /// Paths into the event's data logged as `"********"` (the receiver gets them intact).
    #[serde(default)]
    pub redact: Vec<DataPath>,
}

fn yes() -> bool {
    true
}

impl Default for RuleLog {
    fn default() -> Self {
        Self {
            store_bodies: true,
            retention_days: None,
            redact: Vec::new(),
        }
    }
}

impl RuleLog {
    /// Whether bodies are logged, given the server's `logs.store_bodies`.
    pub fn keeps_bodies(&self, server_keeps_bodies: bool) -> bool {
        server_keeps_bodies && self.store_bodies
    }

    /// The data as the log shows it: each redacted path that is present masked. `None`
    /// when nothing is redacted (the logged body is the body as sent).
    pub fn redacted(&self, data: &Map<String, Value>) -> Option<Map<String, Value>> {
        if self.redact.is_empty() {
            return None;
        }
        let mut masked = data.clone();
        for path in &self.redact {
            path.replace(&mut masked, Value::String(MASK.to_owned()));
        }
        Some(masked)
    }
}

/// `log` as an admin writes it; absent fields take their defaults.
#[derive(Debug, Clone, Default, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct LogInput {
    /// Log request and response bodies of this rule's attempts (true). The server's
    /// `logs.store_bodies = false` wins.
    pub store_bodies: Option<bool>,
    /// Keep this rule's deliveries this many days, 1-3650 (null: the server's
    /// `logs.retention_days`). The shorter of the two wins.
    #[schema(minimum = 1, maximum = 3650)]
    pub retention_days: Option<u32>,
    /// Paths into the event's data (`member.ssn`, `dataRecord.fields.dob`), at most 32,
    /// stored as "********" in the logged request body.
    #[schema(max_items = 32)]
    pub redact: Option<Vec<String>>,
}

impl From<&RuleLog> for LogInput {
    fn from(log: &RuleLog) -> Self {
        Self {
            store_bodies: Some(log.store_bodies),
            retention_days: log.retention_days,
            redact: Some(log.redact.iter().map(|p| p.as_str().to_owned()).collect()),
        }
    }
}

/// Checks `log`; every field that fails, in order.
pub fn validate_log(input: Option<LogInput>) -> Result<RuleLog, Vec<FieldError>> {
    let Some(input) = input else {
        return Ok(RuleLog::default());
    };
    let mut errors = Vec::new();
    if let Some(days) = input.retention_days
        && !(1..=MAX_RETENTION_DAYS).contains(&days)
    {
        errors.push(FieldError::new(
            "log.retention_days",
            format!("must be between 1 and {MAX_RETENTION_DAYS} days, or null for the server's logs.retention_days"),
        ));
    }
    let paths = input.redact.unwrap_or_default();
    if paths.len() > MAX_REDACT {
        errors.push(FieldError::new(
            "log.redact",
            format!("names {} paths; at most {MAX_REDACT}", paths.len()),
        ));
    }
    let mut redact: Vec<DataPath> = Vec::with_capacity(paths.len());
    for (i, path) in paths.iter().enumerate() {
        let field = format!("log.redact[{i}]");
        if let Some(inside) = path.strip_prefix("data.") {
            errors.push(FieldError::new(
                field,
                format!("paths start inside the event's data: write {inside:?}, not {path:?}"),
            ));
            continue;
        }
        match DataPath::parse(&field, path) {
            Ok(p) if !redact.contains(&p) => redact.push(p),
            Ok(_) => {}
            Err(e) => errors.push(FieldError::new(field, e)),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    Ok(RuleLog {
        store_bodies: input.store_bodies.unwrap_or(true),
        retention_days: input.retention_days,
        redact,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn input(v: Value) -> LogInput {
        serde_json::from_value(v).unwrap()
    }

    #[test]
    fn absent_log_keeps_everything_the_server_does() {
        let log = validate_log(None).unwrap();
        assert_eq!(log, RuleLog::default());
        assert!(log.keeps_bodies(true));
        assert!(!log.keeps_bodies(false), "the server's policy wins");
        let stored: RuleLog = serde_json::from_value(json!({})).unwrap();
        assert_eq!(
            stored,
            RuleLog::default(),
            "rules stored before log existed"
        );
    }

    #[test]
    fn bad_settings_are_named_each_at_its_field() {
        let errors = validate_log(Some(input(json!({
            "retention_days": 0,
            "redact": ["member.ssn", "data.member.dob", "a..b"]
        }))))
        .unwrap_err();
        let fields: Vec<&str> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["log.retention_days", "log.redact[1]", "log.redact[2]"]
        );
        assert!(
            errors[1].message.contains("\"member.dob\""),
            "{}",
            errors[1]
        );
        let many: Vec<String> = (0..33).map(|i| format!("k{i}")).collect();
        let errors = validate_log(Some(input(json!({ "redact": many })))).unwrap_err();
        assert_eq!(errors[0].field, "log.redact");
    }

    #[test]
    fn redaction_masks_present_paths_and_adds_none() {
        let log = validate_log(Some(input(json!({
            "redact": ["member.ssn", "member.ssn", "dataRecord.fields.dob", "absent.key"]
        }))))
        .unwrap();
        assert_eq!(log.redact.len(), 3, "duplicates are kept once");
        let data = json!({"member": {"ssn": "123-45-6789", "name": "Li"}, "dataRecord": {"fields": {"dob": "1990"}}});
        let masked = log.redacted(data.as_object().unwrap()).unwrap();
        assert_eq!(
            Value::Object(masked),
            json!({"member": {"ssn": "********", "name": "Li"}, "dataRecord": {"fields": {"dob": "********"}}})
        );
        assert!(
            RuleLog::default()
                .redacted(data.as_object().unwrap())
                .is_none()
        );
    }
}
