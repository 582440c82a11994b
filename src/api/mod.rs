//! The JSON API (SPEC §7). Each resource module lists its routes as `openapi::Op`s (a handler
//! with its OpenAPI operation); authentication is an extractor in each handler's signature, so
//! a handler states the role it needs.

pub mod alerts;
pub mod audit;
pub mod backup;
pub mod deliveries;
pub mod error;
pub mod event_types;
pub mod events;
pub mod health;
pub mod keys;
pub mod openapi;
pub mod rule_versions;
pub mod rules;
pub mod schemas;
pub mod subjects;
pub mod workspaces;

use std::future::{Ready, ready};

use actix_web::dev::Payload;
use actix_web::error::QueryPayloadError;
use actix_web::{FromRequest, HttpRequest, HttpResponse, web};
use serde_json::{Value, json};

use crate::app::AppState;
use crate::domain::access::{ApiKey, Role};
use crate::error::{AppError, Code};

/// An RFC 3339 query parameter, or `invalid_query` naming it.
pub fn time_param(name: &str, value: Option<&str>) -> Result<Option<i64>, AppError> {
    value
        .map(|v| {
            crate::domain::time::parse_rfc3339(v).ok_or_else(|| {
                AppError::invalid_query(format!(
                    "{name} {v:?} is not an RFC 3339 time such as 2026-11-23T10:00:00Z"
                ))
            })
        })
        .transpose()
}

/// Where the API is mounted; every `/api/v1` operation's documented path starts with it.
pub const PREFIX: &str = "/api/v1";

/// Registers every `/api/v1` route, from the same table the OpenAPI document is made of.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.app_data(web::PayloadConfig::new(MAX_JSON_BODY))
        .app_data(query_config())
        .service(
            web::scope(PREFIX)
                .configure(|scope| openapi::register(scope, routes_table(), PREFIX))
                .default_service(web::to(not_found)),
        );
}

/// Every `/api/v1` route, with its documentation.
pub fn routes_table() -> Vec<openapi::Op> {
    let mut ops = vec![openapi::Op::new(
        openapi::__path_openapi_json,
        openapi::openapi_json,
    )];
    for module in [
        events::routes,
        event_types::routes,
        rules::routes,
        rule_versions::routes,
        deliveries::routes,
        keys::routes,
        workspaces::routes,
        audit::routes,
        backup::routes,
        alerts::routes,
        subjects::routes,
    ] {
        ops.extend(module());
    }
    ops
}

/// A route with the API's 405 for methods it lacks; the 405 names the ones it has in `Allow`
/// (RFC 9110 §15.5.6).
pub fn resource(path: &str, methods: &[actix_web::http::Method]) -> actix_web::Resource {
    let allow = methods
        .iter()
        .map(actix_web::http::Method::as_str)
        .collect::<Vec<_>>()
        .join(", ");
    web::resource(path).default_service(web::to(move |req: HttpRequest| {
        let allow = allow.clone();
        async move { method_not_allowed(&req, &allow) }
    }))
}

/// The header an owner key names the workspace it acts in with (SPEC §14; README
/// "Workspaces"). Without it a key acts in its own workspace.
pub const WORKSPACE_HEADER: &str = "Tidings-Workspace";

/// The caller, authenticated by `Authorization: Bearer <api key>`; any role. Its
/// `workspace_id` is the workspace the request acts in: the key's own, or for an owner key
/// the one `Tidings-Workspace` names.
pub struct AnyKey(pub ApiKey);

/// The caller, with the admin role (or owner), acting in one workspace as `AnyKey`.
pub struct AdminKey(pub ApiKey);

/// The caller, with the owner role: it manages workspaces.
pub struct OwnerKey(pub ApiKey);

type KeyFuture<T> = std::pin::Pin<Box<dyn std::future::Future<Output = Result<T, AppError>>>>;

fn authenticate(req: &HttpRequest) -> Result<(ApiKey, Option<String>), AppError> {
    let unauthorized = |msg: &str| AppError::new(Code::Unauthorized, msg);
    let state = req
        .app_data::<web::Data<AppState>>()
        .ok_or_else(|| AppError::internal(anyhow::anyhow!("app state missing")))?;
    let header = req
        .headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .ok_or_else(|| {
            unauthorized("missing Authorization header; send Authorization: Bearer <api key>")
        })?;
    let token = header
        .to_str()
        .ok()
        .and_then(|h| {
            h.strip_prefix("Bearer ")
                .or_else(|| h.strip_prefix("bearer "))
        })
        .map(str::trim)
        .ok_or_else(|| unauthorized("the Authorization header must be: Bearer <api key>"))?;
    let key = state
        .store
        .api_key_for_token(token)
        .ok_or_else(|| unauthorized("this API key is not valid (unknown or deleted)"))?;
    let chosen = match req.headers().get(WORKSPACE_HEADER) {
        None => None,
        Some(value) => Some(value.to_str().map(|v| v.trim().to_owned()).map_err(|_| {
            AppError::new(
                Code::InvalidQuery,
                format!("the {WORKSPACE_HEADER} header must be a workspace id (wsp_…)"),
            )
        })?),
    };
    Ok((key, chosen))
}

/// The key, acting in the workspace the request names. An owner may name any workspace
/// that exists; any other key only its own: another workspace, like an unknown one, is a
/// 404, so a key learns nothing of workspaces it does not belong to.
fn authenticate_in_workspace(req: &HttpRequest) -> KeyFuture<ApiKey> {
    let found = authenticate(req);
    let state = req.app_data::<web::Data<AppState>>().cloned();
    Box::pin(async move {
        let (mut key, chosen) = found?;
        let Some(raw) = chosen else {
            return Ok(key);
        };
        if raw == key.workspace_id.as_str() {
            return Ok(key);
        }
        if key.role != Role::Owner {
            return Err(AppError::new(
                Code::NotFound,
                format!("no workspace with id {raw:?}"),
            ));
        }
        let state =
            state.ok_or_else(|| AppError::internal(anyhow::anyhow!("app state missing")))?;
        key.workspace_id = crate::app::workspaces::existing(&state, &raw).await?;
        Ok(key)
    })
}

impl FromRequest for AnyKey {
    type Error = AppError;
    type Future = KeyFuture<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = authenticate_in_workspace(req);
        Box::pin(async move { key.await.map(AnyKey) })
    }
}

impl FromRequest for AdminKey {
    type Error = AppError;
    type Future = KeyFuture<Self>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let key = authenticate_in_workspace(req);
        Box::pin(async move {
            let key = key.await?;
            match key.role {
                Role::Admin | Role::Owner => Ok(AdminKey(key)),
                Role::Ingest => Err(AppError::new(
                    Code::Forbidden,
                    "this API key has the ingest role, which may only post events; use an admin key",
                )),
            }
        })
    }
}

impl FromRequest for OwnerKey {
    type Error = AppError;
    type Future = Ready<Result<Self, AppError>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        ready(authenticate(req).and_then(|(key, _)| match key.role {
            Role::Owner => Ok(OwnerKey(key)),
            Role::Admin | Role::Ingest => Err(AppError::new(
                Code::Forbidden,
                format!(
                    "this API key has the {} role; only an owner key (tidings key create --role owner) manages workspaces",
                    key.role.as_str()
                ),
            )),
        }))
    }
}

/// A JSON request body parsed into `T`, with errors in the API's shape: 415 for a non-JSON
/// content type, 413 when too large, 400 naming the field at fault.
pub struct JsonBody<T>(pub T);

/// Largest JSON body for the management API (events have their own configurable limit).
const MAX_JSON_BODY: usize = 1024 * 1024;

impl<T: serde::de::DeserializeOwned + 'static> FromRequest for JsonBody<T> {
    type Error = AppError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = json_bytes(req, payload);
        Box::pin(async move { parse_json(&body.await?).map(JsonBody) })
    }
}

/// Like `JsonBody`, but no body at all means `T::default()` (for `POST …/test` with no body).
pub struct OptionalJsonBody<T>(pub T);

impl<T: serde::de::DeserializeOwned + Default + 'static> FromRequest for OptionalJsonBody<T> {
    type Error = AppError;
    type Future = std::pin::Pin<Box<dyn std::future::Future<Output = Result<Self, AppError>>>>;

    fn from_request(req: &HttpRequest, payload: &mut Payload) -> Self::Future {
        let body = json_bytes(req, payload);
        Box::pin(async move {
            let body = body.await?;
            // Only a body of no bytes is left out; whitespace alone is not JSON.
            if body.is_empty() {
                return Ok(OptionalJsonBody(T::default()));
            }
            parse_json(&body).map(OptionalJsonBody)
        })
    }
}

/// The raw body of a JSON request: 415 for another content type, 413 past `MAX_JSON_BODY`.
fn json_bytes(
    req: &HttpRequest,
    payload: &mut Payload,
) -> impl std::future::Future<Output = Result<web::Bytes, AppError>> + 'static {
    let json_type = req
        .headers()
        .get(actix_web::http::header::CONTENT_TYPE)
        .is_none_or(|ct| {
            let ct = ct.to_str().unwrap_or("").to_ascii_lowercase();
            ct.starts_with("application/json") || ct.contains("+json")
        });
    let body = web::Bytes::from_request(req, payload);
    async move {
        if !json_type {
            return Err(AppError::new(
                Code::UnsupportedMediaType,
                "send the body as JSON with Content-Type: application/json",
            ));
        }
        body.await
            .map_err(|e| match e.as_response_error().status_code() {
                actix_web::http::StatusCode::PAYLOAD_TOO_LARGE => AppError::new(
                    Code::PayloadTooLarge,
                    format!("the request body is larger than {MAX_JSON_BODY} bytes"),
                ),
                _ => AppError::new(
                    Code::InvalidBody,
                    format!("the request body could not be read: {e}"),
                ),
            })
    }
}

pub fn invalid_json(e: &serde_json::Error) -> AppError {
    AppError::new(
        Code::InvalidJson,
        format!("the request body is not valid: {e}"),
    )
}

/// Parses a JSON body; the error names the field at fault (`webhook.timeout_ms: invalid type…`).
/// Every body this API takes is a JSON object: anything else is refused before serde, which
/// would otherwise read a struct from an array, field by field in order.
pub fn parse_json<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, AppError> {
    if body.iter().find(|b| !b.is_ascii_whitespace()) != Some(&b'{') {
        let kind = match serde_json::from_slice::<Value>(body).map_err(|e| invalid_json(&e))? {
            Value::Null => "null",
            Value::Bool(_) => "a boolean",
            Value::Number(_) => "a number",
            Value::String(_) => "a string",
            Value::Array(_) => "an array",
            Value::Object(_) => "an object",
        };
        return Err(AppError::new(
            Code::InvalidJson,
            format!("the request body must be a JSON object, not {kind}"),
        ));
    }
    let mut de = serde_json::Deserializer::from_slice(body);
    let value =
        serde_path_to_error::deserialize(&mut de).map_err(|e| AppError::invalid_json_at(&e))?;
    de.end().map_err(|e| invalid_json(&e))?;
    Ok(value)
}

fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _| {
        let message = match &err {
            QueryPayloadError::Deserialize(e) => format!("invalid query parameters: {e}"),
            other => format!("invalid query parameters: {other}"),
        };
        AppError::invalid_query(message).into()
    })
}

async fn not_found(req: HttpRequest) -> Result<HttpResponse, AppError> {
    Err(AppError::new(
        Code::NotFound,
        format!("no API route {} {}", req.method(), req.path()),
    ))
}

/// For resources: a known path with a method it does not have.
fn method_not_allowed(req: &HttpRequest, allow: &str) -> HttpResponse {
    let refused = AppError::new(
        Code::MethodNotAllowed,
        format!(
            "{} is not allowed on {}; it takes {allow}",
            req.method(),
            req.path()
        ),
    );
    let mut res = actix_web::ResponseError::error_response(&refused);
    if let Ok(value) = actix_web::http::header::HeaderValue::from_str(allow) {
        res.headers_mut()
            .insert(actix_web::http::header::ALLOW, value);
    }
    res
}

/// `{"data": [...], "next_cursor": ...}`, the shape of every list.
pub fn list_response(data: &[Value], next_cursor: Option<&str>) -> HttpResponse {
    HttpResponse::Ok().json(json!({"data": data, "next_cursor": next_cursor}))
}
