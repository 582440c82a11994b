//! The PostgreSQL side of the group-commit writer (store/writer.rs): a batch is one
//! transaction on the writer's own connection; each write in it runs inside a savepoint, so
//! a refused write (a conflict found by a query) is undone alone. A batch of only lazy
//! writes commits with `synchronous_commit` off: as on redb, a crash can then only repeat an
//! attempt, never lose an accepted event.

use postgres::Client;

use super::connect;
use crate::store::StoreError;
use crate::store::writer::{Engine, Writer};

pub(super) struct PgEngine {
    url: String,
    /// Dropped when it breaks; the next batch connects again.
    client: Option<Client>,
}

pub(super) type PgWriter = Writer<PgEngine>;

impl PgEngine {
    pub(super) fn new(url: &str) -> Result<Self, StoreError> {
        Ok(Self {
            url: url.to_owned(),
            client: Some(connect::client(url)?),
        })
    }

    fn client(&mut self) -> Result<&mut Client, StoreError> {
        if self.client.as_ref().is_none_or(Client::is_closed) {
            self.client = Some(connect::client(&self.url)?);
        }
        Ok(self.client.as_mut().expect("just connected"))
    }
}

impl Engine for PgEngine {
    type Txn = Client;

    fn batch(
        &mut self,
        durable: bool,
        apply: &mut dyn FnMut(&mut Client) -> Option<StoreError>,
    ) -> Result<(), StoreError> {
        let client = self.client()?;
        let begin = if durable {
            "BEGIN"
        } else {
            "BEGIN; SET LOCAL synchronous_commit TO off"
        };
        client.batch_execute(begin)?;
        if let Some(poison) = apply(client) {
            // A broken connection is replaced at the next batch.
            let _ = client.batch_execute("ROLLBACK");
            return Err(poison);
        }
        client
            .batch_execute("COMMIT")
            .map_err(|e| StoreError::Storage(format!("commit failed: {}", StoreError::from(e))))
    }

    fn isolated<T>(
        txn: &mut Client,
        write: impl FnOnce(&mut Client) -> Result<T, StoreError>,
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
