//! How tidings is doing: readiness (the store answers and its last write committed; the
//! dispatcher keeps up; due deliveries go out on time) and the backlog figures `/metrics`
//! shows.

use super::{AppState, blocking};
use crate::error::AppError;

/// Which parts are ready.
pub struct Readiness {
    pub store: bool,
    pub dispatcher: bool,
    /// No due delivery has waited over `alerts.deliveries_delayed_after` for a busy worker.
    pub deliveries_on_time: bool,
}

impl Readiness {
    pub fn ready(&self) -> bool {
        self.store && self.dispatcher && self.deliveries_on_time
    }
}

pub async fn readiness(state: &AppState) -> Readiness {
    let store = state.store.clone();
    Readiness {
        store: blocking(move || store.ping()).await.is_ok(),
        dispatcher: state.dispatcher.is_healthy(),
        deliveries_on_time: state.dispatcher.is_on_time(),
    }
}

/// Sets the backlog gauges (open deliveries, queued in memory, how overdue the oldest is)
/// to what they are now, for a scrape.
pub async fn refresh_backlog_gauges(state: &AppState) -> Result<(), AppError> {
    let store = state.store.clone();
    let open = blocking(move || store.open_count()).await?;
    let (queued, oldest_due) = state.dispatcher.backlog();
    let m = &state.metrics;
    m.open_deliveries
        .set(i64::try_from(open).unwrap_or(i64::MAX));
    m.queued_deliveries
        .set(i64::try_from(queued).unwrap_or(i64::MAX));
    let now = state.clock.now_ms();
    #[allow(clippy::cast_precision_loss)] // milliseconds well within f64's exact range
    let overdue = oldest_due.map_or(0.0, |due| (now - due).max(0) as f64 / 1000.0);
    m.oldest_due_seconds.set(overdue);
    Ok(())
}
