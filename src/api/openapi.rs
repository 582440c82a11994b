//! The route table and the OpenAPI document made from it (`GET /api/v1/openapi.json`).
//!
//! Every route is registered through an [`Op`], which takes the handler's `#[utoipa::path]`
//! item and registers the actix route at that item's own path and method. The document is
//! built from the same list of `Op`s, so a route cannot be served undocumented, nor documented
//! at a path or method it is not served at.

use std::sync::OnceLock;

use actix_web::{FromRequest, Handler, HttpResponse, Responder, web};
use utoipa::openapi::path::{HttpMethod, Operation, ParameterIn};
use utoipa::openapi::response::{Response, ResponseBuilder};
use utoipa::openapi::schema::Schema;
use utoipa::openapi::security::{Http, HttpAuthScheme, SecurityScheme};
use utoipa::openapi::{
    ComponentsBuilder, ContentBuilder, InfoBuilder, OpenApi, OpenApiBuilder, Paths, RefOr,
};
use utoipa::{PartialSchema, ToSchema};

use super::error::ErrorBody;

/// The security scheme every keyed route names, with the roles it accepts as its scopes.
pub const SECURITY_SCHEME: &str = "api_key";

type Schemas = Vec<(String, RefOr<Schema>)>;

/// One route: a handler and its OpenAPI operation, served and documented together.
pub struct Op {
    path: String,
    method: HttpMethod,
    operation: fn() -> Operation,
    tags: fn() -> Vec<&'static str>,
    schemas: fn(&mut Schemas),
    route: actix_web::Route,
}

impl Op {
    /// The first argument is the handler's `#[utoipa::path]` item (`__path_<handler>`): its
    /// path and one method decide where the handler is served (the value carries nothing).
    pub fn new<P, F, Args>(_doc: P, handler: F) -> Self
    where
        P: utoipa::Path + utoipa::__dev::SchemaReferences + utoipa::__dev::Tags<'static>,
        F: Handler<Args>,
        Args: FromRequest + 'static,
        F::Output: Responder + 'static,
    {
        let methods = P::methods();
        let [method] = methods.as_slice() else {
            panic!("{} must declare exactly one method", P::path());
        };
        let route = web::method(actix_method(method)).to(handler);
        Self {
            path: P::path(),
            method: method.clone(),
            operation: P::operation,
            tags: P::tags,
            schemas: P::schemas,
            route,
        }
    }
}

fn actix_method(method: &HttpMethod) -> actix_web::http::Method {
    use actix_web::http::Method;
    match method {
        HttpMethod::Get => Method::GET,
        HttpMethod::Post => Method::POST,
        HttpMethod::Put => Method::PUT,
        HttpMethod::Patch => Method::PATCH,
        HttpMethod::Delete => Method::DELETE,
        HttpMethod::Head => Method::HEAD,
        HttpMethod::Options => Method::OPTIONS,
        HttpMethod::Trace => Method::TRACE,
    }
}

/// Registers `ops` under a scope mounted at `prefix`: one resource per path (with the API's
/// 405 for the methods it lacks), in the order given. A path outside `prefix`, or a path and
/// method listed twice (actix would serve the first, the document show the last), is a
/// programming error and stops start-up, before anything is served.
pub fn register(cfg: &mut web::ServiceConfig, ops: Vec<Op>, prefix: &str) {
    let mut by_path: Vec<(String, Vec<HttpMethod>, Vec<actix_web::Route>)> = Vec::new();
    for op in ops {
        let local = op
            .path
            .strip_prefix(prefix)
            .unwrap_or_else(|| panic!("{} is not under {prefix:?}", op.path))
            .to_owned();
        let index = if let Some(i) = by_path.iter().position(|(p, _, _)| *p == local) {
            i
        } else {
            by_path.push((local, Vec::new(), Vec::new()));
            by_path.len() - 1
        };
        let (_, methods, routes) = &mut by_path[index];
        assert!(
            !methods.contains(&op.method),
            "{} {} is registered twice",
            actix_method(&op.method),
            op.path
        );
        methods.push(op.method);
        routes.push(op.route);
    }
    for (path, methods, routes) in by_path {
        let methods: Vec<_> = methods.iter().map(actix_method).collect();
        let resource = routes
            .into_iter()
            .fold(super::resource(&path, &methods), actix_web::Resource::route);
        cfg.service(resource);
    }
}

/// Every route the server registers, outside `/api/v1` and in it.
fn all_ops() -> Vec<Op> {
    let mut ops = super::health::routes_table();
    ops.extend(super::routes_table());
    ops
}

/// The document, built once from the route table.
pub fn document() -> &'static OpenApi {
    static DOC: OnceLock<OpenApi> = OnceLock::new();
    DOC.get_or_init(build)
}

fn build() -> OpenApi {
    let mut paths = Paths::new();
    let mut schemas: Schemas = vec![(ErrorBody::name().into_owned(), ErrorBody::schema())];
    ErrorBody::schemas(&mut schemas);
    for op in all_ops() {
        let mut operation = (op.operation)();
        // utoipa keeps the `tag = …` of a path apart from its operation.
        operation
            .tags
            .get_or_insert_with(Vec::new)
            .extend((op.tags)().into_iter().map(str::to_owned));
        unique_operation_id(&mut operation);
        optional_body_is_left_out_not_null(&mut operation);
        add_common_errors(&mut operation);
        paths.add_path_operation(&op.path, vec![op.method], operation);
        (op.schemas)(&mut schemas);
    }
    schemas.sort_by(|a, b| a.0.cmp(&b.0));
    // Paths share schemas, so names repeat; two different schemas under one name would
    // leave one of them wrongly documented.
    for pair in schemas.windows(2) {
        let same = |s: &RefOr<Schema>| serde_json::to_value(s).ok();
        assert!(
            pair[0].0 != pair[1].0 || same(&pair[0].1) == same(&pair[1].1),
            "two different schemas are named {}",
            pair[0].0
        );
    }
    schemas.dedup_by(|a, b| a.0 == b.0);
    let components = ComponentsBuilder::new()
        .schemas_from_iter(schemas)
        .security_scheme(
            SECURITY_SCHEME,
            SecurityScheme::Http(
                Http::builder()
                    .scheme(HttpAuthScheme::Bearer)
                    .description(Some(
                        "An API key (`tidings key create` or `POST /api/v1/api-keys`). Each \
                         operation's security requirement names the key roles it accepts: \
                         `admin`, or `ingest` too for posting events, or `owner` alone for \
                         workspaces; an `owner` key is accepted wherever `admin` is, acting \
                         in the workspace its `Tidings-Workspace` header names (its own \
                         without it). Routes with no requirement need no key.",
                    ))
                    .build(),
            ),
        )
        .build();
    OpenApiBuilder::new()
        .info(
            InfoBuilder::new()
                .title("tidings")
                .version(env!("CARGO_PKG_VERSION"))
                .description(Some(
                    "Signed outbound webhooks. Every error answers \
                     `{\"error\": {\"code\", \"message\"}}` (schema `ErrorBody`).",
                ))
                .build(),
        )
        .paths(paths)
        .components(Some(components))
        .build()
}

/// utoipa names an operation after its handler, and handler names repeat across modules
/// (`list`, `create`); OpenAPI wants them unique, so the tag goes in front: `rules_list`.
fn unique_operation_id(op: &mut Operation) {
    let tag = op.tags.iter().flatten().next().cloned().unwrap_or_default();
    if let Some(id) = &mut op.operation_id {
        *id = format!("{}_{id}", tag.replace(' ', "_"));
    }
}

/// utoipa documents an optional body (`Option<T>`) as "T or null"; here an optional body
/// may be left out, but a body that is sent must be a JSON object (`parse_json`), so the
/// document shows it as a not-required T.
fn optional_body_is_left_out_not_null(op: &mut Operation) {
    let Some(RefOr::T(body)) = &mut op.request_body else {
        return;
    };
    if matches!(body.required, Some(utoipa::openapi::Required::True)) {
        return;
    }
    let null = serde_json::json!({"type": "null"});
    for content in body.content.values_mut() {
        let RefOr::T(content) = content else { continue };
        if let Some(RefOr::T(Schema::OneOf(one))) = &content.schema
            && let [only, other] = one.items.as_slice()
            && serde_json::to_value(other).ok().as_ref() == Some(&null)
        {
            content.schema = Some(only.clone());
        }
    }
}

/// The errors any operation can answer, from what its signature shows: 401 and 403 from its
/// key requirement, 400/413/415 from a JSON body, 400 from query parameters, 404 from a path
/// id; 500 from all. Added here so no handler can forget them.
fn add_common_errors(op: &mut Operation) {
    let roles: Vec<String> = op
        .security
        .iter()
        .flatten()
        .flat_map(|req| {
            serde_json::to_value(req)
                .ok()
                .and_then(|v| v.get(SECURITY_SCHEME).cloned())
                .and_then(|v| serde_json::from_value::<Vec<String>>(v).ok())
                .unwrap_or_default()
        })
        .collect();
    let acts_in_a_workspace = roles.iter().any(|r| r == "admin" || r == "ingest");
    if acts_in_a_workspace {
        op.parameters
            .get_or_insert_with(Vec::new)
            .push(workspace_header());
    }
    let located = |at: ParameterIn| {
        op.parameters
            .iter()
            .flatten()
            .any(|p| matches!(p, RefOr::T(p) if p.parameter_in == at))
    };
    let has_path_param = located(ParameterIn::Path);
    let has_query = located(ParameterIn::Query);
    let has_body = op.request_body.is_some();
    let mut add = |status: &str, description: &str| {
        op.responses
            .responses
            .entry(status.to_owned())
            .or_insert_with(|| RefOr::T(error_response(description)));
    };
    if !roles.is_empty() {
        add(
            "401",
            "missing, malformed or unknown API key (`unauthorized`)",
        );
    }
    if !roles.is_empty() && !roles.iter().any(|r| r == "ingest") {
        add(
            "403",
            "an ingest key; this route needs an admin key (`forbidden`)",
        );
    }
    if has_body {
        add(
            "400",
            "the body is not valid JSON for this route, or a field is invalid",
        );
        add("413", "the body is too large (`payload_too_large`)");
        add(
            "415",
            "the body is not sent as `application/json` (`unsupported_media_type`)",
        );
    }
    if has_query {
        add("400", "a query parameter is invalid (`invalid_query`)");
    }
    if has_path_param {
        add("404", "no such object in this workspace (`not_found`)");
    }
    if acts_in_a_workspace {
        add(
            "404",
            "the `Tidings-Workspace` header names no workspace this key may reach (`not_found`)",
        );
    }
    add(
        "500",
        "internal error; the server log has details (`internal`)",
    );
}

/// The header an owner key picks its workspace with (`api::WORKSPACE_HEADER`).
fn workspace_header() -> RefOr<utoipa::openapi::path::Parameter> {
    RefOr::T(
        utoipa::openapi::path::ParameterBuilder::new()
            .name(super::WORKSPACE_HEADER)
            .parameter_in(ParameterIn::Header)
            .required(utoipa::openapi::Required::False)
            .description(Some(
                "The workspace an owner key acts in (its own when absent). Any other key may \
                 name only its own workspace; another is `not_found`.",
            ))
            .schema(Some(
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::String)
                    .pattern(Some(r"^wsp_[A-Za-z0-9]{1,64}$")),
            ))
            .build(),
    )
}

fn error_response(description: &str) -> Response {
    ResponseBuilder::new()
        .description(description)
        .content(
            "application/json",
            ContentBuilder::new()
                .schema(Some(RefOr::Ref(utoipa::openapi::Ref::from_schema_name(
                    ErrorBody::name(),
                ))))
                .build(),
        )
        .build()
}

/// The document itself; it needs no key, like the health routes.
#[utoipa::path(
    get,
    path = "/api/v1/openapi.json",
    tag = "meta",
    responses((status = 200, description = "this OpenAPI 3.1 document", body = Object)),
)]
pub async fn openapi_json() -> HttpResponse {
    static JSON: OnceLock<String> = OnceLock::new();
    let body = JSON.get_or_init(|| {
        document()
            .to_json()
            .expect("the OpenAPI document serializes")
    });
    HttpResponse::Ok()
        .content_type("application/json")
        .body(body.as_str())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[utoipa::path(get, path = "/api/v1/twice", responses((status = 200)))]
    async fn twice() -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    #[utoipa::path(get, path = "/elsewhere", responses((status = 200)))]
    async fn elsewhere() -> HttpResponse {
        HttpResponse::Ok().finish()
    }

    fn register_all(ops: Vec<Op>) {
        let _ = actix_web::App::new()
            .service(web::scope("/api/v1").configure(|cfg| register(cfg, ops, "/api/v1")));
    }

    #[test]
    #[should_panic(expected = "GET /api/v1/twice is registered twice")]
    fn a_path_and_method_listed_twice_stops_start_up() {
        register_all(vec![
            Op::new(__path_twice, twice),
            Op::new(__path_twice, twice),
        ]);
    }

    #[test]
    #[should_panic(expected = "/elsewhere is not under \"/api/v1\"")]
    fn a_documented_path_outside_the_scope_stops_start_up() {
        register_all(vec![Op::new(__path_elsewhere, elsewhere)]);
    }

    #[test]
    fn the_document_has_each_route_once_at_its_own_path_and_method() {
        let table = all_ops();
        let doc = serde_json::to_value(document()).unwrap();
        let mut listed = 0;
        for op in &table {
            let method = serde_json::to_value(&op.method).unwrap();
            let method = method.as_str().unwrap();
            assert!(
                doc["paths"][&op.path][method].is_object(),
                "{method} {} missing from the document",
                op.path
            );
            listed += 1;
        }
        let documented: usize = doc["paths"]
            .as_object()
            .unwrap()
            .values()
            .map(|item| item.as_object().unwrap().len())
            .sum();
        assert_eq!(documented, listed);
        // The tables as the server registers them: no path and method twice, none misplaced.
        register_all(super::super::routes_table());
        let _ = actix_web::App::new().configure(super::super::health::routes);
    }
}
