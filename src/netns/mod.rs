//! netns: does work inside another network namespace: in a visit of the calling thread
//! (`NetnsVisitor`: setns(2) in, the work, setns back before anything else runs on the
//! thread; it also holds the sysctl files a visit opened, `files`) or on a thread per call
//! (`run_in_netns`); reads/writes the per-netns sysctls of the calling thread's netns. It
//! must never leave a thread in a netns other than the one it found it in.

use std::any::Any;
use std::cell::Cell;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use nix::sched::{setns, CloneFlags};
use nix::sys::statfs::{fstatfs, FsType};

use crate::error::{Error, Result};
use crate::model::{NetnsIdentity, SysctlKey};

mod files;

/// statfs(2) f_type of nsfs, the filesystem of /proc/<pid>/ns/* and of their bind mounts
/// (/run/netns/*). nix names the common filesystems but not this one.
const NSFS_MAGIC: FsType = FsType(0x6e73_6673);

/// Work running on its own thread inside a netns; `join` to get its result.
#[must_use = "join the thread to get its result"]
pub struct NetnsThread<T> {
    path: PathBuf,
    handle: JoinHandle<Result<T>>,
}

impl<T> NetnsThread<T> {
    /// Waits for the work; a panic on that thread comes back as an error.
    pub fn join(self) -> Result<T> {
        self.handle
            .join()
            .unwrap_or_else(|payload| Err(panicked(&self.path, payload.as_ref())))
    }
}

/// A panic of work in the netns at `path`, as the error it comes back as.
fn panicked(path: &Path, payload: &(dyn Any + Send)) -> Error {
    let message = payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".to_string());
    io_error(path, &format!("panicked: {message}"))
}

/// A run's way into the netns at `path`: what must be done inside it (open its netlink
/// socket, which the caller then uses from its own netns; open its /proc/sys files; the
/// conflict probe) is done in a visit (`visit`): the calling thread enters the netns, does
/// that one thing and comes back before anything else runs on it. Each visit opens `path`
/// again, so a path that is gone fails (`Error::Io` naming it) and a path that names
/// another netns by now is entered as it is now. Nothing is held inside the netns between
/// visits but what a visit opened (a socket, a file), so a dropped visitor keeps no netns
/// alive.
pub struct NetnsVisitor {
    path: PathBuf,
    /// Sysctl files of the netns, opened in a visit (`hold_sysctl_files`).
    files: Mutex<files::Held>,
}

/// A netns by its nsfs inode (st_dev, st_ino of any file referring to it).
pub type NetnsId = (u64, u64);

thread_local! {
    /// How many visits the calling thread is inside (a visit may visit another netns).
    static VISITING: Cell<usize> = const { Cell::new(0) };
}

/// Whether the calling thread is inside a visit, in a netns other than its own: what it
/// would open for itself now (a netlink handle of "its own" netns) would be the visited
/// netns's.
pub fn visiting() -> bool {
    VISITING.try_with(Cell::get).unwrap_or(0) > 0
}

impl NetnsVisitor {
    /// A visitor of the netns at `path`; nothing is opened before first use.
    pub fn new(path: PathBuf) -> NetnsVisitor {
        NetnsVisitor {
            path,
            files: Mutex::new(files::Held::default()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The netns the path names now; a path that is gone fails (`Error::Io` naming it).
    /// A stat, not an open: it is asked before every use of the pod's handle and files,
    /// and nothing is entered through it (a visit opens the path itself).
    pub fn netns(&self) -> Result<NetnsId> {
        let identity = identity_of(&self.path)?;
        Ok((identity.dev, identity.inode))
    }

    /// Opens the files of `keys` (those not held yet) in one visit: from then on
    /// `read_sysctls` and `write_sysctl` use them from the calling thread.
    pub fn hold_sysctl_files(&self, keys: impl IntoIterator<Item = SysctlKey>) -> Result<()> {
        let mut held = self.held_files()?;
        let keys = held.ask(keys);
        if !keys.is_empty() {
            held.add(self.visit(move || files::open_here(keys))?);
        }
        Ok(())
    }

    /// The sysctls of `keys` that exist in the netns: from the held files, the others read
    /// in a visit.
    pub fn read_sysctls(&self, keys: Vec<SysctlKey>) -> Result<BTreeMap<SysctlKey, i64>> {
        let mut found = BTreeMap::new();
        let mut unheld = Vec::new();
        {
            let held = self.held_files()?;
            for key in keys {
                match held.file(&key) {
                    Some(Some(file)) => {
                        let value = files::read(&key, file)?;
                        found.insert(key, value);
                    }
                    Some(None) => {}
                    None => unheld.push(key),
                }
            }
        }
        if !unheld.is_empty() {
            found.extend(self.visit(move || read_sysctls_here(unheld))?);
        }
        Ok(found)
    }

    /// Writes a sysctl of the netns: through its held file, else in a visit.
    pub fn write_sysctl(&self, key: &SysctlKey, value: i64) -> Result<()> {
        {
            let held = self.held_files()?;
            if let Some(Some(file)) = held.file(key) {
                return files::write(key, file, value);
            }
        }
        self.visit(|| write_sysctl(key, value))
    }

    /// The files held for the netns the path names now; those of another netns are
    /// dropped (a path that names a new netns).
    fn held_files(&self) -> Result<MutexGuard<'_, files::Held>> {
        let netns = self.netns()?;
        let mut held = self.files.lock().unwrap_or_else(PoisonError::into_inner);
        if held.netns != Some(netns) {
            *held = files::Held::new(netns);
        }
        Ok(held)
    }

    /// Runs `f` on the calling thread inside the netns the path names now, and brings the
    /// thread back to the netns it was in before `f`'s result (or panic) goes anywhere.
    /// A panic in `f` comes back as an error. A thread that cannot come back ends the
    /// process (`come_back`): nothing may run on it in the wrong netns.
    pub fn visit<T>(&self, f: impl FnOnce() -> Result<T>) -> Result<T> {
        // Opened first: a path that is gone fails before the thread moves, and the way
        // back is in hand before it leaves.
        let there = open(&self.path)?;
        let home = current()?;
        enter(&there, &self.path)?;
        drop(there);
        let _ = VISITING.try_with(|v| v.set(v.get() + 1));
        let result = catch_unwind(AssertUnwindSafe(f));
        come_back(&home, &self.path);
        let _ = VISITING.try_with(|v| v.set(v.get().saturating_sub(1)));
        result.unwrap_or_else(|payload| Err(panicked(&self.path, payload.as_ref())))
    }
}

/// Takes the calling thread back into `home`, the netns it left for `visited`. setns(2)
/// into a netns the thread was in a moment ago, through a file it holds open, has nothing
/// to refuse it (the thread had the capability to leave), so a failure here is the kernel
/// out of memory; the thread is then in the visited netns with the caller's node work
/// still to run, and the process aborts rather than do any of it there.
fn come_back(home: &File, visited: &Path) {
    if let Err(e) = setns(home, CloneFlags::CLONE_NEWNET) {
        tracing::error!(netns = %visited.display(), error = %e, "could not leave the netns, aborting");
        std::process::abort();
    }
    tracing::debug!(netns = %visited.display(), "left netns");
}

impl fmt::Debug for NetnsVisitor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetnsVisitor")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

/// A failure of the thread working in the netns at `path`.
fn io_error(path: &Path, reason: &str) -> Error {
    Error::io_other(format!("thread in netns {}", path.display()), reason)
}

/// Runs `f` on a new thread that has entered the netns at `path`, and waits for it.
/// The calling thread stays where it is. A missing path is `Error::Io` naming it.
pub fn run_in_netns<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<T> {
    spawn_in_netns(path, f)?.join()
}

/// Like [`run_in_netns`] but returns at once, so the caller can work meanwhile.
/// The netns file is opened here, before the thread starts: a missing path fails now.
pub fn spawn_in_netns<T: Send + 'static>(
    path: &Path,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<NetnsThread<T>> {
    let file = open(path)?;
    let thread_path = path.to_path_buf();
    let handle = std::thread::Builder::new()
        .name("router-netns".to_string())
        .spawn(move || {
            enter(&file, &thread_path)?;
            drop(file);
            f()
        })
        .map_err(|e| Error::io(format!("thread for netns {}", path.display()), e))?;
    Ok(NetnsThread {
        path: path.to_path_buf(),
        handle,
    })
}

/// Opens the netns file at `path`; a missing path is `Error::Io` naming it.
pub fn open(path: &Path) -> Result<File> {
    open_nonblocking(path).map_err(|e| Error::io(netns_what(path), e))
}

/// The calling thread's own netns, as a file another netns can be asked its id for.
pub fn current() -> Result<File> {
    open(Path::new("/proc/thread-self/ns/net"))
}

/// The identity of the calling thread's netns (the nsfs inode its `ns/net` link names).
pub fn current_identity() -> Result<NetnsIdentity> {
    identity_of(Path::new("/proc/thread-self/ns/net"))
}

/// The identity of the netns `path` names (a netns file, a bind mount of one, or a
/// process's `ns/net` link).
pub fn identity_of(path: &Path) -> Result<NetnsIdentity> {
    use std::os::unix::fs::MetadataExt;
    let meta = std::fs::metadata(path).map_err(|e| Error::io(netns_what(path), e))?;
    Ok(NetnsIdentity {
        dev: meta.dev(),
        inode: meta.ino(),
    })
}

/// Whether `path` is a namespace file that can still be entered: false when it does not
/// exist, or is a leftover plain file whose netns bind mount is gone.
/// A path that names nothing openable (missing, a component that is not a directory, a
/// link loop, too long) is no netns; other errors (EACCES, EIO) are reported.
pub fn is_netns(path: &Path) -> Result<bool> {
    let file = match open_nonblocking(path) {
        Ok(file) => file,
        Err(e) if names_nothing(&e) => return Ok(false),
        Err(e) => return Err(Error::io(netns_what(path), e)),
    };
    let stat = fstatfs(&file).map_err(|e| Error::io(netns_what(path), io::Error::from(e)))?;
    Ok(stat.filesystem_type() == NSFS_MAGIC)
}

/// Opens read-only without blocking: CNI_NETNS comes from outside, and opening a FIFO
/// there with a plain open would wait forever for a writer. A netns file ignores the flag.
fn open_nonblocking(path: &Path) -> io::Result<File> {
    std::fs::OpenOptions::new()
        .read(true)
        .custom_flags(libc::O_NONBLOCK)
        .open(path)
}

fn names_nothing(e: &io::Error) -> bool {
    e.kind() == io::ErrorKind::NotFound
        || matches!(
            e.raw_os_error(),
            Some(libc::ENOTDIR | libc::ELOOP | libc::ENAMETOOLONG)
        )
}

fn netns_what(path: &Path) -> String {
    format!("netns {}", path.display())
}

/// Moves the current thread into the network namespace of `file`. Logged (debug): how
/// often a run enters the pod netns is what tests count.
fn enter(file: &File, path: &Path) -> Result<()> {
    setns(file, CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::io(format!("setns into {}", path.display()), io::Error::from(e)))?;
    tracing::debug!(netns = %path.display(), "entered netns");
    Ok(())
}

/// Reads a sysctl of the calling thread's netns; None when the file does not exist (the
/// interface is gone, or IPv6 is off). Call it on the thread that is in the right netns:
/// /proc/sys/net shows the netns of the thread that opens the file.
pub fn read_sysctl(key: &SysctlKey) -> Result<Option<i64>> {
    match std::fs::read_to_string(key.proc_path()) {
        Ok(text) => sysctl_value(key, &text).map(Some),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(sysctl_error(key, e)),
    }
}

/// The sysctls of `keys` that exist in the calling thread's netns (see [`read_sysctl`]).
pub fn read_sysctls_here(keys: Vec<SysctlKey>) -> Result<BTreeMap<SysctlKey, i64>> {
    let mut found = BTreeMap::new();
    for key in keys {
        if let Some(value) = read_sysctl(&key)? {
            found.insert(key, value);
        }
    }
    Ok(found)
}

/// Writes a sysctl of the calling thread's netns (see [`read_sysctl`] on which thread).
pub fn write_sysctl(key: &SysctlKey, value: i64) -> Result<()> {
    let mut file = OpenOptions::new()
        .write(true)
        .open(key.proc_path())
        .map_err(|e| sysctl_error(key, e))?;
    file.write_all(format!("{value}\n").as_bytes())
        .map_err(|e| sysctl_error(key, e))
}

/// A sysctl's file, named with its key, failing.
fn sysctl_error(key: &SysctlKey, e: io::Error) -> Error {
    Error::io(sysctl_what(key), e)
}

fn sysctl_what(key: &SysctlKey) -> String {
    format!("sysctl {key} ({})", key.proc_path())
}

/// A sysctl's value as its file shows it.
fn sysctl_value(key: &SysctlKey, text: &str) -> Result<i64> {
    text.trim().parse::<i64>().map_err(|e| Error::Decode {
        what: sysctl_what(key),
        reason: format!("{e}: {:?}", text.trim()),
    })
}

#[cfg(test)]
mod tests;
