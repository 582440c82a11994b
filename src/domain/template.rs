//! Body templates (`payload_format: "template"`), rendered with `MiniJinja` over the flat
//! payload. The environment is a sandbox: no loader (so no `include` of files), no access to
//! the process environment or anything but the context, and fuel, recursion and output-size
//! limits so a runaway template stops with an error instead of stalling a worker.

use minijinja::{Environment, UndefinedBehavior};
use serde_json::Value;

/// Longest template source accepted.
pub const MAX_TEMPLATE_BYTES: usize = 64 * 1024;
/// Largest body a template may produce: the same order as the largest event we accept.
pub const MAX_OUTPUT_BYTES: usize = 1024 * 1024;
/// Interpreter steps one render may take. A realistic body template (loops over a few dozen
/// fields) needs a few thousand; this is generous for those and stops `range(99999)` nests.
const FUEL: u64 = 200_000;
/// Nesting of macro calls and includes; a recursive macro is cut off here.
const RECURSION_LIMIT: usize = 64;

/// Why a template could not produce a body.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct TemplateError(pub String);

/// Whether a content type means the body must be JSON (`application/json`, `…+json`).
pub fn is_json(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or_default()
        .trim()
        .to_ascii_lowercase();
    essence == "application/json" || essence.ends_with("+json")
}

fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    // Printing a missing field is an error (surfaced on save and as template_error), while
    // `{% if member.email %}` and `is defined` still work for optional fields.
    env.set_undefined_behavior(UndefinedBehavior::SemiStrict);
    env.set_fuel(Some(FUEL));
    env.set_recursion_limit(RECURSION_LIMIT);
    env
}

/// Checks that a template parses; the message names the line.
pub fn check_syntax(source: &str) -> Result<(), TemplateError> {
    if source.len() > MAX_TEMPLATE_BYTES {
        return Err(TemplateError(format!(
            "must be at most {} KiB",
            MAX_TEMPLATE_BYTES / 1024
        )));
    }
    environment()
        .template_from_str(source)
        .map(|_| ())
        .map_err(|e| TemplateError(describe(&e)))
}

/// Renders `source` with `context` (the flat payload). For a JSON content type the output
/// must parse as JSON.
pub fn render(source: &str, context: &Value, content_type: &str) -> Result<Vec<u8>, TemplateError> {
    let env = environment();
    let template = env
        .template_from_str(source)
        .map_err(|e| TemplateError(describe(&e)))?;
    let mut out = LimitedWriter::default();
    template
        .render_captured_to(
            minijinja::Value::from(minijinja::value::Serde(context)),
            &mut out,
        )
        .map_err(|e| {
            if out.overflowed {
                TemplateError(format!(
                    "the template produced more than {} KiB",
                    MAX_OUTPUT_BYTES / 1024
                ))
            } else {
                TemplateError(describe(&e))
            }
        })?;
    if is_json(content_type)
        && let Err(e) = serde_json::from_slice::<serde::de::IgnoredAny>(&out.bytes)
    {
        return Err(TemplateError(format!(
            "the content type is {content_type} but the template's output is not valid JSON ({e}); use the tojson filter for values, e.g. {{{{ member.name|tojson }}}}"
        )));
    }
    Ok(out.bytes)
}

/// `MiniJinja`'s message, with "line N" in place of its "(in <string>:N)".
fn describe(e: &minijinja::Error) -> String {
    let message = e.to_string();
    match e.line() {
        Some(line) => {
            let place = format!(" (in <string>:{line})");
            format!("{} (line {line})", message.replace(&place, ""))
        }
        None => message,
    }
}

/// Collects output and refuses to grow past `MAX_OUTPUT_BYTES`.
#[derive(Default)]
struct LimitedWriter {
    bytes: Vec<u8>,
    overflowed: bool,
}

impl std::io::Write for LimitedWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.bytes.len() + buf.len() > MAX_OUTPUT_BYTES {
            self.overflowed = true;
            return Err(std::io::Error::other("template output too large"));
        }
        self.bytes.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ctx() -> Value {
        json!({"event": "member:created", "id": "evt_1",
               "member": {"name": "Jane \"JJ\" Doe", "labels": ["vip"], "id": 123}})
    }

    fn render_str(src: &str, ct: &str) -> Result<String, TemplateError> {
        render(src, &ctx(), ct).map(|b| String::from_utf8(b).unwrap())
    }

    #[test]
    fn tojson_embeds_safely() {
        let out = render_str(
            r#"{"text": {{ member.name|tojson }}, "labels": {{ member.labels|tojson }}}"#,
            "application/json",
        )
        .unwrap();
        let v: Value = serde_json::from_str(&out).unwrap();
        assert_eq!(v["text"], "Jane \"JJ\" Doe");
        assert_eq!(v["labels"], json!(["vip"]));
    }

    #[test]
    fn other_content_types_are_written_as_the_template_says() {
        let form = render_str(
            "name={{ member.name|urlencode }}&id={{ member.id }}",
            "application/x-www-form-urlencoded",
        )
        .unwrap();
        assert_eq!(form, "name=Jane%20%22JJ%22%20Doe&id=123");
        let xml = render_str(
            "<m id=\"{{ member.id }}\">{{ event }}</m>",
            "application/xml",
        )
        .unwrap();
        assert_eq!(xml, "<m id=\"123\">member:created</m>");
    }

    #[test]
    fn json_output_must_parse() {
        let err = render_str(r#"{"text": {{ member.name }}}"#, "application/json").unwrap_err();
        assert!(err.0.contains("not valid JSON"), "{err}");
        assert!(render_str("plain {{ member.name }}", "text/plain").is_ok());
    }

    #[test]
    fn errors_name_the_line() {
        let err = check_syntax("line one\n{% if %}").unwrap_err();
        assert!(err.0.contains("line 2"), "{err}");
        let err = render_str("{{ member.missing.deeper }}", "text/plain").unwrap_err();
        assert!(err.0.contains("undefined"), "{err}");
        // Optional fields can still be tested.
        assert_eq!(
            render_str(
                "{% if member.email %}x{% else %}none{% endif %}",
                "text/plain"
            )
            .unwrap(),
            "none"
        );
    }

    #[test]
    fn runaway_templates_are_stopped() {
        let loops = render_str(
            "{% for a in range(1000) %}{% for b in range(1000) %}{% endfor %}{% endfor %}",
            "text/plain",
        )
        .unwrap_err();
        assert!(loops.0.contains("fuel"), "{loops}");
        let recursion = render_str(
            "{% macro f(n) %}{{ f(n + 1) }}{% endmacro %}{{ f(0) }}",
            "text/plain",
        )
        .unwrap_err();
        assert!(recursion.0.contains("recursion"), "{recursion}");
        let huge = render_str(
            "{% for a in range(20000) %}{{ 'x' * 100 }}{% endfor %}",
            "text/plain",
        )
        .unwrap_err();
        assert!(huge.0.contains("more than"), "{huge}");
    }

    #[test]
    fn no_files_or_environment() {
        assert!(render_str("{% include '/etc/passwd' %}", "text/plain").is_err());
        assert!(render_str("{{ env }}", "text/plain").is_err());
    }
}
