//! `GET /api/v1/alerts` (what is wrong now) and `POST /api/v1/alerts/test-email`.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use serde_json::{Value, json};
use utoipa::ToSchema;

use super::error::ErrorBody;
use super::openapi::Op;
use super::{AdminKey, list_response};
use crate::app::{AppState, alerts};
use crate::domain::time::to_rfc3339;
use crate::error::AppError;

pub fn routes() -> Vec<Op> {
    vec![
        Op::new(__path_list, list),
        Op::new(__path_test_email, test_email),
    ]
}

/// Something wrong now.
#[derive(Serialize, ToSchema)]
#[schema(as = Alert)]
struct AlertJson {
    /// The system event that announced it: `tidings:rule.failing`, `tidings:rule.deactivated`,
    /// `tidings:rule.cert_expiring`, `tidings:dispatcher.stalled` or `tidings:store.write_failed`.
    kind: String,
    /// The rule concerned; null for the dispatcher and the store.
    #[schema(required = true)]
    rule: Option<AlertRule>,
    #[schema(format = DateTime)]
    since: String,
    /// What is wrong, in plain words.
    detail: String,
}

#[derive(Serialize, ToSchema)]
struct AlertRule {
    id: String,
    name: String,
}

/// Every open alert (one page).
#[derive(ToSchema)]
#[allow(dead_code)] // documents the response's shape only
struct AlertList {
    data: Vec<AlertJson>,
    /// Always null: one page.
    #[schema(required = true)]
    next_cursor: Option<String>,
}

/// What is wrong now, oldest first: failing rules, rules tidings turned off, a stalled
/// dispatcher, a store that cannot write.
#[utoipa::path(
    get,
    path = "/api/v1/alerts",
    tag = "alerts",
    responses((status = 200, description = "open alerts, oldest first; one page", body = AlertList)),
    security(("api_key" = ["admin"])),
)]
async fn list(
    AdminKey(key): AdminKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let open = alerts::open(&state, &key.workspace_id);
    let data: Vec<Value> = open
        .into_iter()
        .map(|a| {
            serde_json::to_value(AlertJson {
                kind: a.kind.to_owned(),
                rule: a.rule.map(|r| AlertRule {
                    id: r.id,
                    name: r.name,
                }),
                since: to_rfc3339(a.since),
                detail: a.detail,
            })
            .expect("string-keyed structs serialize")
        })
        .collect();
    Ok(list_response(&data, None))
}

/// Who the test mail went to.
#[derive(ToSchema)]
#[allow(dead_code)] // documents the response's shape only
struct TestEmailSent {
    /// `alerts.email.to` and the admins who opted in.
    to: Vec<String>,
}

/// Send a test mail to everyone alert mail goes to.
#[utoipa::path(
    post,
    path = "/api/v1/alerts/test-email",
    tag = "alerts",
    responses(
        (status = 200, description = "the mail server took the mail", body = TestEmailSent),
        (status = 409, description = "alert mail is off, or goes to nobody (`conflict`)", body = ErrorBody),
        (status = 502, description = "the mail server refused the mail or could not be reached (`mail_failed`)", body = ErrorBody),
    ),
    security(("api_key" = ["admin"])),
)]
async fn test_email(
    AdminKey(key): AdminKey,
    state: web::Data<AppState>,
) -> Result<HttpResponse, AppError> {
    let by = format!("the API key \"{}\"", key.name);
    let to = alerts::send_test_email(&state, key.workspace_id.clone(), by).await?;
    Ok(HttpResponse::Ok().json(json!({ "to": to })))
}
