//! Liveness and readiness probes; no API key needed.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::{Op, register};
use crate::app::AppState;
use crate::app::blocking;
use crate::domain::time::now_ms;
use crate::error::AppError;

pub fn routes(cfg: &mut web::ServiceConfig) {
    register(cfg, routes_table(), "");
}

/// The probes and the scrape target, documented like the API.
pub fn routes_table() -> Vec<Op> {
    vec![
        Op::new(__path_healthz, healthz),
        Op::new(__path_readyz, readyz),
        Op::new(__path_metrics, metrics),
    ]
}

/// Prometheus scrape target; the backlog gauges are read at scrape time.
#[utoipa::path(
    get,
    path = "/metrics",
    tag = "health",
    responses((
        status = 200,
        description = "OpenMetrics text: events ingested, attempts by outcome, attempt latency, backlog",
        body = String,
        content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8",
    )),
)]
async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let store = state.store.clone();
    let open = blocking(move || store.open_count()).await?;
    let (queued, oldest_due) = state.dispatcher.backlog();
    let m = &state.metrics;
    m.open_deliveries
        .set(i64::try_from(open).unwrap_or(i64::MAX));
    m.queued_deliveries
        .set(i64::try_from(queued).unwrap_or(i64::MAX));
    #[allow(clippy::cast_precision_loss)] // milliseconds well within f64's exact range
    let overdue = oldest_due.map_or(0.0, |due| (now_ms() - due).max(0) as f64 / 1000.0);
    m.oldest_due_seconds.set(overdue);
    Ok(HttpResponse::Ok()
        .content_type("application/openmetrics-text; version=1.0.0; charset=utf-8")
        .body(m.render()))
}

/// Liveness: the process answers.
#[utoipa::path(
    get,
    path = "/healthz",
    tag = "health",
    responses((status = 200, description = "alive", body = Health)),
)]
async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(Health { status: "ok" })
}

/// `GET /healthz`.
#[derive(Serialize, ToSchema)]
struct Health {
    /// Always `ok`.
    status: &'static str,
}

/// `GET /readyz`, ready or not.
#[derive(Serialize, ToSchema)]
struct Readiness {
    /// `ready` or `not_ready`.
    status: &'static str,
    checks: Checks,
}

#[derive(Serialize, ToSchema)]
#[schema(as = ReadinessChecks)]
struct Checks {
    /// The store answers and its last write committed.
    store: bool,
    /// The dispatcher keeps up.
    dispatcher: bool,
}

/// Ready when the store answers and the dispatcher is keeping up.
#[utoipa::path(
    get,
    path = "/readyz",
    tag = "health",
    responses(
        (status = 200, description = "ready", body = Readiness),
        (status = 503, description = "not ready; `checks` says which part is not", body = Readiness),
    ),
)]
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, AppError> {
    let store = state.store.clone();
    let store_ok = blocking(move || store.ping()).await.is_ok();
    let dispatcher_ok = state.dispatcher.is_healthy();
    let body = Readiness {
        status: if store_ok && dispatcher_ok {
            "ready"
        } else {
            "not_ready"
        },
        checks: Checks {
            store: store_ok,
            dispatcher: dispatcher_ok,
        },
    };
    Ok(if store_ok && dispatcher_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    })
}
