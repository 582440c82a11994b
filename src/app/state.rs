//! `AppState`: everything a use case may reach — the store, the dispatcher, the network policy,
//! keys and settings. Built once by `server.rs`; handed to handlers by `api/` and `web/`.

use std::sync::Arc;

use super::intake::Intake;
use crate::config::Config;
use crate::delivery::client::HttpClient;
use crate::delivery::dispatcher::Dispatcher;
use crate::delivery::retry::RetryPolicy;
use crate::domain::time::Clock;
use crate::security::crypto::MasterKey;
use crate::security::ssrf::AddressPolicy;
use crate::store::Store;
use crate::telemetry::Metrics;

pub struct AppState {
    pub config: Arc<Config>,
    pub store: Store,
    pub dispatcher: Dispatcher,
    /// How events enter: the one path for posted events and routine firings.
    pub intake: Intake,
    pub policy: Arc<AddressPolicy>,
    pub master_key: MasterKey,
    pub retry: RetryPolicy,
    /// For test sends; the dispatcher's workers have their own.
    pub client: HttpClient,
    pub metrics: Metrics,
    /// The one clock: the routine scheduler's, so `next_runs` agree with it.
    pub clock: Clock,
}
