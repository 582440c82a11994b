//! Rule conditions: CEL expressions (through the `cel` crate) over the event, its data and
//! the workspace. Parsed when a rule is saved; compiled once per cached rule and evaluated at
//! ingest. A condition must yield a boolean; anything else is a runtime error, which the
//! caller records as a `condition_error` delivery rather than guessing. What a condition may
//! cost — refused at save, cut off at run time — is `budget`'s.

mod budget;

use std::fmt;
use std::sync::{Arc, LazyLock, OnceLock};

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

pub use budget::{Budget, MAX_NODES};

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
    program: OnceLock<Result<Arc<Compiled>, String>>,
}

/// The program with its budget charges built in (`budget::instrument`).
struct Compiled {
    expression: cel::IdedExpr,
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
    /// Checks the syntax (the error shows the line and column, and the offending line) and
    /// the cost: what would grow with the square of an event's list is refused here, so every
    /// condition that saves evaluates in microseconds to a few milliseconds.
    pub fn parse(source: &str) -> Result<Self, String> {
        if source.chars().count() > MAX_CONDITION_CHARS {
            return Err(format!("must be at most {MAX_CONDITION_CHARS} characters"));
        }
        let program = parse_program(source)?;
        budget::check(program.expression(), program.source_info())?;
        let condition = Self::from(source.to_owned());
        let _ = condition.program.set(Ok(Arc::new(instrumented(&program))));
        Ok(condition)
    }

    pub fn source(&self) -> &str {
        &self.source
    }

    /// Whether the event passes, within `Budget::DEFAULT`. `Err` carries a message for the
    /// admin: a missing field, a wrong type, a result that is not a boolean, or the budget
    /// having run out.
    pub fn evaluate(&self, subject: &Subject<'_>) -> Result<bool, String> {
        self.evaluate_within(subject, Budget::DEFAULT)
    }

    /// `evaluate` with another budget. A condition stored before the cost check existed is
    /// held to the budget the same way.
    pub fn evaluate_within(&self, subject: &Subject<'_>, budget: Budget) -> Result<bool, String> {
        match self.value_within(subject, budget)? {
            cel::Value::Bool(b) => Ok(b),
            other => Err(format!(
                "the condition must give true or false, but gave {}",
                describe(&other)
            )),
        }
    }

    /// The expression read as an ordering key (SPEC §15): a text, a whole number or a
    /// boolean, as text; `None` for null (no key: the delivery is not ordered). A list, a map
    /// or a fraction is an error, since two of them that look alike may not compare equal.
    pub fn evaluate_key(&self, subject: &Subject<'_>) -> Result<Option<String>, String> {
        match self.value_within(subject, Budget::DEFAULT)? {
            cel::Value::Null => Ok(None),
            cel::Value::String(s) => Ok(Some(format!("s:{s}"))),
            cel::Value::Int(i) => Ok(Some(format!("n:{i}"))),
            cel::Value::UInt(u) => Ok(Some(format!("n:{u}"))),
            cel::Value::Bool(b) => Ok(Some(format!("b:{b}"))),
            other => Err(format!(
                "the ordering key must give a text or a whole number, but gave {}",
                describe(&other)
            )),
        }
    }

    fn value_within(&self, subject: &Subject<'_>, budget: Budget) -> Result<cel::Value, String> {
        let program = self
            .program
            .get_or_init(|| compile(&self.source).map(Arc::new))
            .as_ref()
            .map_err(Clone::clone)?;
        // The interpreter is third-party code running on producer-supplied data: a panic in it
        // must become this event's condition error, not take the ingest request down.
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
            run(program, subject, budget)
        }))
        .unwrap_or_else(|_| Err("the expression could not be evaluated (interpreter fault)".into()))
    }
}

fn parse_program(source: &str) -> Result<cel::Program, String> {
    ENV.compile(source).map_err(|e| {
        // The crate prefixes every error with "ERROR: <input>:"; the admin only needs the place.
        e.to_string()
            .replace("ERROR: <input>:", "syntax error at line:column ")
    })
}

fn instrumented(program: &cel::Program) -> Compiled {
    Compiled {
        expression: budget::instrument(program.expression().clone()),
    }
}

/// A stored condition's program: parsed and instrumented, but not cost-checked (it was saved
/// before the check, or under a looser one), so the run-time budget is what bounds it.
fn compile(source: &str) -> Result<Compiled, String> {
    parse_program(source).map(|p| instrumented(&p))
}

fn run(program: &Compiled, s: &Subject<'_>, budget: Budget) -> Result<cel::Value, String> {
    let mut context = cel::Context::with_env(Arc::clone(&ENV));
    let meter = Arc::new(budget::Meter::new(budget));
    for (name, function) in budget::Meter::functions(&meter) {
        context
            .add_function(name, function)
            .map_err(|e| format!("the condition could not be prepared: {e}"))?;
    }
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
    let result = cel::Value::resolve(&program.expression, &context);
    if let Some(why) = meter.exhausted() {
        return Err(why);
    }
    result.map_err(|e| e.to_string())
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
        cel::Value::Bool(b) => format!("the boolean {b}"),
        _ => "a value of another kind".into(),
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
    use std::time::Duration;

    use super::*;

    fn key(src: &str, data: &Value) -> Result<Option<String>, String> {
        let data = data.as_object().unwrap().clone();
        Condition::parse(src).unwrap().evaluate_key(&Subject {
            event_type: "visit",
            event_id: "evt_1",
            occurred_at: "2026-11-23T10:00:00Z",
            data: &data,
            workspace_id: "wsp_1",
            workspace_name: "Acme Health",
        })
    }

    #[test]
    fn ordering_keys_are_texts_whole_numbers_or_booleans_and_null_is_none() {
        let d = json!({"member": {"id": "m-1", "n": 7, "vip": true, "tags": ["a"]}, "seq": 42});
        assert_eq!(key("data.member.id", &d).unwrap(), Some("s:m-1".into()));
        assert_eq!(key("data.member.n", &d).unwrap(), Some("n:7".into()));
        assert_eq!(key("data.member.vip", &d).unwrap(), Some("b:true".into()));
        // A text and a number that print alike are different keys.
        let text_seven = json!({"member": {"n": "7"}});
        assert_ne!(key("data.member.n", &d), key("data.member.n", &text_seven));
        assert_eq!(
            key("data.member.gone", &json!({"member": {"gone": null}})).unwrap(),
            None
        );
        let list = key("data.member.tags", &d).unwrap_err();
        assert!(list.contains("a list"), "{list}");
        // JSON numbers arrive unsigned: arithmetic on them takes unsigned literals.
        assert!(key("data.seq % 100", &d).is_err());
        assert_eq!(key("data.seq % 100u", &d).unwrap(), Some("n:42".into()));
    }

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

    fn subject(data: &Map<String, Value>) -> Subject<'_> {
        Subject {
            event_type: "data_record:created",
            event_id: "evt_1",
            occurred_at: "2026-11-23T10:00:00Z",
            data,
            workspace_id: "wsp_1",
            workspace_name: "Acme Health",
        }
    }

    /// The issue's event: 17 KB, most of it one list of small numbers.
    fn hostile_data(n: usize) -> Map<String, Value> {
        json!({"xs": (0..n).map(|i| i % 10).collect::<Vec<_>>()})
            .as_object()
            .unwrap()
            .clone()
    }

    const HEAVY: &str = "data.xs.all(a, data.xs.all(b, a + b >= 0))";

    #[test]
    fn nested_comprehensions_over_event_data_are_refused_at_save() {
        for src in [
            HEAVY,
            "data.xs.exists(a, data.ys.exists(b, a == b))",
            "data.xs.map(a, data.xs.filter(b, b > a)).size() > 0",
            "data.xs.filter(a, data.xs.exists_one(b, b == a)).size() > 0",
            "[1, 2].all(i, data.xs.all(a, data.xs.exists(b, a == b)))",
        ] {
            let err = Condition::parse(src).unwrap_err();
            assert!(err.contains("square of the list"), "{src}: {err}");
        }
        let err = Condition::parse(HEAVY).unwrap_err();
        // The place is the inner loop's: its `(`.
        assert!(err.starts_with("`all` at line:column 1:27 "), "{err}");
        // Bounded nesting is fine: a literal list outside or inside, or one after another.
        for src in [
            "[1, 2, 3].all(i, data.xs.exists(a, a == i))",
            "data.xs.all(a, [1, 2].exists(b, a != b))",
            "data.xs.all(a, a >= 0) && data.ys.exists(b, b == 1)",
            "data.xs.map(a, a * 2).filter(b, b > 2).size() > 0",
        ] {
            assert!(Condition::parse(src).is_ok(), "{src}");
        }
        let huge = (0..MAX_NODES)
            .map(|i| format!("data.a == {i}"))
            .collect::<Vec<_>>();
        let huge = huge.join("||");
        assert!(huge.len() <= MAX_CONDITION_CHARS * 10);
        let err = budget_check_only(&huge).unwrap_err();
        assert!(err.contains("too complex"), "{err}");
    }

    fn budget_check_only(src: &str) -> Result<(), String> {
        let program = parse_program(src)?;
        budget::check(program.expression(), program.source_info())
    }

    #[test]
    fn a_stored_heavy_condition_is_cut_off_by_the_budget_quickly() {
        let stored: Condition = serde_json::from_value(json!(HEAVY)).unwrap();
        let data = hostile_data(8_000);
        let started = std::time::Instant::now();
        let err = stored.evaluate(&subject(&data)).unwrap_err();
        assert!(err.contains("ran out of its evaluation budget"), "{err}");
        assert!(
            started.elapsed() < Duration::from_secs(2),
            "{:?}",
            started.elapsed()
        );
        // Counted, not timed: the verdict does not depend on how loaded the machine is.
        let roomy = Budget {
            time: Duration::from_secs(60),
            ..Budget::DEFAULT
        };
        let err = stored.evaluate_within(&subject(&data), roomy).unwrap_err();
        assert!(err.contains("50000 steps"), "{err}");
    }

    #[test]
    fn scanning_another_list_in_a_loop_is_charged_and_errors_cannot_hide_it() {
        let data = hostile_data(5_000);
        let c = Condition::parse("data.xs.all(a, a in data.xs)").unwrap();
        let err = c.evaluate(&subject(&data)).unwrap_err();
        assert!(err.contains("budget"), "{err}");
        // `||` absorbs an error beside `true`, but a run that overspent is not believed.
        let c = Condition::parse("data.xs.all(a, a in data.xs) || true").unwrap();
        assert!(c.evaluate(&subject(&data)).unwrap_err().contains("budget"));
        // The same shape over a small list is well within budget.
        assert_eq!(c.evaluate(&subject(&hostile_data(100))), Ok(true));
    }

    #[test]
    fn a_wall_clock_cut_off_backs_up_the_count() {
        let c = Condition::parse("data.xs.all(a, a >= 0)").unwrap();
        let tight = Budget {
            steps: u64::MAX,
            time: Duration::ZERO,
        };
        let err = c
            .evaluate_within(&subject(&hostile_data(10)), tight)
            .unwrap_err();
        assert!(
            err.contains("ran out of its evaluation budget (0 ms)"),
            "{err}"
        );
    }

    #[test]
    fn instrumented_macros_keep_their_meaning() {
        let data = json!({"xs": [1, 2, 3, 4], "m": {"a": 1, "b": 2}, "s": "hello"})
            .as_object()
            .unwrap()
            .clone();
        for src in [
            "data.xs.map(x, x * 2u) == [2u, 4u, 6u, 8u]",
            "data.xs.filter(x, x % 2u == 0u) == [2u, 4u]",
            "data.xs.map(x, x > 2, x * 10u) == [30u, 40u]",
            "data.xs.exists_one(x, x == 3)",
            "!data.xs.exists_one(x, x > 2)",
            "data.xs.all(x, x > 0) && data.xs.exists(x, x == 4)",
            "data.m.all(k, k in data.m) && data.m.exists(k, data.m[k] == 2)",
            "size(data.xs) == 4 && 3 in data.xs && !(9 in data.xs)",
            r#"data.s.startsWith("he") && data.s + "!" == "hello!""#,
            r#"{"a": data.xs[0]}["a"] == 1 && [data.xs[1], 7][1] == 7"#,
            // An error beside false in `all` is still false, as CEL says.
            "!data.xs.all(x, x == 1 && data.missing)",
        ] {
            let c = Condition::parse(src).unwrap();
            assert_eq!(c.evaluate(&subject(&data)), Ok(true), "{src}");
        }
    }

    #[test]
    fn an_ordinary_condition_over_a_long_list_costs_little() {
        let data = hostile_data(20_000);
        let c = Condition::parse("data.xs.exists(a, a == 11) || size(data.xs) > 0").unwrap();
        let started = std::time::Instant::now();
        // Within the step count; the clock is left out, as this build is unoptimised and the
        // machine may be busy.
        let roomy = Budget {
            time: Duration::from_secs(60),
            ..Budget::DEFAULT
        };
        assert_eq!(c.evaluate_within(&subject(&data), roomy), Ok(true));
        assert!(started.elapsed() < Duration::from_secs(2));
    }
}
