//! A path into an event's data (`member.id`, `dataRecord.fields.dob`): dot-separated object
//! keys, as a declared type's `subject_path` and a rule's `log.redact` name them.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

/// Longest path accepted, in bytes.
const MAX_PATH_BYTES: usize = 256;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct DataPath(String);

impl DataPath {
    /// `field` names the setting in the messages (`subject_path`, `log.redact`).
    pub fn parse(field: &str, s: &str) -> Result<Self, String> {
        if s.is_empty() || s.len() > MAX_PATH_BYTES {
            return Err(format!(
                "{field} must be 1-{MAX_PATH_BYTES} characters, such as member.id"
            ));
        }
        if s.split('.').any(str::is_empty) {
            return Err(format!(
                "{field} {s:?} has an empty segment: write keys joined by single dots, such as member.id"
            ));
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The value at this path of `data`, if every key on the way is there.
    pub fn lookup<'a>(&self, data: &'a Map<String, Value>) -> Option<&'a Value> {
        let mut segments = self.0.split('.');
        let first = segments.next().unwrap_or_default();
        segments.try_fold(data.get(first)?, |at, segment| at.get(segment))
    }

    /// Puts `with` in place of the value at this path, if there is one; true if it did.
    pub fn replace(&self, data: &mut Map<String, Value>, with: Value) -> bool {
        let mut segments = self.0.split('.');
        let first = segments.next().unwrap_or_default();
        let Some(mut at) = data.get_mut(first) else {
            return false;
        };
        for segment in segments {
            match at.get_mut(segment) {
                Some(next) => at = next,
                None => return false,
            }
        }
        *at = with;
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(v: &Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn paths_parse_with_the_field_named() {
        assert!(DataPath::parse("log.redact", "member.ssn").is_ok());
        let empty = DataPath::parse("log.redact", "member..ssn").unwrap_err();
        assert!(empty.starts_with("log.redact") && empty.contains("empty segment"));
        assert!(DataPath::parse("subject_path", "").is_err());
        assert!(DataPath::parse("x", &"a".repeat(257)).is_err());
    }

    #[test]
    fn lookup_and_replace_walk_objects_only() {
        let path = DataPath::parse("p", "dataRecord.fields.dob").unwrap();
        let mut d = data(&json!({"dataRecord": {"fields": {"dob": "1990-01-01", "x": 1}}}));
        assert_eq!(path.lookup(&d), Some(&json!("1990-01-01")));
        assert!(path.replace(&mut d, json!("********")));
        assert_eq!(
            Value::Object(d.clone()),
            json!({"dataRecord": {"fields": {"dob": "********", "x": 1}}})
        );
        let missing = DataPath::parse("p", "member.ssn").unwrap();
        assert!(missing.lookup(&d).is_none());
        assert!(
            !missing.replace(&mut d, json!("********")),
            "nothing is added"
        );
        assert!(!d.contains_key("member"));
    }
}
