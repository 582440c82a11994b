//! Rule secrets opened once: every attempt signs with its rule's secrets and sends its
//! secret header values, and opening them (base64, XChaCha20-Poly1305) for each attempt was
//! about 3 % of the delivery workers' time in a profile of ten rules at saturation.
//!
//! Entries are keyed by the sealed text itself, so the cache cannot serve a stale value: a
//! rotated secret or a changed header value is a new sealed text (a fresh nonce each time),
//! and the master key cannot change under a running server (`tidings rotate-master-key`
//! runs with the server stopped). What is held is what the process opens anyway on every
//! attempt; values are zeroed when dropped, and the cache is emptied when it fills, so the
//! secrets of deleted rules do not accumulate.

use std::sync::Arc;

use crate::security::crypto::{CryptoError, MasterKey, Sealed, Secret};
use crate::security::memo::Memo;

/// More opened values than any appliance's live rules have (each has at most two live
/// signing secrets and a few secret headers); past it the cache starts again empty.
const MAX_ENTRIES: usize = 4096;

/// A master key and the rule secrets it has opened, shared by its clones.
#[derive(Clone)]
pub struct OpenedSecrets {
    key: MasterKey,
    opened: Arc<Memo<Arc<Secret>>>,
}

impl std::fmt::Debug for OpenedSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("OpenedSecrets(***)")
    }
}

impl OpenedSecrets {
    pub fn new(key: MasterKey) -> Self {
        Self {
            key,
            opened: Arc::new(Memo::new(MAX_ENTRIES)),
        }
    }

    /// `sealed` opened, from the cache when it has been opened before.
    pub fn open(&self, sealed: &Sealed) -> Result<Arc<Secret>, CryptoError> {
        self.opened
            .get_or_try(sealed.as_str(), || self.key.open(sealed).map(Arc::new))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.opened.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(byte: u8) -> MasterKey {
        MasterKey::from_bytes(&[byte; 32])
    }

    #[test]
    fn opens_what_the_key_sealed_and_remembers_it() {
        let key = key(7);
        let secrets = OpenedSecrets::new(key.clone());
        let sealed = key.seal("whsec_one");
        assert_eq!(secrets.open(&sealed).unwrap().expose(), "whsec_one");
        assert_eq!(secrets.open(&sealed).unwrap().expose(), "whsec_one");
        assert_eq!(secrets.len(), 1);
        // The same value sealed again is a different text, opened on its own.
        let again = key.seal("whsec_one");
        assert_eq!(secrets.open(&again).unwrap().expose(), "whsec_one");
        assert_eq!(secrets.len(), 2);
    }

    #[test]
    fn a_value_sealed_under_another_key_is_refused_and_not_remembered() {
        let secrets = OpenedSecrets::new(key(7));
        let foreign = key(8).seal("whsec_other");
        assert!(secrets.open(&foreign).is_err());
        assert_eq!(secrets.len(), 0);
    }
}
