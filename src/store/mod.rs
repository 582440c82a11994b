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
mod postgres;
mod redb;
mod seal;
mod traits;
mod types;
mod writer;

use std::sync::Arc;

pub use self::postgres::{PgOptions, PgStore};
pub use self::redb::RedbStore;
pub use traits::{
    AttemptStore, AuditStore, CatalogStore, EventStore, KeyStore, MaintenanceStore, RuleStore,
    StatsStore, Storage, UserStore,
};
pub use types::{
    DeliveryFilter, DueDelivery, IDEMPOTENCY_TTL_MS, IngestOutcome, NewEvent, ReclaimSink,
    StoreError, StoreFuture, UserChange, WriteDone,
};

// The redb backend's schema modules, where backup.rs has always found them.
use self::redb::{migrations, reseal, tables};

/// The store as the rest of tidings holds it: cheap to clone, any backend behind it.
pub type Store = Arc<dyn Storage>;

/// Every role trait, so `Store`'s methods resolve: `use crate::store::prelude::*;`.
pub mod prelude {
    pub use super::traits::{
        AttemptStore, AuditStore, CatalogStore, EventStore, KeyStore, MaintenanceStore, RuleStore,
        StatsStore, Storage, UserStore,
    };
}
