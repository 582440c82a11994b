//! `GET /api/v1/openapi.json`: served without a key, valid OpenAPI 3 (checked by the reference
//! Python validator), self-consistent, and in step with the server in both directions: every
//! documented operation is served with the documented key roles, and a walk through every
//! operation with real data finds each answer's status and body in the document.

use std::collections::BTreeSet;
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::app::{Resp, TestApp, spawn_app};
use crate::support::external::validate_openapi;
use crate::support::receiver::TestReceiver;

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

fn fetch(app: &TestApp) -> Value {
    let resp = app.raw("GET", "/api/v1/openapi.json", None, None, &[]);
    assert_eq!(resp.status, 200, "{}", resp.text);
    assert!(resp.body.is_object(), "not JSON: {}", resp.text);
    resp.body
}

/// Every (method, path template) the document lists.
fn operations(doc: &Value) -> Vec<(String, String)> {
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().expect("paths") {
        for method in METHODS {
            if item.get(method).is_some() {
                ops.push((method.to_owned(), path.clone()));
            }
        }
    }
    ops
}

/// The roles of an operation's security requirements; empty when it needs no key.
fn roles(op: &Value) -> BTreeSet<String> {
    op["security"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|req| req["api_key"].as_array().cloned().unwrap_or_default())
        .map(|r| r.as_str().expect("role").to_owned())
        .collect()
}

/// Follows a local `$ref` (`#/components/schemas/X`).
fn resolve<'a>(doc: &'a Value, reference: &str) -> Option<&'a Value> {
    doc.pointer(reference.strip_prefix('#')?)
}

#[test]
fn the_document_is_served_without_a_key_and_is_valid_openapi_3() {
    let app = spawn_app();
    let resp = app.raw("GET", "/api/v1/openapi.json", None, None, &[]);
    assert_eq!(resp.status, 200, "{}", resp.text);
    let doc = &resp.body;
    let version = doc["openapi"].as_str().expect("openapi version");
    assert!(version.starts_with("3."), "{version}");
    assert_eq!(doc["info"]["title"], "tidings");
    assert_eq!(
        doc["components"]["securitySchemes"]["api_key"]["scheme"],
        "bearer"
    );
    // A key, even a wrong one, changes nothing: the document is public.
    let with_bad_key = app.raw("GET", "/api/v1/openapi.json", Some("nope"), None, &[]);
    assert_eq!(with_bad_key.status, 200);
    assert_eq!(with_bad_key.body, resp.body);

    match validate_openapi(&resp.text) {
        Ok(_) => {}
        Err(reason) => panic!("openapi-spec-validator rejects the document: {reason}"),
    }
    // The validator does catch a broken document, so its passing above means something.
    let mut broken = resp.body.clone();
    broken["paths"]["/api/v1/rules"]["get"]["responses"] = json!("none");
    if let Err(reason) = validate_openapi(&broken.to_string()) {
        assert!(!reason.is_empty());
    } else {
        assert!(
            !crate::support::external::require_external(),
            "the validator accepted a document whose responses are a string"
        );
    }
}

#[test]
fn every_ref_resolves_and_every_operation_is_fully_described() {
    let app = spawn_app();
    let doc = fetch(&app);

    let mut refs = Vec::new();
    collect_refs(&doc, &mut refs);
    assert!(refs.len() > 20, "suspiciously few $refs: {refs:?}");
    for r in &refs {
        assert!(resolve(&doc, r).is_some(), "$ref {r} resolves to nothing");
    }

    let ops = operations(&doc);
    let mut ids = BTreeSet::new();
    for (method, path) in &ops {
        let op = &doc["paths"][path][method];
        let id = op["operationId"].as_str().expect("operationId");
        assert!(ids.insert(id.to_owned()), "operationId {id} repeats");
        let responses = op["responses"].as_object().expect("responses");
        let success: Vec<&String> = responses.keys().filter(|s| s.starts_with('2')).collect();
        assert!(!success.is_empty(), "{method} {path} documents no 2xx");
        for (status, response) in responses {
            assert!(
                response["description"]
                    .as_str()
                    .is_some_and(|d| !d.is_empty()),
                "{method} {path} {status} has no description"
            );
            // Readiness answers its own shape when not ready, for monitors to read.
            let own_shape = status.starts_with('2') || (path == "/readyz" && status == "503");
            if !own_shape {
                assert_eq!(
                    response["content"]["application/json"]["schema"]["$ref"],
                    "#/components/schemas/ErrorBody",
                    "{method} {path} {status} is not in the error shape"
                );
            }
        }
        // Every `{name}` in the path is a documented, required path parameter.
        let declared: BTreeSet<&str> = op["parameters"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|p| p["in"] == "path")
            .inspect(|p| assert_eq!(p["required"], true, "{method} {path}: {p}"))
            .filter_map(|p| p["name"].as_str())
            .collect();
        let templated: BTreeSet<&str> = path
            .split('/')
            .filter_map(|s| s.strip_prefix('{')?.strip_suffix('}'))
            .collect();
        assert_eq!(declared, templated, "{method} {path} path parameters");
        if !templated.is_empty() {
            assert!(responses.contains_key("404"), "{method} {path} has no 404");
        }
        let roles = roles(op);
        if roles.is_empty() {
            assert!(
                !responses.contains_key("401"),
                "{method} {path} needs no key yet documents 401"
            );
        } else {
            assert!(responses.contains_key("401"), "{method} {path} has no 401");
            assert!(roles.is_subset(&["admin".into(), "ingest".into(), "owner".into()].into()));
        }
        if op.get("requestBody").is_some() {
            for status in ["400", "413", "415"] {
                assert!(responses.contains_key(status), "{method} {path}: {status}");
            }
        }
        assert!(responses.contains_key("500"), "{method} {path} has no 500");
    }
    // The error shape itself: one object with a code and a message.
    let error = &doc["components"]["schemas"]["ErrorBody"];
    assert_eq!(error["required"], json!(["error"]));
    let detail = error["properties"]["error"].clone();
    let detail = match detail.get("$ref").and_then(Value::as_str) {
        Some(r) => resolve(&doc, r).expect("ErrorDetail").clone(),
        None => detail,
    };
    assert_eq!(detail["required"], json!(["code", "message"]));
}

fn collect_refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => collect_refs(v, out),
                }
            }
        }
        Value::Array(items) => items.iter().for_each(|v| collect_refs(v, out)),
        _ => {}
    }
}

/// A documented path with a throwaway value in each parameter.
fn throwaway(path: &str) -> String {
    path.split('/')
        .map(|s| if s.starts_with('{') { "zz_missing" } else { s })
        .collect::<Vec<_>>()
        .join("/")
}

/// Whether the answer is the server's "no such route" (the API's 404 `no API route …`, its
/// 405, or actix's bare 404 outside `/api/v1`) rather than the route's own answer.
fn is_no_route(resp: &Resp) -> bool {
    resp.status == 405
        || (resp.status == 404 && resp.code() != "not_found")
        || (resp.status == 404 && resp.message().starts_with("no API route"))
}

#[test]
fn every_documented_operation_is_served_with_the_documented_key_roles() {
    let app = spawn_app();
    let doc = fetch(&app);
    let ops = operations(&doc);
    assert!(ops.len() >= 25, "only {} operations: {ops:?}", ops.len());
    let body = b"{}";
    for (method, path) in &ops {
        let op = &doc["paths"][path][method];
        let url = throwaway(path);
        let verb = method.to_uppercase();
        let with_body = op.get("requestBody").map(|_| &body[..]);
        let send = |key: Option<&str>| app.raw(&verb, &url, key, with_body, &[]);

        let admin = send(Some(&app.admin_key));
        assert!(
            !is_no_route(&admin),
            "{verb} {path} is documented but not served: {} {}",
            admin.status,
            admin.text
        );
        if admin.status >= 400 {
            admin.assert_error(admin.status);
        }
        let roles = roles(op);
        let anonymous = send(None);
        if roles.is_empty() {
            assert!(
                anonymous.status < 300 || anonymous.status == 503,
                "{verb} {path} needs no key: {} {}",
                anonymous.status,
                anonymous.text
            );
        } else {
            anonymous.assert_error(401);
            assert_eq!(anonymous.code(), "unauthorized", "{verb} {path}");
            let ingest = send(Some(&app.ingest_key));
            if roles.contains("ingest") {
                assert!(
                    ingest.status != 401 && ingest.status != 403,
                    "{verb} {path} takes an ingest key: {} {}",
                    ingest.status,
                    ingest.text
                );
            } else {
                ingest.assert_error(403);
            }
        }
    }
    // A path nobody documented is the API's "no such route", which the check above relies on.
    let unknown = app.get("/api/v1/nothing-here");
    assert!(is_no_route(&unknown), "{}", unknown.text);
    let missing_rule = app.get("/api/v1/rules/zz_missing");
    assert!(!is_no_route(&missing_rule), "{}", missing_rule.text);
}

/// One answer of the walk below: which documented operation, what came back.
struct Seen {
    method: &'static str,
    path: &'static str,
    sent: Option<Value>,
    resp: Resp,
}

#[test]
fn real_answers_of_every_operation_match_the_documented_status_and_schema() {
    let app = spawn_app();
    let receiver = TestReceiver::start();
    let doc = fetch(&app);
    let mut seen: Vec<Seen> = Vec::new();
    let mut call = |method: &'static str,
                    path: &'static str,
                    ids: &[&str],
                    key: Option<&str>,
                    body: Option<Value>|
     -> Value {
        let mut url = path.to_owned();
        for id in ids {
            let start = url.find('{').expect("a parameter to fill");
            let end = start + url[start..].find('}').expect("closing brace");
            url.replace_range(start..=end, id);
        }
        let bytes = body.as_ref().map(|b| serde_json::to_vec(b).unwrap());
        let resp = app.raw(&method.to_uppercase(), &url, key, bytes.as_deref(), &[]);
        assert!(
            resp.status < 300,
            "{method} {url}: {} {}",
            resp.status,
            resp.text
        );
        let answer = resp.body.clone();
        seen.push(Seen {
            method,
            path,
            sent: body,
            resp,
        });
        answer
    };
    let admin = Some(app.admin_key.as_str());
    let ingest = Some(app.ingest_key.as_str());

    let rule = call(
        "post",
        "/api/v1/rules",
        &[],
        admin,
        Some(json!({
            "name": "schema walk",
            "trigger": {"type": "event", "events": ["appointment.booked"]},
            "condition": "data.clinic == 'north'",
            "webhook": {"url": receiver.url("/hook"), "secret_headers": {"X-Token": "t0ken"}},
        })),
    );
    let rule_id = rule["id"].as_str().expect("rule id").to_owned();
    let rid = rule_id.as_str();
    call("get", "/api/v1/rules", &[], admin, None);
    call("get", "/api/v1/rules/{id}", &[rid], admin, None);
    call(
        "put",
        "/api/v1/rules/{id}",
        &[rid],
        admin,
        Some(rule.clone()),
    );
    call(
        "patch",
        "/api/v1/rules/{id}",
        &[rid],
        admin,
        Some(json!({"description": "walked"})),
    );
    call("get", "/api/v1/rules/{id}/secret", &[rid], admin, None);
    call(
        "post",
        "/api/v1/rules/{id}/secret/rotate",
        &[rid],
        admin,
        None,
    );
    call("post", "/api/v1/rules/{id}/preview", &[rid], admin, None);
    call(
        "post",
        "/api/v1/rules/{id}/test",
        &[rid],
        admin,
        Some(json!({"data": {"clinic": "north"}})),
    );
    // Versions and drafts (§14).
    let draft = json!({
        "name": "schema walk v2",
        "trigger": {"type": "event", "events": ["appointment.booked"]},
        "webhook": {"url": receiver.url("/hook2"), "secret_headers": {"X-Token": "********"}},
    });
    call(
        "put",
        "/api/v1/rules/{id}/draft",
        &[rid],
        admin,
        Some(draft.clone()),
    );
    call("get", "/api/v1/rules/{id}/draft", &[rid], admin, None);
    call(
        "post",
        "/api/v1/rules/{id}/draft/preview",
        &[rid],
        admin,
        None,
    );
    call(
        "post",
        "/api/v1/rules/{id}/draft/test",
        &[rid],
        admin,
        Some(json!({"data": {"clinic": "north"}})),
    );
    call(
        "post",
        "/api/v1/rules/{id}/draft/publish",
        &[rid],
        admin,
        None,
    );
    call("get", "/api/v1/rules/{id}/versions", &[rid], admin, None);
    call(
        "post",
        "/api/v1/rules/{id}/versions/{n}/restore",
        &[rid, "1"],
        admin,
        None,
    );
    call(
        "put",
        "/api/v1/rules/{id}/draft",
        &[rid],
        admin,
        Some(draft),
    );
    call("delete", "/api/v1/rules/{id}/draft", &[rid], admin, None);
    let event = json!({"type": "appointment.booked", "data": {"clinic": "north"}, "idempotency_key": "walk-1", "subject": "member:walk"});
    let ingested = call("post", "/api/v1/events", &[], ingest, Some(event.clone()));
    call("post", "/api/v1/events", &[], ingest, Some(event));
    let event_id = ingested["id"].as_str().expect("event id").to_owned();
    let deliveries = app.wait_settled(&event_id, Duration::from_secs(20));
    let delivery_id = deliveries[0]["id"]
        .as_str()
        .expect("delivery id")
        .to_owned();
    call("get", "/api/v1/events/{id}", &[&event_id], admin, None);
    call("get", "/api/v1/deliveries", &[], admin, None);
    call(
        "get",
        "/api/v1/deliveries/{id}",
        &[&delivery_id],
        admin,
        None,
    );
    call(
        "post",
        "/api/v1/deliveries/{id}/redeliver",
        &[&delivery_id],
        admin,
        None,
    );
    call(
        "post",
        "/api/v1/rules/{id}/redeliver-failed",
        &[rid],
        admin,
        Some(json!({"since": "2020-01-01T00:00:00Z"})),
    );
    call("get", "/api/v1/event-types", &[], admin, None);
    call(
        "post",
        "/api/v1/event-types",
        &[],
        admin,
        Some(json!({"name": "lab.result", "description": "a result", "sample": {"code": "x"}})),
    );
    call("get", "/api/v1/api-keys", &[], admin, None);
    let key = call(
        "post",
        "/api/v1/api-keys",
        &[],
        admin,
        Some(json!({"name": "walk", "role": "ingest"})),
    );
    let key_id = key["id"].as_str().expect("key id").to_owned();
    call("delete", "/api/v1/api-keys/{id}", &[&key_id], admin, None);
    // Workspaces take an owner key.
    let owner_key = crate::workspaces::owner_key(&app);
    let owner = Some(owner_key.as_str());
    call(
        "post",
        "/api/v1/workspaces",
        &[],
        owner,
        Some(json!({"name": "walk"})),
    );
    call("get", "/api/v1/workspaces", &[], owner, None);
    call(
        "get",
        "/api/v1/subjects/{subject}/disclosures",
        &["member:walk"],
        admin,
        None,
    );
    call(
        "post",
        "/api/v1/subjects/{subject}/erase",
        &["member:walk"],
        admin,
        None,
    );
    call("get", "/api/v1/audit", &[], admin, None);
    call("get", "/api/v1/alerts", &[], admin, None);
    if crate::support::postgres::on_postgres() {
        // PostgreSQL is backed up with pg_dump: the API says so (409), documented.
        let resp = app.raw("POST", "/api/v1/backup", owner, None, &[]);
        assert_eq!(resp.status, 409, "{}", resp.text);
        assert!(resp.text.contains("pg_dump"), "{}", resp.text);
    } else {
        // Two workspaces by now: a backup (all of them) takes the owner key.
        call("post", "/api/v1/backup", &[], owner, None);
    }
    call("delete", "/api/v1/rules/{id}", &[rid], admin, None);
    call("get", "/api/v1/openapi.json", &[], None, None);
    call("get", "/healthz", &[], None, None);
    call("get", "/readyz", &[], None, None);
    call("get", "/metrics", &[], None, None);
    // Alert mail is off here: the documented 409 (a sent mail is tested in alerts.rs).
    let off = app.raw("POST", "/api/v1/alerts/test-email", admin, None, &[]);
    assert_eq!(off.status, 409, "{}", off.text);
    seen.push(Seen {
        method: "post",
        path: "/api/v1/alerts/test-email",
        sent: None,
        resp: off,
    });

    let mut problems = Vec::new();
    for s in &seen {
        // What was sent is what the document says the route takes.
        if let Some(sent) = &s.sent {
            let schema = &doc["paths"][s.path][s.method]["requestBody"]["content"]["application/json"]
                ["schema"];
            let mut errors = Vec::new();
            if schema.is_null() {
                errors.push("a body was sent but none is documented".to_owned());
            } else {
                check(&doc, sent, schema, "body", &mut errors);
            }
            problems.extend(
                errors
                    .into_iter()
                    .map(|e| format!("{} {} request: {e}", s.method, s.path)),
            );
        }
        let status = s.resp.status.to_string();
        let Some(response) = doc["paths"][s.path][s.method]["responses"].get(&status) else {
            problems.push(format!(
                "{} {} answered {status}, which is not documented",
                s.method, s.path
            ));
            continue;
        };
        let content = response["content"].as_object();
        match content.and_then(|c| c.get("application/json")) {
            Some(media) => {
                let mut errors = Vec::new();
                check(&doc, &s.resp.body, &media["schema"], "$", &mut errors);
                problems.extend(
                    errors
                        .into_iter()
                        .map(|e| format!("{} {} {status}: {e}", s.method, s.path)),
                );
            }
            None if s.resp.text.is_empty() => {}
            None => assert!(
                content.is_some_and(|c| !c.is_empty()),
                "{} {} has a body but documents none",
                s.method,
                s.path
            ),
        }
    }
    assert!(problems.is_empty(), "{}", problems.join("\n"));

    // The walk covers the whole document, so a new route must be walked here too.
    let walked: BTreeSet<(String, String)> = seen
        .iter()
        .map(|s| (s.method.to_owned(), s.path.to_owned()))
        .collect();
    let mut documented: BTreeSet<(String, String)> = operations(&doc).into_iter().collect();
    if crate::support::postgres::on_postgres() {
        // Refused on PostgreSQL, above.
        documented.remove(&("post".to_owned(), "/api/v1/backup".to_owned()));
    }
    let missed: Vec<_> = documented.difference(&walked).collect();
    assert!(missed.is_empty(), "operations not walked: {missed:?}");
}

/// Checks `value` against the JSON Schema subset utoipa writes (`$ref`, `allOf`, `oneOf`,
/// `type` with `null`, `enum`, `format: date-time`, `properties`, `required`, `items`,
/// `additionalProperties`).
/// Objects may hold only documented properties, so an undocumented field is caught too.
fn check(doc: &Value, value: &Value, schema: &Value, at: &str, errors: &mut Vec<String>) {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        match resolve(doc, r) {
            Some(target) => check(doc, value, target, at, errors),
            None => errors.push(format!("{at}: unresolved {r}")),
        }
        return;
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        for part in all {
            check_shallow(doc, value, part, at, errors);
        }
        check_properties_known(doc, value, schema, at, errors);
        return;
    }
    if let Some(any) = schema.get("oneOf").and_then(Value::as_array) {
        let matching = any
            .iter()
            .filter(|s| {
                let mut e = Vec::new();
                check(doc, value, s, at, &mut e);
                e.is_empty()
            })
            .count();
        if matching != 1 {
            errors.push(format!("{at}: {matching} of oneOf match {value}"));
        }
        return;
    }
    check_shallow(doc, value, schema, at, errors);
    check_properties_known(doc, value, schema, at, errors);
}

/// `check` without the "only documented properties" rule, for the parts of an `allOf`.
fn check_shallow(doc: &Value, value: &Value, schema: &Value, at: &str, errors: &mut Vec<String>) {
    if schema.get("$ref").is_some() || schema.get("allOf").is_some() {
        let schema = match schema.get("$ref").and_then(Value::as_str) {
            Some(r) => resolve(doc, r).unwrap_or(&Value::Null),
            None => schema,
        };
        if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
            for part in all {
                check_shallow(doc, value, part, at, errors);
            }
        } else {
            check_shallow(doc, value, schema, at, errors);
        }
        return;
    }
    if schema.get("oneOf").is_some() {
        check(doc, value, schema, at, errors);
        return;
    }
    if let Some(types) = schema.get("type") {
        let types: Vec<&str> = match types {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        let kind = match value {
            Value::Null => "null",
            Value::Bool(_) => "boolean",
            Value::Number(n) if n.is_u64() || n.is_i64() => "integer",
            Value::Number(_) => "number",
            Value::String(_) => "string",
            Value::Array(_) => "array",
            Value::Object(_) => "object",
        };
        let fits = types
            .iter()
            .any(|t| *t == kind || (*t == "number" && kind == "integer"));
        if !fits {
            errors.push(format!("{at}: {kind} where the schema says {types:?}"));
            return;
        }
    }
    if schema["format"] == "date-time"
        && let Some(text) = value.as_str()
        && tidings::domain::time::parse_rfc3339(text).is_none()
    {
        errors.push(format!("{at}: {text:?} is not an RFC 3339 date-time"));
    }
    if let Some(allowed) = schema.get("enum").and_then(Value::as_array)
        && !allowed.contains(value)
    {
        errors.push(format!("{at}: {value} is not one of {allowed:?}"));
    }
    if let Value::Object(map) = value {
        for name in schema["required"].as_array().into_iter().flatten() {
            let name = name.as_str().unwrap_or_default();
            if !map.contains_key(name) {
                errors.push(format!("{at}: required {name} is missing"));
            }
        }
        let props = schema["properties"].as_object();
        for (k, v) in map {
            match props.and_then(|p| p.get(k)) {
                Some(s) => check(doc, v, s, &format!("{at}.{k}"), errors),
                None => {
                    if let Some(extra) = schema.get("additionalProperties")
                        && extra.is_object()
                    {
                        check(doc, v, extra, &format!("{at}.{k}"), errors);
                    }
                }
            }
        }
    }
    if let (Value::Array(items), Some(item)) = (value, schema.get("items")) {
        for (i, v) in items.iter().enumerate() {
            check(doc, v, item, &format!("{at}[{i}]"), errors);
        }
    }
}

/// The properties a schema names, through `$ref` and `allOf`; None when it allows any.
fn known_properties(doc: &Value, schema: &Value) -> Option<BTreeSet<String>> {
    if let Some(r) = schema.get("$ref").and_then(Value::as_str) {
        return known_properties(doc, resolve(doc, r)?);
    }
    if let Some(all) = schema.get("allOf").and_then(Value::as_array) {
        let mut out = BTreeSet::new();
        for part in all {
            out.extend(known_properties(doc, part)?);
        }
        return Some(out);
    }
    if schema
        .get("additionalProperties")
        .is_some_and(|a| a != false)
    {
        return None;
    }
    let props = schema.get("properties")?.as_object()?;
    Some(props.keys().cloned().collect())
}

fn check_properties_known(
    doc: &Value,
    value: &Value,
    schema: &Value,
    at: &str,
    errors: &mut Vec<String>,
) {
    if let (Value::Object(map), Some(known)) = (value, known_properties(doc, schema)) {
        for k in map.keys().filter(|k| !known.contains(*k)) {
            errors.push(format!("{at}: {k} is not documented"));
        }
    }
}

#[test]
fn the_schema_check_catches_a_wrong_type_a_missing_and_an_undocumented_field_and_a_bad_time() {
    let doc = json!({"components": {"schemas": {
        "Thing": {"type": "object", "required": ["id"], "properties": {
            "id": {"type": "string"}, "n": {"type": ["integer", "null"]}}},
    }}});
    let schema = json!({"$ref": "#/components/schemas/Thing"});
    let mut errors = Vec::new();
    check(
        &doc,
        &json!({"id": "a", "n": null}),
        &schema,
        "$",
        &mut errors,
    );
    assert!(errors.is_empty(), "{errors:?}");
    let stamped = json!({"type": "string", "format": "date-time"});
    let mut errors = Vec::new();
    check(
        &doc,
        &json!("2026-12-01T10:00:00Z"),
        &stamped,
        "$",
        &mut errors,
    );
    check(&doc, &json!("yesterday"), &stamped, "$", &mut errors);
    assert_eq!(errors.len(), 1, "{errors:?}");
    for bad in [
        json!({"id": 1}),
        json!({"n": 1}),
        json!({"id": "a", "extra": true}),
    ] {
        let mut errors = Vec::new();
        check(&doc, &bad, &schema, "$", &mut errors);
        assert_eq!(errors.len(), 1, "{bad}: {errors:?}");
    }
}

/// The schema `name` of the document's components.
fn component<'a>(doc: &'a Value, name: &str) -> &'a Value {
    let schema = &doc["components"]["schemas"][name];
    assert!(schema.is_object(), "no schema {name}");
    schema
}

/// The schema of a documented parameter.
fn parameter<'a>(doc: &'a Value, method: &str, path: &str, name: &str) -> &'a Value {
    doc["paths"][path][method]["parameters"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|p| p["name"] == name)
        .map_or_else(
            || panic!("{method} {path} has no parameter {name}"),
            |p| &p["schema"],
        )
}

#[test]
fn the_document_states_the_bounds_the_server_enforces_and_they_hold_at_the_edges() {
    let app = spawn_app();
    let doc = fetch(&app);

    let rule = component(&doc, "RuleInput");
    let required: BTreeSet<&str> = rule["required"]
        .as_array()
        .expect("RuleInput.required")
        .iter()
        .filter_map(Value::as_str)
        .collect();
    assert_eq!(required, ["name", "trigger", "webhook"].into());
    let name = &rule["properties"]["name"];
    assert_eq!(name["type"], "string", "a rule's name may not be null");
    assert_eq!(
        (&name["minLength"], &name["maxLength"]),
        (&json!(1), &json!(200))
    );
    assert_eq!(rule["properties"]["description"]["maxLength"], 2000);
    let concurrency = &rule["properties"]["max_concurrency"];
    assert_eq!(
        (&concurrency["minimum"], &concurrency["maximum"]),
        (&json!(1), &json!(256))
    );
    let webhook = component(&doc, "WebhookInput");
    assert_eq!(webhook["required"], json!(["url"]));
    assert_eq!(webhook["properties"]["url"]["maxLength"], 2048);
    let timeout = &webhook["properties"]["timeout_ms"];
    assert_eq!(
        (&timeout["minimum"], &timeout["maximum"]),
        (&json!(1), &json!(30000))
    );
    // A PATCH body is its own schema: nothing required, null allowed (it removes).
    let patch = &doc["paths"]["/api/v1/rules/{id}"]["patch"]["requestBody"]["content"]["application/json"]
        ["schema"]["$ref"];
    let patch = component(&doc, patch.as_str().unwrap().rsplit('/').next().unwrap());
    assert!(patch.get("required").is_none(), "{patch}");
    assert_eq!(patch["additionalProperties"], false);
    assert_eq!(
        patch["properties"]["name"]["type"],
        json!(["string", "null"])
    );

    let event_type = "^[a-z0-9][a-z0-9_.:-]{0,127}$";
    let ingest = component(&doc, "IngestRequest");
    assert_eq!(ingest["properties"]["type"]["pattern"], event_type);
    let key = &ingest["properties"]["idempotency_key"];
    assert_eq!(
        (&key["minLength"], &key["maxLength"]),
        (&json!(1), &json!(255))
    );
    assert_eq!(
        component(&doc, "DeclareRequest")["properties"]["name"]["pattern"],
        event_type
    );
    let create_key = component(&doc, "CreateKey");
    assert_eq!(create_key["properties"]["name"]["type"], "string");
    assert_eq!(create_key["properties"]["name"]["maxLength"], 100);
    assert_eq!(
        component(&doc, "BulkRequest")["properties"]["since"]["type"],
        "string"
    );
    // Bodies that may be left out are still never null.
    for action in ["test", "preview"] {
        let body = &doc["paths"][format!("/api/v1/rules/{{id}}/{action}")]["post"]["requestBody"];
        assert_ne!(body["required"], true, "{action}");
        let schema = &body["content"]["application/json"]["schema"];
        assert!(
            schema.get("$ref").is_some(),
            "{action} body may be null: {schema}"
        );
    }
    for (path, cursor) in [
        ("/api/v1/rules", "rul_"),
        ("/api/v1/deliveries", "dlv_"),
        ("/api/v1/audit", "aud_"),
    ] {
        let limit = parameter(&doc, "get", path, "limit");
        assert_eq!(
            (&limit["minimum"], &limit["maximum"]),
            (&json!(1), &json!(250)),
            "{path}"
        );
        let pattern = parameter(&doc, "get", path, "cursor")["pattern"]
            .as_str()
            .unwrap();
        assert!(
            pattern.starts_with(&format!("^{cursor}")),
            "{path}: {pattern}"
        );
    }

    // At each documented edge the server agrees: the last value in is taken, the first out
    // refused.
    let rule_with = |name: String, timeout: u32, concurrency: u32| {
        json!({"name": name, "max_concurrency": concurrency,
               "trigger": {"type": "event", "events": ["ping"]},
               "webhook": {"url": "http://127.0.0.1:9/", "timeout_ms": timeout}})
    };
    for (body, ok) in [
        (rule_with("n".repeat(200), 30000, 256), true),
        (rule_with("n".repeat(201), 1000, 1), false),
        (rule_with("n".into(), 30001, 1), false),
        (rule_with("n".into(), 1, 257), false),
    ] {
        let resp = app.post("/api/v1/rules", &body);
        assert_eq!(resp.status == 201, ok, "{}", resp.text);
    }
    for (event, ok) in [
        (
            json!({"type": "a".repeat(128), "idempotency_key": "k".repeat(255)}),
            true,
        ),
        (json!({"type": "a".repeat(129)}), false),
        (
            json!({"type": "ping", "idempotency_key": "k".repeat(256)}),
            false,
        ),
        (json!({"type": "ping", "idempotency_key": ""}), false),
    ] {
        let resp = app.ingest(&event);
        assert_eq!(resp.status == 202, ok, "{}", resp.text);
    }
    for (key, ok) in [("k".repeat(100), true), ("k".repeat(101), false)] {
        let resp = app.post("/api/v1/api-keys", &json!({"name": key, "role": "ingest"}));
        assert_eq!(resp.status == 201, ok, "{}", resp.text);
    }
}
