//! App assembly: opens the store, starts the dispatcher, and serves the API on the given
//! listener in a thread of its own, so tests and `serve` start exactly the same thing.

use std::net::TcpListener;
use std::sync::Arc;
use std::thread::JoinHandle;

use actix_web::dev::Service;
use actix_web::{App, HttpServer, web};
use anyhow::Context;

use crate::alerts::Alerts;
use crate::alerts::mail::Mailer;
use crate::alerts::smtp::SmtpMailer;
use crate::app::AppState;
use crate::app::intake::Intake;
use crate::config::Config;
use crate::delivery::dispatcher::{Dispatcher, Settings};
use crate::delivery::http::HttpTransport;
use crate::delivery::retry::RetryPolicy;
use crate::delivery::transport::Transport;
use crate::domain::time::Clock;
use crate::retention::Retention;
use crate::routines::Routines;
use crate::security::crypto::Keyring;
use crate::security::opened_secrets::OpenedSecrets;
use crate::security::ssrf::AddressPolicy;
use crate::store::Store;
use crate::telemetry::Metrics;

/// A running appliance.
pub struct AppHandle {
    port: u16,
    server: actix_web::dev::ServerHandle,
    thread: Option<JoinHandle<std::io::Result<()>>>,
    dispatcher: Dispatcher,
    store: Store,
    retention: Retention,
    routines: Routines,
    alerts: Arc<Alerts>,
    ui: web::Data<crate::web::UiState>,
}

impl AppHandle {
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The running app's store, for provisioning (such as a first API key) in-process.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The first-run setup token while no admin UI user exists (the log prints its URL).
    pub fn setup_token(&self) -> Option<String> {
        self.ui.setup_token()
    }

    /// Blocks until the server stops (on SIGINT/SIGTERM), then stops the dispatcher.
    pub fn wait(mut self) -> std::io::Result<()> {
        let result = self.join_server();
        self.routines.stop();
        // Before the dispatcher: its shutdown must not read as a stall.
        self.alerts.stop();
        self.dispatcher.shutdown();
        self.retention.stop();
        self.store.shutdown();
        result
    }

    /// Graceful stop: no new requests, in-flight ones finish, workers finish their attempt.
    pub fn stop(mut self) {
        let server = self.server.clone();
        actix_web::rt::System::new().block_on(server.stop(true));
        let _ = self.join_server();
        self.routines.stop();
        // Before the dispatcher: its shutdown must not read as a stall.
        self.alerts.stop();
        self.dispatcher.shutdown();
        self.retention.stop();
        self.store.shutdown();
    }

    fn join_server(&mut self) -> std::io::Result<()> {
        match self.thread.take() {
            Some(t) => t
                .join()
                .unwrap_or_else(|_| Err(std::io::Error::other("server thread panicked"))),
            None => Ok(()),
        }
    }
}

/// Starts tidings on `listener` with `config`. The master key comes from
/// `TIDINGS_MASTER_KEY` when given, else from the data dir.
pub fn run(config: Config, listener: TcpListener) -> anyhow::Result<AppHandle> {
    let env_key = std::env::var("TIDINGS_MASTER_KEY").ok();
    run_with_key(config, listener, env_key.as_deref())
}

pub fn run_with_key(
    config: Config,
    listener: TcpListener,
    env_key: Option<&str>,
) -> anyhow::Result<AppHandle> {
    run_with_clock(config, listener, env_key, Clock::system())
}

/// `run_with_key` with the clock the dispatcher, routines and retention read (tests drive it
/// by hand).
/// The address mail and alerts link to: `public_url` if set, else where this server listens.
fn public_url(config: &Config, listening: &str) -> String {
    if config.public_url.is_empty() {
        listening.to_owned()
    } else {
        config.public_url.trim_end_matches('/').to_owned()
    }
}

pub fn run_with_clock(
    config: Config,
    listener: TcpListener,
    env_key: Option<&str>,
    clock: Clock,
) -> anyhow::Result<AppHandle> {
    // TLS first: a bad certificate must fail start-up before anything else is running.
    let tls = (!config.tls.cert.is_empty())
        .then(|| load_tls(&config.tls.cert, &config.tls.key))
        .transpose()?;
    // The store seals event payloads and logged bodies itself; it hands back the key that
    // rule secrets are sealed with too (a new one if it finished an interrupted rotation).
    let (store, master_key) = crate::store::open_with_keys(
        config.store.postgres().as_ref(),
        &config.data_dir,
        || Keyring::load(&config.data_dir, env_key),
        clock.clone(),
    )
    .context("opening the database")?;
    let policy = Arc::new(AddressPolicy::new(
        config.is_development(),
        config.network.allow.clone(),
    ));
    let retry = RetryPolicy::from(&config.retry);
    let metrics = Metrics::default();
    let transport: Arc<dyn Transport> = Arc::new(HttpTransport::new(&policy, master_key.clone()));
    // Checked before anything runs: a mail server tidings cannot use stops start-up.
    let mailer = mailer(&config)?;
    let (observer, observations) = crate::delivery::observer::channel();
    let dispatcher = Dispatcher::start(
        store.clone(),
        Settings {
            retry: retry.clone(),
            policy: Arc::clone(&policy),
            secrets: OpenedSecrets::new(master_key.clone()),
            store_bodies: config.logs.store_bodies,
            disable_after: config.alerts.disable_after,
            stuck_after: config.alerts.dispatcher_stuck_after,
            metrics: metrics.clone(),
            transport: Arc::clone(&transport),
            clock: clock.clone(),
            fairness: crate::delivery::dispatcher::Fairness::from(&config),
            observer: Some(observer),
        },
    )
    .context("starting the dispatcher")?;
    let port = listener.local_addr()?.port();
    let retention_days = config.logs.retention_days;
    let max_attempts = retry.max_attempts;
    log_start(&config, &listener);
    let scheme = if tls.is_some() { "https" } else { "http" };
    let ui_url = public_url(&config, &format!("{scheme}://{}", listener.local_addr()?));
    let ui = web::Data::new(
        crate::web::UiState::start(&store, &format!("{scheme}://{}", listener.local_addr()?))
            .context("reading admin UI users")?,
    );
    let subject_key = master_key.subject_key().context("no subject key")?.clone();
    let intake = Intake::new(
        store.clone(),
        dispatcher.clone(),
        metrics.clone(),
        max_attempts,
        config.logs.store_bodies,
        subject_key,
    );
    let alerts = Arc::new(
        Alerts::start(
            crate::alerts::Parts {
                store: store.clone(),
                intake: intake.clone(),
                dispatcher: dispatcher.clone(),
                clock: clock.clone(),
                observations,
                mailer,
            },
            crate::alerts::Settings::new(&config, ui_url),
        )
        .context("starting the alerts monitor")?,
    );
    let state = web::Data::new(AppState {
        alerts: Arc::clone(&alerts),
        intake: intake.clone(),
        transport,
        config: Arc::new(config),
        store: store.clone(),
        dispatcher: dispatcher.clone(),
        policy,
        master_key,
        retry,
        metrics,
        clock: clock.clone(),
    });
    let (server, thread) = serve_http(listener, tls, state, ui.clone())?;
    let retention = Retention::start(store.clone(), retention_days, clock.clone());
    let routines =
        Routines::start(store.clone(), intake, clock).context("starting the routine scheduler")?;
    Ok(AppHandle {
        port,
        server,
        thread: Some(thread),
        dispatcher,
        store,
        retention,
        routines,
        alerts,
        ui,
    })
}

/// The alert mailer `[alerts.email]` describes, if it is set.
fn mailer(config: &Config) -> anyhow::Result<Option<Arc<dyn Mailer>>> {
    if !config.alerts.email.enabled() {
        return Ok(None);
    }
    let mailer = SmtpMailer::new(&config.alerts.email, config.is_development())
        .map_err(anyhow::Error::msg)?;
    Ok(Some(Arc::new(mailer)))
}

/// Serves the API and the UI on `listener` from a thread of its own (with its own actix
/// system), and returns once the server is listening.
fn serve_http(
    listener: TcpListener,
    tls: Option<rustls::ServerConfig>,
    state: web::Data<AppState>,
    ui_data: web::Data<crate::web::UiState>,
) -> anyhow::Result<(
    actix_web::dev::ServerHandle,
    JoinHandle<std::io::Result<()>>,
)> {
    let (tx, rx) = std::sync::mpsc::channel();
    let thread = std::thread::Builder::new()
        .name("http".into())
        .spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = HttpServer::new(move || {
                    App::new()
                        .wrap_fn(|req, srv| {
                            let log = RequestLog::start(&req);
                            let response = srv.call(req);
                            async move { log.finish(response.await) }
                        })
                        .app_data(state.clone())
                        .app_data(ui_data.clone())
                        .configure(crate::api::health::routes)
                        .configure(crate::api::routes)
                        .configure(crate::web::routes)
                });
                let server = match tls {
                    Some(tls) => server.listen_rustls_0_23(listener, tls)?,
                    None => server.listen(listener)?,
                }
                .run();
                let _ = tx.send(server.handle());
                server.await
            })
        })?;
    let server = rx.recv().context("the HTTP server did not start")?;
    Ok((server, thread))
}

fn log_start(config: &Config, listener: &TcpListener) {
    let addr = listener
        .local_addr()
        .map(|a| a.to_string())
        .unwrap_or_default();
    if config.is_development() {
        tracing::warn!(listen = %addr, "tidings starting in DEVELOPMENT mode: http:// and local destinations are allowed; do not use with real patient data");
    } else {
        tracing::info!(listen = %addr, "tidings starting in production mode");
    }
    let loopback = listener.local_addr().is_ok_and(|a| a.ip().is_loopback());
    if !config.is_development() && !loopback && config.tls.cert.is_empty() {
        tracing::warn!(listen = %addr, "listening on a non-loopback address without TLS: API keys and event data cross the network unencrypted; set tls.cert and tls.key or put a TLS proxy in front");
    }
}

/// One request's log line: every request gets an id (the caller's `X-Request-Id` if it sent a
/// sane one), returned as `X-Request-Id`, and one log line with method, path, status and duration
/// — never bodies or query strings, which may carry PHI.
struct RequestLog {
    id: String,
    method: String,
    path: String,
    started: std::time::Instant,
}

impl RequestLog {
    fn start(req: &actix_web::dev::ServiceRequest) -> Self {
        let given = req
            .headers()
            .get("x-request-id")
            .and_then(|v| v.to_str().ok())
            .filter(|v| {
                !v.is_empty()
                    && v.len() <= 64
                    && v.bytes()
                        .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            })
            .map(str::to_owned);
        Self {
            id: given.unwrap_or_else(|| format!("req_{:016x}", rand::random::<u64>())),
            method: req.method().to_string(),
            path: req.path().to_owned(),
            started: std::time::Instant::now(),
        }
    }

    fn finish(
        self,
        res: Result<actix_web::dev::ServiceResponse, actix_web::Error>,
    ) -> Result<actix_web::dev::ServiceResponse, actix_web::Error> {
        use actix_web::http::header::{HeaderName, HeaderValue};
        let mut res = res?;
        let status = res.status().as_u16();
        let ms = self.started.elapsed().as_millis();
        let (id, method, path) = (&self.id, &self.method, &self.path);
        // Successes at debug (TIDINGS_LOG=debug): at thousands of events a second they would
        // flood journald; refusals and failures are what an operator needs to see.
        match status {
            500.. => tracing::warn!(request_id = %id, %method, %path, status, ms, "request failed"),
            400..=499 => {
                tracing::info!(request_id = %id, %method, %path, status, ms, "request refused");
            }
            _ => tracing::debug!(request_id = %id, %method, %path, status, ms, "request"),
        }
        if let Ok(value) = HeaderValue::from_str(&self.id) {
            res.headers_mut()
                .insert(HeaderName::from_static("x-request-id"), value);
        }
        Ok(res)
    }
}

/// The rustls server config for `tls.cert` (PEM chain) and `tls.key` (PEM private key).
fn load_tls(cert: &str, key: &str) -> anyhow::Result<rustls::ServerConfig> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let certs = CertificateDer::pem_file_iter(cert)
        .and_then(Iterator::collect::<Result<Vec<_>, _>>)
        .with_context(|| format!("tls.cert: cannot read a PEM certificate chain from {cert}"))?;
    anyhow::ensure!(!certs.is_empty(), "tls.cert: {cert} holds no certificate");
    let key = PrivateKeyDer::from_pem_file(key)
        .with_context(|| format!("tls.key: cannot read a PEM private key from {key}"))?;
    rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .context("tls.cert and tls.key do not form a usable pair")
}
