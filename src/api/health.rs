//! Liveness and readiness probes; no API key needed.

use actix_web::{HttpResponse, web};
use serde_json::json;

use super::blocking;
use crate::error::ApiError;
use crate::server::AppState;

pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/readyz", web::get().to(readyz));
}

async fn healthz() -> HttpResponse {
    HttpResponse::Ok().json(json!({"status": "ok"}))
}

/// Ready when the store answers and the dispatcher is keeping up.
async fn readyz(state: web::Data<AppState>) -> Result<HttpResponse, ApiError> {
    let store = state.store.clone();
    let store_ok = blocking(move || store.ping()).await.is_ok();
    let dispatcher_ok = state.dispatcher.is_healthy();
    let body = json!({
        "status": if store_ok && dispatcher_ok { "ready" } else { "not_ready" },
        "checks": {"store": store_ok, "dispatcher": dispatcher_ok},
    });
    Ok(if store_ok && dispatcher_ok {
        HttpResponse::Ok().json(body)
    } else {
        HttpResponse::ServiceUnavailable().json(body)
    })
}
