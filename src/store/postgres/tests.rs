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
