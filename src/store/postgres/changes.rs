//! Keeping every node's caches true: a write that changes rules or API keys notifies the
//! channel `tidings_changes` in its transaction (delivered at commit), and each serving node
//! listens on a connection of its own and reloads what changed — within moments, well inside
//! the second the spec allows. After the listener reconnects it reloads everything, since
//! notifications sent while it was away are lost.

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
}

impl Change {
    fn as_str(self) -> &'static str {
        match self {
            Self::Rules => "rules",
            Self::Keys => "keys",
        }
    }
}

/// Queues the notification in the write's transaction.
pub(super) fn notify(txn: &mut Client, change: Change) -> Result<(), StoreError> {
    txn.execute("SELECT pg_notify($1, $2)", &[&CHANNEL, &change.as_str()])?;
    Ok(())
}

pub(super) fn listen(store: &PgStore, url: &str) -> JoinHandle<()> {
    let (store, url) = (store.clone(), url.to_owned());
    std::thread::Builder::new()
        .name("store-changes".into())
        .spawn(move || {
            let mut first = true;
            while !store.stopping.load(Ordering::Acquire) {
                if let Err(e) = listen_once(&store, &url, !first) {
                    tracing::warn!(error = %e, "change listener lost PostgreSQL; reconnecting");
                    sleep_unless_stopping(&store, RECONNECT_PAUSE);
                }
                first = false;
            }
        })
        .expect("spawn the change listener")
}

/// Listens until the connection breaks or the store stops; `reload` first if changes may
/// have been missed.
fn listen_once(store: &PgStore, url: &str, reload: bool) -> Result<(), StoreError> {
    let mut client = connect::client(url)?;
    client.batch_execute(&format!("LISTEN {CHANNEL}"))?;
    if reload {
        store.refresh_rules()?;
        store.refresh_keys()?;
    }
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
        if rules {
            store.refresh_rules()?;
        }
        if keys {
            store.refresh_keys()?;
        }
    }
    Ok(())
}
