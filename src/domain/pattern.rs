//! Trigger patterns: an exact event type, or a prefix ending in `*` (`member:*`, `*`).

use serde::{Deserialize, Serialize};

use super::event::{EventType, is_type_body};
use super::system::{self, is_system};

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Pattern(String);

impl Pattern {
    pub fn parse(s: &str) -> Result<Self, String> {
        let valid = match s.strip_suffix('*') {
            Some("") => true,
            Some(prefix) => is_type_body(prefix) && !prefix.contains('*'),
            None => EventType::parse(s).is_ok(),
        };
        if valid {
            Ok(Self(s.to_owned()))
        } else {
            Err(format!(
                "invalid event pattern {s:?}: use an exact event type (member:created) or a prefix ending in * (member:*, *)"
            ))
        }
    }

    /// A system event (`tidings:…`) is matched only by a pattern that itself starts with
    /// `tidings:`, so `*` and other wildcards that were written before alerts existed never
    /// start receiving tidings' own events.
    pub fn matches(&self, event_type: &EventType) -> bool {
        if is_system(event_type) && !self.0.starts_with(system::PREFIX) {
            return false;
        }
        match self.0.strip_suffix('*') {
            Some(prefix) => event_type.as_str().starts_with(prefix),
            None => self.0 == event_type.as_str(),
        }
    }

    /// The exact type this pattern names, if it has no wildcard.
    pub fn exact(&self) -> Option<&str> {
        (!self.0.ends_with('*')).then_some(self.0.as_str())
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for Pattern {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        Self::parse(&s)
    }
}

impl From<Pattern> for String {
    fn from(p: Pattern) -> String {
        p.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(s: &str) -> EventType {
        EventType::parse(s).unwrap()
    }

    #[test]
    fn matching() {
        let p = Pattern::parse("member:*").unwrap();
        assert!(p.matches(&t("member:created")));
        assert!(!p.matches(&t("members:created")));
        assert!(Pattern::parse("*").unwrap().matches(&t("ping")));
        assert!(
            Pattern::parse("medical-encounters.*")
                .unwrap()
                .matches(&t("medical-encounters.create"))
        );
        let exact = Pattern::parse("data_record:created").unwrap();
        assert!(exact.matches(&t("data_record:created")));
        assert!(!exact.matches(&t("data_record:created2")));
    }

    #[test]
    fn only_tidings_patterns_match_system_events() {
        let failing = t("tidings:rule.failing");
        for no in ["*", "t*", "tidings*", "rule.failing"] {
            assert!(!Pattern::parse(no).unwrap().matches(&failing), "{no}");
        }
        for yes in ["tidings:*", "tidings:rule.*", "tidings:rule.failing"] {
            assert!(Pattern::parse(yes).unwrap().matches(&failing), "{yes}");
        }
        assert!(
            !Pattern::parse("tidings:*")
                .unwrap()
                .matches(&t("member:created"))
        );
    }

    #[test]
    fn invalid_patterns() {
        for bad in ["", "mem*ber", "**", "Member:*", "a b*", "*x"] {
            assert!(Pattern::parse(bad).is_err(), "{bad}");
        }
    }
}
