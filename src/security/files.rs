//! Files tidings writes that hold PHI or keys (the database, backups, key files): owner-only,
//! whatever the umask tidings was started under; and a file that takes a while to write (a
//! backup, a restored database) written under a temporary name and renamed into place once
//! complete, so an interrupted write never leaves a partial file under the real name.

use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions, Permissions};
use std::io;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

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

/// How a file still being written starts its name: `.tidings-partial.<writer>.<random>.<name>`,
/// hidden, in the folder of the file it becomes (so the final rename is atomic). `<writer>` is
/// [`writer_tag`], so a leftover of a process that died can be told from a file another live
/// process is still writing.
const PARTIAL_PREFIX: &str = ".tidings-partial.";

/// A file being written under a temporary name beside `target`, owner-only from creation.
/// [`PartialFile::finish`] syncs it and moves it to `target`; dropped unfinished (an error on
/// the way), it is removed. A process killed meanwhile leaves it behind, for
/// [`remove_stale_partials`] to remove later.
#[derive(Debug)]
pub struct PartialFile {
    path: PathBuf,
    target: PathBuf,
    finished: bool,
}

impl PartialFile {
    /// Creates the empty temporary file for `target` (which must not exist yet), first
    /// removing what interrupted writes left in that folder. Returns it open for writing.
    pub fn create(target: &Path) -> io::Result<(Self, File)> {
        let name = target.file_name().ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidInput,
                format!("{} is not a file name", target.display()),
            )
        })?;
        let dir = folder_of(target);
        remove_stale_partials(dir);
        let mut partial = std::ffi::OsString::from(format!(
            "{PARTIAL_PREFIX}{}.{:016x}.",
            writer_tag(),
            rand::random::<u64>()
        ));
        partial.push(name);
        let path = dir.join(partial);
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create_new(true)
            .mode(PRIVATE_MODE)
            .open(&path)?;
        file.set_permissions(Permissions::from_mode(PRIVATE_MODE))?;
        let partial = Self {
            path,
            target: target.to_owned(),
            finished: false,
        };
        Ok((partial, file))
    }

    /// Where the file is while it is written.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Makes the written file durable and gives it its real name: fsync, then a move that
    /// refuses to replace an existing `target`, then an fsync of the folder. Whatever wrote
    /// into the file must have closed it (redb writes its last pages when the database is
    /// dropped).
    pub fn finish(mut self) -> io::Result<()> {
        File::open(&self.path)?.sync_all()?;
        match fs::hard_link(&self.path, &self.target) {
            Ok(()) => fs::remove_file(&self.path)?,
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                return Err(io::Error::new(
                    e.kind(),
                    format!("{} already exists", self.target.display()),
                ));
            }
            // A filesystem without hard links: a rename, after the same check.
            Err(_) if self.target.exists() => {
                return Err(io::Error::new(
                    io::ErrorKind::AlreadyExists,
                    format!("{} already exists", self.target.display()),
                ));
            }
            Err(_) => fs::rename(&self.path, &self.target)?,
        }
        self.finished = true;
        File::open(folder_of(&self.target))?.sync_all()
    }
}

impl Drop for PartialFile {
    fn drop(&mut self) {
        if !self.finished {
            let _ = fs::remove_file(&self.path);
        }
    }
}

fn folder_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

/// Removes what interrupted writes of [`PartialFile`] left in the data dir and its `backups`
/// folder: for start-up, before anything new is written there.
pub fn tidy_data_dir(data_dir: &Path) {
    remove_stale_partials(data_dir);
    remove_stale_partials(&data_dir.join("backups"));
}

/// Removes the temporary files of [`PartialFile`] in `dir` whose writer is gone: only names
/// in its pattern, and never one a live process (this one included) may still be writing.
/// Best effort: what cannot be read or removed is logged and left.
pub fn remove_stale_partials(dir: &Path) {
    let Ok(entries) = fs::read_dir(dir) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(writer) = partial_writer(&name) else {
            continue;
        };
        if writer_alive(writer) != Some(false) {
            continue;
        }
        let path = entry.path();
        match fs::remove_file(&path) {
            Ok(()) => tracing::info!(
                file = %path.display(),
                "removed a partial file an interrupted backup or restore left"
            ),
            Err(e) => tracing::warn!(
                file = %path.display(),
                error = %e,
                "cannot remove a partial file an interrupted backup or restore left"
            ),
        }
    }
}

/// The `<writer>` part of a [`PartialFile`] name, if `name` is one.
fn partial_writer(name: &OsStr) -> Option<&str> {
    let rest = name.to_str()?.strip_prefix(PARTIAL_PREFIX)?;
    let mut parts = rest.splitn(3, '.');
    let (writer, random, target) = (parts.next()?, parts.next()?, parts.next()?);
    let (pid, start) = writer.split_once('-')?;
    let digits = |s: &str| !s.is_empty() && s.bytes().all(|b| b.is_ascii_digit());
    let well_formed = digits(pid)
        && digits(start)
        && random.len() == 16
        && random.bytes().all(|b| b.is_ascii_hexdigit())
        && !target.is_empty();
    well_formed.then_some(writer)
}

/// This process as `<pid>-<start time>`: the start time (in clock ticks since boot, from
/// /proc) tells a live writer from a dead one whose pid was reused, as happens to pid 1 in
/// every container start. `0` when /proc cannot say, which no live process matches.
fn writer_tag() -> String {
    let pid = std::process::id();
    format!("{pid}-{}", start_time(pid).unwrap_or(0))
}

/// Whether the writer of a partial file still runs; None if that cannot be told here (no
/// /proc), so nothing is removed on a guess.
fn writer_alive(writer: &str) -> Option<bool> {
    start_time(std::process::id())?;
    let (pid, start) = writer.split_once('-')?;
    let pid: u32 = pid.parse().ok()?;
    Some(start_time(pid).is_some_and(|now| now.to_string() == start))
}

/// A process's start time: field 22 of /proc/PID/stat (counted after the parenthesised name,
/// which may itself hold spaces and parentheses).
fn start_time(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after_name = &stat[stat.rfind(')')? + 1..];
    after_name.split_whitespace().nth(19)?.parse().ok()
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

    #[test]
    fn a_partial_file_is_private_and_becomes_the_target_only_when_finished() {
        use std::io::Write;
        let dir = std::env::temp_dir().join(format!("tidings-partial-{}", rand::random::<u64>()));
        fs::create_dir_all(&dir).unwrap();
        let target = dir.join("snap.redb");
        let (partial, mut file) = PartialFile::create(&target).unwrap();
        assert_eq!(mode(partial.path()), 0o600);
        assert_eq!(partial.path().parent(), Some(dir.as_path()));
        assert!(partial_writer(partial.path().file_name().unwrap()).is_some());
        assert_eq!(
            writer_alive(partial_writer(partial.path().file_name().unwrap()).unwrap()),
            Some(true)
        );
        file.write_all(b"data").unwrap();
        drop(file);
        // Our own partial is never stale, even when another write tidies the folder.
        remove_stale_partials(&dir);
        assert!(partial.path().exists());
        assert!(!target.exists());
        partial.finish().unwrap();
        assert_eq!(fs::read(&target).unwrap(), b"data");
        assert_eq!(mode(&target), 0o600);
        assert_eq!(
            fs::read_dir(&dir).unwrap().count(),
            1,
            "only the target is left"
        );

        // An existing target is never replaced; an unfinished partial is removed when dropped.
        let (partial, _) = PartialFile::create(&target).unwrap();
        let err = partial.finish().unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::AlreadyExists);
        assert_eq!(fs::read(&target).unwrap(), b"data");
        let (partial, _) = PartialFile::create(&dir.join("other.redb")).unwrap();
        let left = partial.path().to_owned();
        drop(partial);
        assert!(!left.exists());
        assert_eq!(fs::read_dir(&dir).unwrap().count(), 1);
        fs::remove_dir_all(dir).ok();
    }

    #[test]
    fn only_partials_of_dead_writers_are_stale() {
        let dir = std::env::temp_dir().join(format!("tidings-stale-{}", rand::random::<u64>()));
        fs::create_dir_all(&dir).unwrap();
        let me = writer_tag();
        let pid = std::process::id();
        let random = "0123456789abcdef";
        let names = [
            // Dead: a start time this pid does not have, or a pid that cannot exist.
            (format!(".tidings-partial.{pid}-1.{random}.a.redb"), false),
            (
                format!(".tidings-partial.4294967295-7.{random}.b.redb"),
                false,
            ),
            // Alive: this process.
            (format!(".tidings-partial.{me}.{random}.c.redb"), true),
            // Not ours: other names are never touched.
            ("tidings-20261201T101010_000Z-ab12.redb".to_owned(), true),
            (format!(".tidings-partial.{pid}-1.nothex.d.redb"), true),
            (format!(".tidings-partial.{pid}-1.{random}."), true),
            (".tidings-partial.x".to_owned(), true),
        ];
        for (name, _) in &names {
            fs::write(dir.join(name), b"x").unwrap();
        }
        remove_stale_partials(&dir);
        for (name, kept) in &names {
            assert_eq!(dir.join(name).exists(), *kept, "{name}");
        }
        fs::remove_dir_all(dir).ok();
    }
}
