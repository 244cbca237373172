//! netns::files: sysctl files of a visited netns, opened inside it in a visit, then read
//! and written from outside it (a /proc/sys/net file shows the netns of the thread that
//! opened it, whichever netns that thread is in later), so a run does not visit the netns
//! for each sysctl. Must not decide which sysctls a run touches.

use std::collections::{BTreeMap, BTreeSet};
use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::FileExt;

use super::{sysctl_error, sysctl_value, NetnsId};
use crate::error::Result;
use crate::model::SysctlKey;

/// What one opening visit found: each key's file, or None when the sysctl does not exist.
pub(super) type Opened = Vec<(SysctlKey, Option<File>)>;

/// The files held for one netns (none before the first use).
#[derive(Default)]
pub(super) struct Held {
    pub(super) netns: Option<NetnsId>,
    files: BTreeMap<SysctlKey, Option<File>>,
    asked: BTreeSet<SysctlKey>,
}

impl Held {
    pub(super) fn new(netns: NetnsId) -> Held {
        Held {
            netns: Some(netns),
            files: BTreeMap::new(),
            asked: BTreeSet::new(),
        }
    }

    /// The keys not asked for yet; they count as asked from now on.
    pub(super) fn ask(&mut self, keys: impl IntoIterator<Item = SysctlKey>) -> Vec<SysctlKey> {
        keys.into_iter()
            .filter(|key| self.asked.insert(key.clone()))
            .collect()
    }

    /// Takes in what an opening visit found.
    pub(super) fn add(&mut self, opened: Opened) {
        self.files.extend(opened);
    }

    /// A held key's file (None: the sysctl does not exist); None for a key not held.
    pub(super) fn file(&self, key: &SysctlKey) -> Option<Option<&File>> {
        self.files.get(key).map(Option::as_ref)
    }
}

/// Opens each key's file for reading and writing in the calling thread's netns. A file
/// that cannot be opened for writing (a read-only /proc/sys, a sysctl the caller may not
/// set) is held for reading: a read must work as it did before files were held, and a
/// write through it fails as a write would have.
pub(super) fn open_here(keys: Vec<SysctlKey>) -> Result<Opened> {
    keys.into_iter()
        .map(|key| {
            let path = key.proc_path();
            let opened = match OpenOptions::new().read(true).write(true).open(&path) {
                Err(e) if not_writable(&e) => File::open(&path),
                other => other,
            };
            match opened {
                Ok(file) => Ok((key, Some(file))),
                Err(e) if e.kind() == io::ErrorKind::NotFound => Ok((key, None)),
                Err(e) => Err(sysctl_error(&key, e)),
            }
        })
        .collect()
}

/// Whether opening for writing failed only because writing is not allowed.
fn not_writable(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::PermissionDenied || e.raw_os_error() == Some(libc::EROFS)
}

/// The value in a held file, read afresh.
pub(super) fn read(key: &SysctlKey, file: &File) -> Result<i64> {
    let mut buf = [0u8; 32];
    let n = file
        .read_at(&mut buf, 0)
        .map_err(|e| sysctl_error(key, e))?;
    sysctl_value(key, &String::from_utf8_lossy(&buf[..n]))
}

/// Writes a held file from its start, as a write to a freshly opened one would.
pub(super) fn write(key: &SysctlKey, file: &File, value: i64) -> Result<()> {
    let text = format!("{value}\n");
    match file.write_at(text.as_bytes(), 0) {
        Ok(n) if n == text.len() => Ok(()),
        Ok(n) => Err(sysctl_error(
            key,
            io::Error::other(format!("wrote {n} of {} bytes", text.len())),
        )),
        Err(e) => Err(sysctl_error(key, e)),
    }
}

#[cfg(test)]
mod tests;
