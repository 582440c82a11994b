//! `AppState`: everything a use case may reach — the store, the dispatcher, the network policy,
//! keys and settings. Built once by `server.rs`; handed to handlers by `api/` and `web/`.

use std::sync::Arc;

use super::intake::Intake;
use crate::alerts::Alerts;
use crate::config::Config;
use crate::delivery::dispatcher::Dispatcher;
use crate::delivery::retry::RetryPolicy;
use crate::delivery::transport::Transport;
use crate::domain::time::Clock;
use crate::security::crypto::MasterKey;
use crate::security::ssrf::AddressPolicy;
use crate::store::Store;
use crate::telemetry::Metrics;

pub struct AppState {
    /// What is wrong now, and the alert mailer.
    pub alerts: Arc<Alerts>,
    pub config: Arc<Config>,
    pub store: Store,
    pub dispatcher: Dispatcher,
    /// How events enter: the one path for posted events and routine firings.
    pub intake: Intake,
    pub policy: Arc<AddressPolicy>,
    pub master_key: MasterKey,
    pub retry: RetryPolicy,
    /// For test sends; the dispatcher's workers have their own copies.
    pub transport: Arc<dyn Transport>,
    pub metrics: Metrics,
    /// The one clock the dispatcher, routines and retention read, so the API agrees with them.
    pub clock: Clock,
}
