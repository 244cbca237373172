//! netns: runs work inside another network namespace on a dedicated thread that enters it
//! with setns(2), and reads/writes the per-netns sysctls of the calling thread's netns.
//! It must never change the netns of a thread it did not create (the caller's included).

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;

use nix::sched::{setns, CloneFlags};
use nix::sys::statfs::{fstatfs, FsType};

use crate::error::{Error, Result};
use crate::model::SysctlKey;

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
        match self.handle.join() {
            Ok(result) => result,
            Err(payload) => {
                let message = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_string());
                Err(Error::Io {
                    what: format!("thread in netns {}", self.path.display()),
                    reason: format!("panicked: {message}"),
                })
            }
        }
    }
}

/// Runs `f` on a new thread that has entered the netns at `path`, and waits for it.
/// The calling thread never changes netns. A missing path is `Error::Io` naming it.
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
    spawn_in_open_netns(open(path)?, path, f)
}

/// Like [`spawn_in_netns`], with the netns file `path` already open.
pub fn spawn_in_open_netns<T: Send + 'static>(
    file: File,
    path: &Path,
    f: impl FnOnce() -> Result<T> + Send + 'static,
) -> Result<NetnsThread<T>> {
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

/// Moves the current thread into the network namespace of `file`.
fn enter(file: &File, path: &Path) -> Result<()> {
    setns(file, CloneFlags::CLONE_NEWNET)
        .map_err(|e| Error::io(format!("setns into {}", path.display()), io::Error::from(e)))
}

/// Reads a sysctl of the calling thread's netns; None when the file does not exist (the
/// interface is gone, or IPv6 is off). Call it on the thread that is in the right netns:
/// /proc/sys/net shows the netns of the thread that opens the file.
pub fn read_sysctl(key: &SysctlKey) -> Result<Option<i64>> {
    let path = PathBuf::from(key.proc_path());
    let text = match std::fs::read_to_string(&path) {
        Ok(text) => text,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::io(format!("sysctl {key} ({})", path.display()), e)),
    };
    text.trim()
        .parse::<i64>()
        .map(Some)
        .map_err(|e| Error::Decode {
            what: format!("sysctl {key} ({})", path.display()),
            reason: format!("{e}: {:?}", text.trim()),
        })
}

/// Writes a sysctl of the calling thread's netns (see [`read_sysctl`] on which thread).
pub fn write_sysctl(key: &SysctlKey, value: i64) -> Result<()> {
    let path = PathBuf::from(key.proc_path());
    let what = || format!("sysctl {key} ({})", path.display());
    let mut file = OpenOptions::new()
        .write(true)
        .open(&path)
        .map_err(|e| Error::io(what(), e))?;
    file.write_all(format!("{value}\n").as_bytes())
        .map_err(|e| Error::io(what(), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn missing_netns_path_is_an_io_error_naming_it() {
        let path = Path::new("/nonexistent/router-test/netns");
        let err = run_in_netns(path, || Ok(())).unwrap_err();
        let Error::Io { what, .. } = &err else {
            panic!("{err:?}")
        };
        assert!(what.contains("/nonexistent/router-test/netns"), "{what}");
        assert!(!is_netns(path).unwrap());
    }

    #[test]
    fn a_plain_file_is_not_a_netns() {
        assert!(!is_netns(Path::new("/proc/self/status")).unwrap());
        assert!(is_netns(Path::new("/proc/self/ns/net")).unwrap());
    }

    #[test]
    fn a_fifo_a_directory_and_a_path_under_a_file_are_no_netns_and_never_block() {
        let dir = std::env::temp_dir().join(format!("router-netns-fifo-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let fifo = dir.join("fifo");
        nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU).unwrap();
        assert!(!is_netns(&fifo).unwrap());
        assert!(run_in_netns(&fifo, || Ok(())).is_err());
        assert!(!is_netns(&dir).unwrap());
        assert!(!is_netns(Path::new("/proc/self/status/x")).unwrap());
        let _ = std::fs::remove_dir_all(&dir);
    }

    /// The thread is built by hand: entering a netns needs CAP_SYS_ADMIN, and what is
    /// tested here is `join`, which the pure tests (run without root) cover too.
    #[test]
    fn a_panic_in_the_netns_thread_is_an_error() {
        let thread: NetnsThread<()> = NetnsThread {
            path: PathBuf::from("/proc/self/ns/net"),
            handle: std::thread::spawn(|| -> Result<()> { panic!("boom") }),
        };
        let err = thread.join().unwrap_err();
        assert!(
            matches!(&err, Error::Io { what, reason } if reason.contains("boom") && what.contains("/proc/self/ns/net")),
            "{err:?}"
        );
    }
}
