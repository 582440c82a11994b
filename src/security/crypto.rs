//! Encryption at rest: the master key (a 0600 file in the data dir, or `TIDINGS_MASTER_KEY`),
//! the key ring a master-key rotation moves through, XChaCha20-Poly1305 sealing with a random
//! 24-byte nonce stored beside the ciphertext, and a `Secret` string type that never reaches
//! Debug output or logs.

use std::fmt;
use std::io::Write;
use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use chacha20poly1305::aead::{Aead, KeyInit};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

use crate::domain::subject::{Subject, SubjectHash};

const KEY_FILE: &str = "master.key";
/// The key a rotation moves to, on disk (0600, synced) before anything is sealed with it.
const NEW_KEY_FILE: &str = "master.key.new";
const SEALED_PREFIX: &str = "xc1:";

/// A string that must not be printed: signing secrets, secret header values, API keys.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(Zeroizing<String>);

impl Secret {
    pub fn new(s: String) -> Self {
        Self(Zeroizing::new(s))
    }

    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

/// Ciphertext as stored: `xc1:` + base64(nonce ‖ ciphertext ‖ tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Sealed(String);

impl Sealed {
    /// A stored string in the sealed format (whether it opens is for `MasterKey::open`).
    pub fn parse(s: &str) -> Option<Self> {
        s.starts_with(SEALED_PREFIX).then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    #[error("TIDINGS_MASTER_KEY must be 32 bytes written as base64 (44 characters) or hex (64)")]
    BadEnvKey,
    #[error("master key file {path} is damaged: it must hold 32 bytes as base64")]
    BadKeyFile { path: String },
    #[error(
        "master key file {path} is missing, but this database holds values sealed with a master key: put that file back (from wherever you keep its backup), or give the key as TIDINGS_MASTER_KEY. No new key was written: it would open none of them"
    )]
    MissingKeyFile { path: String },
    #[error("cannot read or create the master key in {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
    #[error("a stored secret could not be decrypted: wrong master key or damaged data")]
    Open,
    #[error(
        "TIDINGS_MASTER_KEY is set, so the new key must be given too: set TIDINGS_NEW_MASTER_KEY (32 bytes as base64 or hex, e.g. from `openssl rand -base64 32`)"
    )]
    NoNewEnvKey,
    #[error(
        "TIDINGS_NEW_MASTER_KEY must be 32 bytes written as base64 (44 characters) or hex (64)"
    )]
    BadNewEnvKey,
    #[error("TIDINGS_NEW_MASTER_KEY is the same key as TIDINGS_MASTER_KEY; give a new one")]
    SameKey,
}

/// The key every secret at rest is sealed with.
#[derive(Clone)]
pub struct MasterKey {
    cipher: XChaCha20Poly1305,
    /// SHA-256 of the key bytes, only to tell two keys apart (never stored or shown).
    id: [u8; 32],
    /// Set by the store once it has opened its subject key seed (`with_subject_seed`).
    subject_key: Option<SubjectKey>,
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

impl MasterKey {
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        use sha2::Digest;
        Self {
            cipher: XChaCha20Poly1305::new(bytes.into()),
            id: sha2::Sha256::digest(bytes).into(),
            subject_key: None,
        }
    }

    /// The key subjects are hashed with, once the store that opened this key has set it.
    pub fn subject_key(&self) -> Option<&SubjectKey> {
        self.subject_key.as_ref()
    }

    /// This key, hashing subjects under the key made from `seed`: the store's, which it
    /// keeps sealed with the master key so that it outlives a master-key rotation.
    #[must_use]
    pub fn with_subject_seed(mut self, seed: &Secret) -> Self {
        self.subject_key = Some(SubjectKey::from_seed(seed.expose().as_bytes()));
        self
    }

    /// Whether both are the same key.
    pub fn same_as(&self, other: &Self) -> bool {
        self.id == other.id
    }

    pub fn seal(&self, plain: &str) -> Sealed {
        let nonce_bytes = rand::random::<[u8; 24]>();
        let nonce = XNonce::from_slice(&nonce_bytes);
        let ct = self
            .cipher
            .encrypt(nonce, plain.as_bytes())
            .expect("XChaCha20-Poly1305 encryption cannot fail for in-memory data");
        let mut out = Vec::with_capacity(24 + ct.len());
        out.extend_from_slice(&nonce_bytes);
        out.extend_from_slice(&ct);
        Sealed(format!("{SEALED_PREFIX}{}", B64.encode(out)))
    }

    pub fn open(&self, sealed: &Sealed) -> Result<Secret, CryptoError> {
        let raw = sealed
            .0
            .strip_prefix(SEALED_PREFIX)
            .and_then(|b| B64.decode(b).ok())
            .filter(|raw| raw.len() > 24)
            .ok_or(CryptoError::Open)?;
        let (nonce, ct) = raw.split_at(24);
        let plain = self
            .cipher
            .decrypt(XNonce::from_slice(nonce), ct)
            .map_err(|_| CryptoError::Open)?;
        String::from_utf8(plain)
            .map(Secret::new)
            .map_err(|_| CryptoError::Open)
    }
}

/// The master key in use and, while a rotation is unfinished, the key it is moving to.
///
/// A rotation never seals anything under a key that is not stored first: with key files,
/// `master.key.new` is written (0600, fsynced, and the folder fsynced) before any value is
/// re-sealed, values are re-sealed while both files exist, and only then does
/// `master.key.new` replace `master.key` by an atomic rename. A crash at any point leaves
/// both keys on disk, and the next open finishes the job (see `RedbStore::open_with_keys`).
/// With `TIDINGS_MASTER_KEY` the operator holds both keys, and the new one is given as
/// `TIDINGS_NEW_MASTER_KEY`.
///
/// On a first start there is no `master.key`: [`Keyring::load`] makes a new key but writes it
/// only when [`Keyring::settle`] learns that the database holds nothing sealed yet, so a lost
/// key file is reported as lost instead of being replaced by a key that opens nothing.
#[derive(Debug, Clone)]
pub struct Keyring {
    pub current: MasterKey,
    pub next: Option<MasterKey>,
    /// The data dir when the keys are files there; None when they come from the environment.
    files: Option<PathBuf>,
    /// `current` when `load` made it because `master.key` was missing: not on disk yet.
    unsaved: Option<NewKey>,
}

/// The bytes of a key made but not yet written; never printed.
#[derive(Clone)]
struct NewKey(Zeroizing<[u8; 32]>);

impl fmt::Debug for NewKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewKey(***)")
    }
}

impl Keyring {
    /// The keys of a data dir: `TIDINGS_MASTER_KEY` if given, else `master.key` and, left by
    /// an interrupted rotation, `master.key.new`. Writes nothing: without `master.key`, the
    /// current key is a new one that [`Keyring::settle`] stores or refuses.
    pub fn load(data_dir: &Path, env_key: Option<&str>) -> Result<Self, CryptoError> {
        if let Some(text) = env_key {
            let bytes = decode_key(text).ok_or(CryptoError::BadEnvKey)?;
            return Ok(Self {
                current: MasterKey::from_bytes(&bytes),
                next: None,
                files: None,
                unsaved: None,
            });
        }
        let (current, unsaved) = if let Some(key) = read_key_file(&data_dir.join(KEY_FILE))? {
            (key, None)
        } else {
            let bytes = Zeroizing::new(rand::random::<[u8; 32]>());
            (MasterKey::from_bytes(&bytes), Some(NewKey(bytes)))
        };
        let next = read_key_file(&data_dir.join(NEW_KEY_FILE))?;
        Ok(Self {
            current,
            next,
            files: Some(data_dir.to_owned()),
            unsaved,
        })
    }

    /// Called by the store once it knows whether the database already holds values sealed
    /// with a master key (`database_has_key`: it has a key check value), before anything is
    /// sealed. A key `load` made for a missing `master.key` is then written (0600, synced, the
    /// folder synced) if the database holds nothing sealed, as on a first start; if it does,
    /// the file was lost, and this refuses, naming it, without writing anything.
    #[must_use = "the key is only on disk once settle has returned Ok"]
    pub fn settle(mut self, database_has_key: bool) -> Result<Self, CryptoError> {
        let (Some(new), Some(dir)) = (self.unsaved.take(), &self.files) else {
            return Ok(self);
        };
        let path = dir.join(KEY_FILE);
        if database_has_key {
            return Err(CryptoError::MissingKeyFile {
                path: path.display().to_string(),
            });
        }
        let io = |source| CryptoError::Io {
            path: path.display().to_string(),
            source,
        };
        // On PostgreSQL nothing else makes the data dir (on redb the database file lives
        // there); made 0700, as it holds the key to every sealed value.
        if !dir.exists() {
            use std::os::unix::fs::DirBuilderExt;
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(io)?;
        }
        write_private(&path, &B64.encode(*new.0)).map_err(io)?;
        sync_dir(dir).map_err(io)?;
        Ok(self)
    }

    /// Whether the keys are files in the data dir (not `TIDINGS_MASTER_KEY`).
    pub fn uses_files(&self) -> bool {
        self.files.is_some()
    }

    /// Starts a rotation: with key files, a new random `master.key.new` is written and synced
    /// (or the one an interrupted rotation left is kept, since values may already be sealed
    /// with it); with `TIDINGS_MASTER_KEY`, the new key is `new_env_key`.
    pub fn begin_rotation(mut self, new_env_key: Option<&str>) -> Result<Self, CryptoError> {
        let Some(dir) = &self.files else {
            let text = new_env_key.ok_or(CryptoError::NoNewEnvKey)?;
            let bytes = decode_key(text).ok_or(CryptoError::BadNewEnvKey)?;
            let next = MasterKey::from_bytes(&bytes);
            if next.same_as(&self.current) {
                return Err(CryptoError::SameKey);
            }
            self.next = Some(next);
            return Ok(self);
        };
        if self.next.is_none() {
            let path = dir.join(NEW_KEY_FILE);
            let io = |source| CryptoError::Io {
                path: path.display().to_string(),
                source,
            };
            let bytes = Zeroizing::new(rand::random::<[u8; 32]>());
            write_private(&path, &B64.encode(*bytes)).map_err(io)?;
            sync_dir(dir).map_err(io)?;
            self.next = Some(MasterKey::from_bytes(&bytes));
        }
        Ok(self)
    }

    /// Ends a rotation once every value is sealed with the new key: with key files,
    /// `master.key.new` atomically replaces `master.key` (then the old key is gone from
    /// disk). Returns the key now in use.
    pub fn finish_rotation(self) -> Result<MasterKey, CryptoError> {
        let Some(next) = self.next else {
            return Ok(self.current);
        };
        if let Some(dir) = &self.files {
            let path = dir.join(KEY_FILE);
            let io = |source| CryptoError::Io {
                path: path.display().to_string(),
                source,
            };
            std::fs::rename(dir.join(NEW_KEY_FILE), &path).map_err(io)?;
            sync_dir(dir).map_err(io)?;
        }
        Ok(next)
    }
}

/// A key file if it exists, made owner-only if it was not (one copied in by hand for a
/// restore may have come with the umask's 0644).
fn read_key_file(path: &Path) -> Result<Option<MasterKey>, CryptoError> {
    let io = |source| CryptoError::Io {
        path: path.display().to_string(),
        source,
    };
    match std::fs::read_to_string(path) {
        Ok(text) => {
            let bytes = decode_key(&text).ok_or_else(|| CryptoError::BadKeyFile {
                path: path.display().to_string(),
            })?;
            super::files::make_private(path).map_err(io)?;
            Ok(Some(MasterKey::from_bytes(&bytes)))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io(e)),
    }
}

/// Makes a file's creation or rename in `dir` durable.
fn sync_dir(dir: &Path) -> std::io::Result<()> {
    std::fs::File::open(dir)?.sync_all()
}

fn decode_key(text: &str) -> Option<[u8; 32]> {
    let text = text.trim();
    let bytes = if text.len() == 64 {
        hex::decode(text).ok()?
    } else {
        B64.decode(text).ok()?
    };
    bytes.try_into().ok()
}

/// Creates a file only its owner can read, before any secret is written into it.
fn write_private(path: &Path, contents: &str) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?;
    file.write_all(contents.as_bytes())?;
    file.write_all(b"\n")?;
    file.sync_all()
}

/// Hashes subjects (`member:123`) for storage and lookup: HMAC-SHA256 under a key derived from
/// a random seed the store keeps sealed with the master key (`new_subject_seed`), so the same
/// subject always finds its events — through master-key rotations too, which re-seal the
/// seed — while the store file alone (without the master key) cannot be searched for a known
/// patient's id.
#[derive(Clone)]
pub struct SubjectKey(Hmac<sha2::Sha256>);

/// Separates this key from any other use of the seed.
const SUBJECT_KEY_LABEL: &[u8] = b"tidings subject hash v1";

/// A new subject key seed: 32 random bytes in hex.
pub fn new_subject_seed() -> Secret {
    Secret::new(hex::encode(rand::random::<[u8; 32]>()))
}

impl SubjectKey {
    fn from_seed(seed: &[u8]) -> Self {
        let mut mac = <Hmac<sha2::Sha256> as Mac>::new_from_slice(seed)
            .expect("HMAC accepts keys of any length");
        mac.update(SUBJECT_KEY_LABEL);
        let derived: Zeroizing<[u8; 32]> = Zeroizing::new(mac.finalize().into_bytes().into());
        Self(
            <Hmac<sha2::Sha256> as Mac>::new_from_slice(derived.as_slice())
                .expect("HMAC accepts keys of any length"),
        )
    }

    pub fn hash(&self, subject: &Subject) -> SubjectHash {
        let mut mac = self.0.clone();
        mac.update(subject.as_str().as_bytes());
        SubjectHash::from_hex(hex::encode(mac.finalize().into_bytes()))
            .expect("an HMAC-SHA256 in hex is 64 hex digits")
    }

    /// What is stored of a rule's ordering key (SPEC §15): the key may be patient data (a
    /// member id), so only this keyed hash, 128 bits in hex, which only compares equal.
    pub fn ordering_hash(&self, rule: &str, key: &str) -> String {
        let mut mac = self.0.clone();
        // NUL never occurs in a subject, so these never collide with subject hashes.
        mac.update(b"ordering\0");
        mac.update(rule.as_bytes());
        mac.update(b"\0");
        mac.update(key.as_bytes());
        hex::encode(&mac.finalize().into_bytes()[..16])
    }
}

impl fmt::Debug for SubjectKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SubjectKey(***)")
    }
}

/// A new signing secret: `whsec_` + standard padded base64 of 32 random bytes. The same string
/// is the HMAC key for `hmac-sha256` (as Stripe does) and decodes to the key for
/// `standard-webhooks`.
pub fn new_signing_secret() -> Secret {
    Secret::new(format!("whsec_{}", B64.encode(rand::random::<[u8; 32]>())))
}

/// A new API key: `tdk_` + 32 random bytes as unpadded URL-safe base64.
pub fn new_api_key() -> Secret {
    let engine = base64::engine::general_purpose::URL_SAFE_NO_PAD;
    Secret::new(format!("tdk_{}", engine.encode(rand::random::<[u8; 32]>())))
}

/// API keys carry 256 bits of randomness, so a plain SHA-256 is a sound way to store them
/// (a slow password hash would only slow every request down).
pub fn api_key_hash(key: &str) -> String {
    use sha2::Digest;
    hex::encode(sha2::Sha256::digest(key.as_bytes()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_hashes_are_stable_per_seed_whatever_the_master_key() {
        let seed = new_subject_seed();
        assert!(
            MasterKey::from_bytes(&[7; 32]).subject_key().is_none(),
            "only the store sets it"
        );
        let a = MasterKey::from_bytes(&[7; 32]).with_subject_seed(&seed);
        let rotated = MasterKey::from_bytes(&[8; 32]).with_subject_seed(&seed);
        let other = MasterKey::from_bytes(&[7; 32]).with_subject_seed(&new_subject_seed());
        let hash =
            |k: &MasterKey, s: &str| k.subject_key().unwrap().hash(&Subject::parse(s).unwrap());
        let h = hash(&a, "member:123");
        assert_eq!(h, hash(&rotated, "member:123"), "the seed, not the key");
        assert_ne!(h, hash(&other, "member:123"));
        assert_ne!(h, hash(&a, "member:124"));
        assert!(!h.as_str().contains("123"));
    }

    #[test]
    fn seal_round_trip_and_tamper() {
        let key = MasterKey::from_bytes(&[7; 32]);
        let sealed = key.seal("whsec_abc");
        assert!(!sealed.0.contains("whsec"));
        assert_eq!(key.open(&sealed).unwrap().expose(), "whsec_abc");
        assert_ne!(key.seal("x"), key.seal("x"), "nonces must differ");
        let other = MasterKey::from_bytes(&[8; 32]);
        assert!(other.open(&sealed).is_err());
        let mut bad = sealed.0.clone();
        bad.pop();
        bad.push('A');
        assert!(key.open(&Sealed(bad)).is_err());
    }

    #[test]
    fn key_file_is_private_and_reused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir().join(format!("tidings-key-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let a = Keyring::load(&dir, None).unwrap().settle(false).unwrap();
        let mode = std::fs::metadata(dir.join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
        let b = Keyring::load(&dir, None).unwrap().settle(true).unwrap();
        let sealed = a.current.seal("s");
        assert_eq!(b.current.open(&sealed).unwrap().expose(), "s");
        std::fs::remove_dir_all(dir).ok();
        assert!(Keyring::load(Path::new("/nonexistent"), Some("short")).is_err());
        let env = B64.encode([1u8; 32]);
        let from_env = Keyring::load(Path::new("/nonexistent"), Some(&env)).unwrap();
        assert!(from_env.settle(true).is_ok(), "an env key is never written");
    }

    #[test]
    fn a_missing_key_file_is_written_only_for_a_database_without_sealed_values() {
        let dir = std::env::temp_dir().join(format!("tidings-lost-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let ring = Keyring::load(&dir, None).unwrap();
        assert!(!dir.join(KEY_FILE).exists(), "load writes nothing");
        let err = ring.clone().settle(true).unwrap_err();
        assert!(matches!(err, CryptoError::MissingKeyFile { .. }), "{err:?}");
        let message = err.to_string();
        assert!(
            message.contains(&dir.join(KEY_FILE).display().to_string())
                && message.contains("TIDINGS_MASTER_KEY"),
            "{message}"
        );
        assert_eq!(
            std::fs::read_dir(&dir).unwrap().count(),
            0,
            "nothing written"
        );
        assert!(format!("{ring:?}").contains("NewKey(***)"));
        let settled = ring.settle(false).unwrap();
        let again = Keyring::load(&dir, None).unwrap();
        assert!(again.current.same_as(&settled.current));
        std::fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn a_rotation_keeps_a_new_key_left_behind_and_renames_it_at_the_end() {
        let dir = std::env::temp_dir().join(format!("tidings-ring-{}", rand::random::<u64>()));
        std::fs::create_dir_all(&dir).unwrap();
        let ring = Keyring::load(&dir, None).unwrap().settle(false).unwrap();
        assert!(ring.next.is_none());
        let old = ring.current.clone();
        let ring = ring.begin_rotation(None).unwrap();
        let next = ring.next.clone().unwrap();
        assert!(!next.same_as(&old));
        // Interrupted here: loading again picks up the same new key, and so does a retry.
        let again = Keyring::load(&dir, None).unwrap();
        assert!(again.next.as_ref().unwrap().same_as(&next));
        let again = again.begin_rotation(None).unwrap();
        assert!(again.next.as_ref().unwrap().same_as(&next));
        assert!(again.finish_rotation().unwrap().same_as(&next));
        assert!(!dir.join(NEW_KEY_FILE).exists());
        let after = Keyring::load(&dir, None).unwrap();
        assert!(after.current.same_as(&next) && after.next.is_none());
        std::fs::remove_dir_all(dir).ok();

        let env = B64.encode([1u8; 32]);
        let ring = Keyring::load(Path::new("/nonexistent"), Some(&env)).unwrap();
        assert!(matches!(
            ring.clone().begin_rotation(None),
            Err(CryptoError::NoNewEnvKey)
        ));
        assert!(matches!(
            ring.clone().begin_rotation(Some("x")),
            Err(CryptoError::BadNewEnvKey)
        ));
        assert!(matches!(
            ring.clone().begin_rotation(Some(&env)),
            Err(CryptoError::SameKey)
        ));
        let new = hex::encode([2u8; 32]);
        let next = ring
            .begin_rotation(Some(&new))
            .unwrap()
            .finish_rotation()
            .unwrap();
        assert!(next.same_as(&MasterKey::from_bytes(&[2; 32])));
    }

    #[test]
    fn secrets_do_not_print() {
        let s = new_signing_secret();
        assert!(s.expose().starts_with("whsec_"));
        assert_eq!(s.expose().len(), 6 + 44);
        assert_eq!(format!("{s:?}"), "Secret(***)");
    }

    #[test]
    fn a_first_start_without_a_data_dir_makes_it_private_with_the_key() {
        use std::os::unix::fs::PermissionsExt;
        let dir = std::env::temp_dir()
            .join(format!("tidings-new-{}", rand::random::<u64>()))
            .join("data");
        let ring = Keyring::load(&dir, None).unwrap().settle(false).unwrap();
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "the data dir is the owner's alone");
        let again = Keyring::load(&dir, None).unwrap();
        assert!(
            again.current.same_as(&ring.current),
            "the key written is the one read"
        );
        std::fs::remove_dir_all(dir.parent().unwrap()).ok();
    }
}
