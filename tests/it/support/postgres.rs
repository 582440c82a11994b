//! A PostgreSQL database of its own for a test, on the server `TIDINGS_TEST_POSTGRES` names
//! (`tests/pg_cluster.sh` starts a throwaway one); `None` (the test skips) without it, unless
//! `TIDINGS_REQUIRE_EXTERNAL=1`.

use crate::support::external::require_external;

/// A database for one test on the test server, dropped with the guard.
pub(crate) struct TestDb {
    admin: String,
    pub(crate) name: String,
    pub(crate) url: String,
}

impl TestDb {
    pub(crate) fn new() -> Option<Self> {
        let Ok(admin) = std::env::var("TIDINGS_TEST_POSTGRES") else {
            let why = "TIDINGS_TEST_POSTGRES is not set (start a server with tests/pg_cluster.sh)";
            assert!(
                !require_external(),
                "TIDINGS_REQUIRE_EXTERNAL=1 but the PostgreSQL tests cannot run: {why}"
            );
            eprintln!("skipped: {why}");
            return None;
        };
        let name = format!("tidings_it_{:016x}", rand::random::<u64>());
        postgres::Client::connect(&admin, postgres::NoTls)
            .expect("connect to TIDINGS_TEST_POSTGRES")
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
        let mut url = url::Url::parse(&admin).expect("TIDINGS_TEST_POSTGRES is a URL");
        url.set_path(&name);
        Some(Self {
            admin,
            url: url.to_string(),
            name,
        })
    }

    /// A connection to the test's own database.
    pub(crate) fn client(&self) -> postgres::Client {
        postgres::Client::connect(&self.url, postgres::NoTls).expect("connect to the test database")
    }

    pub(crate) fn admin(&self) -> postgres::Client {
        postgres::Client::connect(&self.admin, postgres::NoTls).expect("connect as admin")
    }
}

impl Drop for TestDb {
    fn drop(&mut self) {
        // Kept when the test fails, to inspect.
        if std::thread::panicking() {
            eprintln!("kept the database {} of the failed test", self.url);
            return;
        }
        let _ = self.admin().batch_execute(&format!(
            "DROP DATABASE IF EXISTS {} WITH (FORCE)",
            self.name
        ));
    }
}

/// Whether the suite runs on PostgreSQL (`TIDINGS_TEST_BACKEND=postgres`) instead of redb.
pub(crate) fn on_postgres() -> bool {
    std::env::var("TIDINGS_TEST_BACKEND").is_ok_and(|b| b == "postgres")
}

/// Under `TIDINGS_TEST_BACKEND=postgres`, the URL of a database belonging to `data_dir`
/// (created the first time, kept across restarts on the same dir, left for the throwaway
/// cluster to take away); `None` on redb.
pub(crate) fn database_for(data_dir: &std::path::Path) -> Option<String> {
    use sha2::Digest;
    if !on_postgres() {
        return None;
    }
    let admin = std::env::var("TIDINGS_TEST_POSTGRES")
        .expect("TIDINGS_TEST_BACKEND=postgres needs TIDINGS_TEST_POSTGRES (tests/pg_cluster.sh)");
    let digest = sha2::Sha256::digest(data_dir.to_string_lossy().as_bytes());
    let name = format!("tidings_app_{}", hex::encode(&digest[..8]));
    let mut client = postgres::Client::connect(&admin, postgres::NoTls)
        .expect("connect to TIDINGS_TEST_POSTGRES");
    let exists = client
        .query_opt("SELECT 1 FROM pg_database WHERE datname = $1", &[&name])
        .expect("look for the database")
        .is_some();
    if !exists {
        client
            .batch_execute(&format!("CREATE DATABASE {name}"))
            .expect("create a test database");
    }
    let mut url = url::Url::parse(&admin).expect("TIDINGS_TEST_POSTGRES is a URL");
    url.set_path(&name);
    Some(url.to_string())
}

/// For a test of the embedded file itself (its bytes, its lock, backup and restore): true,
/// with a message, when the suite runs on PostgreSQL, where it does not apply.
pub(crate) fn redb_only(what: &str) -> bool {
    if on_postgres() {
        eprintln!("skipped on PostgreSQL: {what} is about the embedded database file");
        return true;
    }
    false
}
