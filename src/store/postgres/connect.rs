//! Reaching the database: the URL parsed by the client, TLS through our rustls (the server's
//! certificate checked against the system's trust store), a pool of connections for reads,
//! and PostgreSQL's errors as `StoreError`.

use std::ops::{Deref, DerefMut};
use std::sync::Arc;
use std::time::{Duration, Instant};

use r2d2_postgres::PostgresConnectionManager;
use r2d2_postgres::r2d2::ManageConnection;
use rustls_platform_verifier::BuilderVerifierExt;
use tokio_postgres_rustls::MakeRustlsConnect;

use crate::store::StoreError;

pub(super) type Pool = r2d2_postgres::r2d2::Pool<ReadConnections>;
pub(super) type PooledClient = r2d2_postgres::r2d2::PooledConnection<ReadConnections>;

/// Connections the pool keeps for reads: request handlers, the dispatcher's workers, the
/// scheduler and retention read at once.
const POOL_SIZE: u32 = 16;
/// How long a read waits for a connection (or for the database to answer a new one) before
/// it fails: readiness then says the database is away instead of hanging.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// A pooled connection given back less than this long ago is lent again without asking the
/// server whether it is alive (a round trip before every read, when every attempt reads).
const TRUSTED_AFTER_USE: Duration = Duration::from_secs(1);

/// The read pool's connections: PostgreSQL's, each remembering when it was last given back,
/// so that only one idle for a while, which the server may have cut meanwhile (a restart,
/// an admin), is pinged before it is lent.
pub(super) struct ReadConnections(PostgresConnectionManager<MakeRustlsConnect>);

pub(super) struct ReadClient {
    client: postgres::Client,
    given_back: Instant,
}

impl Deref for ReadClient {
    type Target = postgres::Client;
    fn deref(&self) -> &postgres::Client {
        &self.client
    }
}

impl DerefMut for ReadClient {
    fn deref_mut(&mut self) -> &mut postgres::Client {
        &mut self.client
    }
}

impl ManageConnection for ReadConnections {
    type Connection = ReadClient;
    type Error = postgres::Error;

    fn connect(&self) -> Result<ReadClient, postgres::Error> {
        Ok(ReadClient {
            client: self.0.connect()?,
            given_back: Instant::now(),
        })
    }

    fn is_valid(&self, conn: &mut ReadClient) -> Result<(), postgres::Error> {
        if conn.given_back.elapsed() < TRUSTED_AFTER_USE {
            return Ok(());
        }
        self.0.is_valid(&mut conn.client)
    }

    /// Called each time a connection is given back (r2d2's contract), hence the stamp.
    fn has_broken(&self, conn: &mut ReadClient) -> bool {
        conn.given_back = Instant::now();
        self.0.has_broken(&mut conn.client)
    }
}

/// PostgreSQL's SQLSTATE for a unique-key violation.
const UNIQUE_VIOLATION: &str = "23505";

impl From<postgres::Error> for StoreError {
    fn from(e: postgres::Error) -> Self {
        match e.as_db_error() {
            Some(db) if db.code().code() == UNIQUE_VIOLATION => {
                Self::Conflict(format!("already exists: {}", db.message()))
            }
            Some(db) => Self::Storage(format!("PostgreSQL: {}", db.message())),
            None => Self::Storage(format!("PostgreSQL: {e}")),
        }
    }
}

/// Parses the URL (user, password, host, port, database, `sslmode`), saying which part is
/// wrong without echoing a password.
pub(super) fn config(url: &str) -> Result<postgres::Config, StoreError> {
    url.parse::<postgres::Config>().map_err(|e| {
        StoreError::Storage(format!(
            "store.url is not a PostgreSQL URL (postgres://user:password@host:port/database): {e}"
        ))
    })
}

/// TLS for `sslmode=prefer` (the default) or `require`: the server's certificate must be
/// valid for its host name under the system's trust store (add a private CA there).
pub(super) fn tls() -> Result<MakeRustlsConnect, StoreError> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .and_then(BuilderVerifierExt::with_platform_verifier)
        .map_err(|e| StoreError::Storage(format!("TLS to PostgreSQL: {e}")))?
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// One connection, for the writer and the change listener.
pub(super) fn client(url: &str) -> Result<postgres::Client, StoreError> {
    let mut config = config(url)?;
    config.connect_timeout(CONNECT_TIMEOUT);
    config
        .connect(tls()?)
        .map_err(|e| StoreError::Storage(format!("cannot connect to PostgreSQL: {e}")))
}

/// The read pool. Fails at once if the database cannot be reached, so `serve` does not
/// start against nothing; later outages heal by themselves (broken connections are replaced).
pub(super) fn pool(url: &str) -> Result<Pool, StoreError> {
    let mut config = config(url)?;
    config.connect_timeout(CONNECT_TIMEOUT);
    let manager = ReadConnections(PostgresConnectionManager::new(config, tls()?));
    r2d2_postgres::r2d2::Pool::builder()
        .max_size(POOL_SIZE)
        .min_idle(Some(1))
        .connection_timeout(CONNECT_TIMEOUT)
        .build(manager)
        .map_err(|e| StoreError::Storage(format!("cannot connect to PostgreSQL: {e}")))
}

pub(super) fn get(pool: &Pool) -> Result<PooledClient, StoreError> {
    pool.get()
        .map_err(|e| StoreError::Storage(format!("PostgreSQL is not answering: {e}")))
}
