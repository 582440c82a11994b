//! The person an event is about (HIPAA's "individual"): the subject as a source system names
//! it, the keyed hash that is all tidings stores of it, and the record of each disclosure of
//! a subject's data to a receiver (the accounting of 45 CFR 164.528).

use std::fmt;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use super::data_path::DataPath;
use super::delivery::{Attempt, Delivery, DeliveryStatus, ErrorKind};
use super::event::EventType;
use super::ids::{DeliveryId, EventId, RuleId};

pub const MAX_SUBJECT_CHARS: usize = 128;

/// A subject as posted (`member:123`): 1-128 characters, no control characters. It lives
/// only as long as the request; the store sees its `SubjectHash`.
#[derive(Clone, PartialEq, Eq)]
pub struct Subject(String);

impl Subject {
    pub fn parse(s: &str) -> Result<Self, String> {
        let chars = s.chars().count();
        if chars == 0 || s.trim().is_empty() {
            return Err("subject must not be empty".into());
        }
        if chars > MAX_SUBJECT_CHARS {
            return Err(format!(
                "subject must be at most {MAX_SUBJECT_CHARS} characters, not {chars}"
            ));
        }
        if s.chars().any(char::is_control) {
            return Err("subject must not contain control characters".into());
        }
        Ok(Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A subject is PHI: it never reaches Debug output or logs.
impl fmt::Debug for Subject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Subject(***)")
    }
}

/// Hex HMAC-SHA256 of a subject under the subject key (`security::crypto::SubjectKey`):
/// what events, deliveries, disclosures and audit entries keep instead of the subject.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubjectHash(String);

impl SubjectHash {
    /// Only from the subject key; any 64 lowercase hex digits read back from storage.
    pub fn from_hex(hex: String) -> Option<Self> {
        (hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')))
            .then_some(Self(hex))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// A declared `subject_path` (`member.id`): where in event data the subject is.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct SubjectPath(DataPath);

impl SubjectPath {
    pub fn parse(s: &str) -> Result<Self, String> {
        DataPath::parse("subject_path", s).map(Self)
    }

    pub fn as_str(&self) -> &str {
        self.0.as_str()
    }

    /// The subject at this path of `data`: a string or a number (`member.id: 123` is
    /// `"123"`), or why there is none, in words for the catalog.
    pub fn resolve(&self, data: &Map<String, Value>) -> Result<Subject, String> {
        let path = self.as_str();
        match self.0.lookup(data) {
            None => Err(format!("the event has no value at {path}")),
            Some(Value::String(s)) => Subject::parse(s).map_err(|e| format!("{path}: {e}")),
            Some(Value::Number(n)) => Subject::parse(&n.to_string()),
            Some(other) => Err(format!(
                "{path} holds {}, not a string or number",
                match other {
                    Value::Null => "null",
                    Value::Bool(_) => "a boolean",
                    Value::Array(_) => "an array",
                    _ => "an object",
                }
            )),
        }
    }
}

/// One delivery of a subject's data to a receiver, kept after the delivery log is pruned
/// and after the subject is erased (it holds no event data).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Disclosure {
    pub delivery_id: DeliveryId,
    pub event_id: EventId,
    pub event_type: EventType,
    pub rule_id: RuleId,
    /// The rule's name when the data was sent (a later rename does not rewrite history).
    pub rule_name: String,
    /// Scheme and host (and port, if any) of the URL the data went to.
    pub destination: String,
    pub status: DeliveryStatus,
    pub first_attempt_at: i64,
    pub succeeded_at: Option<i64>,
}

impl Disclosure {
    /// The record after `attempt` of `delivery` (as it stands after it), given the record so
    /// far. An attempt that cannot have carried the data anywhere (refused before a
    /// connection, or a connection that never opened) starts no record: only answered and
    /// timed-out attempts may have reached the receiver.
    pub fn after_attempt(
        previous: Option<Self>,
        delivery: &Delivery,
        attempt: &Attempt,
        rule_name: &str,
    ) -> Option<Self> {
        let may_have_reached =
            attempt.status_code.is_some() || matches!(attempt.error_kind, Some(ErrorKind::Timeout));
        let mut record = match previous {
            Some(previous) => previous,
            None if may_have_reached => Self {
                delivery_id: delivery.id.clone(),
                event_id: delivery.event_id.clone(),
                event_type: delivery.event_type.clone(),
                rule_id: delivery.rule_id.clone(),
                rule_name: rule_name.to_owned(),
                destination: destination(&attempt.request.url),
                status: delivery.status,
                first_attempt_at: attempt.started_at,
                succeeded_at: None,
            },
            None => return None,
        };
        record.status = delivery.status;
        if attempt.succeeded() && record.succeeded_at.is_none() {
            record.succeeded_at = Some(attempt.started_at);
        }
        Some(record)
    }
}

/// `https://crm.example.com:8443/hooks?x=1` → `https://crm.example.com:8443`; credentials in
/// the authority are dropped.
pub fn destination(url: &str) -> String {
    let (scheme, rest) = url.split_once("://").unwrap_or(("", url));
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let host = authority.rsplit_once('@').map_or(authority, |(_, h)| h);
    if scheme.is_empty() {
        host.to_owned()
    } else {
        format!("{scheme}://{host}")
    }
}

/// What an erasure destroyed.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Erased {
    /// Events whose data was destroyed (ones erased before are not counted again).
    pub events: u64,
    /// Deliveries of those events: logged bodies destroyed, open ones closed unsent.
    pub deliveries: u64,
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn data(v: &Value) -> Map<String, Value> {
        v.as_object().cloned().unwrap()
    }

    #[test]
    fn subjects() {
        assert!(Subject::parse("member:123").is_ok());
        assert!(Subject::parse(&"x".repeat(128)).is_ok());
        assert!(Subject::parse(&"é".repeat(128)).is_ok());
        assert!(Subject::parse("").unwrap_err().contains("empty"));
        assert!(Subject::parse("   ").unwrap_err().contains("empty"));
        assert!(
            Subject::parse(&"x".repeat(129))
                .unwrap_err()
                .contains("128")
        );
        assert!(Subject::parse("a\nb").unwrap_err().contains("control"));
        assert_eq!(
            format!("{:?}", Subject::parse("secret").unwrap()),
            "Subject(***)"
        );
    }

    #[test]
    fn paths_resolve_strings_and_numbers() {
        let path = SubjectPath::parse("member.id").unwrap();
        let d = data(&json!({"member": {"id": 123}}));
        assert_eq!(path.resolve(&d).unwrap().as_str(), "123");
        let d = data(&json!({"member": {"id": "m-9"}}));
        assert_eq!(path.resolve(&d).unwrap().as_str(), "m-9");
        let missing = path.resolve(&data(&json!({"member": {}}))).unwrap_err();
        assert!(missing.contains("no value at member.id"), "{missing}");
        let wrong = path
            .resolve(&data(&json!({"member": {"id": [1]}})))
            .unwrap_err();
        assert!(wrong.contains("an array"), "{wrong}");
        let empty = path
            .resolve(&data(&json!({"member": {"id": ""}})))
            .unwrap_err();
        assert!(empty.contains("empty"), "{empty}");
        assert!(SubjectPath::parse("member..id").is_err());
        assert!(SubjectPath::parse("").is_err());
    }

    #[test]
    fn destinations_keep_scheme_host_and_port() {
        assert_eq!(
            destination("https://crm.example.com:8443/hooks?x=1"),
            "https://crm.example.com:8443"
        );
        assert_eq!(
            destination("https://user:pw@crm.example.com/h"),
            "https://crm.example.com"
        );
        assert_eq!(destination("http://127.0.0.1:9/"), "http://127.0.0.1:9");
    }

    fn delivered(status: DeliveryStatus) -> Delivery {
        serde_json::from_value(json!({
            "id": "dlv_1", "event_id": "evt_1", "rule_id": "rul_1", "workspace_id": "wsp_1",
            "event_type": "patient.admitted", "status": status, "test": false,
            "created_at": 1, "updated_at": 1, "attempts": 1, "attempts_left": 0,
            "next_attempt_at": null,
        }))
        .unwrap()
    }

    fn tried(at: i64, status_code: Option<u16>, error_kind: Option<ErrorKind>) -> Attempt {
        serde_json::from_value(json!({
            "number": 1, "started_at": at, "duration_ms": 1, "status_code": status_code,
            "error_kind": error_kind, "error": null, "response": null,
            "request": {"url": "https://crm.example/h", "method": "POST", "headers": [], "body": null},
        }))
        .unwrap()
    }

    #[test]
    fn a_disclosure_starts_at_the_first_attempt_that_may_reach_the_receiver() {
        let retrying = delivered(DeliveryStatus::Retrying);
        let refused = tried(10, None, Some(ErrorKind::Connect));
        assert_eq!(
            Disclosure::after_attempt(None, &retrying, &refused, "crm"),
            None
        );
        let timed_out = tried(20, None, Some(ErrorKind::Timeout));
        let first = Disclosure::after_attempt(None, &retrying, &timed_out, "crm").unwrap();
        assert_eq!((first.first_attempt_at, first.succeeded_at), (20, None));
        assert_eq!(first.destination, "https://crm.example");
        let ok = tried(30, Some(200), None);
        let done = delivered(DeliveryStatus::Succeeded);
        let after = Disclosure::after_attempt(Some(first), &done, &ok, "renamed").unwrap();
        assert_eq!((after.first_attempt_at, after.succeeded_at), (20, Some(30)));
        assert_eq!(after.status, DeliveryStatus::Succeeded);
        assert_eq!(
            after.rule_name, "crm",
            "named as it was when the data first went out"
        );
        let again = Disclosure::after_attempt(Some(after), &done, &tried(40, Some(200), None), "x");
        assert_eq!(
            again.unwrap().succeeded_at,
            Some(30),
            "the first success is kept"
        );
    }

    #[test]
    fn hashes_are_hex_of_sha256_length() {
        assert!(SubjectHash::from_hex("a".repeat(64)).is_some());
        assert!(SubjectHash::from_hex("A".repeat(64)).is_none());
        assert!(SubjectHash::from_hex("a".repeat(63)).is_none());
    }
}
