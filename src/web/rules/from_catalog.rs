//! What the rule form takes from the workspace's event catalog: the known types (and a
//! `family:*` pattern for each family seen) offered as a checklist beside the typed patterns,
//! and condition and template examples that use a real field path of the first event type's
//! sample. Samples learned from traffic are already placeholders (`catalog::structure_only`),
//! so an example never carries a real value.

use serde_json::{Map, Value};

use crate::domain::catalog::Entry;
use crate::domain::event::EventType;
use crate::domain::pattern::Pattern;

/// One choice of the event-type checklist.
pub(super) struct Pick {
    pub pattern: String,
    /// The type's description, or what a family pattern matches.
    pub note: String,
    pub checked: bool,
    /// A `family:*` pattern (listed before its types).
    pub family: bool,
}

/// The family of a type: its name up to and including the first `:` (or, with none, the
/// first `.`), so `member:created` is of `member:*` and `lab.result` of `lab.*`.
fn family(name: &str) -> Option<&str> {
    let at = name.find(':').or_else(|| name.find('.'))?;
    Some(&name[..=at])
}

/// The checklist: each family that has a known type, followed by its types; types with no
/// family last. `chosen` (the rule's patterns) are ticked.
pub(super) fn picks(entries: &[Entry], chosen: &[&str]) -> Vec<Pick> {
    let mut families: Vec<&str> = entries
        .iter()
        .filter_map(|e| family(e.name.as_str()))
        .collect();
    families.sort_unstable();
    families.dedup();
    let pick = |pattern: String, note: String, family: bool| Pick {
        checked: chosen.contains(&pattern.as_str()),
        pattern,
        note,
        family,
    };
    let mut out = Vec::new();
    for prefix in &families {
        out.push(pick(
            format!("{prefix}*"),
            format!("every event whose type starts with {prefix}, also ones added later"),
            true,
        ));
        for e in entries
            .iter()
            .filter(|e| family(e.name.as_str()) == Some(prefix))
        {
            out.push(pick(e.name.to_string(), e.description.clone(), false));
        }
    }
    for e in entries.iter().filter(|e| family(e.name.as_str()).is_none()) {
        out.push(pick(e.name.to_string(), e.description.clone(), false));
    }
    out
}

/// Examples for the condition and body-template fields, written against a real field of a
/// catalog sample.
#[derive(Debug, PartialEq, Eq)]
pub(super) struct SampleHelp {
    /// The event type whose sample the examples use.
    pub event_type: String,
    /// A CEL condition that is true for the sample, such as `"vip" in data.member.labels`.
    pub condition: String,
    /// A JSON body template reading a field, such as `{"name": {{ member.name|tojson }}}`.
    pub template: String,
}

/// The help for a rule whose first pattern is `first`: the sample of that type, or of the
/// first known type a wildcard matches. None when the catalog knows nothing about it (its
/// only sample would be a placeholder) or its sample has no field an example can name.
pub(super) fn sample_help(entries: &[Entry], first: &str) -> Option<SampleHelp> {
    let pattern = Pattern::parse(first).ok()?;
    let entry = entries.iter().find(|e| {
        e.sample_from != "placeholder"
            && !e.sample.is_empty()
            && match pattern.exact() {
                Some(exact) => e.name.as_str() == exact,
                None => pattern.matches(&e.name),
            }
    })?;
    examples(&entry.name, &entry.sample)
}

/// How good a leaf is for each example (lower first): a condition reads best over a list
/// (`"vip" in …`), a template over a text field.
fn condition_rank(v: &Value) -> u8 {
    match v {
        Value::Array(_) => 0,
        Value::String(_) => 1,
        Value::Number(_) => 2,
        _ => 3,
    }
}

fn template_rank(v: &Value) -> u8 {
    match v {
        Value::String(_) => 0,
        Value::Number(_) => 1,
        Value::Bool(_) => 2,
        _ => 3,
    }
}

fn examples(event_type: &EventType, sample: &Map<String, Value>) -> Option<SampleHelp> {
    let mut leaves = Vec::new();
    collect_leaves(sample, &mut Vec::new(), &mut leaves);
    let for_condition = leaves
        .iter()
        .filter_map(|(path, v)| condition_for(&path.join("."), v).map(|c| (condition_rank(v), c)))
        .min_by_key(|(rank, _)| *rank)?
        .1;
    let (path, _) = leaves.iter().min_by_key(|(_, v)| template_rank(v))?;
    let key = path.last()?;
    let template = format!("{{\"{key}\": {{{{ {}|tojson }}}}}}", path.join("."));
    Some(SampleHelp {
        event_type: event_type.to_string(),
        condition: for_condition,
        template,
    })
}

/// Most levels an example path goes down.
const MAX_DEPTH: usize = 4;
/// Longest text value quoted in an example.
const MAX_QUOTED_CHARS: usize = 40;

/// Every scalar, or list of scalars, reachable through object keys an expression can name
/// with dots (`member.labels`), in the sample's order.
fn collect_leaves<'a>(
    map: &'a Map<String, Value>,
    path: &mut Vec<&'a str>,
    out: &mut Vec<(Vec<&'a str>, &'a Value)>,
) {
    for (key, value) in map {
        if !nameable(key) {
            continue;
        }
        path.push(key);
        match value {
            Value::Object(inner) if path.len() < MAX_DEPTH => collect_leaves(inner, path, out),
            Value::Object(_) | Value::Null => {}
            Value::Array(items) if items.iter().any(|i| i.is_object() || i.is_array()) => {}
            _ => out.push((path.clone(), value)),
        }
        path.pop();
    }
}

/// Words CEL or `MiniJinja` read as something other than a field name.
const RESERVED: [&str; 25] = [
    "true",
    "false",
    "null",
    "in",
    "as",
    "break",
    "const",
    "continue",
    "else",
    "for",
    "function",
    "if",
    "import",
    "let",
    "loop",
    "package",
    "namespace",
    "return",
    "var",
    "void",
    "while",
    "none",
    "not",
    "and",
    "or",
];

fn nameable(key: &str) -> bool {
    let mut bytes = key.bytes();
    bytes
        .next()
        .is_some_and(|b| b.is_ascii_alphabetic() || b == b'_')
        && bytes.all(|b| b.is_ascii_alphanumeric() || b == b'_')
        && !RESERVED.contains(&key)
        && !key.starts_with("__")
}

/// A condition true for the sample's value at `path` (under `data.`); none for text too long
/// to quote in a help line.
fn condition_for(path: &str, value: &Value) -> Option<String> {
    let quoted = |s: &str| {
        (s.chars().count() <= MAX_QUOTED_CHARS)
            .then(|| serde_json::to_string(s).ok())
            .flatten()
    };
    Some(match value {
        Value::String(s) => format!("data.{path} == {}", quoted(s)?),
        Value::Number(n) => format!("data.{path} >= {n}"),
        Value::Bool(b) => format!("data.{path} == {b}"),
        Value::Array(items) => match items.first()? {
            Value::String(s) => format!("{} in data.{path}", quoted(s)?),
            Value::Number(n) => format!("{n} in data.{path}"),
            Value::Bool(b) => format!("{b} in data.{path}"),
            _ => return None,
        },
        _ => return None,
    })
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::domain::condition::{Condition, Subject};
    use crate::domain::template::render;

    fn entry(name: &str) -> Entry {
        Entry::new(EventType::parse(name).unwrap(), None)
    }

    fn help_for(data: &Value) -> SampleHelp {
        let sample = data.as_object().unwrap();
        examples(&EventType::parse("lab:result").unwrap(), sample).unwrap()
    }

    /// The example condition is true for the sample, and the template renders from it.
    fn holds(help: &SampleHelp, data: &Value) {
        let data = data.as_object().unwrap();
        let condition = Condition::parse(&help.condition).unwrap();
        let subject = Subject {
            event_type: "lab:result",
            event_id: "evt_1",
            occurred_at: "2026-01-01T00:00:00Z",
            data,
            workspace_id: "wsp_1",
            workspace_name: "Clinic",
        };
        assert_eq!(condition.evaluate(&subject), Ok(true), "{}", help.condition);
        let body = render(
            &help.template,
            &Value::Object(data.clone()),
            "application/json",
        )
        .unwrap();
        serde_json::from_slice::<Value>(&body).expect("the example renders JSON");
    }

    #[test]
    fn the_checklist_offers_each_family_then_its_types_and_ticks_the_rules_patterns() {
        let entries: Vec<Entry> = ["ping", "member:created", "member:updated", "lab.result"]
            .into_iter()
            .map(entry)
            .collect();
        let list = picks(&entries, &["member:*", "ping"]);
        let names: Vec<&str> = list.iter().map(|p| p.pattern.as_str()).collect();
        assert_eq!(
            names,
            [
                "lab.*",
                "lab.result",
                "member:*",
                "member:created",
                "member:updated",
                "ping"
            ]
        );
        let ticked: Vec<&str> = list
            .iter()
            .filter(|p| p.checked)
            .map(|p| p.pattern.as_str())
            .collect();
        assert_eq!(ticked, ["member:*", "ping"]);
        assert!(list[2].family && !list[3].family);
        assert!(list[3].note.contains("member"), "{}", list[3].note);
    }

    #[test]
    fn examples_use_a_real_field_of_the_sample_and_hold_for_it() {
        let data = json!({"member": {"id": 123, "name": "Jane Example", "labels": ["vip"]}});
        let help = help_for(&data);
        assert_eq!(help.condition, "\"vip\" in data.member.labels");
        assert_eq!(help.template, "{\"name\": {{ member.name|tojson }}}");
        holds(&help, &data);

        let data = json!({"patient": {"mrn": "0", "weight": 0.0, "admitted": true}});
        let help = help_for(&data);
        assert_eq!(help.condition, "data.patient.mrn == \"0\"");
        holds(&help, &data);

        let data = json!({"count": 0, "flag": false});
        let help = help_for(&data);
        assert_eq!(help.condition, "data.count >= 0");
        assert_eq!(help.template, "{\"count\": {{ count|tojson }}}");
        holds(&help, &data);

        // Keys an expression cannot name with dots, lists of objects and long text are
        // passed over for a field that can be.
        let data = json!({"first-name": "x", "in": "y", "items": [{"a": 1}],
            "note": "n".repeat(80), "ok": "yes"});
        let help = help_for(&data);
        assert_eq!(help.condition, "data.ok == \"yes\"");
        holds(&help, &data);
        assert!(
            examples(
                &EventType::parse("x").unwrap(),
                json!({"a-b": 1, "list": [[1]]}).as_object().unwrap()
            )
            .is_none()
        );
    }

    #[test]
    fn the_help_follows_the_first_pattern_to_a_known_types_sample() {
        let entries: Vec<Entry> = ["ping", "member:created", "zz:unknown"]
            .into_iter()
            .map(entry)
            .collect();
        let exact = sample_help(&entries, "member:created").unwrap();
        assert_eq!(exact.event_type, "member:created");
        assert!(
            exact.condition.contains("data.member."),
            "{}",
            exact.condition
        );
        let family = sample_help(&entries, "member:*").unwrap();
        assert_eq!(family.event_type, "member:created");
        assert_eq!(
            sample_help(&entries, "zz:unknown"),
            None,
            "a placeholder sample"
        );
        assert_eq!(sample_help(&entries, "fax:*"), None);
        assert_eq!(sample_help(&entries, "Not A Pattern"), None);
    }
}
