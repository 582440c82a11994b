//! The PostgreSQL side of the group-commit writer (store/writer.rs): a batch is one
//! transaction on the writer's own connection. A write that runs once runs inside a
//! savepoint, so its refusal (a conflict found by a query) is undone alone; the rerunnable
//! ones (ingests, attempts: one statement each) run without, and a refusal among them rolls
//! the batch back to run again with savepoints (`Engine::TRY_UNISOLATED`). A batch of only lazy
//! writes commits with `synchronous_commit` off: as on redb, a crash can then only repeat an
//! attempt, never lose an accepted event.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use postgres::types::ToSql;
use postgres::{Client, Row, Statement};

use super::connect;
use crate::store::StoreError;
use crate::store::writer::{Engine, Writer};

pub(super) struct PgEngine {
    url: String,
    round_trips: Arc<AtomicU64>,
    /// Dropped when it breaks; the next batch connects again (with no statements prepared).
    client: Option<PgTxn>,
}

/// The writer's connection, with every statement it has run kept prepared: a statement
/// given as text costs two round trips (parse, then execute), a prepared one one, and the
/// writer is the one serial point of every write.
pub(super) struct PgTxn {
    client: Client,
    prepared: HashMap<&'static str, Statement>,
    /// Every exchange with the server this connection has waited for (a statement prepared,
    /// run, or sent as text), the writer's cost in latency; counted for the store's tests.
    /// Statements run on `client()` directly are not counted.
    round_trips: Arc<AtomicU64>,
}

/// Parameters of a statement, as the `postgres` crate takes them.
pub(super) type Params<'a> = &'a [&'a (dyn ToSql + Sync)];

impl PgTxn {
    /// One more exchange with the server.
    fn trip(&self) {
        self.round_trips.fetch_add(1, Ordering::Relaxed);
    }

    /// The statement prepared, and the exchange that runs it counted.
    fn statement(&mut self, sql: &'static str) -> Result<Statement, postgres::Error> {
        self.trip();
        if let Some(statement) = self.prepared.get(sql) {
            return Ok(statement.clone());
        }
        self.trip();
        let statement = self.client.prepare(sql)?;
        self.prepared.insert(sql, statement.clone());
        Ok(statement)
    }

    pub(super) fn execute(
        &mut self,
        sql: &'static str,
        params: Params,
    ) -> Result<u64, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.execute(&statement, params)
    }

    pub(super) fn query(
        &mut self,
        sql: &'static str,
        params: Params,
    ) -> Result<Vec<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query(&statement, params)
    }

    pub(super) fn query_opt(
        &mut self,
        sql: &'static str,
        params: Params,
    ) -> Result<Option<Row>, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query_opt(&statement, params)
    }

    pub(super) fn query_one(
        &mut self,
        sql: &'static str,
        params: Params,
    ) -> Result<Row, postgres::Error> {
        let statement = self.statement(sql)?;
        self.client.query_one(&statement, params)
    }

    /// Statements without parameters, sent as text (transaction control, DDL).
    pub(super) fn batch_execute(&mut self, sql: &str) -> Result<(), postgres::Error> {
        self.trip();
        self.client.batch_execute(sql)
    }

    /// The connection itself, for a statement whose text is built at run time (not cached).
    pub(super) fn client(&mut self) -> &mut Client {
        &mut self.client
    }
}

pub(super) type PgWriter = Writer<PgEngine>;

impl PgEngine {
    /// The writer's engine; `round_trips` counts its exchanges with the server (`PgTxn`).
    pub(super) fn new(url: &str, round_trips: Arc<AtomicU64>) -> Result<Self, StoreError> {
        Ok(Self {
            url: url.to_owned(),
            client: Some(PgTxn::connect(url, Arc::clone(&round_trips))?),
            round_trips,
        })
    }

    fn client(&mut self) -> Result<&mut PgTxn, StoreError> {
        if self.client.as_ref().is_none_or(|c| c.client.is_closed()) {
            self.client = Some(PgTxn::connect(&self.url, Arc::clone(&self.round_trips))?);
        }
        Ok(self.client.as_mut().expect("just connected"))
    }
}

impl PgTxn {
    fn connect(url: &str, round_trips: Arc<AtomicU64>) -> Result<Self, StoreError> {
        Ok(Self {
            client: connect::client(url)?,
            prepared: HashMap::new(),
            round_trips,
        })
    }
}

impl Engine for PgEngine {
    type Txn = PgTxn;

    /// A savepoint is two round trips (`SAVEPOINT`, `RELEASE`) on top of a write's one.
    const TRY_UNISOLATED: bool = true;

    fn batch(
        &mut self,
        durable: bool,
        apply: &mut dyn FnMut(&mut PgTxn) -> Option<StoreError>,
    ) -> Result<(), StoreError> {
        let begin = if durable {
            "BEGIN"
        } else {
            "BEGIN; SET LOCAL synchronous_commit TO off"
        };
        if let Err(e) = self.client()?.batch_execute(begin) {
            // A connection cut while it was idle (the server restarted, an admin ended it)
            // shows only here; nothing was applied, so the batch begins on a new one.
            if !self.client.as_ref().is_some_and(|c| c.client.is_closed()) {
                return Err(e.into());
            }
            self.client()?.batch_execute(begin)?;
        }
        let client = self.client()?;
        if let Some(poison) = apply(client) {
            // A broken connection is replaced at the next batch. The statements are prepared
            // afresh: one may have failed because the schema changed under it (another node
            // migrated), which only a new preparation gets past.
            let _ = client.batch_execute("ROLLBACK");
            client.prepared.clear();
            return Err(poison);
        }
        client
            .batch_execute("COMMIT")
            .map_err(|e| StoreError::Storage(format!("commit failed: {}", StoreError::from(e))))
    }

    fn isolated<T>(
        txn: &mut PgTxn,
        write: impl FnOnce(&mut PgTxn) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        txn.batch_execute("SAVEPOINT write")?;
        let result = write(txn);
        let end = if result.is_ok() {
            "RELEASE SAVEPOINT write"
        } else {
            "ROLLBACK TO SAVEPOINT write; RELEASE SAVEPOINT write"
        };
        txn.batch_execute(end)?;
        result
    }

    /// No PostgreSQL write asks for it: an erasure VACUUMs from a pool connection instead
    /// (subjects.rs), so the writer never waits behind a VACUUM of a large table.
    fn compact(&mut self) -> Result<(), StoreError> {
        Ok(())
    }
}
