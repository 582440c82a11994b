//! Keeping every node's caches true: a write that changes rules, API keys or a type's
//! declaration notifies the
//! channel `tidings_changes` in its transaction (delivered at commit), and each serving node
//! listens on a connection of its own and reloads what changed — within moments, well inside
//! the second the spec allows. Each time the listener (re)connects it reloads everything,
//! since notifications sent while it was not listening are lost.

use super::engine::PgTxn;
use std::sync::atomic::Ordering;
use std::thread::JoinHandle;
use std::time::Duration;

use postgres::Client;
use postgres::fallible_iterator::FallibleIterator;

use super::PgStore;
use super::connect;
use super::nodes::sleep_unless_stopping;
use crate::store::StoreError;

const CHANNEL: &str = "tidings_changes";
/// How often the listener wakes to see whether the store is stopping.
const WAKE: Duration = Duration::from_millis(200);
/// The pause before reconnecting after the listener's connection broke.
const RECONNECT_PAUSE: Duration = Duration::from_secs(1);

/// What a notification says changed.
#[derive(Clone, Copy)]
pub(super) enum Change {
    Rules,
    Keys,
    /// A type's declaration (its `subject_path`).
    Catalog,
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Self::Rules => "rules",
            Self::Keys => "keys",
            Self::Catalog => "catalog",
        }
    }
}

/// Queues the notification in the write's transaction.
pub(super) fn notify(txn: &mut PgTxn, change: Change) -> Result<(), StoreError> {
    txn.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &change.as_str()])?;
    Ok(())
}

/// Starts listening before it returns (so the store serves nothing it could miss a change
/// of), then keeps listening on a thread of its own until the store stops.
pub(super) fn listen(store: &PgStore, url: &str) -> Result<JoinHandle<()>, StoreError> {
    let first = subscribe(url)?;
    let (store, url) = (store.clone(), url.to_owned());
    Ok(std::thread::Builder::new()
        .name("store-changes".into())
        .spawn(move || {
            let mut client = Some(first);
            while !store.stopping.load(Ordering::Acquire) {
                let result = match client.take() {
                    Some(c) => Ok(c),
                    None => subscribe(&url),
                }
                .and_then(|c| follow(&store, c));
                if let Err(e) = result {
                    tracing::warn!(error = %e, "change listener lost PostgreSQL; reconnecting");
                    sleep_unless_stopping(&store, RECONNECT_PAUSE);
                }
            }
        })
        .expect("spawn the change listener"))
}

/// A connection listening on the channel.
fn subscribe(url: &str) -> Result<Client, StoreError> {
    let mut client = connect::client(url)?;
    client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    Ok(client)
}

/// Reloads (changes made before this connection listened were announced to nobody), then
/// follows the notifications until the connection breaks or the store stops.
fn follow(store: &PgStore, mut client: Client) -> Result<(), StoreError> {
    store.refresh_rules()?;
    store.refresh_keys()?;
    store.refresh_subject_paths()?;
    while !store.stopping.load(Ordering::Acquire) {
        if client.is_closed() {
            return Err(StoreError::Storage(
                "the listening connection closed".into(),
            ));
        }
        let mut notifications = client.notifications();
        // Waits a moment for the first, then takes whatever else is already here.
        let Some(first) = notifications.timeout_iter(WAKE).next()? else {
            continue;
        };
        let mut payloads = vec![first.payload().to_owned()];
        let mut pending = notifications.iter();
        while let Some(n) = pending.next()? {
            payloads.push(n.payload().to_owned());
        }
        let rules = payloads.iter().any(|p| p == Change::Rules.as_str());
        let keys = payloads.iter().any(|p| p == Change::Keys.as_str());
        let catalog = payloads.iter().any(|p| p == Change::Catalog.as_str());
        if rules {
            store.refresh_rules()?;
        }
        if keys {
            store.refresh_keys()?;
        }
        if catalog {
            store.refresh_subject_paths()?;
        }
    }
    Ok(())
}
