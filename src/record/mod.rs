//! record: where attachment records (BEHAVIOUR 6) live: `data_dir/<container id>-<ifname>.json`,
//! written atomically (temp file, rename) with mode 0600. Ids and names are
//! validated before they become file names. data_dir is reached through `confined`: made
//! 0700 where missing inside its allowed directory, never through a symlink below it.
//! No kernel access; no decisions.
//!
//! Here: the names (valid container ids) and the two traits; `files` (FileRecords in
//! data_dir), `guard` (the host lock and data_dir's usability), `attachment_lock` (the
//! per-attachment lock the plugin and `router agent` share), `mem` (MemRecords).

mod attachment_lock;
mod files;
mod guard;
mod mem;

pub use attachment_lock::{AttachmentLock, TryLock};
pub use files::FileRecords;
pub use guard::HostLock;
pub use mem::MemRecords;

use crate::error::Result;
use crate::model::Record;

/// The longest file name most filesystems take (NAME_MAX).
const MAX_FILE_NAME: usize = 255;
/// What a record's file name adds to the container id: `-`, an interface name of at most 15
/// bytes, and `.json.tmp` while it is written.
const RECORD_NAME_OVERHEAD: usize = 1 + 15 + ".json.tmp".len();
/// Longer ids could not name a record file: refused up front (code 4) rather than failing
/// with ENAMETOOLONG halfway through an ADD.
pub const MAX_CONTAINER_ID_LEN: usize = MAX_FILE_NAME - RECORD_NAME_OVERHEAD;

/// CNI container ids: alphanumerics plus `-`, `_`, `.`, starting with an alphanumeric; never
/// a path component trick.
pub fn is_valid_container_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= MAX_CONTAINER_ID_LEN
        && id.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && id
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_' || c == '.')
}

/// The attachment records: read, written, listed.
pub trait RecordStore {
    fn load(&self, container_id: &str, ifname: &str) -> Result<Option<Record>>;
    /// The records of the pod's other attachments.
    fn peers(&self, container_id: &str, ifname: &str) -> Result<Vec<Record>>;
    fn save(&self, record: &Record) -> Result<()>;
    fn remove(&self, container_id: &str, ifname: &str) -> Result<()>;
    /// Every record in the store (GC). A file that is not a readable record is left out
    /// (logged): nothing says whose it is.
    fn all(&self) -> Result<Vec<Record>>;
}

/// What the records' place guards for the whole node: the host lock, and whether ADD could
/// use the place now. Apart from `RecordStore` so that a wrapper changing one (the signals
/// allowed while waiting for the lock, GC's view of peers) wraps only that one.
pub trait HostGuard {
    /// Serialises the decisions about the shared host rule of concurrent ADDs and DELs (the
    /// runtime runs pods in parallel; ARCHITECTURE "Ordering"): held until the guard drops.
    fn lock_host(&self) -> Result<HostLock>;
    /// The host lock held beside other shared holders, never beside `lock_host`'s: enough
    /// to look at the shared rule and to add it (two adds beside each other are safe: the
    /// kernel answers the second EEXIST), never to remove it, so concurrent ADDs need not
    /// queue for each other.
    fn lock_host_shared(&self) -> Result<HostLock> {
        self.lock_host()
    }
    /// Whether ADD could write records and take the host lock now (STATUS): an error
    /// (code 50) names what is unusable.
    fn check_usable(&self) -> Result<()>;
    /// One attachment's lock, shared with `router agent` (GC holds it while it collects
    /// that attachment). None where no agent can be: in-memory records.
    fn hold_attachment(
        &self,
        _container_id: &str,
        _ifname: &str,
    ) -> Result<Option<AttachmentLock>> {
        Ok(None)
    }
}

impl<T: RecordStore + ?Sized> RecordStore for std::sync::Arc<T> {
    fn load(&self, container_id: &str, ifname: &str) -> Result<Option<Record>> {
        (**self).load(container_id, ifname)
    }
    fn peers(&self, container_id: &str, ifname: &str) -> Result<Vec<Record>> {
        (**self).peers(container_id, ifname)
    }
    fn save(&self, record: &Record) -> Result<()> {
        (**self).save(record)
    }
    fn remove(&self, container_id: &str, ifname: &str) -> Result<()> {
        (**self).remove(container_id, ifname)
    }
    fn all(&self) -> Result<Vec<Record>> {
        (**self).all()
    }
}

impl<T: HostGuard + ?Sized> HostGuard for std::sync::Arc<T> {
    fn lock_host(&self) -> Result<HostLock> {
        (**self).lock_host()
    }
    fn lock_host_shared(&self) -> Result<HostLock> {
        (**self).lock_host_shared()
    }
    fn check_usable(&self) -> Result<()> {
        (**self).check_usable()
    }
    fn hold_attachment(&self, container_id: &str, ifname: &str) -> Result<Option<AttachmentLock>> {
        (**self).hold_attachment(container_id, ifname)
    }
}

#[cfg(test)]
mod tests;
