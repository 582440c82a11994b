//! Storage behind an interface. The service layer holds a `Store` (`Arc<dyn Storage>`) and
//! speaks the role traits of traits.rs with the types of types.rs; the redb backend in redb/
//! is the only code that touches redb. It knows nothing about HTTP.
//!
//! Callers bring the traits into scope with `use crate::store::prelude::*;`.

pub mod backup;
mod cache;
mod codec;
#[cfg(test)]
pub(crate) mod contract;
mod opened_events;
mod postgres;
mod redb;
mod seal;
mod traits;
mod transfer;
mod types;
mod writer;

use std::path::Path;
use std::sync::Arc;

use crate::domain::time::Clock;
use crate::security::crypto::{CryptoError, Keyring, MasterKey};

pub use self::postgres::{PgOptions, PgStore};
pub use self::redb::RedbStore;
pub use self::transfer::Copied;
pub use traits::{
    AttemptStore, AuditStore, CatalogStore, EventStore, KeyStore, MaintenanceStore, RuleStore,
    StatsStore, Storage, SubjectStore, UserStore,
};
pub use traits::{Publish, RuleVersionStore};
pub use types::{
    ConditionErrorCount, DeliveryFilter, DisclosureFilter, DueDelivery, IDEMPOTENCY_TTL_MS,
    IngestOutcome, NewEvent, ReclaimSink, Slot, StoreError, StoreFuture, UserChange, WriteDone,
};

// The redb backend's schema modules, where backup.rs has always found them.
use self::redb::{migrations, reseal, tables};

/// The store as the rest of tidings holds it: cheap to clone, any backend behind it.
pub type Store = Arc<dyn Storage>;

/// Opens the store `[store] url` names (`pg`; `None`: the embedded file in `data_dir`) with
/// the master keys, as `serve` does.
pub fn open_with_keys(
    pg: Option<&PgOptions>,
    data_dir: &Path,
    keys: impl FnOnce() -> Result<Keyring, CryptoError>,
    clock: Clock,
) -> Result<(Store, MasterKey), StoreError> {
    match pg {
        Some(options) => PgStore::open_with_keys(options, keys, clock),
        None => RedbStore::open_with_keys(data_dir, keys, clock),
    }
}

/// Opens the store without the master key, for commands that never touch payloads
/// (`key create`, `user add`).
pub fn open(pg: Option<&PgOptions>, data_dir: &Path, clock: Clock) -> Result<Store, StoreError> {
    match pg {
        Some(options) => PgStore::open(options, clock),
        None => RedbStore::open(data_dir, clock),
    }
}

/// `tidings migrate`: copies the embedded database in `data_dir` (its server stopped) into
/// the unused PostgreSQL store `options` names, every row as stored, in one transaction.
pub fn migrate_to_postgres(
    data_dir: &Path,
    keys: impl FnOnce() -> Result<Keyring, CryptoError>,
    options: &PgOptions,
) -> Result<Copied, StoreError> {
    let now = Clock::system().now_ms();
    RedbStore::with_export(data_dir, keys, |export| {
        postgres::import::import(&options.url, now, export)
    })
}

/// Every role trait, so `Store`'s methods resolve: `use crate::store::prelude::*;`.
pub mod prelude {
    pub use super::traits::RuleVersionStore;
    pub use super::traits::{
        AttemptStore, AuditStore, CatalogStore, EventStore, KeyStore, MaintenanceStore, RuleStore,
        StatsStore, Storage, SubjectStore, UserStore,
    };
}
