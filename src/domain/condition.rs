//! Rule conditions: CEL expressions (through the `cel` crate) over the event, its data and
//! the workspace. Parsed when a rule is saved; compiled once per cached rule and evaluated at
//! ingest. A condition must yield a boolean; anything else is a runtime error, which the
//! caller records as a `condition_error` delivery rather than guessing.

use std::fmt;
use std::sync::{Arc, LazyLock, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

/// Longest condition accepted, so a pasted blob cannot become a slow parse on every save.
pub const MAX_CONDITION_CHARS: usize = 4096;

/// The standard CEL environment (functions and macros such as `has`, `exists`, `size`),
/// built once: building it costs far more than evaluating a typical condition.
static ENV: LazyLock<Arc<cel::Env>> = LazyLock::new(|| Arc::new(cel::Env::stdlib()));

/// A condition as stored: its source, and the compiled program made on first use.
#[derive(Clone, Serialize, Deserialize)]
#[serde(from = "String", into = "String")]
pub struct Condition {
    source: String,
    #[serde(skip)]
    program: OnceLock<Result<Arc<cel::Program>, String>>,
}

/// What a condition sees of one event.
pub struct Subject<'a> {
    pub event_type: &'a str,
    pub event_id: &'a str,
    /// RFC 3339.
    pub occurred_at: &'a str,
    pub data: &'a Map<String, Value>,
    pub workspace_id: &'a str,
    pub workspace_name: &'a str,
}

impl Condition {
    /// Checks the syntax; the error shows the line and column, and the offending line.
    pub fn parse(source: &str) -> Result<Self, String> {
        if source.chars().count() > MAX_CONDITION_CHARS {
            return Err(format!("must be at most {MAX_CONDITION_CHARS} characters"));
        }
        let program = compile(source)?;
        let condition = Self::from(source.to_owned());
        let _ = condition.program.set(Ok(Arc::new(program)));
        Ok(condition)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the event passes. `Err` carries a message for the admin: a missing field, a
    /// wrong type, or a result that is not a boolean.
    pub fn evaluate(&self, subject: &Subject<'_>) -> Result<bool, String> {
        let program = self
            .program
            .get_or_init(|| compile(&self.source).map(Arc::new))
            .as_ref()
            .map_err(Clone::clone)?;
        // The interpreter is third-party code running on producer-supplied data: a panic in it
        // must become this event's condition error, not take the ingest request down.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| run(program, subject)))
            .unwrap_or_else(|_| {
                Err("the condition could not be evaluated (interpreter fault)".into())
            })
    }
}

fn compile(source: &str) -> Result<cel::Program, String> {
    ENV.compile(source).map_err(|e| {
        // The crate prefixes every error with "ERROR: <input>:"; the admin only needs the place.
        e.to_string()
            .replace("ERROR: <input>:", "syntax error at line:column ")
    })
}

fn run(program: &cel::Program, s: &Subject<'_>) -> Result<bool, String> {
    let mut context = cel::Context::with_env(Arc::clone(&ENV));
    bind(
        "event",
        &json!({"type": s.event_type, "id": s.event_id, "occurred_at": s.occurred_at}),
        &mut context,
    )?;
    // Serialised straight from the event's map: no copy of the data first.
    bind("data", s.data, &mut context)?;
    bind(
        "workspace",
        &json!({"id": s.workspace_id, "name": s.workspace_name}),
        &mut context,
    )?;
    match program.execute(&context) {
        Ok(cel::Value::Bool(b)) => Ok(b),
        Ok(other) => Err(format!(
            "the condition must give true or false, but gave {}",
            describe(&other)
        )),
        Err(e) => Err(e.to_string()),
    }
}

/// Adds a variable to the context, converted from its serde form.
fn bind(
    name: &str,
    value: &impl serde::Serialize,
    context: &mut cel::Context<'_, '_>,
) -> Result<(), String> {
    let value = cel::to_value(value).map_err(|e| format!("{name} cannot be used in CEL: {e}"))?;
    context.add_variable_from_value(name, value);
    Ok(())
}

fn describe(v: &cel::Value) -> String {
    match v {
        cel::Value::Null => "null".into(),
        cel::Value::Int(i) => format!("the number {i}"),
        cel::Value::UInt(u) => format!("the number {u}"),
        cel::Value::Float(f) => format!("the number {f}"),
        cel::Value::String(s) => format!("the text {:?}", s.as_str()),
        cel::Value::List(_) => "a list".into(),
        cel::Value::Map(_) => "a map".into(),
        _ => "a value that is not a boolean".into(),
    }
}

impl From<String> for Condition {
    fn from(source: String) -> Self {
        Self {
            source,
            program: OnceLock::new(),
        }
    }
}

impl From<Condition> for String {
    fn from(c: Condition) -> Self {
        c.source
    }
}

impl fmt::Debug for Condition {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("Condition").field(&self.source).finish()
    }
}

impl PartialEq for Condition {
    fn eq(&self, other: &Self) -> bool {
        self.source == other.source
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn eval(src: &str, data: &Value) -> Result<bool, String> {
        let data = data.as_object().unwrap().clone();
        Condition::parse(src).unwrap().evaluate(&Subject {
            event_type: "data_record:created",
            event_id: "evt_1",
            occurred_at: "2026-11-23T10:00:00Z",
            data: &data,
            workspace_id: "wsp_1",
            workspace_name: "Acme Health",
        })
    }

    fn sample() -> Value {
        json!({
            "member": {"id": 123, "name": "John Doe", "labels": ["vip", "new"]},
            "dataRecord": {"id": 4567, "fields": {"priority": "high", "score": 7.5}},
        })
    }

    #[test]
    fn the_spec_example_and_friends() {
        let d = sample();
        let yes = [
            r#"data.dataRecord.fields.priority == "high" && "vip" in data.member.labels"#,
            "data.member.id > 100",
            "data.dataRecord.fields.score >= 7.0",
            "has(data.member.labels)",
            "!has(data.member.email)",
            r#"event.type == "data_record:created" && event.type.startsWith("data_record:")"#,
            r#"workspace.name == "Acme Health""#,
            r#"data.member.labels.exists(l, l == "new")"#,
            r#"data.member.name.matches("^John")"#,
        ];
        for src in yes {
            assert_eq!(eval(src, &d), Ok(true), "{src}");
        }
        assert_eq!(eval(r#""gold" in data.member.labels"#, &d), Ok(false));
    }

    #[test]
    fn syntax_errors_say_where() {
        let err = Condition::parse("data.member.id >").unwrap_err();
        assert!(err.contains("line:column 1:"), "{err}");
        assert!(Condition::parse(&"a".repeat(MAX_CONDITION_CHARS + 1)).is_err());
    }

    #[test]
    fn runtime_errors_are_reported_not_guessed() {
        let d = sample();
        let missing = eval("data.call.id == 1", &d).unwrap_err();
        assert!(missing.contains("call"), "{missing}");
        let not_bool = eval("data.member.id", &d).unwrap_err();
        assert!(not_bool.contains("true or false"), "{not_bool}");
        assert!(eval(r#"data.member.id == "x" || data.member.name + 1 == 2"#, &d).is_err());
    }

    #[test]
    fn a_stored_condition_compiles_on_first_use() {
        let stored: Condition = serde_json::from_value(json!("data.member.id == 123")).unwrap();
        let data = sample().as_object().unwrap().clone();
        let subject = Subject {
            event_type: "member:created",
            event_id: "evt_1",
            occurred_at: "2026-11-23T10:00:00Z",
            data: &data,
            workspace_id: "wsp_1",
            workspace_name: "Default",
        };
        assert_eq!(stored.evaluate(&subject), Ok(true));
        assert_eq!(
            serde_json::to_value(&stored).unwrap(),
            json!("data.member.id == 123")
        );
    }
}
