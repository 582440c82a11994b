//! What the rule form says about its fields: the order errors are listed in, each field's
//! label and the input an error links to, and CEL mistakes in words.

/// The form's fields in the order the page shows them: errors are listed in this order.
pub(super) const FORM_ORDER: [&str; 34] = [
    "name",
    "description",
    "trigger",
    "trigger.type",
    "trigger.events",
    "trigger.cron",
    "trigger.timezone",
    "condition",
    "webhook",
    "webhook.url",
    "webhook.method",
    "webhook.content_type",
    "webhook.headers",
    "webhook.secret_headers",
    "webhook.signing",
    "webhook.payload_format",
    "webhook.body_template",
    "webhook.timeout_ms",
    "max_concurrency",
    "ordering_key",
    "webhook.tls_verify",
    "webhook.auth.type",
    "webhook.auth.client_cert",
    "webhook.auth.client_key",
    "webhook.auth.token_url",
    "webhook.auth.client_id",
    "webhook.auth.client_auth",
    "webhook.auth.client_secret",
    "webhook.auth.private_key",
    "webhook.auth.scope",
    "webhook.auth.audience",
    "log.store_bodies",
    "log.retention_days",
    "log.redact",
];

/// Form field names for each validation field, to point at the right input.
pub(super) fn field_label(field: &str) -> &'static str {
    match field {
        "name" => "Name",
        "description" => "Description",
        "max_concurrency" => "Requests at once",
        "trigger" | "trigger.type" => "Trigger",
        "trigger.events" => "Event types",
        "trigger.cron" => "Schedule (cron)",
        "trigger.timezone" => "Time zone",
        "condition" => "Condition",
        "ordering_key" => "Order by",
        "webhook" | "webhook.url" => "URL",
        "webhook.method" => "Method",
        "webhook.content_type" => "Content type",
        "webhook.headers" => "Headers",
        "webhook.secret_headers" => "Secret headers",
        "webhook.signing" => "Signing",
        "webhook.payload_format" => "Payload format",
        "webhook.body_template" => "Body template",
        "webhook.tls_verify" => "TLS verification",
        "webhook.timeout_ms" => "Timeout",
        "webhook.auth.type" => "Receiver authentication",
        "webhook.auth.client_cert" => "Client certificate",
        "webhook.auth.client_key" => "Client certificate key",
        "webhook.auth.token_url" => "Token URL",
        "webhook.auth.client_id" => "Client id",
        "webhook.auth.client_auth" => "How tidings logs in",
        "webhook.auth.client_secret" => "Client secret",
        "webhook.auth.private_key" => "Signing key",
        "webhook.auth.scope" => "Scope",
        "webhook.auth.audience" => "Audience",
        "log.store_bodies" => "Keep bodies in the log",
        "log.retention_days" => "Keep this rule's log",
        "log.redact" => "Hide in the log",
        _ => "A field",
    }
}

/// The id of the input an error's link in the summary goes to.
pub(super) fn anchor(field: &str) -> &'static str {
    match field {
        "name" => "name",
        "description" => "description",
        "max_concurrency" => "max_concurrency",
        "trigger" | "trigger.type" => "trigger-event",
        "trigger.events" => "events",
        "trigger.cron" => "cron",
        "trigger.timezone" => "timezone",
        "condition" => "condition",
        "ordering_key" => "ordering_key",
        "webhook.method" => "method",
        "webhook.content_type" => "content_type",
        "webhook.headers" => "header_name_1",
        "webhook.secret_headers" => "secret_name_1",
        "webhook.signing" => "signing",
        "webhook.payload_format" => "payload_format",
        "webhook.body_template" => "body_template",
        "webhook.tls_verify" => "tls_verify",
        "webhook.auth.type" => "auth_type",
        "webhook.auth.client_cert" => "client_cert",
        "webhook.auth.client_key" => "client_key",
        "webhook.auth.token_url" => "token_url",
        "webhook.auth.client_id" => "client_id",
        "webhook.auth.client_auth" => "client_auth",
        "webhook.auth.client_secret" => "client_secret",
        "webhook.auth.private_key" => "private_key",
        "webhook.auth.scope" => "scope",
        "webhook.auth.audience" => "audience",
        "webhook.timeout_ms" => "timeout_s",
        "log.store_bodies" => "log_bodies",
        "log.retention_days" => "log_retention_days",
        "log.redact" => "log_redact",
        _ => "url",
    }
}

/// A CEL syntax error as the form shows it: where in the expression as typed, and what was
/// found there, without the parser's list of the tokens it expected (which reads as noise to
/// the person fixing it). Any other message is shown as it is.
pub(super) fn condition_message(message: &str) -> String {
    expression_message(message, "condition")
}

/// `condition_message` for any CEL field of the form, named `what` in the message.
pub(super) fn expression_message(message: &str, field: &str) -> String {
    let Some(rest) = message.strip_prefix("syntax error at line:column ") else {
        return message.to_owned();
    };
    let Some((pos, detail)) = rest.split_once(": ") else {
        return message.to_owned();
    };
    let Some((line, column)) = pos.split_once(':') else {
        return message.to_owned();
    };
    let quoted = |after: &str| {
        detail
            .split_once(after)
            .and_then(|(_, s)| s.split_once('\'').map(|(t, _)| t.to_owned()))
    };
    let found = quoted("mismatched input '")
        .or_else(|| quoted("extraneous input '"))
        .or_else(|| quoted("token recognition error at: '"))
        .or_else(|| quoted("no viable alternative at input '"));
    let what = match found.as_deref() {
        Some("<EOF>") => "the expression ends before it is complete".to_owned(),
        Some(t) => format!("\u{201c}{t}\u{201d} is not expected there"),
        None => "this is not a CEL expression tidings can read".to_owned(),
    };
    let at = if line == "1" {
        format!("column {column}")
    } else {
        format!("line {line}, column {column}")
    };
    format!("a mistake at {at} of the {field}: {what}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_cel_syntax_error_points_at_the_column_without_the_token_list() {
        let raw = "syntax error at line:column 1:18: Syntax error: mismatched input '<EOF>' expecting {'[', '{', '(', '.', '-', '!', 'true', 'false', 'null', NUM_FLOAT, NUM_INT, NUM_UINT, STRING, BYTES, IDENTIFIER} | data.member.id == | .................^";
        assert_eq!(
            condition_message(raw),
            "a mistake at column 18 of the condition: the expression ends before it is complete"
        );
        let raw = "syntax error at line:column 2:5: Syntax error: extraneous input ')' expecting <EOF> | a) | ....^";
        assert_eq!(
            condition_message(raw),
            "a mistake at line 2, column 5 of the condition: \u{201c})\u{201d} is not expected there"
        );
        assert_eq!(
            condition_message("must be at most 2000 characters"),
            "must be at most 2000 characters"
        );
    }
}
