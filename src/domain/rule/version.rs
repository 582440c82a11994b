//! Rule versions and drafts (SPEC §14): every change that goes live is a numbered version
//! kept with who published it, and a draft is a whole rule waiting to go live. Both hold the
//! rule as stored (secret values sealed). `diff` says what a change changes, field by field,
//! for the audit log and the page shown before publishing.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::Rule;
use crate::domain::audit::Actor;
use crate::domain::ids::{RuleId, WorkspaceId};

/// One published version of a rule: the rule exactly as it went live.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleVersion {
    pub rule_id: RuleId,
    pub version: u32,
    pub published_at: i64,
    pub published_by: Actor,
    pub rule: Rule,
}

/// A rule's draft: validated like any rule and stored whole, changing nothing live until it
/// is published.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RuleDraft {
    pub rule_id: RuleId,
    pub workspace_id: WorkspaceId,
    /// The live version the draft was written against.
    pub base_version: u32,
    pub saved_at: i64,
    pub saved_by: Actor,
    pub rule: Rule,
}

impl Actor {
    /// Whether two actors are the same writer for `rules.require_review`: the same API key
    /// or the same person, whatever either is called now.
    pub fn same_writer(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::ApiKey { id: a, .. }, Self::ApiKey { id: b, .. })
            | (Self::User { id: a, .. }, Self::User { id: b, .. }) => a == b,
            (Self::Cli, Self::Cli) | (Self::System, Self::System) => true,
            _ => false,
        }
    }
}

/// What publishing `rule` as its next version writes, newest last, with `rule.version` set:
/// the new version, preceded, for a rule stored before versions existed (version 0), by what
/// it was, as version 1, so its history starts with the rule people knew.
pub fn versions_to_write(existing: Option<&Rule>, rule: &mut Rule, by: Actor) -> Vec<RuleVersion> {
    let mut out = Vec::new();
    let current = match existing {
        None => 0,
        Some(old) if old.version == 0 => {
            let mut first = old.clone();
            first.version = 1;
            out.push(RuleVersion {
                rule_id: old.id.clone(),
                version: 1,
                published_at: old.updated_at,
                published_by: Actor::System,
                rule: first,
            });
            1
        }
        Some(old) => old.version,
    };
    rule.version = current + 1;
    out.push(RuleVersion {
        rule_id: rule.id.clone(),
        version: rule.version,
        published_at: rule.updated_at,
        published_by: by,
        rule: rule.clone(),
    });
    out
}

/// One changed field: its dotted path, and its value before and after (`null` where absent).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Change {
    pub path: String,
    pub before: Value,
    pub after: Value,
}

/// The fields that differ between two JSON objects, in the order of `after` (then the
/// removed ones): objects compared key by key, anything else (arrays included) as a whole.
pub fn diff(before: &Value, after: &Value) -> Vec<Change> {
    let mut out = Vec::new();
    walk("", before, after, &mut out);
    out
}

fn walk(path: &str, before: &Value, after: &Value, out: &mut Vec<Change>) {
    match (before, after) {
        (Value::Object(b), Value::Object(a)) => {
            let join = |k: &str| {
                if path.is_empty() {
                    k.to_owned()
                } else {
                    format!("{path}.{k}")
                }
            };
            for (k, av) in a {
                walk(&join(k), b.get(k).unwrap_or(&Value::Null), av, out);
            }
            for (k, bv) in b.iter().filter(|(k, _)| !a.contains_key(*k)) {
                walk(&join(k), bv, &Value::Null, out);
            }
        }
        _ if before == after => {}
        _ => out.push(Change {
            path: path.to_owned(),
            before: before.clone(),
            after: after.clone(),
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn diff_names_each_changed_leaf_and_nothing_else() {
        let before = json!({"name": "a", "webhook": {"url": "https://x", "headers": {"A": "1"}},
                            "condition": "x > 1", "trigger": {"events": ["a", "b"]}});
        let after = json!({"name": "a", "webhook": {"url": "https://y", "headers": {"A": "1", "B": "2"}},
                           "trigger": {"events": ["a"]}});
        let paths: Vec<(String, Value, Value)> = diff(&before, &after)
            .into_iter()
            .map(|c| (c.path, c.before, c.after))
            .collect();
        assert_eq!(
            paths,
            vec![
                ("webhook.url".into(), json!("https://x"), json!("https://y")),
                ("webhook.headers.B".into(), Value::Null, json!("2")),
                ("trigger.events".into(), json!(["a", "b"]), json!(["a"])),
                ("condition".into(), json!("x > 1"), Value::Null),
            ]
        );
        assert!(diff(&before, &before).is_empty());
    }

    #[test]
    fn same_writer_is_the_same_key_or_person() {
        let key = |id: &str, name: &str| Actor::ApiKey {
            id: id.into(),
            name: name.into(),
        };
        let user = |id: &str| Actor::User {
            id: id.into(),
            name: "n".into(),
        };
        assert!(key("k1", "a").same_writer(&key("k1", "renamed")));
        assert!(!key("k1", "a").same_writer(&key("k2", "a")));
        assert!(!key("k1", "a").same_writer(&user("k1")));
        assert!(user("u1").same_writer(&user("u1")));
        assert!(!Actor::Cli.same_writer(&Actor::System));
    }
}
