//! netns: runs work inside another network namespace on a thread that enters it with
//! setns(2): a long-lived `NetnsWorker` (entered once, on first use, for a whole run; it
//! also holds the sysctl files it opened there, `files`) or a thread per call
//! (`run_in_netns`); reads/writes the per-netns sysctls of the calling thread's netns. It
//! must never change the netns of a thread it did not create.

use std::any::Any;
use std::collections::BTreeMap;
use std::fmt;
use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::thread::JoinHandle;

use nix::sched::{sched_getaffinity, sched_getcpu, sched_setaffinity, setns, CloneFlags, CpuSet};
use nix::sys::stat::fstat;
use nix::sys::statfs::{fstatfs, FsType};
use nix::unistd::Pid;

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

/// A thread in the netns at `path` that runs the work sent to it, one job after another:
/// what a run must do inside the netns (open its netlink socket, which the caller then
/// uses from its own thread; read and write /proc/sys; the conflict probe), all after one
/// entry into the netns. The thread is started and enters the netns on first use; each
/// use first opens `path` again, so a path that is
/// gone fails as `run_in_netns` would (`Error::Io` naming it), and a path that names
/// another netns by now gets a new thread entering that one. Dropping the worker ends its
/// thread after the work already sent.
pub struct NetnsWorker {
    path: PathBuf,
    entered: Mutex<Option<Entered>>,
    /// Sysctl files of the netns, opened by the thread (`hold_sysctl_files`).
    files: Mutex<files::Held>,
}

/// A job runs its work once the thread is in the netns, or answers with the error that
/// kept the thread out.
type Job = Box<dyn FnOnce(std::result::Result<(), &Error>) + Send>;

/// The worker's thread, inside the netns `netns` identifies.
struct Entered {
    netns: NetnsId,
    jobs: Option<Sender<Job>>,
    thread: Option<JoinHandle<()>>,
}

/// A netns by its nsfs inode (st_dev, st_ino of any file referring to it).
pub type NetnsId = (u64, u64);

/// Work handed to a worker; `wait` for its result.
#[must_use = "wait for the work to get its result"]
pub struct Pending<T> {
    path: PathBuf,
    result: Receiver<Result<T>>,
}

impl<T> Pending<T> {
    /// Waits for the work; a panic in it comes back as an error.
    pub fn wait(self) -> Result<T> {
        self.result
            .recv()
            .unwrap_or_else(|_| Err(io_error(&self.path, "ended before answering")))
    }
}

impl NetnsWorker {
    /// A worker for the netns at `path`; nothing is opened or started before first use.
    pub fn new(path: PathBuf) -> NetnsWorker {
        NetnsWorker {
            path,
            entered: Mutex::new(None),
            files: Mutex::new(files::Held::default()),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The netns the path names now; a path that is gone fails (`Error::Io` naming it).
    pub fn netns(&self) -> Result<NetnsId> {
        netns_id(&open(&self.path)?, &self.path)
    }

    /// Has the thread open the files of `keys` (those not asked for yet), without waiting:
    /// once open, `read_sysctls` and `write_sysctl` use them from the calling thread.
    pub fn hold_sysctl_files(&self, keys: impl IntoIterator<Item = SysctlKey>) -> Result<()> {
        let mut held = self.held_files()?;
        let keys = held.ask(keys);
        if !keys.is_empty() {
            held.opening(self.submit(move || files::open_here(keys))?);
        }
        Ok(())
    }

    /// The sysctls of `keys` that exist in the netns: from the held files on the calling
    /// thread, the others read by the thread.
    pub fn read_sysctls(&self, keys: Vec<SysctlKey>) -> Result<BTreeMap<SysctlKey, i64>> {
        let mut found = BTreeMap::new();
        let mut unheld = Vec::new();
        {
            let mut held = self.held_files()?;
            held.settle()?;
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
            found.extend(self.run(move || read_sysctls_here(unheld))?);
        }
        Ok(found)
    }

    /// Writes a sysctl of the netns: through its held file on the calling thread, else on
    /// the thread.
    pub fn write_sysctl(&self, key: &SysctlKey, value: i64) -> Result<()> {
        {
            let mut held = self.held_files()?;
            held.settle()?;
            if let Some(Some(file)) = held.file(key) {
                return files::write(key, file, value);
            }
        }
        let key = key.clone();
        self.run(move || write_sysctl(&key, value))
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

    /// Runs `f` on the worker's thread, inside the netns, and waits for it.
    pub fn run<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<T> {
        self.submit(f)?.wait()
    }

    /// Hands `f` to the worker's thread and returns at once, so the caller can work
    /// meanwhile. A path that is gone fails now.
    pub fn submit<T: Send + 'static>(
        &self,
        f: impl FnOnce() -> Result<T> + Send + 'static,
    ) -> Result<Pending<T>> {
        let jobs = self.jobs()?;
        let (answer, result) = mpsc::sync_channel(1);
        let path = self.path.clone();
        let job: Job = Box::new(move |entered| {
            let result = match entered {
                Ok(()) => catch_unwind(AssertUnwindSafe(f))
                    .unwrap_or_else(|payload| Err(panicked(&path, payload.as_ref()))),
                Err(error) => Err(error.clone()),
            };
            // The caller may have stopped waiting: nobody to tell.
            let _ = answer.send(result);
        });
        jobs.send(job)
            .map_err(|_| io_error(&self.path, "it has ended"))?;
        Ok(Pending {
            path: self.path.clone(),
            result,
        })
    }

    /// Where to send jobs: the thread in the netns `path` names now, started if need be.
    fn jobs(&self) -> Result<Sender<Job>> {
        let file = open(&self.path)?;
        let netns = netns_id(&file, &self.path)?;
        let mut entered = self.entered.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(Entered {
            netns: current,
            jobs: Some(jobs),
            ..
        }) = entered.as_ref()
        {
            if *current == netns {
                return Ok(jobs.clone());
            }
        }
        // The old thread, if any, ends here (its netns is no longer what the path names).
        *entered = None;
        let path = self.path.clone();
        let started = Entered::start(&self.path, netns, move || enter(&file, &path))?;
        let jobs = started.jobs.clone();
        *entered = Some(started);
        jobs.ok_or_else(|| io_error(&self.path, "no thread"))
    }
}

impl fmt::Debug for NetnsWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NetnsWorker")
            .field("path", &self.path)
            .finish_non_exhaustive()
    }
}

impl Entered {
    /// Starts a thread that enters the netns (`enter`) and then runs jobs until the sender
    /// is dropped; a thread that could not enter answers every job with why. Returns at
    /// once: the caller does not wait for the thread to be scheduled and enter, so the
    /// thread starts on an idle CPU and works while the caller reads the host (waiting
    /// here woke the caller onto the thread's CPU, which then queued behind it).
    fn start(
        path: &Path,
        netns: NetnsId,
        enter: impl FnOnce() -> Result<()> + Send + 'static,
    ) -> Result<Entered> {
        let (jobs, queue) = mpsc::channel::<Job>();
        let spawned = away_from_this_cpu(|all| {
            std::thread::Builder::new()
                .name("router-netns".to_string())
                .spawn(move || {
                    take_back(all);
                    let entered = enter();
                    for job in queue {
                        job(entered.as_ref().map(|_| ()));
                    }
                })
        });
        let thread =
            spawned.map_err(|e| Error::io(format!("thread for netns {}", path.display()), e))?;
        Ok(Entered {
            netns,
            jobs: Some(jobs),
            thread: Some(thread),
        })
    }
}

impl Drop for Entered {
    /// Ends the thread once the jobs sent have run, without waiting for it: every job was
    /// answered, and the thread's own teardown (its netlink handle) is nothing a caller
    /// waits on: waiting would delay every run's exit by more than the teardown it waits
    /// for.
    fn drop(&mut self) {
        self.jobs = None;
        self.thread = None;
    }
}

/// Runs `spawn` (which starts a thread) so that the new thread starts off the CPU the
/// caller runs on, when the process may use another. A new thread is often queued on its
/// creator's CPU, and a creator that keeps working (the host read) leaves it waiting there
/// while the other CPU idles: the pod and host reads then run one after the other instead
/// of side by side. A thread inherits its creator's CPU set, so the caller narrows its own
/// to the other CPUs around the spawn and then takes back what it had; `spawn` gets that
/// set for the new thread to take back too once it runs (`take_back`), so that only where
/// it starts is chosen: kept on the other CPUs, it would wait there when they are busy and
/// this one is idle, as in a burst of pod starts. Best effort: the thread runs wherever the
/// scheduler puts it when this fails.
fn away_from_this_cpu<T>(spawn: impl FnOnce(Option<CpuSet>) -> T) -> T {
    let this_thread = Pid::from_raw(0);
    let (Ok(allowed), Ok(here)) = (sched_getaffinity(this_thread), sched_getcpu()) else {
        return spawn(None);
    };
    let mut elsewhere = allowed;
    let others =
        (0..CpuSet::count()).any(|cpu| cpu != here && allowed.is_set(cpu).unwrap_or(false));
    if !others || elsewhere.unset(here).is_err() {
        return spawn(None);
    }
    if sched_setaffinity(this_thread, &elsewhere).is_err() {
        return spawn(None);
    }
    let spawned = spawn(Some(allowed));
    // The caller's own set back. Should the kernel refuse (it does not, for a set it just
    // gave), the caller runs on the other CPUs, which is only where it may run anyway.
    let _ = sched_setaffinity(this_thread, &allowed);
    spawned
}

/// Run by a thread `away_from_this_cpu` started: takes back the CPU set its creator had.
/// Should the kernel refuse, the thread stays on the CPUs it started on.
fn take_back(all: Option<CpuSet>) {
    if let Some(all) = all {
        let _ = sched_setaffinity(Pid::from_raw(0), &all);
    }
}

/// A failure of the thread working in the netns at `path`.
fn io_error(path: &Path, reason: &str) -> Error {
    Error::io_other(format!("thread in netns {}", path.display()), reason)
}

/// Which netns the open netns file `file` refers to.
fn netns_id(file: &File, path: &Path) -> Result<NetnsId> {
    let stat = fstat(file).map_err(|e| Error::io(netns_what(path), io::Error::from(e)))?;
    // st_dev and st_ino are u64 on Linux's 64-bit ABIs but not on every target.
    #[allow(clippy::useless_conversion)]
    Ok((u64::from(stat.st_dev), u64::from(stat.st_ino)))
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
