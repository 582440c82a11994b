//! Liveness and readiness probes; no API key needed.

use actix_web::{HttpResponse, web};
use serde::Serialize;
use utoipa::ToSchema;

use super::openapi::{Op, register};
use crate::app::{AppState, health};
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
    health::refresh_backlog_gauges(&state).await?;
    let m = &state.metrics;
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
    /// No due delivery has waited longer than `alerts.deliveries_delayed_after` for a worker
    /// (every worker busy, e.g. on receivers that answer slowly): deliveries run on time.
    deliveries_on_time: bool,
}

/// Ready when the store answers, the dispatcher is keeping up and deliveries go out on time.
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
    let r = health::readiness(&state).await;
    let body = Readiness {
        status: if r.ready() { "ready" } else { "not_ready" },
        checks: Checks {
            store: r.store,
            dispatcher: r.dispatcher,
            deliveries_on_time: r.deliveries_on_time,
        },
    };
    Ok(if r.ready() {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    })
}
