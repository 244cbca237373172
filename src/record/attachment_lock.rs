//! record::attachment_lock: the per-attachment lock the plugin and `router agent` share,
//! an flock on `data_dir/<container id>-<ifname>.lock`. The plugin's ADD, CHECK and DEL
//! hold it for their whole run; the agent takes it (without waiting) before it applies
//! anything to an attachment and re-reads the record under it, so it never acts in the
//! middle of a run and never re-creates what a DEL removed.
//! The file lives only as long as the attachment: whoever releases the lock while no record
//! is there (a DEL that removed it, an ADD that failed, an agent that found the record
//! gone) unlinks the file first, still holding the lock. A waiter that then gets the lock
//! holds it on an unlinked inode, which excludes nobody: every acquisition checks that the
//! path still names the inode it locked, and opens the path again when not.
//! Must not decide what the lock covers beyond that (the plugin and the agent do), or touch
//! the kernel.

use std::fs;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

use super::guard::{lock_error, wait_for_lock};
use super::FileRecords;
use crate::error::{Error, Result};

/// Holds one attachment's lock while alive. Dropped with no record on disk, it unlinks its
/// file before it lets go (see the module header).
#[derive(Debug)]
pub struct AttachmentLock {
    file: Option<Flock<fs::File>>,
    lock_path: PathBuf,
    record_path: PathBuf,
}

/// What the agent's attempt at an attachment's lock gave.
#[derive(Debug)]
pub enum TryLock {
    Held(AttachmentLock),
    /// A plugin run or another agent holds it now.
    Busy,
    /// data_dir is gone, and with it the record.
    Gone,
}

impl TryLock {
    /// The lock, when this attempt got it.
    pub fn held(self) -> Option<AttachmentLock> {
        match self {
            TryLock::Held(lock) => Some(lock),
            TryLock::Busy | TryLock::Gone => None,
        }
    }
}

/// How many times an acquisition opens the path again after finding that it locked an
/// unlinked file. Each retry follows a release by someone who removed the attachment;
/// more than a few in a row means files are being removed and re-created in a loop, which
/// no CNI runtime does for one attachment.
const MAX_REOPENS: usize = 16;

/// What one attempt at the lock gave.
enum Attempt {
    Held(Flock<fs::File>),
    /// Another process holds it (only for an attempt that does not wait).
    Busy,
    /// The file was unlinked (or replaced) between our open and our lock: open again.
    Stale,
}

impl FileRecords {
    fn lock_paths(&self, container_id: &str, ifname: &str) -> Result<(PathBuf, PathBuf)> {
        let record_path = self.path(container_id, ifname)?;
        let lock_path = record_path.with_extension("lock");
        Ok((lock_path, record_path))
    }

    /// The plugin's acquisition: waits (up to the host lock's timeout, code 11 after it)
    /// for an agent's repair of this attachment to end. With `make_dir` (ADD, which writes
    /// the record) data_dir is made where missing; without it (CHECK, DEL) a missing
    /// data_dir holds no record, so no agent can be at work on it: `None`, nothing made.
    pub fn lock_attachment(
        &self,
        container_id: &str,
        ifname: &str,
        make_dir: bool,
    ) -> Result<Option<AttachmentLock>> {
        let (lock_path, record_path) = self.lock_paths(container_id, ifname)?;
        if make_dir {
            self.ensure_dir()?;
        } else if !self.dir_exists()? {
            return Ok(None);
        }
        for _ in 0..MAX_REOPENS {
            if let Attempt::Held(file) = attempt(&lock_path, true)? {
                return Ok(Some(AttachmentLock {
                    file: Some(file),
                    lock_path,
                    record_path,
                }));
            }
        }
        Err(reopened_too_often(&lock_path))
    }

    /// The agent's acquisition: never waits. `Busy` when a plugin run (or another agent)
    /// holds the lock: the caller comes back later, and the run in progress leaves the
    /// attachment as it decides. An agent never makes data_dir: without one there is no
    /// record, `Gone`.
    pub fn try_lock_attachment(&self, container_id: &str, ifname: &str) -> Result<TryLock> {
        let (lock_path, record_path) = self.lock_paths(container_id, ifname)?;
        if !self.dir_exists()? {
            return Ok(TryLock::Gone);
        }
        for _ in 0..MAX_REOPENS {
            match attempt(&lock_path, false)? {
                Attempt::Held(file) => {
                    return Ok(TryLock::Held(AttachmentLock {
                        file: Some(file),
                        lock_path,
                        record_path,
                    }))
                }
                Attempt::Busy => return Ok(TryLock::Busy),
                Attempt::Stale => {}
            }
        }
        Err(reopened_too_often(&lock_path))
    }
}

impl AttachmentLock {
    /// The lock file's path.
    pub fn path(&self) -> &Path {
        &self.lock_path
    }

    /// Whether the attachment's record is on disk now (read under the lock, this is the
    /// answer every holder acts on).
    pub fn record_exists(&self) -> bool {
        self.record_path.exists()
    }
}

impl Drop for AttachmentLock {
    fn drop(&mut self) {
        // Unlinked while still held: a waiter that gets the lock next finds the path no
        // longer names its inode and opens it again (or, an agent, finds no record).
        if !self.record_path.exists() {
            if let Err(e) = fs::remove_file(&self.lock_path) {
                if e.kind() != std::io::ErrorKind::NotFound {
                    tracing::warn!(file = %self.lock_path.display(), error = %e, "cannot remove an attachment lock file");
                }
            }
        }
        // Closing the file releases the flock.
        drop(self.file.take());
    }
}

/// Opens the lock file (made 0600 where missing, never through a link) and locks it; a
/// lock on a file the path no longer names is `Stale`.
fn attempt(path: &Path, wait: bool) -> Result<Attempt> {
    let file = fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .custom_flags(libc::O_NOFOLLOW | libc::O_CLOEXEC)
        .open(path)
        .map_err(|e| Error::io(format!("opening lock {}", path.display()), e))?;
    let locked = match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
        Ok(lock) => lock,
        Err((_, Errno::EWOULDBLOCK)) if !wait => return Ok(Attempt::Busy),
        Err((file, Errno::EWOULDBLOCK)) => wait_for_lock(file, path, FlockArg::LockExclusive)?,
        Err((_, errno)) => return Err(lock_error(path, errno)),
    };
    let held = locked
        .metadata()
        .map_err(|e| Error::io(format!("reading lock {}", path.display()), e))?;
    let named = match fs::symlink_metadata(path) {
        Ok(meta) => Some((meta.dev(), meta.ino())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
        Err(e) => return Err(Error::io(format!("reading lock {}", path.display()), e)),
    };
    if named == Some((held.dev(), held.ino())) {
        Ok(Attempt::Held(locked))
    } else {
        Ok(Attempt::Stale)
    }
}

fn reopened_too_often(path: &Path) -> Error {
    Error::TryAgain(format!(
        "the attachment lock {} was removed and re-created {MAX_REOPENS} times while this run waited for it",
        path.display()
    ))
}
