//! The PostgreSQL backend's tests: the storage contract, each case in a database of its own
//! on the server `TIDINGS_TEST_POSTGRES` names (an admin URL; `tests/pg_cluster.sh` starts a
//! throwaway one), and what only a shared store has: nodes taking over claims, caches kept
//! true across nodes. Without the variable they skip, unless `TIDINGS_REQUIRE_EXTERNAL=1`.

use std::time::Duration;

use super::{PgOptions, PgStore};
use crate::domain::time::Clock;
use crate::security::crypto::Keyring;
use crate::store::Store;
use crate::store::contract::store_contract_tests;

/// A database made for one test, dropped (connections and all) with the guard.
pub(crate) struct TempDb {
    admin: String,
    name: String,
    pub(crate) url: String,
}

impl TempDb {
    /// A fresh database, or `None` (after saying why) where no test server is configured.
    pub(crate) fn new() -> Option<Self> {
        let Ok(admin) = std::env::var("TIDINGS_TEST_POSTGRES") else {
            let why = "TIDINGS_TEST_POSTGRES is not set (start a server with tests/pg_cluster.sh)";
            assert!(
                std::env::var("TIDINGS_REQUIRE_EXTERNAL").as_deref() != Ok("1"),
                "TIDINGS_REQUIRE_EXTERNAL=1 but the PostgreSQL tests cannot run: {why}"
            );
            eprintln!("skipped: {why}");
            return None;
        };
        let name = format!("tidings_test_{:016x}", rand::random::<u64>());
        let mut client = postgres::Client::connect(&admin, postgres::NoTls)
            .expect("connect to TIDINGS_TEST_POSTGRES");
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        let url = with_database(&admin, &name);
        Some(Self { admin, name, url })
    }

    pub(crate) fn options(&self, lease: Duration) -> PgOptions {
        PgOptions {
            url: self.url.clone(),
            lease,
        }
    }
}

/// The admin URL with its database swapped for `name`.
fn with_database(admin: &str, name: &str) -> String {
    let mut url = url::Url::parse(admin).expect("TIDINGS_TEST_POSTGRES is a URL");
    url.set_path(name);
    url.to_string()
}

impl Drop for TempDb {
    fn drop(&mut self) {
        if let Ok(mut client) = postgres::Client::connect(&self.admin, postgres::NoTls) {
            let _ = client.batch_execute(&format!(
                "DROP DATABASE IF EXISTS {} WITH (FORCE)",
                self.name
            ));
        }
    }
}

/// The master key every node of a test store shares, as `TIDINGS_MASTER_KEY` would give it.
const KEY_HEX: &str = "0707070707070707070707070707070707070707070707070707070707070707";

fn keyring() -> Keyring {
    Keyring::load(std::path::Path::new("/nonexistent"), Some(KEY_HEX)).expect("a valid key")
}

fn open_pg(clock: Clock) -> Option<(Store, TempDb)> {
    let db = TempDb::new()?;
    let (store, _) = PgStore::open_with_keys(
        &db.options(Duration::from_secs(60)),
        || Ok(keyring()),
        clock,
    )
    .expect("open the PostgreSQL store");
    Some((store, db))
}

store_contract_tests!(open_pg);

/// A database from before migration 8 gets its condition-error log from the deliveries
/// already there, and the trigger notes the ones made after.
#[test]
fn migration_8_logs_the_condition_errors_already_there() {
    use crate::domain::delivery::DeliveryStatus;
    use crate::store::contract::{START, event, ingest_with, rule};

    let Some(db) = TempDb::new() else {
        return;
    };
    let clock = Clock::manual(START);
    let open = || {
        PgStore::open_with_keys(
            &db.options(Duration::from_secs(60)),
            || Ok(keyring()),
            clock.clone(),
        )
        .expect("open the PostgreSQL store")
        .0
    };
    let store = open();
    let ws = store.default_workspace().clone();
    let r = rule(&ws, "r", &["x"]);
    ingest_with(
        &store,
        &event(&ws, "x", START - 7),
        &[&r],
        DeliveryStatus::ConditionError,
    );
    ingest_with(
        &store,
        &event(&ws, "x", START - 6),
        &[&r],
        DeliveryStatus::Pending,
    );
    store.shutdown();
    drop(store);

    // As migration 7 left it.
    let mut client = postgres::Client::connect(&db.url, postgres::NoTls).unwrap();
    client
        .batch_execute(
            "DROP TRIGGER deliveries_log_condition_errors ON deliveries;
             DROP FUNCTION tidings_log_condition_error();
             DROP TABLE condition_error_log;
             DELETE FROM tidings_schema WHERE version = 8;",
        )
        .unwrap();
    drop(client);

    let store = open();
    ingest_with(
        &store,
        &event(&ws, "x", START + 5),
        &[&r],
        DeliveryStatus::ConditionError,
    );
    let errors = store
        .condition_errors_since(&ws, START - 3_600_000)
        .unwrap();
    assert_eq!(errors.len(), 1);
    assert_eq!((errors[0].count, errors[0].latest_at), (2, START + 5));
    store.shutdown();
}
