//! Files tidings writes that hold PHI or keys (the database, backups, key files): owner-only,
//! whatever the umask tidings was started under.

use std::fs::{self, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::Path;

/// The mode of every file tidings creates in the data dir and of every backup it writes.
pub const PRIVATE_MODE: u32 = 0o600;
/// Group and other permission bits, which such a file must never have.
const GROUP_AND_OTHER: u32 = 0o077;

/// Creates `path` empty and owner-only if it does not exist, so that what is written into it
/// later (by redb, for the database) is never readable by others; if it exists, takes away
/// any group and other permissions (a database created by an earlier version under a 022
/// umask is 0644). For `Store` to call before it opens the database; the error names the file.
pub fn prepare_private(path: &Path) -> Result<(), String> {
    let created = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(PRIVATE_MODE)
        .open(path);
    let result = match created {
        // The umask can only take bits away from 0600; set it exactly, so even an odd umask
        // (0277) leaves a file tidings can write.
        Ok(file) => file.set_permissions(Permissions::from_mode(PRIVATE_MODE)),
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => make_private(path),
        Err(e) => Err(e),
    };
    result.map_err(|e| format!("cannot create or protect {}: {e}", path.display()))
}

/// Takes group and other permissions off an existing file, leaving the owner's as they are.
pub fn make_private(path: &Path) -> io::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode();
    if mode & GROUP_AND_OTHER == 0 {
        return Ok(());
    }
    fs::set_permissions(path, Permissions::from_mode(mode & !GROUP_AND_OTHER))?;
    tracing::warn!(
        file = %path.display(),
        was = format!("{:o}", mode & 0o777),
        now = format!("{:o}", mode & 0o700),
        "a file holding PHI or keys was readable by others; made it owner-only"
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn prepare_private_creates_0600_and_tightens_an_existing_file() {
        let dir = std::env::temp_dir().join(format!("tidings-files-{}", rand::random::<u64>()));
        fs::create_dir_all(&dir).unwrap();
        let new = dir.join("new.redb");
        prepare_private(&new).unwrap();
        assert_eq!(mode(&new), 0o600);
        assert_eq!(fs::metadata(&new).unwrap().len(), 0);

        let old = dir.join("old.redb");
        fs::write(&old, b"kept").unwrap();
        fs::set_permissions(&old, Permissions::from_mode(0o664)).unwrap();
        prepare_private(&old).unwrap();
        assert_eq!(mode(&old), 0o600);
        assert_eq!(fs::read(&old).unwrap(), b"kept", "the contents stay");

        let err = prepare_private(&dir.join("no-such-dir/x.redb")).unwrap_err();
        assert!(err.contains("no-such-dir/x.redb"), "{err}");
        fs::remove_dir_all(dir).ok();
    }
}
